//! Model 3: page allocation and freeing race the scavenger.
//!
//! Two large objects' pages were freed dirty by the last cycle. P allocates a large object
//! (first fit: it lands on those pages) and writes to it, allocates a second one and lets a
//! cycle free it, then allocates a third and writes to it; meanwhile the scavenger returns
//! free dirty pages to the OS with a real `madvise(MADV_DONTNEED)` (a scheduling point in
//! loom builds).
//!
//! Proves: no page is both allocated and released. The scavenger takes the pages it
//! releases out of the free set for the duration, so P never receives a page the OS is
//! discarding; had it, P's bytes would read back as zero after the `madvise`. Afterwards the
//! heap's accounting adds up: released + dirty free + in use = everything grown.

#![cfg(loom)]

use loom::thread;
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap};
use minigo_loom_tests::model;

#[test]
fn page_allocation_races_the_scavenger() {
    model(|| {
        let heap = MHeap::new(HeapConfig::default()).unwrap();
        let big = Layout::noscan(40_000);
        let mut c = MCache::new(&heap);
        c.alloc(&big).unwrap();
        c.alloc(&big).unwrap();
        heap.finish_sweep();
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };
        c.release_all();
        heap.finish_sweep();
        let (_, free_before, released_before) = heap.page_summary();
        assert!(
            free_before > released_before,
            "dirty free pages to scavenge"
        );

        let h = heap.clone();
        let scavenger = thread::spawn(move || h.scavenge(usize::MAX));
        let fill = |p: *mut u8, v: u8| {
            // SAFETY: a fresh 40,000-byte object.
            unsafe { std::ptr::write_bytes(p, v, 40_000) };
        };
        let y = c.alloc(&big).unwrap().as_ptr();
        fill(y, 0x5A);
        let z = c.alloc(&big).unwrap().as_ptr();
        fill(z, 0x11);
        // A cycle that keeps y and frees z, with the world (P) stopped.
        heap.finish_sweep();
        // SAFETY: P is the only mutator and is collecting; sweeping is finished.
        unsafe { heap.find_object_unlocked(y as usize) }
            .unwrap()
            .try_mark();
        // SAFETY: every object used after this sweep cycle was marked before it.
        unsafe { heap.start_sweep_cycle() };
        c.release_all();
        heap.finish_sweep();
        let w = c.alloc(&big).unwrap().as_ptr();
        fill(w, 0x6B);
        scavenger.join().unwrap();

        for (p, v) in [(y, 0x5A), (w, 0x6B)] {
            // SAFETY: both still allocated.
            let bytes = unsafe { std::slice::from_raw_parts(p, 40_000) };
            assert!(
                bytes.iter().all(|&b| b == v),
                "the scavenger released a page in use"
            );
        }
        let (in_use, free, rel) = heap.page_summary();
        let m = heap.mem_stats();
        assert_eq!((in_use + free) as u64, m.heap_sys);
        assert_eq!(rel as u64, m.heap_released);
        assert!(rel <= free);
    });
}
