//! The heap (Go's `mheap`): the facade that owns one heap's layers — the page heap, the
//! pointer bitmap, every span class's mcentral, the sweep state and the statistics — and
//! answers the collector's questions about them: which object holds an address
//! ([`MHeap::find_object`]), what its pointer words are, and when a sweep cycle opens and
//! closes ([`MHeap::start_sweep_cycle`], [`MHeap::finish_sweep`]).
//!
//! The layers below know nothing of this type: the span-class layer gets what it needs as
//! a `SpanCtx` ([`MHeap::ctx`]).

use std::io;

#[cfg(loom)]
use crate::arena::ARENA_BYTES;
use crate::cards::{CardMarker, CardTable, CARD_BYTES};
use crate::central::{KeepMarks, MCentral, SpanCtx, SweepState, SWEEP_DRAINED};
use crate::heapbits::HeapBits;
use crate::pageheap::PageHeap;
use crate::pointers::PointerWords;
use crate::quarantine::Quarantine;
use crate::sizeclass::{SpanClass, NUM_SPAN_CLASSES};
use crate::span::{word_mask, MSpan, PtrMask, SPAN_IN_USE};
use crate::special::Specials;
use crate::stats::{HeapStats, MemStats};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Backoff, Ordering};

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
    /// with [`AllocError::OutOfMemory`](crate::AllocError::OutOfMemory). `None`: limited only by the address space.
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

    /// Whether the object was allocated after the last sweep (its alloc bit is clear).
    /// Between the sweep that kept marks for a minor cycle and the next sweep, such an
    /// object is young, and stays young through a sweep that keeps [`KeepMarks::Old`].
    #[inline]
    pub fn is_new(&self) -> bool {
        !self.span.alloc_bit(self.index)
    }

    /// The addresses of the object's pointer words, as its layout wrote them.
    pub fn pointer_words(&self) -> PointerWords<'h> {
        PointerWords::of(&self.heap.bits, self.span, self.base)
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

/// A heap. Shared by its mcaches through an `Arc`; several heaps may coexist.
pub struct MHeap {
    pub(crate) pages: PageHeap,
    pub(crate) bits: HeapBits,
    /// The remembered set of minor cycles (`cards.rs`).
    cards: CardTable,
    pub(crate) central: Box<[MCentral]>,
    pub(crate) sweep: SweepState,
    /// Where the background sweeper looks next.
    sweep_cursor: AtomicUsize,
    pub(crate) stats: HeapStats,
    /// A cycle is marking: spans an mcache takes have their free slots marked, so every
    /// object allocated is black (Go's `gcmarknewobject`, a span at a time).
    alloc_black: AtomicBool,
    specials: Specials,
    quarantine: Quarantine,
}

impl MHeap {
    /// Reserves a heap's address space.
    pub fn new(config: HeapConfig) -> io::Result<Arc<MHeap>> {
        let pages = PageHeap::new(config.address_space, config.max_heap)?;
        Ok(Arc::new(MHeap {
            bits: HeapBits::new(pages.base(), pages.len())?,
            cards: CardTable::new(pages.base(), pages.len())?,
            pages,
            central: (0..NUM_SPAN_CLASSES)
                .map(|i| MCentral::new(SpanClass(i as u8)))
                .collect(),
            sweep: SweepState::new(),
            sweep_cursor: AtomicUsize::new(0),
            stats: HeapStats::new(),
            alloc_black: AtomicBool::new(false),
            specials: Specials::new(),
            quarantine: Quarantine::new(),
        }))
    }

    /// Turns allocate-black on (a cycle starts marking) or off (mark termination). Call
    /// with every mcache of the heap stopped, and have each [`MCache::begin_mark`] after
    /// turning it on, or [`MCache::end_mark`] before turning it off.
    ///
    /// [`MCache::begin_mark`]: crate::MCache::begin_mark
    /// [`MCache::end_mark`]: crate::MCache::end_mark
    ///
    /// # Safety
    /// Off only at the end of marking (or with no marking under way): objects allocated
    /// while a collector marks and allocate-black is off are unmarked, and the next
    /// [`MHeap::start_sweep_cycle`] frees them while they are in use.
    pub unsafe fn set_alloc_black(&self, on: bool) {
        self.alloc_black.store(on, Ordering::Release);
    }

    /// Whether new objects are allocated marked.
    #[inline]
    pub fn alloc_black(&self) -> bool {
        self.alloc_black.load(Ordering::Acquire)
    }

    /// What the span-class layer needs of this heap.
    #[inline]
    pub(crate) fn ctx(&self) -> SpanCtx<'_> {
        SpanCtx {
            pages: &self.pages,
            bits: &self.bits,
            sweep: &self.sweep,
            stats: &self.stats,
            specials: &self.specials,
            quarantine: &self.quarantine,
        }
    }

    /// Attaches the heap-profile record `record` to the object that starts at `addr`
    /// (Go's `setprofilebucket`): when a sweep finds the object dead, the record is queued
    /// for [`MHeap::take_freed_specials`]. Ignored for an address that is not the start of
    /// an object of this heap, and for an object that has a record already.
    pub fn add_special(&self, addr: usize, record: u32) {
        self.pages.locked(|| {
            // SAFETY: as in `find_object`: holding the page heap's lock excludes span
            // allocation and freeing, so the span found stays in use while we look, whatever
            // `addr` is; a sweep of it meanwhile changes only atomics (whether a slot reads
            // as allocated, which for a live object it does either way).
            if let Some(o) = unsafe { self.find_object_unlocked(addr) } {
                if o.base == addr {
                    self.specials.add(o.span, addr, record);
                }
            }
        })
    }

    /// Holds each object a sweep finds dead back from reuse for `cycles` cycles (0: off,
    /// the default), so that [`MHeap::freed_by`] can name the cycle that freed it
    /// (`quarantine.rs`). For checked builds: it costs a lock and a lookup per span swept.
    /// Set it before the heap is shared with other threads.
    pub fn set_quarantine(&self, cycles: u32) {
        self.quarantine.set_cycles(cycles)
    }

    /// The collection cycle (1 for the first) that freed the object [`MHeap::find_object`]
    /// found as `o`, if the quarantine holds it still (it is allocated, and dead). Counting
    /// cycles as the heap's sweep cycles: cycle `n`'s sweep is the `n`th
    /// [`MHeap::start_sweep_cycle`].
    pub fn freed_by(&self, o: &ObjectInfo) -> Option<u32> {
        if !self.quarantine.on() {
            return None;
        }
        // Slot `index` of its span is at the span's base plus `index` slots (wrapping: an
        // `ObjectInfo` made up by hand finds no span, rather than overflowing).
        let span = o.base.wrapping_sub(o.index.wrapping_mul(o.size));
        self.quarantine.freed_at(span, o.index).map(|sg| sg / 2)
    }

    /// The records of objects with specials that sweeps found dead since the last call.
    pub fn take_freed_specials(&self) -> Vec<u32> {
        self.specials.take_freed()
    }

    /// Bytes of address space reserved: no heap object can be larger.
    pub fn address_space(&self) -> usize {
        self.pages.len()
    }

    /// Changes the hard limit on heap pages in use (`None`: no limit).
    pub fn set_max_heap(&self, max: Option<usize>) {
        self.pages.set_max_heap(max)
    }

    /// The hard limit on heap pages in use, if any.
    pub fn max_heap(&self) -> Option<usize> {
        self.pages.max_heap()
    }

    /// What object, if any, holds `addr` (interior addresses included). `None` for
    /// addresses outside the heap, in free pages, past a span's last object, and in free
    /// slots. Takes the heap lock, so it may be called at any time from any thread.
    pub fn find_object(&self, addr: usize) -> Option<ObjectInfo> {
        self.pages.locked(|| {
            // SAFETY: holding the page heap's lock excludes span allocation and freeing.
            unsafe { self.find_object_unlocked(addr) }.map(|o| o.info())
        })
    }

    /// [`MHeap::find_object`] without the lock, for the collector's hot loops.
    ///
    /// Spans may be allocated and mcaches may allocate meanwhile: a new span is in the page
    /// table only once it is whole, and a slot counts as an object only once its mcache
    /// published it (`freeindex_for_scan`). A slot handed out concurrently may or may not
    /// be reported; a collector marking meanwhile has marked it already (allocation is
    /// black while a cycle marks).
    ///
    /// # Safety
    /// While this runs and while the result is used, no span may be freed or swept:
    /// sweeping is drained for the cycle ([`MHeap::finish_sweep`] and not yet
    /// [`MHeap::start_sweep_cycle`]), as while a collector marks.
    #[inline]
    pub unsafe fn find_object_unlocked(&self, addr: usize) -> Option<ObjectRef<'_>> {
        // A freed span's pages are cleared from the page table under the page heap's lock
        // before it is dead, and a span is in use before it is in the table; with none
        // freed meanwhile, the span found is in use.
        let span = self.pages.span_of(addr)?;
        debug_assert_eq!(span.state.load(Ordering::Acquire), SPAN_IN_USE);
        span.info(|i| {
            if addr < i.base || addr >= i.limit {
                return None;
            }
            let index = MSpan::obj_index(i, addr);
            // Relaxed: a slot published meanwhile was marked before it was handed out, so
            // a marker that sees it early learns nothing it must act on; and a relaxed
            // load lets the reads around it be reused.
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
        PointerWords::of(&self.bits, span, base)
    }

    /// The pointer mask shared by every object of `span`, when it has one (a span of small
    /// objects of one layout): bit `i` = word `i` of each object. The collector's fast path;
    /// otherwise use [`MHeap::pointer_words`].
    ///
    /// # Safety
    /// As for [`MHeap::pointer_words`].
    #[inline]
    pub unsafe fn uniform_mask(&self, span: &MSpan) -> Option<u64> {
        match span.ptrmask() {
            PtrMask::Uniform(mask) if !span.noscan() => Some(mask),
            _ => None,
        }
    }

    /// True when `addr` lies in the part of the address space the heap has grown into
    /// (whether or not an object is there).
    pub fn contains(&self, addr: usize) -> bool {
        self.pages.contains(addr)
    }

    /// Returns up to `max_bytes` of free, dirty pages to the OS, highest addresses first
    /// (first-fit allocation reuses the low ones). Returns the bytes released.
    pub fn scavenge(&self, max_bytes: usize) -> usize {
        self.pages.scavenge(max_bytes)
    }

    /// Returns every free page to the OS (Go's `debug.FreeOSMemory`, minus the collection).
    pub fn scavenge_all(&self) -> usize {
        self.scavenge(usize::MAX)
    }

    /// A statistics snapshot. Exact for what every mcache has flushed
    /// ([`MCache::flush_stats`](crate::MCache::flush_stats)).
    pub fn mem_stats(&self) -> MemStats {
        let mut m = MemStats::default();
        m.add_counters(&self.stats.counters.lock());
        let p = self.pages.stats();
        m.heap_sys = p.sys as u64;
        m.heap_inuse = p.inuse as u64;
        m.heap_idle = m.heap_sys - m.heap_inuse;
        m.heap_released = p.released as u64;
        m.sys = m.heap_sys + p.metadata as u64 + m.heap_sys / 64;
        m
    }

    /// Bytes the pacer considers live (Go's `heapLive`): what the last collection marked,
    /// plus, since then, every span an mcache took (its free slots counted as allocated at
    /// once, given back for the slots unused when the span is returned) and every large
    /// object. Updated only on refills and large allocations, never per object.
    pub fn heap_live(&self) -> u64 {
        self.stats.heap_live()
    }

    /// Resets [`MHeap::heap_live`] to the bytes a collection found marked.
    pub fn set_heap_live(&self, marked: u64) {
        self.stats.set_heap_live(marked)
    }

    /// Bytes of the heap in spans, in free pages (dirty or released, including those the
    /// scavenger is releasing), and in released pages: `(in use, free, released)`.
    pub fn page_summary(&self) -> (usize, usize, usize) {
        self.pages.page_summary()
    }

    pub(crate) fn central(&self, spc: SpanClass) -> &MCentral {
        &self.central[spc.index()]
    }
}

/// Sweep cycle control (Go's `mgcsweep.go` at the heap's level).
///
/// A cycle, as the collector drives it:
/// 1. [`MHeap::finish_sweep`], then mark;
/// 2. [`MHeap::start_sweep_cycle`] (sweepgen += 2): every span is now unswept, and
///    sweeping is open again;
/// 3. every mcache [`release_all`](crate::MCache::release_all)s before it allocates again;
/// 4. spans are swept lazily by refilling mcaches and by [`MHeap::sweep_one`] callers (a
///    background sweeper), until the next cycle's step 1.
impl MHeap {
    /// The current sweep generation (+2 per cycle).
    pub fn sweepgen(&self) -> u32 {
        self.sweep.sweepgen()
    }

    /// Sweeps one unswept span, if any is left; false when there was none (Go's
    /// `sweepone`). This is the background sweeper's step.
    pub fn sweep_one(&self) -> bool {
        let Some(_sweeping) = self.sweep.begin_sweep() else {
            return false;
        };
        let sg = self.sweep.sweepgen();
        let start = self.sweep_cursor.load(Ordering::Relaxed);
        for k in 0..NUM_SPAN_CLASSES {
            let class = (start + k) % NUM_SPAN_CLASSES;
            let central = &self.central[class];
            if !central.used() {
                continue;
            }
            while let Some(span) = central.pop_unswept(sg) {
                if self.sweep.try_acquire(span, sg) {
                    central.sweep_span(self.ctx(), span, false);
                    self.sweep_cursor.store(class, Ordering::Relaxed);
                    return true;
                }
            }
        }
        false
    }

    /// Sweeps everything still unswept, closes sweeping for this cycle, and waits for
    /// sweeps in progress elsewhere (Go's `finishsweep_m`). After it, nothing sweeps until
    /// [`MHeap::start_sweep_cycle`]: the collector may mark. Spans cached in mcaches are
    /// not swept here; they were swept when their mcache released them after the last cycle.
    pub fn finish_sweep(&self) {
        while self.sweep_one() {}
        self.sweep
            .sweepers
            .fetch_or(SWEEP_DRAINED, Ordering::AcqRel);
        #[cfg(not(loom_mutant = "finish_sweep_no_wait"))]
        {
            let mut backoff = Backoff::new();
            while self.sweep.sweepers.load(Ordering::Acquire) != SWEEP_DRAINED {
                backoff.snooze();
            }
        }
    }

    /// Sweeps everything still unswept and waits for sweeps in progress elsewhere, leaving
    /// sweeping open (Go's `runtime.GC` helping the sweep to completion): afterwards the
    /// statistics count every object the last cycle freed.
    pub fn sweep_all(&self) {
        while self.sweep_one() {}
        let mut backoff = Backoff::new();
        while self.sweep.sweepers.load(Ordering::Acquire) & !SWEEP_DRAINED != 0 {
            backoff.snooze();
        }
    }

    /// True when no span waits for sweeping and no sweep is in progress.
    pub fn sweep_done(&self) -> bool {
        let sg = self.sweep.sweepgen();
        self.sweep.sweepers.load(Ordering::Acquire) & !SWEEP_DRAINED == 0
            && self.central.iter().all(|c| !c.used() || c.all_swept(sg))
    }

    /// Ends a collection's mark phase: every span becomes unswept, to be swept against the
    /// mark bits just set (Go's `gcSweep`: `sweepgen += 2`), and sweeping opens again.
    ///
    /// Call with the world stopped, after [`MHeap::finish_sweep`] and marking. (Should
    /// sweeping still be open, this finishes it first; but marks set meanwhile may have been
    /// swept away: finish first.) Every mcache must
    /// [`release_all`](crate::MCache::release_all) before it allocates again.
    ///
    /// # Safety
    /// Every object that anyone will use again is marked: the sweep frees every unmarked
    /// one, and reading a freed object is reading memory the heap hands out again. A
    /// collector calls this at mark termination; code that allocates from an `MHeap`
    /// directly marks what it keeps first.
    pub unsafe fn start_sweep_cycle(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.start_sweep_cycle_keeping_marks(KeepMarks::None) }
    }

    /// [`MHeap::start_sweep_cycle`], keeping the mark bits `keep` names (sticky marks: the
    /// marked objects are the old generation of the minor cycle that comes next, see
    /// [`MHeap::scan_dirty_cards`]). Mark bits stay set until a sweep cycle that does not
    /// keep them, or [`MHeap::clear_marks`].
    ///
    /// # Safety
    /// As for [`MHeap::start_sweep_cycle`]. With [`KeepMarks::Old`], the objects allocated
    /// since the last sweep that survive become young again (unmarked): every marked
    /// object that points at one must be on a dirty card ([`MHeap::dirty_card`]). With
    /// [`KeepMarks::Traced`], so do those allocated black while the cycle marked: every
    /// marked object that points at one must be on a card dirty in the epoch the minor
    /// cycle began ([`MHeap::begin_minor_cards`]), which the barrier gives every store
    /// made while it marks.
    pub unsafe fn start_sweep_cycle_keeping_marks(&self, keep: KeepMarks) {
        self.finish_sweep();
        self.sweep.keep_marks.store(keep as u8, Ordering::Relaxed);
        self.sweep_cursor.store(0, Ordering::Relaxed);
        self.sweep.sweepgen.fetch_add(2, Ordering::AcqRel);
        // Reopen, keeping the count of any sweeper still registered (none, unless a bug).
        self.sweep
            .sweepers
            .fetch_and(!SWEEP_DRAINED, Ordering::Release);
    }

    /// Spans per mcentral list for span class `spc`: `[partial swept, partial unswept,
    /// full swept, full unswept]`.
    pub fn central_counts(&self, spc: crate::SpanClass) -> [usize; 4] {
        self.central(spc).counts(self.sweepgen())
    }
}

/// Generational collection's support (sticky mark bits and the card table): what stays
/// marked across a minor cycle is old, and old objects that may point at young ones are on
/// dirty cards.
impl MHeap {
    /// What the write barrier uses to dirty the card of a pointer store.
    pub fn card_marker(&self) -> CardMarker {
        self.cards.marker()
    }

    /// Makes every card dirty now read as clean, without a walk of the table (it moves
    /// to the next epoch, see `cards.rs`): at the end of a major cycle's marking, when
    /// every pointer of a live object points at a marked one.
    ///
    /// # Safety
    /// No mutator of the heap runs until it has a new [`MHeap::card_marker`]: a barrier
    /// still storing the old epoch would dirty cards that no minor cycle reads, and a young
    /// object stored into an old one could be freed.
    pub unsafe fn next_card_epoch(&self) {
        self.cards.next_epoch();
    }

    /// A minor cycle begins: its scan ([`MHeap::scan_dirty_cards`]) takes the cards dirty
    /// now, and the cards dirtied from now on, while it marks and after, are the next
    /// minor cycle's (they hold the next epoch, see `cards.rs`). Those dirtied while it
    /// marks can point at objects it allocated black, which [`KeepMarks::Traced`] leaves
    /// young.
    ///
    /// # Safety
    /// As for [`MHeap::next_card_epoch`].
    pub unsafe fn begin_minor_cards(&self) {
        self.cards.begin_minor();
    }

    /// Dirties the card of `slot` (nothing for a slot outside the heap): a minor cycle's
    /// marker that found, in an object that will be old after the cycle, a pointer to one
    /// that will still be young (see [`KeepMarks::Old`]).
    #[inline]
    pub fn dirty_card(&self, slot: usize) {
        // SAFETY: the table is the heap's own, alive as long as `self`.
        unsafe { self.cards.marker().mark(slot) }
    }

    /// Cards of the heap as it is now (the card table's extent to scan): up to the end of
    /// the highest span allocated yet, since a dirty card needs an object on it. A span
    /// allocated above that later holds only objects allocated after this call.
    pub fn cards(&self) -> usize {
        self.cards.cards_below(self.pages.used_end())
    }

    /// Cleans the dirty cards among cards `[from, to)` (see [`MHeap::cards`]) and calls `f`
    /// with the address of every pointer word of a marked (old) object on them: a minor cycle's
    /// roots besides the embedder's. Unmarked objects on dirty cards are young, and traced
    /// if reachable. Mutators may run and allocate meanwhile: the words are read with
    /// atomic loads by the caller, and an object marked meanwhile may be reported too.
    /// `f` returns whether its word points at an object that will still be young after
    /// this cycle's sweep (allocated since the last one, under [`KeepMarks::Old`]): the
    /// card is then dirtied again, for the next minor cycle to scan.
    ///
    /// # Safety
    /// As for [`MHeap::find_object_unlocked`]: no span is freed or swept while this runs
    /// (a collector marks).
    pub unsafe fn scan_dirty_cards(
        &self,
        from: usize,
        to: usize,
        mut f: impl FnMut(usize) -> bool,
    ) {
        self.cards.take_dirty(from, to, |card| {
            let mut keep = false;
            let end = card + CARD_BYTES;
            // A span is in the page table only once whole (see `find_object_unlocked`).
            let Some(span) = self.pages.span_of(card) else {
                return;
            };
            span.info(|i| {
                if i.spc.noscan() || card >= i.limit || end <= i.base {
                    return;
                }
                let first = MSpan::obj_index(i, card.max(i.base));
                let last = MSpan::obj_index(i, (end - 1).min(i.limit - 1));
                // Free slots of a span an mcache holds are marked while a cycle marks (so
                // that what it hands out is black): objects are the slots allocated at the
                // last sweep or published since (as `find_object_unlocked` has it).
                // Acquire, unlike there: this scan reads the words of a slot published
                // meanwhile, which its allocation cleared just before publishing it (the
                // sweep leaves dead slots' bytes), and must not see them from before.
                let published = i.freeindex_for_scan.load(Ordering::Acquire) as usize;
                // The card's objects' mark bits, a word at a time: most dirty cards hold
                // only young objects (stores into objects just made), skipped here.
                for mw in first / 64..=last / 64 {
                    let lo = (mw * 64).max(first) - mw * 64;
                    let hi = (mw * 64 + 63).min(last) - mw * 64;
                    let in_card = (u64::MAX >> (63 - hi)) & (u64::MAX << lo);
                    let objects =
                        i.alloc_word(mw).load(Ordering::Relaxed) | word_mask(mw, published);
                    let mut marked = i.mark_word(mw).load(Ordering::Relaxed) & in_card & objects;
                    while marked != 0 {
                        let index = mw * 64 + marked.trailing_zeros() as usize;
                        marked &= marked - 1;
                        let base = i.base + index * i.elemsize;
                        let from = (card.max(base) - base) / 8;
                        let to = (end - base) / 8;
                        for w in PointerWords::of(&self.bits, span, base).restrict(from, to) {
                            if w >= card {
                                keep |= f(w);
                            }
                        }
                    }
                }
            });
            #[cfg(not(loom_mutant = "card_not_kept"))]
            if keep {
                self.dirty_card(card);
            }
            #[cfg(loom_mutant = "card_not_kept")]
            let _ = keep;
        });
    }

    /// Clears the mark bits of every span in use: a major cycle after a sweep that kept
    /// them (a forced collection).
    ///
    /// # Safety
    /// The world is stopped, sweeping is drained ([`MHeap::finish_sweep`]) and no cycle
    /// marks.
    pub unsafe fn clear_marks(&self) {
        self.pages.for_each_in_use(|s| {
            // SAFETY: the caller's contract.
            unsafe { s.clear_marks() }
        });
    }
}
