//! Model 14: the ready cleanups leave their table while a mark worker scans it
//! (`CleanupTable::take_ready`, which the runtime calls to hand them to a new goroutine).
//!
//! A standalone heap. A cleanup waits for O and has captured C (a word in its closure's
//! bytes); nothing else reaches either. A first collection finds O dead and moves the
//! cleanup to the ready list (`clear_dead`, from `Roots::clear_weak`); C survives through
//! the table, a root. Then the mutator starts a second cycle, in which the table is a root
//! job: a loom thread scans it conservatively, as a background worker does, and drains.
//! Meanwhile the mutator takes the ready cleanups, handing their bytes to its barrier
//! (`Mutator::shade` on each word, as `barrier::shade_range` does), and keeps them where
//! this cycle does not look (a goroutine started during marking is not among its roots).
//!
//! Then the mutator ends the cycle: verify mode re-marks from every root, the taken
//! closures included, and panics on a reachable object left unmarked.
//!
//! Proves: whether the marker scans the table before or after the cleanups leave it, what
//! they captured survives the cycle. Seeded bug CI requires to fail: captures that leave
//! unshaded (`cleanup_ready_no_shade`).

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::{Layout, Liveness, Roots, Tracer};
use minigo_loom_tests::{model, model_heap};
use minigo_runtime::{closure_bytes, CleanupTable};

type Func = Box<dyn FnOnce() + Send>;

/// The words in `[lo, hi)`.
///
/// # Safety
/// The range is readable: a closure's bytes, alive meanwhile.
unsafe fn words(lo: usize, hi: usize) -> impl Iterator<Item = usize> {
    (lo..hi)
        .step_by(std::mem::size_of::<usize>())
        .filter(move |p| p + std::mem::size_of::<usize>() <= hi)
        // SAFETY: inside the caller's range; a closure of usize captures is word-aligned.
        .map(|p| unsafe { std::ptr::read(p as *const usize) })
}

/// The mutator's roots: the cleanup table while it is traced with the other roots (the
/// first cycle, and mark termination), and the cleanups it took out of it.
struct Vm {
    table: Arc<CleanupTable>,
    table_is_traced: bool,
    taken: Vec<Func>,
    taken_are_traced: bool,
}

impl Roots for Vm {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        if self.table_is_traced {
            self.table.trace(t);
        }
        if self.taken_are_traced {
            for f in &self.taken {
                let (lo, hi) = closure_bytes(f);
                // SAFETY: the bytes of a closure `taken` owns.
                for w in unsafe { words(lo, hi) } {
                    t.mark(w);
                }
            }
        }
    }

    fn clear_weak(&mut self, live: &Liveness<'_>) {
        self.table.clear_dead(live);
    }
}

#[test]
fn ready_cleanups_taken_while_their_table_is_scanned_keep_their_captures() {
    model(|| {
        let heap = model_heap(true);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut vm = Vm {
            table: Arc::new(CleanupTable::default()),
            table_is_traced: true,
            taken: Vec::new(),
            taken_are_traced: false,
        };
        let [o, c]: [usize; 2] =
            std::array::from_fn(|_| m.alloc(&node, &mut vm).unwrap().as_ptr() as usize);
        vm.table.add(
            o,
            Box::new(move || {
                std::hint::black_box(c);
            }),
        );
        // O is found dead: its cleanup becomes ready; C lives on through the table.
        m.collect(&mut vm);
        assert_eq!(m.mem_stats().heap_objects, 1, "O is freed, C survives");

        vm.table_is_traced = false;
        assert!(m.start_cycle(&mut vm));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let scanned = vm.table.clone();
        let marker = thread::spawn(move || {
            let mut grey = Vec::new();
            scanned.trace(&mut Tracer::new(&mut |a, _| grey.push(a)));
            let mut gcw = GcWork::new();
            gcw.shade_all(&q, grey.into_iter());
            gcw.drain(&q, u64::MAX);
        });

        let taken = vm.table.take_ready(|lo, hi| {
            // SAFETY: the bytes of a closure the list being taken owns.
            for w in unsafe { words(lo, hi) } {
                m.shade(w);
            }
        });
        assert_eq!(taken.len(), 1);
        vm.taken = taken;

        marker.join().unwrap();
        // Ends the cycle (verify re-marks from every root), then runs a new one.
        vm.table_is_traced = true;
        vm.taken_are_traced = true;
        m.collect(&mut vm);
        assert_eq!(m.mem_stats().heap_objects, 1, "C survives");
        for f in vm.taken.drain(..) {
            f();
        }
    });
}
