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
//! `alloc_cache` holds the complement of the 64 alloc bits from `freeindex` rounded down, so
//! a count-trailing-zeros finds the next free slot (Go's `nextFreeFast`).

use std::ptr::NonNull;

use crate::layout::Layout;
use crate::sizeclass::{SpanClass, PAGE_SIZE};
use crate::sync::{AtomicU32, AtomicU64, AtomicU8, Ordering, UnsafeCell};

/// `MSpan::state` values: Go's `mSpanDead` and `mSpanInUse`.
pub(crate) const SPAN_DEAD: u8 = 0;
pub(crate) const SPAN_IN_USE: u8 = 1;

/// Span metadata. Lives off the heap, owned by the heap, never freed while the heap lives
/// (span structs are recycled like Go's `fixalloc`), so a stale pointer to one is never
/// dangling. `repr(C)` keeps what the fast path reads (the allocation state, then base,
/// slot size and count) in the first cache line.
#[repr(C)]
pub struct MSpan {
    alloc: UnsafeCell<AllocState>,
    info: UnsafeCell<SpanInfo>,
    pub(crate) state: AtomicU8,
    /// Go's sweep generation, relative to the heap's `sweepgen` `sg`: `sg - 2` needs
    /// sweeping, `sg - 1` is being swept, `sg` is swept, `sg + 1` was cached before this
    /// cycle's sweep began, `sg + 3` was swept and then cached.
    pub(crate) sweepgen: AtomicU32,
    /// Slots below this are allocated and initialised (Go's `freeIndexForScan`).
    freeindex_for_scan: AtomicU32,
}

// SAFETY: MSpan's cells are accessed only under the ownership rules in the module comment
// (identity under the heap lock before publication, allocation state by the one owner,
// everything else atomic), which is what makes sharing `&MSpan` across threads sound.
unsafe impl Sync for MSpan {}

/// What a span is: fixed from allocation to free.
#[repr(C)]
pub(crate) struct SpanInfo {
    pub(crate) base: usize,
    pub(crate) elemsize: usize,
    pub(crate) nelems: usize,
    pub(crate) npages: usize,
    pub(crate) spc: SpanClass,
    pub(crate) div_magic: u32,
    /// End of the last object (for a large object: of the object itself, not its pages).
    pub(crate) limit: usize,
    /// `words` alloc-bit words, then `words` mark-bit words.
    pub(crate) bits: Box<[AtomicU64]>,
    pub(crate) words: usize,
    /// A large object's layout and array length (None for noscan and small spans).
    pub(crate) large: Option<(Layout, usize)>,
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

/// The owner's view of the span. Free slots are always zero: a span made from dirty pages
/// is cleared when it is made, and the sweeper clears the slots it frees, so handing out a
/// slot never needs a `memset` (Go clears at allocation instead, per `needzero`).
#[repr(C)]
pub(crate) struct AllocState {
    pub(crate) freeindex: usize,
    pub(crate) alloc_cache: u64,
    pub(crate) alloc_count: usize,
    /// How much of `alloc_count` the heap's statistics already know about.
    pub(crate) flushed: usize,
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
                npages: 0,
                spc: SpanClass(0),
                elemsize: 0,
                nelems: 0,
                div_magic: 0,
                limit: 0,
                bits: Box::new([]),
                words: 0,
                large: None,
            }),
            alloc: UnsafeCell::new(AllocState {
                freeindex: 0,
                alloc_cache: 0,
                alloc_count: 0,
                flushed: 0,
            }),
            state: AtomicU8::new(SPAN_DEAD),
            sweepgen: AtomicU32::new(0),
            freeindex_for_scan: AtomicU32::new(0),
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
            if info.bits.len() < 2 * words {
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
            info.words = words;
            info.large = large;
        });
        // SAFETY: as above, this span is ours alone.
        unsafe {
            self.alloc_state(|st| {
                st.freeindex = 0;
                st.alloc_cache = !0;
                st.alloc_count = 0;
                st.flushed = 0;
            })
        };
        self.freeindex_for_scan.store(0, Ordering::Relaxed);
    }

    /// Drops what a dead span must not keep alive (a large object's layout).
    ///
    /// # Safety
    /// As for [`MSpan::init`].
    pub(crate) unsafe fn clear(&self) {
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
        self.info(|info| {
            let bit = 1u64 << (i % 64);
            let w = &info.bits[info.words + i / 64];
            w.load(Ordering::Relaxed) & bit == 0 && w.fetch_or(bit, Ordering::AcqRel) & bit == 0
        })
    }

    /// Whether slot `i` is marked.
    #[inline]
    pub fn is_marked(&self, i: usize) -> bool {
        self.info(|info| {
            info.bits[info.words + i / 64].load(Ordering::Acquire) >> (i % 64) & 1 != 0
        })
    }

    /// Whether slot `i` was allocated at the last sweep.
    #[inline]
    pub(crate) fn alloc_bit(&self, i: usize) -> bool {
        self.info(|info| info.bits[i / 64].load(Ordering::Relaxed) >> (i % 64) & 1 != 0)
    }

    /// Whether slot `i` holds an allocated, initialised object (Go's `!isFree(i)`).
    #[inline]
    pub(crate) fn is_allocated(&self, i: usize) -> bool {
        i < self.freeindex_for_scan.load(Ordering::Acquire) as usize || self.alloc_bit(i)
    }

    /// Publishes that every slot below `freeindex` is initialised.
    #[inline(always)]
    pub(crate) fn publish_freeindex(&self, freeindex: usize) {
        self.freeindex_for_scan
            .store(freeindex as u32, Ordering::Release);
    }

    /// Slot index of an address inside the span (Go's `divideByElemSize` via the magic).
    #[inline(always)]
    pub(crate) fn obj_index(info: &SpanInfo, addr: usize) -> usize {
        (((addr - info.base) as u64 * info.div_magic as u64) >> 32) as usize
    }

    /// Go's `nextFreeFast`: the next free slot from the alloc cache, without crossing a
    /// 64-slot boundary.
    ///
    /// # Safety
    /// The caller owns the span (it is cached in the caller's mcache).
    #[inline(always)]
    pub(crate) unsafe fn next_free_fast(&self) -> Option<Slot> {
        // SAFETY: the caller owns the span.
        unsafe {
            self.alloc_state(|st| {
                self.info(|info| {
                    let theta = st.alloc_cache.trailing_zeros() as usize;
                    let result = st.freeindex + theta;
                    if theta < 64 && result < info.nelems {
                        let free = result + 1;
                        if free % 64 == 0 && free != info.nelems {
                            return None;
                        }
                        st.alloc_cache = (st.alloc_cache >> theta) >> 1;
                        st.freeindex = free;
                        st.alloc_count += 1;
                        return Some(Slot {
                            addr: info.base + result * info.elemsize,
                            elemsize: info.elemsize,
                            freeindex: free,
                        });
                    }
                    None
                })
            })
        }
    }

    /// Go's `nextFreeIndex` plus the allocation: the next free slot, refilling the alloc
    /// cache across 64-slot boundaries; `None` when the span is full.
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn next_free(&self) -> Option<Slot> {
        self.info(|info| {
            // SAFETY: the caller owns the span.
            unsafe {
                self.alloc_state(|st| {
                    let nelems = info.nelems;
                    let mut idx = st.freeindex;
                    if idx >= nelems {
                        return None;
                    }
                    let mut cache = st.alloc_cache;
                    let mut bit = cache.trailing_zeros() as usize;
                    while bit == 64 {
                        idx = (idx + 64) & !63;
                        if idx >= nelems {
                            st.freeindex = nelems;
                            return None;
                        }
                        cache = !info.bits[idx / 64].load(Ordering::Relaxed);
                        bit = cache.trailing_zeros() as usize;
                    }
                    let result = idx + bit;
                    if result >= nelems {
                        st.freeindex = nelems;
                        return None;
                    }
                    st.alloc_cache = (cache >> bit) >> 1;
                    let free = result + 1;
                    if free % 64 == 0 && free != nelems {
                        st.alloc_cache = !info.bits[free / 64].load(Ordering::Relaxed);
                    }
                    st.freeindex = free;
                    st.alloc_count += 1;
                    Some(Slot {
                        addr: info.base + result * info.elemsize,
                        elemsize: info.elemsize,
                        freeindex: free,
                    })
                })
            }
        })
    }

    /// Loads the alloc cache for the current `freeindex` (Go's `refillAllocCache` plus the
    /// shift `mcentral.cacheSpan` does).
    ///
    /// # Safety
    /// The caller owns the span.
    pub(crate) unsafe fn reset_alloc_cache(&self) {
        self.info(|info| {
            // SAFETY: the caller owns the span.
            unsafe {
                self.alloc_state(|st| {
                    let idx = st.freeindex;
                    st.alloc_cache = if idx >= info.nelems {
                        0
                    } else {
                        !info.bits[idx / 64].load(Ordering::Relaxed) >> (idx % 64)
                    };
                })
            }
        })
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
