//! Alerts and their OCSF 1.6 Detection Finding encoding.
//!
//! Contract: the alert id (`finding_info.uid`) is a pure function of
//! (rule id, rule version, group key, window start), so replaying the same
//! input after a crash re-emits the same id, and every field of a repeated
//! alert is identical (alert `time` is event time, never wall-clock time).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::rules::model::Severity;

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

    /// Encodes the alert as an OCSF 1.6 Detection Finding, as a tree.
    /// Sinks write [`Alert::ocsf_json`], which reads back as this.
    pub fn to_ocsf(&self) -> Value {
        let mut finding = self.ocsf_without_evidences();
        if let Value::Object(finding) = &mut finding {
            let evidences = self
                .evidences
                .iter()
                .map(|text| Evidence::of(text).into_value())
                .collect();
            finding.insert("evidences".into(), Value::Array(evidences));
        }
        finding
    }

    /// The finding as one line of JSON: what every sink writes.
    ///
    /// An evidence sample that is a one-line JSON object, readable as a
    /// `serde_json::Value` (valid, every number finite), is embedded as it
    /// came (its key order and spelling kept). Parsing it into a tree and
    /// writing that back was most of an alert's encoding cost.
    pub fn ocsf_json(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Finding<'a> {
            #[serde(flatten)]
            base: Value,
            evidences: Vec<Evidence<'a>>,
        }
        serde_json::to_vec(&Finding {
            base: self.ocsf_without_evidences(),
            evidences: self
                .evidences
                .iter()
                .map(|text| Evidence::of(text))
                .collect(),
        })
    }

    /// Every field of the finding but `evidences`.
    fn ocsf_without_evidences(&self) -> Value {
        let rule = &self.rule;
        let observables: Vec<Value> = rule
            .group_by
            .iter()
            .zip(&self.key)
            .map(|(name, value)| json!({"name": name, "type_id": observable_type(name), "value": value}))
            .collect();
        let attacks: Vec<Value> = rule
            .attack
            .iter()
            .map(|t| json!({"technique": {"uid": t}, "version": "v15"}))
            .collect();
        let status_id = if self.activity == Activity::Close {
            4
        } else {
            1
        };
        let mut unmapped = serde_json::Map::new();
        unmapped.insert("aggregate".into(), json!(rule.aggregate));
        unmapped.insert("value".into(), json!(self.value));
        unmapped.insert("count".into(), json!(self.count));
        unmapped.insert("threshold".into(), json!(rule.threshold));
        unmapped.insert("group_key".into(), json!(self.routing_key()));
        unmapped.insert("sample_event_ids".into(), json!(self.sample_ids));
        unmapped.insert("input_kind".into(), json!(rule.kind));
        if !rule.labels.is_empty() {
            unmapped.insert("labels".into(), json!(rule.labels));
        }
        let mut cloud = json!({"provider": "AWS"});
        if let Some(region) = &self.region {
            cloud["region"] = json!(region);
        }
        if let Some(account) = &self.account {
            cloud["account"] = json!({"uid": account});
        }
        let mut finding = json!({
            "class_uid": 2004,
            "class_name": "Detection Finding",
            "category_uid": 2,
            "category_name": "Findings",
            "activity_id": self.activity as u8,
            "activity_name": self.activity.caption(),
            "type_uid": 200400 + self.activity as u32,
            "severity_id": rule.severity.ocsf_id(),
            "severity": rule.severity.caption(),
            "status_id": status_id,
            "is_alert": true,
            "time": self.time_ms(),
            "start_time": self.window_start_ms,
            "end_time": self.window_end_ms,
            "message": format!(
                "{}: {} {} {} in window for {}",
                rule.title, rule.aggregate, crate::event::format_number(self.value), rule.threshold,
                self.routing_key()
            ),
            "metadata": {
                "version": "1.6.0",
                "product": {"name": "trailwatch", "vendor_name": "trailwatch", "version": env!("CARGO_PKG_VERSION")},
                "uid": self.event_id(),
                "correlation_uid": self.id,
                "labels": rule.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            },
            "finding_info": {
                "uid": self.id,
                "title": rule.title,
                "desc": rule.description,
                "analytic": {"type_id": 1, "type": "Rule", "name": rule.title, "uid": rule.id, "version": rule.version.to_string()},
                "first_seen_time": self.first_seen_ms,
                "last_seen_time": self.last_seen_ms,
                "related_events_count": self.count,
                "attacks": attacks,
            },
            "cloud": cloud,
            "observables": observables,
        });
        // Inserted by move: `json!` copies an interpolated `Value` whole
        // (it serializes every `$expr` through `to_value`).
        if let Value::Object(finding) = &mut finding {
            finding.insert("unmapped".into(), Value::Object(unmapped));
        }
        finding
    }
}

/// One evidence sample as a finding carries it: `{"data": ...}`.
enum Evidence<'a> {
    /// A one-line JSON object that reads as a `Value`: embedded as it is.
    Raw(&'a RawValue),
    /// A JSON object on several lines (a pretty-printed record): written
    /// back on one, so the finding stays one line.
    Parsed(Value),
    /// Anything else (a flow or host log line, damaged JSON):
    /// `{"message": text}`.
    Message(&'a str),
}

impl<'a> Evidence<'a> {
    fn of(text: &'a str) -> Self {
        let object = text.trim_start().starts_with('{');
        if object && memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
            if serde_json::from_str::<Readable>(text).is_ok() {
                if let Ok(raw) = serde_json::from_str::<&RawValue>(text) {
                    return Evidence::Raw(raw);
                }
            }
            return Evidence::Message(text);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(value @ Value::Object(_)) => Evidence::Parsed(value),
            _ => Evidence::Message(text),
        }
    }

    /// The sample's `{"data": ...}` as a tree.
    fn into_value(self) -> Value {
        let data = match self {
            Evidence::Raw(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(value) => value,
                Err(_) => json!({ "message": raw.get() }),
            },
            Evidence::Parsed(value) => value,
            Evidence::Message(text) => json!({ "message": text }),
        };
        Value::Object(serde_json::Map::from_iter([("data".to_string(), data)]))
    }
}

impl Serialize for Evidence<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Evidence::Raw(raw) => map.serialize_entry("data", raw)?,
            Evidence::Parsed(value) => map.serialize_entry("data", value)?,
            Evidence::Message(text) => {
                map.serialize_entry("data", &BTreeMap::from([("message", text)]))?;
            }
        }
        map.end()
    }
}

/// A JSON text that serde_json reads as a `Value`, checked without building
/// one: the same `deserialize_any` walk (the same syntax, depth limit,
/// string escapes and number range), with nothing kept.
struct Readable;

impl<'de> Deserialize<'de> for Readable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReadableVisitor)
    }
}

struct ReadableVisitor;

impl<'de> Visitor<'de> for ReadableVisitor {
    type Value = Readable;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_none<E: de::Error>(self) -> Result<Readable, E> {
        Ok(Readable)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
        while seq.next_element::<Readable>()?.is_some() {}
        Ok(Readable)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
        while map.next_key::<Readable>()?.is_some() {
            map.next_value::<Readable>()?;
        }
        Ok(Readable)
    }
}

/// OCSF observable `type_id` for a group-by field name.
fn observable_type(name: &str) -> u8 {
    let lower = name.to_ascii_lowercase();
    if lower.contains("addr") || lower.contains("ipaddress") {
        2 // IP Address
    } else if lower.ends_with("arn") || lower.contains("username") {
        4 // User Name (closest)
    } else if lower.contains("port") {
        11 // Port
    } else {
        99 // Other
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
            let tree = alert.to_ocsf();
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

    #[test]
    fn ocsf_shape() {
        let v = sample_alert().to_ocsf();
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
