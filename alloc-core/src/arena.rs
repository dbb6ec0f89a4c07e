//! Arenas: the heap's address space in 64 MiB units, and the O(1) map from an address to
//! the span that holds it.
//!
//! A heap reserves its address space once (see `os`) and grows into it an arena at a time,
//! in address order. Each arena in use has a [`HeapArena`] with one span pointer per page
//! (Go's `heapArena.spans`); the arena index is an offset into a flat array. So `span_of`
//! is a subtraction, two shifts and two loads.
//!
//! Table entries are written under the heap lock when a span is allocated or freed and read
//! without it, so they are atomics: a reader sees either the old or the new span, and checks
//! the span's state and bounds before trusting it.

use crate::sizeclass::PAGE_SHIFT;
use crate::span::{MSpan, SpanRef};
use crate::sync::{AtomicPtr, Ordering};

/// Bytes per arena: Go's `heapArenaBytes` on 64-bit Linux. Loom models use tiny arenas so
/// their tables stay small.
#[cfg(not(loom))]
pub const ARENA_BYTES: usize = 64 << 20;
/// Bytes per arena (loom builds).
#[cfg(loom)]
pub const ARENA_BYTES: usize = 1 << 20;
/// Pages per arena.
pub const ARENA_PAGES: usize = ARENA_BYTES >> PAGE_SHIFT;

/// Per-arena metadata: the span of each page, inline so that `span_of` is one load away
/// from the arena index.
pub(crate) struct HeapArena {
    spans: [AtomicPtr<MSpan>; ARENA_PAGES],
}

/// The arena index of one heap: which arenas exist, and through them, which span owns
/// each page.
pub(crate) struct Arenas {
    base: usize,
    index: Box<[AtomicPtr<HeapArena>]>,
}

impl Arenas {
    /// An index for `len` bytes of address space from `base` (both arena-aligned).
    pub(crate) fn new(base: usize, len: usize) -> Arenas {
        let n = len / ARENA_BYTES;
        Arenas {
            base,
            index: (0..n)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
        }
    }

    /// Number of arenas the address space has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.index.len()
    }

    /// Creates the metadata of arena `i`. Called under the heap lock.
    pub(crate) fn add(&self, i: usize) {
        // Built in place: 64 KiB is too much to build on the stack and move.
        let mut arena: Box<std::mem::MaybeUninit<HeapArena>> = Box::new_uninit();
        let spans = arena.as_mut_ptr() as *mut AtomicPtr<MSpan>;
        for i in 0..ARENA_PAGES {
            // SAFETY: `spans` points at the array of ARENA_PAGES entries inside the box.
            unsafe { spans.add(i).write(AtomicPtr::new(std::ptr::null_mut())) };
        }
        // SAFETY: every field (the one array) was initialised above.
        let arena = unsafe { arena.assume_init() };
        let old = self.index[i].swap(Box::into_raw(arena), Ordering::Release);
        debug_assert!(old.is_null(), "arena {i} added twice");
    }

    /// Points pages `[page, page + n)` (heap page numbers) at `span`, or at nothing.
    /// Called under the heap lock.
    pub(crate) fn set_spans(&self, page: usize, n: usize, span: Option<SpanRef>) {
        let ptr = span.map_or(std::ptr::null_mut(), SpanRef::as_ptr);
        for p in page..page + n {
            let arena = self.index[p / ARENA_PAGES].load(Ordering::Relaxed);
            debug_assert!(!arena.is_null());
            // SAFETY: arenas are created before any of their pages is handed out and freed
            // only when the heap is dropped.
            let arena = unsafe { &*arena };
            arena.spans[p % ARENA_PAGES].store(ptr, Ordering::Release);
        }
    }

    /// The span whose pages include `addr`, if any span was ever there: the result may be a
    /// dead or reused span, which the caller checks (Go's `spanOf`).
    #[inline]
    pub(crate) fn span_of(&self, addr: usize) -> Option<&MSpan> {
        let off = addr.checked_sub(self.base)?;
        let arena = self.index.get(off / ARENA_BYTES)?.load(Ordering::Acquire);
        if arena.is_null() {
            return None;
        }
        // SAFETY: a non-null arena pointer stays valid until the heap is dropped, and the
        // heap outlives `self`'s borrow.
        let arena = unsafe { &*arena };
        let span = arena.spans[(off >> PAGE_SHIFT) % ARENA_PAGES].load(Ordering::Acquire);
        // SAFETY: span structs are owned by the heap and never freed while it lives.
        (!span.is_null()).then(|| unsafe { &*span })
    }
}

impl Drop for Arenas {
    fn drop(&mut self) {
        for a in self.index.iter() {
            let p = a.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: created by `Box::into_raw` in `add`, and dropped once, here.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
