//! mcentral: the spans of one span class that no mcache holds.
//!
//! Spans are "partial" (at least one free slot) or "full", and within each, "swept" or
//! "unswept" for the current cycle. Because the heap's `sweepgen` grows by 2 per cycle, the
//! two sets swap roles each cycle without moving anything: set `sweepgen / 2 % 2` is the
//! swept one (Go's `partialSwept`/`partialUnswept`/`fullSwept`/`fullUnswept`). Go keeps
//! these as lock-free span sets; here each mcentral is one lock around four stacks, taken
//! only when an mcache refills or a sweeper files a span.
//!
//! An mcache that needs a span ([`MCentral::cache_span`]) takes a swept partial span, or
//! sweeps unswept ones itself until one has room (lazy sweeping, bounded like Go's), or
//! asks the page heap for a new span. A span handed back ([`MCentral::uncache_span`]) is
//! filed as swept, unless a cycle ended while it was cached, in which case it is swept now.
//! Sweeping a span (`sweep`) lives beside the lists, because the sweep-generation
//! compare-and-swap that decides who sweeps is what keeps a span on one list at a time.
//!
//! This layer sits on the page heap and the pointer bitmap; what it needs of the heap
//! above it is passed in as a [`SpanCtx`], so no module here names `MHeap`.

mod sweep;

pub use sweep::KeepMarks;
pub(crate) use sweep::{SweepState, SWEEP_DRAINED};

use crate::error::AllocError;
use crate::heapbits::HeapBits;
use crate::pageheap::PageHeap;
use crate::quarantine::Quarantine;
use crate::sizeclass::{SpanClass, CLASS_TO_NELEMS, CLASS_TO_NPAGES, CLASS_TO_SIZE, PAGE_SIZE};
use crate::span::{SpanRef, SpanShape};
use crate::special::Specials;
use crate::stats::HeapStats;
use crate::sync::{AtomicBool, Mutex, Ordering};

/// The parts of a heap the span-class layer works with.
#[derive(Clone, Copy)]
pub(crate) struct SpanCtx<'a> {
    pub(crate) pages: &'a PageHeap,
    pub(crate) bits: &'a HeapBits,
    pub(crate) sweep: &'a SweepState,
    pub(crate) stats: &'a HeapStats,
    pub(crate) specials: &'a Specials,
    pub(crate) quarantine: &'a Quarantine,
}

/// Spans an mcache may sweep looking for room before it grows the heap instead (Go's
/// `spanBudget`): bounds allocation latency.
const SPAN_BUDGET: usize = 100;

#[derive(Default)]
struct Lists {
    partial: [Vec<SpanRef>; 2],
    full: [Vec<SpanRef>; 2],
}

/// One span class's free-ish spans.
pub(crate) struct MCentral {
    spc: SpanClass,
    lists: Mutex<Lists>,
    /// Has ever had a span filed here, so that sweepers visit only the classes a program
    /// uses rather than all 136.
    used: AtomicBool,
}

fn swept(sg: u32) -> usize {
    (sg / 2 % 2) as usize
}

fn unswept(sg: u32) -> usize {
    1 - swept(sg)
}

impl MCentral {
    pub(crate) fn new(spc: SpanClass) -> MCentral {
        MCentral {
            spc,
            lists: Mutex::new(Lists::default()),
            used: AtomicBool::new(false),
        }
    }

    /// Whether a span was ever filed here.
    pub(crate) fn used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// A span with at least one free slot, swept, owned by the caller, its alloc cache
    /// loaded. Sweeps lazily and grows the heap as needed (Go's `cacheSpan`).
    pub(crate) fn cache_span(&self, cx: SpanCtx<'_>) -> Result<SpanRef, AllocError> {
        let span = match self.take_swept_or_sweep(cx) {
            Some(s) => s,
            None => {
                let class = self.spc.size_class() as usize;
                let shape = SpanShape {
                    spc: self.spc,
                    elemsize: CLASS_TO_SIZE[class] as usize,
                    nelems: CLASS_TO_NELEMS[class] as usize,
                    object_size: 0,
                    large: None,
                };
                let npages = CLASS_TO_NPAGES[class] as usize;
                let (span, needzero) = cx.pages.alloc_span(npages, shape, cx.sweep.sweepgen())?;
                let base = span.get().base();
                if needzero && self.spc.noscan() {
                    // SAFETY: the span is fresh and ours.
                    unsafe { span.get().set_needzero() };
                } else if needzero {
                    // A scan span, every slot of which is about to be handed out: one memset
                    // (as the sweep does for a span left empty) rather than a slot at a time.
                    // SAFETY: the span is fresh and ours; its pages hold nothing live.
                    unsafe { std::ptr::write_bytes(base as *mut u8, 0, npages * PAGE_SIZE) };
                }
                if !self.spc.noscan() {
                    cx.bits.clear(base, npages * PAGE_SIZE / 8);
                }
                span
            }
        };
        // SAFETY: the span is ours: popped from a list under the lock, or swept by us after
        // winning its sweepgen CAS, or fresh from the heap.
        unsafe { span.get().reset_alloc_cache() };
        Ok(span)
    }

    /// Pops a span to sweep from one of the lists, and asks the CPU to load the descriptor
    /// of the one under it: the next refill's sweep, a span's worth of allocation later,
    /// then finds it in the cache. A span not touched since the last cycle made each
    /// refill wait on its descriptor, on its sweepgen's compare-and-swap first.
    fn pop_prefetching_next(
        &self,
        list: impl FnOnce(&mut Lists) -> &mut Vec<SpanRef>,
    ) -> Option<SpanRef> {
        let mut lists = self.lists.lock();
        let list = list(&mut lists);
        let s = list.pop();
        if let Some(next) = list.last() {
            next.get().prefetch();
        }
        s
    }

    fn take_swept_or_sweep(&self, cx: SpanCtx<'_>) -> Option<SpanRef> {
        // The cycle cannot advance while an mcache refills (mutators are stopped for it).
        let sg = cx.sweep.sweepgen();
        #[cfg(not(loom_mutant = "cache_span_no_pop"))]
        let swept_span = self.lists.lock().partial[swept(sg)].pop();
        #[cfg(loom_mutant = "cache_span_no_pop")]
        let swept_span = self.lists.lock().partial[swept(sg)].last().copied();
        if swept_span.is_some() {
            return swept_span;
        }
        // Sweeping is drained only after everything was swept (a collector is marking or
        // about to); then there is nothing to sweep lazily and a new span is the answer.
        let _sweeping = cx.sweep.begin_sweep()?;
        for _ in 0..SPAN_BUDGET {
            let Some(s) = self.pop_prefetching_next(|l| &mut l.partial[unswept(sg)]) else {
                break;
            };
            if cx.sweep.try_acquire(s, sg) {
                self.sweep_span(cx, s, true);
                return Some(s);
            }
        }
        for _ in 0..SPAN_BUDGET {
            let Some(s) = self.pop_prefetching_next(|l| &mut l.full[unswept(sg)]) else {
                break;
            };
            if cx.sweep.try_acquire(s, sg) {
                self.sweep_span(cx, s, true);
                // SAFETY: we own the span (we just swept it).
                if !unsafe { s.get().is_full() } {
                    return Some(s);
                }
                self.lists.lock().full[swept(sg)].push(s);
            }
        }
        None
    }

    /// Takes back a span an mcache held (Go's `uncacheSpan`). The caller owned it.
    pub(crate) fn uncache_span(&self, cx: SpanCtx<'_>, span: SpanRef) {
        let sg = cx.sweep.sweepgen();
        let s = span.get();
        let cached_sg = s.sweepgen.load(Ordering::Relaxed);
        debug_assert!(
            cached_sg == sg.wrapping_add(1) || cached_sg == sg.wrapping_add(3),
            "uncaching a span not cached"
        );
        if cached_sg == sg.wrapping_add(1) {
            // Cached before this cycle's sweep began: it still needs sweeping, and since it
            // is on no list, nobody else can sweep it.
            let _sweeping = cx.sweep.begin_sweep_forced();
            s.sweepgen.store(sg.wrapping_sub(1), Ordering::Relaxed);
            self.sweep_span(cx, span, false);
        } else {
            // Cached this cycle: its free slots were counted live when it was cached (see
            // `MHeap::heap_live`); take back the ones not used.
            // SAFETY: we own the span until it is on a list.
            cx.stats.sub_live(unsafe { s.unused_bytes() });
            // SAFETY: we own the span until it is on a list.
            let full = unsafe { s.is_full() };
            self.push_swept(sg, span, full);
        }
    }

    /// Files a span swept in cycle `sg`; publishes its sweep to whoever pops it.
    pub(crate) fn push_swept(&self, sg: u32, span: SpanRef, full: bool) {
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Release);
        }
        span.get().sweepgen.store(sg, Ordering::Release);
        let mut l = self.lists.lock();
        if full {
            l.full[swept(sg)].push(span);
        } else {
            l.partial[swept(sg)].push(span);
        }
    }

    /// An unswept span for the background sweeper, if any are left.
    pub(crate) fn pop_unswept(&self, sg: u32) -> Option<SpanRef> {
        let mut l = self.lists.lock();
        let u = unswept(sg);
        l.partial[u].pop().or_else(|| l.full[u].pop())
    }

    /// True when no span of this class waits for sweeping.
    pub(crate) fn all_swept(&self, sg: u32) -> bool {
        let l = self.lists.lock();
        l.partial[unswept(sg)].is_empty() && l.full[unswept(sg)].is_empty()
    }

    /// How many spans each list holds: `[partial swept, partial unswept, full swept, full
    /// unswept]`, for tests and statistics.
    pub(crate) fn counts(&self, sg: u32) -> [usize; 4] {
        let l = self.lists.lock();
        [
            l.partial[swept(sg)].len(),
            l.partial[unswept(sg)].len(),
            l.full[swept(sg)].len(),
            l.full[unswept(sg)].len(),
        ]
    }
}
