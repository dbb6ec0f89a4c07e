//! Model 12: a weak reference's read barrier races a mark worker.
//!
//! A standalone heap: the root R points at A; a weak table (reported to the collector only
//! through `Roots::clear_weak`, never traced) names X, which nothing else reaches. The
//! mutator starts a cycle (R is traced), and while a loom thread marks as a background
//! worker does, it takes X out of the weak table, shades it (`Mutator::shade`: the read
//! barrier of the runtime's `Weak::get` and of the Lox intern table) and keeps it in its
//! roots, which were traced already.
//!
//! Then the marker finishes and the mutator ends the cycle: verify mode re-marks from the
//! roots (R, A, X), and `clear_weak` must find X live and keep its entry.
//!
//! Proves: whatever the interleaving of the marker's drain with the read and the shade, an
//! object taken out of a weak table while a cycle marks survives the cycle. Seeded bug CI
//! requires to fail: a shade that does nothing (`shade_noop`).

#![cfg(loom)]

use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::{Layout, Liveness, Roots, Tracer};
use minigo_loom_tests::{model, model_heap};

/// The mutator's roots and its weak table.
struct Vm {
    held: Vec<usize>,
    weak: Vec<usize>,
}

impl Roots for Vm {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.held {
            t.mark(a);
        }
    }

    fn clear_weak(&mut self, live: &Liveness<'_>) {
        for a in self.weak.iter_mut() {
            if !live.is_live(*a) {
                *a = 0;
            }
        }
    }
}

#[test]
fn a_weak_read_racing_a_marker_keeps_what_it_took() {
    model(|| {
        let heap = model_heap(true);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut vm = Vm {
            held: vec![],
            weak: vec![],
        };
        let [r, a, x]: [usize; 3] =
            std::array::from_fn(|_| m.alloc(&node, &mut vm).unwrap().as_ptr() as usize);
        // SAFETY: a pointer word of a live object of this heap; A is live.
        unsafe { m.write(r as *mut usize, a) };
        vm.held.push(r);
        vm.weak.push(x);

        assert!(m.start_cycle(&mut vm));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let marker = thread::spawn(move || {
            GcWork::new().drain(&q, u64::MAX);
        });

        // The read barrier: X comes out of the weak table, is shaded, then kept.
        let took = vm.weak[0];
        m.shade(took);
        vm.held.push(took);

        marker.join().unwrap();
        // Ends the cycle (verify re-marks from R and X; clear_weak runs), then a new one.
        m.collect(&mut vm);
        assert_eq!(vm.weak[0], x, "the weak entry of a live object stays");
        assert_eq!(m.mem_stats().heap_objects, 3, "R, A and X survive");
    });
}
