//! Model 2: lazy sweeping by an allocating P races the background sweeper, across the end
//! of a cycle.
//!
//! Three full spans of one class wait unswept: one with no survivor, one with one, one with
//! two. P allocates two objects (its refills sweep lazily), then, as the collector, ends the
//! next cycle (finishes sweeping, marks what it holds, starts the next sweep, releases its
//! cache) and allocates once more. The background sweeper sweeps whatever it can pop the
//! whole time.
//!
//! Proves: each span is swept exactly once per cycle (the heap counts exactly the frees
//! the model expects: a second sweep of a span would free its survivors again); an empty
//! span reaches the page heap exactly once (the page allocator asserts against double
//! frees); no survivor's mark is lost to a sweeper still at work when the cycle ends (the
//! sweepLocker's drain): every object P holds stays allocated and is never handed out again.

#![cfg(loom)]

use std::collections::HashSet;

use loom::thread;
use minigo_alloc_core::{HeapConfig, MCache, MHeap};
use minigo_loom_tests::{four_per_span, model};

fn mark(heap: &MHeap, addrs: &[usize]) {
    for &a in addrs {
        // SAFETY: the caller is the collector with the world stopped (P is the only
        // mutator) and sweeping finished.
        unsafe { heap.find_object_unlocked(a) }.unwrap().try_mark();
    }
}

#[test]
fn lazy_sweeping_races_the_background_sweeper() {
    model(|| {
        let heap = MHeap::new(HeapConfig::default()).unwrap();
        let layout = four_per_span();
        let mut c = MCache::new(&heap);
        let old: Vec<usize> = (0..12)
            .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
            .collect();
        c.release_all();
        heap.finish_sweep();
        let survivors = vec![old[4], old[8], old[9]];
        mark(&heap, &survivors);
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };

        let h = heap.clone();
        let sweeper = thread::spawn(move || {
            while h.sweep_one() {}
            // Once more, in case the next cycle opened meanwhile.
            while h.sweep_one() {}
        });

        let mut held = survivors.clone();
        held.extend((0..2).map(|_| c.alloc(&layout).unwrap().as_ptr() as usize));
        // The collector's end of the next cycle, on P's thread (the world is P).
        heap.finish_sweep();
        mark(&heap, &held);
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };
        c.release_all();
        let last = c.alloc(&layout).unwrap().as_ptr() as usize;
        sweeper.join().unwrap();

        assert!(
            !held.contains(&last),
            "a held object's slot was handed out again"
        );
        for &a in &held {
            assert!(
                heap.find_object(a).is_some(),
                "held object {a:#x} was freed"
            );
        }
        held.push(last);
        assert_eq!(held.iter().collect::<HashSet<_>>().len(), held.len());
        c.flush_stats();
        heap.finish_sweep();
        let m = heap.mem_stats();
        // 12 + 2 + 1 allocated; the first cycle freed the 9 unmarked; nothing else died.
        assert_eq!((m.mallocs, m.frees, m.heap_objects), (15, 9, 6));
    });
}
