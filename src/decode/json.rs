//! Plan-driven single-pass JSON extraction.
//!
//! Contract: [`PathTrie`] is built once from a field plan (plus the few
//! fields every CloudTrail event needs). [`extract`] walks one JSON document
//! with serde: at each object only keys present in the trie descend, every
//! other member is skipped with [`serde::de::IgnoredAny`]; array indexes
//! likewise. A value reaching a trie node is delivered to that node's
//! targets: strings without escapes are borrowed from the input, a path
//! landing on an object or array yields `Object` / `Array`. Wildcard steps
//! (`.*`, `[*]`) descend into every member or element, and their slots
//! collect every value they reach ([`Target::Many`]); a value that feeds
//! both a named and a wildcard child is read once as raw JSON and walked
//! twice. Nesting deeper
//! than serde_json's recursion limit (128) is an error, never a stack
//! overflow.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::decode::{DecodeError, DecodeErrorReason};
use crate::event::FieldValue;
use crate::fields::{FieldPath, PathSeg, Slot};

/// Where an extracted value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A planned field slot.
    Slot(Slot),
    /// A planned slot of a wildcard selector: every value reaching it is
    /// collected into [`FieldValue::Many`].
    Many(Slot),
    /// One of the decoder's own special values (index into
    /// [`Extracted::specials`]).
    Special(u8),
}

/// Number of special targets a trie may use.
pub const SPECIALS: usize = 6;

#[derive(Clone, Debug, Default)]
struct Node {
    targets: SmallVec<[Target; 1]>,
    keys: Vec<(Box<str>, u32)>,
    indexes: Vec<(u32, u32)>,
    /// Child for every member (`.*`).
    any_key: Option<u32>,
    /// Child for every element (`[*]`).
    any_index: Option<u32>,
}

/// A trie of planned JSON paths.
#[derive(Clone, Debug)]
pub struct PathTrie {
    nodes: Vec<Node>,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie {
            nodes: vec![Node::default()],
        }
    }
}

impl PathTrie {
    /// Adds `path` with `target` at its end (a wildcard path's slot target
    /// becomes [`Target::Many`]).
    pub fn insert(&mut self, path: &FieldPath, target: Target) {
        let target = match target {
            Target::Slot(slot) if path.has_wildcard() => Target::Many(slot),
            other => other,
        };
        let mut node = 0usize;
        for seg in path.segs() {
            let current = &self.nodes[node];
            let existing = match seg {
                PathSeg::Key(key) => current
                    .keys
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, child)| *child),
                PathSeg::Index(index) => current
                    .indexes
                    .iter()
                    .find(|(i, _)| i == index)
                    .map(|(_, child)| *child),
                PathSeg::AnyKey => current.any_key,
                PathSeg::AnyIndex => current.any_index,
            };
            node = match existing {
                Some(child) => child as usize,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    let child_id = u32::try_from(child).unwrap_or(u32::MAX);
                    let parent = &mut self.nodes[node];
                    match seg {
                        PathSeg::Key(key) => parent.keys.push((key.clone(), child_id)),
                        PathSeg::Index(index) => parent.indexes.push((*index, child_id)),
                        PathSeg::AnyKey => parent.any_key = Some(child_id),
                        PathSeg::AnyIndex => parent.any_index = Some(child_id),
                    }
                    child
                }
            };
        }
        self.nodes[node].targets.push(target);
    }

    fn node(&self, index: u32) -> Option<&Node> {
        self.nodes.get(index as usize)
    }
}

/// Values extracted from one document.
#[derive(Debug)]
pub struct Extracted<'de, 'f> {
    /// The planned slots, pre-sized by the caller.
    pub fields: &'f mut crate::event::Fields<'de>,
    /// Special values, by index.
    pub specials: [FieldValue<'de>; SPECIALS],
}

impl<'de> Extracted<'de, '_> {
    fn deliver(&mut self, targets: &[Target], value: FieldValue<'de>) {
        let Some((last, rest)) = targets.split_last() else {
            return;
        };
        for target in rest {
            self.put(*target, value.clone());
        }
        self.put(*last, value);
    }

    fn put(&mut self, target: Target, value: FieldValue<'de>) {
        let slot = match target {
            Target::Slot(slot) => self.fields.get_mut(usize::from(slot)),
            Target::Special(index) => self.specials.get_mut(usize::from(index)),
            Target::Many(slot) => {
                if let Some(field) = self.fields.get_mut(usize::from(slot)) {
                    match field {
                        FieldValue::Many(values) => values.push(value),
                        other => *other = FieldValue::Many(vec![value]),
                    }
                }
                return;
            }
        };
        if let Some(slot) = slot {
            *slot = value;
        }
    }
}

/// Walks `text` (one JSON document, which must be an object) and fills
/// `extracted`. Errors map to `invalid_json`, `too_deep` or `wrong_type`.
pub fn extract<'de>(
    trie: &PathTrie,
    text: &'de str,
    extracted: &mut Extracted<'de, '_>,
) -> Result<(), DecodeError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seed = NodeSeed {
        trie,
        node: 0,
        root: true,
        out: extracted,
    };
    seed.deserialize(&mut deserializer).map_err(classify)?;
    deserializer.end().map_err(classify)
}

/// Maps a serde_json error to a decode error.
pub fn classify(error: serde_json::Error) -> DecodeError {
    let message = error.to_string();
    let reason = if message.contains("recursion limit exceeded") {
        DecodeErrorReason::TooDeep
    } else {
        match error.classify() {
            serde_json::error::Category::Data => DecodeErrorReason::WrongType,
            _ => DecodeErrorReason::InvalidJson,
        }
    };
    DecodeError::new(reason, message)
}

struct NodeSeed<'t, 'x, 'de, 'f> {
    trie: &'t PathTrie,
    node: u32,
    root: bool,
    out: &'x mut Extracted<'de, 'f>,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'t> NodeSeed<'t, '_, '_, '_> {
    fn targets(&self) -> &'t [Target] {
        let trie: &'t PathTrie = self.trie;
        trie.node(self.node)
            .map(|n| n.targets.as_slice())
            .unwrap_or(&[])
    }
}

/// A scalar at the document root is a type error: records are objects.
fn root_scalar<E: de::Error>(root: bool, unexpected: de::Unexpected<'_>) -> Result<(), E> {
    if root {
        return Err(E::invalid_type(unexpected, &"a JSON object"));
    }
    Ok(())
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Bool(v));
        root_scalar(self.root, de::Unexpected::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Number(v as f64));
        root_scalar(self.root, de::Unexpected::Signed(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Number(v as f64));
        root_scalar(self.root, de::Unexpected::Unsigned(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Number(v));
        root_scalar(self.root, de::Unexpected::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Str(Cow::Borrowed(v)));
        root_scalar(self.root, de::Unexpected::Str(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let targets = self.targets();
        if !targets.is_empty() {
            self.out
                .deliver(targets, FieldValue::Str(Cow::Owned(v.to_owned())));
        }
        root_scalar(self.root, de::Unexpected::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        let targets = self.targets();
        self.out.deliver(targets, FieldValue::Null);
        root_scalar(self.root, de::Unexpected::Unit)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let trie = self.trie;
        let Some(node) = trie.node(self.node) else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        self.out.deliver(&node.targets, FieldValue::Object);
        while let Some(child) = map.next_key_seed(KeySeed { node })? {
            match (child, node.any_key) {
                (Some(child), None) | (None, Some(child)) => map.next_value_seed(NodeSeed {
                    trie,
                    node: child,
                    root: false,
                    out: &mut *self.out,
                })?,
                (Some(named), Some(any)) => {
                    let raw: &'de RawValue = map.next_value()?;
                    extract_raw(trie, named, raw, self.out)?;
                    extract_raw(trie, any, raw, self.out)?;
                }
                (None, None) => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.root {
            return Err(de::Error::invalid_type(
                de::Unexpected::Seq,
                &"a JSON object",
            ));
        }
        let trie = self.trie;
        let Some(node) = trie.node(self.node) else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        self.out.deliver(&node.targets, FieldValue::Array);
        let mut index: u32 = 0;
        loop {
            let child = node
                .indexes
                .iter()
                .find(|(i, _)| *i == index)
                .map(|(_, c)| *c);
            let more = match (child, node.any_index) {
                (Some(child), None) | (None, Some(child)) => seq
                    .next_element_seed(NodeSeed {
                        trie,
                        node: child,
                        root: false,
                        out: &mut *self.out,
                    })?
                    .is_some(),
                (Some(named), Some(any)) => match seq.next_element::<&'de RawValue>()? {
                    Some(raw) => {
                        extract_raw(trie, named, raw, self.out)?;
                        extract_raw(trie, any, raw, self.out)?;
                        true
                    }
                    None => false,
                },
                (None, None) => seq.next_element::<IgnoredAny>()?.is_some(),
            };
            if !more {
                return Ok(());
            }
            index = index.saturating_add(1);
        }
    }
}

/// Walks one already-delimited value from trie node `node`: used when a
/// value feeds both a named child and a wildcard child, which one streaming
/// pass cannot do. Borrowed strings still borrow from the input.
fn extract_raw<'de, E: de::Error>(
    trie: &PathTrie,
    node: u32,
    raw: &'de RawValue,
    out: &mut Extracted<'de, '_>,
) -> Result<(), E> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    NodeSeed {
        trie,
        node,
        root: false,
        out,
    }
    .deserialize(&mut deserializer)
    .map_err(E::custom)
}

/// Resolves an object key to the child trie node, without allocating.
struct KeySeed<'t> {
    node: &'t Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<u32>, E> {
        Ok(self
            .node
            .keys
            .iter()
            .find(|(k, _)| k.as_ref() == key)
            .map(|(_, c)| *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Fields;

    fn run(paths: &[&str], text: &str) -> Result<Vec<FieldValue<'static>>, DecodeError> {
        let mut trie = PathTrie::default();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(&FieldPath::parse(p).unwrap(), Target::Slot(i as Slot));
        }
        let mut fields: Fields<'_> = crate::decode::missing_fields(paths.len());
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        extract(&trie, text, &mut extracted)?;
        Ok(fields.into_iter().map(FieldValue::into_owned).collect())
    }

    #[test]
    fn wildcard_paths_collect_every_value_they_select() {
        use PathSeg::{AnyIndex, AnyKey, Index, Key};
        let key = |k: &str| Key(k.into());
        let paths = [
            vec![key("a"), AnyIndex, key("n")],
            vec![AnyKey],
            vec![key("c"), AnyIndex],
            vec![key("c"), Index(1)],
            vec![key("b"), key("q")],
            vec![key("zz"), AnyIndex],
        ];
        let mut trie = PathTrie::default();
        for (i, segs) in paths.iter().enumerate() {
            let path = FieldPath::from_segs(segs.clone());
            trie.insert(&path, Target::Slot(i as Slot));
        }
        let text = r#"{"a":[{"n":"x"},{"n":"y"},{"m":1}],"b":{"p":1,"q":"z"},"c":["u","v"]}"#;
        let mut fields: Fields<'_> = crate::decode::missing_fields(paths.len());
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        extract(&trie, text, &mut extracted).unwrap();
        let s = |v: &'static str| FieldValue::Str(v.into());
        assert_eq!(fields[0], FieldValue::Many(vec![s("x"), s("y")]));
        assert_eq!(
            fields[1],
            FieldValue::Many(vec![
                FieldValue::Array,
                FieldValue::Object,
                FieldValue::Array
            ]),
            "one level, in document order"
        );
        assert_eq!(fields[2], FieldValue::Many(vec![s("u"), s("v")]));
        // Named steps next to a wildcard on the same container still work
        // (the value is read once as raw JSON and walked twice).
        assert_eq!(fields[3], s("v"));
        assert_eq!(fields[4], s("z"));
        assert_eq!(fields[5], FieldValue::Missing);
        assert!(
            matches!(&fields[4], FieldValue::Str(std::borrow::Cow::Borrowed(_))),
            "still borrowed from the input"
        );
    }

    #[test]
    fn extracts_planned_paths_only() {
        let text = r#"{"a":{"b":"x","c":[1,{"d":true}]},"e":null,"f":"q\"uote","g":[1,2]}"#;
        let got = run(
            &["a.b", "a.c[1].d", "e", "f", "g", "a", "zz", "a.c[5]"],
            text,
        )
        .unwrap();
        assert_eq!(got[0], FieldValue::Str("x".into()));
        assert_eq!(got[1], FieldValue::Bool(true));
        assert_eq!(got[2], FieldValue::Null);
        assert_eq!(got[3], FieldValue::Str("q\"uote".into()));
        assert_eq!(got[4], FieldValue::Array);
        assert_eq!(got[5], FieldValue::Object);
        assert_eq!(got[6], FieldValue::Missing);
        assert_eq!(got[7], FieldValue::Missing);
    }

    #[test]
    fn borrows_unescaped_strings() {
        let mut trie = PathTrie::default();
        trie.insert(&FieldPath::name("a"), Target::Slot(0));
        let text = r#"{"a":"plain"}"#;
        let mut fields: Fields<'_> = crate::decode::missing_fields(1);
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        extract(&trie, text, &mut extracted).unwrap();
        assert!(matches!(
            &fields[0],
            FieldValue::Str(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(
            run(&["a"], "{\"a\":").unwrap_err().reason,
            DecodeErrorReason::InvalidJson
        );
        assert_eq!(
            run(&["a"], "[1]").unwrap_err().reason,
            DecodeErrorReason::WrongType
        );
        assert_eq!(
            run(&["a"], "5").unwrap_err().reason,
            DecodeErrorReason::WrongType
        );
        assert_eq!(
            run(&["a"], "{} x").unwrap_err().reason,
            DecodeErrorReason::InvalidJson
        );
        // Deep nesting in skipped or container-landing values is walked by
        // serde_json's iterative skipper: no recursion, no stack overflow.
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(run(&["a"], &deep).unwrap(), vec![FieldValue::Array]);
        // Descending along a planned path is bounded by serde_json's
        // recursion limit.
        let path = format!("a{}", "[0]".repeat(200));
        let deep_planned = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
        assert_eq!(
            run(&[&path], &deep_planned).unwrap_err().reason,
            DecodeErrorReason::TooDeep
        );
    }
}
