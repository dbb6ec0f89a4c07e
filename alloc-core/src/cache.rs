//! mcache: a P's private allocation cache, the allocator's fast path.
//!
//! One span per span class. Allocating is Go's `mallocgc` for one P:
//!
//! - size 0: the shared zero-size address;
//! - pointer-free and under 16 bytes: carved from the current 16-byte tiny block;
//! - up to 32 KiB: the next free slot of the cached span, found with a count-trailing-zeros
//!   on the span's alloc cache; zeroed if the span's free slots may be dirty (the sweep
//!   leaves dead objects' bytes, as Go's does; a caller that writes over every byte of a
//!   pointer-free object may skip it); its pointer bits written for scan classes. No
//!   lock, no atomic read-modify-write (invariant 4).
//!   When the alloc cache (64 slots' alloc bits) runs out, an out-of-line step of the fast
//!   path loads the span's next 64 (Go's `nextFree`);
//! - when the span is full: refill (hand it back to its mcentral, take another; the only
//!   place the mutator takes a lock for small objects, and the safepoint where a collector
//!   tests its trigger);
//! - over 32 KiB: a span of its own from the heap.
//!
//! Heap-profile sampling is Go's: a countdown of bytes (`next_sample`), drawn from an
//! exponential distribution whose mean is the profile rate, goes down by each allocation's
//! slot size (a new tiny block counts 16 bytes; a tiny object carved from the current
//! block, nothing). The fast path declines an allocation that would reach zero; the slow
//! path makes it and leaves it for the collector to record ([`MCache::take_sample`]). With
//! profiling off the countdown never ends, so the fast path pays a compare and a subtract.
//!
//! Statistics are not counted per object: a span's allocation count is reported when it is
//! handed back or when [`MCache::flush_stats`] is called.
//!
//! While a cycle marks, allocation is black without a cost per object: every span the
//! cache holds or takes has its free slots marked first ([`MCache::begin_mark`], refill),
//! and the marks of slots still free are cleared when the span is handed back or marking
//! ends ([`MCache::end_mark`]). What stays marked is exactly what was allocated.

use std::ptr::NonNull;

use crate::error::AllocError;
use crate::heap::MHeap;
use crate::layout::{Fast, Layout, LayoutInner};
use crate::sizeclass::{SpanClass, NUM_SPAN_CLASSES, PAGE_SIZE, TINY_SIZE, TINY_SIZE_CLASS};
use crate::span::{large_pages, MSpan, Slot, SpanRef, SpanShape};
use crate::sync::{Arc, Ordering};

/// Go's `zerobase`: the address every zero-size allocation returns. It is not in any heap,
/// so it is never freed and `find_object` says it is not a heap object.
static ZEROBASE: u64 = 0;

/// The address of every zero-size object.
pub fn zerobase() -> NonNull<u8> {
    NonNull::from(&ZEROBASE).cast()
}

/// A distinct nonzero seed for each cache's sampling intervals (splitmix64 of a counter
/// and the clock), so that Ps do not sample in step. Under loom, one fixed seed: a model
/// must take the same paths in every execution it explores.
fn sample_seed() -> u64 {
    #[cfg(loom)]
    return 0x9e37_79b9_7f4a_7c15;
    #[cfg(not(loom))]
    sample_seed_random()
}

#[cfg(not(loom))]
fn sample_seed_random() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering as StdOrdering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = NEXT
        .fetch_add(0x9e37_79b9_7f4a_7c15, StdOrdering::Relaxed)
        .wrapping_add(now);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// A P's allocation cache. Owned by one thread at a time (`Send`, not `Sync`).
pub struct MCache {
    heap: Arc<MHeap>,
    alloc: [Option<SpanRef>; NUM_SPAN_CLASSES],
    tiny: usize,
    tiny_offset: usize,
    tiny_allocs: u64,
    large_allocs: u64,
    large_bytes: u64,
    /// Bytes allocated black in the cycle marking now (slots marked at refill, less the
    /// ones still free when their span went back).
    black_bytes: u64,
    /// Bytes taken for allocation (refilled spans' free slots, large objects) since
    /// [`MCache::take_reserved`] was last called: what a mutator's assist debt grows by.
    reserved: u64,
    /// Bytes left to allocate before the next heap-profile sample (Go's `nextSample`).
    next_sample: isize,
    /// Mean bytes between samples (Go's `MemProfileRate`); 0: off.
    profile_rate: usize,
    /// State of the sampling interval generator (xorshift64*).
    rng: u64,
    /// The last allocation sampled and not yet taken: address, bytes counted.
    sampled: Option<(usize, usize)>,
}

impl MCache {
    /// An empty cache on `heap`.
    pub fn new(heap: &Arc<MHeap>) -> MCache {
        MCache {
            heap: heap.clone(),
            alloc: [None; NUM_SPAN_CLASSES],
            tiny: 0,
            tiny_offset: 0,
            tiny_allocs: 0,
            large_allocs: 0,
            large_bytes: 0,
            black_bytes: 0,
            reserved: 0,
            next_sample: isize::MAX,
            profile_rate: 0,
            rng: 0,
            sampled: None,
        }
    }

    /// Sets the heap-profile sampling rate: one sample every `rate` bytes allocated on
    /// average; 1 samples every allocation that takes a slot (not the tiny objects carved
    /// from a block already taken); 0 turns sampling off. Draws a new countdown.
    pub fn set_profile_rate(&mut self, rate: usize) {
        self.profile_rate = rate;
        if self.rng == 0 {
            self.rng = sample_seed();
        }
        self.next_sample = self.next_sample_interval();
    }

    /// The allocation sampled since the last call, if any: its address and the bytes it
    /// counted (its slot; 16 for a tiny block).
    #[inline]
    pub fn take_sample(&mut self) -> Option<(usize, usize)> {
        self.sampled.take()
    }

    /// Go's `nextSample`: bytes until the next sample, exponentially distributed with mean
    /// `profile_rate` (so sampling is a Poisson process over bytes allocated, and an object
    /// of `s` bytes is sampled with probability `1 - exp(-s / rate)`).
    fn next_sample_interval(&mut self) -> isize {
        match self.profile_rate {
            0 => isize::MAX,
            1 => 0,
            rate => {
                // Go caps the mean so that the interval fits its counters.
                let mean = rate.min(0x700_0000) as f64;
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                let bits = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
                // Uniform in (0, 1]: never ln(0).
                let u = (bits + 1) as f64 / (1u64 << 53) as f64;
                (-u.ln() * mean) as isize + 1
            }
        }
    }

    /// Counts `bytes` just allocated at `addr` against the sampling countdown (the slow
    /// path's half of it).
    fn count_sample(&mut self, addr: NonNull<u8>, bytes: usize) {
        if self.profile_rate == 0 || bytes == 0 {
            return;
        }
        if bytes as isize >= self.next_sample {
            self.sampled = Some((addr.as_ptr() as usize, bytes));
            self.next_sample = self.next_sample_interval();
        } else {
            self.next_sample -= bytes as isize;
        }
    }

    /// The heap this cache allocates from.
    pub fn heap(&self) -> &Arc<MHeap> {
        &self.heap
    }

    /// Allocates a zeroed object of `layout`.
    #[inline]
    pub fn alloc(&mut self, layout: &Layout) -> Result<NonNull<u8>, AllocError> {
        match self.alloc_fast::<true>(layout) {
            Some(p) => Ok(p),
            None => self.alloc_slow(layout.inner(), layout, 1),
        }
    }

    /// Allocates a zeroed array of `len` elements of `layout` (pointer bits repeat per
    /// element). Fails on overflow or an impossible size.
    pub fn alloc_array(&mut self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
        if len == 1 {
            return self.alloc(layout);
        }
        self.alloc_slow(layout.inner(), layout, len)
    }

    /// The fast path alone: `None` when it would need a refill, a new span, or a large
    /// object (then [`MCache::alloc`] does it). A collector calls this and, on `None`, takes
    /// the slow path and tests its trigger, as Go does only after a refill. Nothing here
    /// counts locks: for a caller that asynchronous preemption cannot interrupt, or that
    /// keeps it out for the whole call, out-of-line steps included (the runtime's fast path
    /// inlined into a goroutine's code, under its M's busy word). `ZERO` as for
    /// [`MCache::alloc_fast_nopreempt`]; large slots are cleared with `memset`.
    #[inline(always)]
    pub fn alloc_fast<const ZERO: bool>(&mut self, layout: &Layout) -> Option<NonNull<u8>> {
        self.fast::<false, ZERO>(layout)
    }

    /// [`MCache::alloc_fast`] for a caller that asynchronous preemption cannot stop (the
    /// runtime's, in its `minigo_nopreempt` section: a preemption there could give the P,
    /// and so this mcache, to another thread). The common path is all inlined into that
    /// caller; the two functions it calls out of line (tiny objects, the span's next 64
    /// slots and the like; a span's second layout) leave the section, so they hold the
    /// thread's lock count up (`sync::acquirem_inline`, a thread-local add: the caller is
    /// never inlined itself, and nothing here parks), and end it in the callee, so that
    /// all are tail calls. They take the layout rather than the span and mask the common
    /// path has worked out: an argument register is one the common path cannot keep a
    /// value in, and with five arguments it saved five registers, with two or three, three.
    /// Everything else the common path calls is
    /// `#[inline(always)]` for that reason: a helper left to LLVM's choice and not inlined
    /// would run outside the section with no count. [`MCache::alloc_fast`] does neither: in a
    /// standalone heap's VM loop, the count's code moved that loop's registers about
    /// (+2.3% instructions on Lox's instantiation.lox).
    ///
    /// With `ZERO` false the caller writes over every byte of the object before anything
    /// reads it, so a pointer-free object may come back holding an old object's bytes
    /// (its span was not cleared: `AllocState::needzero`); with `ZERO` true it is zeroed,
    /// by word stores inlined here (a `memset` would be a call out of the section).
    #[inline(always)]
    pub fn alloc_fast_nopreempt<const ZERO: bool>(
        &mut self,
        layout: &Layout,
    ) -> Option<NonNull<u8>> {
        self.fast::<true, ZERO>(layout)
    }

    #[inline(always)]
    fn fast<const COUNTED: bool, const ZERO: bool>(
        &mut self,
        layout: &Layout,
    ) -> Option<NonNull<u8>> {
        let inner = layout.inner();
        if let Fast::Small { spc, mask } = inner.fast {
            let span = self.cached(spc)?.get();
            let size = span.elem_size() as isize;
            if size >= self.next_sample {
                return None;
            }
            // SAFETY: a span cached here is owned by this mcache.
            let Some(slot) = (unsafe { span.next_free_fast() }) else {
                if COUNTED {
                    crate::sync::acquirem_inline();
                }
                // SAFETY: counted if COUNTED.
                return unsafe { self.alloc_fast_other::<COUNTED>(inner) };
            };
            self.next_sample -= size;
            if mask != 0 && !span.ptrmask.is_uniform(mask) {
                if COUNTED {
                    crate::sync::acquirem_inline();
                }
                // SAFETY: as above; counted if COUNTED.
                return unsafe { self.second_layout::<COUNTED>(inner, slot.addr) };
            }
            // A scan object is always cleared (a marker must not read an old pointer in
            // it); a pointer-free one unless the caller writes over all of it.
            if ZERO || mask != 0 {
                // SAFETY: as above.
                let needzero = unsafe { span.needzero() };
                if needzero != 0 {
                    // SAFETY: the slot just taken, of `needzero` bytes (its size), aligned.
                    unsafe { clear_slot::<COUNTED>(slot.addr, needzero) };
                }
            }
            span.publish_freeindex(slot.freeindex);
            // SAFETY: slot addresses are inside the heap's reservation, never null.
            return Some(unsafe { NonNull::new_unchecked(slot.addr as *mut u8) });
        }
        if COUNTED {
            crate::sync::acquirem_inline();
        }
        // SAFETY: counted if COUNTED.
        unsafe { self.alloc_fast_other::<COUNTED>(inner) }
    }

    /// The fast path's end for a span whose objects had another layout: clears the object
    /// at `addr` if its span was not, records the layout's mask for it
    /// (`MSpan::set_mask_slow`), publishes the slot, and, if `COUNTED`, ends the lock count
    /// its caller raised. Like [`MCache::alloc_fast_other`], it takes the layout rather
    /// than what the caller has worked out from it (see
    /// [`MCache::alloc_fast_nopreempt`]).
    ///
    /// # Safety
    /// `inner` is a small scan layout whose span is cached here, the slot at `addr` was
    /// just taken from that span, and if `COUNTED`, the thread's lock count was raised for
    /// this call.
    #[cold]
    #[inline(never)]
    unsafe fn second_layout<const COUNTED: bool>(
        &mut self,
        inner: &LayoutInner,
        addr: usize,
    ) -> Option<NonNull<u8>> {
        debug_assert!(matches!(inner.fast, Fast::Small { spc, .. } if self.cached(spc).is_some()));
        if let Fast::Small { spc, mask } = inner.fast {
            if let Some(span) = self.cached(spc) {
                let span = span.get();
                // SAFETY: the caller's contract: this cache owns the span, `addr` is its
                // newest slot, of the span's slot size.
                unsafe {
                    clear_slot::<false>(addr, span.needzero());
                    span.set_mask_slow(&self.heap.bits, addr, mask);
                    span.publish_freeindex(span.alloc_state(|st| st.freeindex));
                }
            }
        }
        if COUNTED {
            // SAFETY: ends the caller's region, on this thread: nothing here parks.
            unsafe { crate::sync::releasem_inline() };
        }
        // SAFETY: slot addresses are inside the heap's reservation, never null.
        Some(unsafe { NonNull::new_unchecked(addr as *mut u8) })
    }

    /// The rest of the fast path: tiny objects, zero-size ones, wide scan objects, and a
    /// small object whose span's alloc cache (64 slots of its alloc bits) is used up. That
    /// one is Go's `nextFree` within the span, which moves the cache to the span's next
    /// free slots, so that the slow path (and its trigger test) runs once per span rather
    /// than once per 64 objects, as in Go; it clears the slot if its span was not
    /// (`init_object`), even for a caller that would write over a pointer-free one: once
    /// per 64 objects. If `COUNTED`, ends the lock count its caller raised
    /// ([`MCache::alloc_fast_nopreempt`]).
    ///
    /// # Safety
    /// If `COUNTED`, called with the thread's lock count raised for it.
    #[inline(never)]
    unsafe fn alloc_fast_other<const COUNTED: bool>(
        &mut self,
        inner: &LayoutInner,
    ) -> Option<NonNull<u8>> {
        let p = self.alloc_fast_other_counted(inner);
        if COUNTED {
            // SAFETY: ends the caller's region, on this thread: nothing here parks.
            unsafe { crate::sync::releasem_inline() };
        }
        p
    }

    #[inline(always)]
    fn alloc_fast_other_counted(&mut self, inner: &LayoutInner) -> Option<NonNull<u8>> {
        match inner.fast {
            Fast::Tiny { size } => self.tiny_fast(size).or_else(|| {
                if TINY_SIZE as isize >= self.next_sample {
                    return None;
                }
                let spc = SpanClass::new(TINY_SIZE_CLASS, true);
                let span = self.cached(spc)?.get();
                // SAFETY: a span cached here is owned by this mcache.
                let slot = unsafe { span.next_free()? };
                self.next_sample -= TINY_SIZE as isize;
                Some(self.new_tiny_block(span, slot, size))
            }),
            Fast::Small { spc, mask } => self.next_in_span(spc, mask, inner),
            Fast::SmallWide { spc } => self.next_in_span(spc, 0, inner),
            Fast::Zero => Some(zerobase()),
            Fast::Large => None,
        }
    }

    /// The next free slot of the span cached for `spc`, initialised, moving the span's
    /// alloc cache along as needed: `None` when the span is full or the heap profile's
    /// countdown would end.
    #[inline(always)]
    fn next_in_span(
        &mut self,
        spc: SpanClass,
        mask: u64,
        inner: &LayoutInner,
    ) -> Option<NonNull<u8>> {
        let span = self.cached(spc)?.get();
        let size = span.elem_size() as isize;
        if size >= self.next_sample {
            return None;
        }
        // SAFETY: a span cached here is owned by this mcache.
        let slot = unsafe { span.next_free()? };
        self.next_sample -= size;
        Some(self.init_object(span, slot, spc, mask, inner, 1))
    }

    /// The span cached for `spc`.
    #[inline(always)]
    fn cached(&self, spc: SpanClass) -> Option<SpanRef> {
        debug_assert!(spc.index() < NUM_SPAN_CLASSES);
        // SAFETY: every SpanClass is built from a size class below NUM_SIZE_CLASSES, so its
        // index is below NUM_SPAN_CLASSES.
        unsafe { *self.alloc.get_unchecked(spc.index()) }
    }

    #[cold]
    fn alloc_slow(
        &mut self,
        inner: &LayoutInner,
        layout: &Layout,
        len: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        let size = inner.array_bytes(len)?;
        let fast = if len == 1 {
            inner.fast
        } else {
            inner.fast_path(len)
        };
        let (p, counted) = match fast {
            Fast::Zero => return Ok(zerobase()),
            Fast::Tiny { size } => {
                if let Some(p) = self.tiny_fast(size) {
                    return Ok(p);
                }
                let spc = SpanClass::new(TINY_SIZE_CLASS, true);
                let (span, slot) = self.next_free(spc)?;
                (self.new_tiny_block(span.get(), slot, size), TINY_SIZE)
            }
            Fast::Small { spc, mask } => {
                let (span, slot) = self.next_free(spc)?;
                let n = slot.elemsize;
                (self.init_object(span.get(), slot, spc, mask, inner, len), n)
            }
            Fast::SmallWide { spc } => {
                let (span, slot) = self.next_free(spc)?;
                let n = slot.elemsize;
                (self.init_object(span.get(), slot, spc, 0, inner, len), n)
            }
            Fast::Large => {
                let p = self.alloc_large(layout, len, size)?;
                (p, large_pages(size) * PAGE_SIZE)
            }
        };
        self.count_sample(p, counted);
        Ok(p)
    }

    /// Clears a new slot if its span was not cleared, writes its pointer bits (a free
    /// slot's bits are clear), and publishes it to conservative scanners. `mask` is the
    /// bits of an object of at most 64 words; wider scan objects get theirs from the
    /// layout.
    fn init_object(
        &self,
        span: &MSpan,
        slot: Slot,
        spc: SpanClass,
        mask: u64,
        inner: &LayoutInner,
        len: usize,
    ) -> NonNull<u8> {
        // SAFETY: this cache owns the span; the slot was just taken from it, of the
        // span's slot size.
        unsafe { clear_slot::<false>(slot.addr, span.needzero()) };
        if !spc.noscan() {
            if slot.elemsize > 64 * 8 {
                self.heap
                    .bits
                    .set_wide(slot.addr, slot.elemsize / 8, |k| inner.chunk(len, k));
            } else if !span.ptrmask.is_uniform(mask) {
                // SAFETY: this cache owns the span.
                unsafe { span.set_mask_slow(&self.heap.bits, slot.addr, mask) };
            }
        }
        span.publish_freeindex(slot.freeindex);
        // SAFETY: slot addresses are inside the heap's reservation, never null.
        unsafe { NonNull::new_unchecked(slot.addr as *mut u8) }
    }

    /// Go's tiny combining: the next `size` bytes of the current block, aligned by Go's
    /// rule (8 for multiples of 8, else 4, else 2, else 1).
    #[inline(always)]
    fn tiny_fast(&mut self, size: usize) -> Option<NonNull<u8>> {
        let align = if size & 7 == 0 {
            8
        } else if size & 3 == 0 {
            4
        } else if size & 1 == 0 {
            2
        } else {
            1
        };
        let off = self.tiny_offset.next_multiple_of(align);
        if self.tiny != 0 && off + size <= TINY_SIZE {
            self.tiny_offset = off + size;
            self.tiny_allocs += 1;
            // SAFETY: `tiny` is a live block in the heap, never null.
            return Some(unsafe { NonNull::new_unchecked((self.tiny + off) as *mut u8) });
        }
        None
    }

    /// Starts using a fresh 16-byte block for a tiny object at its offset 0. It becomes the
    /// current block only if it has more room left than the old one (Go's rule). Tiny
    /// objects carved from it later count on its being zero.
    fn new_tiny_block(&mut self, span: &MSpan, slot: Slot, size: usize) -> NonNull<u8> {
        // SAFETY: this cache owns the span.
        if unsafe { span.needzero() } != 0 {
            // SAFETY: a fresh 16-byte slot, ours alone.
            unsafe { (slot.addr as *mut [u64; 2]).write([0; 2]) };
        }
        span.publish_freeindex(slot.freeindex);
        if size < self.tiny_offset || self.tiny == 0 {
            self.tiny = slot.addr;
            self.tiny_offset = size;
        }
        // SAFETY: slot addresses are never null.
        unsafe { NonNull::new_unchecked(slot.addr as *mut u8) }
    }

    /// Go's `nextFree`: a slot of class `spc`, refilling the span if it is full.
    fn next_free(&mut self, spc: SpanClass) -> Result<(SpanRef, Slot), AllocError> {
        if let Some(span) = self.alloc[spc.index()] {
            // SAFETY: a span cached here is owned by this mcache.
            if let Some(slot) = unsafe { span.get().next_free() } {
                return Ok((span, slot));
            }
        }
        let span = self.refill(spc)?;
        // SAFETY: as above; a span fresh from mcentral has a free slot.
        let slot = unsafe { span.get().next_free() }.expect("mcentral gave a full span");
        Ok((span, slot))
    }

    /// Hands the current span of `spc` back and takes one with room (Go's `refill`).
    fn refill(&mut self, spc: SpanClass) -> Result<SpanRef, AllocError> {
        if let Some(old) = self.alloc[spc.index()].take() {
            self.uncache(spc, old);
        }
        let span = self.heap.central(spc).cache_span(self.heap.ctx())?;
        let sg = self.heap.sweep.sweepgen();
        span.get()
            .sweepgen
            .store(sg.wrapping_add(3), Ordering::Relaxed);
        // Go counts a cached span's free slots as allocated at once (`heapLive`): the
        // trigger sees the memory this cache may hand out without asking again.
        // SAFETY: the span is ours now.
        let unused = unsafe { span.get().unused_bytes() };
        self.heap.stats.add_live(unused);
        self.reserved += unused;
        if self.alloc_black() {
            // SAFETY: as above.
            let n = unsafe { span.get().mark_free_slots() };
            self.black_bytes += (n * span.get().elem_size()) as u64;
        }
        self.alloc[spc.index()] = Some(span);
        Ok(span)
    }

    fn uncache(&mut self, spc: SpanClass, span: SpanRef) {
        if self.alloc_black() {
            self.unmark_free(span);
        }
        self.flush_span(spc, span);
        self.heap.central(spc).uncache_span(self.heap.ctx(), span);
    }

    /// Clears the marks `mark_free_slots` left on slots of `span` still free.
    fn unmark_free(&mut self, span: SpanRef) {
        // SAFETY: a cached span is ours, and its free slots were marked when we took it or
        // when the cycle began (`begin_mark`).
        let n = unsafe { span.get().unmark_free_slots() };
        self.black_bytes = self
            .black_bytes
            .saturating_sub((n * span.get().elem_size()) as u64);
    }

    /// A cycle starts marking (after [`MHeap::set_alloc_black`]`(true)`, with this cache's
    /// owner stopped): marks the free slots of every cached span, so that what the cache
    /// hands out from now on is black. The current tiny block is dropped: tiny objects
    /// carved from it later would be reachable only through it, unseen by the collector.
    /// (Go shades the block instead, `gcMarkTinyAllocs`, which keeps it one cycle longer
    /// when nothing in it is reachable; dropping it wastes at most 15 bytes a cycle.)
    pub fn begin_mark(&mut self) {
        self.black_bytes = 0;
        self.tiny = 0;
        self.tiny_offset = 0;
        if !self.alloc_black() {
            return;
        }
        for i in 0..NUM_SPAN_CLASSES {
            if let Some(span) = self.alloc[i] {
                // SAFETY: a cached span is ours.
                let n = unsafe { span.get().mark_free_slots() };
                self.black_bytes += (n * span.get().elem_size()) as u64;
            }
        }
    }

    /// Marking ends (before [`MHeap::set_alloc_black`]`(false)`, with this cache's owner
    /// stopped): clears the marks of slots still free in cached spans. Returns the bytes
    /// this cache allocated black during the cycle.
    pub fn end_mark(&mut self) -> u64 {
        if !self.alloc_black() {
            return 0;
        }
        for i in 0..NUM_SPAN_CLASSES {
            if let Some(span) = self.alloc[i] {
                self.unmark_free(span);
            }
        }
        std::mem::take(&mut self.black_bytes)
    }

    /// Whether what this cache hands out is to be black (a cycle marks). The seeded bug
    /// of the write barrier's loom model turns it off: allocation white during marking.
    #[inline]
    fn alloc_black(&self) -> bool {
        #[cfg(loom_mutant = "alloc_white")]
        return false;
        #[cfg(not(loom_mutant = "alloc_white"))]
        self.heap.alloc_black()
    }

    /// Bytes taken for allocation since the last call (see the field).
    pub fn take_reserved(&mut self) -> u64 {
        std::mem::take(&mut self.reserved)
    }

    /// Reports a cached span's allocations since the last report.
    fn flush_span(&mut self, spc: SpanClass, span: SpanRef) {
        // SAFETY: this cache owns its cached spans.
        let delta = unsafe {
            span.get().alloc_state(|st| {
                let d = st.alloc_count - st.flushed as usize;
                st.flushed = st.alloc_count as u32;
                d
            })
        };
        self.flush_counters(spc.size_class(), delta as u64);
    }

    fn alloc_large(
        &mut self,
        layout: &Layout,
        len: usize,
        size: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        if size > self.heap.address_space() {
            return Err(AllocError::TooLarge {
                size,
                address_space: self.heap.address_space(),
            });
        }
        let npages = large_pages(size);
        let noscan = !layout.has_pointers();
        let spc = SpanClass::new(0, noscan);
        let large = (!noscan).then(|| (layout.clone(), len));
        let shape = SpanShape {
            spc,
            elemsize: npages * PAGE_SIZE,
            nelems: 1,
            object_size: size,
            large,
        };
        let sg = self.heap.sweep.sweepgen();
        let (span, needzero) = self.heap.pages.alloc_span(npages, shape, sg)?;
        let s = span.get();
        // SAFETY: the span is fresh from the heap and ours until filed below.
        unsafe {
            s.alloc_state(|st| {
                st.freeindex = 1;
                st.alloc_count = 1;
                st.flushed = 1;
            })
        };
        let base = s.base();
        if needzero {
            // SAFETY: the span's pages are ours and at least `size` bytes long.
            unsafe { std::ptr::write_bytes(base as *mut u8, 0, size) };
        }
        if self.alloc_black() {
            // Marked before it is published: a marker never sees it white.
            s.set_black_from_start();
            s.try_mark(0);
            self.black_bytes += (npages * PAGE_SIZE) as u64;
        }
        self.reserved += (npages * PAGE_SIZE) as u64;
        s.publish_freeindex(1);
        self.large_allocs += 1;
        self.large_bytes += (npages * PAGE_SIZE) as u64;
        self.heap.stats.add_live((npages * PAGE_SIZE) as u64);
        self.heap.central(spc).push_swept(sg, span, true);
        // SAFETY: span bases are never null.
        Ok(unsafe { NonNull::new_unchecked(base as *mut u8) })
    }

    fn flush_counters(&mut self, class: u8, small: u64) {
        let mut c = self.heap.stats.counters.lock();
        c.small_allocs[class as usize] += small;
        c.tiny_allocs += std::mem::take(&mut self.tiny_allocs);
        c.large_allocs += std::mem::take(&mut self.large_allocs);
        c.large_alloc_bytes += std::mem::take(&mut self.large_bytes);
    }

    /// Reports every allocation made so far to the heap's statistics, keeping the spans.
    pub fn flush_stats(&mut self) {
        for i in 0..NUM_SPAN_CLASSES {
            if let Some(span) = self.alloc[i] {
                self.flush_span(SpanClass(i as u8), span);
            }
        }
        self.flush_counters(0, 0);
    }

    /// Hands every cached span back and forgets the tiny block (Go's `releaseAll`). A
    /// collector calls it after each cycle before this cache allocates again, so spans
    /// cached across the cycle get swept.
    pub fn release_all(&mut self) {
        for i in 0..NUM_SPAN_CLASSES {
            if let Some(span) = self.alloc[i].take() {
                self.uncache(SpanClass(i as u8), span);
            }
        }
        self.flush_counters(0, 0);
        self.tiny = 0;
        self.tiny_offset = 0;
    }
}

/// Zeroes `bytes` of a fresh slot (0 if its span was cleared): by word stores in the
/// caller for a small slot, or always with `INLINE` (the runtime's fast path, whose calls
/// leave its no-preemption section); a call to `memset` past that. The stores are volatile
/// so that they stay stores rather than become that call. Up to 64 bytes, as memset
/// implementations do it, with a few stores from each end that may overlap rather than a
/// loop: every scan object is cleared here, and a loop of word stores took the 32-byte
/// scan allocation from 5.4 to 6.9 ns (`alloc/scan/minigo/32`).
///
/// # Safety
/// `addr` is an 8-byte aligned slot of at least `bytes` bytes (a multiple of 8), just
/// taken by the caller and reachable by no one else.
#[inline(always)]
unsafe fn clear_slot<const INLINE: bool>(addr: usize, bytes: usize) {
    /// # Safety
    /// As for `clear_slot`, with `i` below its word count.
    #[inline(always)]
    unsafe fn zero(p: *mut u64, i: usize) {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::write_volatile(p.add(i), 0) }
    }
    let w = bytes / 8;
    let p = addr as *mut u64;
    // SAFETY: each `zero` and the memset: the caller's contract; every index is below `w`.
    unsafe {
        if w == 0 {
        } else if w <= 2 {
            zero(p, 0);
            zero(p, w - 1);
        } else if w <= 4 {
            zero(p, 0);
            zero(p, 1);
            zero(p, w - 2);
            zero(p, w - 1);
        } else if w <= 8 {
            for i in 0..4 {
                zero(p, i);
                zero(p, w - 4 + i);
            }
        } else if INLINE || bytes <= 128 {
            for i in 0..w {
                zero(p, i);
            }
        } else {
            std::ptr::write_bytes(addr as *mut u8, 0, bytes);
        }
    }
}

impl Drop for MCache {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::clear_slot;

    /// Every slot size up to 256 bytes is cleared whole and nothing past it, by both
    /// flavours (the stores from each end overlap for most sizes).
    #[test]
    fn clear_slot_clears_exactly_the_slot() {
        for words in 0..=32usize {
            for inline in [false, true] {
                let mut buf = vec![!0u64; words + 2];
                let addr = buf[1..].as_mut_ptr() as usize;
                // SAFETY: `words` words of the buffer, ours, aligned.
                unsafe {
                    if inline {
                        clear_slot::<true>(addr, words * 8);
                    } else {
                        clear_slot::<false>(addr, words * 8);
                    }
                }
                assert_eq!(buf[0], !0, "{words} words: before the slot");
                assert!(buf[1..=words].iter().all(|&w| w == 0), "{words} words");
                assert_eq!(buf[words + 1], !0, "{words} words: past the slot");
            }
        }
    }
}
