//! Bad requests get an error value and lose nothing: the heap keeps working afterwards.

use minigo_alloc_core::{zerobase, AllocError, HeapConfig, Layout, LayoutError, MCache, MHeap};

fn heap(max_heap: Option<usize>) -> std::sync::Arc<MHeap> {
    MHeap::new(HeapConfig {
        address_space: 1 << 30,
        max_heap,
    })
    .unwrap()
}

#[test]
fn zero_size_objects_share_zerobase_and_are_never_freed() {
    let heap = heap(None);
    let mut c = MCache::new(&heap);
    let a = c.alloc(&Layout::noscan(0)).unwrap();
    let b = c.alloc_array(&Layout::pointers(3), 0).unwrap();
    let d = c.alloc_array(&Layout::noscan(0), 1 << 40).unwrap();
    assert_eq!(a, zerobase());
    assert_eq!(b, zerobase());
    assert_eq!(
        d,
        zerobase(),
        "zero-size elements make a zero-size array at any length"
    );
    assert_eq!(a.as_ptr() as usize % 8, 0);
    assert_eq!(
        heap.find_object(a.as_ptr() as usize),
        None,
        "not a heap object"
    );
    // SAFETY: every object used after this sweep cycle was marked before it.
    unsafe { heap.start_sweep_cycle() };
    c.release_all();
    heap.finish_sweep();
    // SAFETY: zerobase is a valid address for zero-size access; reading the static word
    // shows it was never reused.
    assert_eq!(unsafe { *(zerobase().as_ptr() as *const u64) }, 0);
    c.flush_stats();
    assert_eq!(
        heap.mem_stats().mallocs,
        0,
        "zero-size allocations are not heap objects"
    );
}

#[test]
fn overflowing_sizes_are_errors() {
    let heap = heap(None);
    let mut c = MCache::new(&heap);
    let e = c
        .alloc_array(&Layout::pointers(2), usize::MAX / 8)
        .unwrap_err();
    assert_eq!(
        e,
        AllocError::SizeOverflow {
            elem_size: 16,
            len: usize::MAX / 8
        }
    );
    let e = c
        .alloc_array(&Layout::noscan(1 << 32), 1 << 31)
        .unwrap_err();
    assert!(
        matches!(e, AllocError::SizeOverflow { .. }),
        "{e:?}: more than isize::MAX"
    );
    assert!(e.to_string().contains("overflows"));
    assert!(c.alloc(&Layout::noscan(100)).is_ok(), "heap still works");
}

#[test]
fn requests_larger_than_the_address_space_are_errors() {
    let heap = heap(None);
    let mut c = MCache::new(&heap);
    let e = c.alloc(&Layout::noscan(1 << 40)).unwrap_err();
    assert_eq!(
        e,
        AllocError::TooLarge {
            size: 1 << 40,
            address_space: heap.address_space()
        }
    );
    let e = c.alloc_array(&Layout::pointers(1), 1 << 37).unwrap_err();
    assert!(matches!(e, AllocError::TooLarge { .. }), "{e:?}");
    assert!(c.alloc(&Layout::noscan(1 << 20)).is_ok());
    assert_eq!(heap.page_summary().0, 1 << 20, "the failures took no pages");
}

#[test]
fn exhausting_the_address_space_is_out_of_memory_and_recoverable() {
    let heap = heap(None);
    let mut c = MCache::new(&heap);
    let chunk = Layout::noscan(200 << 20);
    let mut n = 0;
    let err = loop {
        match c.alloc(&chunk) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(n >= 4, "1 GiB holds at least four 200 MiB objects, got {n}");
    assert!(matches!(err, AllocError::OutOfMemory { .. }), "{err:?}");
    // Free everything (nothing marked); the space is usable again.
    // SAFETY: every object used after this sweep cycle was marked before it.
    unsafe { heap.start_sweep_cycle() };
    c.release_all();
    heap.finish_sweep();
    assert!(c.alloc(&chunk).is_ok());
}

#[test]
fn max_heap_is_a_hard_limit_that_fails_cleanly() {
    let heap = heap(Some(4 << 20));
    let mut c = MCache::new(&heap);
    let node = Layout::pointers(4);
    let mut count = 0usize;
    let err = loop {
        match c.alloc(&node) {
            Ok(_) => count += 1,
            Err(e) => break e,
        }
    };
    match err {
        AllocError::OutOfMemory {
            requested,
            in_use,
            limit,
        } => {
            assert_eq!(limit, 4 << 20);
            assert!(in_use + requested > limit && in_use <= limit);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(count, (4 << 20) / 32, "every page under the limit was used");
    assert!(
        c.alloc(&Layout::noscan(5 << 20)).is_err(),
        "a large object over the limit too"
    );
    // Raising the limit lets the same cache go on.
    heap.set_max_heap(Some(8 << 20));
    assert!(c.alloc(&node).is_ok());
    c.flush_stats();
    assert_eq!(
        heap.mem_stats().mallocs,
        count as u64 + 1,
        "failed attempts allocated nothing"
    );
}

#[test]
fn layouts_whose_bitmap_passes_the_end_are_rejected() {
    assert_eq!(
        Layout::new(24, &[3]).unwrap_err(),
        LayoutError::PointerPastEnd { word: 3, size: 24 }
    );
    assert!(Layout::from_bitmap(64, &[0, 1]).is_err());
    assert!(Layout::from_offsets(16, &[16]).is_err());
    let e = Layout::from_offsets(16, &[3]).unwrap_err();
    assert!(e.to_string().contains("aligned"), "{e}");
}
