//! The rule gate: a cheap, sound test that no rule of a kind can match an
//! event, from a few of its fields.
//!
//! Contract: a [`RuleGate`] is built from a rule set for one event kind
//! when every rule of that kind requires one of its fields to pass an `=`
//! test (its filter's, or a `where:` `equals`/`in`). It lists those fields
//! (few: most rules share `eventName`) with the values each accepts.
//! [`RuleGate::may_match`] is false only when, for every rule, the field
//! the rule requires fails the rule's tests, so no rule can match the
//! event, whatever its other fields hold. A decoder that reads only the
//! gate's fields can then skip the rest of the record (see
//! [`CloudTrailDecoder`](crate::decode::cloudtrail::CloudTrailDecoder)).
//! The gate never decides that a rule matches: it only rules events out.
//! A rule set where one rule of the kind has no such field has no gate.

use hashbrown::HashSet;

use crate::event::{EventKind, FieldValue};
use crate::fields::{FieldPath, Slot};
use crate::filter::RequiredValue;
use crate::rules::RuleSet;

/// Fields a gate may use at most; more, and the pre-read costs more than
/// it saves.
const MAX_GATE_FIELDS: usize = 6;

/// The gate of one event kind: see the module docs.
#[derive(Clone, Debug)]
pub struct RuleGate {
    fields: Vec<GateField>,
}

/// One field the gate reads, with every value some rule accepts there.
#[derive(Clone, Debug)]
struct GateField {
    path: FieldPath,
    slot: Slot,
    /// Exact literals: a string value equal to one passes.
    exact: HashSet<Box<str>>,
    /// Other filter tests (wildcards, regexes, numbers), evaluated as the
    /// filter evaluates them.
    tests: Vec<RequiredValue>,
}

impl RuleGate {
    /// The gate of `kind`'s rules in `rules`, if every one of them
    /// requires an `=` test of a plain (non-wildcard, non-envelope) field.
    pub fn build(rules: &RuleSet, kind: EventKind) -> Option<RuleGate> {
        let plan = rules.plans().for_kind(kind);
        let preferred = FieldPath::parse("eventName")
            .ok()
            .and_then(|path| plan.get(&path));
        let mut fields: Vec<GateField> = Vec::new();
        let indexes = rules.for_kind(kind);
        if indexes.is_empty() {
            return None;
        }
        for &idx in indexes {
            let rule = rules.rule(idx);
            // Every plain slot that constrains this rule, with its tests.
            let mut options: Vec<(Slot, Requirement)> = Vec::new();
            for (index, path) in plan.paths().iter().enumerate() {
                if path.has_wildcard() || path.is_envelope() {
                    continue;
                }
                let Ok(slot) = Slot::try_from(index) else {
                    continue;
                };
                if let Some(values) = rule.filter.required_values(slot) {
                    options.push((slot, Requirement::Filter(values)));
                } else if let Some(texts) = rule
                    .predicates
                    .iter()
                    .find_map(|p| p.required_strings(slot))
                {
                    let texts = texts.into_iter().map(Box::from).collect();
                    options.push((slot, Requirement::Predicate(texts)));
                }
            }
            // `eventName` first, then a field the gate reads already, then
            // the shallowest.
            let chosen = options.into_iter().min_by_key(|(slot, _)| {
                let path = &plan.paths()[usize::from(*slot)];
                (
                    Some(*slot) != preferred,
                    !fields.iter().any(|f| f.slot == *slot),
                    path.segs().len(),
                    *slot,
                )
            })?;
            let (slot, requirement) = chosen;
            let position = match fields.iter().position(|f| f.slot == slot) {
                Some(position) => position,
                None => {
                    if fields.len() == MAX_GATE_FIELDS {
                        return None;
                    }
                    fields.push(GateField {
                        path: plan.paths()[usize::from(slot)].clone(),
                        slot,
                        exact: HashSet::new(),
                        tests: Vec::new(),
                    });
                    fields.len() - 1
                }
            };
            let field = &mut fields[position];
            match requirement {
                Requirement::Filter(values) => {
                    for value in values {
                        match value.exact_text() {
                            Some(text) => {
                                field.exact.insert(text.into());
                            }
                            None => field.tests.push(value),
                        }
                    }
                }
                Requirement::Predicate(texts) => field.exact.extend(texts),
            }
        }
        Some(RuleGate { fields })
    }

    /// The fields the gate reads, with their slots in the kind's plan.
    pub fn fields(&self) -> impl Iterator<Item = (&FieldPath, Slot)> {
        self.fields.iter().map(|f| (&f.path, f.slot))
    }

    /// How many fields the gate reads.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the gate reads no field (never true of a built gate).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether some rule may match an event whose gate fields hold
    /// `values`, in the order of [`RuleGate::fields`] (a missing value is
    /// `Missing`). False means no rule can.
    #[inline]
    pub fn may_match(&self, values: &[FieldValue<'_>]) -> bool {
        const MISSING: &FieldValue<'static> = &FieldValue::Missing;
        self.fields
            .iter()
            .enumerate()
            .any(|(at, field)| field.passes(values.get(at).unwrap_or(MISSING)))
    }
}

impl GateField {
    #[inline]
    fn passes(&self, value: &FieldValue<'_>) -> bool {
        match value {
            // `=` never holds for these, in a filter or in a predicate.
            FieldValue::Missing | FieldValue::Null | FieldValue::Object | FieldValue::Array => {
                false
            }
            FieldValue::Str(text) => {
                self.exact.contains(text.as_ref()) || self.tests.iter().any(|t| t.matches(value))
            }
            // A number or boolean can equal a literal through its JSON
            // text, and a wildcard selector holds several values: the rules
            // decide those.
            FieldValue::Number(_) | FieldValue::Bool(_) | FieldValue::Many(_) => true,
        }
    }
}

/// How one rule constrains one field.
enum Requirement {
    Filter(Vec<RequiredValue>),
    Predicate(Vec<Box<str>>),
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::decode::testing::Collector;
    use crate::decode::{DecodeConfig, Decoder};
    use crate::gen::{generate_records, GenKind, GenOptions};

    fn rule_set(rules: &[(&str, &str)]) -> RuleSet {
        let specs: Vec<_> = rules
            .iter()
            .map(|(kind, filter)| {
                let text = format!(
                    "id: r\ntitle: r\nseverity: low\nkind: {kind}\nfilter: '{filter}'\n\
                     group_by: [account]\nwindow: 5m\nthreshold: '>= 1'\n"
                );
                crate::rules::parse_rule_text("test", &text).expect("rule")
            })
            .collect();
        RuleSet::compile(&specs).expect("compile")
    }

    fn builtin() -> RuleSet {
        let loaded = crate::rules::load_all(&[], false).expect("built-in rules");
        crate::rules::compile_all(&loaded).expect("compile")
    }

    /// The CloudTrail gate of `rules`.
    fn gate_of(rules: &RuleSet) -> Option<&RuleGate> {
        rules.plans().for_kind(EventKind::CloudTrail).gate()
    }

    fn names(gate: &RuleGate) -> Vec<String> {
        let mut names: Vec<String> = gate.fields().map(|(p, _)| p.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn the_built_in_pack_is_gated_on_three_fields() {
        let rules = builtin();
        // Every built-in CloudTrail rule requires a field: eventName for the
        // CIS controls, errorCode for the two authorization-failure rules,
        // userIdentity.type for root usage.
        assert_eq!(
            names(gate_of(&rules).expect("gate")),
            ["errorCode", "eventName", "userIdentity.type"]
        );
    }

    #[test]
    fn a_rule_without_a_required_field_leaves_the_kind_ungated() {
        let rules = rule_set(&[
            ("cloudtrail", "{ $.eventName = ConsoleLogin }"),
            ("cloudtrail", "{ $.sourceIPAddress != \"10.0.0.1\" }"),
        ]);
        assert!(gate_of(&rules).is_none());
        // `||` with an unconstrained side constrains nothing either.
        let rules = rule_set(&[(
            "cloudtrail",
            "{ $.eventName = ConsoleLogin || $.errorCode EXISTS }",
        )]);
        assert!(gate_of(&rules).is_none());
    }

    #[test]
    fn values_pass_as_the_filter_tests_them() {
        let rules = rule_set(&[
            (
                "cloudtrail",
                "{ $.errorCode = \"AccessDenied*\" && $.x != 1 }",
            ),
            ("cloudtrail", "{ $.eventName = A || $.eventName = B }"),
        ]);
        let plan = rules.plans().for_kind(EventKind::CloudTrail);
        let gate = plan.gate().expect("gate");
        assert_eq!(names(gate), ["errorCode", "eventName"]);
        // Values go in the gate's order of fields.
        let verdict = |name: &str, value: FieldValue<'static>| {
            let values: Vec<FieldValue<'static>> = gate
                .fields()
                .map(|(path, _)| {
                    if path.to_string() == name {
                        value.clone()
                    } else {
                        FieldValue::Missing
                    }
                })
                .collect();
            gate.may_match(&values)
        };
        let text = |s: &'static str| FieldValue::Str(Cow::Borrowed(s));
        assert!(verdict("errorCode", text("AccessDeniedException")));
        assert!(!verdict("errorCode", text("ThrottlingException")));
        assert!(verdict("eventName", text("B")));
        assert!(!verdict("eventName", text("b")));
        assert!(!verdict("eventName", FieldValue::Missing));
        assert!(!verdict("eventName", FieldValue::Null));
        assert!(!verdict("eventName", FieldValue::Object));
        // A number can equal a literal through its text: the rules decide.
        assert!(verdict("eventName", FieldValue::Number(1.0)));
        assert!(verdict("eventName", FieldValue::Bool(true)));
    }

    #[test]
    fn predicate_requirements_gate_too() {
        let text = "id: p\ntitle: p\nseverity: low\nkind: cloudtrail\nfilter: ''\n\
                    where:\n  - {\"field\": \"eventSource\", \"in\": [\"kms.amazonaws.com\"]}\n\
                    group_by: [account]\nwindow: 5m\nthreshold: '>= 1'\n";
        let spec = crate::rules::parse_rule_text("test", text).expect("rule");
        let rules = RuleSet::compile(&[spec]).expect("compile");
        assert_eq!(names(gate_of(&rules).expect("gate")), ["eventSource"]);
    }

    /// The gate's one promise: an event it rules out matches no rule. Checked
    /// on fully decoded events (a plan without the gate) of the generated
    /// mix, which holds matches of every built-in CloudTrail rule kind.
    #[test]
    fn the_gate_never_rules_out_a_match() {
        let rules = builtin();
        let gate = gate_of(&rules).expect("gate").clone();
        let mut plans = rules.plans().clone();
        plans.for_kind_mut(EventKind::CloudTrail).set_gate(None);
        let mut decoder = Decoder::new(DecodeConfig::default(), &plans);
        let mut collector = Collector::new();
        let options = GenOptions {
            count: 20_000,
            ..GenOptions::default()
        };
        for record in generate_records(GenKind::CloudTrail, &options) {
            decoder.decode(&record, &mut collector);
        }
        let (mut matched, mut ruled_out) = (0, 0);
        for event in &collector.events {
            assert!(!event.ruled_out, "decoded without a gate");
            let matches = rules
                .for_kind(EventKind::CloudTrail)
                .iter()
                .any(|&idx| rules.rule(idx).matches(event));
            let values: Vec<FieldValue<'_>> = gate
                .fields()
                .map(|(_, slot)| event.field(slot).clone())
                .collect();
            let may = gate.may_match(&values);
            assert!(may || !matches, "ruled out a match: {}", event.text);
            matched += usize::from(matches);
            ruled_out += usize::from(!may);
        }
        assert!(matched > 100, "the sample matches rules ({matched})");
        // Most of an ordinary mix matches nothing: the gate earns its keep.
        assert!(
            ruled_out * 10 > collector.events.len() * 8,
            "{ruled_out} of {} ruled out",
            collector.events.len()
        );
    }
}
