//! Criterion micro-benchmarks of every decoder, through the auto-detecting
//! [`Decoder`] as the engine calls it: one CloudTrail record, an S3 log
//! file (plain and gzip), a CloudWatch Logs gzip envelope, an EventBridge
//! event, a KPL aggregate, one flow line and one host line. Throughput is
//! per event. Run: `cargo bench --bench decode`.

mod common;

use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trailwatch::decode::{DecodeConfig, DecodeError, DecodeSink, Decoder};
use trailwatch::event::Event;
use trailwatch::gen::GenKind;

/// Counts events; ignores errors (the inputs are valid).
#[derive(Default)]
struct Count {
    events: u64,
}

impl DecodeSink for Count {
    fn event(&mut self, event: &Event<'_>) {
        self.events += 1;
        criterion::black_box(event.time_ms);
    }

    fn error(&mut self, error: DecodeError, _original: &[u8]) {
        panic!("bench input failed to decode: {error}");
    }

    fn control_message(&mut self) {}

    fn digest_file(&mut self) {}
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn bench_decoders(c: &mut Criterion) {
    let rules = common::rules();
    let mut decoder = Decoder::new(DecodeConfig::default(), rules.plans());
    let trail = common::records(GenKind::CloudTrail, 100);
    let flows = common::records(GenKind::Flows, 100);
    let record = trail[0].clone();
    let record_text = String::from_utf8(record.clone()).expect("utf8");
    let s3 = format!(
        "{{\"Records\":[{}]}}",
        trail
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    );
    let s3_gzip = gzip(s3.as_bytes());
    let eventbridge = format!(
        "{{\"version\":\"0\",\"id\":\"1\",\"detail-type\":\"AWS API Call via CloudTrail\",\"source\":\"aws.ec2\",\"account\":\"123456789012\",\"time\":\"2024-03-01T12:00:00Z\",\"region\":\"us-east-1\",\"resources\":[],\"detail\":{record_text}}}"
    );
    let host_line = "Mar  1 12:00:01 ip-10-0-0-1 su: pam_unix(su:auth): authentication failure; logname=dbdev uid=1000 euid=0 tty=pts/0 ruser=dbdev rhost=  user=root";
    let log_events: Vec<String> = (0..50)
        .map(|i| {
            format!(
                "{{\"id\":\"{i}\",\"timestamp\":{},\"message\":{}}}",
                1_709_294_400_000i64 + i,
                serde_json::to_string(host_line).expect("json")
            )
        })
        .collect();
    let cwl = gzip(
        format!(
            "{{\"messageType\":\"DATA_MESSAGE\",\"owner\":\"123456789012\",\"logGroup\":\"/var/log/secure\",\"logStream\":\"i-0abc\",\"subscriptionFilters\":[\"f\"],\"logEvents\":[{}]}}",
            log_events.join(",")
        )
        .as_bytes(),
    );
    let kpl_payloads: Vec<&[u8]> = flows.iter().map(Vec::as_slice).collect();
    let kpl = trailwatch::decode::kpl::aggregate(&kpl_payloads);

    let mut group = c.benchmark_group("decode");
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("cloudtrail_record", record, 1),
        ("s3_file_100", s3.into_bytes(), 100),
        ("s3_file_100_gzip", s3_gzip, 100),
        ("eventbridge", eventbridge.into_bytes(), 1),
        ("cloudwatch_logs_gzip_50_host", cwl, 50),
        ("kpl_100_flows", kpl, 100),
        ("flow_line", flows[1].clone(), 1),
        ("host_line", host_line.as_bytes().to_vec(), 1),
    ];
    for (name, input, events) in cases {
        group.throughput(Throughput::Elements(events));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut count = Count::default();
                decoder.decode(&input, &mut count);
                assert_eq!(count.events, events);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decoders);
criterion_main!(benches);
