//! Model 9: a late marker races mark termination.
//!
//! A standalone heap: a root R, and G, garbage. The mutator starts a cycle and marks it to
//! the end, so that only termination is left. A second thread holds the cycle's queue (as
//! any safe caller of `Collector::mark_queue` may) and shades G through it, while the
//! mutator ends the cycle (mark termination closes the queue, then starts the sweep cycle;
//! if the late marker is inside or left G grey, termination retries after the mutator
//! marks what is left, as a background worker would) and sweeps everything.
//!
//! Proves: a shade either lands during marking (it reports G marked, and G survives this
//! cycle's sweep) or is turned away (it reports nothing, and G is freed); never a mark set
//! after sweeping began, which the sweep either misses (G freed with its mark bit still
//! set, so the next cycle would skip it) or counts against the cycle's own accounting.
//! Seeded bug CI requires to fail: a queue that lets a marker in after it was closed
//! (`late_marker`).

#![cfg(loom)]

use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::Layout;
use minigo_loom_tests::{model, model_heap, Held};

#[test]
fn a_late_marker_marks_during_marking_or_not_at_all() {
    model(|| {
        let heap = model_heap(false);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut roots = Held(vec![]);
        let r = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        let g = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        roots.0.push(r);

        assert!(m.start_cycle(&mut roots));
        let q = m.collector().mark_queue().expect("the cycle marks");
        GcWork::new().drain(&q, u64::MAX);
        let held = q.clone();
        let late = thread::spawn(move || GcWork::new().shade_all(&held, [g].into_iter()));

        // Termination finds marking unfinished while the late marker is inside (or G is
        // grey): mark what it left, as a background worker would, and try again.
        while !m.poll(&mut roots) {
            GcWork::new().drain(&q, u64::MAX);
            thread::yield_now();
        }
        m.collector().heap().sweep_all();
        let marked = late.join().unwrap();

        let alive = m.collector().heap().find_object(g).is_some();
        assert_eq!(
            alive,
            marked == 1,
            "G shaded: {marked}, alive after the sweep: {alive}"
        );
    });
}
