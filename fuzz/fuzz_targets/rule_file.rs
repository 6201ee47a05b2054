//! Fuzz target: the rule-file loader, `rules::parse_rule_text` (YAML,
//! compile, and locating problems in the text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match trailwatch::rules::parse_rule_text("fuzz.yaml", text) {
        Ok(spec) => {
            // A rule that parses alone also compiles into a rule set.
            let _ = trailwatch::rules::RuleSet::compile(&[spec]);
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "failure without a problem");
            for problem in problems {
                let _ = problem.to_string();
            }
        }
    }
});
