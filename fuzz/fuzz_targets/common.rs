//! Shared helpers for the decoder fuzz targets.
//!
//! Every decoder target builds one [`RuleSet`] (the built-in pack plus a
//! few fuzz-only rules so that flow and host-log events have planned
//! fields too), then runs one fresh [`Decoder`] per input so a flow header
//! seen in one input never leaks into the next (inputs stay reproducible).
//! The sink checks the decoder contract: every event carries exactly one
//! slot per planned field of its kind.

use std::sync::OnceLock;

use trailwatch::decode::{DecodeConfig, DecodeError, DecodeSink, Decoder, DecoderKind};
use trailwatch::event::Event;
use trailwatch::fields::FieldPlans;
use trailwatch::rules::{RuleSet, RuleSpec};

/// Fuzz-only rules: they plan flow and host-log fields the built-in pack
/// does not reference.
const EXTRA_RULES: [&str; 3] = [
    r#"
id: fuzz-flow
title: fuzz flow
kind: vpcflow
filter: '[version, account, eni, src, dst, sport, dport="22", proto, pkts, bytes>=0, start, end, action="REJECT", status]'
group_by: [srcaddr, vpc-id, "@owner"]
window: 5m
threshold: ">= 1"
"#,
    r#"
id: fuzz-host
title: fuzz host
kind: hostlog
filter: '"authentication failure" ?sshd ?su %user=[a-z]+%'
group_by: ["@log_group", "@log_stream", "@message"]
window: 5m
threshold: ">= 1"
"#,
    r#"
id: fuzz-cloudtrail
title: fuzz cloudtrail
kind: cloudtrail
filter: '{ ($.userIdentity.type = "Root") || ($.requestParameters.items[0].x > 3) || ($.errorCode NOT EXISTS) }'
group_by: [userIdentity.arn, sourceIPAddress, "@owner"]
window: 5m
threshold: ">= 1"
"#,
];

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let mut specs: Vec<RuleSpec> = trailwatch::rules::builtin_rules()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.spec)
            .collect();
        for text in EXTRA_RULES {
            if let Ok(spec) = serde_yaml_ng::from_str::<RuleSpec>(text) {
                specs.push(spec);
            }
        }
        match RuleSet::compile(&specs) {
            Ok(set) => set,
            Err((id, error)) => panic!("fuzz rule {id} does not compile: {error}"),
        }
    })
}

/// Counts what a decoder reports and checks the slot-count contract.
struct CheckingSink<'p> {
    plans: &'p FieldPlans,
    events: usize,
    errors: usize,
}

impl DecodeSink for CheckingSink<'_> {
    fn event(&mut self, event: &Event<'_>) {
        // A ruled-out event carries no field slots (only its time is used).
        let expected = if event.ruled_out {
            0
        } else {
            self.plans.for_kind(event.kind).len()
        };
        assert_eq!(
            event.fields.len(),
            expected,
            "event of kind {:?} has {} field slots, plan has {expected}",
            event.kind,
            event.fields.len()
        );
        self.events += 1;
    }

    fn error(&mut self, error: DecodeError, _original: &[u8]) {
        // Every error has a stable, non-empty label.
        assert!(!error.reason.as_str().is_empty());
        self.errors += 1;
    }

    fn control_message(&mut self) {}

    fn digest_file(&mut self) {}
}

/// A fresh decoder for `rules` and a sink that checks its events.
fn checked<'r>(config: &DecodeConfig, rules: &'r RuleSet) -> (Decoder, CheckingSink<'r>) {
    let decoder = Decoder::new(config.clone(), rules.plans());
    let sink = CheckingSink {
        plans: rules.plans(),
        events: 0,
        errors: 0,
    };
    (decoder, sink)
}

/// Decodes `data` with a fresh decoder forced to `kind` (or `Auto`).
pub fn decode(kind: DecoderKind, data: &[u8]) {
    let rules = rules();
    let config = DecodeConfig {
        forced: kind,
        // Small caps keep gzip bombs inside libFuzzer's RSS limit.
        max_record_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
        flow_format: None,
    };
    let (mut decoder, mut sink) = checked(&config, rules);
    decoder.decode(data, &mut sink);
    // Decoding the same bytes again on the same stream must not panic
    // either (the flow format may have changed through a header line).
    decoder.decode(data, &mut sink);
    gate_agrees(config, data);
}

/// The built-in pack alone, whose CloudTrail rules have a rule gate (the
/// fuzz-only CloudTrail rule above has none: it may match any record), and
/// the same rules without it.
fn gated_rules() -> &'static (RuleSet, RuleSet) {
    static RULES: OnceLock<(RuleSet, RuleSet)> = OnceLock::new();
    RULES.get_or_init(|| {
        let specs: Vec<RuleSpec> = trailwatch::rules::builtin_rules()
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.spec)
            .collect();
        match RuleSet::compile(&specs) {
            Ok(set) => {
                let ungated = set.without_gates();
                (set, ungated)
            }
            Err((id, error)) => panic!("built-in rule {id} does not compile: {error}"),
        }
    })
}

/// With and without the rule gate, the same records come out: each one as
/// an event or as an error. The gate may turn an error into an event only
/// for a record no rule can match that holds a number serde_json cannot
/// read in a field the gate skips; never the reverse.
fn gate_agrees(config: DecodeConfig, data: &[u8]) {
    let (gated_rules, ungated_rules) = gated_rules();
    let run = |rules: &RuleSet| {
        let (mut decoder, mut sink) = checked(&config, rules);
        decoder.decode(data, &mut sink);
        (sink.events, sink.errors)
    };
    let (gated_events, gated_errors) = run(gated_rules);
    let (events, errors) = run(ungated_rules);
    assert_eq!(
        gated_events + gated_errors,
        events + errors,
        "records differ"
    );
    assert!(gated_errors <= errors, "the gate added an error");
}
