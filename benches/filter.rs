//! Criterion micro-benchmarks of filter evaluation: the whole bench pack
//! (issue 2's built-in table) against one event at a time, for CloudTrail
//! (every rule, and only the rules the `eventName` dispatch selects) and
//! flow records. Run: `cargo bench --bench filter`.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trailwatch::decode::testing::Collector;
use trailwatch::decode::{DecodeConfig, Decoder};
use trailwatch::engine::worker::RuleDispatch;
use trailwatch::event::{Event, EventKind};
use trailwatch::gen::GenKind;

fn decode_all(rules: &trailwatch::rules::RuleSet, records: &[Vec<u8>]) -> Vec<Event<'static>> {
    let mut decoder = Decoder::new(DecodeConfig::default(), rules.plans());
    let mut collector = Collector::new();
    for record in records {
        decoder.decode(record, &mut collector);
    }
    collector.events
}

fn bench_filters(c: &mut Criterion) {
    let rules = common::rules();
    let trail = decode_all(&rules, &common::records(GenKind::CloudTrail, 1000));
    let flows = decode_all(&rules, &common::records(GenKind::Flows, 1000));
    let dispatch = RuleDispatch::cloudtrail(&rules);
    let mut group = c.benchmark_group("filter_pack_per_event");
    group.throughput(Throughput::Elements(trail.len() as u64));
    group.bench_function("cloudtrail_all_rules", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for event in &trail {
                for &rule in rules.for_kind(EventKind::CloudTrail) {
                    matched += usize::from(rules.rule(rule).matches(event));
                }
            }
            matched
        })
    });
    group.bench_function("cloudtrail_dispatched", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for event in &trail {
                for candidate in dispatch.candidates(event) {
                    let rule = rules.rule(candidate.rule);
                    matched += usize::from(rule.matches_unproven(event, candidate.proven));
                }
            }
            matched
        })
    });
    group.throughput(Throughput::Elements(flows.len() as u64));
    group.bench_function("flow_all_rules", |b| {
        b.iter(|| {
            let mut matched = 0usize;
            for event in &flows {
                for &rule in rules.for_kind(EventKind::VpcFlow) {
                    matched += usize::from(rules.rule(rule).matches(event));
                }
            }
            matched
        })
    });
    group.finish();
}

criterion_group!(benches, bench_filters);
criterion_main!(benches);
