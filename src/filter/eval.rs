//! Matching compiled patterns against events. Nothing here allocates in the
//! common cases: terms use precompiled substring finders, JSON conditions
//! read planned field slots, and space-delimited fields are split into an
//! inline vector of spans over the event text (sixteen bytes at a time when
//! the text has no quotes, brackets, tabs or line breaks), or taken from
//! the flow decoder's own split when the event offers it. A delimited
//! pattern visits only its fields that have a condition.

use std::io::Write;

use smallvec::SmallVec;

use super::ast::{
    DelimField, Delimited, FieldExpr, FieldTest, GroupTests, JsonExpr, JsonTest, Pattern, Term,
    Terms, ValueMatch,
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
                // The decoder's split, when it agrees, is read at once: the
                // pattern's own tests on it cost less than the search for
                // its required literal.
                if let Some(spans) = event.delimited_spans() {
                    return delimited.matches_spans(text, spans);
                }
                if let Some(required) = &delimited.required {
                    if !required.is_in(text.as_bytes()) {
                        return false;
                    }
                }
                let mut spans = Spans::new();
                tokenize(text, &mut spans);
                delimited.matches_spans(text, &spans)
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
            Term::Regex(re) => re.is_match(text.as_bytes()),
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
            ValueMatch::Regex(re) => re.is_match(text.as_bytes()),
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
    // fields are the runs of non-space bytes: found sixteen bytes at a time.
    if crate::decode::flow::spaces_alone_delimit(bytes) {
        crate::decode::flow::split_on_spaces(bytes, |_, start, end| out.push((start, end)));
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
        let mut starts = SmallVec::new();
        self.fits(text, spans, |start| starts.push(start))
            .then_some(starts)
    }

    /// Whether the pattern matches the tokens ([`Delimited::locate`]
    /// without keeping where).
    #[inline]
    pub(crate) fn matches_spans(&self, text: &str, spans: &[(usize, usize)]) -> bool {
        // One group (no `...`), as flow patterns are: it covers every token
        // and is tested in place, without the general placement's frame.
        if let ([group], [tests]) = (&self.groups[..], &self.tested[..]) {
            return group.len() == spans.len() && tests.hold(group, text, spans, 0);
        }
        self.fits(text, spans, |_| {})
    }

    /// [`Delimited::locate`], telling `start` each group's first token.
    #[inline]
    fn fits(&self, text: &str, spans: &[(usize, usize)], mut start: impl FnMut(usize)) -> bool {
        let n = spans.len();
        let group = |g: usize, at: usize| {
            let fields = &self.groups[g];
            at + fields.len() <= n && self.tested_fields_hold(g, text, spans, at)
        };
        let groups = self.groups.len();
        match groups {
            0 => return n == 0,
            1 => {
                if self.groups[0].len() != n || !group(0, 0) {
                    return false;
                }
                start(0);
                return true;
            }
            _ => {}
        }
        let (first, last) = (self.groups[0].len(), self.groups[groups - 1].len());
        if first + last > n {
            return false;
        }
        let last_start = n - last;
        if !group(0, 0) || !group(groups - 1, last_start) {
            return false;
        }
        start(0);
        let mut pos = first;
        for g in 1..groups - 1 {
            let len = self.groups[g].len();
            let mut at = pos;
            loop {
                if at + len > last_start {
                    return false;
                }
                if group(g, at) {
                    break;
                }
                at += 1;
            }
            start(at);
            pos = at + len;
        }
        start(last_start);
        true
    }

    /// Whether the conditions of group `g` hold on the tokens from `at`
    /// (which the caller has checked are there).
    #[inline]
    fn tested_fields_hold(
        &self,
        g: usize,
        text: &str,
        spans: &[(usize, usize)],
        at: usize,
    ) -> bool {
        match (self.tested.get(g), self.groups.get(g)) {
            (Some(tests), Some(group)) => tests.hold(group, text, spans, at),
            _ => false,
        }
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

impl GroupTests {
    /// Whether the tests of `group` hold on its tokens from `at`: the exact
    /// equalities here, any other condition in a call of its own.
    #[inline]
    fn hold(&self, group: &[DelimField], text: &str, spans: &[(usize, usize)], at: usize) -> bool {
        self.exact.iter().all(|(i, literal)| {
            // Compared here, not through `memcmp`: literals are short (about
            // 1M instructions per 100,000 flow records, BENCHMARKS.md).
            let token = spans
                .get(at + i)
                .and_then(|&(start, end)| text.as_bytes().get(start..end));
            token.is_some_and(|token| {
                token.len() == literal.len()
                    && token.iter().zip(literal.iter()).all(|(a, b)| a == b)
            })
        }) && (self.other.is_empty() || self.others_hold(group, text, spans, at))
    }

    #[inline(never)]
    fn others_hold(
        &self,
        group: &[DelimField],
        text: &str,
        spans: &[(usize, usize)],
        at: usize,
    ) -> bool {
        self.other.iter().all(|&i| {
            let cond = group.get(i).and_then(|field| field.cond.as_ref());
            match (cond, spans.get(at + i)) {
                (Some(cond), Some(&(start, end))) => {
                    cond.matches(text.get(start..end).unwrap_or(""))
                }
                _ => false,
            }
        })
    }
}

impl FieldExpr {
    #[inline]
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
