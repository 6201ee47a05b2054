//! A panic anywhere freezes commits: the work a panicking thread drops
//! while it unwinds must not count as processed. In its own test binary,
//! because the hook is process-wide.

use trailwatch::engine::commit::{freeze_on_panic, CommitTracker};

#[test]
fn a_panicking_thread_leaves_nothing_committable() {
    freeze_on_panic();
    let tracker = CommitTracker::new(1);
    drop(tracker.begin_batch(1, 0, 100));
    let token = tracker.begin_batch(1, 100, 200);
    assert_eq!(tracker.safe_positions(), vec![(1, 100)]);
    let worker = std::thread::spawn(move || {
        let _in_hand = token;
        panic!("injected: a decoder bug");
    });
    assert!(worker.join().is_err(), "the worker panicked");
    // Without the hook, the dropped token would make 200 safe.
    assert_eq!(tracker.safe_position(1), None);
    assert!(tracker.safe_positions().is_empty());
}
