//! The collector against a model: a random object graph of mixed layouts (pointer-free,
//! all pointers, mixed, arrays, large arrays split into oblets, tiny objects) with a canary
//! in every scalar word, and random operations (allocate, link, unlink, drop roots, add
//! roots) with collections at random points (explicit ones, and whatever the pacer
//! triggers inside allocations), all in verify mode with two mark workers.
//!
//! After every collection, every object the model says is reachable has its canaries and
//! its pointers intact; after every explicit collection (which finishes sweeping),
//! HeapObjects equals the number of reachable objects exactly. Each test runs 50,000
//! operations from its own seed (four tests: 200,000 per run). A failure prints the seed;
//! `MINIGO_SEED=<seed> cargo test --release -p minigo-gc --test model` replays it.

use std::collections::{HashMap, HashSet};

use minigo_gc::{GcConfig, Heap, Layout, Mutator, Tracer};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// What the model knows of one object.
struct Obj {
    addr: usize,
    size: usize,
    /// Byte offsets of pointer words, with the (object id, interior offset) each holds.
    slots: Vec<(usize, Option<(usize, usize)>)>,
    /// Byte offsets of scalar words (canaries).
    scalars: Vec<usize>,
    /// Tiny objects share a 16-byte block: count blocks, not objects.
    block: usize,
}

fn canary(id: usize, off: usize) -> usize {
    let mut r = Rng((id as u64) << 20 ^ off as u64);
    (r.next() as usize) | 1
}

/// A random layout: (layout, array length).
fn random_shape(rng: &mut Rng) -> (Layout, usize) {
    let bits = |rng: &mut Rng, words: usize| -> Vec<usize> {
        (0..words).filter(|_| rng.chance(50)).collect()
    };
    match rng.below(100) {
        0..=14 => (Layout::noscan(1 + rng.below(15)), 1),
        15..=29 => (Layout::noscan(16 + rng.below(600)), 1),
        30..=44 => {
            let w = 1 + rng.below(8);
            (Layout::pointers(w), 1)
        }
        45..=79 => {
            let w = 1 + rng.below(12);
            (Layout::new(w * 8, &bits(rng, w)).unwrap(), 1)
        }
        80..=94 => {
            let w = 1 + rng.below(4);
            let len = rng.below(60);
            (Layout::new(w * 8, &bits(rng, w)).unwrap(), len)
        }
        95..=97 => {
            // Large: over 32 KiB, sometimes over an oblet (128 KiB).
            let len = 1500 + rng.below(9000);
            (Layout::new(24, &[0, 2]).unwrap(), len)
        }
        _ => (Layout::noscan(33_000 + rng.below(100_000)), 1),
    }
}

struct Model {
    objs: HashMap<usize, Obj>,
    next_id: usize,
    /// Roots: (object id, interior offset).
    roots: Vec<(usize, usize)>,
    seen_cycles: u32,
    collections: usize,
}

/// The model's roots, as the collector sees them.
struct ModelRoots<'a> {
    objs: &'a HashMap<usize, Obj>,
    roots: &'a [(usize, usize)],
}

impl minigo_gc::Roots for ModelRoots<'_> {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &(id, off) in self.roots {
            t.mark(self.objs[&id].addr + off);
        }
    }
}

impl Model {
    fn reachable(&self) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self.roots.iter().map(|r| r.0).collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(self.objs[&id].slots.iter().filter_map(|s| s.1.map(|c| c.0)));
            }
        }
        seen
    }

    fn pick(&self, rng: &mut Rng) -> Option<usize> {
        if self.objs.is_empty() {
            return None;
        }
        // HashMap iteration order is arbitrary but fixed for a given map state and seed
        // of the hasher; use a sorted key list so that a seed replays exactly.
        let mut ids: Vec<usize> = self.objs.keys().copied().collect();
        ids.sort_unstable();
        Some(ids[rng.below(ids.len())])
    }

    fn interior(&self, rng: &mut Rng, id: usize) -> usize {
        let size = self.objs[&id].size;
        if size > 0 && rng.chance(30) {
            rng.below(size)
        } else {
            0
        }
    }

    fn alloc(&mut self, m: &mut Mutator, rng: &mut Rng) {
        let (layout, len) = random_shape(rng);
        let size = layout.size() * len;
        let p = {
            let mut roots = ModelRoots {
                objs: &self.objs,
                roots: &self.roots,
            };
            m.alloc_array(&layout, len, &mut roots)
                .expect("allocation failed")
        };
        self.after_possible_collection(m);
        if size == 0 {
            return;
        }
        let addr = p.as_ptr() as usize;
        let id = self.next_id;
        self.next_id += 1;
        let mut slots = vec![];
        let mut scalars = vec![];
        let elem = layout.size() / 8;
        for w in 0..size / 8 {
            if elem > 0 && layout.is_pointer(w % elem) {
                slots.push((w * 8, None));
            } else {
                scalars.push(w * 8);
            }
        }
        for &off in &scalars {
            // SAFETY: a word of the object just allocated.
            unsafe { ((addr + off) as *mut usize).write(canary(id, off)) };
        }
        // A tail shorter than a word gets a canary byte.
        for off in (size / 8) * 8..size {
            // SAFETY: a byte of the object just allocated.
            unsafe { ((addr + off) as *mut u8).write(canary(id, off) as u8) };
        }
        let block = if !layout.has_pointers() && size < 16 {
            addr & !15
        } else {
            addr
        };
        self.objs.insert(
            id,
            Obj {
                addr,
                size,
                slots,
                scalars,
                block,
            },
        );
        // Keep it: as a root, or linked into some object (it must be reached somehow, or
        // it is garbage at once, which is fine too, now and then).
        match rng.below(10) {
            0..=4 => {
                let off = self.interior(rng, id);
                self.roots.push((id, off));
            }
            5..=8 => self.link_into(m, rng, Some(id)),
            _ => {}
        }
    }

    /// Stores `child` (or a random object) into a random pointer slot of a random object.
    fn link_into(&mut self, m: &mut Mutator, rng: &mut Rng, child: Option<usize>) {
        let Some(parent) = self.pick(rng) else { return };
        if self.objs[&parent].slots.is_empty() {
            return;
        }
        let Some(child) = child.or_else(|| self.pick(rng)) else {
            return;
        };
        let off = self.interior(rng, child);
        let value = self.objs[&child].addr + off;
        let p = self.objs.get_mut(&parent).unwrap();
        let k = rng.below(p.slots.len());
        p.slots[k].1 = Some((child, off));
        // SAFETY: a pointer word of a live object; `value` is inside a live object.
        unsafe { m.write((p.addr + p.slots[k].0) as *mut usize, value) };
    }

    fn unlink(&mut self, m: &mut Mutator, rng: &mut Rng) {
        let Some(parent) = self.pick(rng) else { return };
        let p = self.objs.get_mut(&parent).unwrap();
        if let Some(k) = p.slots.iter().position(|s| s.1.is_some()) {
            p.slots[k].1 = None;
            // SAFETY: a pointer word of a live object.
            unsafe { m.write((p.addr + p.slots[k].0) as *mut usize, 0) };
        }
    }

    /// If a collection ran (the pacer can start one in any allocation), forget what it
    /// freed and check what it kept.
    fn after_possible_collection(&mut self, m: &mut Mutator) {
        let cycles = m.collector().cycles().last().map_or(0, |r| r.number);
        if cycles != self.seen_cycles {
            self.seen_cycles = cycles;
            self.prune_and_check();
        }
    }

    fn prune_and_check(&mut self) {
        self.collections += 1;
        let live = self.reachable();
        self.objs.retain(|id, _| live.contains(id));
        for (&id, o) in &self.objs {
            for &off in &o.scalars {
                // SAFETY: the object is reachable, so still allocated.
                let v = unsafe { *((o.addr + off) as *const usize) };
                assert_eq!(
                    v,
                    canary(id, off),
                    "object {id} at {:#x}: canary at +{off} overwritten",
                    o.addr
                );
            }
            for off in (o.size / 8) * 8..o.size {
                // SAFETY: as above.
                let v = unsafe { *((o.addr + off) as *const u8) };
                assert_eq!(
                    v,
                    canary(id, off) as u8,
                    "object {id}: tail byte +{off} overwritten"
                );
            }
            for &(off, child) in &o.slots {
                // SAFETY: as above.
                let v = unsafe { *((o.addr + off) as *const usize) };
                let want = child.map_or(0, |(c, coff)| self.objs[&c].addr + coff);
                assert_eq!(v, want, "object {id}: pointer at +{off} changed");
            }
        }
    }

    fn collect(&mut self, m: &mut Mutator) {
        {
            let mut roots = ModelRoots {
                objs: &self.objs,
                roots: &self.roots,
            };
            m.collect(&mut roots);
        }
        self.seen_cycles = m.collector().cycles().last().map_or(0, |r| r.number);
        self.prune_and_check();
        let blocks: HashSet<usize> = self.objs.values().map(|o| o.block).collect();
        assert_eq!(
            m.mem_stats().heap_objects,
            blocks.len() as u64,
            "after a full collection and sweep, the heap holds exactly the reachable objects"
        );
    }
}

fn run(default_seed: u64, ops: usize) {
    let seed = std::env::var("MINIGO_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    struct Reporter(u64);
    impl Drop for Reporter {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("model test failed: replay with MINIGO_SEED={}", self.0);
            }
        }
    }
    let _reporter = Reporter(seed);
    let heap = Heap::new(GcConfig {
        verify: true,
        mark_workers: 2,
        address_space: 16 << 30,
        ..GcConfig::default()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let mut rng = Rng(seed);
    let mut model = Model {
        objs: HashMap::new(),
        next_id: 0,
        roots: vec![],
        seen_cycles: 0,
        collections: 0,
    };
    for _ in 0..ops {
        let crowded = model.objs.len() > 1500;
        match rng.below(1000) {
            0..=349 => model.alloc(&mut m, &mut rng),
            350..=599 => model.link_into(&mut m, &mut rng, None),
            600..=699 => model.unlink(&mut m, &mut rng),
            700..=799 if !model.roots.is_empty() => {
                let k = rng.below(model.roots.len());
                model.roots.swap_remove(k);
            }
            800..=849 => {
                if let Some(id) = model.pick(&mut rng) {
                    let off = model.interior(&mut rng, id);
                    model.roots.push((id, off));
                }
            }
            850..=852 => model.collect(&mut m),
            _ if crowded && !model.roots.is_empty() => {
                let k = rng.below(model.roots.len());
                model.roots.swap_remove(k);
            }
            _ => {}
        }
    }
    model.collect(&mut m);
    model.roots.clear();
    model.collect(&mut m);
    assert!(model.objs.is_empty());
    assert!(
        model.collections > 20,
        "only {} collections: the test is not testing",
        model.collections
    );
}

#[test]
fn model_seed_1() {
    run(1, 50_000);
}

#[test]
fn model_seed_2() {
    run(2, 50_000);
}

#[test]
fn model_seed_3() {
    run(3, 50_000);
}

#[test]
fn model_seed_4() {
    run(4, 50_000);
}
