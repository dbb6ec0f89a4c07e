//! Objects age in generational mode (`GcConfig::ages`): a young object that survives a
//! minor cycle stays young until it survives a second one, and the remembered set keeps
//! what the next minor cycle needs to find it. Without ages, what a minor cycle allocates
//! while it marks stays young all the same. Each cycle here runs in verify mode, which
//! re-marks from the roots at mark termination and panics if anything reachable was left
//! unmarked.

use minigo_gc::mark::GcWork;
use minigo_gc::{GcConfig, Heap, Layout, Mutator, Roots, Tracer};

/// One thread marks (this one, in `finish_cycle`), nothing starts a cycle but the test.
fn heap(ages: bool) -> Heap {
    heap_with(ages, true)
}

fn heap_with(ages: bool, black_young: bool) -> Heap {
    Heap::new(GcConfig {
        address_space: 1 << 30,
        mark_workers: 0,
        background_sweep: false,
        gogc: None,
        verify: true,
        generational: true,
        ages,
        black_young,
        ..GcConfig::default()
    })
    .unwrap()
}

struct Held(Vec<usize>);

impl Roots for Held {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.0 {
            t.mark(a);
        }
    }
}

fn alloc(m: &mut Mutator, roots: &mut Held) -> usize {
    m.alloc(&Layout::pointers(2), roots).unwrap().as_ptr() as usize
}

fn set_ptr(m: &mut Mutator, slot: usize, v: usize) {
    // SAFETY: `slot` is a pointer word of a live object; `v` is null or a live object.
    unsafe { m.write(slot as *mut usize, v) }
}

fn read(addr: usize) -> usize {
    // SAFETY: the tests read only words of objects they keep reachable.
    unsafe { *(addr as *const usize) }
}

/// Runs a whole cycle as the pacer would start it (minor, when the last sweep kept the
/// marks), marking on this thread, then sweeps.
fn cycle(m: &mut Mutator, roots: &mut Held) {
    assert!(m.start_cycle(roots));
    finish_cycle(m, roots);
}

/// Marks on this thread until the cycle under way ends, then sweeps.
fn finish_cycle(m: &mut Mutator, roots: &mut Held) {
    while m.marking() {
        if let Some(q) = m.collector().mark_queue() {
            GcWork::new().drain(&q, u64::MAX);
        }
        m.poll(roots);
    }
    m.collector().heap().sweep_all();
}

/// A young list of `n` objects linked through their first word; returns its head.
fn young_list(m: &mut Mutator, roots: &mut Held, n: usize) -> usize {
    let mut head = 0;
    for _ in 0..n {
        let node = alloc(m, roots);
        set_ptr(m, node, head);
        head = node;
    }
    head
}

/// Roots R, an object with two pointer words, and behind it an old list of 1,000 (so that
/// a major cycle does much more work than these tests' minor ones, which the policy wants
/// before it runs minor cycles); then a major cycle, after which they are old.
fn old_root(m: &mut Mutator, roots: &mut Held) -> usize {
    let r = alloc(m, roots);
    roots.0.push(r);
    for _ in 0..1000 {
        let n = alloc(m, roots);
        set_ptr(m, n + 8, read(r + 8));
        set_ptr(m, r + 8, n);
    }
    m.collect(roots);
    r
}

fn minors(m: &Mutator) -> usize {
    m.collector().cycles().iter().filter(|c| c.minor).count()
}

#[test]
fn a_young_object_held_only_by_an_old_one_survives_its_second_minor_cycle() {
    let h = heap(true);
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let r = old_root(&mut m, &mut roots);
    // R is old. Y, stored into it, is young, and reachable only through R.
    let y = alloc(&mut m, &mut roots);
    let z = alloc(&mut m, &mut roots);
    set_ptr(&mut m, y, z);
    set_ptr(&mut m, r, y);
    // The first minor cycle finds Y and Z through R's dirty card; they stay young. The
    // second finds them again only if the first left R's card dirty (verify would panic).
    for _ in 0..3 {
        cycle(&mut m, &mut roots);
    }
    assert_eq!(minors(&m), 3);
    assert_eq!((read(r), read(y)), (y, z));
    assert_eq!(
        m.mem_stats().heap_objects,
        1003,
        "R, its list, Y and Z survive"
    );
    // Dropped, Y and Z are old by now: a minor cycle keeps them, a major one frees them.
    set_ptr(&mut m, r, 0);
    cycle(&mut m, &mut roots);
    assert_eq!(m.mem_stats().heap_objects, 1003);
    m.collect(&mut roots);
    assert_eq!(m.mem_stats().heap_objects, 1001);
}

/// A temporary structure a minor cycle finds half built dies young: the next minor cycle
/// frees it, where without ages it would be old, and wait for a major cycle.
fn temporaries_left_after_two_minor_cycles(ages: bool) -> u64 {
    let h = heap(ages);
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    old_root(&mut m, &mut roots);
    // A list of 100 held from the roots, as a half-built tree is from the stack.
    let head = young_list(&mut m, &mut roots, 100);
    roots.0.push(head);
    cycle(&mut m, &mut roots);
    roots.0.pop();
    cycle(&mut m, &mut roots);
    assert_eq!(minors(&m), 2);
    m.mem_stats().heap_objects - 1001
}

#[test]
fn a_temporary_structure_that_survived_one_minor_cycle_dies_in_the_next() {
    assert_eq!(temporaries_left_after_two_minor_cycles(true), 0);
    assert_eq!(
        temporaries_left_after_two_minor_cycles(false),
        100,
        "without ages the list was promoted by the first minor cycle"
    );
}

/// What a minor cycle allocates while it marks (black) stays young (`black_young`, on by
/// default): a list built then and dropped is freed by the next minor cycle, and an object
/// stored into an old one then is found by the next minor cycle on the card its store
/// dirtied (verify would panic).
#[test]
fn objects_allocated_while_a_minor_cycle_marks_stay_young() {
    assert_eq!(objects_allocated_black_left(true), 0);
    assert_eq!(
        objects_allocated_black_left(false),
        100,
        "with gcblackyoung=0 the list was promoted"
    );
}

/// Of a list of 100 allocated while a minor cycle marks and then dropped, how many are
/// left after the next minor cycle.
fn objects_allocated_black_left(black_young: bool) -> u64 {
    let h = heap_with(false, black_young);
    let mut m = h.mutator().unwrap();
    let mut roots = Held(vec![]);
    let r = old_root(&mut m, &mut roots);
    // Young and reachable: work enough that the cycle still marks after the allocations
    // below (it would otherwise end in its first stop, or at the first safepoint).
    let young = young_list(&mut m, &mut roots, 300);
    roots.0.push(young);
    assert!(m.start_cycle(&mut roots));
    // Dropped at once: reachable from nothing.
    young_list(&mut m, &mut roots, 100);
    let kept = alloc(&mut m, &mut roots);
    set_ptr(&mut m, r, kept);
    assert!(m.marking(), "allocated while the cycle marks");
    finish_cycle(&mut m, &mut roots);
    assert_eq!(
        m.mem_stats().heap_objects,
        1001 + 300 + 100 + 1,
        "allocated black"
    );
    cycle(&mut m, &mut roots);
    assert_eq!(minors(&m), 2);
    assert_eq!(read(r), kept);
    // R, its list, the young list held from the roots and the object R holds live on.
    m.mem_stats().heap_objects - (1001 + 300 + 1)
}
