//! The built-in rule pack: exactly the rules of the spec, each compiling,
//! each with a positive and a negative inline test, and every inline test
//! passing through the real engine.

use std::collections::BTreeSet;

use trailwatch::rules::testing::run_tests;
use trailwatch::rules::{builtin_rules, compile_all, LoadedRule};

/// The 24 rule ids of the built-in pack (issue 2, "Built-in rule pack").
const EXPECTED_IDS: [&str; 24] = [
    "cis-4.1-unauthorized-api-calls",
    "cis-4.2-console-login-without-mfa",
    "cis-4.3-root-account-usage",
    "cis-4.4-iam-policy-changes",
    "cis-4.5-cloudtrail-config-changes",
    "cis-4.6-console-auth-failures",
    "cis-4.7-cmk-disable-or-deletion",
    "cis-4.8-s3-bucket-policy-changes",
    "cis-4.9-config-changes",
    "cis-4.10-security-group-changes",
    "cis-4.11-nacl-changes",
    "cis-4.12-network-gateway-changes",
    "cis-4.13-route-table-changes",
    "cis-4.14-vpc-changes",
    "cis-4.15-organizations-changes",
    "ec2-instance-changes",
    "secret-access",
    "signin-failure-burst-by-source",
    "authz-failure-burst-by-principal",
    "vpc-rejected-flow-spike",
    "vpc-ssh-rejects",
    "vpc-egress-threshold",
    "vpc-port-scan",
    "host-auth-failures",
];

fn pack() -> Vec<LoadedRule> {
    match builtin_rules() {
        Ok(rules) => rules,
        Err(problems) => panic!(
            "built-in pack does not load:\n{}",
            problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

#[test]
fn pack_has_exactly_the_specified_ids() {
    let rules = pack();
    let actual: Vec<&str> = rules.iter().map(|r| r.spec.id.as_str()).collect();
    let actual_set: BTreeSet<&str> = actual.iter().copied().collect();
    assert_eq!(
        actual.len(),
        actual_set.len(),
        "duplicate ids in {actual:?}"
    );
    let expected_set: BTreeSet<&str> = EXPECTED_IDS.iter().copied().collect();
    let missing: Vec<&&str> = expected_set.difference(&actual_set).collect();
    let extra: Vec<&&str> = actual_set.difference(&expected_set).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing ids: {missing:?}; unexpected ids: {extra:?}"
    );
}

#[test]
fn every_rule_is_enabled_documented_and_compiles() {
    let rules = pack();
    for rule in &rules {
        let spec = &rule.spec;
        assert!(spec.enabled, "{} is disabled", spec.id);
        assert!(
            spec.description.len() >= 100,
            "{} needs a description of what, why and how to respond",
            spec.id
        );
        assert!(!spec.attack.is_empty(), "{} has no ATT&CK ids", spec.id);
        assert!(
            Some(format!("{}.yaml", spec.id))
                == rule
                    .origin
                    .to_string()
                    .strip_prefix("builtin:rules/")
                    .map(str::to_string),
            "{} is not in rules/{}.yaml (found {})",
            spec.id,
            spec.id,
            rule.origin
        );
    }
    if let Err(problem) = compile_all(&rules) {
        panic!("built-in pack does not compile as a set: {problem}");
    }
}

#[test]
fn every_rule_has_a_positive_and_a_negative_test() {
    let mut problems = Vec::new();
    for rule in pack() {
        let spec = &rule.spec;
        let positive = spec.tests.iter().filter(|t| !t.expect.is_empty()).count();
        let negative = spec.tests.iter().filter(|t| t.expect.is_empty()).count();
        if spec.tests.len() < 2 || positive == 0 || negative == 0 {
            problems.push(format!(
                "{}: {} test(s), {positive} expecting an alert, {negative} expecting none",
                spec.id,
                spec.tests.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_inline_test_passes() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for rule in pack() {
        for result in run_tests(&rule.spec) {
            ran += 1;
            if let Some(failure) = result.failure {
                failures.push(format!("{} :: {}: {failure}", result.rule_id, result.case));
            }
        }
    }
    assert!(ran >= 48, "only {ran} inline tests ran");
    assert!(
        failures.is_empty(),
        "{} inline test(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
