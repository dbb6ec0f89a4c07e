//! Spans: a run of pages serving one span class (or one large object), and the per-slot
//! state that lets an mcache find free slots without free lists.
//!
//! A span's fields fall in three groups, each with its own rule:
//!
//! - **Identity** ([`SpanInfo`]: base, size, class, bitmaps' storage, a large object's
//!   layout) is written only under the heap lock while the span is not in use, then
//!   published by the `state` store and the page-to-span table. Readers reach a span through
//!   a handoff that orders them after that (the heap lock, an mcentral list, the world being
//!   stopped), so they read it without atomics.
//! - **Allocation state** ([`AllocState`]: `freeindex`, `alloc_cache`, counts) belongs to
//!   whoever owns the span: the mcache that caches it, or the sweeper that won the
//!   `sweepgen` compare-and-swap. Never two at once (invariant 2).
//! - **Bits and counters read by others**: alloc bits, mark bits (atomic words: parallel
//!   markers race to set them), `sweepgen`, `state`, and `freeindex_for_scan`, which
//!   conservative scanners read to tell allocated slots from free ones.
//!
//! Slot `i` is allocated iff `i < freeindex` or its alloc bit is set: alloc bits are the
//! mark bits of the last sweep, and `freeindex` only moves forward past slots it hands out.
//! `alloc_cache` holds the free slots of one 64-slot word of the alloc bits (from
//! `cache_base`), a set bit per free slot at or after `freeindex` and before `nelems`, so a
//! count-trailing-zeros finds the next free slot (Go's `nextFreeFast`). Unlike Go's cache,
//! which is shifted down after each allocation, this one keeps bits in place and clears the
//! lowest (`c & (c - 1)`): the chain from one allocation to the next is one instruction.

use std::ptr::NonNull;

use crate::heapbits::HeapBits;
use crate::layout::Layout;
use crate::sizeclass::{SpanClass, PAGE_SIZE};
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering, UnsafeCell};

/// `SpanInfo::black_from` of a span no mcache has allocated from black.
pub(crate) const NOT_BLACK: u32 = u32::MAX;

/// `MSpan::state` values: Go's `mSpanDead` and `mSpanInUse`.
pub(crate) const SPAN_DEAD: u8 = 0;
pub(crate) const SPAN_IN_USE: u8 = 1;

/// Span metadata. Lives off the heap, owned by the heap, never freed while the heap lives
/// (span structs are recycled like Go's `fixalloc`), so a stale pointer to one is never
/// dangling.
///
/// The layout is for the two hot paths, a cache line each: line 0 is the allocation state
/// the owning mcache updates per object; line 1 is what marking reads per pointer (base,
/// sizes, the division magic, `freeindex_for_scan`), followed by the mark bits of spans of
/// up to 512 slots, which are kept inline rather than behind a pointer.
#[repr(C, align(64))]
pub struct MSpan {
    alloc: UnsafeCell<AllocState>,
    /// Where the pointer bits of this span's objects are.
    pub(crate) ptrmask: PtrMaskCell,
    pub(crate) state: AtomicU8,
    /// Go's sweep generation, relative to the heap's `sweepgen` `sg`: `sg - 2` needs
    /// sweeping, `sg - 1` is being swept, `sg` is swept, `sg + 1` was cached before this
    /// cycle's sweep began, `sg + 3` was swept and then cached.
    pub(crate) sweepgen: AtomicU32,
    /// Some object of the span has a special (`special.rs`): its sweep looks at them.
    pub(crate) has_specials: AtomicBool,
    info: UnsafeCell<SpanInfo>,
}

/// Spans with at most this many 64-slot words of bits (512 slots: every class but 8-byte
/// objects) keep them inline.
const INLINE_WORDS: usize = 8;

// SAFETY: MSpan's cells are accessed only under the ownership rules in the module comment
// (identity under the heap lock before publication, allocation state by the one owner,
// everything else atomic), which is what makes sharing `&MSpan` across threads sound.
unsafe impl Sync for MSpan {}

/// What a span is: fixed from allocation to free (but for the bits and
/// `freeindex_for_scan`, which are atomics).
#[repr(C)]
pub(crate) struct SpanInfo {
    pub(crate) base: usize,
    pub(crate) elemsize: usize,
    /// End of the last object (for a large object: of the object itself, not its pages).
    pub(crate) limit: usize,
    pub(crate) div_magic: u32,
    pub(crate) spc: SpanClass,
    /// Slots below this are allocated and initialised (Go's `freeIndexForScan`).
    pub(crate) freeindex_for_scan: AtomicU32,
    /// Words of bits per bitmap: `nelems` rounded up to 64, over 64.
    pub(crate) words: u32,
    mark_inline: [AtomicU64; INLINE_WORDS],
    alloc_inline: [AtomicU64; INLINE_WORDS],
    pub(crate) nelems: usize,
    pub(crate) npages: usize,
    /// The first slot an mcache could allocate black from while the current cycle marks
    /// ([`MSpan::mark_free_slots`]): the objects allocated black are the slots from here
    /// that the last sweep left free. [`NOT_BLACK`] if none was; reset by each sweep.
    pub(crate) black_from: AtomicU32,
    /// For spans of more than `INLINE_WORDS` words: alloc words, then mark words.
    bits: Box<[AtomicU64]>,
    /// A large object's layout and array length (None for noscan and small spans).
    pub(crate) large: Option<(Layout, usize)>,
}

impl SpanInfo {
    /// Word `w` of the mark bits.
    #[inline(always)]
    pub(crate) fn mark_word(&self, w: usize) -> &AtomicU64 {
        if self.words as usize <= INLINE_WORDS {
            &self.mark_inline[w]
        } else {
            &self.bits[self.words as usize + w]
        }
    }

    /// Word `w` of the alloc bits.
    #[inline(always)]
    pub(crate) fn alloc_word(&self, w: usize) -> &AtomicU64 {
        if self.words as usize <= INLINE_WORDS {
            &self.alloc_inline[w]
        } else {
            &self.bits[w]
        }
    }
}

/// What a new span is for: its class and slots, and for a large object (class 0) the
/// object's requested size and, if it has pointers, its layout and array length.
pub(crate) struct SpanShape {
    pub(crate) spc: SpanClass,
    pub(crate) elemsize: usize,
    pub(crate) nelems: usize,
    pub(crate) object_size: usize,
    pub(crate) large: Option<(Layout, usize)>,
}

/// The owner's view of the span. The slots the sweeper frees are not cleared, nor is a
/// pointer-free span made from dirty pages: `needzero` says the free slots may hold old
/// bytes, and the allocation that hands one out clears it (Go's `needzero`, kept per span
/// as Go does). That is every allocation of a scan object, before the slot is published,
/// so that a marker never reads an old pointer in a new object; for a pointer-free one,
/// only those that promise zeroed memory (most are written over by their constructor
/// anyway). A scan span all of whose slots are about to be handed out (made from dirty
/// pages, or swept empty for a refill) is cleared whole instead, by one memset.
#[repr(C)]
pub(crate) struct AllocState {
    pub(crate) alloc_cache: u64,
    pub(crate) cache_base: usize,
    pub(crate) freeindex: usize,
    pub(crate) alloc_count: usize,
    /// How much of `alloc_count` the heap's statistics already know about.
    pub(crate) flushed: u32,
    /// The bytes a new object of this span must have cleared: 0 while every free slot is
    /// zero, else the slot size.
    pub(crate) needzero: u32,
}

/// Where a scan span's pointer bits live. Most spans hold objects of one layout (a span of
/// tree nodes), so a span of objects of at most 64 words keeps their shared mask here and
/// writes no bitmap at all; the first object of a different layout moves the whole span to
/// the heap bitmap (Go always uses the bitmap). In `Empty` and `Uniform` the span's bitmap
/// words are all clear.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PtrMask {
    /// No object allocated since the span was made or emptied.
    Empty,
    /// Every allocated object has this mask.
    Uniform(u64),
    /// Each object's bits are in the heap bitmap (always so for objects over 64 words).
    Bitmap,
}

const MASK_EMPTY: u8 = 0;
const MASK_UNIFORM: u8 = 1;
const MASK_BITMAP: u8 = 2;

/// A span's [`PtrMask`], written by the span's owner and read by a collector that marks
/// while the owner allocates. The owner writes the mask (and any bitmap bits) before the
/// kind, with release; a reader loads the kind with acquire. A reader never needs the
/// newest value: objects allocated while a cycle marks are black and never scanned, and
/// for the objects it does scan, every state it can see describes them (a `Uniform` mask
/// is never changed, only replaced by `Bitmap` after the bitmap holds it for every object).
pub(crate) struct PtrMaskCell {
    kind: AtomicU8,
    mask: AtomicU64,
}

impl PtrMaskCell {
    fn new() -> PtrMaskCell {
        PtrMaskCell {
            kind: AtomicU8::new(MASK_EMPTY),
            mask: AtomicU64::new(0),
        }
    }

    /// The current state.
    #[inline(always)]
    pub(crate) fn get(&self) -> PtrMask {
        match self.kind.load(Ordering::Acquire) {
            MASK_EMPTY => PtrMask::Empty,
            MASK_UNIFORM => PtrMask::Uniform(self.mask.load(Ordering::Relaxed)),
            _ => PtrMask::Bitmap,
        }
    }

    /// The owner's fast-path test: every object of the span has `mask`.
    #[inline(always)]
    pub(crate) fn is_uniform(&self, mask: u64) -> bool {
        self.kind.load(Ordering::Relaxed) == MASK_UNIFORM
            && self.mask.load(Ordering::Relaxed) == mask
    }

    /// Sets the state; only the span's owner calls this, after writing any bitmap bits the
    /// new state points readers to.
    pub(crate) fn set(&self, m: PtrMask) {
        let kind = match m {
            PtrMask::Empty => MASK_EMPTY,
            PtrMask::Uniform(mask) => {
                self.mask.store(mask, Ordering::Relaxed);
                MASK_UNIFORM
            }
            PtrMask::Bitmap => MASK_BITMAP,
        };
        self.kind.store(kind, Ordering::Release);
    }
}

/// A slot just handed out: its address, its size, and the span's new `freeindex` (to
/// publish once the slot is initialised).
pub(crate) struct Slot {
    pub(crate) addr: usize,
    pub(crate) elemsize: usize,
    pub(crate) freeindex: usize,
}

impl MSpan {
    pub(crate) fn new() -> MSpan {
        MSpan {
            info: UnsafeCell::new(SpanInfo {
                base: 0,
                elemsize: 0,
                limit: 0,
                div_magic: 0,
                spc: SpanClass(0),
                freeindex_for_scan: AtomicU32::new(0),
                words: 0,
                mark_inline: std::array::from_fn(|_| AtomicU64::new(0)),
                alloc_inline: std::array::from_fn(|_| AtomicU64::new(0)),
                nelems: 0,
                npages: 0,
                black_from: AtomicU32::new(NOT_BLACK),
                bits: Box::new([]),
                large: None,
            }),
            alloc: UnsafeCell::new(AllocState {
                alloc_cache: 0,
                cache_base: 0,
                freeindex: 0,
                alloc_count: 0,
                flushed: 0,
                needzero: 0,
            }),
            ptrmask: PtrMaskCell::new(),
            state: AtomicU8::new(SPAN_DEAD),
            sweepgen: AtomicU32::new(0),
            has_specials: AtomicBool::new(false),
        }
    }

    /// Reads the span's identity.
    #[inline(always)]
    pub(crate) fn info<R>(&self, f: impl FnOnce(&SpanInfo) -> R) -> R {
        // SAFETY: identity is written only by `init`/`clear` under the heap lock while no
        // one else can reach the span; every reader got the span through a handoff ordered
        // after that write (see the module comment), so there is no concurrent writer.
        self.info.with(|p| f(unsafe { &*p }))
    }

    /// Mutates the allocation state.
    ///
    /// # Safety
    /// The caller owns the span: it caches it in its mcache, or won the sweepgen CAS, or
    /// holds the heap lock while the span is not in use.
    #[inline(always)]
    pub(crate) unsafe fn alloc_state<R>(&self, f: impl FnOnce(&mut AllocState) -> R) -> R {
        // SAFETY: exclusive by the caller's ownership of the span.
        self.alloc.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Sets up a dead span struct for `npages` pages at `base`. Called under the heap lock.
    ///
    /// # Safety
    /// The span is dead and unreachable by anyone else.
    pub(crate) unsafe fn init(&self, base: usize, npages: usize, shape: SpanShape) {
        let SpanShape {
            spc,
            elemsize,
            nelems,
            object_size,
            large,
        } = shape;
        let limit = if spc.size_class() == 0 {
            base + object_size
        } else {
            base + nelems * elemsize
        };
        let words = nelems.div_ceil(64);
        self.info.with_mut(|p| {
            // SAFETY: the caller guarantees nobody else can reach this span.
            let info = unsafe { &mut *p };
            if words <= INLINE_WORDS {
                for w in info.mark_inline.iter().chain(&info.alloc_inline) {
                    w.store(0, Ordering::Relaxed);
                }
            } else if info.bits.len() < 2 * words {
                info.bits = (0..2 * words).map(|_| AtomicU64::new(0)).collect();
            } else {
                for w in info.bits.iter() {
                    w.store(0, Ordering::Relaxed);
                }
            }
            info.base = base;
            info.npages = npages;
            info.spc = spc;
            info.elemsize = elemsize;
            info.nelems = nelems;
            // The magic is exact only over size-class spans (Go checks each class); a large
            // span has one slot, index 0, which a zero multiplier gives (Go's `divMul = 0`).
            info.div_magic = if spc.size_class() == 0 {
                0
            } else {
                crate::sizeclass::div_magic(elemsize)
            };
            info.limit = limit;
            info.words = words as u32;
            info.large = large;
            info.freeindex_for_scan.store(0, Ordering::Relaxed);
            info.black_from.store(NOT_BLACK, Ordering::Relaxed);
        });
        // SAFETY: as above, this span is ours alone.
        unsafe {
            self.alloc_state(|st| {
                st.freeindex = 0;
                st.cache_base = 0;
                st.alloc_cache = 0;
                st.alloc_count = 0;
                st.flushed = 0;
                st.needzero = 0;
            })
        };
        self.ptrmask.set(if elemsize > 64 * 8 {
            PtrMask::Bitmap
        } else {
            PtrMask::Empty
        });
    }

    /// Asks the CPU to load this descriptor (every cache line of it): a hint, for a span
    /// about to be swept.
    #[inline]
    pub(crate) fn prefetch(&self) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        {
            let start = self as *const MSpan as usize;
            for line in (start..start + std::mem::size_of::<MSpan>()).step_by(64) {
                // SAFETY: a prefetch is a hint; it never faults, whatever the address.
                unsafe {
                    std::arch::x86_64::_mm_prefetch(
                        line as *const i8,
                        std::arch::x86_64::_MM_HINT_T0,
                    )
                };
            }
        }
    }

    /// Records that free slots of this span may hold old bytes, rather than clearing them:
    /// the allocations clear theirs (see [`AllocState`]).
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn set_needzero(&self) {
        let elemsize = self.elem_size() as u32;
        // SAFETY: the caller owns the span.
        unsafe { self.alloc_state(|st| st.needzero = elemsize) };
    }

    /// Records that every free slot of this span is zero (its sweep cleared it whole).
    ///
    /// # Safety
    /// The caller owns the span, and every free slot of it is zero.
    pub(crate) unsafe fn clear_needzero(&self) {
        // SAFETY: the caller owns the span.
        unsafe { self.alloc_state(|st| st.needzero = 0) };
    }

    /// How many bytes of a slot just taken may hold an old object's (`AllocState::
    /// needzero`).
    ///
    /// # Safety
    /// The caller owns the span.
    #[inline(always)]
    pub(crate) unsafe fn needzero(&self) -> usize {
        // SAFETY: the caller owns the span.
        unsafe { self.alloc_state(|st| st.needzero as usize) }
    }

    /// Drops what a dead span must not keep alive (a large object's layout).
    ///
    /// # Safety
    /// As for [`MSpan::init`].
    pub(crate) unsafe fn clear(&self) {
        debug_assert!(
            !self.has_specials.load(Ordering::Relaxed),
            "a span freed with specials"
        );
        // SAFETY: the caller guarantees nobody else can reach this span.
        self.info.with_mut(|p| unsafe { (*p).large = None });
    }

    /// Base address of the span's first page.
    pub fn base(&self) -> usize {
        self.info(|i| i.base)
    }

    /// Number of pages.
    pub fn npages(&self) -> usize {
        self.info(|i| i.npages)
    }

    /// Span class.
    pub fn span_class(&self) -> SpanClass {
        self.info(|i| i.spc)
    }

    /// Size of each slot (the whole page run for a large object).
    #[inline(always)]
    pub fn elem_size(&self) -> usize {
        self.info(|i| i.elemsize)
    }

    /// Number of slots.
    pub fn nelems(&self) -> usize {
        self.info(|i| i.nelems)
    }

    /// True when the span's objects never hold pointers.
    pub fn noscan(&self) -> bool {
        self.span_class().noscan()
    }

    /// Sets the mark bit of slot `i`; true if this call set it (the caller now owns
    /// scanning the object: the atomic decides between racing markers).
    #[inline]
    pub fn try_mark(&self, i: usize) -> bool {
        #[cfg(loom_mutant = "mark_racy")]
        // SAFETY: not safe at all: the seeded bug of loom model 4 (two markers may both win).
        return unsafe { self.try_mark_exclusive(i) };
        #[cfg(not(loom_mutant = "mark_racy"))]
        self.info(|info| {
            let bit = 1u64 << (i % 64);
            let w = info.mark_word(i / 64);
            w.load(Ordering::Relaxed) & bit == 0 && w.fetch_or(bit, Ordering::AcqRel) & bit == 0
        })
    }

    /// [`MSpan::try_mark`] for a marker that is alone: a plain load and store instead of
    /// an atomic read-modify-write, which on x86 is a full fence that also waits out every
    /// cache miss in flight.
    ///
    /// # Safety
    /// No other thread sets mark bits of this heap while this runs.
    #[inline]
    pub unsafe fn try_mark_exclusive(&self, i: usize) -> bool {
        self.info(|info| {
            let bit = 1u64 << (i % 64);
            let w = info.mark_word(i / 64);
            let old = w.load(Ordering::Relaxed);
            w.store(old | bit, Ordering::Relaxed);
            old & bit == 0
        })
    }

    /// Clears every mark bit of the span.
    ///
    /// # Safety
    /// Nobody marks or sweeps the span meanwhile (the world is stopped, sweeping drained).
    pub(crate) unsafe fn clear_marks(&self) {
        self.info(|info| {
            for w in 0..info.words as usize {
                info.mark_word(w).store(0, Ordering::Relaxed);
            }
        })
    }

    /// Whether slot `i` is marked.
    #[inline]
    pub fn is_marked(&self, i: usize) -> bool {
        self.info(|info| info.mark_word(i / 64).load(Ordering::Acquire) >> (i % 64) & 1 != 0)
    }

    /// Whether slot `i` was allocated at the last sweep.
    #[inline]
    pub(crate) fn alloc_bit(&self, i: usize) -> bool {
        self.info(|info| info.alloc_word(i / 64).load(Ordering::Relaxed) >> (i % 64) & 1 != 0)
    }

    /// Publishes that every slot below `freeindex` is initialised.
    #[inline(always)]
    pub(crate) fn publish_freeindex(&self, freeindex: usize) {
        self.info(|info| {
            info.freeindex_for_scan
                .store(freeindex as u32, Ordering::Release)
        });
    }

    /// Slot index of an address inside the span (Go's `divideByElemSize` via the magic).
    #[inline(always)]
    pub(crate) fn obj_index(info: &SpanInfo, addr: usize) -> usize {
        (((addr - info.base) as u64 * info.div_magic as u64) >> 32) as usize
    }

    /// Go's `nextFreeFast`: the next free slot from the alloc cache; `None` when the cache's
    /// word is used up.
    ///
    /// # Safety
    /// The caller owns the span (it is cached in the caller's mcache).
    #[inline(always)]
    pub(crate) unsafe fn next_free_fast(&self) -> Option<Slot> {
        // SAFETY: the caller owns the span.
        unsafe {
            self.alloc_state(|st| {
                let cache = st.alloc_cache;
                if cache == 0 {
                    return None;
                }
                st.alloc_cache = cache & (cache - 1);
                let index = st.cache_base + cache.trailing_zeros() as usize;
                st.freeindex = index + 1;
                st.alloc_count += 1;
                self.info(|info| {
                    Some(Slot {
                        addr: info.base + index * info.elemsize,
                        elemsize: info.elemsize,
                        freeindex: index + 1,
                    })
                })
            })
        }
    }

    /// Go's `nextFree` within one span: the next free slot, moving the alloc cache to the
    /// next word of alloc bits as needed; `None` when the span is full.
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn next_free(&self) -> Option<Slot> {
        // SAFETY: the caller owns the span.
        unsafe {
            self.info(|info| {
                self.alloc_state(|st| {
                    while st.alloc_cache == 0 {
                        let next = st.cache_base + 64;
                        if next >= info.nelems {
                            st.freeindex = info.nelems;
                            return;
                        }
                        st.cache_base = next;
                        st.alloc_cache = free_slots(info, next, next);
                    }
                })
            });
            self.next_free_fast()
        }
    }

    /// Records the pointer bits of the object just allocated at `addr` (at most 64 words,
    /// `mask` nonzero), when they differ from the span's uniform mask. (The address by
    /// value: a `&Slot` made the fast path store the slot on its stack for this call.)
    ///
    /// # Safety
    /// The caller owns the span.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn set_mask_slow(&self, bits: &HeapBits, addr: usize, mask: u64) {
        match self.ptrmask.get() {
            PtrMask::Empty => self.ptrmask.set(PtrMask::Uniform(mask)),
            PtrMask::Uniform(old) => {
                // A second layout: every object allocated so far gets the old mask in the
                // bitmap, and the span writes per object from now on.
                // SAFETY: the caller owns the span.
                let freeindex = unsafe { self.alloc_state(|st| st.freeindex) };
                self.info(|info| {
                    let new = (addr - info.base) / info.elemsize;
                    for i in (0..info.nelems).filter(|&i| i != new) {
                        if i < freeindex || self.alloc_bit(i) {
                            bits.set(info.base + i * info.elemsize, old);
                        }
                    }
                });
                bits.set(addr, mask);
                self.ptrmask.set(PtrMask::Bitmap);
            }
            PtrMask::Bitmap => bits.set(addr, mask),
        }
    }

    /// Where the span's pointer bits are, for the collector (see [`PtrMaskCell`]).
    #[inline]
    pub(crate) fn ptrmask(&self) -> PtrMask {
        self.ptrmask.get()
    }

    /// Sets the mark bits of every free slot (allocation black while a cycle marks: each
    /// slot this span's owner hands out is born marked), returning how many it set.
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn mark_free_slots(&self) -> usize {
        // SAFETY: the caller owns the span.
        let freeindex = unsafe { self.alloc_state(|st| st.freeindex) };
        self.info(|i| i.black_from.fetch_min(freeindex as u32, Ordering::Relaxed));
        // SAFETY: the caller owns the span.
        unsafe { self.on_free_mark_words(|w, free| _ = w.fetch_or(free, Ordering::AcqRel)) }
    }

    /// A large object allocated black: young still after a sweep that keeps the marks
    /// of the traced only ([`crate::KeepMarks::Traced`]).
    pub(crate) fn set_black_from_start(&self) {
        self.info(|i| i.black_from.store(0, Ordering::Relaxed));
    }

    /// Clears the mark bits [`MSpan::mark_free_slots`] set on slots still free, returning
    /// how many. Markers never mark a free slot (it is not an object), so what is left
    /// marked is what the owner allocated.
    ///
    /// # Safety
    /// The caller owns the span, and marked its free slots when it took it or when the
    /// cycle began.
    pub(crate) unsafe fn unmark_free_slots(&self) -> usize {
        // SAFETY: the caller owns the span.
        unsafe { self.on_free_mark_words(|w, free| _ = w.fetch_and(!free, Ordering::AcqRel)) }
    }

    /// Calls `f` with each mark word and the mask of its slots still free (none empty);
    /// returns how many free slots there are.
    ///
    /// # Safety
    /// The caller owns the span (its free index does not move meanwhile).
    unsafe fn on_free_mark_words(&self, f: impl Fn(&AtomicU64, u64)) -> usize {
        // SAFETY: the caller owns the span.
        let freeindex = unsafe { self.alloc_state(|st| st.freeindex) };
        self.info(|info| {
            let mut n = 0;
            for w in 0..info.words as usize {
                let free = free_from(info, w, freeindex);
                if free != 0 {
                    f(info.mark_word(w), free);
                    n += free.count_ones() as usize;
                }
            }
            n
        })
    }

    /// Loads the alloc cache for the current `freeindex` (Go's `refillAllocCache`).
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn reset_alloc_cache(&self) {
        self.info(|info| {
            // SAFETY: the caller owns the span.
            unsafe {
                self.alloc_state(|st| {
                    st.cache_base = st.freeindex & !63;
                    st.alloc_cache = if st.freeindex >= info.nelems {
                        0
                    } else {
                        free_slots(info, st.cache_base, st.freeindex)
                    };
                })
            }
        })
    }

    /// Bytes of the span not in allocated slots (free slots and tail waste).
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn unused_bytes(&self) -> u64 {
        let (npages, elemsize) = self.info(|i| (i.npages, i.elemsize));
        // SAFETY: the caller owns the span.
        let used = unsafe { self.alloc_state(|st| st.alloc_count) } * elemsize;
        (npages * PAGE_SIZE - used) as u64
    }

    /// True when every slot is allocated.
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn is_full(&self) -> bool {
        let nelems = self.nelems();
        // SAFETY: the caller owns the span.
        unsafe { self.alloc_state(|st| st.alloc_count == nelems) }
    }
}

/// The bits of slots `[64w, 64w + 64)` that lie below `limit`: of an alloc or mark word,
/// the slots below a free index, or inside the span.
#[inline]
pub(crate) fn word_mask(w: usize, limit: usize) -> u64 {
    match limit.saturating_sub(w * 64) {
        0 => 0,
        n if n >= 64 => !0,
        n => (1u64 << n) - 1,
    }
}

/// The free slots of word `w`: at or after `freeindex`, below `nelems`, alloc bit clear.
fn free_from(info: &SpanInfo, w: usize, freeindex: usize) -> u64 {
    let lo = (w * 64).max(freeindex);
    if lo >= info.nelems || lo >= w * 64 + 64 {
        return 0;
    }
    free_slots(info, w * 64, lo)
}

/// The free slots of the alloc-bit word starting at slot `base` (a multiple of 64), from
/// slot `from` on and below `nelems`, as set bits.
fn free_slots(info: &SpanInfo, base: usize, from: usize) -> u64 {
    let free = !info.alloc_word(base / 64).load(Ordering::Relaxed);
    let from_mask = !0u64 << (from - base);
    let end = info.nelems - base;
    let end_mask = if end >= 64 { !0 } else { (1u64 << end) - 1 };
    free & from_mask & end_mask
}

/// A span of a heap. Valid as long as the heap it came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SpanRef(NonNull<MSpan>);

// SAFETY: a SpanRef is a pointer to a heap-owned MSpan whose shared state is atomics or
// governed by the ownership rules above; moving or sharing the pointer across threads is
// what those rules are for.
unsafe impl Send for SpanRef {}
// SAFETY: as above.
unsafe impl Sync for SpanRef {}

impl SpanRef {
    pub(crate) fn new(span: &MSpan) -> SpanRef {
        SpanRef(NonNull::from(span))
    }

    pub(crate) fn as_ptr(self) -> *mut MSpan {
        self.0.as_ptr()
    }

    /// The span.
    #[inline(always)]
    pub(crate) fn get<'a>(self) -> &'a MSpan {
        // SAFETY: span structs are owned by their heap and never freed while it lives;
        // every holder of a SpanRef (an mcache, an mcentral list, the page table) is itself
        // owned by or borrows the heap, so the heap outlives this use.
        unsafe { self.0.as_ref() }
    }
}

/// Pages needed for a large object of `size` bytes.
pub(crate) fn large_pages(size: usize) -> usize {
    size.div_ceil(PAGE_SIZE)
}
