//! Model 10: a heap-profile special is attached to an object while the background
//! sweeper sweeps its span.
//!
//! Two large objects; A has a special and dies in the first cycle, B survives it. While the
//! sweeper sweeps the first cycle (B's span among the rest), P attaches a special to B, as
//! a sampled allocation does when its goroutine was held up between allocating and
//! recording (an assist that waited out the end of a cycle). Then B dies in the next cycle.
//!
//! Proves: a dead object's special is reported exactly once, by the sweep that frees it
//! (A's, in the first cycle); a live object's never; and a special attached during a
//! concurrent sweep of its span is not lost: its span's flag stays up, so the next cycle's
//! sweep reports it (B's). Mutant `special_flag_early` raises the flag before the special
//! is in the table: a sweep in between finds nothing, lowers the flag, and B's free is
//! never reported.

#![cfg(loom)]

use loom::thread;
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap};
use minigo_loom_tests::model;

#[test]
fn a_special_attached_during_a_sweep_is_not_lost() {
    model(|| {
        let heap = MHeap::new(HeapConfig::default()).unwrap();
        let mut c = MCache::new(&heap);
        let big = Layout::noscan(40_000);
        let a = c.alloc(&big).unwrap().as_ptr() as usize;
        let b = c.alloc(&big).unwrap().as_ptr() as usize;
        heap.add_special(a, 1);
        c.release_all();
        // The first cycle's end: B is marked, A is not.
        heap.finish_sweep();
        // SAFETY: the collector's stop: P is the only mutator and sweeping is finished.
        unsafe { heap.find_object_unlocked(b) }.unwrap().try_mark();
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };

        let h = heap.clone();
        let sweeper = thread::spawn(move || while h.sweep_one() {});
        heap.add_special(b, 2);
        sweeper.join().unwrap();
        heap.finish_sweep();
        assert_eq!(heap.take_freed_specials(), [1], "A's free, once; B lives");

        // The next cycle marks nothing: B dies.
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };
        heap.finish_sweep();
        assert_eq!(heap.take_freed_specials(), [2], "B's special was lost");
    });
}
