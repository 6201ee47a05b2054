//! CloudWatch Logs subscription envelopes and the Lambda `awslogs` wrapper.
//!
//! Contract: [`parse_envelope`] reads `{messageType, owner, logGroup,
//! logStream, logEvents:[{id, timestamp, message}]}` borrowing from the
//! input; strings with escapes (a CloudTrail record inside `message`) are
//! owned. A malformed envelope is `bad_cloudwatch_logs` (or `invalid_json`,
//! `too_deep`). When only its log events are of the wrong shape (a string
//! `timestamp`, a numeric `id`), [`parse_envelope_by_event`] still reads
//! it, leaving each event as raw JSON for [`parse_log_event`]: one bad
//! event never hides the others. [`parse_awslogs`] reads
//! `{"awslogs":{"data":BASE64}}` and returns the decoded (still gzip)
//! bytes; bad base64 is `bad_base64`. The caller decodes each log event's
//! message on its own, so one bad message never hides the others either.

use std::borrow::Cow;

use base64::Engine;
use serde::Deserialize;

use crate::decode::json::classify;
use crate::decode::{DecodeError, DecodeErrorReason};

/// `messageType` of data messages.
pub const DATA_MESSAGE: &str = "DATA_MESSAGE";
/// `messageType` of control messages (dropped).
pub const CONTROL_MESSAGE: &str = "CONTROL_MESSAGE";

/// A JSON string, borrowed from the input when it has no escapes (serde
/// does not borrow through `Option<Cow<str>>` on its own).
#[derive(Debug, Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// The text of an optional [`Text`].
pub fn text_of<'s>(value: &'s Option<Text<'_>>) -> Option<&'s str> {
    value.as_ref().map(|t| t.0.as_ref())
}

/// A CloudWatch Logs subscription envelope, its log events read as `E`:
/// [`LogEvent`], or raw JSON (`&RawValue`) to read one by one.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "E: Deserialize<'de>"))]
pub struct LogsEnvelope<'a, E> {
    #[serde(borrow)]
    pub message_type: Cow<'a, str>,
    #[serde(borrow, default)]
    pub owner: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub log_group: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub log_stream: Option<Text<'a>>,
    /// `None` when absent: a `DATA_MESSAGE` without it is malformed.
    #[serde(default)]
    pub log_events: Option<Vec<E>>,
}

/// One log event of an envelope.
#[derive(Debug, Deserialize)]
pub struct LogEvent<'a> {
    #[serde(borrow, default)]
    pub id: Option<Text<'a>>,
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(borrow, default)]
    pub message: Option<Text<'a>>,
}

/// Parses an envelope from JSON text.
pub fn parse_envelope(text: &str) -> Result<LogsEnvelope<'_, LogEvent<'_>>, DecodeError> {
    serde_json::from_str(text).map_err(malformed)
}

/// Parses an envelope whose log events [`parse_envelope`] refused, leaving
/// each event raw for [`parse_log_event`].
pub fn parse_envelope_by_event(
    text: &str,
) -> Result<LogsEnvelope<'_, &serde_json::value::RawValue>, DecodeError> {
    serde_json::from_str(text).map_err(malformed)
}

/// Parses one raw log event of [`parse_envelope_by_event`].
pub fn parse_log_event(raw: &serde_json::value::RawValue) -> Result<LogEvent<'_>, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|error| {
        let error = malformed(error);
        DecodeError::new(error.reason, format!("log event: {}", error.detail))
    })
}

/// A value of the wrong type in an envelope is `bad_cloudwatch_logs`.
fn malformed(error: serde_json::Error) -> DecodeError {
    let classified = classify(error);
    match classified.reason {
        DecodeErrorReason::WrongType => {
            DecodeError::new(DecodeErrorReason::BadCloudWatchLogs, classified.detail)
        }
        _ => classified,
    }
}

#[derive(Deserialize)]
struct AwsLogs<'a> {
    #[serde(borrow)]
    awslogs: AwsLogsData<'a>,
}

#[derive(Deserialize)]
struct AwsLogsData<'a> {
    #[serde(borrow)]
    data: Cow<'a, str>,
}

/// Reads the Lambda-style `{"awslogs":{"data":BASE64}}` wrapper and returns
/// the decoded payload bytes.
pub fn parse_awslogs(text: &str) -> Result<Vec<u8>, DecodeError> {
    let wrapper: AwsLogs<'_> = serde_json::from_str(text).map_err(malformed)?;
    base64::engine::general_purpose::STANDARD
        .decode(wrapper.awslogs.data.trim().as_bytes())
        .map_err(|error| {
            DecodeError::new(
                DecodeErrorReason::BadBase64,
                format!("awslogs.data: {error}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelopes() {
        let text = r#"{"messageType":"DATA_MESSAGE","owner":"111","logGroup":"g","logStream":"s",
            "subscriptionFilters":["f"],"logEvents":[{"id":"1","timestamp":5,"message":"{\"a\":1}"}]}"#;
        let envelope = parse_envelope(text).unwrap();
        assert_eq!(envelope.message_type, DATA_MESSAGE);
        assert!(matches!(envelope.owner, Some(Text(Cow::Borrowed("111")))));
        assert_eq!(
            text_of(&envelope.log_events.as_ref().unwrap()[0].message),
            Some("{\"a\":1}")
        );
        let bad = parse_envelope(r#"{"messageType":5}"#).unwrap_err();
        assert_eq!(bad.reason, DecodeErrorReason::BadCloudWatchLogs);
    }

    #[test]
    fn awslogs_base64() {
        assert_eq!(
            parse_awslogs(r#"{"awslogs":{"data":"aGk="}}"#).unwrap(),
            b"hi"
        );
        let bad = parse_awslogs(r#"{"awslogs":{"data":"!!"}}"#).unwrap_err();
        assert_eq!(bad.reason, DecodeErrorReason::BadBase64);
    }
}
