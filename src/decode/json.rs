//! Plan-driven single-pass JSON extraction.
//!
//! Contract: [`PathTrie`] is built once from a field plan (plus the few
//! fields every CloudTrail event needs). [`extract`] walks one JSON document
//! (which must be an object): at each object only keys present in the trie
//! descend, every other member is skipped; array indexes likewise. A value
//! reaching a trie node is delivered to that node's targets: strings
//! without escapes are borrowed from the input, a path landing on an
//! object or array yields `Object` / `Array`. Wildcard steps (`.*`, `[*]`)
//! descend into every member or element, and their slots collect every
//! value they reach ([`Target::Many`]); a value that feeds both a named and
//! a wildcard child is walked twice. Duplicate keys deliver once per
//! occurrence, in document order.
//!
//! Two walkers, one result. The fast one drives the allocation-free
//! [`scan`](super::scan) scanner: skipped values are validated without
//! parsing numbers (so `1e999` in an ignored field is fine) and without
//! allocating, and plain strings are borrowed. It hands escaped strings and
//! numbers that reach a trie node to serde_json, on that value's text
//! alone, so they read exactly as before. Whenever it refuses (any error,
//! an escaped key in a planned object, nesting deeper than it tracks), the
//! planned slots are reset and the serde_json walker runs on the whole
//! document: every error, its reason (`invalid_json`, `too_deep`,
//! `wrong_type`) and its message are serde_json's. That walker skips with
//! [`serde::de::IgnoredAny`] and reads a value feeding two children once as
//! raw JSON. Nesting deeper than serde_json's recursion limit (128) along
//! planned paths is an error, never a stack overflow; skipped values are
//! walked iteratively by both.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::decode::scan::{Refused, Scanner, Str};
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
    /// `keys` again, for the fast walker: length and first 8 bytes.
    key_words: Vec<KeyWord>,
    /// One bit per [`KeyWord::bucket`] of the keys: most keys of a record
    /// that no rule reads are rejected by this alone.
    key_filter: u64,
    /// Per bucket (64 once there are keys): the index in `key_words` of its
    /// only key, or [`SHARED_BUCKET`].
    key_buckets: Vec<u16>,
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
                        PathSeg::Key(key) => {
                            let word = KeyWord::of(key.as_bytes(), child_id);
                            let bucket = word.bucket();
                            if parent.key_buckets.is_empty() {
                                parent.key_buckets = vec![SHARED_BUCKET; 64];
                            }
                            let index = u16::try_from(parent.key_words.len()).ok();
                            let first = parent.key_filter & (1 << bucket) == 0;
                            if let Some(entry) = parent.key_buckets.get_mut(bucket as usize) {
                                *entry = match index {
                                    Some(index) if first && index != SHARED_BUCKET => index,
                                    _ => SHARED_BUCKET,
                                };
                            }
                            parent.key_filter |= 1 << bucket;
                            parent.key_words.push(word);
                            parent.keys.push((key.clone(), child_id));
                        }
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

    /// Sets every slot and special this trie targets back to `Missing`.
    pub(crate) fn reset(&self, out: &mut Extracted<'_, '_>) {
        for target in self.nodes.iter().flat_map(|node| node.targets.iter()) {
            let value = match *target {
                Target::Slot(slot) | Target::Many(slot) => out.fields.get_mut(usize::from(slot)),
                Target::Special(index) => out.specials.get_mut(usize::from(index)),
            };
            if let Some(value) = value {
                *value = FieldValue::Missing;
            }
        }
    }
}

/// A [`Node::key_buckets`] entry for a bucket of several keys.
const SHARED_BUCKET: u16 = u16::MAX;

/// A planned key as the fast walker compares it.
#[derive(Clone, Copy, Debug, Default)]
struct KeyWord {
    len: usize,
    /// The first (up to) 8 bytes, little-endian, zero-padded.
    prefix: u64,
    child: u32,
}

impl KeyWord {
    fn of(key: &[u8], child: u32) -> Self {
        let mut word = [0u8; 8];
        let head = key.len().min(8);
        word[..head].copy_from_slice(&key[..head]);
        KeyWord {
            len: key.len(),
            prefix: u64::from_le_bytes(word),
            child,
        }
    }

    /// Bit of [`Node::key_filter`] for this length and prefix.
    #[inline(always)]
    fn bucket(&self) -> u32 {
        let mixed = (self.prefix ^ self.len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 58) as u32
    }
}

impl Node {
    /// The child for object key `key`, which starts at byte `start` of the
    /// scanner's text.
    #[inline(always)]
    fn child_for_key(&self, key: &[u8], start: usize, scanner: &Scanner<'_>) -> Option<u32> {
        if self.keys.is_empty() {
            return None;
        }
        let len = key.len();
        let prefix = match scanner.word_at(start) {
            // The 8 bytes read run past a short key: keep only the key's.
            Some(word) if len < 8 => word & ((1u64 << (len * 8)) - 1),
            Some(word) => word,
            None => KeyWord::of(key, 0).prefix,
        };
        let probe = KeyWord {
            len,
            prefix,
            child: 0,
        };
        let bucket = probe.bucket();
        if self.key_filter & (1 << bucket) == 0 {
            return None;
        }
        let same = |index: usize| {
            let word = self.key_words.get(index)?;
            let (name, _) = self.keys.get(index)?;
            let same = word.len == len
                && word.prefix == prefix
                && (len <= 8 || name.as_bytes().get(8..) == key.get(8..));
            same.then_some(word.child)
        };
        match self.key_buckets.get(bucket as usize) {
            Some(&index) if index != SHARED_BUCKET => same(usize::from(index)),
            _ => (0..self.key_words.len()).find_map(same),
        }
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
        match targets {
            // Most nodes the walker passes target nothing (a container on
            // the way to a planned leaf) or one slot.
            [] => value.discard(),
            [only] => self.put(*only, value),
            [rest @ .., last] => {
                for target in rest {
                    self.put(*target, value.clone());
                }
                self.put(*last, value);
            }
        }
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
            std::mem::replace(slot, value).discard();
        }
    }
}

/// Walks `text` (one JSON document, which must be an object) and fills
/// `extracted`, whose targeted slots start out `Missing` (as
/// [`missing_fields`](crate::decode::missing_fields) makes them). Errors
/// map to `invalid_json`, `too_deep` or `wrong_type`.
pub fn extract<'de>(
    trie: &PathTrie,
    text: &'de str,
    extracted: &mut Extracted<'de, '_>,
) -> Result<(), DecodeError> {
    if fast_extract(trie, text, extracted).is_ok() {
        return Ok(());
    }
    trie.reset(extracted);
    serde_extract(trie, text, extracted)
}

/// The serde_json walker alone (the fallback of [`extract`]).
fn serde_extract<'de>(
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

/// Trie nesting the fast walker follows; deeper, serde_json decides (its
/// limit, 128, is never reached first).
const MAX_WALK_DEPTH: u32 = 64;

/// The fast walker: the whole document, or [`Refused`] (with some slots
/// possibly filled: the caller resets them).
pub(crate) fn fast_extract<'de>(
    trie: &PathTrie,
    text: &'de str,
    out: &mut Extracted<'de, '_>,
) -> Result<(), Refused> {
    let mut scanner = Scanner::new(text.as_bytes());
    // A record is an object; anything else is serde_json's `wrong_type`.
    if scanner.peek() != Some(b'{') {
        return Err(Refused);
    }
    walk(trie, 0, text, &mut scanner, out, 0)?;
    if scanner.at_end() {
        Ok(())
    } else {
        Err(Refused)
    }
}

/// Reads the value at the cursor from trie node `node`.
fn walk<'de>(
    trie: &PathTrie,
    node: u32,
    text: &'de str,
    scanner: &mut Scanner<'_>,
    out: &mut Extracted<'de, '_>,
    depth: u32,
) -> Result<(), Refused> {
    let Some(n) = trie.node(node) else {
        return scanner.skip_value();
    };
    match scanner.peek().ok_or(Refused)? {
        b'{' => {
            if depth >= MAX_WALK_DEPTH {
                return Err(Refused);
            }
            scanner.bump();
            out.deliver(&n.targets, FieldValue::Object);
            if scanner.peek() == Some(b'}') {
                scanner.bump();
                return Ok(());
            }
            loop {
                scanner.expect(b'"')?;
                let named = match scanner.string()? {
                    Str::Plain { start, end } => {
                        let key = text.as_bytes().get(start..end).ok_or(Refused)?;
                        n.child_for_key(key, start, scanner)
                    }
                    // serde_json unescapes keys before matching them.
                    Str::Escaped => return Err(Refused),
                };
                scanner.expect(b':')?;
                walk_children(trie, named, n.any_key, text, scanner, out, depth)?;
                match scanner.peek() {
                    Some(b',') => scanner.bump(),
                    Some(b'}') => {
                        scanner.bump();
                        return Ok(());
                    }
                    _ => return Err(Refused),
                }
            }
        }
        b'[' => {
            if depth >= MAX_WALK_DEPTH {
                return Err(Refused);
            }
            scanner.bump();
            out.deliver(&n.targets, FieldValue::Array);
            if scanner.peek() == Some(b']') {
                scanner.bump();
                return Ok(());
            }
            let mut index: u32 = 0;
            loop {
                let named = n
                    .indexes
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, child)| *child);
                walk_children(trie, named, n.any_index, text, scanner, out, depth)?;
                match scanner.peek() {
                    Some(b',') => scanner.bump(),
                    Some(b']') => {
                        scanner.bump();
                        return Ok(());
                    }
                    _ => return Err(Refused),
                }
                index = index.saturating_add(1);
            }
        }
        b'"' => {
            let start = scanner.pos();
            scanner.bump();
            match scanner.string()? {
                Str::Plain { start, end } => {
                    let value = text.get(start..end).ok_or(Refused)?;
                    out.deliver(&n.targets, FieldValue::Str(Cow::Borrowed(value)));
                }
                Str::Escaped => {
                    let value = text.get(start..scanner.pos()).ok_or(Refused)?;
                    serde_value(trie, node, value, out)?;
                }
            }
            Ok(())
        }
        b't' => {
            scanner.literal(b"true")?;
            out.deliver(&n.targets, FieldValue::Bool(true));
            Ok(())
        }
        b'f' => {
            scanner.literal(b"false")?;
            out.deliver(&n.targets, FieldValue::Bool(false));
            Ok(())
        }
        b'n' => {
            scanner.literal(b"null")?;
            out.deliver(&n.targets, FieldValue::Null);
            Ok(())
        }
        b'-' | b'0'..=b'9' => {
            let start = scanner.number()?;
            let value = text.get(start..scanner.pos()).ok_or(Refused)?;
            serde_value(trie, node, value, out)
        }
        _ => Err(Refused),
    }
}

/// Reads one member or element: into its named child, its wildcard child,
/// both (the value is read twice), or neither (skipped).
#[inline(always)]
fn walk_children<'de>(
    trie: &PathTrie,
    named: Option<u32>,
    any: Option<u32>,
    text: &'de str,
    scanner: &mut Scanner<'_>,
    out: &mut Extracted<'de, '_>,
    depth: u32,
) -> Result<(), Refused> {
    match (named, any) {
        (Some(child), None) | (None, Some(child)) => {
            walk(trie, child, text, scanner, out, depth + 1)
        }
        (Some(named), Some(any)) => {
            let start = scanner.pos();
            walk(trie, named, text, scanner, out, depth + 1)?;
            scanner.set_pos(start);
            walk(trie, any, text, scanner, out, depth + 1)
        }
        (None, None) => scanner.skip_value(),
    }
}

/// Reads one scalar (a number, or a string with escapes) with serde_json,
/// from its own text, so it converts exactly as in the serde_json walker.
fn serde_value<'de>(
    trie: &PathTrie,
    node: u32,
    value: &'de str,
    out: &mut Extracted<'de, '_>,
) -> Result<(), Refused> {
    let mut deserializer = serde_json::Deserializer::from_str(value);
    NodeSeed {
        trie,
        node,
        root: false,
        out,
    }
    .deserialize(&mut deserializer)
    .map_err(|_| Refused)
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

    /// Every slot, with whether a string is borrowed from the input.
    fn describe(fields: &Fields<'_>) -> Vec<String> {
        fn one(value: &FieldValue<'_>) -> String {
            match value {
                FieldValue::Str(Cow::Borrowed(s)) => format!("borrowed {s:?}"),
                FieldValue::Str(Cow::Owned(s)) => format!("owned {s:?}"),
                FieldValue::Many(values) => {
                    let inner: Vec<String> = values.iter().map(one).collect();
                    format!("many [{}]", inner.join(", "))
                }
                FieldValue::Number(n) => format!("number {n:?} (sign {})", n.is_sign_negative()),
                other => format!("{other:?}"),
            }
        }
        fields.iter().map(one).collect()
    }

    type Outcome = Result<Vec<String>, (DecodeErrorReason, String)>;

    fn test_trie() -> (PathTrie, usize) {
        use PathSeg::{AnyIndex, AnyKey, Index, Key};
        let key = |k: &str| Key(k.into());
        let paths = [
            vec![key("a")],
            vec![key("a"), key("b")],
            vec![key("a"), Index(1)],
            vec![key("a"), AnyIndex],
            vec![key("b"), AnyKey],
            vec![key("b"), key("a")],
            vec![AnyKey],
            vec![key("x"), AnyIndex, key("a")],
            vec![key("eventName")],
            vec![key("c"), key("c"), key("c")],
        ];
        let mut trie = PathTrie::default();
        for (i, segs) in paths.iter().enumerate() {
            trie.insert(&FieldPath::from_segs(segs.clone()), Target::Slot(i as Slot));
        }
        trie.insert(&FieldPath::name("eventTime"), Target::Special(0));
        (trie, paths.len())
    }

    /// Runs one walker on `text`: `which` is `extract`, `serde_extract` or
    /// the fast walker alone (its refusal is reported as `Err`).
    fn outcome(which: u8, trie: &PathTrie, slots: usize, text: &str) -> Outcome {
        let mut fields: Fields<'_> = crate::decode::missing_fields(slots);
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        let result = match which {
            0 => extract(trie, text, &mut extracted),
            1 => serde_extract(trie, text, &mut extracted),
            _ => fast_extract(trie, text, &mut extracted)
                .map_err(|Refused| DecodeError::new(DecodeErrorReason::InvalidJson, "refused")),
        };
        let special = format!("{:?}", extracted.specials[0]);
        match result {
            Ok(()) => {
                let mut got = describe(&fields);
                got.push(special);
                Ok(got)
            }
            Err(e) => Err((e.reason, e.detail)),
        }
    }

    /// `extract` agrees with the serde_json walker exactly, and when the
    /// fast walker accepts on its own it agrees too. Returns whether it did.
    fn agrees(text: &str) -> Result<bool, proptest::test_runner::TestCaseError> {
        let (trie, slots) = test_trie();
        let serde = outcome(1, &trie, slots, text);
        proptest::prop_assert_eq!(&outcome(0, &trie, slots, text), &serde, "{}", text);
        let fast = outcome(2, &trie, slots, text);
        if fast.is_ok() {
            proptest::prop_assert_eq!(&fast, &serde, "{}", text);
        }
        Ok(fast.is_ok())
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            prop::sample::select(vec![
                "null",
                "true",
                "false",
                "0",
                "-0",
                "1e999",
                "-1e-999",
                "1.5",
                "-7",
                "1E+2",
                "0.1e-2",
                "18446744073709551616",
                "-9223372036854775809",
                r#""\u00e9""#,
                r#""\ud800""#,
                r#""\ud83d\ude00""#,
                r#""a\/b""#,
                r#""""#,
                r#""é😀""#,
            ])
            .prop_map(String::from),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap_or_default()),
            "[a-c\"\\\\\u{1}\u{1f}\u{e9}\u{1F600} ]{0,12}"
                .prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        ];
        leaf.prop_recursive(4, 40, 5, |inner| {
            let key = prop::sample::select(vec![
                r#""a""#,
                r#""b""#,
                r#""c""#,
                r#""x""#,
                r#""eventName""#,
                r#""eventTime""#,
                r#""\u0061""#,
                r#""z""#,
            ]);
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key, inner, " ?"), 0..5).prop_map(|members| {
                    let members: Vec<String> = members
                        .iter()
                        .map(|(k, v, ws)| format!("{k}{ws}:{v}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn fast_walker_agrees_with_serde_on_valid_documents(
            doc in proptest::strategy::Strategy::prop_filter(json_value(), "an object", |d| d.starts_with('{')),
        ) {
            agrees(&doc)?;
        }

        #[test]
        fn fast_walker_agrees_with_serde_on_damaged_documents(
            doc in proptest::strategy::Strategy::prop_filter(json_value(), "an object", |d| d.starts_with('{')),
            at in 0usize..400,
            op in 0u8..3,
            with in proptest::sample::select(vec![
                '"', '\\', ',', ']', '}', '{', '[', ' ', '0', 'e', '-', '.', ':', '\u{1}',
                'x', 'u', 'n',
            ]),
        ) {
            let mut chars: Vec<char> = doc.chars().collect();
            let at = at % (chars.len() + 1);
            match op {
                0 => chars.insert(at, with),
                1 if at < chars.len() => { chars.remove(at); }
                _ if at < chars.len() => chars[at] = with,
                _ => chars.push(with),
            }
            let damaged: String = chars.into_iter().collect();
            agrees(&damaged)?;
        }
    }

    #[test]
    fn the_fast_walker_takes_ordinary_records() {
        // Not a vacuous agreement: these never reach the serde_json walker.
        for text in [
            r#"{"eventTime":"2024-03-01T12:00:05Z","a":{"b":"x","c":[1,{"d":true}]},"b":{"a":null,"q":[]},"x":[{"a":"1"},{"a":"2"}],"eventName":"E","z":{"k":[1e999,-0.5E-3,{"q":[[[]]]}]}}"#,
            " { \"a\" : [ \"p\" , \"q\" ] , \"c\" : { \"c\" : { \"c\" : false } } } ",
            r#"{"a":"q\"uote","b":{"a":"\u00e9"},"z":{"q":"\ud800 skipped lone surrogates are fine"}}"#,
        ] {
            assert!(matches!(agrees(text), Ok(true)), "{text}");
        }
    }

    #[test]
    fn huge_numbers_are_skipped_but_not_read() {
        let (trie, slots) = test_trie();
        // In an ignored field: accepted, by the fast walker itself.
        let skipped = r#"{"z":[1e999,{"q":-1e999}],"eventName":"E"}"#;
        assert!(outcome(2, &trie, slots, skipped).is_ok());
        assert!(extract_ok(&["eventName"], skipped));
        // On a planned path: serde_json's own error, as before.
        let planned = r#"{"eventName":1e999}"#;
        let got = outcome(0, &trie, slots, planned).unwrap_err();
        assert_eq!(got, outcome(1, &trie, slots, planned).unwrap_err());
        assert!(got.1.contains("number out of range"), "{got:?}");
    }

    /// [`run`] with the fast walker alone; `None` when it refuses.
    fn fast_run(paths: &[&str], text: &str) -> Option<Vec<FieldValue<'static>>> {
        let mut trie = PathTrie::default();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(&FieldPath::parse(p).unwrap(), Target::Slot(i as Slot));
        }
        let mut fields: Fields<'_> = crate::decode::missing_fields(paths.len());
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        fast_extract(&trie, text, &mut extracted).ok()?;
        Some(fields.into_iter().map(FieldValue::into_owned).collect())
    }

    fn extract_ok(paths: &[&str], text: &str) -> bool {
        run(paths, text).is_ok()
    }

    #[test]
    fn deep_nesting_in_skipped_fields() {
        let (trie, slots) = test_trie();
        let deep = |n: usize| format!("{{\"z\":{}{},\"a\":1}}", "[".repeat(n), "]".repeat(n));
        // Within the scanner's tracked depth: the fast walker, no allocation.
        assert!(outcome(2, &trie, slots, &deep(4000)).is_ok());
        // Deeper: refused, and serde_json's iterative skipper takes it.
        assert!(outcome(2, &trie, slots, &deep(100_000)).is_err());
        assert!(matches!(agrees(&deep(100_000)), Ok(false)));
        assert!(outcome(0, &trie, slots, &deep(100_000)).is_ok());
        // Unbalanced deep inside a skipped value: serde_json's error.
        let bad = format!("{{\"z\":{}{}}}", "[".repeat(5000), "]".repeat(4999));
        let got = outcome(0, &trie, slots, &bad).unwrap_err();
        assert_eq!(got.0, DecodeErrorReason::InvalidJson);
        assert_eq!(Err(got), outcome(1, &trie, slots, &bad));
    }

    #[test]
    fn escapes_in_extracted_strings_and_keys() {
        let got = run(
            &["a", "b", "c"],
            r#"{"a":"q\"uote \u00e9 \ud83d\ude00","b":"plain","\u0063":"by escaped key"}"#,
        )
        .unwrap();
        assert_eq!(got[0], FieldValue::Str("q\"uote é 😀".into()));
        assert_eq!(got[1], FieldValue::Str("plain".into()));
        assert_eq!(got[2], FieldValue::Str("by escaped key".into()));
        // A lone surrogate is an error where the string is read...
        let err = run(&["a"], r#"{"a":"\ud800"}"#).unwrap_err();
        assert_eq!(err.reason, DecodeErrorReason::InvalidJson);
        assert!(err.detail.contains("hex escape"), "{}", err.detail);
        // ...and fine where it is skipped, as serde_json skips it.
        assert!(run(&["a"], r#"{"a":"x","b":"\ud800"}"#).is_ok());
        // Control characters are errors everywhere.
        for text in ["{\"a\":\"x\u{1}\"}", "{\"b\":\"x\u{1}\"}", "{\"b\u{1}\":1}"] {
            assert_eq!(
                run(&["a"], text).unwrap_err().reason,
                DecodeErrorReason::InvalidJson,
                "{text:?}"
            );
        }
    }

    /// `extract` with [`test_trie`]: slots 0 `a`, 3 `a[*]`, 4 `b.*`,
    /// 5 `b.a`, 6 `*`.
    fn wild(text: &str) -> Vec<FieldValue<'static>> {
        let (trie, slots) = test_trie();
        let mut fields: Fields<'_> = crate::decode::missing_fields(slots);
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        extract(&trie, text, &mut extracted).unwrap();
        fields.into_iter().map(FieldValue::into_owned).collect()
    }

    #[test]
    fn duplicate_keys_deliver_every_occurrence() {
        let s = |v: &'static str| FieldValue::Str(v.into());
        let got = wild(r#"{"a":["1"],"b":{"a":"x"},"a":["2"],"b":{"a":"y"}}"#);
        assert_eq!(got[0], FieldValue::Array, "the last one wins");
        assert_eq!(got[3], FieldValue::Many(vec![s("1"), s("2")]));
        assert_eq!(got[4], FieldValue::Many(vec![s("x"), s("y")]));
        assert_eq!(got[5], s("y"));
        let got = run(&["a"], r#"{"a":"1","a":"2"}"#).unwrap();
        assert_eq!(got[0], s("2"));
    }

    #[test]
    fn a_refused_document_starts_again_from_missing() {
        // The fast walker fills `a`, `a[*]` and `*`, then refuses at the
        // escaped key; what it filled must not be delivered twice.
        let s = |v: &'static str| FieldValue::Str(v.into());
        let got = wild(r#"{"a":["x","y"],"\u0062":{"a":"z"}}"#);
        assert_eq!(got[3], FieldValue::Many(vec![s("x"), s("y")]));
        assert_eq!(
            got[6],
            FieldValue::Many(vec![FieldValue::Array, FieldValue::Object])
        );
        assert_eq!(got[5], s("z"));
    }

    #[test]
    fn keys_match_whole_not_by_prefix_or_length() {
        let paths = [
            "userIdentity1",
            "userIdentity2",
            "abcdefgh",
            "abcdefg",
            "",
            "k",
        ];
        let text = r#"{"userIdentity2":"two","userIdentity1":"one","abcdefghi":"no","abcdefg":"seven","abcdefgH":"no","":"empty","abcdefgh":"eight","k":"end"}"#;
        let s = |v: &'static str| FieldValue::Str(v.into());
        assert_eq!(
            fast_run(&paths[..4], text),
            Some(vec![s("one"), s("two"), s("eight"), s("seven")])
        );
        assert_eq!(
            run(&paths[..4], text).unwrap(),
            vec![s("one"), s("two"), s("eight"), s("seven")]
        );
        // The empty key, and a key in the last 8 bytes of the text.
        let mut fields: Fields<'_> = crate::decode::missing_fields(2);
        let mut trie2 = PathTrie::default();
        trie2.insert(
            &FieldPath::from_segs(vec![PathSeg::Key("".into())]),
            Target::Slot(0),
        );
        trie2.insert(&FieldPath::name(paths[5]), Target::Slot(1));
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        assert!(fast_extract(&trie2, text, &mut extracted).is_ok());
        assert_eq!(fields[0], s("empty"));
        assert_eq!(fields[1], s("end"));
    }

    #[test]
    fn many_keys_sharing_buckets_each_find_their_slot() {
        // 200 planned keys in 64 buckets: some buckets are shared.
        let names: Vec<String> = (0..200).map(|i| format!("key{i}")).collect();
        let paths: Vec<&str> = names.iter().map(String::as_str).collect();
        let members: Vec<String> = names
            .iter()
            .rev()
            .map(|name| format!("\"{name}\":\"v{name}\",\"{name}x\":0"))
            .collect();
        let text = format!("{{{}}}", members.join(","));
        let mut trie = PathTrie::default();
        for (i, p) in paths.iter().enumerate() {
            trie.insert(&FieldPath::parse(p).unwrap(), Target::Slot(i as Slot));
        }
        let mut fields: Fields<'_> = crate::decode::missing_fields(paths.len());
        let mut extracted = Extracted {
            fields: &mut fields,
            specials: Default::default(),
        };
        // The fast walker itself (the serde_json one matches keys its own way).
        assert!(fast_extract(&trie, &text, &mut extracted).is_ok());
        for (name, value) in names.iter().zip(&fields) {
            assert_eq!(value, &FieldValue::Str(format!("v{name}").into()), "{name}");
        }
        assert!(
            trie.nodes[0].key_buckets.contains(&SHARED_BUCKET),
            "the test must reach a shared bucket"
        );
    }

    #[test]
    fn errors_carry_serde_json_messages() {
        let (trie, slots) = test_trie();
        for bad in [
            "{\"a\":",
            "{\"a\":1,}",
            "{\"a\":[1,]}",
            "{\"z\":[01]}",
            "{\"z\":{\"k\" 1}}",
            "{\"a\":tru}",
            "{\"a\":\"x\"} {}",
            "[1]",
            "5",
            "{\"z\":\"\\q\"}",
            "{\"a\":-}",
        ] {
            let got = outcome(0, &trie, slots, bad);
            assert!(got.is_err(), "{bad}");
            assert_eq!(got, outcome(1, &trie, slots, bad), "{bad}");
        }
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
