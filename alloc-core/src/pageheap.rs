//! The page heap (the page-level half of Go's `mheap`): the reserved address space, the page
//! allocator over it, every span struct, and the memory returned to the OS.
//!
//! One lock covers the page allocator and span struct recycling; it is taken when an
//! mcentral needs a new span, when a span goes back, when the heap grows, and when the
//! scavenger moves pages in or out of the free set. Everything a mutator does more often
//! than that happens in its mcache or under a per-class mcentral lock.
//!
//! Memory comes from the reservation an arena at a time. A new arena's pages count as
//! released: fresh from the OS, untouched, known to be zero. A page stays "released" until a
//! span takes it; a span built only from released pages needs no zeroing (Go's
//! `needzero`). The scavenger turns free dirty pages back into released ones.

use std::io;

use crate::arena::{Arenas, ARENA_BYTES, ARENA_PAGES};
use crate::error::AllocError;
use crate::os::Reservation;
use crate::pages::PageAlloc;
use crate::sizeclass::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{MSpan, SpanRef, SpanShape, SPAN_DEAD, SPAN_IN_USE};
use crate::sync::{AtomicUsize, Mutex, Ordering};

struct Locked {
    pages: PageAlloc,
    free_spans: Vec<SpanRef>,
    /// Every span struct ever made, boxed so it never moves: span pointers outlive any
    /// one use of them.
    #[allow(clippy::vec_box)]
    all_spans: Vec<Box<MSpan>>,
    inuse_pages: usize,
    arenas: usize,
}

/// The address space, its pages and its span structs.
pub(crate) struct PageHeap {
    reservation: Reservation,
    base: usize,
    len: usize,
    arenas: Arenas,
    locked: Mutex<Locked>,
    /// Pages the scavenger has taken out of the free set to release, not yet returned.
    releasing: AtomicUsize,
    max_heap: AtomicUsize,
    /// End of the grown part of the address space.
    grown_end: AtomicUsize,
    /// End of the highest span ever allocated: no object has lived above it. Heaps grow
    /// by whole arenas, so a small heap's objects sit far below `grown_end`.
    used_end: AtomicUsize,
}

/// Page-level figures for `MemStats` (bytes).
pub(crate) struct PageStats {
    pub(crate) sys: usize,
    pub(crate) inuse: usize,
    pub(crate) released: usize,
    /// Bytes of span structs and page tables: metadata the OS backs for the heap.
    pub(crate) metadata: usize,
}

impl PageHeap {
    /// Reserves `address_space` bytes (rounded up to whole arenas; smaller reservations
    /// are tried, down to 4 arenas, if the OS refuses).
    pub(crate) fn new(address_space: usize, max_heap: Option<usize>) -> io::Result<PageHeap> {
        let mut len = address_space.max(ARENA_BYTES).next_multiple_of(ARENA_BYTES);
        let reservation = loop {
            match Reservation::new(len, ARENA_BYTES) {
                Ok(r) => break r,
                Err(e) if len <= 4 * ARENA_BYTES => return Err(e),
                Err(_) => len = (len / 2).next_multiple_of(ARENA_BYTES),
            }
        };
        let base = reservation.aligned_base(ARENA_BYTES);
        Ok(PageHeap {
            arenas: Arenas::new(base, len)?,
            reservation,
            base,
            len,
            locked: Mutex::new(Locked {
                pages: PageAlloc::new(),
                free_spans: Vec::new(),
                all_spans: Vec::new(),
                inuse_pages: 0,
                arenas: 0,
            }),
            releasing: AtomicUsize::new(0),
            max_heap: AtomicUsize::new(max_heap.unwrap_or(usize::MAX)),
            grown_end: AtomicUsize::new(base),
            used_end: AtomicUsize::new(base),
        })
    }

    /// First address of the heap.
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Bytes of address space reserved.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn set_max_heap(&self, max: Option<usize>) {
        self.max_heap
            .store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    pub(crate) fn max_heap(&self) -> Option<usize> {
        Some(self.max_heap.load(Ordering::Relaxed)).filter(|&m| m != usize::MAX)
    }

    /// End of the highest span allocated so far (it only rises).
    pub(crate) fn used_end(&self) -> usize {
        self.used_end.load(Ordering::Acquire)
    }

    /// True when `addr` lies in the part of the address space the heap has grown into.
    #[inline(always)]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.grown_end.load(Ordering::Acquire)
    }

    /// The span whose pages hold `addr`, if the heap has grown there and a span is there now.
    #[inline(always)]
    pub(crate) fn span_of(&self, addr: usize) -> Option<&MSpan> {
        if !self.contains(addr) {
            return None;
        }
        self.arenas.span_of(addr)
    }

    /// Allocates a span of `npages` pages shaped as `shape` (Go's `mheap.alloc` +
    /// `initSpan`), swept for cycle `sweepgen`. The span comes back in use, owned by the
    /// caller, with whether its pages may hold old data (Go's `needzero`): pages released
    /// to the OS, or never used, are zero.
    pub(crate) fn alloc_span(
        &self,
        npages: usize,
        shape: SpanShape,
        sweepgen: u32,
    ) -> Result<(SpanRef, bool), AllocError> {
        let bytes = npages
            .checked_mul(PAGE_SIZE)
            .filter(|&b| b <= self.len)
            .ok_or(AllocError::TooLarge {
                size: npages.saturating_mul(PAGE_SIZE),
                address_space: self.len,
            })?;
        let mut h = self.locked.lock();
        let limit = self.max_heap.load(Ordering::Relaxed);
        let in_use = h.inuse_pages * PAGE_SIZE;
        if in_use + bytes > limit {
            return Err(AllocError::OutOfMemory {
                requested: bytes,
                in_use,
                limit,
            });
        }
        let (page, released) = match h.pages.alloc(npages) {
            Some(r) => r,
            None => {
                self.grow(&mut h, npages)?;
                h.pages
                    .alloc(npages)
                    .expect("grew the heap but found no room")
            }
        };
        let span = match h.free_spans.pop() {
            Some(s) => s,
            None => {
                let b = Box::new(MSpan::new());
                let s = SpanRef::new(&b);
                h.all_spans.push(b);
                s
            }
        };
        let base = self.base + (page << PAGE_SHIFT);
        let s = span.get();
        // SAFETY: the span struct was dead (from the free list or new) and we hold the heap
        // lock, so nobody else can reach it.
        unsafe { s.init(base, npages, shape) };
        s.sweepgen.store(sweepgen, Ordering::Relaxed);
        // In use before it is findable: a collector that finds it through the page table
        // (a conservative word, marking running beside allocation) sees it whole.
        s.state.store(SPAN_IN_USE, Ordering::Release);
        self.arenas.set_spans(page, npages, Some(span));
        h.inuse_pages += npages;
        // Written only under the heap lock, so a load and a store make a maximum.
        let end = base + (npages << PAGE_SHIFT);
        if end > self.used_end.load(Ordering::Relaxed) {
            self.used_end.store(end, Ordering::Release);
        }
        Ok((span, released < npages))
    }

    /// Gives a span's pages back to the page heap (Go's `freeSpan`). The caller owns the
    /// span and nothing in it is reachable.
    pub(crate) fn free_span(&self, span: SpanRef) {
        let s = span.get();
        let mut h = self.locked.lock();
        let (base, npages) = s.info(|i| (i.base, i.npages));
        let page = (base - self.base) >> PAGE_SHIFT;
        s.state.store(SPAN_DEAD, Ordering::Release);
        self.arenas.set_spans(page, npages, None);
        // SAFETY: the span is dead and out of the page table; we hold the heap lock.
        unsafe { s.clear() };
        h.pages.free(page, npages, false);
        h.inuse_pages -= npages;
        h.free_spans.push(span);
    }

    /// Grows the heap by enough whole arenas for a run of `npages` pages (the free pages at
    /// the current end count: arenas are contiguous).
    fn grow(&self, h: &mut Locked, npages: usize) -> Result<(), AllocError> {
        let need = (npages - h.pages.free_at_end().min(npages)).div_ceil(ARENA_PAGES);
        if h.arenas + need > self.arenas.capacity() {
            return Err(AllocError::OutOfMemory {
                requested: npages * PAGE_SIZE,
                in_use: h.inuse_pages * PAGE_SIZE,
                limit: self.len,
            });
        }
        h.arenas += need;
        h.pages.grow(h.arenas * ARENA_PAGES);
        self.grown_end
            .store(self.base + h.arenas * ARENA_BYTES, Ordering::Release);
        Ok(())
    }

    /// Runs `f` holding the page heap's lock, so that no span is allocated or freed
    /// meanwhile.
    /// Calls `f` with every span in use, holding the heap lock.
    pub(crate) fn for_each_in_use(&self, mut f: impl FnMut(&MSpan)) {
        let h = self.locked.lock();
        for s in &h.all_spans {
            if s.state.load(Ordering::Acquire) == SPAN_IN_USE {
                f(s);
            }
        }
    }

    pub(crate) fn locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let _h = self.locked.lock();
        f()
    }

    /// Returns up to `max_bytes` of free, dirty pages to the OS, highest addresses first
    /// (first-fit allocation reuses the low ones). Returns the bytes released.
    ///
    /// Pages being released are taken out of the free set while the lock is dropped for the
    /// `madvise`, so an allocation can never receive a page the OS is discarding (invariant 5).
    pub(crate) fn scavenge(&self, max_bytes: usize) -> usize {
        const CHUNK_PAGES: usize = 64;
        let mut released = 0;
        while released < max_bytes {
            let want = ((max_bytes - released).div_ceil(PAGE_SIZE)).min(CHUNK_PAGES);
            let (page, n) = {
                let mut h = self.locked.lock();
                let Some((page, n)) = h.pages.find_unreleased_from_top(want) else {
                    break;
                };
                let was_released = h.pages.alloc_range(page, n);
                debug_assert_eq!(was_released, 0);
                (page, n)
            };
            self.releasing.fetch_add(n, Ordering::AcqRel);
            #[cfg(loom_mutant = "scavenge_free_early")]
            {
                self.locked.lock().pages.free(page, n, true);
                self.releasing.fetch_sub(n, Ordering::AcqRel);
            }
            // SAFETY: the pages are free (no object lives there) and we hold them allocated,
            // so no one else can receive them until we free them below.
            unsafe {
                self.reservation
                    .release(self.base + (page << PAGE_SHIFT), n * PAGE_SIZE)
            };
            #[cfg(not(loom_mutant = "scavenge_free_early"))]
            {
                self.locked.lock().pages.free(page, n, true);
                self.releasing.fetch_sub(n, Ordering::AcqRel);
            }
            released += n * PAGE_SIZE;
        }
        released
    }

    /// Bytes of the heap in spans, in free pages (dirty or released, including those the
    /// scavenger is releasing), and in released pages: `(in use, free, released)`.
    pub(crate) fn page_summary(&self) -> (usize, usize, usize) {
        let h = self.locked.lock();
        let releasing = self.releasing.load(Ordering::Acquire);
        (
            h.inuse_pages * PAGE_SIZE,
            (h.pages.free_pages() + releasing) * PAGE_SIZE,
            h.pages.released_pages() * PAGE_SIZE,
        )
    }

    /// The page-level `MemStats` figures.
    pub(crate) fn stats(&self) -> PageStats {
        let h = self.locked.lock();
        let span_structs = h.all_spans.len() * std::mem::size_of::<MSpan>();
        let tables = h.arenas * ARENA_PAGES * std::mem::size_of::<usize>();
        PageStats {
            sys: h.arenas * ARENA_BYTES,
            inuse: h.inuse_pages * PAGE_SIZE,
            released: h.pages.released_pages() * PAGE_SIZE,
            metadata: span_structs + tables,
        }
    }
}
