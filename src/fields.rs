//! Field references and the per-kind field plan.
//!
//! Rules name the fields they read: JSON selectors in filters (`$.a.b[0]`),
//! `group_by` entries (`userIdentity.arn`, `srcaddr`), aggregate fields and
//! envelope fields (`@log_stream`). At load time every reference is
//! registered in the [`FieldPlan`] of its event kind and gets a [`Slot`].
//! Decoders then extract *only* the planned fields, in one pass, borrowing
//! from the input where they can, and store them at their slot in
//! [`crate::event::Event::fields`].
//!
//! Contract: a plan is frozen before decoding starts; slots never move.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::event::EventKind;
use crate::rules::gate::RuleGate;

/// Index of a field in an event's `fields` vector.
pub type Slot = u16;

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSeg {
    /// An object member name.
    Key(Box<str>),
    /// An array index.
    Index(u32),
    /// `.*` in a filter selector: every member of an object.
    AnyKey,
    /// `[*]` in a filter selector: every element of an array.
    AnyIndex,
}

/// A path into an event: a JSON path for CloudTrail, a single field name for
/// flow and host-log records, or an envelope field (first key starts `@`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segs: Vec<PathSeg>,
}

/// Error parsing a field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid field path {path:?} at column {column}: {message}")]
pub struct PathError {
    pub path: String,
    /// 1-based column in `path`.
    pub column: usize,
    pub message: String,
}

/// Envelope fields every decoder can fill, whatever the event kind.
pub const ENVELOPE_FIELDS: &[&str] = &["@log_group", "@log_stream", "@owner", "@message"];

impl FieldPath {
    /// Builds a path from segments.
    pub fn from_segs(segs: Vec<PathSeg>) -> Self {
        FieldPath { segs }
    }

    /// The path's segments.
    pub fn segs(&self) -> &[PathSeg] {
        &self.segs
    }

    /// A single-name path (flow field, host-log field, envelope field).
    pub fn name(name: &str) -> Self {
        FieldPath {
            segs: vec![PathSeg::Key(name.into())],
        }
    }

    /// If this path is a single name, that name.
    pub fn as_name(&self) -> Option<&str> {
        match self.segs.as_slice() {
            [PathSeg::Key(k)] => Some(k),
            _ => None,
        }
    }

    /// Whether the path has a wildcard step (`.*` or `[*]`), so that it
    /// may select several values (filter selectors only).
    pub fn has_wildcard(&self) -> bool {
        self.segs
            .iter()
            .any(|s| matches!(s, PathSeg::AnyKey | PathSeg::AnyIndex))
    }

    /// Whether this is an envelope field such as `@log_stream`.
    pub fn is_envelope(&self) -> bool {
        matches!(self.segs.first(), Some(PathSeg::Key(k)) if k.starts_with('@'))
    }

    /// Parses a dotted path as used in `group_by` and aggregate fields:
    /// `userIdentity.arn`, `requestParameters.items[0].name`, `srcaddr`,
    /// `@log_stream`. A leading `$.` is accepted too.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let body = text.strip_prefix("$.").unwrap_or(text);
        let offset = text.len() - body.len();
        let err = |col: usize, message: &str| PathError {
            path: text.to_string(),
            column: offset + col + 1,
            message: message.to_string(),
        };
        if body.is_empty() {
            return Err(err(0, "empty path"));
        }
        let mut segs = Vec::new();
        let bytes = body.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let start = pos;
            while pos < bytes.len() && bytes[pos] != b'.' && bytes[pos] != b'[' {
                pos += 1;
            }
            if pos == start && (bytes[pos] != b'[' || segs.is_empty()) {
                return Err(err(start, "empty path segment"));
            }
            if pos > start {
                if &body[start..pos] == "*" {
                    return Err(err(
                        start,
                        "wildcards select several values: they are allowed in filter selectors only",
                    ));
                }
                segs.push(PathSeg::Key(body[start..pos].into()));
            }
            while pos < bytes.len() && bytes[pos] == b'[' {
                let close = body[pos..]
                    .find(']')
                    .map(|i| pos + i)
                    .ok_or_else(|| err(pos, "unclosed '['"))?;
                let index: u32 = body[pos + 1..close]
                    .trim()
                    .parse()
                    .map_err(|_| err(pos + 1, "array index must be a non-negative integer"))?;
                segs.push(PathSeg::Index(index));
                pos = close + 1;
            }
            if pos < bytes.len() {
                if bytes[pos] != b'.' {
                    return Err(err(pos, "expected '.' or '['"));
                }
                pos += 1;
                if pos == bytes.len() {
                    return Err(err(pos, "path ends with '.'"));
                }
            }
        }
        Ok(FieldPath { segs })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
                PathSeg::AnyKey => write!(f, ".*")?,
                PathSeg::AnyIndex => write!(f, "[*]")?,
            }
        }
        Ok(())
    }
}

/// The fields that loaded rules read from events of one kind.
#[derive(Clone, Debug)]
pub struct FieldPlan {
    kind: EventKind,
    paths: Vec<FieldPath>,
    lookup: HashMap<FieldPath, Slot>,
    /// The rule set's gate for this kind, if it has one.
    gate: Option<Arc<RuleGate>>,
}

impl FieldPlan {
    /// An empty plan for `kind`.
    pub fn new(kind: EventKind) -> Self {
        FieldPlan {
            kind,
            paths: Vec::new(),
            lookup: HashMap::new(),
            gate: None,
        }
    }

    /// The event kind this plan serves.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// Registers `path` (idempotent) and returns its slot.
    pub fn slot_for(&mut self, path: &FieldPath) -> Slot {
        if let Some(slot) = self.lookup.get(path) {
            return *slot;
        }
        let slot = Slot::try_from(self.paths.len()).unwrap_or(Slot::MAX);
        debug_assert!(slot < Slot::MAX, "field plan overflow");
        self.paths.push(path.clone());
        self.lookup.insert(path.clone(), slot);
        slot
    }

    /// The slot of an already registered path.
    pub fn get(&self, path: &FieldPath) -> Option<Slot> {
        self.lookup.get(path).copied()
    }

    /// All planned paths, indexed by slot.
    pub fn paths(&self) -> &[FieldPath] {
        &self.paths
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// The [rule gate](crate::rules::gate) of the rules behind this plan:
    /// a decoder may read its fields first and skip the rest of a record
    /// that no rule can match.
    pub fn gate(&self) -> Option<&RuleGate> {
        self.gate.as_deref()
    }

    /// Sets (or clears) the rule gate; its slots must be this plan's.
    pub fn set_gate(&mut self, gate: Option<RuleGate>) {
        self.gate = gate.map(Arc::new);
    }

    /// Whether no field is planned.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

/// One plan per event kind.
#[derive(Clone, Debug)]
pub struct FieldPlans {
    pub cloudtrail: FieldPlan,
    pub vpcflow: FieldPlan,
    pub hostlog: FieldPlan,
}

impl Default for FieldPlans {
    fn default() -> Self {
        FieldPlans {
            cloudtrail: FieldPlan::new(EventKind::CloudTrail),
            vpcflow: FieldPlan::new(EventKind::VpcFlow),
            hostlog: FieldPlan::new(EventKind::HostLog),
        }
    }
}

impl FieldPlans {
    /// The plan for `kind`.
    pub fn for_kind(&self, kind: EventKind) -> &FieldPlan {
        match kind {
            EventKind::CloudTrail => &self.cloudtrail,
            EventKind::VpcFlow => &self.vpcflow,
            EventKind::HostLog => &self.hostlog,
        }
    }

    /// The mutable plan for `kind`.
    pub fn for_kind_mut(&mut self, kind: EventKind) -> &mut FieldPlan {
        match kind {
            EventKind::CloudTrail => &mut self.cloudtrail,
            EventKind::VpcFlow => &mut self.vpcflow,
            EventKind::HostLog => &mut self.hostlog,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dotted_and_indexed_paths() {
        let path = FieldPath::parse("$.requestParameters.items[2].name").unwrap();
        assert_eq!(
            path.segs(),
            &[
                PathSeg::Key("requestParameters".into()),
                PathSeg::Key("items".into()),
                PathSeg::Index(2),
                PathSeg::Key("name".into()),
            ]
        );
        assert_eq!(path.to_string(), "requestParameters.items[2].name");
        assert_eq!(
            FieldPath::parse("srcaddr").unwrap().as_name(),
            Some("srcaddr")
        );
        assert!(FieldPath::parse("@log_stream").unwrap().is_envelope());
    }

    #[test]
    fn rejects_bad_paths_with_column() {
        let err = FieldPath::parse("a..b").unwrap_err();
        assert_eq!(err.column, 3);
        assert!(FieldPath::parse("a[x]").is_err());
        assert!(FieldPath::parse("a.").is_err());
        assert!(FieldPath::parse("").is_err());
        assert!(
            FieldPath::parse("a.*").is_err(),
            "wildcards only in selectors"
        );
        assert!(FieldPath::parse("a[*]").is_err());
    }

    #[test]
    fn slots_are_stable_and_deduplicated() {
        let mut plan = FieldPlan::new(EventKind::CloudTrail);
        let a = plan.slot_for(&FieldPath::parse("eventName").unwrap());
        let b = plan.slot_for(&FieldPath::parse("$.errorCode").unwrap());
        let a_again = plan.slot_for(&FieldPath::parse("$.eventName").unwrap());
        assert_eq!((a, b, a_again), (0, 1, 0));
        assert_eq!(plan.len(), 2);
    }
}
