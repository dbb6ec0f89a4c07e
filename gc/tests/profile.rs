//! The heap profile of a standalone heap: the embedder's stack hook, the Rust stack by
//! default, tiny blocks and large objects sampled as Go samples them, and publication per
//! completed cycle.

use minigo_gc::pprof::build_heap_profile;
use minigo_gc::{Frame, GcConfig, Heap, Layout, MemProfileRecord, Roots, SampleStack, Tracer};

fn config(rate: usize) -> GcConfig {
    GcConfig {
        mem_profile_rate: rate,
        ..GcConfig::default()
    }
}

/// Roots held in a vector of addresses, and the interpreted "function" running now.
struct Vm {
    held: Vec<usize>,
    function: &'static str,
    line: u32,
}

impl Roots for Vm {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.held {
            t.mark(a);
        }
    }

    fn sample_stack(&mut self, stack: &mut SampleStack) {
        stack.push(self.function, "prog.src", self.line);
        stack.push("main", "prog.src", 1);
    }
}

fn named(r: &MemProfileRecord) -> (String, u32) {
    match &r.stack[0] {
        Frame::Named { function, line, .. } => (function.to_string(), *line),
        f => panic!("not a named frame: {f:?}"),
    }
}

#[test]
fn an_embedders_frames_are_recorded_and_frees_counted_after_the_cycle() {
    let heap = Heap::new(config(1)).unwrap();
    let mut m = heap.mutator().unwrap();
    let obj = Layout::new(64, &[0]).unwrap();
    let mut vm = Vm {
        held: Vec::new(),
        function: "keep",
        line: 10,
    };
    for i in 0..1000 {
        let p = m.alloc(&obj, &mut vm).unwrap().as_ptr() as usize;
        if i % 4 == 0 {
            vm.held.push(p);
        }
    }
    vm.function = "drop";
    vm.line = 20;
    for _ in 0..500 {
        m.alloc(&obj, &mut vm).unwrap();
    }
    // Nothing is published before a cycle has judged the objects.
    assert!(heap.collector().mem_profile().is_empty());
    m.collect(&mut vm);
    let mut records = heap.collector().mem_profile();
    records.sort_by_key(|r| named(r).1);
    let got: Vec<_> = records
        .iter()
        .map(|r| (named(r), r.size, r.alloc_objects, r.free_objects))
        .collect();
    assert_eq!(
        got,
        [
            (("keep".to_string(), 10), 64, 1000, 750),
            (("drop".to_string(), 20), 64, 500, 500),
        ]
    );
    assert_eq!(records[0].stack.len(), 2, "the caller frame too");
    // Frees of what is dropped now show after the next cycle, not before.
    vm.held.truncate(50);
    assert_eq!(heap.collector().mem_profile()[0].free_objects, 750);
    m.collect(&mut vm);
    let keep = heap
        .collector()
        .mem_profile()
        .into_iter()
        .find(|r| named(r).0 == "keep")
        .unwrap();
    assert_eq!(keep.inuse_objects(), 50);
}

#[test]
fn tiny_blocks_and_large_objects_are_sampled_as_go_samples_them() {
    let heap = Heap::new(config(1)).unwrap();
    let mut m = heap.mutator().unwrap();
    let mut vm = Vm {
        held: Vec::new(),
        function: "tiny",
        line: 1,
    };
    // Eight-byte pointer-free objects share 16-byte blocks: a sample per block, counted
    // as 16 bytes (Go's `nextSample` counts the block, not what is carved from it).
    let tiny = Layout::noscan(8);
    for _ in 0..1000 {
        m.alloc(&tiny, &mut vm).unwrap();
    }
    vm.function = "large";
    let large = Layout::noscan(100_000);
    for _ in 0..10 {
        let p = m.alloc(&large, &mut vm).unwrap().as_ptr() as usize;
        vm.held.push(p);
    }
    m.collect(&mut vm);
    let records = heap.collector().mem_profile();
    let t = records.iter().find(|r| named(r).0 == "tiny").unwrap();
    assert_eq!((t.size, t.alloc_objects, t.free_objects), (16, 500, 500));
    let l = records.iter().find(|r| named(r).0 == "large").unwrap();
    // A large object counts its whole pages (8 KiB each).
    assert_eq!((l.size, l.alloc_objects, l.free_objects), (106_496, 10, 0));
    vm.held.clear();
    m.collect(&mut vm);
    let records = heap.collector().mem_profile();
    let l = records.iter().find(|r| named(r).0 == "large").unwrap();
    assert_eq!(
        l.free_objects, 10,
        "the sweep of a large span counts its free"
    );
}

#[inline(never)]
fn allocate_here(m: &mut minigo_gc::Mutator, n: usize) {
    let obj = Layout::new(32, &[0]).unwrap();
    for _ in 0..n {
        m.alloc(&obj, &mut minigo_gc::NoRoots).unwrap();
    }
}

#[test]
fn by_default_the_rust_stack_is_recorded_and_symbolized() {
    let heap = Heap::new(config(1)).unwrap();
    let mut m = heap.mutator().unwrap();
    allocate_here(&mut m, 100);
    m.collect(&mut minigo_gc::NoRoots);
    let records = heap.collector().mem_profile();
    assert!(records.iter().all(|r| matches!(r.stack[0], Frame::Pc(_))));
    let p = build_heap_profile(&records, 1);
    let leaf = |s: &minigo_gc::pprof::proto::Sample| {
        let loc = p
            .location
            .iter()
            .find(|l| l.id == s.location_id[0])
            .unwrap();
        let f = p
            .function
            .iter()
            .find(|f| f.id == loc.line[0].function_id)
            .unwrap();
        p.string_table[f.name as usize].clone()
    };
    let leaves: Vec<String> = p.sample.iter().map(leaf).collect();
    assert!(
        leaves.iter().any(|l| l == "profile::allocate_here"),
        "the allocating function is the leaf, minigo's frames trimmed: {leaves:?}"
    );
    let total: i64 = p
        .sample
        .iter()
        .filter(|s| leaf(s) == "profile::allocate_here")
        .map(|s| s.value[0])
        .sum();
    assert_eq!(total, 100);
}

#[test]
fn scaling_is_gos_unsampling_rule() {
    use minigo_gc::pprof::scale_heap_sample;
    assert_eq!(scale_heap_sample(3, 100, 1), (3, 300));
    assert_eq!(scale_heap_sample(0, 100, 512 * 1024), (0, 0));
    // An object of the rate's size was sampled with probability 1 - 1/e.
    let (n, b) = scale_heap_sample(1000, 4096, 4096);
    assert_eq!(n, (1000.0 / (1.0 - (-1f64).exp())) as i64);
    assert_eq!(b, (4_096_000.0 / (1.0 - (-1f64).exp())) as i64);
}

#[test]
fn specials_from_outside_the_collector_change_nothing() {
    let obj = Layout::new(64, &[0]).unwrap();
    let vm = || Vm {
        held: Vec::new(),
        function: "f",
        line: 1,
    };
    // A second record on a sampled object is ignored: its free is still counted.
    let heap = Heap::new(config(1)).unwrap();
    let mut m = heap.mutator().unwrap();
    let mut v = vm();
    let p = m.alloc(&obj, &mut v).unwrap().as_ptr() as usize;
    heap.collector().heap().add_special(p, 9_999);
    m.collect(&mut v);
    m.collect(&mut v);
    let records = heap.collector().mem_profile();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].alloc_objects, records[0].free_objects), (1, 1));
    // A record number no bucket has, on an unsampled object that dies: ignored.
    let heap = Heap::new(config(0)).unwrap();
    let mut m = heap.mutator().unwrap();
    let mut v = vm();
    let p = m.alloc(&obj, &mut v).unwrap().as_ptr() as usize;
    heap.collector().heap().add_special(p, 9_999);
    m.collect(&mut v);
    m.collect(&mut v);
    assert!(heap.collector().mem_profile().is_empty());
}
