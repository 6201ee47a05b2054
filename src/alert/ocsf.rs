//! The OCSF 1.6 Detection Finding encoding of an [`Alert`].
//!
//! Contract: [`encode`] writes one line of JSON; [`tree`] builds the same
//! finding as a `serde_json::Value`, and the line reads back as the tree.
//! Both come from one borrowed [`Finding`] struct, whose fields (and those
//! of its parts) are declared in sorted order so that the line's keys are
//! sorted, as a `Value` writes them; `evidences` comes last in the line.
//! The parts that depend on the rule alone (`analytic`, `attacks`, `desc`,
//! `title`) are written once per rule ([`RuleJson`]) and copied into each
//! line as they are, by the same serializer, so the bytes do not change.
//! An evidence sample that is a one-line JSON object readable as a `Value`
//! is embedded as it came (its key order and spelling kept); a multi-line
//! object is written back on one line; anything else becomes
//! `{"message": text}`.

use std::collections::BTreeMap;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{Activity, Alert, RuleInfo};

/// Room for every field of a finding but its evidence samples (the
/// rule's title and description included), so that encoding one rarely
/// grows its buffer.
const FINDING_BASE_BYTES: usize = 2048;

/// The finding as one line of JSON: what every sink writes.
pub(super) fn encode(alert: &Alert) -> serde_json::Result<Vec<u8>> {
    // Sized once for the samples plus the rest of a finding: growing from
    // empty reallocated and copied the buffer about twenty times per alert.
    let samples: usize = alert.evidences.iter().map(|text| text.len() + 16).sum();
    let mut out = Vec::with_capacity(FINDING_BASE_BYTES + samples);
    let evidences = alert.evidences.iter().map(|t| Evidence::of(t)).collect();
    serde_json::to_writer(&mut out, &Finding::of(alert, evidences)?)?;
    Ok(out)
}

/// The finding as a tree, every evidence sample parsed.
pub(super) fn tree(alert: &Alert) -> serde_json::Result<Value> {
    let evidences = alert
        .evidences
        .iter()
        .map(|text| Evidence::Parsed(Evidence::of(text).into_data()))
        .collect();
    serde_json::to_value(Finding::of(alert, evidences)?)
}

/// The parts of a finding that depend on its rule alone, as JSON: written
/// once per rule, where each finding wrote (and escaped) them again.
#[derive(Debug)]
pub struct RuleJson {
    analytic: Box<RawValue>,
    attacks: Box<RawValue>,
    desc: Box<RawValue>,
    title: Box<RawValue>,
}

impl RuleJson {
    fn of(rule: &RuleInfo) -> serde_json::Result<RuleJson> {
        let analytic = Analytic {
            name: &rule.title,
            kind: "Rule",
            type_id: 1,
            uid: &rule.id,
            version: rule.version.to_string(),
        };
        let attacks: Vec<Attack<'_>> = rule
            .attack
            .iter()
            .map(|uid| match uid.split_once('.') {
                // A sub-technique (`T1110.001`) under its technique.
                Some((parent, _)) => Attack {
                    sub_technique: Some(Uid { uid }),
                    technique: Uid { uid: parent },
                    version: "v15",
                },
                None => Attack {
                    sub_technique: None,
                    technique: Uid { uid },
                    version: "v15",
                },
            })
            .collect();
        Ok(RuleJson {
            analytic: raw(&analytic)?,
            attacks: raw(&attacks)?,
            desc: raw(&rule.description)?,
            title: raw(&rule.title)?,
        })
    }

    /// The rule's parts, written on first use.
    fn get(rule: &RuleInfo) -> serde_json::Result<&RuleJson> {
        rule.json
            .0
            .get_or_init(|| RuleJson::of(rule).ok())
            .as_ref()
            .ok_or_else(|| serde::ser::Error::custom("the rule's parts did not encode"))
    }
}

/// A rule's [`RuleJson`], written on first use. A clone starts empty, so a
/// rule cloned and then changed is written afresh.
#[derive(Debug, Default)]
pub struct RuleJsonCache(std::sync::OnceLock<Option<RuleJson>>);

impl Clone for RuleJsonCache {
    fn clone(&self) -> Self {
        RuleJsonCache::default()
    }
}

/// `value` written as JSON, kept as written.
fn raw<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Box<RawValue>> {
    RawValue::from_string(serde_json::to_string(value)?)
}

/// A Detection Finding, borrowed from its alert. Fields in sorted order
/// (see the module contract).
#[derive(serde::Serialize)]
struct Finding<'a> {
    activity_id: u8,
    activity_name: &'static str,
    category_name: &'static str,
    category_uid: u8,
    class_name: &'static str,
    class_uid: u16,
    cloud: Cloud<'a>,
    end_time: i64,
    finding_info: FindingInfo<'a>,
    is_alert: bool,
    message: String,
    metadata: Metadata<'a>,
    observables: Vec<Observable<'a>>,
    severity: &'static str,
    severity_id: u8,
    start_time: i64,
    status_id: u8,
    time: i64,
    type_uid: u32,
    unmapped: Unmapped<'a>,
    evidences: Vec<Evidence<'a>>,
}

#[derive(serde::Serialize)]
struct Cloud<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<Uid<'a>>,
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct Uid<'a> {
    uid: &'a str,
}

#[derive(serde::Serialize)]
struct FindingInfo<'a> {
    analytic: &'a RawValue,
    attacks: &'a RawValue,
    desc: &'a RawValue,
    first_seen_time: i64,
    last_seen_time: i64,
    related_events_count: u64,
    title: &'a RawValue,
    uid: &'a str,
}

#[derive(serde::Serialize)]
struct Analytic<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    type_id: u8,
    uid: &'a str,
    version: String,
}

#[derive(serde::Serialize)]
struct Attack<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_technique: Option<Uid<'a>>,
    technique: Uid<'a>,
    version: &'static str,
}

#[derive(serde::Serialize)]
struct Metadata<'a> {
    correlation_uid: &'a str,
    labels: Vec<String>,
    product: Product,
    uid: String,
    version: &'static str,
}

#[derive(serde::Serialize)]
struct Product {
    name: &'static str,
    vendor_name: &'static str,
    version: &'static str,
}

#[derive(serde::Serialize)]
struct Observable<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    type_name: &'static str,
    type_id: u8,
    value: &'a str,
}

impl<'a> Observable<'a> {
    /// The observable of group-by field `name` with value `value`; none for
    /// a field the events did not have (grouped under `-`).
    fn of(name: &'a str, value: &'a str) -> Option<Self> {
        if value == MISSING_GROUP_VALUE {
            return None;
        }
        let (type_id, type_name) = observable_type(name, value);
        Some(Observable {
            name,
            type_name,
            type_id,
            value,
        })
    }
}

#[derive(serde::Serialize)]
struct Unmapped<'a> {
    aggregate: &'static str,
    count: u64,
    group_key: String,
    input_kind: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
    sample_event_ids: &'a [String],
    threshold: &'a str,
    value: f64,
}

impl<'a> Finding<'a> {
    fn of(alert: &'a Alert, evidences: Vec<Evidence<'a>>) -> serde_json::Result<Self> {
        let rule = &*alert.rule;
        let rule_json = RuleJson::get(rule)?;
        let group_key = alert.routing_key();
        Ok(Finding {
            activity_id: alert.activity as u8,
            activity_name: alert.activity.caption(),
            category_name: "Findings",
            category_uid: 2,
            class_name: "Detection Finding",
            class_uid: 2004,
            cloud: Cloud {
                account: alert.account.as_deref().map(|uid| Uid { uid }),
                provider: "AWS",
                region: alert.region.as_deref(),
            },
            end_time: alert.window_end_ms,
            finding_info: FindingInfo {
                analytic: &rule_json.analytic,
                attacks: &rule_json.attacks,
                desc: &rule_json.desc,
                first_seen_time: alert.first_seen_ms,
                last_seen_time: alert.last_seen_ms,
                related_events_count: alert.count,
                title: &rule_json.title,
                uid: &alert.id,
            },
            is_alert: true,
            message: if alert.activity == Activity::Close {
                format!(
                    "{}: resolved, {} {} no longer {} for {}",
                    rule.title,
                    rule.aggregate,
                    crate::event::format_number(alert.value),
                    rule.threshold,
                    group_key
                )
            } else {
                format!(
                    "{}: {} {} {} in window for {}",
                    rule.title,
                    rule.aggregate,
                    crate::event::format_number(alert.value),
                    rule.threshold,
                    group_key
                )
            },
            metadata: Metadata {
                correlation_uid: &alert.id,
                labels: rule
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect(),
                product: Product {
                    name: "trailwatch",
                    vendor_name: "trailwatch",
                    version: env!("CARGO_PKG_VERSION"),
                },
                uid: alert.event_id(),
                version: "1.6.0",
            },
            observables: rule
                .group_by
                .iter()
                .zip(&alert.key)
                .filter_map(|(name, value)| Observable::of(name, value))
                .collect(),
            severity: rule.severity.caption(),
            severity_id: rule.severity.ocsf_id(),
            start_time: alert.window_start_ms,
            status_id: if alert.activity == Activity::Close {
                4
            } else {
                1
            },
            time: alert.time_ms(),
            type_uid: 200400 + alert.activity as u32,
            unmapped: Unmapped {
                aggregate: rule.aggregate,
                count: alert.count,
                group_key,
                input_kind: rule.kind,
                labels: &rule.labels,
                sample_event_ids: &alert.sample_ids,
                threshold: &rule.threshold,
                value: alert.value,
            },
            evidences,
        })
    }
}

/// One evidence sample as a finding carries it: `{"data": ...}`.
enum Evidence<'a> {
    /// A one-line JSON object that reads as a `Value`: embedded as it is.
    Raw(&'a RawValue),
    /// A JSON object on several lines (a pretty-printed record): written
    /// back on one, so the finding stays one line. Also every sample of
    /// [`tree`], parsed.
    Parsed(Value),
    /// Anything else (a flow or host log line, damaged JSON):
    /// `{"message": text}`.
    Message(&'a str),
}

impl<'a> Evidence<'a> {
    fn of(text: &'a str) -> Self {
        if !text.trim_start().starts_with('{') {
            // Not an object (a flow or host log line): nothing to parse.
            return Evidence::Message(text);
        }
        if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_none() {
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

    /// The sample's `data` as a tree.
    fn into_data(self) -> Value {
        match self {
            Evidence::Raw(raw) => match serde_json::from_str::<Value>(raw.get()) {
                Ok(value) => value,
                Err(_) => json!({ "message": raw.get() }),
            },
            Evidence::Parsed(value) => value,
            Evidence::Message(text) => json!({ "message": text }),
        }
    }
}

impl Serialize for Evidence<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            Evidence::Raw(raw) => map.serialize_entry("data", raw)?,
            Evidence::Parsed(value) => map.serialize_entry("data", value)?,
            Evidence::Message(message) => map.serialize_entry("data", &Message { message })?,
        }
        map.end()
    }
}

/// A sample that is not an object, as a finding carries it.
#[derive(serde::Serialize)]
struct Message<'a> {
    message: &'a str,
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

/// The group value of a field the events did not have.
const MISSING_GROUP_VALUE: &str = "-";

/// OCSF observable `type_id` and its caption for a group-by field: from
/// the value where its form says it (an IP address, an ARN or an AWS
/// resource id, a port number of a port field), else from the field's
/// name (a user or host field); 99 (Other) when neither tells.
fn observable_type(name: &str, value: &str) -> (u8, &'static str) {
    let field = name
        .rsplit(['.', '$'])
        .next()
        .unwrap_or(name)
        .trim_start_matches('@')
        .to_ascii_lowercase();
    if value.parse::<std::net::IpAddr>().is_ok() {
        (2, "IP Address")
    } else if value.starts_with("arn:") || is_aws_resource_id(value) {
        (10, "Resource UID")
    } else if field.ends_with("port") && value.parse::<u16>().is_ok() {
        (11, "Port")
    } else if matches!(
        field.as_str(),
        "user" | "username" | "user_name" | "ruser" | "logname"
    ) {
        (4, "User Name")
    } else if matches!(field.as_str(), "host" | "hostname") {
        (1, "Hostname")
    } else if is_email(value) {
        (5, "Email Address")
    } else {
        (99, "Other")
    }
}

/// An AWS resource id: `i-`, `eni-`, `vpc-`, `subnet-`, `sg-`... then 8
/// or 17 hex digits.
fn is_aws_resource_id(value: &str) -> bool {
    const PREFIXES: [&str; 12] = [
        "i", "eni", "vpc", "subnet", "sg", "vol", "ami", "igw", "nat", "rtb", "acl", "snap",
    ];
    value.split_once('-').is_some_and(|(prefix, id)| {
        PREFIXES.contains(&prefix)
            && matches!(id.len(), 8 | 17)
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// `local@domain.tld` without spaces (OCSF `email_t`'s form).
fn is_email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.contains(char::is_whitespace)
            && !domain.contains('@')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit's cases: an email address was an IP address, an ARN a
    /// user name, `reportName` a port, and sshd's `src_ip`, `host` and
    /// `user` were Other.
    #[test]
    fn observables_are_typed_by_value_and_field() {
        for (name, value, expected) in [
            ("sourceIPAddress", "203.0.113.7", 2),
            ("src_ip", "203.0.113.7", 2),
            ("srcaddr", "2001:db8::1", 2),
            ("sourceIPAddress", "cloudtrail.amazonaws.com", 99),
            (
                "userIdentity.arn",
                "arn:aws:iam::111122223333:user/alice",
                10,
            ),
            ("interface-id", "eni-0a1b2c3d4e5f67890", 10),
            ("@log_stream", "i-0a1b2c3d4e5f67890", 10),
            ("dstport", "22", 11),
            ("src_port", "50002", 11),
            ("requestParameters.reportName", "weekly", 99),
            ("user", "root", 4),
            ("userIdentity.userName", "alice", 4),
            ("$.userIdentity.userName", "alice@example.com", 4),
            ("host", "ip-10-0-0-5", 1),
            ("requestParameters.emailAddress", "alice@example.com", 5),
            ("recipientAccountId", "111122223333", 99),
            ("eventName", "ConsoleLogin", 99),
        ] {
            assert_eq!(observable_type(name, value).0, expected, "{name} = {value}");
        }
    }

    #[test]
    fn a_missing_group_value_is_no_observable() {
        assert!(Observable::of("srcaddr", "-").is_none());
        let observable = Observable::of("srcaddr", "10.0.0.5").expect("observable");
        assert_eq!(
            (observable.type_id, observable.type_name),
            (2, "IP Address")
        );
    }
}
