//! The heap (Go's `mheap`): owner of the address space, the page allocator, every span
//! struct, the mcentrals, the statistics and the sweep generation.
//!
//! The heap lock covers the page allocator and span struct recycling; it is taken when an
//! mcentral needs a new span, when a span goes back, and when the heap grows. Everything a
//! mutator does more often than that happens in its mcache or under a per-class mcentral lock.
//!
//! Memory comes from the reservation an arena at a time. A new arena's pages count as
//! released: fresh from the OS, untouched, known to be zero. A page stays "released" until a
//! span takes it; a span built only from released pages needs no zeroing (Go's
//! `needzero`). The scavenger turns free dirty pages back into released ones.

use std::io;

use crate::arena::{Arenas, ARENA_BYTES, ARENA_PAGES};
use crate::central::MCentral;
use crate::error::AllocError;
use crate::heapbits::HeapBits;
use crate::os::Reservation;
use crate::pages::PageAlloc;
use crate::pointers::PointerWords;
use crate::sizeclass::{SpanClass, NUM_SPAN_CLASSES, PAGE_SHIFT, PAGE_SIZE};
use crate::span::{MSpan, PtrMask, SpanRef, SpanShape, SPAN_DEAD, SPAN_IN_USE};
use crate::stats::{Counters, MemStats};
use crate::sync::{Arc, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Address space a heap reserves unless told otherwise: 256 GiB (virtual, lazily backed).
#[cfg(not(loom))]
pub const DEFAULT_ADDRESS_SPACE: usize = 256 << 30;
/// Address space a heap reserves unless told otherwise (loom builds: 4 tiny arenas).
#[cfg(loom)]
pub const DEFAULT_ADDRESS_SPACE: usize = 4 * ARENA_BYTES;

/// How to build a heap.
#[derive(Clone, Debug)]
pub struct HeapConfig {
    /// Bytes of address space to reserve (rounded up to whole arenas). The heap can never
    /// be larger. If the OS refuses, smaller reservations are tried down to 4 arenas.
    pub address_space: usize,
    /// Hard limit on bytes of heap pages in use; an allocation that would cross it fails
    /// with [`AllocError::OutOfMemory`]. `None`: limited only by the address space.
    pub max_heap: Option<usize>,
}

impl Default for HeapConfig {
    fn default() -> Self {
        HeapConfig {
            address_space: DEFAULT_ADDRESS_SPACE,
            max_heap: None,
        }
    }
}

/// What `find_object` knows about an object, as plain data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Address of the object's first byte.
    pub base: usize,
    /// Bytes the object occupies: its size class, or for a large object its requested size.
    pub size: usize,
    /// The span class of the span holding it.
    pub span_class: SpanClass,
    /// Slot index within the span.
    pub index: usize,
}

/// An allocated object, as the collector sees it while no span can be allocated or freed.
#[derive(Clone, Copy)]
pub struct ObjectRef<'h> {
    heap: &'h MHeap,
    span: &'h MSpan,
    base: usize,
    index: usize,
    slot_size: usize,
    noscan: bool,
}

impl<'h> ObjectRef<'h> {
    /// Address of the object's first byte.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Slot index in its span.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The span holding the object.
    pub fn span(&self) -> &'h MSpan {
        self.span
    }

    /// Bytes the object occupies (see [`ObjectInfo::size`]).
    pub fn size(&self) -> usize {
        self.span.info(|i| {
            if i.spc.size_class() == 0 {
                i.limit - i.base
            } else {
                i.elemsize
            }
        })
    }

    /// Bytes of its slot (for a large object: its whole run of pages), which is what a
    /// collector counts as marked.
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// True when the object can hold no pointers.
    pub fn noscan(&self) -> bool {
        self.noscan
    }

    /// Sets the object's mark bit; true if this call set it.
    #[inline]
    pub fn try_mark(&self) -> bool {
        self.span.try_mark(self.index)
    }

    /// Sets the object's mark bit without an atomic read-modify-write; true if it was clear.
    ///
    /// # Safety
    /// No other thread sets mark bits of this heap meanwhile (a single marker).
    #[inline]
    pub unsafe fn try_mark_exclusive(&self) -> bool {
        // SAFETY: the caller's contract.
        unsafe { self.span.try_mark_exclusive(self.index) }
    }

    /// Whether the object is marked.
    pub fn is_marked(&self) -> bool {
        self.span.is_marked(self.index)
    }

    /// The addresses of the object's pointer words, as its layout wrote them.
    pub fn pointer_words(&self) -> PointerWords<'h> {
        PointerWords::of(self.heap, self.span, self.base)
    }

    /// Plain-data copy.
    pub fn info(&self) -> ObjectInfo {
        ObjectInfo {
            base: self.base,
            size: self.size(),
            span_class: self.span.span_class(),
            index: self.index,
        }
    }
}

impl std::fmt::Debug for ObjectRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.info())
    }
}

pub(crate) struct HeapLocked {
    pages: PageAlloc,
    free_spans: Vec<SpanRef>,
    /// Every span struct ever made, boxed so it never moves: span pointers outlive any
    /// one use of them.
    #[allow(clippy::vec_box)]
    all_spans: Vec<Box<MSpan>>,
    inuse_pages: usize,
    arenas: usize,
}

/// A heap. Shared by its mcaches through an `Arc`; several heaps may coexist.
pub struct MHeap {
    _reservation: Reservation,
    base: usize,
    len: usize,
    arenas: Arenas,
    pub(crate) bits: HeapBits,
    locked: Mutex<HeapLocked>,
    pub(crate) central: Box<[MCentral]>,
    /// Go's `mheap_.sweepgen`: +2 per collection cycle.
    pub(crate) sweepgen: AtomicU32,
    /// Sweeps in progress (Go's `sweepers`), so `finish_sweep` can wait them out.
    pub(crate) sweepers: AtomicU32,
    /// Where the background sweeper looks next.
    pub(crate) sweep_cursor: AtomicUsize,
    pub(crate) counters: Mutex<Counters>,
    /// Go's `heapLive`: see [`MHeap::heap_live`].
    heap_live: AtomicU64,
    /// Pages the scavenger has taken out of the free set to release, not yet returned.
    releasing: AtomicUsize,
    /// A bit per span class that has ever had a span in its mcentral.
    classes_used: [AtomicU64; NUM_SPAN_CLASSES.div_ceil(64)],
    max_heap: AtomicUsize,
    /// End of the grown part of the address space.
    grown_end: AtomicUsize,
}

impl MHeap {
    /// Reserves a heap's address space.
    pub fn new(config: HeapConfig) -> io::Result<Arc<MHeap>> {
        let mut len = config
            .address_space
            .max(ARENA_BYTES)
            .next_multiple_of(ARENA_BYTES);
        let reservation = loop {
            match Reservation::new(len, ARENA_BYTES) {
                Ok(r) => break r,
                Err(e) if len <= 4 * ARENA_BYTES => return Err(e),
                Err(_) => len = (len / 2).next_multiple_of(ARENA_BYTES),
            }
        };
        let base = reservation.aligned_base(ARENA_BYTES);
        let heap = MHeap {
            bits: HeapBits::new(base, len)?,
            _reservation: reservation,
            base,
            len,
            arenas: Arenas::new(base, len)?,
            locked: Mutex::new(HeapLocked {
                pages: PageAlloc::new(),
                free_spans: Vec::new(),
                all_spans: Vec::new(),
                inuse_pages: 0,
                arenas: 0,
            }),
            central: (0..NUM_SPAN_CLASSES)
                .map(|i| MCentral::new(SpanClass(i as u8)))
                .collect(),
            sweepgen: AtomicU32::new(0),
            sweepers: AtomicU32::new(0),
            sweep_cursor: AtomicUsize::new(0),
            counters: Mutex::new(Counters::default()),
            heap_live: AtomicU64::new(0),
            classes_used: std::array::from_fn(|_| AtomicU64::new(0)),
            releasing: AtomicUsize::new(0),
            max_heap: AtomicUsize::new(config.max_heap.unwrap_or(usize::MAX)),
            grown_end: AtomicUsize::new(base),
        };
        Ok(Arc::new(heap))
    }

    /// Bytes of address space reserved: no heap object can be larger.
    pub fn address_space(&self) -> usize {
        self.len
    }

    /// Changes the hard limit on heap pages in use (`None`: no limit).
    pub fn set_max_heap(&self, max: Option<usize>) {
        self.max_heap
            .store(max.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    /// The hard limit on heap pages in use, if any.
    pub fn max_heap(&self) -> Option<usize> {
        Some(self.max_heap.load(Ordering::Relaxed)).filter(|&m| m != usize::MAX)
    }

    /// Allocates a span of `npages` pages shaped as `shape` (Go's `mheap.alloc` +
    /// `initSpan`). The span comes back in use, swept for the current cycle, owned by the
    /// caller, with whether its pages may hold old data (Go's `needzero`): pages released
    /// to the OS, or never used, are zero.
    pub(crate) fn alloc_span(
        &self,
        npages: usize,
        shape: SpanShape,
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
        s.sweepgen
            .store(self.sweepgen.load(Ordering::Relaxed), Ordering::Relaxed);
        self.arenas.set_spans(page, npages, Some(span));
        s.state.store(SPAN_IN_USE, Ordering::Release);
        h.inuse_pages += npages;
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
    fn grow(&self, h: &mut HeapLocked, npages: usize) -> Result<(), AllocError> {
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

    /// What object, if any, holds `addr` (interior addresses included). `None` for
    /// addresses outside the heap, in free pages, past a span's last object, and in free
    /// slots. Takes the heap lock, so it may be called at any time from any thread.
    pub fn find_object(&self, addr: usize) -> Option<ObjectInfo> {
        let _h = self.locked.lock();
        // SAFETY: holding the heap lock excludes span allocation and freeing.
        unsafe { self.find_object_unlocked(addr) }.map(|o| o.info())
    }

    /// [`MHeap::find_object`] without the lock, for the collector's hot loops.
    ///
    /// # Safety
    /// While this runs and while the result is used, no span may be allocated, freed or
    /// swept and no mcache may allocate: the world is stopped and sweeping is finished, as
    /// when a collector marks.
    #[inline]
    pub unsafe fn find_object_unlocked(&self, addr: usize) -> Option<ObjectRef<'_>> {
        if addr < self.base || addr >= self.grown_end.load(Ordering::Acquire) {
            return None;
        }
        // A freed span's pages are cleared from the page table under the heap lock, so with
        // no span allocated or freed meanwhile, the span found is in use.
        let span = self.arenas.span_of(addr)?;
        debug_assert_eq!(span.state.load(Ordering::Relaxed), SPAN_IN_USE);
        span.info(|i| {
            if addr < i.base || addr >= i.limit {
                return None;
            }
            let index = MSpan::obj_index(i, addr);
            // With the world stopped no slot is being initialised, so a relaxed load of
            // `freeindex_for_scan` is enough, and lets the reads around it be reused.
            let allocated = index < i.freeindex_for_scan.load(Ordering::Relaxed) as usize
                || i.alloc_word(index / 64).load(Ordering::Relaxed) >> (index % 64) & 1 != 0;
            allocated.then_some(ObjectRef {
                heap: self,
                span,
                base: i.base + index * i.elemsize,
                index,
                slot_size: i.elemsize,
                noscan: i.spc.noscan(),
            })
        })
    }

    /// The pointer words of the object at `base` in `span` (as [`ObjectRef::pointer_words`],
    /// for a collector that queued the span and base rather than the whole reference).
    ///
    /// # Safety
    /// As for [`MHeap::find_object_unlocked`]; `span` and `base` came from an `ObjectRef` of
    /// this heap during this collection.
    #[inline]
    pub unsafe fn pointer_words<'h>(&'h self, span: &'h MSpan, base: usize) -> PointerWords<'h> {
        PointerWords::of(self, span, base)
    }

    /// The pointer mask shared by every object of `span`, when it has one (a span of small
    /// objects of one layout): bit `i` = word `i` of each object. The collector's fast path;
    /// otherwise use [`MHeap::pointer_words`].
    ///
    /// # Safety
    /// As for [`MHeap::pointer_words`].
    #[inline]
    pub unsafe fn uniform_mask(&self, span: &MSpan) -> Option<u64> {
        // SAFETY: the caller guarantees the world is stopped.
        match unsafe { span.ptrmask_stopped() } {
            PtrMask::Uniform(mask) if !span.noscan() => Some(mask),
            _ => None,
        }
    }

    /// True when `addr` lies in the part of the address space the heap has grown into
    /// (whether or not an object is there).
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && addr < self.grown_end.load(Ordering::Acquire)
    }

    /// Returns up to `max_bytes` of free, dirty pages to the OS, highest addresses first
    /// (first-fit allocation reuses the low ones). Returns the bytes released.
    ///
    /// Pages being released are taken out of the free set while the lock is dropped for the
    /// `madvise`, so an allocation can never receive a page the OS is discarding (invariant 5).
    pub fn scavenge(&self, max_bytes: usize) -> usize {
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
                self._reservation
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

    /// Returns every free page to the OS (Go's `debug.FreeOSMemory`, minus the collection).
    pub fn scavenge_all(&self) -> usize {
        self.scavenge(usize::MAX)
    }

    /// A statistics snapshot. Exact for what every mcache has flushed
    /// ([`MCache::flush_stats`](crate::MCache::flush_stats)).
    pub fn mem_stats(&self) -> MemStats {
        let mut m = MemStats::default();
        m.add_counters(&self.counters.lock());
        let h = self.locked.lock();
        m.heap_sys = (h.arenas * ARENA_BYTES) as u64;
        m.heap_inuse = (h.inuse_pages * PAGE_SIZE) as u64;
        m.heap_idle = m.heap_sys - m.heap_inuse;
        m.heap_released = (h.pages.released_pages() * PAGE_SIZE) as u64;
        let span_structs = h.all_spans.len() * std::mem::size_of::<MSpan>();
        let tables = h.arenas * ARENA_PAGES * std::mem::size_of::<usize>();
        m.sys = m.heap_sys + (span_structs + tables) as u64 + m.heap_sys / 64;
        m
    }

    /// Bytes the pacer considers live (Go's `heapLive`): what the last collection marked,
    /// plus, since then, every span an mcache took (its free slots counted as allocated at
    /// once, given back for the slots unused when the span is returned) and every large
    /// object. Updated only on refills and large allocations, never per object.
    pub fn heap_live(&self) -> u64 {
        self.heap_live.load(Ordering::Relaxed)
    }

    /// Resets [`MHeap::heap_live`] to the bytes a collection found marked.
    pub fn set_heap_live(&self, marked: u64) {
        self.heap_live.store(marked, Ordering::Relaxed);
    }

    pub(crate) fn add_live(&self, bytes: u64) {
        self.heap_live.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn sub_live(&self, bytes: u64) {
        // Saturating: a collection may have reset the count below what a cache holds.
        let _ = self
            .heap_live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
    }

    /// Bytes of the heap in spans, in free pages (dirty or released, including those the
    /// scavenger is releasing), and in released pages: `(in use, free, released)`.
    pub fn page_summary(&self) -> (usize, usize, usize) {
        let h = self.locked.lock();
        let releasing = self.releasing.load(Ordering::Acquire);
        (
            h.inuse_pages * PAGE_SIZE,
            (h.pages.free_pages() + releasing) * PAGE_SIZE,
            h.pages.released_pages() * PAGE_SIZE,
        )
    }

    pub(crate) fn central(&self, spc: SpanClass) -> &MCentral {
        &self.central[spc.index()]
    }

    /// Notes that span class `class` has had a span in its mcentral, so that sweepers visit
    /// only the classes a program uses rather than all 136.
    pub(crate) fn note_class_used(&self, class: usize) {
        let (w, bit) = (&self.classes_used[class / 64], 1u64 << (class % 64));
        if w.load(Ordering::Relaxed) & bit == 0 {
            w.fetch_or(bit, Ordering::Release);
        }
    }

    /// Whether span class `class` ever had a span in its mcentral.
    pub(crate) fn class_used(&self, class: usize) -> bool {
        self.classes_used[class / 64].load(Ordering::Acquire) >> (class % 64) & 1 != 0
    }
}
