//! CloudWatch Logs filter patterns, plus structured predicates.
//!
//! [`Filter`] implements the filter-pattern language of CloudWatch Logs
//! metric filters, subscription filters and `FilterLogEvents`, in all its
//! families:
//!
//! - **Terms and phrases** against the message text: `ERROR`,
//!   `ERROR ARGUMENTS` (all), `"exact phrase"`, `?ERROR ?WARN` (any),
//!   `ERROR -Exiting` (exclusion), `" "` and the empty pattern (everything).
//! - **JSON** `{ $.a.b = "x*" && ($.n > 5 || $.c NOT EXISTS) }` over the
//!   planned fields of the event (never re-parsing the text).
//! - **Space-delimited** `[ip, user, ..., status=4*, size>=1000]` over the
//!   message split on blanks, `"..."` and `[...]` being one field each.
//! - **Regex** `%...%`, standalone or as a value.
//!
//! Module layout: `lexer` scans, `parser` builds the `ast`, `eval`
//! matches, `wildcard` compiles `*` values, [`predicate`] holds the
//! structured `where:` predicates, [`testing`] builds fixture events.
//!
//! # Semantics (as documented by AWS, and argued where it is silent)
//!
//! - Terms and phrases match anywhere in the message, case-sensitively:
//!   `ERROR` matches `Exiting with ERRORCODE: -1` (AWS doc example, see
//!   `tests/filter_conformance.rs`).
//! - Mixing plain and `?` terms: AWS documents that the `?` terms are then
//!   ignored (`?ERROR ?ARGUMENTS REQUEST` matches every event containing
//!   `REQUEST`), so they are dropped at parse time; `-` terms must not match.
//! - A selector that lands on an object or an array matches no comparison
//!   (not even `!=`); it does satisfy `EXISTS` and fails `NOT EXISTS`.
//! - `!=` matches a missing field and a JSON `null` (lenient: "not equal";
//!   this is what CIS 4.2 `$.additionalEventData.MFAUsed != "Yes"` needs to
//!   flag logins with no MFA information).
//! - `<`, `<=`, `>`, `>=` need a JSON number; a numeric string never
//!   matches. In space-delimited patterns every field is text, so a field
//!   that parses as a number is compared numerically.
//! - `=` with an unquoted number compares numerically (and also matches a
//!   string holding the same number); a string, wildcard or regex value
//!   matches a JSON number through its JSON text (`$.status = 4*` matches
//!   `404`).
//! - `IS NULL` is true only for an explicit JSON `null`; an absent field is
//!   `NOT EXISTS`. `EXISTS` is accepted as the opposite of `NOT EXISTS`
//!   (an extension: AWS documents that `IS NOT` and `EXISTS` are not
//!   supported).
//! - Wildcard selectors: `[*]` selects every element of an array and `.*`
//!   every member of an object, one level (as in JSONPath); they combine
//!   with keys and indexes (`$.items[*].name`). A condition holds when it
//!   holds for one selected value, `!=` included (some value differs);
//!   `NOT EXISTS` holds when nothing is selected. AWS documents the
//!   selectors, not these edge cases.
//! - Keywords (`IS`, `NULL`, `NOT EXISTS`, ...) are accepted in any case.
//! - Regexes use the `regex` crate (linear time, no backtracking), which
//!   accepts a superset of the AWS regex subset (parentheses, which AWS
//!   rejects, are accepted); compiled size is capped. They are ASCII, as
//!   AWS's ("multi-byte characters are not supported"): `\d`, `\w`, `\s`
//!   and `\b` are the ASCII classes, and a regex runs over the text's bytes
//!   (`.` is one byte).
//! - `...` may appear any number of times in a space-delimited pattern.

mod ast;
mod eval;
mod lexer;
mod parser;
pub mod predicate;
pub mod testing;
mod wildcard;

use std::borrow::Cow;

use crate::event::EventView;
use crate::fields::{FieldPath, FieldPlan};

use ast::{JsonExpr, Pattern, ValueMatch};
pub use predicate::{is_private_ip, Predicate, PredicateSpec, Scalar};

/// A syntax error in a filter pattern, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct FilterError {
    /// Byte offset into the pattern.
    pub offset: usize,
    /// 1-based character column into the pattern.
    pub column: usize,
    pub message: String,
}

impl FilterError {
    /// An error at byte `offset` of `pattern`.
    pub(crate) fn at(pattern: &str, offset: usize, message: impl Into<String>) -> FilterError {
        let offset = offset.min(pattern.len());
        FilterError {
            offset,
            column: column_of(pattern, offset),
            message: message.into(),
        }
    }
}

/// 1-based character column of byte `offset` in `text`.
pub(crate) fn column_of(text: &str, offset: usize) -> usize {
    match text.get(..offset.min(text.len())) {
        Some(prefix) => prefix.chars().count() + 1,
        None => offset + 1,
    }
}

/// Which family a pattern belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterFamily {
    /// Empty pattern or `" "`: matches every event.
    All,
    /// Terms, phrases and standalone regexes over the message text.
    Terms,
    /// `{ ... }` over planned JSON fields.
    Json,
    /// `[ ... ]` over the blank-separated message fields.
    SpaceDelimited,
}

/// A compiled CloudWatch Logs filter pattern.
#[derive(Debug, Clone)]
pub struct Filter {
    pattern: String,
    compiled: Pattern,
}

impl Filter {
    /// Parses a pattern in CloudWatch Logs filter-pattern syntax.
    pub fn parse(pattern: &str) -> Result<Filter, FilterError> {
        Ok(Filter {
            pattern: pattern.to_string(),
            compiled: parser::parse(pattern)?,
        })
    }

    /// Registers the fields the pattern reads in `plan` and resolves slots.
    /// JSON conditions of an unbound filter read every field as missing.
    pub fn bind(&mut self, plan: &mut FieldPlan) {
        fn walk(expr: &mut JsonExpr, plan: &mut FieldPlan) {
            match expr {
                JsonExpr::And(items) | JsonExpr::Or(items) => {
                    items.iter_mut().for_each(|e| walk(e, plan));
                }
                JsonExpr::Cond(cond) => cond.slot = Some(plan.slot_for(&cond.path)),
            }
        }
        if let Pattern::Json(expr) = &mut self.compiled {
            walk(expr, plan);
        }
    }

    /// Whether `event` matches.
    pub fn matches<'a>(&self, event: &impl EventView<'a>) -> bool {
        self.compiled.matches(event)
    }

    /// The pattern text, verbatim.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Which family the pattern belongs to (a decoder or rule loader can use
    /// it to check that a rule fits its input kind).
    pub fn family(&self) -> FilterFamily {
        match &self.compiled {
            Pattern::All => FilterFamily::All,
            Pattern::Terms(_) => FilterFamily::Terms,
            Pattern::Json(_) => FilterFamily::Json,
            Pattern::Delimited(_) => FilterFamily::SpaceDelimited,
        }
    }

    /// The JSON selectors the pattern reads, in order of appearance
    /// (duplicates included). Empty for non-JSON patterns.
    pub fn selectors(&self) -> Vec<&FieldPath> {
        fn walk<'f>(expr: &'f JsonExpr, out: &mut Vec<&'f FieldPath>) {
            match expr {
                JsonExpr::And(items) | JsonExpr::Or(items) => {
                    items.iter().for_each(|e| walk(e, out))
                }
                JsonExpr::Cond(cond) => out.push(&cond.path),
            }
        }
        let mut out = Vec::new();
        if let Pattern::Json(expr) = &self.compiled {
            walk(expr, &mut out);
        }
        out
    }

    /// The literal that token `index` of a line split into `count` tokens
    /// must equal for the pattern to match: `Some` for a space-delimited
    /// pattern of one group of exactly `count` fields (no `...`) with an
    /// exact `=` test at `index`, `None` otherwise. Only a line tokenized
    /// on spaces alone into `count` tokens is covered (a quote or bracket
    /// groups tokens otherwise). Lets flow rules written as patterns be
    /// dispatched by their `action` column.
    pub fn required_token(&self, index: usize, count: usize) -> Option<&str> {
        let Pattern::Delimited(delimited) = &self.compiled else {
            return None;
        };
        let ([group], [tests]) = (&delimited.groups[..], &delimited.tested[..]) else {
            return None;
        };
        if group.len() != count {
            return None;
        }
        let (_, literal) = tests.exact.iter().find(|(i, _)| *i == index)?;
        std::str::from_utf8(literal).ok()
    }

    /// The exact string values field `slot` must hold for the pattern to
    /// match *when that field is a string*: `Some(values)` when every way
    /// to satisfy the pattern includes an exact (wildcard-free) `=` test of
    /// `slot` against one of `values`; `None` when the pattern may match
    /// other strings too. A non-string value of the field (a number or a
    /// boolean can equal a literal through its JSON text) is not covered:
    /// callers must evaluate the pattern for those. Used to dispatch rules
    /// by `eventName` instead of testing every rule.
    pub fn required_strings(&self, slot: crate::fields::Slot) -> Option<Vec<&str>> {
        let exact = |m: &ValueMatch| matches!(m, ValueMatch::Text(wildcard::Wildcard::Exact(_)));
        self.required_matches(slot, &exact)?
            .into_iter()
            .map(|m| match m {
                ValueMatch::Text(wildcard::Wildcard::Exact(text)) => Some(&**text),
                _ => None,
            })
            .collect()
    }

    /// The `=` tests of field `slot` of which one must hold for the pattern
    /// to match: `Some(values)` when every way to satisfy the pattern
    /// includes an `=` test (exact, wildcard, regex or number) of `slot`
    /// against one of `values`; `None` when the pattern may match without
    /// one. Unlike [`Self::required_strings`] this covers every field value:
    /// when no [`RequiredValue::matches`] the value, the pattern does not
    /// match, whatever the other fields hold. Used by the
    /// [rule gate](crate::rules::gate).
    pub fn required_values(&self, slot: crate::fields::Slot) -> Option<Vec<RequiredValue>> {
        let matches = self.required_matches(slot, &|_| true)?;
        Some(matches.into_iter().cloned().map(RequiredValue).collect())
    }

    /// The `=` tests of `slot` that the pattern requires, counting only the
    /// tests `counted` accepts (an `&&` picks its smallest counted set).
    fn required_matches(
        &self,
        slot: crate::fields::Slot,
        counted: &dyn Fn(&ValueMatch) -> bool,
    ) -> Option<Vec<&ValueMatch>> {
        fn walk<'e>(
            expr: &'e JsonExpr,
            slot: crate::fields::Slot,
            counted: &dyn Fn(&ValueMatch) -> bool,
        ) -> Option<Vec<&'e ValueMatch>> {
            match expr {
                JsonExpr::Cond(cond) => match (&cond.slot, &cond.test) {
                    (Some(s), ast::JsonTest::Eq(value)) if *s == slot && counted(value) => {
                        Some(vec![value])
                    }
                    _ => None,
                },
                // Every item must hold: any constrained item constrains the
                // whole; take the smallest set.
                JsonExpr::And(items) => items
                    .iter()
                    .filter_map(|e| walk(e, slot, counted))
                    .min_by_key(Vec::len),
                // Any item may hold: constrained only if every item is.
                JsonExpr::Or(items) => {
                    let mut all = Vec::new();
                    for item in items {
                        all.extend(walk(item, slot, counted)?);
                    }
                    Some(all)
                }
            }
        }
        match &self.compiled {
            Pattern::Json(expr) => walk(expr, slot, counted),
            _ => None,
        }
    }

    /// The field names of a space-delimited pattern, in order (`...`
    /// omitted). Empty for other families.
    pub fn field_names(&self) -> Vec<&str> {
        match &self.compiled {
            Pattern::Delimited(d) => d.names().collect(),
            _ => Vec::new(),
        }
    }

    /// For a space-delimited pattern, the text of the field called `name`
    /// (a leading `$` is accepted, as in metric values `$size`) when `event`
    /// matches the pattern. `None` when the event does not match, the name
    /// is unknown, or the pattern is of another family.
    pub fn named_field<'e, 'a>(
        &self,
        event: &'e impl EventView<'a>,
        name: &str,
    ) -> Option<Cow<'e, str>> {
        let Pattern::Delimited(d) = &self.compiled else {
            return None;
        };
        let name = name.strip_prefix('$').unwrap_or(name);
        let (group, index) = d.position_of(name)?;
        eval::with_spans(event, |text, spans| {
            let starts = d.locate(text, spans)?;
            let (s, e) = *spans.get(starts.get(group)? + index)?;
            text.get(s..e).map(Cow::Borrowed)
        })
    }
}

/// One `=` test a field must pass for a pattern to hold (see
/// [`Filter::required_values`]).
#[derive(Clone, Debug)]
pub struct RequiredValue(ValueMatch);

impl RequiredValue {
    /// Whether `value` passes the test, exactly as the pattern's `=`
    /// condition evaluates it.
    pub fn matches(&self, value: &crate::event::FieldValue<'_>) -> bool {
        // As `JsonTest::matches` evaluates `Eq`: a wildcard selector's
        // values pass when one of them does.
        match value {
            crate::event::FieldValue::Many(values) => {
                values.iter().any(|v| self.0.matches_field(v))
            }
            _ => self.0.matches_field(value),
        }
    }

    /// The literal, when the test is an exact (wildcard-free) text match:
    /// then a string value passes exactly when it equals the literal.
    pub fn exact_text(&self) -> Option<&str> {
        match &self.0 {
            ValueMatch::Text(wildcard::Wildcard::Exact(text)) => Some(text),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::testing::{event_from_json, event_from_text};
    use super::*;
    use crate::event::EventKind;

    fn json_match(pattern: &str, value: serde_json::Value) -> bool {
        let mut filter = Filter::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let mut plan = FieldPlan::new(EventKind::CloudTrail);
        filter.bind(&mut plan);
        filter.matches(&event_from_json(&value, &plan, EventKind::CloudTrail))
    }

    fn text_match(pattern: &str, text: &str) -> bool {
        let filter = Filter::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        filter.matches(&event_from_text(text, EventKind::HostLog))
    }

    fn err(pattern: &str) -> FilterError {
        match Filter::parse(pattern) {
            Ok(_) => panic!("{pattern:?} should not parse"),
            Err(e) => e,
        }
    }

    #[test]
    fn terms_phrases_and_exclusions() {
        assert!(text_match("", "anything"));
        assert!(text_match("\" \"", "anything"));
        assert!(text_match("ERROR", "[ERROR 400] BAD REQUEST"));
        // Terms are substrings (AWS: `ERROR` matches `ERRORCODE`).
        assert!(text_match("ERROR", "[INFO] ERRORS none"));
        assert!(!text_match("ERROR", "[INFO] errors none"));
        // `?` terms are ignored next to a plain term.
        assert!(text_match("?ERROR ?WARN REQUEST", "[INFO] REQUEST FAILED"));
        assert!(!text_match(
            "?ERROR ?WARN -REQUEST",
            "[INFO] REQUEST FAILED"
        ));
        assert!(text_match(
            "ERROR ARGUMENTS",
            "[ERROR 419] MISSING ARGUMENTS"
        ));
        assert!(!text_match("ERROR ARGUMENTS", "[ERROR 400] BAD REQUEST"));
        assert!(text_match("?ERROR ?WARN", "WARN disk"));
        assert!(!text_match("?ERROR ?WARN", "INFO disk"));
        assert!(text_match("ERROR -Exiting", "ERROR bad"));
        assert!(!text_match("ERROR -Exiting", "ERROR Exiting now"));
        assert!(text_match(
            "\"INTERNAL SERVER ERROR\"",
            "[ERROR 500] INTERNAL SERVER ERROR"
        ));
        assert!(!text_match("-\"SERVER ERROR\"", "INTERNAL SERVER ERROR"));
        assert!(text_match("%AUTH[A-Z]+%", "UNAUTHORIZED"));
        assert!(text_match(
            "\"user@example.com\"",
            "login user@example.com ok"
        ));
    }

    #[test]
    fn json_semantics() {
        let v = json!({"a": {"b": "x"}, "n": 7, "s": "7", "arr": [1, 2], "nul": null, "t": true});
        assert!(json_match("{ $.a.b = x }", v.clone()));
        assert!(!json_match("{ $.a = x }", v.clone()));
        assert!(
            !json_match("{ $.a != x }", v.clone()),
            "object matches no comparison"
        );
        assert!(!json_match("{ $.arr = 1 }", v.clone()));
        assert!(json_match("{ $.arr[1] = 2 }", v.clone()));
        assert!(json_match("{ $.missing != x }", v.clone()));
        assert!(json_match("{ $.n > 5 }", v.clone()));
        assert!(
            !json_match("{ $.s > 5 }", v.clone()),
            "numeric comparison on a string"
        );
        assert!(json_match("{ $.nul IS NULL }", v.clone()));
        assert!(!json_match("{ $.missing IS NULL }", v.clone()));
        assert!(json_match("{ $.missing NOT EXISTS }", v.clone()));
        assert!(!json_match("{ $.nul NOT EXISTS }", v.clone()));
        assert!(json_match("{ $.t IS TRUE }", v.clone()));
        assert!(json_match("{ $.a EXISTS }", v.clone()));
        assert!(json_match("{ $.n = 7* }", v.clone()));
        assert!(json_match("{ $.a.b = %^x$% }", v.clone()));
        assert!(json_match(
            "{ $.n = 5 || $.n = 7 && $.t IS TRUE }",
            v.clone()
        ));
        assert!(!json_match("{ ($.n = 5 || $.n = 7) && $.t IS FALSE }", v));
    }

    #[test]
    fn required_token_of_one_group_patterns() {
        let token = |pattern: &str, index, count| {
            Filter::parse(pattern)
                .unwrap()
                .required_token(index, count)
                .map(str::to_string)
        };
        let ssh = "[v, a, e, s, d, sp, dp=\"22\", p=6, pk, b, st, en, action=\"REJECT\", ls]";
        assert_eq!(token(ssh, 12, 14).as_deref(), Some("REJECT"));
        assert_eq!(token(ssh, 6, 14).as_deref(), Some("22"));
        // Another count, an untested field, a test that is not `=`, `...`.
        assert_eq!(token(ssh, 12, 15), None);
        assert_eq!(token(ssh, 11, 14), None);
        assert_eq!(token("[a, b != x, c]", 1, 3), None);
        assert_eq!(token("[a, b = x*, c]", 1, 3), None);
        assert_eq!(token("[a, b = x, ...]", 1, 2), None);
        assert_eq!(token("{ $.a = x }", 0, 1), None);
    }

    #[test]
    fn required_strings_follow_and_or() {
        let bound = |pattern: &str| {
            let mut filter = Filter::parse(pattern).unwrap();
            let mut plan = FieldPlan::new(EventKind::CloudTrail);
            let slot = plan.slot_for(&FieldPath::parse("eventName").unwrap());
            filter.bind(&mut plan);
            (filter, slot)
        };
        let (f, slot) = bound("{ ($.eventName = A) || ($.eventName = \"B\") }");
        assert_eq!(f.required_strings(slot), Some(vec!["A", "B"]));
        let (f, slot) = bound("{ $.eventSource = s && ($.eventName = A || $.eventName = B) }");
        assert_eq!(f.required_strings(slot), Some(vec!["A", "B"]));
        let (f, slot) = bound("{ $.eventName = A || $.x = 1 }");
        assert_eq!(f.required_strings(slot), None);
        let (f, slot) = bound("{ $.eventName = A* }");
        assert_eq!(f.required_strings(slot), None);
        let (f, slot) = bound("{ $.eventName != A }");
        assert_eq!(f.required_strings(slot), None);
        let (f, slot) = bound("{ $.eventName = 5 }");
        assert_eq!(f.required_strings(slot), None);
        // A wildcard test beside an exact one leaves the exact one to count.
        let (f, slot) = bound("{ $.eventName = A* && $.eventName = B }");
        assert_eq!(f.required_strings(slot), Some(vec!["B"]));
        assert_eq!(f.required_values(slot).map(|v| v.len()), Some(1));
        assert_eq!(Filter::parse("ERROR").unwrap().required_strings(0), None);
    }

    #[test]
    fn unbound_json_reads_missing() {
        let filter = Filter::parse("{ $.a NOT EXISTS }").unwrap();
        assert!(filter.matches(&event_from_text("{\"a\":1}", EventKind::CloudTrail)));
    }

    #[test]
    fn space_delimited_and_named_fields() {
        let line = r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 404 1534"#;
        let pattern = "[ip, user, username, timestamp, request = \"*gif*\", status_code = 4*, bytes >= 1000 && bytes <= 2000]";
        assert!(text_match(pattern, line));
        // One group whose conditions are not exact texts: each must hold.
        for failing in [
            "request = \"*png*\", status_code = 4*, bytes >= 1000",
            "request = \"*gif*\", status_code = 5*, bytes >= 1000",
            "request = \"*gif*\", status_code = 4*, bytes > 2000",
        ] {
            let pattern = format!("[ip, user, username, timestamp, {failing}]");
            assert!(!text_match(&pattern, line), "{pattern}");
        }
        assert!(text_match("[ip, ..., status_code = 404, bytes]", line));
        assert!(text_match(
            "[..., status_code = 404 || status_code = 410, bytes]",
            line
        ));
        assert!(!text_match("[ip, user]", line));
        assert!(text_match("[ip, ..., username=frank, ..., bytes]", line));
        assert!(!text_match("[ip, ..., username=bob, ..., bytes]", line));
        let filter = Filter::parse("[ip, ..., status, size]").unwrap();
        let event = event_from_text(line, EventKind::HostLog);
        assert_eq!(filter.named_field(&event, "$size").as_deref(), Some("1534"));
        assert_eq!(
            filter.named_field(&event, "ip").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(filter.named_field(&event, "nope"), None);
        assert_eq!(filter.field_names(), vec!["ip", "status", "size"]);
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let e = err("{ ($.a = 1 }");
        assert_eq!(e.message, "expected ')' to close '(' opened at column 3");
        assert_eq!((e.offset, e.column), (11, 12));
        let e = err("{ $.a == 1 }");
        assert!(e.message.contains("unknown operator '=='"), "{e}");
        assert_eq!(e.column, 7);
        let e = err("{ $.a = \"abc }");
        assert_eq!((e.message.as_str(), e.column), ("unterminated string", 9));
        let e = err("{ $.a > abc }");
        assert!(e.message.contains("expected a number"), "{e}");
        let e = err("{ $.a = 1 & $.b = 2 }");
        assert!(e.message.contains("'&'"), "{e}");
        let e = err("[a, b=1 && c=2]");
        assert!(e.message.contains("named 'b'"), "{e}");
        let e = err("{ $.é = \"x }");
        assert_eq!((e.offset, e.column), (9, 9), "columns count characters");
        let e = err("{ $.a = 1 } x");
        assert!(e.message.contains("after the closing"), "{e}");
        let e = err("%abc");
        assert!(e.message.contains("unterminated regex"), "{e}");
        let e = err("%a(%");
        assert!(e.message.contains("invalid regex"), "{e}");
        let e = err("{ $.a IS MAYBE }");
        assert!(e.message.contains("NULL, TRUE or FALSE"), "{e}");
        let e = err("[a, b");
        assert!(e.message.contains("close '['"), "{e}");
        let e = err("{}");
        assert!(e.message.contains("empty JSON pattern"), "{e}");
        let e = err("ERROR ?");
        assert_eq!(e.column, 8);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{ {}$.a = 1{} }}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).message.contains("nested too deeply"));
        let deep = format!("[{}a = 1{}]", "(".repeat(10_000), ")".repeat(10_000));
        assert!(err(&deep).message.contains("nested too deeply"));
        let ok = format!("{{ {}$.a = 1{} }}", "(".repeat(60), ")".repeat(60));
        assert!(Filter::parse(&ok).is_ok());
    }

    #[test]
    fn regex_is_linear_time() {
        // `(a+)+$` is catastrophic for backtracking engines; the regex crate
        // runs it in linear time, so this returns promptly.
        let text = format!("{}!", "a".repeat(100_000));
        assert!(!text_match("%^(a+)+$%", &text));
        assert!(text_match("%(a+)+!$%", &text));
        // Hostile size: a huge counted repetition exceeds the size cap.
        let e = err("%(((a{100}){100}){100})%");
        assert!(e.message.contains("regex"), "{e}");
    }

    proptest! {
        #[test]
        fn parse_never_panics(pattern in "\\PC{0,64}") {
            let _ = Filter::parse(&pattern);
        }

        #[test]
        fn parse_never_panics_on_syntax_soup(pattern in "[{}\\[\\]()$.=!<>&|\"%*?, a-c0-9\\-]{0,48}") {
            if let Ok(mut filter) = Filter::parse(&pattern) {
                let mut plan = FieldPlan::new(EventKind::CloudTrail);
                filter.bind(&mut plan);
                let event = event_from_json(&json!({"a": [1, "x"], "b": {"c": null}}), &plan, EventKind::CloudTrail);
                let _ = filter.matches(&event);
            }
        }

        #[test]
        fn matches_never_panics(text in "\\PC{0,128}") {
            for pattern in ["ERROR -x", "?é ?\"a b\"", "%a+%", "[a, ..., b>3, c=*x*]", "[a=\"q\", b]", "{ $.a = 1 }"] {
                let filter = Filter::parse(pattern).unwrap();
                let event = event_from_text(&text, EventKind::HostLog);
                let _ = filter.matches(&event);
                let _ = filter.named_field(&event, "b");
            }
        }
    }
}
