//! Model 8: a mutator's barrier-protected stores race a mark worker.
//!
//! A standalone heap (no background threads of its own): a root R points at A and B, A at
//! X. The mutator starts a cycle (its roots, R, are traced), and while a loom thread marks
//! as a background worker does, it
//!
//! 1. moves the only pointer to X out of A (which the marker may not have scanned yet)
//!    into B (which it may have): `B.0 = A.0`, then `A.0 = null`, the classic lost object;
//! 2. allocates Y and keeps it only in its roots (traced when the cycle began: a stack
//!    already scanned).
//!
//! Then the marker finishes, the mutator ends the cycle (mark termination shades its
//! write-barrier buffer), and verify mode re-marks from the roots at that moment (R and
//! Y): anything reachable and unmarked fails the model.
//!
//! Proves: whatever the interleaving of the marker's scans of R, A and B with the two
//! stores, X is marked (the deletion barrier records it when A.0 is cleared), and Y is
//! marked (allocation is black during marking). Seeded bugs CI requires to fail: a barrier
//! that records nothing (`barrier_no_old`), and white allocation (`alloc_white`).

#![cfg(loom)]

use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::Layout;
use minigo_loom_tests::{model, model_heap, Held};

#[test]
fn a_store_racing_a_marker_loses_nothing() {
    model(|| {
        let heap = model_heap(true);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut roots = Held(vec![]);
        let [r, a, b, x]: [usize; 4] =
            std::array::from_fn(|_| m.alloc(&node, &mut roots).unwrap().as_ptr() as usize);
        // SAFETY: pointer words of live objects of this heap.
        unsafe {
            m.write(r as *mut usize, a);
            m.write((r + 8) as *mut usize, b);
            m.write(a as *mut usize, x);
        }
        roots.0.push(r);

        assert!(m.start_cycle(&mut roots));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let marker = thread::spawn(move || {
            GcWork::new().drain(&q, u64::MAX);
        });

        // SAFETY: pointer words of live objects of this heap; X is live.
        unsafe {
            m.write(b as *mut usize, x);
            m.write(a as *mut usize, 0);
        }
        let y = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        roots.0.push(y);

        marker.join().unwrap();
        // Ends the cycle (verify re-marks from R and Y), then a whole new one.
        m.collect(&mut roots);
        let s = m.mem_stats();
        assert_eq!(s.heap_objects, 5, "R, A, B, X and Y all survive");
    });
}
