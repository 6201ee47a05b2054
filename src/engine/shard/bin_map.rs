//! The open bins of one shard, keyed by (window end, rule).
//!
//! Every match looks up its bin, so lookups go through a hash map: one
//! probe, where a B-tree search compared about a dozen `(end, rule)` pairs
//! (BENCHMARKS.md). Bins close oldest end first, and that order is kept by
//! a B-tree set of the keys, which changes only when a bin opens or
//! closes: once per bin, not per match.
//!
//! Contract: the map and the set always hold the same keys; iteration and
//! `pop_first` follow `(end, rule)` order, as a `BTreeMap` would.

use std::collections::BTreeSet;

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use super::bins::Bin;
use crate::rules::compile::RuleIdx;

/// A bin's key: its window end (epoch ms) and its rule.
pub type BinId = (i64, RuleIdx);

/// See the module docs.
#[derive(Debug, Default)]
pub struct BinMap {
    bins: HashMap<BinId, Bin>,
    order: BTreeSet<BinId>,
}

impl BinMap {
    /// The bin of `key`, opened with `make` when there is none.
    #[inline]
    pub fn get_or_open(&mut self, key: BinId, make: impl FnOnce() -> Bin) -> &mut Bin {
        match self.bins.entry(key) {
            Entry::Occupied(bin) => bin.into_mut(),
            Entry::Vacant(slot) => {
                self.order.insert(key);
                slot.insert(make())
            }
        }
    }

    pub fn get(&self, key: &BinId) -> Option<&Bin> {
        self.bins.get(key)
    }

    pub fn get_mut(&mut self, key: &BinId) -> Option<&mut Bin> {
        self.bins.get_mut(key)
    }

    /// The key of the bin that closes first.
    pub fn first_key(&self) -> Option<BinId> {
        self.order.first().copied()
    }

    /// Removes and returns the bin that closes first.
    pub fn pop_first(&mut self) -> Option<(BinId, Bin)> {
        let key = self.order.pop_first()?;
        let bin = self.bins.remove(&key)?;
        Some((key, bin))
    }

    pub fn remove(&mut self, key: &BinId) -> Option<Bin> {
        self.order.remove(key);
        self.bins.remove(key)
    }

    pub fn insert(&mut self, key: BinId, bin: Bin) {
        self.order.insert(key);
        self.bins.insert(key, bin);
    }

    /// Every bin, in closing order.
    pub fn iter(&self) -> impl Iterator<Item = (&BinId, &Bin)> {
        self.order
            .iter()
            .filter_map(|key| self.bins.get_key_value(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::compile::Aggregate;

    #[test]
    fn bins_leave_in_end_then_rule_order_whatever_order_they_opened_in() {
        let mut map = BinMap::default();
        let keys: [BinId; 5] = [(300, 2), (100, 7), (300, 0), (200, 1), (100, 3)];
        for key in keys {
            map.get_or_open(key, || Bin::new(Aggregate::Count));
            // Opening again finds the same bin.
            map.get_or_open(key, || panic!("{key:?} opened twice"));
        }
        let listed: Vec<BinId> = map.iter().map(|(key, _)| *key).collect();
        assert_eq!(listed, [(100, 3), (100, 7), (200, 1), (300, 0), (300, 2)]);
        assert_eq!(map.first_key(), Some((100, 3)));
        assert!(map.remove(&(200, 1)).is_some());
        assert!(map.get(&(200, 1)).is_none());
        map.insert((50, 9), Bin::new(Aggregate::Count));
        let mut closed = Vec::new();
        while let Some((key, _)) = map.pop_first() {
            closed.push(key);
        }
        assert_eq!(closed, [(50, 9), (100, 3), (100, 7), (300, 0), (300, 2)]);
        assert_eq!(map.first_key(), None);
    }
}
