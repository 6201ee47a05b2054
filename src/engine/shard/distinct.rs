//! The distinct values of one tumbling window, as 64-bit hashes.
//!
//! Most windows of a distinct rule see only a few values (a source that
//! tried one or two ports), so the first [`INLINE`] hashes live in the set
//! itself, with no allocation; a window that sees more moves them to a
//! hash set. Contract: it behaves as a set of `u64` whatever its form.

/// Hashes kept without a hash set.
const INLINE: usize = 4;

/// See the module docs.
#[derive(Debug, Clone)]
pub enum DistinctSet {
    /// `hashes[..len]`, all different.
    Few {
        len: u8,
        hashes: [u64; INLINE],
    },
    Many(Box<hashbrown::HashSet<u64>>),
}

impl Default for DistinctSet {
    fn default() -> Self {
        DistinctSet::Few {
            len: 0,
            hashes: [0; INLINE],
        }
    }
}

impl DistinctSet {
    /// Adds `hash` unless it is there.
    #[inline]
    pub fn insert(&mut self, hash: u64) {
        match self {
            DistinctSet::Few { len, hashes } => {
                let n = usize::from(*len);
                if hashes[..n].contains(&hash) {
                    return;
                }
                if n < INLINE {
                    hashes[n] = hash;
                    *len += 1;
                    return;
                }
                let mut set = hashbrown::HashSet::with_capacity(INLINE * 2);
                set.extend(hashes.iter().copied());
                set.insert(hash);
                *self = DistinctSet::Many(Box::new(set));
            }
            DistinctSet::Many(set) => {
                set.insert(hash);
            }
        }
    }

    /// Adds every hash of `hashes`.
    pub fn extend(&mut self, hashes: impl IntoIterator<Item = u64>) {
        for hash in hashes {
            self.insert(hash);
        }
    }

    /// Number of distinct hashes.
    pub fn len(&self) -> usize {
        match self {
            DistinctSet::Few { len, .. } => usize::from(*len),
            DistinctSet::Many(set) => set.len(),
        }
    }

    /// Heap bytes it holds (about 9 per slot of its hash set): only grows.
    pub fn heap_bytes(&self) -> usize {
        match self {
            DistinctSet::Few { .. } => 0,
            DistinctSet::Many(set) => set.capacity() * 9,
        }
    }

    /// The hashes as a hash set (for an alert's aggregate).
    pub fn to_set(&self) -> hashbrown::HashSet<u64> {
        match self {
            DistinctSet::Few { len, hashes } => {
                hashes[..usize::from(*len)].iter().copied().collect()
            }
            DistinctSet::Many(set) => (**set).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn behaves_as_a_set(hashes in proptest::collection::vec(0u64..12, 0..40)) {
            let mut set = DistinctSet::default();
            let mut reference = std::collections::HashSet::new();
            let mut heap = 0;
            for hash in hashes {
                set.insert(hash);
                reference.insert(hash);
                prop_assert_eq!(set.len(), reference.len());
                prop_assert!(set.heap_bytes() >= heap);
                heap = set.heap_bytes();
            }
            prop_assert_eq!(matches!(set, DistinctSet::Few { .. }), reference.len() <= INLINE);
            let listed: std::collections::HashSet<u64> = set.to_set().into_iter().collect();
            prop_assert_eq!(listed, reference);
        }
    }

    #[test]
    fn stays_small() {
        assert!(std::mem::size_of::<DistinctSet>() <= 40);
    }
}
