//! Span lifecycle through the public API: spans fill, a sweep with nothing marked returns
//! them and their pages to the page heap, the pages are reused, and the scavenger gives
//! them to the OS in a way that leaves them usable and zero.

use minigo_alloc_core::sizeclass::{class_size, size_to_class, CLASS_TO_NELEMS, CLASS_TO_NPAGES};
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap, SpanClass, ARENA_BYTES, PAGE_SIZE};

fn heap() -> std::sync::Arc<MHeap> {
    MHeap::new(HeapConfig {
        address_space: 4 << 30,
        max_heap: None,
    })
    .unwrap()
}

/// Writes 0xAB over each of the `size`-byte objects at `addrs`, so that a slot handed out
/// again shows whether it was cleared.
fn fill(addrs: &[usize], size: usize) {
    for &a in addrs {
        // SAFETY: each address is an object of `size` bytes the test owns; nothing traces
        // the test's heap.
        unsafe { std::ptr::write_bytes(a as *mut u8, 0xAB, size) };
    }
}

/// Marks every `k`th object of `addrs` from the first, as a collector that found them
/// live would.
fn mark_every(heap: &MHeap, addrs: &[usize], k: usize) {
    for &a in addrs.iter().step_by(k) {
        // SAFETY: single-threaded; no span is allocated or freed while we mark.
        unsafe { heap.find_object_unlocked(a) }.unwrap().try_mark();
    }
}

/// Sweeps with nothing marked: a whole cycle as a collector that found no roots runs it.
fn collect_nothing(heap: &MHeap, caches: &mut [&mut MCache]) {
    heap.finish_sweep();
    // SAFETY: every object used after this sweep cycle was marked before it.
    unsafe { heap.start_sweep_cycle() };
    for c in caches.iter_mut() {
        c.release_all();
    }
    heap.finish_sweep();
}

#[test]
fn spans_fill_sweep_and_return_their_pages() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let layout = Layout::new(48, &[1, 3]).unwrap();
    let class = size_to_class(48);
    let per_span = CLASS_TO_NELEMS[class as usize] as usize;
    let spans = 40;
    let mut addrs: Vec<usize> = (0..per_span * spans)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    let (in_use, _, _) = heap.page_summary();
    assert_eq!(
        in_use,
        spans * CLASS_TO_NPAGES[class as usize] as usize * PAGE_SIZE,
        "exactly {spans} full spans"
    );
    // Every span but the cached one is full and filed in mcentral.
    c.release_all();
    let spc = SpanClass::new(class, false);
    assert_eq!(heap.central_counts(spc), [0, 0, spans, 0]);

    collect_nothing(&heap, &mut [&mut c]);
    assert_eq!(
        heap.page_summary().0,
        0,
        "empty spans go back to the page heap"
    );
    assert_eq!(heap.central_counts(spc), [0, 0, 0, 0]);
    let m = heap.mem_stats();
    assert_eq!((m.heap_objects, m.heap_alloc, m.heap_inuse), (0, 0, 0));
    assert_eq!(m.frees, (per_span * spans) as u64);
    assert_eq!(m.by_size[class as usize].frees, (per_span * spans) as u64);
    let sys = m.heap_sys;

    // The same pages serve the next round (first fit from the bottom), zeroed.
    addrs.sort();
    for _ in 0..per_span * spans {
        let p = c.alloc(&layout).unwrap().as_ptr() as usize;
        assert!(
            addrs.binary_search(&p).is_ok(),
            "{p:#x} is not a reused slot"
        );
        // SAFETY: a fresh 48-byte object.
        assert!(unsafe { std::slice::from_raw_parts(p as *const u8, 48) }
            .iter()
            .all(|&b| b == 0));
    }
    assert_eq!(
        heap.mem_stats().heap_sys,
        sys,
        "no growth while free pages exist"
    );
}

#[test]
fn partly_live_spans_keep_survivors_and_reuse_the_rest() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let layout = Layout::noscan(64);
    let n = 3 * CLASS_TO_NELEMS[size_to_class(64) as usize] as usize;
    let addrs: Vec<usize> = (0..n)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    fill(&addrs, 64);
    mark_every(&heap, &addrs, 3);
    collect_nothing(&heap, &mut [&mut c]);
    let survivors: Vec<usize> = addrs.iter().copied().step_by(3).collect();
    for &a in &survivors {
        assert_eq!(
            heap.find_object(a).map(|o| o.base),
            Some(a),
            "survivor {a:#x}"
        );
        // SAFETY: still live.
        assert!(unsafe { std::slice::from_raw_parts(a as *const u8, 64) }
            .iter()
            .all(|&b| b == 0xAB));
    }
    for (i, &a) in addrs.iter().enumerate() {
        if i % 3 != 0 {
            assert_eq!(
                heap.find_object(a),
                None,
                "freed slot {a:#x} is not an object"
            );
        }
    }
    // The freed slots are handed out again, zeroed, and never a survivor's.
    let mut fresh: Vec<usize> = (0..n - survivors.len())
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    fresh.sort();
    for &p in &fresh {
        assert!(survivors.binary_search(&p).is_err());
        assert!(
            addrs.binary_search(&p).is_ok(),
            "freed slots are reused before new spans"
        );
        // SAFETY: a fresh object.
        assert!(unsafe { std::slice::from_raw_parts(p as *const u8, 64) }
            .iter()
            .all(|&b| b == 0));
    }
}

#[test]
fn large_objects_live_and_die_as_their_own_spans() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let big = Layout::pointers(1);
    let a = c.alloc_array(&big, 100_000).unwrap().as_ptr() as usize;
    let b = c.alloc(&Layout::noscan(5 << 20)).unwrap().as_ptr() as usize;
    assert_eq!(
        heap.page_summary().0,
        (800_000usize.div_ceil(PAGE_SIZE) + (5 << 20) / PAGE_SIZE) * PAGE_SIZE
    );
    let o = heap.find_object(a + 799_999).unwrap();
    assert_eq!((o.base, o.size), (a, 800_000));
    assert_eq!(
        heap.find_object(a + 800_000),
        None,
        "past the object, inside its last page"
    );
    // SAFETY: single-threaded marking.
    unsafe { heap.find_object_unlocked(b) }.unwrap().try_mark();
    collect_nothing(&heap, &mut [&mut c]);
    assert_eq!(heap.find_object(a), None);
    assert_eq!(heap.find_object(b + 17).map(|o| o.base), Some(b));
    assert_eq!(heap.page_summary().0, (5 << 20));
    let m = heap.mem_stats();
    assert_eq!((m.mallocs, m.frees, m.heap_objects), (2, 1, 1));
}

/// The cycle that freed the object at `addr`, while the quarantine holds it.
fn freed_by(heap: &MHeap, addr: usize) -> Option<u32> {
    heap.find_object(addr).and_then(|o| heap.freed_by(&o))
}

/// The quarantine (`quarantine.rs`), on for two cycles: dead slots, small and large, stay
/// out of reuse and name the cycle that freed them through the cycle after; the third
/// cycle's sweep releases them, and frees are counted once, when the objects die.
#[test]
fn the_quarantine_holds_dead_slots_for_its_cycles_then_releases_them() {
    let heap = heap();
    heap.set_quarantine(2);
    let mut c = MCache::new(&heap);
    let layout = Layout::new(48, &[0]).unwrap();
    let n = 2 * CLASS_TO_NELEMS[size_to_class(48) as usize] as usize;
    let mut addrs: Vec<usize> = (0..n)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    let large = c.alloc(&Layout::noscan(1 << 20)).unwrap().as_ptr() as usize;
    let keep: Vec<usize> = addrs.iter().copied().step_by(3).collect();
    fill(&addrs, 48);
    mark_every(&heap, &keep, 1);
    collect_nothing(&heap, &mut [&mut c]);
    let dead = n - keep.len();
    let m = heap.mem_stats();
    assert_eq!(
        (m.frees, m.heap_objects),
        (dead as u64 + 1, keep.len() as u64)
    );
    for (i, &a) in addrs.iter().enumerate() {
        let want = (i % 3 != 0).then_some(1);
        assert_eq!(freed_by(&heap, a), want, "slot {i}");
        // A held slot is still an object to a stale word that marks it: it must hold no
        // old pointer. (Freed slots are otherwise cleared when handed out again.)
        // SAFETY: a held 48-byte slot, never handed out meanwhile.
        let bytes = unsafe { std::slice::from_raw_parts(a as *const u8, 48) };
        if want.is_some() {
            assert!(
                bytes.iter().all(|&b| b == 0),
                "held slot {i} was not cleared"
            );
        }
    }
    assert_eq!(freed_by(&heap, large), Some(1));
    // Held slots are not handed out: as many new objects as died take other slots.
    let fresh: Vec<usize> = (0..dead)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    addrs.sort();
    assert!(fresh.iter().all(|p| addrs.binary_search(p).is_err()));
    let (in_use, _, _) = heap.page_summary();
    assert!(in_use >= (1 << 20), "the large object's span is held");

    // Cycle 2: the fresh objects die too (cycle 2 frees them); cycle 1's are still held.
    mark_every(&heap, &keep, 1);
    collect_nothing(&heap, &mut [&mut c]);
    assert_eq!(freed_by(&heap, addrs[1]), Some(1));
    assert!(fresh.iter().all(|&p| freed_by(&heap, p) == Some(2)));
    // Cycle 3 releases what cycle 1 freed: no longer objects, and the slots reusable.
    mark_every(&heap, &keep, 1);
    collect_nothing(&heap, &mut [&mut c]);
    for &a in &addrs {
        if keep.binary_search(&a).is_err() {
            assert_eq!((freed_by(&heap, a), heap.find_object(a)), (None, None));
        }
    }
    assert_eq!(
        (freed_by(&heap, large), heap.find_object(large)),
        (None, None)
    );
    let m = heap.mem_stats();
    assert_eq!(m.frees, (2 * dead) as u64 + 1, "each death counted once");
    assert_eq!(m.heap_objects, keep.len() as u64);
    let again = c.alloc(&layout).unwrap().as_ptr() as usize;
    assert!(
        addrs.binary_search(&again).is_ok(),
        "released slots are reused"
    );
}

/// Under a `max_heap` limit the quarantine holds nothing: held slots pin their spans, and
/// a program that fits its limit must not run out for a check.
#[test]
fn the_quarantine_holds_nothing_under_a_heap_limit() {
    let heap = MHeap::new(HeapConfig {
        address_space: 4 << 30,
        max_heap: Some(64 << 20),
    })
    .unwrap();
    heap.set_quarantine(2);
    let mut c = MCache::new(&heap);
    let layout = Layout::noscan(64);
    let addrs: Vec<usize> = (0..100)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    collect_nothing(&heap, &mut [&mut c]);
    assert!(addrs.iter().all(|&a| freed_by(&heap, a).is_none()));
    assert_eq!(
        heap.page_summary().0,
        0,
        "the span went back to the page heap"
    );
}

#[test]
fn scavenger_releases_free_pages_and_they_come_back_zero() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let layout = Layout::noscan(1024);
    let n = 4096; // 4 MiB of 1 KiB objects: 512 pages
    let addrs: Vec<usize> = (0..n)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    for &a in &addrs {
        // SAFETY: each is a 1 KiB object we own.
        unsafe { std::ptr::write_bytes(a as *mut u8, 0x5A, 1024) };
    }
    let before = heap.mem_stats();
    collect_nothing(&heap, &mut [&mut c]);
    let (in_use, free, released) = heap.page_summary();
    assert_eq!(in_use, 0);
    assert_eq!(
        free - released,
        n * 1024,
        "the freed pages are dirty until scavenged"
    );

    let got = heap.scavenge(1 << 20);
    assert_eq!(got, 1 << 20, "scavenge stops at the request");
    assert_eq!(
        heap.mem_stats().heap_released,
        before.heap_released + (1 << 20)
    );
    let got = heap.scavenge_all();
    assert_eq!(got, n * 1024 - (1 << 20));
    let m = heap.mem_stats();
    assert_eq!(m.heap_released, m.heap_idle, "every idle page is released");
    assert_eq!(heap.scavenge_all(), 0, "nothing left to release");

    // The released pages are reused; had they not really been given back (or were they
    // handed out before being made usable), the old 0x5A bytes would show: released pages
    // are not re-zeroed by the allocator, they come back zero from the OS.
    let again: Vec<usize> = (0..n)
        .map(|_| c.alloc(&layout).unwrap().as_ptr() as usize)
        .collect();
    let mut sorted = addrs.clone();
    sorted.sort();
    for &p in &again {
        assert!(sorted.binary_search(&p).is_ok());
        // SAFETY: a fresh 1 KiB object.
        let bytes = unsafe { std::slice::from_raw_parts_mut(p as *mut u8, 1024) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "released page came back dirty"
        );
        bytes.fill(1);
    }
    assert_eq!(
        heap.mem_stats().heap_released,
        m.heap_released - (n * 1024) as u64
    );
}

#[test]
fn heap_grows_arena_by_arena_and_spans_cross_arenas() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    assert_eq!(
        heap.mem_stats().heap_sys,
        0,
        "nothing is taken before the first allocation"
    );
    c.alloc(&Layout::noscan(8)).unwrap();
    assert_eq!(heap.mem_stats().heap_sys, ARENA_BYTES as u64);
    // A large object bigger than an arena needs several, contiguous.
    let big = ARENA_BYTES + ARENA_BYTES / 2;
    let p = c.alloc(&Layout::noscan(big)).unwrap().as_ptr() as usize;
    assert_eq!(heap.find_object(p + big - 1).map(|o| o.base), Some(p));
    assert!(heap.mem_stats().heap_sys >= 2 * ARENA_BYTES as u64);
    // Small spans keep filling the gaps.
    let q = c.alloc(&Layout::noscan(class_size(20))).unwrap().as_ptr() as usize;
    assert_eq!(heap.find_object(q).map(|o| o.base), Some(q));
}

#[test]
fn heap_live_counts_cached_spans_whole_and_settles_to_objects() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let layout = Layout::noscan(48);
    let per_span = CLASS_TO_NELEMS[size_to_class(48) as usize] as usize;
    c.alloc(&layout).unwrap();
    assert_eq!(
        heap.heap_live(),
        PAGE_SIZE as u64,
        "a cached span counts whole at once"
    );
    for _ in 1..per_span + 10 {
        c.alloc(&layout).unwrap();
    }
    c.alloc(&Layout::noscan(100_000)).unwrap();
    let large = 100_000usize.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    // The full span went back: only its objects still count (not its 32-byte tail).
    assert_eq!(heap.heap_live(), (per_span * 48 + PAGE_SIZE + large) as u64);
    c.release_all();
    assert_eq!(
        heap.heap_live(),
        ((per_span + 10) * 48 + large) as u64,
        "unused slots given back"
    );
    heap.finish_sweep();
    heap.set_heap_live(0);
    // SAFETY: every object used after this sweep cycle was marked before it.
    unsafe { heap.start_sweep_cycle() };
    assert_eq!(heap.heap_live(), 0);
}

/// A minor cycle scans the card table up to the highest span allocated, not to the end of
/// the arena the heap grew by: a 4 MiB heap scans 8,192 cards, not 131,072.
#[test]
fn the_card_scan_reaches_the_highest_span_not_the_arena_end() {
    let heap = heap();
    assert_eq!(heap.cards(), 0, "no span yet");
    let mut c = MCache::new(&heap);
    let layout = Layout::new(48, &[1]).unwrap();
    let first = c.alloc(&layout).unwrap().as_ptr() as usize;
    let span_bytes = CLASS_TO_NPAGES[size_to_class(48) as usize] as usize * PAGE_SIZE;
    let cards_of = |bytes: usize| bytes / 512;
    assert_eq!(heap.cards(), cards_of(span_bytes), "one span's cards");
    assert!(heap.cards() < cards_of(ARENA_BYTES));
    // A large object above it raises the extent to its end.
    let big = Layout::new(1 << 20, &[]).unwrap();
    let large = c.alloc(&big).unwrap().as_ptr() as usize;
    let base = first - first % span_bytes;
    assert_eq!(heap.cards(), cards_of(large + (1 << 20) - base));
    // Freed spans keep it: it only rises.
    let before = heap.cards();
    collect_nothing(&heap, &mut [&mut c]);
    assert_eq!(heap.page_summary().0, 0);
    assert_eq!(heap.cards(), before);
}

#[test]
fn a_dropped_mcache_hands_its_spans_back() {
    let heap = heap();
    let layout = Layout::new(48, &[1, 3]).unwrap();
    let spc = SpanClass::new(size_to_class(48), false);
    let mut c = MCache::new(&heap);
    c.alloc(&layout).unwrap();
    assert_eq!(
        heap.central_counts(spc).iter().sum::<usize>(),
        0,
        "the span is cached, in no mcentral list"
    );
    drop(c);
    assert_eq!(
        heap.central_counts(spc).iter().sum::<usize>(),
        1,
        "a dropped mcache's span goes back to mcentral, or no one could allocate from it again"
    );
}

/// The sweep leaves dead objects' bytes in place (`AllocState::needzero`): every way a
/// scan slot is handed out again must clear it, or a marker could read an old pointer in
/// a new object. The fast path (also as the runtime's typed constructors take it), its
/// next-64-slots step, a span's second layout (whose objects' bits go to the bitmap) and
/// arrays (the slow path) are each checked, and spans swept empty, which the sweep clears
/// whole.
#[test]
fn dead_scan_objects_are_cleared_when_their_slots_are_handed_out_again() {
    let heap = heap();
    let mut c = MCache::new(&heap);
    let a = Layout::new(48, &[1, 3]).unwrap();
    let b = Layout::new(48, &[0, 5]).unwrap();
    let per_span = CLASS_TO_NELEMS[size_to_class(48) as usize] as usize;
    let n = 4 * per_span;
    let addrs: Vec<usize> = (0..n)
        .map(|i| {
            // Two spans of one layout, two of both (whose objects' bits go to the bitmap).
            let l = if i >= 2 * per_span && i % 7 == 0 {
                &b
            } else {
                &a
            };
            c.alloc(l).unwrap().as_ptr() as usize
        })
        .collect();
    fill(&addrs, 48);
    mark_every(&heap, &addrs, 5);
    collect_nothing(&heap, &mut [&mut c]);
    let mut addrs = addrs;
    addrs.sort();
    let zero = |p: usize| {
        // SAFETY: a fresh 48-byte object.
        unsafe { std::slice::from_raw_parts(p as *const u64, 6) }
            .iter()
            .all(|&w| w == 0)
    };
    let mut reused = 0;
    for i in 0..n {
        let p = match (i < n / 2, i % 2) {
            (true, 0) => c.alloc(&a),
            // The runtime's, for a constructor that writes every byte: a scan object is
            // cleared all the same.
            (true, _) => match c.alloc_fast_nopreempt::<false>(&a) {
                Some(p) => Ok(p),
                None => c.alloc(&a),
            },
            (false, 0) => c.alloc(&b),
            (false, _) => c.alloc_array(&a, 1),
        }
        .unwrap()
        .as_ptr() as usize;
        assert!(zero(p), "object {i} at {p:#x} holds a dead object's bytes");
        reused += addrs.binary_search(&p).is_ok() as usize;
    }
    assert!(
        reused > n / 2,
        "the dead slots were reused: {reused} of {n}"
    );

    // Spans left with nothing in them, swept lazily by the refills that take them (so
    // kept, and cleared whole), then handed out slot by slot.
    let all: Vec<usize> = (0..n)
        .map(|_| c.alloc(&a).unwrap().as_ptr() as usize)
        .collect();
    fill(&all, 48);
    heap.finish_sweep();
    // SAFETY: nothing allocated before this sweep cycle is used after it.
    unsafe { heap.start_sweep_cycle() };
    c.release_all();
    for i in 0..n {
        let p = c.alloc(&a).unwrap().as_ptr() as usize;
        assert!(
            zero(p),
            "object {i} at {p:#x} of an emptied span is not zero"
        );
    }
}
