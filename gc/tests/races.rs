//! The classic ways a concurrent collector loses an object, each played out at the exact
//! interleaving that loses it: marking is stepped by hand (no background workers; the
//! test drains the cycle's mark queue itself), so every run is this interleaving. Verify
//! mode re-marks from the roots when each cycle ends and fails with the path to anything
//! reachable left unmarked; afterwards, the object's canary must be intact after the sweep.
//!
//! 1. The only pointer to X moves from an object the marker has not scanned (A) into one
//!    it has (B), then is deleted from A.
//! 2. The only pointer to X moves from the heap into the mutator's roots — a stack that
//!    was scanned when the cycle began — and is deleted from the heap.
//! 3. An object allocated while marking runs (black, never scanned) becomes the only
//!    holder of X.
//! 4. An object found through a weak reference (not traced: an intern table's entry)
//!    while marking runs is kept, through `Mutator::shade`.

use minigo_gc::mark::GcWork;
use minigo_gc::{GcConfig, Heap, Layout, Mutator, Roots, Tracer};

/// The mutator's roots: addresses it holds.
struct Held(Vec<usize>);

impl Roots for Held {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.0 {
            t.mark(a);
        }
    }
}

const CANARY: usize = 0x5eed_cafe;

fn heap() -> Heap {
    Heap::new(GcConfig {
        mark_workers: 0,
        verify: true,
        gogc: None,
        address_space: 1 << 30,
        ..GcConfig::default()
    })
    .unwrap()
}

/// A node: two pointer words, then a canary.
fn node() -> Layout {
    Layout::new(24, &[0, 1]).unwrap()
}

fn alloc(m: &mut Mutator, roots: &mut Held) -> usize {
    let p = m.alloc(&node(), roots).unwrap().as_ptr() as usize;
    // SAFETY: the scalar word of the object just allocated.
    unsafe { *((p + 16) as *mut usize) = CANARY };
    p
}

fn set(m: &mut Mutator, obj: usize, slot: usize, value: usize) {
    // SAFETY: a pointer word of a live object; `value` is null or a live object.
    unsafe { m.write((obj + slot * 8) as *mut usize, value) };
}

fn get(obj: usize, slot: usize) -> usize {
    // SAFETY: a pointer word of a live object.
    unsafe { *((obj + slot * 8) as *const usize) }
}

/// Scans the grey objects the queue holds now (`budget` bytes of scan work at most).
fn mark_a_little(m: &Mutator, budget: u64) {
    let q = m.collector().mark_queue().expect("a cycle marks");
    GcWork::new().drain(&q, budget);
}

/// Marks to the end and ends the cycle (verify mode checks it), then sweeps.
fn finish(m: &mut Mutator, roots: &mut Held) {
    mark_a_little(m, u64::MAX);
    assert!(m.poll(roots), "marking was done, the cycle ends");
    m.collector().heap().sweep_all();
}

/// True if `x` is still an allocated object with its canary.
fn alive(m: &Mutator, x: usize) -> bool {
    // SAFETY: read only if the heap says it is an allocated object.
    m.find_object(x).is_some() && unsafe { *((x + 16) as *const usize) } == CANARY
}

#[test]
fn the_only_pointer_moved_into_a_scanned_object_survives() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let (b, a, x) = (
        alloc(&mut m, &mut roots),
        alloc(&mut m, &mut roots),
        alloc(&mut m, &mut roots),
    );
    set(&mut m, b, 0, a);
    set(&mut m, a, 0, x);
    roots.0.push(b);

    assert!(m.start_cycle(&mut roots));
    // Scan B only: A is now grey, X white.
    mark_a_little(&m, 1);
    set(&mut m, b, 1, get(a, 0));
    set(&mut m, a, 0, 0);
    finish(&mut m, &mut roots);
    assert!(alive(&m, x), "X, reachable through B, was freed");
    assert_eq!(get(b, 1), x);
}

#[test]
fn the_only_pointer_moved_into_a_scanned_stack_survives() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let (a, x) = (alloc(&mut m, &mut roots), alloc(&mut m, &mut roots));
    set(&mut m, a, 0, x);
    roots.0.push(a);

    assert!(m.start_cycle(&mut roots));
    // The roots were traced at the start: moving X into them hides it in a scanned
    // stack; A is not scanned yet.
    roots.0.push(get(a, 0));
    set(&mut m, a, 0, 0);
    finish(&mut m, &mut roots);
    assert!(alive(&m, x), "X, held in the roots, was freed");
}

#[test]
fn an_object_allocated_while_marking_may_become_the_only_holder() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let (a, x) = (alloc(&mut m, &mut roots), alloc(&mut m, &mut roots));
    set(&mut m, a, 0, x);
    roots.0.push(a);

    assert!(m.start_cycle(&mut roots));
    let n = alloc(&mut m, &mut roots);
    roots.0.push(n);
    set(&mut m, n, 0, get(a, 0));
    set(&mut m, a, 0, 0);
    roots.0.retain(|&r| r != a);
    finish(&mut m, &mut roots);
    assert!(alive(&m, n), "the new object was freed");
    assert!(alive(&m, x), "X, held only by the new object, was freed");
}

#[test]
fn an_object_taken_from_a_weak_table_while_marking_is_kept_by_shade() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    // The "weak table" is this local: the collector does not see it.
    let x = alloc(&mut m, &mut roots);
    let holder = alloc(&mut m, &mut roots);
    roots.0.push(holder);

    assert!(m.start_cycle(&mut roots));
    mark_a_little(&m, u64::MAX);
    // Marking is all done; X was not reachable when it began. Taking it from the table:
    m.shade(x);
    set(&mut m, holder, 0, x);
    finish(&mut m, &mut roots);
    assert!(alive(&m, x), "X, taken from the weak table, was freed");
}

#[test]
fn without_the_shade_verify_names_the_lost_object() {
    let result = std::panic::catch_unwind(|| {
        let h = heap();
        let mut m = h.mutator().unwrap();
        let mut roots = Held(vec![]);
        let x = alloc(&mut m, &mut roots);
        let holder = alloc(&mut m, &mut roots);
        roots.0.push(holder);
        assert!(m.start_cycle(&mut roots));
        mark_a_little(&m, u64::MAX);
        set(&mut m, holder, 0, x);
        finish(&mut m, &mut roots);
    });
    let err = result.expect_err("verify mode must catch a resurrection without shade");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("is reachable but was not marked"),
        "unexpected panic: {msg}"
    );
}

#[test]
fn a_marker_holding_an_ended_cycles_queue_marks_nothing() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let kept = alloc(&mut m, &mut roots);
    roots.0.push(kept);
    assert!(m.start_cycle(&mut roots));
    let q = m.collector().mark_queue().expect("a cycle marks");
    finish(&mut m, &mut roots);
    // Sweeping may run now; the queue outlived its cycle in this safe handle. Marking
    // through it must do nothing (an object marked now would look live to the next
    // cycle and its children would be skipped).
    let garbage = alloc(&mut m, &mut roots);
    assert_eq!(GcWork::new().shade_all(&q, [garbage, kept].into_iter()), 0);
    assert_eq!(GcWork::new().drain(&q, u64::MAX).1, 0);
    m.collect(&mut roots);
    assert!(alive(&m, kept));
    assert!(
        !alive(&m, garbage),
        "garbage shaded through a dead queue survived"
    );
}

#[test]
fn an_abandoned_collector_starts_no_cycle_and_still_allocates() {
    let h = heap();
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let kept = alloc(&mut m, &mut roots);
    roots.0.push(kept);
    assert!(m.start_cycle(&mut roots));
    mark_a_little(&m, 1);
    h.collector().abandon_cycle();
    let before = h.collector().cycles().len();
    // The abandoned cycle's marks are still set: a new cycle would skip what they cover.
    assert!(
        !m.start_cycle(&mut roots),
        "a cycle started after abandon_cycle"
    );
    m.collect(&mut roots);
    for _ in 0..10_000 {
        alloc(&mut m, &mut roots);
    }
    assert_eq!(h.collector().cycles().len(), before);
    assert!(alive(&m, kept));
}
