//! The compiled form of a filter pattern: one tree per family, with values
//! already turned into matchers (wildcards, regexes, substring finders).

use memchr::memmem::Finder;
use regex::bytes::Regex;

use super::lexer::Op;
use super::wildcard::Wildcard;
use crate::fields::{FieldPath, Slot};

/// A whole compiled pattern.
#[derive(Clone, Debug)]
pub(crate) enum Pattern {
    /// Empty pattern or `" "`: every event matches.
    All,
    /// Terms, phrases, `?` alternatives, `-` exclusions, `%regex%` terms.
    Terms(Terms),
    /// `{ ... }`
    Json(JsonExpr),
    /// `[ ... ]`
    Delimited(Delimited),
}

/// An unstructured pattern. Matches when every required term matches, at
/// least one optional (`?`) term matches if there are any, and no excluded
/// (`-`) term matches. The parser drops optional terms when there is any
/// required or excluded term, as CloudWatch ignores them then.
#[derive(Clone, Debug, Default)]
pub(crate) struct Terms {
    pub required: Vec<Term>,
    pub optional: Vec<Term>,
    pub excluded: Vec<Term>,
}

/// One term or phrase.
#[derive(Clone, Debug)]
pub(crate) enum Term {
    /// Matches every text (`" "`).
    All,
    /// A word or phrase, found anywhere in the text (see `eval`).
    Word { finder: Box<Finder<'static>> },
    /// `%regex%`, searched anywhere in the text.
    Regex(Regex),
}

/// A boolean expression over JSON conditions.
#[derive(Clone, Debug)]
pub(crate) enum JsonExpr {
    And(Vec<JsonExpr>),
    Or(Vec<JsonExpr>),
    Cond(JsonCond),
}

/// `$.selector <test>`.
#[derive(Clone, Debug)]
pub(crate) struct JsonCond {
    pub path: FieldPath,
    /// Set by `Filter::bind`; an unbound condition reads a missing field.
    pub slot: Option<Slot>,
    pub test: JsonTest,
}

/// What a JSON condition checks.
#[derive(Clone, Debug)]
pub(crate) enum JsonTest {
    Eq(ValueMatch),
    Ne(ValueMatch),
    /// `<`, `<=`, `>`, `>=` against a number.
    Cmp(Op, f64),
    IsNull,
    IsTrue,
    IsFalse,
    Exists,
    NotExists,
}

/// The right-hand side of `=` / `!=`.
#[derive(Clone, Debug)]
pub(crate) enum ValueMatch {
    /// An unquoted number: numeric equality (or the exact literal text).
    Number { value: f64, text: Box<str> },
    /// A string, possibly with `*` wildcards.
    Text(Wildcard),
    /// `%regex%`, searched anywhere in the value.
    Regex(Regex),
}

/// A space-delimited pattern: groups of positional fields separated by
/// `...` (which match any number of fields, including none).
#[derive(Clone, Debug)]
pub(crate) struct Delimited {
    /// Field groups; with `n` ellipses there are `n + 1` groups, some
    /// possibly empty.
    pub groups: Vec<Vec<DelimField>>,
    /// Per group, the fields that have a condition: the only ones a match
    /// looks at (the classic 14-field flow pattern tests three).
    pub tested: Vec<GroupTests>,
    /// The longest literal some field must equal exactly (`action="REJECT"`):
    /// a line that does not contain it cannot match, which is found
    /// without splitting the line into fields.
    pub required: Option<RequiredLiteral>,
}

/// A literal a line must contain. In a short line (a flow record) it is
/// looked for by its rarest byte: one `memchr` rejects the line when that
/// byte is absent, without a substring searcher's per-call setup. Longer
/// text goes to the `memmem` searcher, whose time stays linear however
/// often the rare byte occurs.
#[derive(Clone, Debug)]
pub(crate) struct RequiredLiteral {
    needle: Box<[u8]>,
    /// Index in `needle` of its rarest byte (memchr's frequency ranking).
    rare: usize,
    finder: Box<Finder<'static>>,
}

/// Text up to this length is searched by the literal's rarest byte.
const SHORT_TEXT: usize = 512;

impl RequiredLiteral {
    /// The literal `needle` (not empty).
    pub fn new(needle: &[u8]) -> RequiredLiteral {
        let rare = memchr::arch::all::packedpair::Pair::new(needle)
            .map_or(0, |pair| usize::from(pair.index1()));
        RequiredLiteral {
            needle: needle.into(),
            rare,
            finder: Box::new(Finder::new(needle).into_owned()),
        }
    }

    /// Whether `haystack` contains the literal.
    #[inline]
    pub fn is_in(&self, haystack: &[u8]) -> bool {
        if haystack.len() > SHORT_TEXT {
            return self.finder.find(haystack).is_some();
        }
        let Some(&rare_byte) = self.needle.get(self.rare) else {
            return true;
        };
        memchr::memchr_iter(rare_byte, haystack).any(|at| {
            at.checked_sub(self.rare)
                .and_then(|start| haystack.get(start..start + self.needle.len()))
                == Some(&self.needle[..])
        })
    }
}

impl Delimited {
    /// A pattern of `groups`, with its required literal.
    pub fn new(groups: Vec<Vec<DelimField>>) -> Delimited {
        fn exact(expr: &FieldExpr) -> Option<&str> {
            match expr {
                // Every item must hold, so each exact item is required.
                FieldExpr::And(items) => items.iter().filter_map(exact).max_by_key(|t| t.len()),
                _ => expr.exact_text(),
            }
        }
        let required = groups
            .iter()
            .flatten()
            .filter_map(|field| field.cond.as_ref().and_then(exact))
            .filter(|text| !text.is_empty())
            .max_by_key(|text| text.len())
            .map(|text| RequiredLiteral::new(text.as_bytes()));
        let tested = groups.iter().map(|group| GroupTests::of(group)).collect();
        Delimited {
            groups,
            tested,
            required,
        }
    }
}

/// The tested fields of one group of a [`Delimited`] pattern, by index in
/// the group: exact text equalities (`destport="22"`), compared in place
/// and first, then every other condition.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupTests {
    pub exact: Box<[(usize, Box<[u8]>)]>,
    pub other: Box<[usize]>,
}

impl GroupTests {
    fn of(group: &[DelimField]) -> GroupTests {
        let mut exact = Vec::new();
        let mut other = Vec::new();
        for (i, field) in group.iter().enumerate() {
            let Some(cond) = &field.cond else {
                continue;
            };
            match cond.exact_text() {
                Some(text) => exact.push((i, text.as_bytes().into())),
                None => other.push(i),
            }
        }
        GroupTests {
            exact: exact.into(),
            other: other.into(),
        }
    }
}

/// One named field, with an optional condition.
#[derive(Clone, Debug)]
pub(crate) struct DelimField {
    pub name: Box<str>,
    pub cond: Option<FieldExpr>,
}

/// A condition on one space-delimited field.
#[derive(Clone, Debug)]
pub(crate) enum FieldExpr {
    And(Vec<FieldExpr>),
    Or(Vec<FieldExpr>),
    Test(FieldTest),
}

impl FieldExpr {
    /// The text a field must equal exactly (`action="REJECT"`), when the
    /// condition is that alone.
    pub fn exact_text(&self) -> Option<&str> {
        match self {
            FieldExpr::Test(FieldTest::Eq(ValueMatch::Text(Wildcard::Exact(text)))) => Some(text),
            _ => None,
        }
    }
}

/// `name <op> value` inside a space-delimited field.
#[derive(Clone, Debug)]
pub(crate) enum FieldTest {
    Eq(ValueMatch),
    Ne(ValueMatch),
    Cmp(Op, f64),
}
