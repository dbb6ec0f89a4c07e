//! The collector against a model, with marking running while the graph changes: a random
//! object graph of mixed layouts (pointer-free, all pointers, mixed, arrays, large arrays
//! split into oblets, tiny objects) with a canary in every scalar word, and random
//! operations — allocate, link, unlink, move the only reference to an object from one
//! object to another, from a root into the heap and back, drop and add roots — with cycles
//! starting at random points (explicitly, and wherever the pacer starts one inside an
//! allocation) and marking advancing between the operations, all in verify mode (every
//! cycle's end re-marks from the roots and fails on anything reachable left unmarked).
//!
//! Two ways marking advances. *Stepped* runs have no background workers: the test itself
//! drains the cycle's mark queue a little at random points (and allocation assists do the
//! rest), so a seed replays exactly, interleavings included. *Threaded* runs have
//! background workers marking on their own threads, so the interleavings are the
//! machine's (a seed replays the operations).
//!
//! The model holds every object it made, reachable or not, as a VM's weak table would: an
//! object it takes that is not reachable from its roots goes through `Mutator::shade`
//! while a cycle marks, which is the collector's rule for weak references.
//!
//! After every cycle, every object the model says is reachable has its canaries and its
//! pointers intact; after every explicit collection (a whole cycle, sweep included),
//! HeapObjects equals the number of reachable objects exactly. Four tests of 50,000
//! operations each (200,000 per run), and two of 100,000 in generational mode (minor cycles,
//! short, between the forced major ones). A failure prints the seed; `MINIGO_SEED=<seed> cargo
//! test --release -p minigo-gc --test model` replays it.

use std::collections::{HashMap as StdHashMap, HashSet as StdHashSet};
use std::hash::{BuildHasherDefault, Hasher};

use minigo_gc::mark::GcWork;
use minigo_gc::{GcConfig, Heap, Layout, Mutator, Tracer};

/// Object ids are small distinct integers: hashing them is the identity (the model looks
/// them up constantly, and SipHash made the test four times slower).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only usize keys")
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<IdHasher>>;
type HashSet<K> = StdHashSet<K, BuildHasherDefault<IdHasher>>;

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
    /// Indices of the slots that hold a pointer (big arrays hold few: walking the graph
    /// visits these only).
    full: Vec<usize>,
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
    /// Mark steps taken and moves made while marking ran, to show the test tests.
    steps: usize,
    moves_while_marking: usize,
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
        let mut seen = HashSet::default();
        let mut stack: Vec<usize> = self.roots.iter().map(|r| r.0).collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                let o = &self.objs[&id];
                stack.extend(o.full.iter().map(|&k| o.slots[k].1.expect("a full slot").0));
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

    /// Takes object `id` into the mutator's hands (to store it somewhere, or root it). If
    /// the roots cannot reach it, the model had it only as a weak reference: while a
    /// cycle marks, that takes a shade.
    fn take(&self, m: &mut Mutator, id: usize) {
        if m.marking() && !self.reachable().contains(&id) {
            m.shade(self.objs[&id].addr);
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
                full: vec![],
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

    /// Points slot `k` of `parent` at `child` (with the model's interior offset).
    fn store(&mut self, m: &mut Mutator, parent: usize, k: usize, child: Option<(usize, usize)>) {
        let value = child.map_or(0, |(c, off)| self.objs[&c].addr + off);
        let p = self.objs.get_mut(&parent).unwrap();
        match (p.slots[k].1, child) {
            (None, Some(_)) => p.full.push(k),
            (Some(_), None) => {
                let i = p.full.iter().position(|&f| f == k).expect("listed");
                p.full.swap_remove(i);
            }
            _ => {}
        }
        p.slots[k].1 = child;
        // SAFETY: a pointer word of an object the model knows to be allocated; `value` is
        // null or inside one.
        unsafe { m.write((p.addr + p.slots[k].0) as *mut usize, value) };
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
        self.take(m, child);
        let off = self.interior(rng, child);
        let k = rng.below(self.objs[&parent].slots.len());
        self.store(m, parent, k, Some((child, off)));
    }

    fn unlink(&mut self, m: &mut Mutator, rng: &mut Rng) {
        let Some(parent) = self.pick(rng) else { return };
        if let Some(&k) = self.objs[&parent].full.first() {
            self.store(m, parent, k, None);
        }
    }

    /// A random slot of a random reachable object that holds a pointer.
    fn full_slot(&self, rng: &mut Rng) -> Option<(usize, usize)> {
        let mut live: Vec<usize> = self.reachable().into_iter().collect();
        live.sort_unstable();
        for _ in 0..8 {
            let &id = live.get(rng.below(live.len().max(1)))?;
            let full = &self.objs[&id].full;
            if !full.is_empty() {
                return Some((id, full[rng.below(full.len())]));
            }
        }
        None
    }

    /// Moves a pointer from one object's slot to another's, clearing the first: if it was
    /// the only path to its object, that object now hangs only from the second, which may
    /// have been scanned already.
    fn move_between_objects(&mut self, m: &mut Mutator, rng: &mut Rng) {
        let Some((from, k)) = self.full_slot(rng) else {
            return;
        };
        let Some(to) = self.pick(rng) else { return };
        if self.objs[&to].slots.is_empty() || !self.reachable().contains(&to) {
            return;
        }
        let child = self.objs[&from].slots[k].1;
        let j = rng.below(self.objs[&to].slots.len());
        self.moves_while_marking += m.marking() as usize;
        self.store(m, to, j, child);
        self.store(m, from, k, None);
    }

    /// Moves a pointer from an object's slot into the roots (the VM's stack, traced when
    /// the cycle began), clearing the slot.
    fn move_heap_to_root(&mut self, m: &mut Mutator, rng: &mut Rng) {
        let Some((from, k)) = self.full_slot(rng) else {
            return;
        };
        let child = self.objs[&from].slots[k].1.expect("a full slot");
        self.moves_while_marking += m.marking() as usize;
        self.roots.push(child);
        self.store(m, from, k, None);
    }

    /// Moves a root into an object's slot, dropping the root.
    fn move_root_to_heap(&mut self, m: &mut Mutator, rng: &mut Rng) {
        if self.roots.is_empty() {
            return;
        }
        let r = rng.below(self.roots.len());
        let Some(to) = self.pick(rng) else { return };
        if self.objs[&to].slots.is_empty() || !self.reachable().contains(&to) {
            return;
        }
        let child = self.roots[r];
        let j = rng.below(self.objs[&to].slots.len());
        self.moves_while_marking += m.marking() as usize;
        self.store(m, to, j, Some(child));
        self.roots.swap_remove(r);
    }

    /// Marks a little, as a background worker would, if a cycle is marking; ends the
    /// cycle if marking is done.
    fn mark_step(&mut self, m: &mut Mutator, rng: &mut Rng) {
        if let Some(q) = m.collector().mark_queue() {
            GcWork::new().drain(&q, 1 + rng.below(64 << 10) as u64);
            self.steps += 1;
        }
        let mut roots = ModelRoots {
            objs: &self.objs,
            roots: &self.roots,
        };
        m.poll(&mut roots);
        self.after_possible_collection(m);
    }

    fn start_cycle(&mut self, m: &mut Mutator) {
        let mut roots = ModelRoots {
            objs: &self.objs,
            roots: &self.roots,
        };
        m.start_cycle(&mut roots);
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

fn run(
    default_seed: u64,
    ops: usize,
    threaded: bool,
    generational: bool,
    prefetch: bool,
    ages: bool,
) {
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
        // Stepped runs: no background workers, marking advances where the test says.
        mark_workers: if threaded { 2 } else { 0 },
        address_space: 16 << 30,
        generational,
        ages,
        mark_prefetch: prefetch,
        ..GcConfig::default()
    })
    .unwrap();
    let mut m = heap.mutator().unwrap();
    let mut rng = Rng(seed);
    let mut model = Model {
        objs: HashMap::default(),
        next_id: 0,
        roots: vec![],
        seen_cycles: 0,
        collections: 0,
        steps: 0,
        moves_while_marking: 0,
    };
    for _ in 0..ops {
        let crowded = model.objs.len() > 1500;
        match rng.below(1000) {
            0..=299 => model.alloc(&mut m, &mut rng),
            300..=479 => model.link_into(&mut m, &mut rng, None),
            480..=559 => model.unlink(&mut m, &mut rng),
            560..=609 => model.move_between_objects(&mut m, &mut rng),
            610..=639 => model.move_heap_to_root(&mut m, &mut rng),
            640..=669 => model.move_root_to_heap(&mut m, &mut rng),
            670..=739 if !model.roots.is_empty() => {
                let k = rng.below(model.roots.len());
                model.roots.swap_remove(k);
            }
            740..=779 => {
                if let Some(id) = model.pick(&mut rng) {
                    model.take(&mut m, id);
                    let off = model.interior(&mut rng, id);
                    model.roots.push((id, off));
                }
            }
            780..=789 => model.start_cycle(&mut m),
            790..=939 => model.mark_step(&mut m, &mut rng),
            940..=942 => model.collect(&mut m),
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
    assert!(
        model.moves_while_marking > 100,
        "only {} moves while marking ran: the test is not testing",
        model.moves_while_marking
    );
    if !threaded {
        assert!(model.steps > 1000, "only {} mark steps", model.steps);
    }
    let cycles = m.collector().cycles();
    let minors = cycles.iter().filter(|c| c.minor).count();
    if generational {
        // Explicit collections are forced, so major (and clear the marks minors kept); the
        // cycles the test starts and the pacer's are minor until the old generation has
        // grown: both kinds must be well represented.
        assert!(
            minors > 10 && cycles.len() - minors > 10,
            "{minors} minor cycles of {}: the test is not testing",
            cycles.len()
        );
    } else {
        assert_eq!(minors, 0);
    }
}

#[test]
fn model_stepped_seed_1() {
    run(1, 50_000, false, false, true, false);
}

#[test]
fn model_stepped_seed_2() {
    run(2, 50_000, false, false, true, false);
}

#[test]
fn model_threaded_seed_3() {
    run(3, 50_000, true, false, true, false);
}

/// With the markers' prefetch FIFO off (`GODEBUG=gcprefetch=0`): a FIFO of one.
#[test]
fn model_threaded_seed_4_without_prefetch() {
    run(4, 50_000, true, false, false, false);
}

/// Generational mode: minor cycles (pacer-started, concurrent, their roots including the
/// card table's old objects) interleaved with forced major ones, every one verified. A
/// young object reachable only through an old one whose store did not dirty its card is
/// reported by verify at that cycle's end.
#[test]
fn model_generational_stepped_seed_5() {
    run(5, 100_000, false, true, true, false);
}

#[test]
fn model_generational_threaded_seed_6() {
    run(6, 100_000, true, true, true, false);
}

/// Generational mode with objects aging (`GODEBUG=gcage=1`): a young object survives one
/// minor cycle before it is promoted. A card a marker cleaned although an old object on it
/// still points at one that stays young is reported by verify at the next minor cycle's
/// end.
#[test]
fn model_generational_aged_stepped_seed_7() {
    run(7, 100_000, false, true, true, true);
}

#[test]
fn model_generational_aged_threaded_seed_8() {
    run(8, 100_000, true, true, true, true);
}
