//! Model 4: two mark workers on a small shared graph.
//!
//! The graph: roots A and B both point at C (a diamond), C points at D, D back at A (a
//! cycle) and at R, and an unreachable E points at C. Worker 0 shades the roots and hands
//! them to the shared batch queue, a batch each; both workers then drain to the end
//! concurrently (`drain_all`, as markers do with the world stopped), taking batches from
//! that queue and handing work to each other when one is waiting.
//!
//! Proves: every reachable object is marked and the unreachable one is not; each reachable
//! object is scanned exactly once, however the two workers race on C and A (the atomic
//! mark-bit set decides who scans: the count of scans equals the count of reachable
//! objects); no grey work is lost or duplicated in the hand-off (the phase ends with every
//! reachable object scanned, and the workers only stop when both are idle).

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap};
use minigo_gc::mark::{GcWork, MarkQueue};
use minigo_loom_tests::model;

#[test]
fn two_mark_workers_on_a_shared_graph() {
    model(|| {
        let heap = MHeap::new(HeapConfig::default()).unwrap();
        let node = Layout::pointers(2);
        let mut c = MCache::new(&heap);
        let [r, a, b, cc, d, e]: [usize; 6] =
            std::array::from_fn(|_| c.alloc(&node).unwrap().as_ptr() as usize);
        let set = |obj: usize, slot: usize, to: usize| {
            // SAFETY: a pointer word of an object just allocated, before any thread starts.
            unsafe { *((obj + slot * 8) as *mut usize) = to };
        };
        set(a, 0, cc);
        set(b, 0, cc);
        set(cc, 0, d);
        set(d, 0, a);
        set(d, 1, r);
        set(e, 0, cc);
        c.release_all();
        heap.finish_sweep();

        // SAFETY: sweeping was drained above and nothing sweeps until the model ends.
        let shared = Arc::new(unsafe { MarkQueue::new(heap.clone(), false, None) });
        let mut w0 = GcWork::new();
        let mut w1 = GcWork::new();
        // One batch per root, so that each worker may take one and both reach C at once.
        w0.shade_all(&shared, [a].into_iter());
        w0.shade_all(&shared, [b].into_iter());
        let s = shared.clone();
        let t = thread::spawn(move || {
            w1.drain_all(&s);
            w1
        });
        w0.drain_all(&shared);
        let w1 = t.join().unwrap();

        let reachable = [r, a, b, cc, d];
        for &o in &reachable {
            // SAFETY: the workers are done; nothing allocates.
            let obj = unsafe { heap.find_object_unlocked(o) };
            assert!(obj.unwrap().is_marked(), "{o:#x} unmarked");
        }
        // SAFETY: as above.
        assert!(!unsafe { heap.find_object_unlocked(e) }.unwrap().is_marked());
        assert_eq!(
            w0.scanned + w1.scanned,
            5,
            "each reachable object scanned exactly once"
        );
        assert_eq!(shared.marked_objects(), 5);
        drop(shared);
    });
}
