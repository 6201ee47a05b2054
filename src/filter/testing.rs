//! Test and fixture helpers: build [`Event`]s by hand, filling the planned
//! fields from a `serde_json::Value` the way a decoder would. Not used by
//! the engine itself; public so integration tests and other modules' tests
//! can share it.

use std::borrow::Cow;

use serde_json::Value;

use crate::event::{Event, EventKind, FieldValue, Fields};
use crate::fields::{FieldPath, FieldPlan, PathSeg};

/// An event whose text is `value` serialized and whose fields are every
/// path of `plan`, looked up in `value` (`Object` / `Array` when a path
/// lands on a container, `Missing` when absent).
pub fn event_from_json(value: &Value, plan: &FieldPlan, kind: EventKind) -> Event<'static> {
    let fields: Fields<'static> = plan.paths().iter().map(|p| lookup(value, p)).collect();
    Event {
        kind,
        time_ms: 0,
        text: Cow::Owned(value.to_string()),
        fields,
        id: None,
        account: None,
        region: None,
        ruled_out: false,
    }
}

/// An event with only message text and no planned fields (terms, regex and
/// space-delimited patterns read only the text).
pub fn event_from_text(text: &str, kind: EventKind) -> Event<'static> {
    Event {
        kind,
        time_ms: 0,
        text: Cow::Owned(text.to_string()),
        fields: Fields::new(),
        id: None,
        account: None,
        region: None,
        ruled_out: false,
    }
}

/// The value at `path` in `value`, as a decoder would extract it: every
/// value a wildcard path selects, in document order, as `Many`.
pub fn lookup(value: &Value, path: &FieldPath) -> FieldValue<'static> {
    if path.has_wildcard() {
        let mut found = Vec::new();
        collect(value, path.segs(), &mut found);
        return if found.is_empty() {
            FieldValue::Missing
        } else {
            FieldValue::Many(found)
        };
    }
    let mut current = value;
    for seg in path.segs() {
        let next = match (seg, current) {
            (PathSeg::Key(k), Value::Object(map)) => map.get(&**k),
            (PathSeg::Index(i), Value::Array(items)) => {
                usize::try_from(*i).ok().and_then(|i| items.get(i))
            }
            _ => None,
        };
        match next {
            Some(v) => current = v,
            None => return FieldValue::Missing,
        }
    }
    scalar(current)
}

fn collect(value: &Value, segs: &[PathSeg], found: &mut Vec<FieldValue<'static>>) {
    let Some((seg, rest)) = segs.split_first() else {
        found.push(scalar(value));
        return;
    };
    match (seg, value) {
        (PathSeg::Key(k), Value::Object(map)) => {
            if let Some(v) = map.get(&**k) {
                collect(v, rest, found);
            }
        }
        (PathSeg::Index(i), Value::Array(items)) => {
            if let Some(v) = usize::try_from(*i).ok().and_then(|i| items.get(i)) {
                collect(v, rest, found);
            }
        }
        (PathSeg::AnyKey, Value::Object(map)) => {
            for v in map.values() {
                collect(v, rest, found);
            }
        }
        (PathSeg::AnyIndex, Value::Array(items)) => {
            for v in items {
                collect(v, rest, found);
            }
        }
        _ => {}
    }
}

fn scalar(value: &Value) -> FieldValue<'static> {
    match value {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => n.as_f64().map_or(FieldValue::Missing, FieldValue::Number),
        Value::String(s) => FieldValue::Str(Cow::Owned(s.clone())),
        Value::Array(_) => FieldValue::Array,
        Value::Object(_) => FieldValue::Object,
    }
}
