//! Fuzz target: the filter-pattern parser and matcher.
//!
//! Input: `pattern \n event`. The pattern is parsed; when it compiles it
//! is bound to a CloudTrail field plan and matched against the event,
//! built from the rest of the input as JSON when it parses, as text
//! otherwise (and as text always, for term/regex/space-delimited paths).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch::event::EventKind;
use trailwatch::fields::FieldPlan;
use trailwatch::filter::testing::{event_from_json, event_from_text};
use trailwatch::filter::{Filter, FilterFamily};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, message) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(mut filter) = Filter::parse(pattern) else {
        return;
    };
    let mut plan = FieldPlan::new(EventKind::CloudTrail);
    filter.bind(&mut plan);
    let _ = filter.family();
    let _ = filter.selectors();
    let names: Vec<String> = filter.field_names().iter().map(|s| s.to_string()).collect();
    if filter.family() != FilterFamily::Json {
        // Text events carry no planned fields, which only JSON patterns read.
        let text_event = event_from_text(message, EventKind::HostLog);
        let _ = filter.matches(&text_event);
        for name in &names {
            let _ = filter.named_field(&text_event, name);
        }
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(message) {
        let json_event = event_from_json(&value, &plan, EventKind::CloudTrail);
        let _ = filter.matches(&json_event);
    }
});
