//! Criterion micro-benchmarks of window updates: `WindowAgg::add` on an
//! open count aggregate, and a shard applying a batch of 1,024 count
//! matches to keys whose windows are already open (the count path).
//! Run: `cargo bench --bench window`.

mod common;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use trailwatch::engine::commit::CommitTracker;
use trailwatch::engine::shard::{Match, MatchBatch, Shard, ShardConfig, Span};
use trailwatch::engine::window::{EvidenceLimits, WindowAgg};
use trailwatch::metrics::Metrics;
use trailwatch::rules::compile::Aggregate;

fn batch(rule: u16, keys: u64, window_ms: i64) -> MatchBatch {
    let mut batch = MatchBatch {
        watermark_ms: i64::MIN,
        ..MatchBatch::default()
    };
    for i in 0..1024u64 {
        let key = batch.intern(&format!("{:012}", i % keys));
        batch.matches.push(Match {
            rule,
            time_ms: window_ms / 2,
            value: 1.0,
            distinct_hash: 0,
            key,
            sample: Span::NONE,
            id: Span::NONE,
            account: Span::NONE,
            region: Span::NONE,
            partition: 0,
            offset: i,
        });
    }
    batch
}

fn bench_windows(c: &mut Criterion) {
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(1));
    let mut agg = WindowAgg::new(Aggregate::Count);
    let mut time = 0i64;
    group.bench_function("window_agg_add_count", |b| {
        b.iter(|| {
            time += 1;
            agg.add(1.0, 0, time, (0, 7))
        })
    });
    let rules = common::rules();
    let rule = rules
        .rules()
        .iter()
        .position(|r| r.aggregate == Aggregate::Count && r.threshold.value > 1.0)
        .expect("a count rule with threshold above 1") as u16;
    let window_ms = rules.rule(rule).window_ms;
    let metrics = Metrics::new(1, 1, rules.rules().iter().map(|r| r.id.clone()).collect());
    let mut shard = Shard::new(
        0,
        rules.clone(),
        ShardConfig {
            max_open_windows: usize::MAX,
            max_state_bytes: usize::MAX,
            evidence: EvidenceLimits::default(),
            eager_sliding: false,
            drop_revoked: false,
        },
        CommitTracker::new(1),
        metrics.shards[0].clone(),
    );
    // Open the windows first: the measured batches only count.
    shard.process(batch(rule, 256, window_ms));
    shard.take_output();
    group.throughput(Throughput::Elements(1024));
    group.bench_function("shard_batch_1024_count_path", |b| {
        b.iter_batched(
            || batch(rule, 256, window_ms),
            |batch| {
                shard.process(batch);
                shard.take_output()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_windows);
criterion_main!(benches);
