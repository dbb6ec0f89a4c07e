//! Model 1: two Ps refill the same span class from one mcentral while a third thread runs
//! the background sweeper.
//!
//! Before the threads start, a cycle has ended: two full spans of the class sit in the
//! mcentral unswept, each with one surviving (marked) object. Then P1 and P2 each allocate
//! two objects (each refill either sweeps an unswept span itself, takes one the sweeper
//! swept, or grows the heap) while the sweeper sweeps whatever it can pop.
//!
//! Proves, for every interleaving within the bound: no slot is handed out twice (all six
//! addresses differ, and none is a survivor's); no span is lost or cached twice (after the
//! threads return their caches and sweeping finishes, the pages in use are exactly the
//! spans filed in the mcentral, and the heap counts exactly the six objects); the
//! sweep-generation rules hold (debug assertions on every sweepgen transition).

#![cfg(loom)]

use std::collections::HashSet;

use loom::thread;
use minigo_alloc_core::sizeclass::{size_to_class, CLASS_TO_NPAGES};
use minigo_alloc_core::{HeapConfig, MCache, MHeap, SpanClass, PAGE_SIZE};
use minigo_loom_tests::{four_per_span, model};

#[test]
fn two_ps_refill_one_class_while_a_sweeper_sweeps() {
    model(|| {
        let heap = MHeap::new(HeapConfig::default()).unwrap();
        let layout = four_per_span();
        let spc = SpanClass::new(size_to_class(18_000), true);
        let span_bytes = CLASS_TO_NPAGES[spc.size_class() as usize] as usize * PAGE_SIZE;

        let mut c0 = MCache::new(&heap);
        let old: Vec<usize> = (0..8)
            .map(|_| c0.alloc(&layout).unwrap().as_ptr() as usize)
            .collect();
        c0.release_all();
        heap.finish_sweep();
        let survivors = [old[0], old[5]];
        for &s in &survivors {
            // SAFETY: one thread, no span allocated or freed while marking.
            unsafe { heap.find_object_unlocked(s) }.unwrap().try_mark();
        }
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };
        assert_eq!(
            heap.central_counts(spc),
            [0, 0, 0, 2],
            "two full spans wait, unswept"
        );

        let p = |heap: loom::sync::Arc<MHeap>| {
            let layout = four_per_span();
            move || {
                let mut c = MCache::new(&heap);
                let got: Vec<usize> = (0..2)
                    .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
                    .collect();
                (c, got)
            }
        };
        let p1 = thread::spawn(p(heap.clone()));
        let p2 = thread::spawn(p(heap.clone()));
        let h = heap.clone();
        let sweeper = thread::spawn(move || while h.sweep_one() {});

        let (mut c1, a1) = p1.join().unwrap();
        let (mut c2, a2) = p2.join().unwrap();
        sweeper.join().unwrap();

        let mut seen = HashSet::new();
        for a in a1.iter().chain(&a2).chain(&survivors) {
            assert!(seen.insert(*a), "slot {a:#x} handed out twice");
        }
        c1.release_all();
        c2.release_all();
        heap.finish_sweep();
        assert!(heap.sweep_done());
        let filed: usize = heap.central_counts(spc).iter().sum();
        let (in_use, _, _) = heap.page_summary();
        assert_eq!(
            in_use,
            filed * span_bytes,
            "every span in use is filed exactly once"
        );
        assert_eq!(heap.mem_stats().heap_objects, 6);
    });
}
