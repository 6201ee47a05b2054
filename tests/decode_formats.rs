//! Behaviour tests for every input format the decoders accept, and for the
//! malformed inputs they must dead-letter without stopping.

use std::io::{Read, Write};

use base64::Engine;
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use trailwatch::decode::framing::{frame, Frame};
use trailwatch::decode::testing::Collector;
use trailwatch::decode::{
    kpl, DecodeConfig, DecodeErrorReason as R, Decoder, DecoderKind, FlowFormat,
};
use trailwatch::event::{EventKind, FieldValue};
use trailwatch::fields::{FieldPath, FieldPlans};

fn plans() -> FieldPlans {
    let mut plans = FieldPlans::default();
    for p in [
        "eventName",
        "userIdentity.arn",
        "responseElements.ConsoleLogin",
        "@log_group",
    ] {
        plans.cloudtrail.slot_for(&FieldPath::parse(p).unwrap());
    }
    for p in ["srcaddr", "dstport", "action", "log-status", "@log_stream"] {
        plans.vpcflow.slot_for(&FieldPath::parse(p).unwrap());
    }
    for p in ["user", "src_ip", "program", "@log_stream"] {
        plans.hostlog.slot_for(&FieldPath::parse(p).unwrap());
    }
    plans
}

fn decode_with(config: DecodeConfig, records: &[&[u8]]) -> Collector {
    let mut decoder = Decoder::new(config, &plans());
    let mut out = Collector::new();
    for record in records {
        decoder.decode(record, &mut out);
    }
    out
}

fn decode(records: &[&[u8]]) -> Collector {
    decode_with(DecodeConfig::default(), records)
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn ct(name: &str, id: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333"}},"eventTime":"2024-03-01T12:00:05Z","eventSource":"signin.amazonaws.com","eventName":"{name}","awsRegion":"us-east-1","responseElements":{{"ConsoleLogin":"Failure"}},"eventID":"{id}","recipientAccountId":"111122223333"}}"#
    )
}

fn str_field(value: &FieldValue<'_>) -> Option<String> {
    match value {
        FieldValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

const FLOW: &str = "2 123456789012 eni-0a1b 10.0.0.1 203.0.113.9 50000 22 6 10 840 1709294400 1709294460 REJECT OK";
const SU: &str = "Mar  1 12:00:01 ip-10-0-0-5 su: pam_unix(su:auth): authentication failure; logname=ec2-user uid=1000 euid=0 tty=pts/0 ruser=ec2-user rhost=  user=dbdev";
const SSHD: &str = "Mar  1 12:00:02 ip-10-0-0-5 sshd[1234]: Failed password for invalid user admin from 203.0.113.9 port 50000 ssh2";

#[test]
fn single_cloudtrail_record() {
    let out = decode(&[ct("ConsoleLogin", "e1").as_bytes()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let event = &out.events[0];
    assert_eq!(event.kind, EventKind::CloudTrail);
    assert_eq!(event.time_ms, 1_709_294_405_000);
    assert_eq!(event.fields.len(), 4);
    assert_eq!(str_field(&event.fields[0]).as_deref(), Some("ConsoleLogin"));
    assert_eq!(str_field(&event.fields[2]).as_deref(), Some("Failure"));
    assert_eq!(event.fields[3], FieldValue::Missing);
    assert_eq!(event.id.as_deref(), Some("e1"));
    assert_eq!(event.account.as_deref(), Some("111122223333"));
    assert_eq!(event.region.as_deref(), Some("us-east-1"));
    assert_eq!(event.text, ct("ConsoleLogin", "e1"));
}

fn s3_file(elements: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, elements.join(","))
}

#[test]
fn s3_file_plain_gzip_and_bad_elements() {
    let good = s3_file(&[ct("A", "1"), ct("B", "2")]);
    let out = decode(&[good.as_bytes(), &gz(good.as_bytes())]);
    assert_eq!(out.events.len(), 4);
    assert!(out.errors.is_empty());

    let bad_elements = s3_file(&[
        ct("A", "1"),
        r#"{"eventVersion":"1.08","eventName":"NoTime"}"#.to_string(),
        r#"{"eventTime":"not a time"}"#.to_string(),
        r#"{"eventTime":5}"#.to_string(),
        r#"{"eventTime":"2024-03-01T12:00:05Z","eventName":{"x":[1]}}"#.to_string(),
        "42".to_string(),
        ct("B", "2"),
    ]);
    let out = decode(&[bad_elements.as_bytes()]);
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.events[1].fields[0], FieldValue::Object);
    assert_eq!(
        out.reasons(),
        vec![
            R::MissingEventTime,
            R::BadEventTime,
            R::WrongType,
            R::WrongType
        ]
    );
    assert_eq!(
        out.errors[0].original,
        br#"{"eventVersion":"1.08","eventName":"NoTime"}"#
    );
    assert_eq!(out.errors[3].original, b"42");
}

#[test]
fn json_array_and_json_lines_via_framing() {
    let array = format!("[{},{}]", ct("A", "1"), ct("B", "2"));
    assert_eq!(decode(&[array.as_bytes()]).events.len(), 2);

    let lines = format!("{}\n{{broken\n{}\n", ct("A", "1"), ct("B", "2"));
    let mut decoder = Decoder::new(DecodeConfig::default(), &plans());
    let mut out = Collector::new();
    let consumed = frame(lines.as_bytes(), true, &mut |f| match f {
        Frame::Record(bytes) => decoder.decode(bytes, &mut out),
        Frame::Invalid { reason, .. } => assert_eq!(reason, R::InvalidJson),
    });
    assert_eq!(consumed, lines.len());
    assert_eq!(out.events.len(), 2);
}

/// One Kafka message or Kinesis record may hold JSON lines (a batching
/// forwarder): each line is decoded on its own, whatever its shape, and a
/// bad line is dead-lettered alone. Characters after an object on its own
/// line still make the whole record an error.
#[test]
fn json_lines_in_one_record_are_decoded_each() {
    let eventbridge = format!(
        r#"{{"version":"0","detail-type":"AWS API Call via CloudTrail","detail":{}}}"#,
        ct("DeleteTrail", "eb")
    );
    let envelope = logs_envelope("DATA_MESSAGE", &[SU.to_string()]);
    let s3 = s3_file(&[ct("ConsoleLogin", "s1"), ct("ConsoleLogin", "s2")]);
    let lines = [
        ct("ConsoleLogin", "a"),
        eventbridge,
        envelope,
        s3,
        "{\"eventVersion\":broken".to_string(),
    ];
    let record = lines.join("\n");
    let s3_first = [lines[3].as_str(), lines[0].as_str()].join("\r\n");
    let out = decode(&[record.as_bytes(), &gz(s3_first.as_bytes())]);
    let ids: Vec<Option<&str>> = out.events.iter().map(|e| e.id.as_deref()).collect();
    assert_eq!(
        ids,
        vec![
            Some("a"),
            Some("eb"),
            Some("ev0"),
            Some("s1"),
            Some("s2"),
            Some("s1"),
            Some("s2"),
            Some("a")
        ],
        "each line once, in order"
    );
    assert_eq!(out.reasons(), vec![R::InvalidJson]);
    assert_eq!(out.errors[0].original, lines[4].as_bytes());

    // Each shape first: its own parse must see the line after it.
    for first in &lines[..4] {
        let record = format!("{first}\n{}", ct("ConsoleLogin", "next"));
        let out = decode(&[record.as_bytes()]);
        assert!(out.errors.is_empty(), "{first}: {:?}", out.errors);
        let last = out.events.last().and_then(|e| e.id.as_deref());
        assert_eq!(last, Some("next"), "{first}");
    }

    let same_line = format!("{} trailing", ct("ConsoleLogin", "t"));
    let out = decode(&[same_line.as_bytes()]);
    assert!(out.events.is_empty());
    assert_eq!(out.reasons(), vec![R::InvalidJson]);
    assert_eq!(out.errors[0].original, same_line.as_bytes());
}

#[test]
fn eventbridge_detail_types() {
    let wrap = |detail_type: &str, detail: &str| {
        format!(
            r#"{{"version":"0","id":"x","detail-type":"{detail_type}","source":"aws.signin","account":"1","time":"2024-03-01T12:00:05Z","region":"us-east-1","resources":[],"detail":{detail}}}"#
        )
    };
    let api = wrap("AWS API Call via CloudTrail", &ct("CreateUser", "1"));
    let signin = wrap(
        "AWS Console Sign In via CloudTrail",
        &ct("ConsoleLogin", "2"),
    );
    let other = wrap(
        "EC2 Instance State-change Notification",
        r#"{"state":"running"}"#,
    );
    let out = decode(&[api.as_bytes(), signin.as_bytes(), other.as_bytes()]);
    assert_eq!(out.events.len(), 2);
    assert_eq!(
        str_field(&out.events[1].fields[0]).as_deref(),
        Some("ConsoleLogin")
    );
    assert_eq!(out.reasons(), vec![R::UnknownFormat]);
}

fn logs_envelope(message_type: &str, messages: &[String]) -> String {
    let events: Vec<String> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                r#"{{"id":"ev{i}","timestamp":1709294401000,"message":{}}}"#,
                serde_json::to_string(m).unwrap()
            )
        })
        .collect();
    format!(
        r#"{{"messageType":"{message_type}","owner":"123456789012","logGroup":"grp","logStream":"stream-1","subscriptionFilters":["f"],"logEvents":[{}]}}"#,
        events.join(",")
    )
}

#[test]
fn cloudwatch_logs_data_and_control_messages() {
    let data = logs_envelope(
        "DATA_MESSAGE",
        &[
            ct("ConsoleLogin", "e1"),
            FLOW.to_string(),
            SU.to_string(),
            SSHD.to_string(),
            r#"{"eventName":"NoTime"}"#.to_string(),
            "2 x".to_string(),
        ],
    );
    let control = logs_envelope(
        "CONTROL_MESSAGE",
        &["CWL CONTROL MESSAGE: Checking health of destination".into()],
    );
    let out = decode(&[&gz(data.as_bytes()), &gz(control.as_bytes())]);
    assert_eq!(out.control_messages, 1);
    assert_eq!(out.reasons(), vec![R::MissingEventTime, R::BadFlowRecord]);
    assert_eq!(out.errors[1].original, b"2 x");
    let kinds: Vec<EventKind> = out.events.iter().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, vec![CloudTrail, VpcFlow, HostLog, HostLog]);
    let trail = &out.events[0];
    assert_eq!(str_field(&trail.fields[3]).as_deref(), Some("grp"));
    let flow = &out.events[1];
    assert_eq!(flow.time_ms, 1_709_294_400_000);
    assert_eq!(flow.id.as_deref(), Some("ev1"));
    assert_eq!(flow.fields[1], FieldValue::Number(22.0));
    assert_eq!(str_field(&flow.fields[4]).as_deref(), Some("stream-1"));
    let su = &out.events[2];
    assert_eq!(su.time_ms, 1_709_294_401_000);
    assert_eq!(str_field(&su.fields[0]).as_deref(), Some("dbdev"));
    assert_eq!(su.account.as_deref(), Some("123456789012"));
    let sshd = &out.events[3];
    assert_eq!(str_field(&sshd.fields[0]).as_deref(), Some("admin"));
    assert_eq!(str_field(&sshd.fields[1]).as_deref(), Some("203.0.113.9"));
    assert_eq!(str_field(&sshd.fields[2]).as_deref(), Some("sshd"));
}

/// An S3 file whose other top-level key holds a JSON escape is read like
/// any other: the key failed the whole file (before `Records`: every
/// record lost; after it: the records delivered and the file
/// dead-lettered as well, so a re-drive counted them twice).
#[test]
fn an_s3_file_with_an_escaped_key_is_read_whole() {
    let records = [ct("ConsoleLogin", "e1"), ct("ConsoleLogin", "e2")];
    for file in [
        format!(r#"{{"caf\u00e9":1,"Records":[{}]}}"#, records.join(",")),
        format!(r#"{{"Records":[{}],"a\"b":{{"x":1}}}}"#, records.join(",")),
    ] {
        let out = decode(&[file.as_bytes()]);
        assert!(out.errors.is_empty(), "{file}: {:?}", out.errors);
        assert_eq!(out.events.len(), 2, "{file}");
    }
}

/// A record (a Kafka message, a log line) that starts with a UTF-8 byte
/// order mark decodes as it would without one.
#[test]
fn a_record_with_a_byte_order_mark_decodes() {
    let record = format!("\u{feff}{}", ct("ConsoleLogin", "e1"));
    let out = decode(&[record.as_bytes()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.events.len(), 1);
}

/// A synced trail bucket holds digest files beside the logs
/// (`CloudTrail-Digest/`, the documented structure): each is skipped and
/// counted, not dead-lettered as a JSON object of no known format.
#[test]
fn cloudtrail_digest_files_are_skipped_and_counted() {
    let digest = r#"{"awsAccountId":"111122223333","digestStartTime":"2024-03-01T11:00:00Z","digestEndTime":"2024-03-01T12:00:00Z","digestS3Bucket":"trail-bucket","digestS3Object":"AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2024/03/01/111122223333_CloudTrail-Digest_us-east-1_trail_us-east-1_20240301T120000Z.json.gz","digestPublicKeyFingerprint":"8eba5db5bea9b640d1f2d2e5c7e2a1b2","digestSignatureAlgorithm":"SHA256withRSA","newestEventTime":"2024-03-01T11:59:59Z","oldestEventTime":"2024-03-01T11:00:01Z","previousDigestS3Bucket":null,"previousDigestS3Object":null,"previousDigestHashValue":null,"previousDigestHashAlgorithm":null,"previousDigestSignature":null,"logFiles":[{"s3Bucket":"trail-bucket","s3Object":"AWSLogs/111122223333/CloudTrail/us-east-1/2024/03/01/x.json.gz","hashValue":"9bf0b0a1","hashAlgorithm":"SHA-256","newestEventTime":"2024-03-01T11:59:59Z","oldestEventTime":"2024-03-01T11:00:01Z"}]}"#;
    let out = decode(&[digest.as_bytes(), &gz(digest.as_bytes())]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert!(out.events.is_empty());
    assert_eq!(out.digest_files, 2);
}

/// Flow logs read through CloudWatch Logs have no header line. A record
/// of a custom format the decoder was not told about is dead-lettered,
/// naming the fix, rather than passing for a host log that no flow rule
/// sees (as it did); with the format configured it is a flow record. Host
/// lines without a syslog stamp (`sshd -e` in a container) and a kernel
/// firewall line stay host logs.
#[test]
fn an_undeclared_custom_flow_format_through_cloudwatch_logs_is_dead_lettered() {
    let custom = "5 vpc-0123456789abcdef0 subnet-0a1b2c3d4e5f60001 - eni-0fe1dc2ba3b4c5d60 111122223333 IPv4 10.0.2.0 203.0.113.200 43210 443 10.0.2.15 203.0.113.200 6 900000 650 1709271000 1709271060 REJECT 2 OK egress 8";
    let container_sshd = "Invalid user admin from 203.0.113.9 port 50000";
    let kernel = "kernel: REJECT IN=eth0 OUT= SRC=203.0.113.9 DST=10.0.0.5 LEN=60 PROTO=TCP";
    let data = logs_envelope(
        "DATA_MESSAGE",
        &[
            custom.to_string(),
            container_sshd.to_string(),
            kernel.to_string(),
        ],
    );
    let out = decode(&[&gz(data.as_bytes())]);
    assert_eq!(out.reasons(), vec![R::BadFlowRecord]);
    assert!(
        out.errors[0].error.detail.contains("flow_format"),
        "{}",
        out.errors[0].error.detail
    );
    let kinds: Vec<EventKind> = out.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::HostLog, EventKind::HostLog]);

    let config = DecodeConfig {
        flow_format: Some(
            FlowFormat::parse(
                "${version} ${vpc-id} ${subnet-id} ${instance-id} ${interface-id} ${account-id} \
                 ${type} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${pkt-srcaddr} \
                 ${pkt-dstaddr} ${protocol} ${bytes} ${packets} ${start} ${end} ${action} \
                 ${tcp-flags} ${log-status} ${flow-direction} ${traffic-path}",
            )
            .unwrap(),
        ),
        ..DecodeConfig::default()
    };
    let out = decode_with(config, &[&gz(data.as_bytes())]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let kinds: Vec<EventKind> = out.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventKind::VpcFlow, EventKind::HostLog, EventKind::HostLog]
    );
    assert_eq!(
        str_field(&out.events[0].fields[2]).as_deref(),
        Some("REJECT")
    );
}

/// An application's JSON log through CloudWatch Logs is dead-lettered as
/// of no known format (it was "missing eventTime", as if a broken
/// CloudTrail record); a CloudTrail record without its time still says so.
#[test]
fn a_json_log_event_of_no_known_format_says_so() {
    let data = logs_envelope(
        "DATA_MESSAGE",
        &[
            r#"{"level":"error","msg":"x"}"#.to_string(),
            r#"{"eventName":"NoTime"}"#.to_string(),
        ],
    );
    let out = decode(&[&gz(data.as_bytes())]);
    assert_eq!(out.reasons(), vec![R::UnknownFormat, R::MissingEventTime]);
    assert!(
        out.errors[0].error.detail.contains("no known format"),
        "{}",
        out.errors[0].error.detail
    );
    assert_eq!(out.errors[0].original, br#"{"level":"error","msg":"x"}"#);
}

/// An EventBridge rule can target a log group: each log event is then a
/// whole EventBridge event, its CloudTrail record in `detail`.
#[test]
fn eventbridge_events_in_a_log_group_are_unwrapped() {
    let wrap = |detail_type: &str, id: &str| {
        format!(
            r#"{{"version":"0","id":"{id}","detail-type":"{detail_type}","source":"aws.cloudtrail","account":"111122223333","time":"2024-03-01T12:00:05Z","region":"us-east-1","resources":[],"detail":{}}}"#,
            ct("StopLogging", id)
        )
    };
    let data = logs_envelope(
        "DATA_MESSAGE",
        &[
            wrap("AWS API Call via CloudTrail", "eb1"),
            wrap("EC2 Instance State-change Notification", "eb2"),
            ct("StopLogging", "plain"),
        ],
    );
    let out = decode(&[&gz(data.as_bytes())]);
    let names: Vec<Option<String>> = out.events.iter().map(|e| str_field(&e.fields[0])).collect();
    assert_eq!(
        names,
        vec![Some("StopLogging".into()), Some("StopLogging".into())]
    );
    // The envelope's facts reach the record inside the EventBridge event.
    assert_eq!(str_field(&out.events[0].fields[3]).as_deref(), Some("grp"));
    assert_eq!(out.reasons(), vec![R::UnknownFormat]);
}

/// A log event of the wrong shape (a fractional or string timestamp, a
/// numeric id) is dead-lettered alone, as its own JSON; its neighbours in
/// the envelope are decoded. A DATA_MESSAGE without `logEvents` is
/// malformed, not an empty batch.
#[test]
fn one_malformed_log_event_never_hides_its_neighbours() {
    let good = |id: &str| {
        format!(
            r#"{{"id":"{id}","timestamp":1709294401000,"message":{}}}"#,
            serde_json::to_string(SU).unwrap()
        )
    };
    let bad = [
        r#"{"id":"b1","timestamp":1709294401000.5,"message":"x"}"#,
        r#"{"id":"b2","timestamp":"1709294401000","message":"x"}"#,
        r#"{"id":3,"timestamp":1709294401000,"message":"x"}"#,
        r#"7"#,
    ];
    let events = [
        good("g1"),
        bad[0].into(),
        good("g2"),
        bad[1].into(),
        bad[2].into(),
        bad[3].into(),
        good("g3"),
    ];
    let data = format!(
        r#"{{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"grp","logStream":"s","logEvents":[{}]}}"#,
        events.join(",")
    );
    let missing = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s"}"#;
    let empty = r#"{"messageType":"DATA_MESSAGE","owner":"1","logGroup":"g","logStream":"s","logEvents":[]}"#;
    let out = decode(&[&gz(data.as_bytes()), missing.as_bytes(), empty.as_bytes()]);
    let ids: Vec<Option<&str>> = out.events.iter().map(|e| e.id.as_deref()).collect();
    assert_eq!(ids, vec![Some("g1"), Some("g2"), Some("g3")]);
    assert_eq!(out.reasons(), vec![R::BadCloudWatchLogs; 5]);
    let originals: Vec<&[u8]> = out.errors.iter().map(|e| e.original.as_slice()).collect();
    let mut expected: Vec<&[u8]> = bad.iter().map(|b| b.as_bytes()).collect();
    expected.push(missing.as_bytes());
    assert_eq!(originals, expected);
    assert!(
        out.errors[4].error.detail.contains("without logEvents"),
        "{:?}",
        out.errors[4].error
    );
}

#[test]
fn awslogs_base64_wrapper() {
    let data = gz(logs_envelope("DATA_MESSAGE", &[SSHD.to_string()]).as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(data);
    let wrapper = format!(r#"{{"awslogs":{{"data":"{encoded}"}}}}"#);
    let bad = r#"{"awslogs":{"data":"%%%"}}"#;
    let out = decode(&[wrapper.as_bytes(), bad.as_bytes()]);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.reasons(), vec![R::BadBase64]);
}

#[test]
fn kpl_aggregate_of_cloudwatch_envelopes() {
    let one = gz(logs_envelope("DATA_MESSAGE", &[SU.to_string(), SSHD.to_string()]).as_bytes());
    let two = gz(logs_envelope("DATA_MESSAGE", &[FLOW.to_string()]).as_bytes());
    let control = gz(logs_envelope("CONTROL_MESSAGE", &[]).as_bytes());
    let aggregate = kpl::aggregate(&[&one, &two, &control, b"\xff\xfe"]);
    let mut corrupt = aggregate.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let out = decode(&[&aggregate, &corrupt]);
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.control_messages, 1);
    assert_eq!(out.reasons(), vec![R::InvalidUtf8, R::KplDigestMismatch]);
    assert_eq!(out.errors[1].original, corrupt);
}

/// Relayed syslog lines (a `<PRI>` before the classic form, or RFC 5424)
/// keep their program, so an sshd failure keeps its client address and
/// user, through CloudWatch Logs and from a file alike.
#[test]
fn priority_and_rfc5424_syslog_lines_keep_their_program() {
    let relayed = format!("<38>{SSHD}");
    let rfc5424 = "<38>1 2024-03-01T12:00:02Z ip-10-0-0-5 sshd 1234 - - Failed password for invalid user admin from 203.0.113.9 port 50000 ssh2";
    let data = logs_envelope("DATA_MESSAGE", &[relayed.clone(), rfc5424.to_string()]);
    let file = format!("{relayed}\n{rfc5424}\n");
    for out in [decode(&[&gz(data.as_bytes())]), decode(&[file.as_bytes()])] {
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.events.len(), 2);
        for event in &out.events {
            assert_eq!(str_field(&event.fields[0]).as_deref(), Some("admin"));
            assert_eq!(str_field(&event.fields[1]).as_deref(), Some("203.0.113.9"));
            assert_eq!(str_field(&event.fields[2]).as_deref(), Some("sshd"));
        }
    }
}

#[test]
fn flow_default_custom_header_and_config_format() {
    let nodata = "2 123456789012 eni-0a1b - - - - - - - 1709294400 1709294460 - NODATA";
    let skipdata = "2 123456789012 eni-0a1b - - - - - - - 1709294400 1709294460 - SKIPDATA";
    let file = format!("{FLOW}\n{nodata}\n{skipdata}\n");
    let out = decode(&[file.as_bytes()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.events[1].fields[0], FieldValue::Missing);
    assert_eq!(
        str_field(&out.events[2].fields[3]).as_deref(),
        Some("SKIPDATA")
    );

    // A header line on the stream switches the format for later records.
    let custom = "version vpc-id srcaddr dstport start action region\n5 vpc-1 10.1.1.1 443 1709294400 ACCEPT eu-west-1\n";
    let out = decode(&[gz(custom.as_bytes()).as_slice()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].region.as_deref(), Some("eu-west-1"));
    assert_eq!(out.events[0].fields[1], FieldValue::Number(443.0));

    // A format from the configuration.
    let config = DecodeConfig {
        flow_format: Some(FlowFormat::parse("${srcaddr} ${dstport} ${start} ${action}").unwrap()),
        forced: DecoderKind::VpcFlow,
        ..DecodeConfig::default()
    };
    let out = decode_with(config, &[b"10.2.2.2 3389 1709294400 REJECT", b"too few"]);
    assert_eq!(out.events.len(), 1);
    assert_eq!(
        str_field(&out.events[0].fields[2]).as_deref(),
        Some("REJECT")
    );
    assert_eq!(out.reasons(), vec![R::BadFlowRecord]);
}

/// A header may name a field newer than this build: it is a column too,
/// so the header still takes effect and the fields after it are read where
/// they are (they used to be read with the format before: `action` from
/// the wrong column, and a REJECT rule silent). The configuration stays
/// strict: there a name unknown here is a misspelling.
#[test]
fn a_header_naming_a_field_unknown_here_still_sets_the_format() {
    let file = format!(
        "{FLOW}\nversion account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end encryption-status action\n\
         10 123456789012 eni-0a1b 10.0.0.9 203.0.113.9 50000 22 6 10 840 1709294400 1709294460 1 REJECT\n"
    );
    let out = decode(&[file.as_bytes()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.events.len(), 2);
    let custom = &out.events[1];
    assert_eq!(str_field(&custom.fields[0]).as_deref(), Some("10.0.0.9"));
    assert_eq!(str_field(&custom.fields[2]).as_deref(), Some("REJECT"));
    assert_eq!(
        custom.fields[3],
        FieldValue::Missing,
        "no log-status column"
    );
    assert!(FlowFormat::parse("version srcaddr encryption-status").is_err());
    // Not field names: not a header (and not a flow record either).
    let out = decode(&[b"version srcaddr Encryption$Status"]);
    assert_eq!(out.reasons(), vec![R::UnknownFormat]);
}

#[test]
fn host_log_lines() {
    let out = decode(&[format!("{SU}\n{SSHD}\n").as_bytes(), b"just some words"]);
    assert_eq!(out.events.len(), 2);
    assert!(out.events.iter().all(|e| e.kind == EventKind::HostLog));
    assert_eq!(
        str_field(&out.events[1].fields[1]).as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(out.reasons(), vec![R::UnknownFormat]);
}

#[test]
fn malformed_records_are_dead_lettered() {
    let good = ct("A", "1");
    let truncated_json = &good.as_bytes()[..good.len() - 10];
    let full = gz(s3_file(std::slice::from_ref(&good)).as_bytes());
    let truncated_gzip = &full[..full.len() - 12];
    let invalid_utf8 = b"{\"eventTime\":\"\xff\xfe\"}";
    let out = decode(&[
        truncated_json,
        truncated_gzip,
        invalid_utf8,
        b"   ",
        good.as_bytes(),
    ]);
    assert_eq!(
        out.reasons(),
        vec![
            R::InvalidJson,
            R::TruncatedGzip,
            R::InvalidUtf8,
            R::EmptyRecord
        ]
    );
    assert_eq!(out.events.len(), 1);
}

/// An S3 file (or a JSON array) cut short after some of its records is
/// read as far as it goes, and dead-lettered whole. Its dead letter says
/// how many records were already read, so that an operator re-driving it
/// knows those would be counted twice; one broken at its start says
/// nothing of the kind.
#[test]
fn a_file_broken_after_some_records_names_them_in_its_dead_letter() {
    let whole = s3_file(&[ct("A", "1"), ct("B", "2"), ct("C", "3")]);
    let cut = &whole[..whole.len() - 40];
    let array = format!("[{},{},", ct("A", "1"), ct("B", "2"));
    let broken_at_start = r#"{"Records":[}"#;
    let out = decode(&[cut.as_bytes(), array.as_bytes(), broken_at_start.as_bytes()]);
    assert_eq!(out.events.len(), 4);
    assert_eq!(out.reasons(), vec![R::InvalidJson; 3]);
    let details: Vec<&str> = out.errors.iter().map(|c| c.error.detail.as_str()).collect();
    assert!(
        details[0].contains("the 2 record(s) before the error were already read"),
        "{}",
        details[0]
    );
    assert!(
        details[1].contains("the 2 record(s) before the error"),
        "{}",
        details[1]
    );
    assert!(!details[2].contains("record(s) before"), "{}", details[2]);
    assert_eq!(out.errors[0].original, cut.as_bytes());
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_member = format!(
        r#"{{"eventTime":"2024-03-01T12:00:05Z","requestParameters":{}1{}}}"#,
        "{\"a\":".repeat(100_000),
        "}".repeat(100_000)
    );
    let file = s3_file(&[
        ct("A", "1"),
        deep_array.clone(),
        deep_member.clone(),
        ct("B", "2"),
    ]);
    let out = decode(&[file.as_bytes(), deep_array.as_bytes()]);
    // The deep array is not a record (wrong_type); the deep member is a valid
    // record whose deep part is skipped iteratively.
    assert_eq!(out.reasons(), vec![R::WrongType, R::WrongType]);
    assert_eq!(out.events.len(), 3);
}

#[test]
fn record_size_limits() {
    let padding = "x".repeat(10 * 1024 * 1024);
    let big = format!(
        r#"{{"eventVersion":"1.08","eventTime":"2024-03-01T12:00:05Z","eventName":"Big","requestParameters":{{"blob":"{padding}"}}}}"#
    );
    let out = decode(&[big.as_bytes()]);
    assert_eq!(out.events.len(), 1);
    let small = DecodeConfig {
        max_record_bytes: 1024 * 1024,
        ..DecodeConfig::default()
    };
    let out = decode_with(small, &[big.as_bytes()]);
    assert_eq!(out.reasons(), vec![R::TooLarge]);
}

#[test]
fn gzip_bomb_is_capped() {
    // 1 GiB of zeros: one 1 MiB gzip member repeated 1024 times (gzip allows
    // concatenated members), so the test itself stays small and fast.
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    std::io::copy(&mut std::io::repeat(0).take(1 << 20), &mut member).unwrap();
    let member = member.finish().unwrap();
    let bomb: Vec<u8> = member
        .iter()
        .copied()
        .cycle()
        .take(member.len() * 1024)
        .collect();
    let config = DecodeConfig {
        max_decompressed_bytes: 8 * 1024 * 1024,
        ..DecodeConfig::default()
    };
    let out = decode_with(config, &[&bomb, ct("A", "1").as_bytes()]);
    assert_eq!(out.reasons(), vec![R::DecompressedTooLarge]);
    assert_eq!(out.events.len(), 1);
}

#[test]
fn every_reason_has_a_distinct_label() {
    let labels: std::collections::BTreeSet<&str> = R::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), R::ALL.len());
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = Decoder::new(DecodeConfig::default(), &plans());
        let mut out = Collector::new();
        decoder.decode(&bytes, &mut out);
        let mut prefixed = b"{\"Records\":[".to_vec();
        prefixed.extend_from_slice(&bytes);
        decoder.decode(&prefixed, &mut out);
        let mut gz_prefixed = vec![0x1f, 0x8b];
        gz_prefixed.extend_from_slice(&bytes);
        decoder.decode(&gz_prefixed, &mut out);
        let mut kpl_prefixed = kpl::MAGIC.to_vec();
        kpl_prefixed.extend_from_slice(&bytes);
        decoder.decode(&kpl_prefixed, &mut out);
    }

    #[test]
    fn frame_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), at_eof in any::<bool>()) {
        let consumed = frame(&bytes, at_eof, &mut |_| {});
        prop_assert!(consumed <= bytes.len());
        if at_eof {
            prop_assert_eq!(consumed, bytes.len());
        }
    }

    /// A plain line of the default flow format takes a short way to the
    /// flow decoder (split in the pass that proves it plain ASCII): it
    /// decodes exactly as the same line does when a line break makes it
    /// take the way through detection and line splitting. Lines the short
    /// way cannot prove plain (a quote, a bracket, a tab, a byte past
    /// ASCII, a space at the end) decode the same too.
    #[test]
    fn a_plain_flow_line_decodes_as_through_detection(
        fields in proptest::collection::vec(proptest::sample::select(vec![
            "123456789012", "eni-0a1b", "10.0.1.5", "203.0.113.50", "22", "6", "-",
            "1709294400", "1709294460", "17092944001", "x1709294400", "REJECT", "ACCEPT",
            "OK", "NODATA", "2", "1e3", "é", "", "\"a b\"", "[1]", "\t", "\u{7f}",
        ]), 11..=15),
        end in prop_oneof![Just(""), Just(" "), Just("\t")],
        forced in prop_oneof![Just(DecoderKind::Auto), Just(DecoderKind::VpcFlow)],
    ) {
        let line = format!("2 {}{end}", fields.join(" "));
        let config = DecodeConfig { forced, ..DecodeConfig::default() };
        let short = decode_with(config.clone(), &[line.as_bytes()]);
        let detected = decode_with(config, &[format!("{line}\n").as_bytes()]);
        prop_assert_eq!(format!("{:?}", short.events), format!("{:?}", detected.events));
        prop_assert_eq!(format!("{:?}", short.errors), format!("{:?}", detected.errors));
    }

    #[test]
    fn text_lines_never_panic(line in "[ -~]{0,200}") {
        let mut decoder = Decoder::new(DecodeConfig::default(), &plans());
        let mut out = Collector::new();
        decoder.decode(line.as_bytes(), &mut out);
        decoder.decode(format!("Mar  1 12:00:01 {line}").as_bytes(), &mut out);
        decoder.decode(format!("2 {line}").as_bytes(), &mut out);
    }
}
