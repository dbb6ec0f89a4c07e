//! The collector's behaviour through its public API: deep structures, parallel marking,
//! out-of-memory, weak tables, pacing, the memory limit, gctrace and statistics.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use minigo_gc::{AllocError, GcConfig, Heap, Layout, Liveness, Mutator, Roots, Tracer};

fn config() -> GcConfig {
    GcConfig {
        address_space: 32 << 30,
        ..GcConfig::default()
    }
}

/// Reads a word of a live object.
fn read(addr: usize) -> usize {
    // SAFETY: the tests only read words of objects they keep reachable.
    unsafe { *(addr as *const usize) }
}

/// Stores a scalar into a live object.
fn set_scalar(addr: usize, v: usize) {
    // SAFETY: the tests only write scalar words of objects they keep reachable.
    unsafe { *(addr as *mut usize) = v }
}

/// Stores a pointer into a live object, through the write function.
fn set_ptr(m: &mut Mutator, slot: usize, v: usize) {
    // SAFETY: `slot` is a pointer word of a live object; `v` is null or a live object.
    unsafe { m.write(slot as *mut usize, v) }
}

/// Roots held in a vector of addresses.
struct Held(Vec<usize>);

impl Roots for Held {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.0 {
            t.mark(a);
        }
    }
}

#[test]
fn ten_million_node_list_survives_and_is_freed() {
    let heap = Heap::new(config()).unwrap();
    let mut m = heap.mutator().unwrap();
    let node = Layout::new(16, &[0]).unwrap();
    let n = 10_000_000usize;
    let mut roots = Held(vec![0]);
    for i in 0..n {
        let p = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        set_ptr(&mut m, p, roots.0[0]);
        set_scalar(p + 8, i);
        roots.0[0] = p;
    }
    let r = m.collect(&mut roots);
    assert_eq!(
        r.objects_live, n as u64,
        "every node marked, without recursion"
    );
    // Concurrent cycles over a list that grows while they mark it end later (what was
    // allocated meanwhile is black), so the goal steps up faster than a stopped mark's.
    let paced = m.collector().cycles().iter().filter(|c| !c.forced).count();
    assert!(paced >= 2, "the pacer collected while the list grew");
    let (mut p, mut count) = (roots.0[0], 0usize);
    while p != 0 {
        assert_eq!(read(p + 8), n - 1 - count);
        count += 1;
        p = read(p);
    }
    assert_eq!(count, n);
    roots.0.clear();
    m.collect(&mut roots);
    let s = m.mem_stats();
    assert_eq!(s.heap_objects, 0);
    assert_eq!(s.heap_inuse, 0, "every span went back to the page heap");
}

fn build_tree(m: &mut Mutator, depth: u32, roots: &mut Held) -> usize {
    // Node: left, right, value. The tree under construction is kept on the root stack.
    let node = Layout::new(24, &[0, 1]).unwrap();
    let p = m.alloc(&node, roots).unwrap().as_ptr() as usize;
    set_scalar(p + 16, depth as usize);
    if depth > 0 {
        roots.0.push(p);
        let l = build_tree(m, depth - 1, roots);
        set_ptr(m, p, l);
        let r = build_tree(m, depth - 1, roots);
        set_ptr(m, p + 8, r);
        roots.0.pop();
    }
    p
}

fn check_tree(p: usize, depth: u32) -> usize {
    assert_eq!(read(p + 16), depth as usize);
    if depth == 0 {
        assert_eq!((read(p), read(p + 8)), (0, 0));
        1
    } else {
        1 + check_tree(read(p), depth - 1) + check_tree(read(p + 8), depth - 1)
    }
}

#[test]
fn million_node_tree_survives_and_is_freed() {
    let heap = Heap::new(GcConfig {
        mark_workers: 2,
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let mut roots = Held(vec![]);
    let root = build_tree(&mut m, 19, &mut roots);
    roots.0.push(root);
    let r = m.collect(&mut roots);
    assert_eq!(r.objects_live, (1 << 20) - 1);
    assert!(
        r.workers >= 2,
        "the mutator and the background workers mark it"
    );
    assert_eq!(check_tree(root, 19), (1 << 20) - 1);
    roots.0.clear();
    m.collect(&mut roots);
    assert_eq!(m.mem_stats().heap_objects, 0);
}

/// Records which of the first `n` objects are live when the collector asks about weak
/// tables (after marking, before sweeping).
struct Probe {
    roots: Vec<usize>,
    objects: Vec<usize>,
    live: Vec<bool>,
}

impl Roots for Probe {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.roots {
            t.mark(a);
        }
    }
    fn clear_weak(&mut self, live: &Liveness<'_>) {
        self.live = self.objects.iter().map(|&a| live.is_live(a)).collect();
    }
}

/// Builds the same random graph in a fresh heap and reports the mark set.
fn mark_set(workers: usize) -> (Vec<bool>, usize) {
    let heap = Heap::new(GcConfig {
        mark_workers: workers,
        gogc: None,
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let mut seed = 0x1234_5678u64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let n = 300_000;
    let layouts = [
        Layout::pointers(2),
        Layout::new(32, &[1, 3]).unwrap(),
        Layout::noscan(24),
    ];
    let mut probe = Probe {
        roots: vec![],
        objects: vec![],
        live: vec![],
    };
    let mut kinds = vec![];
    for _ in 0..n {
        let k = rand(3);
        let p = m.alloc(&layouts[k], &mut probe).unwrap().as_ptr() as usize;
        probe.objects.push(p);
        kinds.push(k);
    }
    for (i, kind) in kinds.into_iter().enumerate() {
        let slots: &[usize] = match kind {
            0 => &[0, 8],
            1 => &[8, 24],
            _ => &[],
        };
        for &off in slots {
            if rand(10) < 9 {
                let target = probe.objects[rand(n)] + rand(8);
                set_ptr(&mut m, probe.objects[i] + off, target);
            }
        }
    }
    probe.roots = (0..3000).map(|_| probe.objects[rand(n)]).collect();
    let r = m.collect(&mut probe);
    (probe.live, r.workers)
}

#[test]
fn parallel_marking_marks_what_single_threaded_marking_marks() {
    let (one, w1) = mark_set(1);
    let (four, w4) = mark_set(4);
    assert_eq!(w1, 1, "one processor: the mutator marks alone");
    assert!(w4 > 1, "four: background workers help");
    assert_eq!(one.len(), four.len());
    let live = one.iter().filter(|&&l| l).count();
    assert!(
        live > 1000 && live < one.len(),
        "a real mix of live and dead: {live}"
    );
    assert!(one == four, "the mark sets differ");
}

#[test]
fn out_of_memory_under_max_heap_is_an_error_and_the_heap_recovers() {
    let heap = Heap::new(GcConfig {
        max_heap: Some(64 << 20),
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    // Garbage alone never runs out: collections free it.
    for _ in 0..200_000 {
        m.alloc(&Layout::noscan(4096), &mut Held(vec![])).unwrap();
    }
    // Live data does.
    let mut roots = Held(vec![]);
    let chunk = Layout::pointers(1000);
    let err = loop {
        match m.alloc(&chunk, &mut roots) {
            Ok(p) => roots.0.push(p.as_ptr() as usize),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, AllocError::OutOfMemory { .. }), "{err:?}");
    assert!(err.to_string().contains("out of memory"));
    let held = roots.0.len() * 8000;
    assert!(
        held > 48 << 20 && held <= 64 << 20,
        "filled the limit: {held}"
    );
    // Everything held is intact, and after letting go the heap works again.
    for &p in &roots.0 {
        assert_eq!(read(p), 0);
    }
    roots.0.truncate(10);
    for _ in 0..1000 {
        m.alloc(&chunk, &mut roots).unwrap();
    }
}

/// An intern table: holds strings weakly.
struct Interned {
    strong: Vec<usize>,
    table: Vec<usize>,
    cleared: usize,
}

impl Roots for Interned {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.strong {
            t.mark(a);
        }
    }
    fn clear_weak(&mut self, live: &Liveness<'_>) {
        let before = self.table.len();
        self.table.retain(|&s| live.is_live(s));
        self.cleared += before - self.table.len();
    }
}

#[test]
fn weak_tables_lose_dead_entries_before_the_sweep() {
    let heap = Heap::new(GcConfig {
        verify: true,
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let mut r = Interned {
        strong: vec![],
        table: vec![],
        cleared: 0,
    };
    for i in 0..1000 {
        let s = m.alloc(&Layout::noscan(40), &mut r).unwrap().as_ptr() as usize;
        set_scalar(s, i);
        r.table.push(s);
        if i % 4 == 0 {
            r.strong.push(s);
        }
    }
    m.collect(&mut r);
    assert_eq!(
        r.table.len(),
        250,
        "only the strongly held strings stay interned"
    );
    assert!(r.cleared >= 750);
    let strong: HashSet<usize> = r.strong.iter().copied().collect();
    for &s in &r.table {
        assert!(strong.contains(&s));
        assert_eq!(read(s) % 4, 0);
    }
    assert!(r.table.iter().all(|&s| m.find_object(s).is_some()));
    assert_eq!(m.mem_stats().heap_objects, 250);
}

#[test]
fn gogc_paces_collections_at_live_times_one_plus_gogc() {
    for gogc in [50u32, 100, 200] {
        let heap = Heap::new(GcConfig {
            gogc: Some(gogc),
            mark_workers: 1,
            ..config()
        })
        .unwrap();
        let mut m = heap.mutator().unwrap();
        let mut roots = Held(vec![]);
        for _ in 0..20_000 {
            let p = m.alloc(&Layout::noscan(1024), &mut roots).unwrap().as_ptr() as usize;
            roots.0.push(p);
        }
        let first = m.collect(&mut roots);
        let live = first.heap_live;
        assert!(live >= 20_000 * 1024);
        let goal = live + live * gogc as u64 / 100;
        assert_eq!(first.next_goal, goal);
        // No runway measured yet: the trigger is the latest Go allows, 95% of the way to
        // the goal or 4 MiB short of it.
        let trigger = (live + (goal - live) * 61 / 64).max(goal - (4 << 20));
        assert_eq!(first.next_trigger, trigger);
        let n = m.collector().cycles().len();
        while m.collector().cycles().len() == n {
            m.alloc(&Layout::noscan(64), &mut roots).unwrap();
        }
        let next = m.collector().cycles().last().unwrap().clone();
        assert!(!next.forced && next.concurrent);
        assert!(
            next.heap_before >= trigger && next.heap_before < trigger + (64 << 10),
            "GOGC={gogc}: started at {} for a trigger of {trigger}",
            next.heap_before,
        );
        // What was allocated while marking ran is black: kept this cycle, counted live.
        let black = next.heap_at_term - next.heap_before;
        assert!(
            next.heap_live >= live && next.heap_live <= live + black + (64 << 10),
            "GOGC={gogc}: the garbage went, the live data stayed ({} live after, {live} before, {black} allocated while marking)",
            next.heap_live
        );
    }
}

#[test]
fn gogc_off_never_collects_and_the_memory_limit_does() {
    let heap = Heap::new(GcConfig {
        gogc: None,
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    for _ in 0..50_000 {
        m.alloc(&Layout::noscan(2048), &mut Held(vec![])).unwrap();
    }
    assert_eq!(
        m.collector().cycles().len(),
        0,
        "GOGC=off: no collection by growth"
    );

    let limit = 32u64 << 20;
    let heap = Heap::new(GcConfig {
        gogc: None,
        memory_limit: Some(limit),
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    for _ in 0..200_000 {
        m.alloc(&Layout::noscan(2048), &mut Held(vec![])).unwrap();
    }
    let cycles = m.collector().cycles();
    assert!(
        cycles.len() >= 5,
        "the limit drives collections: {}",
        cycles.len()
    );
    assert!(
        cycles.iter().all(|c| c.heap_before <= limit),
        "heap_live stayed under the limit"
    );
    // Lowering the limit at run time (Go's debug.SetMemoryLimit) moves the goal.
    assert_eq!(m.collector().set_memory_limit(Some(16 << 20)), Some(limit));
    m.collect(&mut Held(vec![]));
    assert!(m.mem_stats().next_gc <= 16 << 20);
}

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn gctrace_lines_and_memstats_gc_fields() {
    let heap = Heap::new(GcConfig {
        trace: true,
        mark_workers: 1,
        ..config()
    })
    .unwrap();
    let sink = Sink::default();
    heap.collector().set_trace_output(Box::new(sink.clone()));
    let mut m = heap.mutator().unwrap();
    let mut roots = Held(vec![]);
    for i in 0..400_000 {
        let p = m.alloc(&Layout::noscan(64), &mut roots).unwrap().as_ptr() as usize;
        if i % 10 == 0 {
            roots.0.push(p);
        }
    }
    m.collect(&mut roots);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let s = m.mem_stats();
    assert_eq!(lines.len() as u32, s.num_gc);
    assert!(s.num_gc >= 3);
    for (i, l) in lines.iter().enumerate() {
        let prefix = format!("gc {} @", i + 1);
        assert!(l.starts_with(&prefix), "{l}");
        assert!(l.contains("% : ".trim_start()) || l.contains("%: "), "{l}");
        assert!(
            l.contains(" ms clock, ") && l.contains(" ms cpu, ") && l.contains(" MB goal, "),
            "{l}"
        );
        assert!(
            l.ends_with(" 1 P") || l.ends_with(" 1 P (forced)") || l.ends_with(" 1 P (minor)"),
            "{l}"
        );
    }
    assert!(lines.last().unwrap().ends_with("(forced)"));
    assert_eq!(s.num_forced_gc, 1);
    assert!(s.pause_total_ns > 0);
    let last = (s.num_gc as usize + 255) % 256;
    assert!(s.pause_ns[last] > 0 && s.pause_end[last] == s.last_gc);
    assert!(s.last_gc > 1_600_000_000_000_000_000, "Unix nanoseconds");
    assert!(s.next_gc >= 4 << 20);
    assert!(s.gc_cpu_fraction > 0.0 && s.gc_cpu_fraction < 1.0);
    assert_eq!(s.heap_objects, 40_000);
}

#[test]
fn verify_mode_reports_a_dangling_pointer() {
    let heap = Heap::new(GcConfig {
        verify: true,
        ..config()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let holder = m
        .alloc(&Layout::pointers(1), &mut Held(vec![]))
        .unwrap()
        .as_ptr() as usize;
    let victim = m
        .alloc(&Layout::noscan(32), &mut Held(vec![holder]))
        .unwrap()
        .as_ptr() as usize;
    // The victim is held by nobody the collector knows; after a cycle it is free...
    m.collect(&mut Held(vec![holder]));
    assert!(m.find_object(victim).is_none());
    // ...and an embedder bug that stores it anyway is caught by the next verified cycle.
    set_ptr(&mut m, holder, victim);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.collect(&mut Held(vec![holder]));
    }));
    let msg = result.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("dangling pointer"), "{msg}");
    assert!(
        msg.contains(&format!("{holder:#x}")),
        "names the holder: {msg}"
    );
}
