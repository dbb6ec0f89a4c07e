//! Property tests of the allocator through its public API: random interleavings of
//! allocations of random sizes and layouts on several mcaches, drops, and collections in
//! which the test itself marks what it still holds. After every step the model (the set of
//! objects the test holds) must agree with the heap:
//!
//! - no two live objects overlap, and each is aligned to its class's alignment;
//! - every new object is zero, however dirty its slot was, and live objects keep their
//!   contents across sweeps;
//! - `find_object` maps every byte of every live object to it and, after a full sweep,
//!   rejects every other address;
//! - MemStats' counters equal what the test counted.

use std::collections::BTreeMap;

use minigo_alloc_core::sizeclass::{class_align, class_size, size_to_class};
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap, MAX_SMALL_SIZE, PAGE_SIZE};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Shape {
    Noscan(usize),
    /// Words, and a seed for which are pointers.
    Scan(usize, u64),
    /// Element words, pointer seed, length.
    Array(usize, u64, usize),
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize, Shape),
    Drop(usize),
    Collect { finish: bool },
    Scavenge,
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        4 => (0usize..64).prop_map(Shape::Noscan),
        2 => (64usize..2048).prop_map(Shape::Noscan),
        1 => (2048usize..=MAX_SMALL_SIZE + 100).prop_map(Shape::Noscan),
        1 => (MAX_SMALL_SIZE..300_000usize).prop_map(Shape::Noscan),
        4 => (1usize..=8, any::<u64>()).prop_map(|(w, s)| Shape::Scan(w, s)),
        2 => (9usize..=200, any::<u64>()).prop_map(|(w, s)| Shape::Scan(w, s)),
        1 => (200usize..=5000, any::<u64>()).prop_map(|(w, s)| Shape::Scan(w, s)),
        2 => (1usize..=6, any::<u64>(), 0usize..100).prop_map(|(w, s, n)| Shape::Array(w, s, n)),
        1 => (1usize..=6, any::<u64>(), 100usize..20_000).prop_map(|(w, s, n)| Shape::Array(w, s, n)),
    ]
}

fn op(caches: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => (0..caches, shape()).prop_map(|(c, s)| Op::Alloc(c, s)),
        12 => any::<usize>().prop_map(Op::Drop),
        1 => Just(Op::Collect { finish: false }),
        1 => Just(Op::Collect { finish: true }),
        1 => Just(Op::Scavenge),
    ]
}

fn layout_of(words: usize, seed: u64) -> Layout {
    let ptrs: Vec<usize> = (0..words)
        .filter(|i| (seed.rotate_left(*i as u32 % 64) ^ *i as u64) & 3 != 0)
        .collect();
    Layout::new(words * 8, &ptrs).unwrap()
}

/// An object the test holds.
#[derive(Clone, Debug)]
struct Obj {
    addr: usize,
    size: usize,
    /// What `find_object` must call its base: the slot (or tiny block) start.
    base: usize,
    /// Bytes the heap considers part of the object: the slot, the tiny block, or for a large
    /// object its requested size.
    extent: usize,
    fill: u8,
    /// Offsets of the words the layout calls pointers.
    pointers: Vec<usize>,
}

struct Model {
    heap: std::sync::Arc<MHeap>,
    caches: Vec<MCache>,
    live: Vec<Obj>,
    /// start -> end of every live object's bytes, to catch overlap.
    ranges: BTreeMap<usize, usize>,
    mallocs: u64,
    total_alloc: u64,
    next_fill: u8,
}

/// Bytes a large object occupies in the statistics: whole pages.
fn large_bytes(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

fn sample_offsets(size: usize) -> impl Iterator<Item = usize> {
    // Every byte of small objects; a stride plus both ends of big ones.
    let step = if size <= 4096 { 1 } else { 509 };
    (0..size).step_by(step).chain(size.checked_sub(1))
}

impl Model {
    fn new(ncaches: usize) -> Model {
        let heap = MHeap::new(HeapConfig {
            address_space: 8 << 30,
            max_heap: None,
        })
        .unwrap();
        let caches = (0..ncaches).map(|_| MCache::new(&heap)).collect();
        Model {
            heap,
            caches,
            live: vec![],
            ranges: BTreeMap::new(),
            mallocs: 0,
            total_alloc: 0,
            next_fill: 1,
        }
    }

    fn alloc(&mut self, c: usize, shape: &Shape) -> Result<(), TestCaseError> {
        let (layout, len) = match *shape {
            Shape::Noscan(n) => (Layout::noscan(n), 1),
            Shape::Scan(w, seed) => (layout_of(w, seed), 1),
            Shape::Array(w, seed, len) => (layout_of(w, seed), len),
        };
        let (size, noscan) = (layout.size() * len, !layout.has_pointers());
        let p = if len == 1 {
            self.caches[c].alloc(&layout)
        } else {
            self.caches[c].alloc_array(&layout, len)
        };
        let elem_words = layout.size() / 8;
        let pointers: Vec<usize> = (0..size / 8)
            .filter(|&w| layout.is_pointer(w % elem_words.max(1)))
            .map(|w| w * 8)
            .collect();
        let addr = p.map_err(|e| TestCaseError::fail(format!("{e}")))?.as_ptr() as usize;
        if size == 0 {
            prop_assert_eq!(addr, minigo_alloc_core::zerobase().as_ptr() as usize);
            return Ok(());
        }
        self.mallocs += 1;
        let (base, extent) = if noscan && size < 16 {
            // Tiny: Go's alignment rule inside a 16-byte block.
            let align = if size % 8 == 0 {
                8
            } else if size % 4 == 0 {
                4
            } else if size % 2 == 0 {
                2
            } else {
                1
            };
            prop_assert_eq!(addr % align, 0);
            if addr.is_multiple_of(16) {
                self.total_alloc += 16;
            }
            (addr & !15, 16)
        } else if size <= MAX_SMALL_SIZE {
            let class = size_to_class(size);
            prop_assert_eq!(
                addr % class_align(class),
                0,
                "size {} class {}",
                size,
                class
            );
            self.total_alloc += class_size(class) as u64;
            (addr, class_size(class))
        } else {
            prop_assert_eq!(addr % PAGE_SIZE, 0);
            self.total_alloc += large_bytes(size) as u64;
            (addr, size)
        };
        // No overlap with anything live.
        if let Some((&s, &e)) = self.ranges.range(..addr + size).next_back() {
            prop_assert!(
                e <= addr || s >= addr + size,
                "[{:#x},{:#x}) overlaps [{:#x},{:#x})",
                addr,
                addr + size,
                s,
                e
            );
        }
        // SAFETY: the allocator handed out `size` bytes at `addr`.
        let bytes = unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size) };
        for off in sample_offsets(size) {
            prop_assert_eq!(bytes[off], 0, "object {:#x}+{} not zeroed", addr, off);
        }
        for off in sample_offsets(size) {
            let o = self.heap.find_object(addr + off);
            prop_assert_eq!(
                o.map(|o| o.base),
                Some(base),
                "find_object({:#x}+{})",
                addr,
                off
            );
        }
        let fill = self.next_fill;
        self.next_fill = self.next_fill % 250 + 1;
        for off in sample_offsets(size) {
            bytes[off] = fill;
        }
        self.ranges.insert(addr, addr + size);
        self.live.push(Obj {
            addr,
            size,
            base,
            extent,
            fill,
            pointers,
        });
        Ok(())
    }

    fn drop_one(&mut self, i: usize) {
        if !self.live.is_empty() {
            let o = self.live.swap_remove(i % self.live.len());
            self.ranges.remove(&o.addr);
        }
    }

    fn collect(&mut self, finish: bool) -> Result<(), TestCaseError> {
        // Sweeping from the last cycle ends before this one marks (what is left of it after
        // the allocations since then swept lazily).
        self.heap.finish_sweep();
        for o in &self.live {
            // SAFETY: nothing allocates or frees spans while the test marks (one thread).
            let obj = unsafe { self.heap.find_object_unlocked(o.addr) };
            let obj = obj.ok_or_else(|| TestCaseError::fail(format!("live {o:?} not found")))?;
            obj.try_mark();
        }
        prop_assert!(self.heap.sweep_done());
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { self.heap.start_sweep_cycle() };
        for c in &mut self.caches {
            c.release_all();
        }
        if finish {
            self.heap.finish_sweep();
            self.check_exact()?;
        }
        for o in &self.live {
            // SAFETY: single-threaded: no span is allocated or freed meanwhile.
            let obj = unsafe { self.heap.find_object_unlocked(o.addr) }.unwrap();
            let words: Vec<usize> = obj.pointer_words().map(|a| a - o.addr).collect();
            prop_assert_eq!(&words, &o.pointers, "pointer words of {:?}", o);
            // SAFETY: `o` is live, so its bytes are still the test's.
            let bytes = unsafe { std::slice::from_raw_parts(o.addr as *const u8, o.size) };
            for off in sample_offsets(o.size) {
                prop_assert_eq!(bytes[off], o.fill, "live object {:?} changed at {}", o, off);
            }
        }
        Ok(())
    }

    /// After a full sweep the heap holds exactly the live set.
    fn check_exact(&mut self) -> Result<(), TestCaseError> {
        for c in &mut self.caches {
            c.flush_stats();
        }
        let m = self.heap.mem_stats();
        let mut blocks: Vec<(usize, usize)> =
            self.live.iter().map(|o| (o.base, o.extent)).collect();
        blocks.sort();
        blocks.dedup();
        prop_assert_eq!(m.heap_objects, blocks.len() as u64);
        let live_bytes: usize = blocks
            .iter()
            .map(|&(_, e)| {
                if e > MAX_SMALL_SIZE {
                    large_bytes(e)
                } else {
                    e
                }
            })
            .sum();
        prop_assert_eq!(m.heap_alloc, live_bytes as u64);
        prop_assert_eq!(m.mallocs, self.mallocs);
        prop_assert_eq!(m.total_alloc, self.total_alloc);
        prop_assert!(m.heap_inuse >= m.heap_alloc);
        // Every address between, around and inside live objects: an object iff inside one.
        let mut probes: Vec<usize> = vec![0, 8, usize::MAX - 7];
        for &(b, e) in &blocks {
            probes.extend([b.wrapping_sub(1), b, b + e - 1, b + e, b + e + 8, b + 4096]);
        }
        for p in probes {
            let want = blocks
                .iter()
                .find(|&&(b, e)| p >= b && p < b + e)
                .map(|&(b, _)| b);
            prop_assert_eq!(
                self.heap.find_object(p).map(|o| o.base),
                want,
                "probe {:#x}",
                p
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    #[test]
    fn allocator_agrees_with_a_model(ops in proptest::collection::vec(op(3), 1..600)) {
        let mut m = Model::new(3);
        for op in &ops {
            match op {
                Op::Alloc(c, s) => m.alloc(*c, s)?,
                Op::Drop(i) => m.drop_one(*i),
                Op::Collect { finish } => m.collect(*finish)?,
                Op::Scavenge => {
                    m.heap.scavenge_all();
                }
            }
        }
        m.collect(true)?;
        m.live.clear();
        m.ranges.clear();
        m.collect(true)?;
        let (in_use, _, _) = m.heap.page_summary();
        prop_assert_eq!(in_use, 0, "every span returns to the page heap");
    }
}
