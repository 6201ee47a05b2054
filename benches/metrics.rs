//! Hot-path counting cost: per-event `Tally` increments flushed once per
//! batch into a worker's own atomics (what the engine does) against a
//! per-event atomic `fetch_add`, alone and with two threads sharing the
//! counters (what a naive global registry would do).
//!
//! `cargo bench --bench metrics` prints nanoseconds per event; no external
//! harness, so it runs anywhere the crate builds.

use std::hint::black_box;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use trailwatch::metrics::{Tally, WorkerCounters};

const BATCH: u64 = 1_000;
const BATCHES: u64 = 20_000;

/// The same loop and inputs without counting: the floor to subtract.
fn baseline(_: &WorkerCounters) {
    for _ in 0..BATCHES {
        for i in 0..BATCH {
            black_box(700 + (i & 7));
            black_box(i & 1);
        }
    }
}

/// The engine's scheme: plain adds per event, one flush per batch.
fn tally_per_batch(counters: &WorkerCounters) {
    for _ in 0..BATCHES {
        let mut tally = Tally::default();
        for i in 0..BATCH {
            tally.records += 1;
            tally.bytes += black_box(700 + (i & 7));
            tally.events += 1;
            tally.matches += black_box(i & 1);
        }
        counters.add(black_box(&tally));
    }
}

/// The naive scheme: relaxed `fetch_add` on shared counters per event.
fn atomic_per_event(counters: &WorkerCounters) {
    for _ in 0..BATCHES {
        for i in 0..BATCH {
            counters.records.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes
                .fetch_add(black_box(700 + (i & 7)), Ordering::Relaxed);
            counters.events.fetch_add(1, Ordering::Relaxed);
            counters
                .matches
                .fetch_add(black_box(i & 1), Ordering::Relaxed);
        }
    }
}

/// Runs `work` on `threads` threads; `shared` gives them one set of
/// counters, otherwise each gets its own. Returns ns per event per thread.
fn measure(threads: usize, shared: bool, work: fn(&WorkerCounters)) -> f64 {
    let common = Arc::new(WorkerCounters::default());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let counters = if shared {
                Arc::clone(&common)
            } else {
                Arc::new(WorkerCounters::default())
            };
            scope.spawn(move || work(&counters));
        }
    });
    let elapsed = started.elapsed().as_nanos() as f64;
    elapsed / (BATCH * BATCHES) as f64
}

fn best_of(runs: usize, f: impl Fn() -> f64) -> f64 {
    (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    // `cargo test --benches` runs this binary too; keep that quick.
    let runs = if std::env::args().any(|a| a == "--bench") {
        5
    } else {
        1
    };
    println!("events per run: {} (4 counters per event)", BATCH * BATCHES);
    let rows = [
        (
            "baseline: loop and inputs, no counting, 1 thread",
            1,
            false,
            baseline as fn(&WorkerCounters),
        ),
        (
            "tally + per-batch flush, 1 thread",
            1,
            false,
            tally_per_batch as fn(&WorkerCounters),
        ),
        (
            "atomic fetch_add per event, 1 thread",
            1,
            false,
            atomic_per_event,
        ),
        (
            "tally + per-batch flush, 2 threads, own counters",
            2,
            false,
            tally_per_batch,
        ),
        (
            "atomic fetch_add per event, 2 threads, shared counters",
            2,
            true,
            atomic_per_event,
        ),
    ];
    for (name, threads, shared, work) in rows {
        let ns = best_of(runs, || measure(threads, shared, work));
        println!("{name:<56} {ns:>8.2} ns/event");
    }
}
