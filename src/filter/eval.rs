//! Matching compiled patterns against events. Nothing here allocates in the
//! common cases: terms use precompiled substring finders, JSON conditions
//! read planned field slots, and space-delimited fields are split into an
//! inline vector of spans over the event text (eight bytes at a time when
//! the text has no quotes, brackets, tabs or line breaks).

use std::io::Write;

use smallvec::SmallVec;

use super::ast::{
    DelimField, Delimited, FieldExpr, FieldTest, JsonExpr, JsonTest, Pattern, Term, Terms,
    ValueMatch,
};
use super::lexer::{parse_number, Op};
use crate::event::{format_number, EventView, FieldValue};

/// Token spans of a space-delimited line; inline for typical lines.
pub(crate) type Spans = SmallVec<[(usize, usize); 32]>;

impl Pattern {
    pub(crate) fn matches<'a>(&self, event: &impl EventView<'a>) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms(terms) => terms.matches(event.text()),
            Pattern::Json(expr) => expr.matches(event),
            Pattern::Delimited(delimited) => {
                let text = event.text();
                if let Some(required) = &delimited.required {
                    if !required.is_in(text.as_bytes()) {
                        return false;
                    }
                }
                with_spans(event, |text, spans| delimited.locate(text, spans).is_some())
            }
        }
    }
}

impl Terms {
    fn matches(&self, text: &str) -> bool {
        self.required.iter().all(|t| t.matches(text))
            && (self.optional.is_empty() || self.optional.iter().any(|t| t.matches(text)))
            && !self.excluded.iter().any(|t| t.matches(text))
    }
}

impl Term {
    /// Words and phrases match anywhere in the text, case-sensitively:
    /// `ERROR` matches `Exiting with ERRORCODE: -1` and `Exception` matches
    /// `IllegalArgumentException`, as the AWS documentation's examples show.
    fn matches(&self, text: &str) -> bool {
        match self {
            Term::All => true,
            Term::Regex(re) => re.is_match(text),
            Term::Word { finder } => finder.find(text.as_bytes()).is_some(),
        }
    }
}

impl JsonExpr {
    fn matches<'a>(&self, event: &impl EventView<'a>) -> bool {
        match self {
            JsonExpr::And(items) => items.iter().all(|e| e.matches(event)),
            JsonExpr::Or(items) => items.iter().any(|e| e.matches(event)),
            JsonExpr::Cond(cond) => match cond.slot {
                Some(slot) => cond.test.matches(&event.field(slot)),
                None => cond.test.matches(&FieldValue::Missing),
            },
        }
    }
}

impl JsonTest {
    /// Semantics (see the module docs of `filter` for the reasoning):
    /// a selector on an object or array matches no comparison; `!=` matches
    /// a missing or null field; ordering needs a JSON number.
    pub(crate) fn matches(&self, value: &FieldValue<'_>) -> bool {
        if let FieldValue::Many(values) = value {
            // A wildcard selector: the condition holds for one of the
            // selected values (`NOT EXISTS`: none was selected).
            return match self {
                JsonTest::NotExists => values.is_empty(),
                _ => values.iter().any(|v| self.matches(v)),
            };
        }
        match self {
            JsonTest::Eq(m) => m.matches_field(value),
            JsonTest::Ne(m) => match value {
                FieldValue::Missing | FieldValue::Null => true,
                FieldValue::Object | FieldValue::Array | FieldValue::Many(_) => false,
                _ => !m.matches_field(value),
            },
            JsonTest::Cmp(op, n) => match value {
                FieldValue::Number(x) => compare(*op, *x, *n),
                _ => false,
            },
            JsonTest::IsNull => matches!(value, FieldValue::Null),
            JsonTest::IsTrue => matches!(value, FieldValue::Bool(true)),
            JsonTest::IsFalse => matches!(value, FieldValue::Bool(false)),
            JsonTest::Exists => !matches!(value, FieldValue::Missing),
            JsonTest::NotExists => matches!(value, FieldValue::Missing),
        }
    }
}

impl ValueMatch {
    /// Whether a text value equals (matches) this value.
    pub(crate) fn matches_text(&self, text: &str) -> bool {
        match self {
            ValueMatch::Number { value, text: lit } => {
                text == &**lit || parse_number(text.trim()) == Some(*value)
            }
            ValueMatch::Text(w) => w.matches(text),
            ValueMatch::Regex(re) => re.is_match(text),
        }
    }

    /// Whether a JSON field value equals (matches) this value. Numbers are
    /// compared numerically with number literals and by their JSON text
    /// (`404`) with strings, wildcards (`4*`) and regexes.
    pub(crate) fn matches_field(&self, value: &FieldValue<'_>) -> bool {
        match value {
            FieldValue::Str(s) => self.matches_text(s),
            FieldValue::Number(n) => match self {
                ValueMatch::Number { value, .. } => n == value,
                _ => with_number_text(*n, |t| self.matches_text(t)),
            },
            FieldValue::Bool(b) => match self {
                ValueMatch::Number { .. } => false,
                _ => self.matches_text(if *b { "true" } else { "false" }),
            },
            FieldValue::Missing
            | FieldValue::Null
            | FieldValue::Object
            | FieldValue::Array
            | FieldValue::Many(_) => false,
        }
    }
}

/// Calls `f` with `n` rendered as in JSON input, without allocating for
/// ordinary numbers.
fn with_number_text<R>(n: f64, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    let written = if n.fract() == 0.0 && n.abs() < 1e15 {
        write!(cursor, "{}", n as i64)
    } else {
        write!(cursor, "{n}")
    };
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    match (written, std::str::from_utf8(&buf[..len.min(buf.len())])) {
        (Ok(()), Ok(text)) => f(text),
        _ => f(&format_number(n)),
    }
}

pub(crate) fn compare(op: Op, left: f64, right: f64) -> bool {
    match op {
        Op::Eq => left == right,
        Op::Ne => left != right,
        Op::Lt => left < right,
        Op::Le => left <= right,
        Op::Gt => left > right,
        Op::Ge => left >= right,
    }
}

/// Calls `f` with the event's text and its space-delimited fields: the
/// decoder's split when it made one that agrees (a flow line), else the
/// text tokenized here.
pub(crate) fn with_spans<'e, 'a, R>(
    event: &'e impl EventView<'a>,
    f: impl FnOnce(&'e str, &[(usize, usize)]) -> R,
) -> R {
    let text = event.text();
    if let Some(spans) = event.delimited_spans() {
        return f(text, spans);
    }
    let mut spans = Spans::new();
    tokenize(text, &mut spans);
    f(text, &spans)
}

/// Splits a line into space-delimited fields: runs of non-blank
/// characters, with `"..."` and `[...]` each taken as one field (without
/// their delimiters). An unterminated quote or bracket runs to the end.
pub(crate) fn tokenize(text: &str, out: &mut Spans) {
    let bytes = text.as_bytes();
    // Without quotes, brackets, tabs or line breaks (flow records), the
    // fields are the runs of non-space bytes: found eight bytes at a time.
    if memchr::memchr2(b'"', b'[', bytes).is_none()
        && memchr::memchr3(b'\t', b'\n', b'\r', bytes).is_none()
    {
        crate::decode::flow::split_on_spaces(bytes, |start, end| out.push((start, end)));
        return;
    }
    tokenize_general(text, out);
}

/// [`tokenize`] for any text, a byte at a time.
fn tokenize_general(text: &str, out: &mut Spans) {
    let bytes = text.as_bytes();
    let is_blank = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_blank(b) {
            i += 1;
            continue;
        }
        let close = match b {
            b'"' => Some(b'"'),
            b'[' => Some(b']'),
            _ => None,
        };
        match close {
            Some(close) => {
                let start = i + 1;
                let end = memchr::memchr(close, &bytes[start..]).map_or(bytes.len(), |k| start + k);
                out.push((start, end));
                i = end + 1;
            }
            None => {
                let start = i;
                while i < bytes.len() && !is_blank(bytes[i]) {
                    i += 1;
                }
                out.push((start, i));
            }
        }
    }
}

impl Delimited {
    /// Places the field groups on the tokens. The first group is anchored
    /// at the start and the last at the end; each middle group (between
    /// `...`s) takes its leftmost fit, which is optimal because groups have
    /// fixed length. Returns each group's first token index.
    pub(crate) fn locate(
        &self,
        text: &str,
        spans: &[(usize, usize)],
    ) -> Option<SmallVec<[usize; 8]>> {
        let n = spans.len();
        let mut starts = SmallVec::new();
        let (first, last) = match self.groups.as_slice() {
            [] => return (n == 0).then_some(starts),
            [only] => {
                if only.len() != n || !group_matches(only, text, spans, 0) {
                    return None;
                }
                starts.push(0);
                return Some(starts);
            }
            [first, .., last] => (first, last),
        };
        if first.len() + last.len() > n {
            return None;
        }
        let last_start = n - last.len();
        if !group_matches(first, text, spans, 0) || !group_matches(last, text, spans, last_start) {
            return None;
        }
        starts.push(0);
        let mut pos = first.len();
        for group in &self.groups[1..self.groups.len() - 1] {
            let mut at = pos;
            loop {
                if at + group.len() > last_start {
                    return None;
                }
                if group_matches(group, text, spans, at) {
                    break;
                }
                at += 1;
            }
            starts.push(at);
            pos = at + group.len();
        }
        starts.push(last_start);
        Some(starts)
    }

    /// Where the first field called `name` sits: (group, index in group).
    pub(crate) fn position_of(&self, name: &str) -> Option<(usize, usize)> {
        self.groups
            .iter()
            .enumerate()
            .find_map(|(g, fields)| fields.iter().position(|f| &*f.name == name).map(|i| (g, i)))
    }

    /// All field names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().flatten().map(|f| &*f.name)
    }
}

fn group_matches(group: &[DelimField], text: &str, spans: &[(usize, usize)], at: usize) -> bool {
    group
        .iter()
        .enumerate()
        .all(|(i, field)| match (&field.cond, spans.get(at + i)) {
            (None, Some(_)) => true,
            (Some(cond), Some(&(s, e))) => cond.matches(text.get(s..e).unwrap_or("")),
            (_, None) => false,
        })
}

impl FieldExpr {
    fn matches(&self, token: &str) -> bool {
        match self {
            FieldExpr::And(items) => items.iter().all(|e| e.matches(token)),
            FieldExpr::Or(items) => items.iter().any(|e| e.matches(token)),
            FieldExpr::Test(FieldTest::Eq(m)) => m.matches_text(token),
            FieldExpr::Test(FieldTest::Ne(m)) => !m.matches_text(token),
            FieldExpr::Test(FieldTest::Cmp(op, n)) => {
                parse_number(token.trim()).is_some_and(|x| compare(*op, x, *n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn fast_tokenize_agrees_with_the_general_one(text in "[ a-c0-9\"\\[\\]\t\r\n-]{0,60}") {
            let mut fast = Spans::new();
            tokenize(&text, &mut fast);
            let mut general = Spans::new();
            tokenize_general(&text, &mut general);
            proptest::prop_assert_eq!(fast, general);
        }

        #[test]
        fn required_literal_agrees_with_a_substring_search(
            needle in "[a-cJ ]{1,6}",
            haystack in "[a-cJ ]{0,40}",
            repeat in 1usize..40,
        ) {
            let literal = super::super::ast::RequiredLiteral::new(needle.as_bytes());
            proptest::prop_assert_eq!(literal.is_in(haystack.as_bytes()), haystack.contains(&needle));
            // Long text takes the searcher.
            let long = haystack.repeat(repeat * 20);
            proptest::prop_assert_eq!(literal.is_in(long.as_bytes()), long.contains(&needle));
        }
    }
}
