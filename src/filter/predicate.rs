//! Structured predicates: the `where:` list of a rule. They cover what the
//! CloudWatch syntax cannot express: case-insensitive equality, membership
//! lists, CIDR and private-address tests, numeric comparison, existence.
//!
//! Semantics: a missing field (and a JSON `null`, object or array) never
//! satisfies a predicate, even with `not: true`: `not` negates the
//! condition on a present scalar value. The one exception is `exists`,
//! which is about presence itself (`exists: true, not: true` is the same
//! as `exists: false`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use super::eval::compare;
use super::lexer::Op;
use crate::event::{EventView, FieldValue};
use crate::fields::{FieldPath, FieldPlan, Slot};

/// A scalar in a predicate: `REJECT`, `22`, `true`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// A structured predicate (one item of a rule's `where:` list), as written
/// in YAML. Exactly one condition key must be given besides `field` and
/// `not`; `op` and `value` go together.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredicateSpec {
    /// Field path (`userIdentity.arn`, `srcaddr`, `$.a.b[0]`).
    pub field: String,
    /// Case-sensitive equality with a string, number or boolean.
    #[serde(default)]
    pub equals: Option<Scalar>,
    /// Case-insensitive string equality.
    #[serde(default)]
    pub equals_ci: Option<String>,
    /// Membership (case-sensitive).
    #[serde(default, rename = "in")]
    pub in_list: Option<Vec<Scalar>>,
    /// Case-insensitive membership.
    #[serde(default)]
    pub in_ci: Option<Vec<String>>,
    /// IPv4/IPv6 CIDR membership (a bare address counts as one host).
    #[serde(default)]
    pub cidr: Option<Vec<String>>,
    /// `true`: an RFC 1918 or RFC 4193 (`fc00::/7`) address; `false`: a
    /// valid IP address that is not private.
    #[serde(default)]
    pub private: Option<bool>,
    /// `true`: a globally routable address ([`is_public_ip`]); `false`: a
    /// valid IP address that is not (private, the `100.64.0.0/10` shared
    /// space a VPC may use, link-local, loopback, multicast, reserved).
    #[serde(default)]
    pub public: Option<bool>,
    /// Numeric comparison operator: `=`, `!=`, `<`, `<=`, `>`, `>=`.
    #[serde(default)]
    pub op: Option<String>,
    /// Right-hand side of `op`.
    #[serde(default)]
    pub value: Option<f64>,
    /// Presence test.
    #[serde(default)]
    pub exists: Option<bool>,
    /// Negates the condition.
    #[serde(default)]
    pub not: bool,
}

/// A compiled structured predicate.
#[derive(Debug, Clone)]
pub struct Predicate {
    path: FieldPath,
    slot: Slot,
    cond: Cond,
    negate: bool,
}

#[derive(Debug, Clone)]
enum Cond {
    Equals(Expected),
    EqualsCi(Box<str>),
    In(Vec<Expected>),
    InCi(Vec<Box<str>>),
    Cidr(Vec<IpNet>),
    Private(bool),
    Public(bool),
    Cmp(Op, f64),
    Exists(bool),
}

#[derive(Debug, Clone)]
enum Expected {
    Text { text: Box<str>, number: Option<f64> },
    Number(f64),
    Bool(bool),
}

impl Expected {
    fn new(scalar: &Scalar) -> Expected {
        match scalar {
            Scalar::Bool(b) => Expected::Bool(*b),
            Scalar::Number(n) => Expected::Number(*n),
            Scalar::Text(s) => Expected::Text {
                text: s.as_str().into(),
                number: s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            },
        }
    }

    #[inline]
    fn matches(&self, value: &FieldValue<'_>) -> bool {
        match (self, value) {
            (Expected::Text { text, .. }, FieldValue::Str(s)) => s.as_ref() == &**text,
            (Expected::Text { number, .. }, FieldValue::Number(n)) => *number == Some(*n),
            (Expected::Text { text, .. }, FieldValue::Bool(b)) => &**text == bool_text(*b),
            (Expected::Number(x), FieldValue::Number(n)) => n == x,
            (Expected::Number(x), FieldValue::Str(_)) => value.as_f64() == Some(*x),
            (Expected::Bool(x), FieldValue::Bool(b)) => b == x,
            (Expected::Bool(x), FieldValue::Str(s)) => s.as_ref() == bool_text(*x),
            _ => false,
        }
    }
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// Case-insensitive equality without allocating (ASCII fast path, full
/// Unicode lowercase otherwise).
fn eq_ci(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// RFC 1918 for IPv4, RFC 4193 unique-local (`fc00::/7`) for IPv6; an
/// IPv4-mapped IPv6 address is judged as its IPv4 address.
pub fn is_private_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_private(),
            None => (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    }
}

/// Whether `ip` is globally routable: IPv4 outside private (RFC 1918),
/// shared (`100.64.0.0/10`, RFC 6598, which VPCs may use as a secondary
/// range), loopback, link-local, multicast, broadcast, `0.0.0.0/8` and
/// `240.0.0.0/4`; IPv6 in `2000::/3` (global unicast). An IPv4-mapped IPv6
/// address is judged as its IPv4 address. Documentation ranges count as
/// public (tests and examples use them so).
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => (v6.segments()[0] & 0xe000) == 0x2000,
        },
    }
}

fn is_public_v4(v4: std::net::Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)))
}

fn parse_ip(value: &FieldValue<'_>) -> Option<IpAddr> {
    match value {
        FieldValue::Str(s) => parse_ip_text(s),
        _ => None,
    }
}

/// The general address parse (a call of its own: rare on the flow path,
/// where [`private_quad`] decides plain dotted quads first).
#[inline(never)]
fn parse_ip_text(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    match parse_dotted_quad(text.as_bytes()) {
        Some(v4) => Some(IpAddr::V4(v4)),
        None => text.parse().ok(),
    }
}

/// Whether `text` is an address whose privateness is `want`. The common
/// case, a plain dotted quad, is judged without trimming or the general
/// parser ([`private_quad`]); anything else takes [`parse_ip_text`] (which
/// accepts the same dotted quads).
#[inline]
fn private_text(text: &str, want: bool) -> bool {
    private_quad(text, want)
        .unwrap_or_else(|| parse_ip_text(text).is_some_and(|ip| is_private_ip(ip) == want))
}

/// A plain dotted-quad IPv4 address (`10.0.0.1`: four decimal parts of one
/// to three digits, each at most 255, no leading zeros), parsed without the
/// general address parser; `None` for anything else, which then goes
/// through `str::parse` (so what is accepted does not change).
///
/// Each part is one slice pattern (its length and digits tested together),
/// so the text is read once with no per-byte bounds check.
#[inline]
fn parse_dotted_quad(bytes: &[u8]) -> Option<std::net::Ipv4Addr> {
    let (first, rest) = quad_part(bytes)?;
    quad_after_first(first, rest)
}

/// The address whose first part is `first`, when `rest` (what follows it)
/// is a dot and three more parts.
#[inline(always)]
fn quad_after_first(first: u8, rest: &[u8]) -> Option<std::net::Ipv4Addr> {
    let (second, rest) = quad_part(rest.strip_prefix(b".")?)?;
    let (third, rest) = quad_part(rest.strip_prefix(b".")?)?;
    let (fourth, rest) = quad_part(rest.strip_prefix(b".")?)?;
    rest.is_empty()
        .then(|| std::net::Ipv4Addr::new(first, second, third, fourth))
}

/// The decimal part at the start of `bytes` (one to three digits, no
/// leading zero, at most 255) and the bytes after it. A part followed by
/// more digits is returned too; the caller's dot test then rejects it.
#[inline(always)]
fn quad_part(bytes: &[u8]) -> Option<(u8, &[u8])> {
    let value = |b: u8| u16::from(b - b'0');
    let (part, rest) = match bytes {
        [a @ b'1'..=b'9', b @ b'0'..=b'9', c @ b'0'..=b'9', rest @ ..] => {
            (value(*a) * 100 + value(*b) * 10 + value(*c), rest)
        }
        [a @ b'1'..=b'9', b @ b'0'..=b'9', rest @ ..] => (value(*a) * 10 + value(*b), rest),
        [a @ b'0'..=b'9', rest @ ..] => (value(*a), rest),
        _ => return None,
    };
    Some((u8::try_from(part).ok()?, rest))
}

/// `private: want` judged on a plain dotted quad; `None` for any other
/// text, which takes the general parser.
///
/// The first part often decides. A text that starts with a plain decimal
/// part and a dot is either an IPv4 address with that first part or no
/// address at all (an IPv6 address has a `:` before any `.`), and no
/// address is neither private nor public. So a first part of 10 answers
/// `private: false` (no), and a first part other than 10, 172 or 192
/// answers `private: true` (no), without reading the rest: in flow logs,
/// most internal destinations and all inbound sources.
#[inline]
fn private_quad(text: &str, want: bool) -> Option<bool> {
    let (first, rest) = quad_part(text.as_bytes())?;
    let decided = if want {
        !matches!(first, 10 | 172 | 192)
    } else {
        first == 10
    };
    if decided && rest.starts_with(b".") {
        return Some(false);
    }
    quad_after_first(first, rest).map(|v4| v4.is_private() == want)
}

/// Whether `text` is an address whose publicness is `want`: a plain
/// dotted quad is judged without the general parser (a first part of 10
/// answers `public: true` with no at once, as [`private_quad`] does).
#[inline]
fn public_text(text: &str, want: bool) -> bool {
    if let Some((first, rest)) = quad_part(text.as_bytes()) {
        if want && first == 10 && rest.starts_with(b".") {
            return false;
        }
        if let Some(v4) = quad_after_first(first, rest) {
            return is_public_v4(v4) == want;
        }
    }
    parse_ip_text(text).is_some_and(|ip| is_public_ip(ip) == want)
}

fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if t.contains('/') {
        t.parse::<IpNet>()
            .map_err(|e| format!("invalid CIDR {text:?}: {e}"))
    } else {
        t.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|e| format!("invalid CIDR {text:?}: {e}"))
    }
}

impl Predicate {
    /// Compiles a predicate, registering its field in `plan`.
    pub fn compile(spec: &PredicateSpec, plan: &mut FieldPlan) -> Result<Predicate, String> {
        let path = FieldPath::parse(&spec.field).map_err(|e| e.to_string())?;
        let mut conds: Vec<(&str, Cond)> = Vec::new();
        if let Some(v) = &spec.equals {
            conds.push(("equals", Cond::Equals(Expected::new(v))));
        }
        if let Some(v) = &spec.equals_ci {
            conds.push(("equals_ci", Cond::EqualsCi(v.as_str().into())));
        }
        if let Some(list) = &spec.in_list {
            if list.is_empty() {
                return Err(format!("predicate on {:?}: 'in' list is empty", spec.field));
            }
            conds.push(("in", Cond::In(list.iter().map(Expected::new).collect())));
        }
        if let Some(list) = &spec.in_ci {
            if list.is_empty() {
                return Err(format!(
                    "predicate on {:?}: 'in_ci' list is empty",
                    spec.field
                ));
            }
            conds.push((
                "in_ci",
                Cond::InCi(list.iter().map(|s| s.as_str().into()).collect()),
            ));
        }
        if let Some(list) = &spec.cidr {
            if list.is_empty() {
                return Err(format!(
                    "predicate on {:?}: 'cidr' list is empty",
                    spec.field
                ));
            }
            let nets = list
                .iter()
                .map(|c| parse_cidr(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("predicate on {:?}: {e}", spec.field))?;
            conds.push(("cidr", Cond::Cidr(nets)));
        }
        if let Some(p) = spec.private {
            conds.push(("private", Cond::Private(p)));
        }
        if let Some(p) = spec.public {
            conds.push(("public", Cond::Public(p)));
        }
        match (&spec.op, spec.value) {
            (Some(op), Some(value)) => {
                let op = match op.trim() {
                    "=" | "==" => Op::Eq,
                    "!=" => Op::Ne,
                    "<" => Op::Lt,
                    "<=" => Op::Le,
                    ">" => Op::Gt,
                    ">=" => Op::Ge,
                    other => {
                        return Err(format!(
                            "predicate on {:?}: unknown op {other:?} (use =, !=, <, <=, >, >=)",
                            spec.field
                        ))
                    }
                };
                if !value.is_finite() {
                    return Err(format!(
                        "predicate on {:?}: value must be a finite number",
                        spec.field
                    ));
                }
                conds.push(("op", Cond::Cmp(op, value)));
            }
            (Some(_), None) => {
                return Err(format!(
                    "predicate on {:?}: 'op' needs a 'value'",
                    spec.field
                ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "predicate on {:?}: 'value' needs an 'op'",
                    spec.field
                ))
            }
            (None, None) => {}
        }
        if let Some(e) = spec.exists {
            conds.push(("exists", Cond::Exists(e)));
        }
        let cond = match conds.len() {
            0 => {
                return Err(format!(
                    "predicate on {:?} has no condition: give one of equals, equals_ci, in, in_ci, cidr, private, public, op/value, exists",
                    spec.field
                ))
            }
            1 => conds.pop().map(|(_, c)| c),
            _ => {
                let names: Vec<&str> = conds.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "predicate on {:?} has several conditions ({}): use one list item per condition",
                    spec.field,
                    names.join(", ")
                ));
            }
        };
        let cond = cond.ok_or_else(|| "internal: no condition".to_string())?;
        let slot = plan.slot_for(&path);
        Ok(Predicate {
            path,
            slot,
            cond,
            negate: spec.not,
        })
    }

    /// The field the predicate reads.
    pub fn field(&self) -> &FieldPath {
        &self.path
    }

    /// The exact strings field `slot` must hold for the predicate to hold
    /// *when that field is a string* (the contract of
    /// [`crate::filter::Filter::required_strings`]): `Some` for a
    /// non-negated `equals` or `in` of text values on `slot`.
    pub fn required_strings(&self, slot: Slot) -> Option<Vec<&str>> {
        if self.slot != slot || self.negate {
            return None;
        }
        fn text(expected: &Expected) -> Option<&str> {
            match expected {
                Expected::Text { text, .. } => Some(text),
                Expected::Number(_) | Expected::Bool(_) => None,
            }
        }
        match &self.cond {
            Cond::Equals(expected) => Some(vec![text(expected)?]),
            Cond::In(list) => list.iter().map(text).collect(),
            _ => None,
        }
    }

    /// Whether `event` satisfies the predicate.
    #[inline]
    pub fn matches<'a>(&self, event: &impl EventView<'a>) -> bool {
        // The flow rules' address test, on the column's text as it lies
        // (no value made) and without the general test's frame (its other
        // arms build values and need a large one).
        if let Cond::Private(want) = self.cond {
            if let Some(text) = event.field_str(self.slot) {
                return private_text(text, want) != self.negate;
            }
        }
        if let Cond::Public(want) = self.cond {
            if let Some(text) = event.field_str(self.slot) {
                return public_text(text, want) != self.negate;
            }
        }
        let value = event.field(self.slot);
        let value: &FieldValue<'a> = &value;
        if let Cond::Exists(want) = self.cond {
            return (!matches!(value, FieldValue::Missing) == want) != self.negate;
        }
        if matches!(
            value,
            FieldValue::Missing | FieldValue::Null | FieldValue::Object | FieldValue::Array
        ) {
            return false;
        }
        self.test(value) != self.negate
    }

    fn test(&self, value: &FieldValue<'_>) -> bool {
        match &self.cond {
            Cond::Equals(e) => e.matches(value),
            Cond::EqualsCi(want) => match value {
                FieldValue::Str(s) => eq_ci(s, want),
                FieldValue::Bool(b) => eq_ci(bool_text(*b), want),
                FieldValue::Number(_) => Expected::Text {
                    text: want.clone(),
                    number: want.trim().parse().ok(),
                }
                .matches(value),
                _ => false,
            },
            Cond::In(list) => list.iter().any(|e| e.matches(value)),
            Cond::InCi(list) => match value {
                FieldValue::Str(s) => list.iter().any(|w| eq_ci(s, w)),
                _ => false,
            },
            Cond::Cidr(nets) => parse_ip(value).is_some_and(|ip| {
                let mapped = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
                    IpAddr::V4(_) => None,
                };
                nets.iter()
                    .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
            }),
            Cond::Private(want) => match value {
                FieldValue::Str(s) => private_text(s, *want),
                _ => false,
            },
            Cond::Public(want) => match value {
                FieldValue::Str(s) => public_text(s, *want),
                _ => false,
            },
            Cond::Cmp(op, rhs) => value.as_f64().is_some_and(|x| compare(*op, x, *rhs)),
            Cond::Exists(want) => !matches!(value, FieldValue::Missing) == *want,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;
    use crate::event::EventKind;

    proptest! {
        #[test]
        fn dotted_quad_agrees_with_the_std_parser(text in "[0-9.]{0,16}") {
            prop_assert_eq!(
                parse_dotted_quad(text.as_bytes()),
                text.parse::<std::net::Ipv4Addr>().ok()
            );
        }

        #[test]
        fn private_fast_path_agrees_with_parse_ip(text in prop_oneof![
            "[0-9. a-f:]{0,18}",
            // Real addresses, private ones often, so the fast path runs.
            (prop_oneof![Just(10u8), Just(172), Just(192), any::<u8>()], any::<[u8; 3]>())
                .prop_map(|(a, [b, c, d])| std::net::Ipv4Addr::new(a, b, c, d).to_string()),
            // A first part that decides, then anything: an address, a
            // broken one, an IPv6 tail, a port, spaces.
            (
                prop_oneof![Just("10."), Just("172."), Just("192."), Just("52."), Just("010."), Just("300."), Just("1.")],
                "[0-9.: a-f]{0,14}",
            ).prop_map(|(first, rest)| format!("{first}{rest}")),
        ]) {
            let value = FieldValue::Str(Cow::Owned(text));
            let general = parse_ip(&value).map(is_private_ip);
            fast_path_agrees(&value, general, |want| PredicateSpec {
                private: Some(want),
                ..PredicateSpec::default()
            })?;
        }

        #[test]
        fn public_fast_path_agrees_with_parse_ip(text in prop_oneof![
            "[0-9. a-f:]{0,18}",
            (prop_oneof![Just(10u8), Just(100), Just(169), Just(224), Just(240), any::<u8>()], any::<[u8; 3]>())
                .prop_map(|(a, [b, c, d])| std::net::Ipv4Addr::new(a, b, c, d).to_string()),
            (
                prop_oneof![Just("10."), Just("100."), Just("52."), Just("010."), Just("300.")],
                "[0-9.: a-f]{0,14}",
            ).prop_map(|(first, rest)| format!("{first}{rest}")),
        ]) {
            let value = FieldValue::Str(Cow::Owned(text));
            let general = parse_ip(&value).map(is_public_ip);
            fast_path_agrees(&value, general, |want| PredicateSpec {
                public: Some(want),
                ..PredicateSpec::default()
            })?;
        }

        #[test]
        fn dotted_quad_parses_every_address(a: u8, b: u8, c: u8, d: u8) {
            let address = std::net::Ipv4Addr::new(a, b, c, d);
            prop_assert_eq!(parse_dotted_quad(address.to_string().as_bytes()), Some(address));
        }
    }

    /// `spec(want)`, with and without `not`, answers on `value` what the
    /// general parser's verdict `general` says, through `test` and through
    /// `matches` (which judges dotted quads itself, before `test`).
    fn fast_path_agrees(
        value: &FieldValue<'static>,
        general: Option<bool>,
        spec: impl Fn(bool) -> PredicateSpec,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        for (want, not) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut plan = FieldPlan::new(EventKind::VpcFlow);
            let spec = PredicateSpec {
                field: "srcaddr".to_string(),
                not,
                ..spec(want)
            };
            let predicate = Predicate::compile(&spec, &mut plan).unwrap();
            let expected = general == Some(want);
            prop_assert_eq!(predicate.test(value), expected);
            let mut event = crate::filter::testing::event_from_text("", EventKind::VpcFlow);
            event.fields.push(value.clone());
            prop_assert_eq!(predicate.matches(&event), expected != not);
        }
        Ok(())
    }

    fn spec(yaml: &str) -> PredicateSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn check(yaml: &str, value: FieldValue<'static>) -> bool {
        let mut plan = FieldPlan::new(EventKind::VpcFlow);
        let p = Predicate::compile(&spec(yaml), &mut plan).unwrap();
        let mut event = crate::filter::testing::event_from_text("", EventKind::VpcFlow);
        event.fields.push(value);
        p.matches(&event)
    }

    fn s(text: &'static str) -> FieldValue<'static> {
        FieldValue::Str(Cow::Borrowed(text))
    }

    #[test]
    fn equality_and_membership() {
        assert!(check("{ field: action, equals: REJECT }", s("REJECT")));
        assert!(!check("{ field: action, equals: REJECT }", s("reject")));
        assert!(check(
            "{ field: dstport, equals: 22 }",
            FieldValue::Number(22.0)
        ));
        assert!(check("{ field: dstport, equals: 22 }", s("22")));
        assert!(check(
            "{ field: dstport, equals: '22' }",
            FieldValue::Number(22.0)
        ));
        assert!(check("{ field: ua, equals_ci: Boto3 }", s("boto3")));
        assert!(check("{ field: ua, equals_ci: ÉTÉ }", s("été")));
        assert!(check("{ field: e, in: [A, B, C] }", s("B")));
        assert!(!check("{ field: e, in: [A, B, C] }", s("b")));
        assert!(check("{ field: e, in_ci: [a, b] }", s("B")));
        assert!(check(
            "{ field: p, in: [22, 3389] }",
            FieldValue::Number(3389.0)
        ));
        assert!(check("{ field: f, equals: true }", FieldValue::Bool(true)));
    }

    #[test]
    fn cidr_and_private() {
        let cidr = r#"{ field: srcaddr, cidr: ["10.0.0.0/8", "fd00::/8", "192.0.2.7"] }"#;
        assert!(check(cidr, s("10.1.2.3")));
        assert!(check(cidr, s("fd12::1")));
        assert!(check(cidr, s("192.0.2.7")));
        assert!(check(cidr, s("::ffff:10.0.0.1")));
        assert!(!check(cidr, s("11.0.0.1")));
        assert!(!check(cidr, s("not-an-ip")));
        assert!(check("{ field: a, private: true }", s("172.16.0.1")));
        assert!(check("{ field: a, private: true }", s("fc00::1")));
        assert!(!check("{ field: a, private: true }", s("8.8.8.8")));
        assert!(check("{ field: a, private: false }", s("8.8.8.8")));
        assert!(!check("{ field: a, private: false }", s("garbage")));
        assert!(check(
            "{ field: a, private: true, not: true }",
            s("8.8.8.8")
        ));
        assert!(!check(
            "{ field: a, private: true, not: true }",
            s("10.0.0.1")
        ));
        // Decided by the first part, or not: broken addresses are neither
        // private nor public, trailing spaces are trimmed, and an IPv4
        // address inside an IPv6 one counts.
        let private = "{ field: a, private: true }";
        let public = "{ field: a, private: false }";
        for (text, is_private, is_public) in [
            ("10.0.0.1", true, false),
            ("10.0.0.1 ", true, false),
            ("10.0.0.256", false, false),
            ("10.0.0.1::", false, false),
            ("52.0.0.1", false, true),
            ("52.0.0.256", false, false),
            ("52.0.0.1::1", false, false),
            ("172.16.0.1", true, false),
            ("172.32.0.1", false, true),
            ("192.168.1.1", true, false),
            ("192.169.1.1", false, true),
            ("010.0.0.1", false, false),
            ("::ffff:10.0.0.1", true, false),
        ] {
            assert_eq!(check(private, s(text)), is_private, "{text}");
            assert_eq!(check(public, s(text)), is_public, "{text}");
        }
    }

    /// Shared space a VPC may use (EKS pods), link-local, multicast and
    /// the like are neither private nor public: `public` tells them apart
    /// from the internet, where `private: false` does not.
    #[test]
    fn public_is_globally_routable() {
        let public = "{ field: a, public: true }";
        let internal = "{ field: a, public: false }";
        for (text, is_public) in [
            ("8.8.8.8", true),
            ("203.0.113.9", true),
            ("100.63.255.255", true),
            ("100.64.12.7", false),
            ("100.127.0.1", false),
            ("100.128.0.1", true),
            ("169.254.169.254", false),
            ("224.0.0.251", false),
            ("255.255.255.255", false),
            ("240.0.0.1", false),
            ("0.1.2.3", false),
            ("127.0.0.1", false),
            ("10.0.0.1", false),
            ("172.16.0.1", false),
            ("2600:1f18::1", true),
            ("fd00::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("::ffff:100.64.0.1", false),
            ("::ffff:52.0.0.1", true),
        ] {
            assert_eq!(check(public, s(text)), is_public, "{text}");
            assert_eq!(check(internal, s(text)), !is_public, "{text}");
        }
        assert!(!check(public, s("garbage")));
        assert!(!check(internal, s("garbage")));
    }

    #[test]
    fn missing_fields_never_match_even_negated() {
        assert!(!check("{ field: a, equals: x }", FieldValue::Missing));
        assert!(!check(
            "{ field: a, equals: x, not: true }",
            FieldValue::Missing
        ));
        assert!(!check(
            "{ field: a, equals: x, not: true }",
            FieldValue::Object
        ));
        assert!(check("{ field: a, equals: x, not: true }", s("y")));
        assert!(check("{ field: a, exists: false }", FieldValue::Missing));
        assert!(check(
            "{ field: a, exists: true, not: true }",
            FieldValue::Missing
        ));
        assert!(check("{ field: a, exists: true }", FieldValue::Null));
    }

    #[test]
    fn numeric_comparison() {
        assert!(check(
            "{ field: dstport, op: '>=', value: 1024 }",
            FieldValue::Number(8080.0)
        ));
        assert!(check(
            "{ field: dstport, op: '>=', value: 1024 }",
            s("1024")
        ));
        assert!(!check("{ field: dstport, op: '<', value: 1024 }", s("abc")));
    }

    #[test]
    fn compile_errors_are_clear() {
        let mut plan = FieldPlan::new(EventKind::VpcFlow);
        let err = Predicate::compile(&spec("{ field: a }"), &mut plan).unwrap_err();
        assert!(err.contains("no condition"), "{err}");
        let err = Predicate::compile(&spec("{ field: a, equals: x, private: true }"), &mut plan)
            .unwrap_err();
        assert!(
            err.contains("several conditions (equals, private)"),
            "{err}"
        );
        let err = Predicate::compile(&spec("{ field: a, cidr: ['10.0.0.0/33'] }"), &mut plan)
            .unwrap_err();
        assert!(err.contains("invalid CIDR"), "{err}");
        let err = Predicate::compile(&spec("{ field: a, op: '>' }"), &mut plan).unwrap_err();
        assert!(err.contains("needs a 'value'"), "{err}");
        assert!(serde_yaml_ng::from_str::<PredicateSpec>("{ field: a, bogus: 1 }").is_err());
        assert!(Predicate::compile(&spec("{ field: 'a..b', exists: true }"), &mut plan).is_err());
        assert!(plan.is_empty(), "failed compiles must not plan fields");
    }
}
