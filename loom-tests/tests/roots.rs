//! Model 13: a global handle changes its root slot while a mark worker scans the root
//! table (`RootTable`, the `Global` handles' table, scanned once a cycle as a root job).
//!
//! A standalone heap: the table's one slot names O; the mutator's roots hold N. The
//! mutator starts a cycle (N is traced; the table is not: it is a root job). A loom thread
//! marks as a background worker does: it scans the table, then drains. Meanwhile the
//! mutator does what a goroutine with a `Global` may: `get` (O, now only on its stack,
//! scanned already) and `set` to N, handing the word the slot lost to its barrier
//! (`Mutator::shade`, as `Global::set` hands it to `barrier::shade_words`).
//!
//! Then the mutator ends the cycle: verify mode re-marks from every root (its stack, O and
//! N, and the table) and panics on a reachable object left unmarked.
//!
//! Proves: whether the marker scans the table before or after the `set`, the object the
//! slot held survives the cycle. Seeded bug CI requires to fail: a `set` that does not
//! hand over the lost word (`root_set_no_shade`).

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::{Layout, Roots, Tracer};
use minigo_loom_tests::{model, model_heap};
use minigo_runtime::RootTable;

/// The mutator's roots: its stack, and the root table once the cycle ends (the runtime's
/// full root set at mark termination).
struct Vm {
    held: Vec<usize>,
    table: Option<Arc<RootTable>>,
}

impl Roots for Vm {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.held {
            t.mark(a);
        }
        if let Some(table) = &self.table {
            table.trace(t);
        }
    }
}

#[test]
fn a_root_slot_changed_while_its_table_is_scanned_keeps_what_it_held() {
    model(|| {
        let heap = model_heap(true);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut vm = Vm {
            held: vec![],
            table: None,
        };
        let [o, n]: [usize; 2] =
            std::array::from_fn(|_| m.alloc(&node, &mut vm).unwrap().as_ptr() as usize);
        let table = Arc::new(RootTable::default());
        let slot = table.add(o);
        vm.held.push(n);

        assert!(m.start_cycle(&mut vm));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let scanned = table.clone();
        let marker = thread::spawn(move || {
            let mut grey = Vec::new();
            scanned.trace(&mut Tracer::new(&mut |a, _| grey.push(a)));
            let mut gcw = GcWork::new();
            gcw.shade_all(&q, grey.into_iter());
            gcw.drain(&q, u64::MAX);
        });

        // `Global::get`, then `Global::set`: O lives on only in the mutator's stack.
        let took = table.get(slot);
        vm.held.push(took);
        table.set(slot, n, |old| m.shade(old));

        marker.join().unwrap();
        // Ends the cycle (verify re-marks from every root), then runs a new one.
        vm.table = Some(table.clone());
        m.collect(&mut vm);
        assert_eq!(table.get(slot), n);
        assert_eq!(m.mem_stats().heap_objects, 2, "O and N survive");
    });
}
