//! Alerts and their OCSF 1.6 Detection Finding encoding.
//!
//! Contract: the alert id (`finding_info.uid`) is a pure function of
//! (rule id, rule version, group key, window start), so replaying the same
//! input after a crash re-emits the same id, and every field of a repeated
//! alert is identical (alert `time` is event time, never wall-clock time).
//! The encoding itself is in the `ocsf` module.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::rules::model::Severity;

mod ocsf;

pub use ocsf::RuleJsonCache;

/// OCSF `activity_id` of a Detection Finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Activity {
    Create = 1,
    Update = 2,
    Close = 3,
}

impl Activity {
    /// Stable lowercase name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Create => "create",
            Activity::Update => "update",
            Activity::Close => "close",
        }
    }

    /// OCSF `activity_name`.
    pub fn caption(self) -> &'static str {
        match self {
            Activity::Create => "Create",
            Activity::Update => "Update",
            Activity::Close => "Close",
        }
    }

    /// All activities, for metric registration.
    pub const ALL: [Activity; 3] = [Activity::Create, Activity::Update, Activity::Close];
}

/// The rule facts an alert carries (shared, not copied per alert).
#[derive(Debug, Clone)]
pub struct RuleInfo {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub attack: Vec<String>,
    pub version: u32,
    pub labels: BTreeMap<String, String>,
    pub group_by: Vec<String>,
    pub aggregate: &'static str,
    pub threshold: String,
    pub kind: &'static str,
    /// The finding's parts that depend on the rule alone, written as JSON
    /// by the first alert encoded. The fields above do not change once an
    /// alert shares the rule (it is behind an `Arc`); a clone starts empty.
    pub json: RuleJsonCache,
}

/// One alert, ready for a sink.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `finding_info.uid`: see the module contract.
    pub id: String,
    pub rule: Arc<RuleInfo>,
    pub activity: Activity,
    /// Group-key values in `group_by` order.
    pub key: Vec<String>,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    /// Aggregate value at emission.
    pub value: f64,
    /// Matching events counted in the window.
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub account: Option<String>,
    pub region: Option<String>,
    pub sample_ids: Vec<String>,
    pub evidences: Vec<String>,
}

/// Computes the deterministic alert id.
pub fn alert_id(
    rule_id: &str,
    version: u32,
    key: &[impl AsRef<str>],
    window_start_ms: i64,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(version.to_be_bytes());
    for part in key {
        hasher.update([0x1fu8]);
        hasher.update(part.as_ref().as_bytes());
    }
    hasher.update([0u8]);
    hasher.update(window_start_ms.to_be_bytes());
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

impl Alert {
    /// The stable record key for sinks: `rule|v1|v2`.
    pub fn routing_key(&self) -> String {
        let mut key = self.rule.id.clone();
        for value in &self.key {
            key.push('|');
            key.push_str(value);
        }
        key
    }

    /// A per-activity id (`ce_id`, `metadata.uid`): the alert id for
    /// Create, `id:update:<last_seen>` / `id:close` otherwise.
    pub fn event_id(&self) -> String {
        match self.activity {
            Activity::Create => self.id.clone(),
            Activity::Update => format!("{}:update:{}", self.id, self.last_seen_ms),
            Activity::Close => format!("{}:close", self.id),
        }
    }

    /// OCSF `time` (epoch ms): the event time that caused this activity.
    pub fn time_ms(&self) -> i64 {
        match self.activity {
            Activity::Close => self.window_end_ms,
            _ => self.last_seen_ms,
        }
    }

    /// Encodes the alert as an OCSF 1.6 Detection Finding, as a tree
    /// (every evidence sample parsed). Sinks write [`Alert::ocsf_json`],
    /// which reads back as this.
    pub fn to_ocsf(&self) -> serde_json::Result<Value> {
        ocsf::tree(self)
    }

    /// The finding as one line of JSON: what every sink writes (see
    /// the `ocsf` module for how evidence samples are embedded).
    pub fn ocsf_json(&self) -> serde_json::Result<Vec<u8>> {
        ocsf::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_alert() -> Alert {
        Alert {
            id: alert_id("r", 1, &["1.2.3.4"], 0),
            rule: Arc::new(RuleInfo {
                id: "r".into(),
                title: "Rule".into(),
                description: "d".into(),
                severity: Severity::High,
                attack: vec!["T1110".into()],
                version: 1,
                labels: BTreeMap::new(),
                group_by: vec!["sourceIPAddress".into()],
                aggregate: "count",
                threshold: ">= 5".into(),
                kind: "cloudtrail",
                json: Default::default(),
            }),
            activity: Activity::Create,
            key: vec!["1.2.3.4".into()],
            window_start_ms: 0,
            window_end_ms: 300_000,
            value: 5.0,
            count: 5,
            first_seen_ms: 1,
            last_seen_ms: 2,
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            sample_ids: vec!["e1".into()],
            evidences: vec!["{\"eventID\":\"e1\"}".into()],
        }
    }

    #[test]
    fn id_is_pure_function_of_rule_version_key_window() {
        let a = alert_id("r", 1, &["k"], 0);
        assert_eq!(a, alert_id("r", 1, &["k"], 0));
        assert_ne!(a, alert_id("r", 2, &["k"], 0));
        assert_ne!(a, alert_id("r", 1, &["k2"], 0));
        assert_ne!(a, alert_id("r", 1, &["k"], 300_000));
        assert_ne!(
            alert_id("r", 1, &["a", "b"], 0),
            alert_id("r", 1, &["ab"], 0)
        );
        assert_eq!(a.len(), 32);
    }

    /// Every evidence sample reads back from the line a sink writes as it
    /// does in the tree, and the line stays one line.
    #[test]
    fn the_written_line_reads_as_the_tree() {
        let cases = [
            // One-line object: embedded as it came, key order kept.
            (
                r#"{"eventID":"e1","awsRegion":"us-east-1","n":[1,2.5,-3e2]}"#,
                false,
            ),
            (r#"{"a":"\u00e9\n","a":"repeated key, last wins"}"#, false),
            ("  {\"padded\": true}  ", false),
            // A pretty-printed record is written back on one line.
            ("{\n  \"eventID\": \"e2\",\r\n  \"x\": {}\n}", false),
            // What a `Value` cannot hold falls back to the message.
            (r#"{"big":1e999}"#, true),
            (r#"{"lone":"\ud800"}"#, true),
            (r#"{"open":"#, true),
            ("[1,2]", true),
            (
                "2 123456789012 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 1 2 REJECT OK",
                true,
            ),
        ];
        for (text, message) in cases {
            let mut alert = sample_alert();
            alert.evidences = vec![text.to_string()];
            let line = alert.ocsf_json().expect("encodes");
            assert!(!line.contains(&b'\n'), "one line for {text:?}");
            let read: Value = serde_json::from_slice(&line).expect("reads back");
            let tree = alert.to_ocsf().expect("encodes");
            assert_eq!(read, tree, "{text:?}");
            let data = &tree["evidences"][0]["data"];
            assert_eq!(data["message"] == text, message, "{text:?}: {data}");
        }
        let mut alert = sample_alert();
        alert.evidences = vec![r#"{"z":1,"a":2}"#.to_string()];
        let line = String::from_utf8(alert.ocsf_json().expect("encodes")).expect("UTF-8");
        assert!(
            line.contains(r#""evidences":[{"data":{"z":1,"a":2}}]"#),
            "{line}"
        );
    }

    /// A JSON value with its objects' keys in the order they were written.
    enum Ordered {
        Object(Vec<(String, Ordered)>),
        Array(Vec<Ordered>),
        Scalar,
    }

    impl<'de> serde::Deserialize<'de> for Ordered {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Ordered;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("JSON")
                }
                fn visit_bool<E>(self, _: bool) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_i64<E>(self, _: i64) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_u64<E>(self, _: u64) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_f64<E>(self, _: f64) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_str<E>(self, _: &str) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_unit<E>(self) -> Result<Ordered, E> {
                    Ok(Ordered::Scalar)
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Ordered, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = seq.next_element()? {
                        items.push(item);
                    }
                    Ok(Ordered::Array(items))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Ordered, A::Error> {
                    let mut members = Vec::new();
                    while let Some(member) = map.next_entry()? {
                        members.push(member);
                    }
                    Ok(Ordered::Object(members))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// Every object of `value` (but the embedded samples) has sorted keys.
    fn assert_sorted(value: &Ordered, path: &str) {
        match value {
            Ordered::Object(members) => {
                let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                assert_eq!(keys, sorted, "keys of {path}");
                for (key, member) in members {
                    assert_sorted(member, &format!("{path}.{key}"));
                }
            }
            Ordered::Array(items) => items.iter().for_each(|item| assert_sorted(item, path)),
            Ordered::Scalar => {}
        }
    }

    /// The line's keys come in the order a `Value` writes them (sorted),
    /// with `evidences` last, so that the line is byte for byte what the
    /// tree-building encoder wrote before.
    #[test]
    fn the_line_writes_keys_sorted_with_evidences_last() {
        let mut alert = sample_alert();
        alert.labels_for_test();
        alert.evidences = vec![r#"{"z":1,"a":2}"#.to_string()];
        let line = alert.ocsf_json().expect("encodes");
        let Ordered::Object(mut members) = serde_json::from_slice(&line).expect("reads back")
        else {
            panic!("a finding is an object");
        };
        let (last, _) = members.pop().expect("members");
        assert_eq!(last, "evidences");
        assert_sorted(&Ordered::Object(members), "finding");
    }

    impl Alert {
        /// Gives the sample rule labels, so `unmapped.labels` and
        /// `metadata.labels` are written too.
        fn labels_for_test(&mut self) {
            let mut rule = (*self.rule).clone();
            rule.labels =
                BTreeMap::from([("team".into(), "sec".into()), ("env".into(), "prod".into())]);
            self.rule = Arc::new(rule);
        }
    }

    /// An OCSF audit helper's cases: a sub-technique went into
    /// `technique.uid`, and a Close said "count 0 >= 5 in window", which
    /// reads as a breach.
    #[test]
    fn sub_techniques_and_a_close_read_as_ocsf_means_them() {
        let mut alert = sample_alert();
        let mut rule = (*alert.rule).clone();
        rule.attack = vec!["T1110".into(), "T1110.001".into()];
        alert.rule = Arc::new(rule);
        let v = alert.to_ocsf().expect("encodes");
        let attacks = &v["finding_info"]["attacks"];
        assert_eq!(attacks[0]["technique"]["uid"], "T1110");
        assert!(attacks[0].get("sub_technique").is_none(), "{attacks}");
        assert_eq!(attacks[1]["technique"]["uid"], "T1110");
        assert_eq!(attacks[1]["sub_technique"]["uid"], "T1110.001");
        let close = Alert {
            activity: Activity::Close,
            value: 0.0,
            count: 0,
            ..alert
        };
        let v = close.to_ocsf().expect("encodes");
        assert_eq!(v["status_id"], 4);
        assert_eq!(
            v["message"],
            "Rule: resolved, count 0 no longer >= 5 for r|1.2.3.4"
        );
        let line = close.ocsf_json().expect("encodes");
        let read: serde_json::Value = serde_json::from_slice(&line).expect("reads back");
        assert_eq!(read, v, "the line reads back as the tree");
    }

    #[test]
    fn a_changed_copy_of_a_rule_is_written_afresh() {
        let alert = sample_alert();
        let first = String::from_utf8(alert.ocsf_json().expect("encodes")).expect("utf-8");
        assert!(first.contains(r#""title":"Rule""#), "{first}");
        // The rule's parts are written now; a changed clone must not reuse them.
        let mut rule = (*alert.rule).clone();
        rule.title = "Renamed \"rule\"".into();
        rule.description = "new".into();
        let renamed = Alert {
            rule: Arc::new(rule),
            ..alert
        };
        let v = renamed.to_ocsf().expect("encodes");
        assert_eq!(v["finding_info"]["title"], "Renamed \"rule\"");
        assert_eq!(v["finding_info"]["analytic"]["name"], "Renamed \"rule\"");
        assert_eq!(v["finding_info"]["desc"], "new");
        let line = renamed.ocsf_json().expect("encodes");
        let read: serde_json::Value = serde_json::from_slice(&line).expect("reads back");
        assert_eq!(read, v, "the line reads back as the tree");
    }

    #[test]
    fn ocsf_shape() {
        let v = sample_alert().to_ocsf().expect("encodes");
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["finding_info"]["analytic"]["uid"], "r");
        assert_eq!(v["finding_info"]["uid"], v["metadata"]["correlation_uid"]);
        assert_eq!(v["cloud"]["account"]["uid"], "111122223333");
        assert_eq!(v["observables"][0]["type_id"], 2);
        assert_eq!(v["evidences"][0]["data"]["eventID"], "e1");
        assert_eq!(v["severity_id"], 4);
    }
}
