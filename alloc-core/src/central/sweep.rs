//! Span-level sweeping: turning a span's mark bits into its alloc bits. Cycle control (when
//! marking ends, who sweeps in the background) lives in the collector; this module gives it
//! the mechanism and the sweep-generation protocol (Go's `mgcsweep.go`).
//!
//! Ownership of an unswept span is decided by one compare-and-swap of its `sweepgen` from
//! `sg - 2` (needs sweeping) to `sg - 1` (being swept): whoever wins sweeps it, exactly once
//! per cycle (invariant 2). Spans reach sweepers by being popped from an mcentral's unswept
//! list, by an mcache handing back a span it cached before the cycle began, or by the
//! background sweeper walking every mcentral.
//!
//! A sweeper works on the `sweepgen` it read when it began, so the cycle must not change
//! under it: as Go's `sweepLocker`, every sweep registers in `sweepers` (a count, plus a
//! "drained" bit). [`MHeap::finish_sweep`] sweeps what is left, sets the bit so no new sweep
//! can begin, and waits for the count to reach zero; only then may the cycle advance.
//!
//! The cycle around it (when sweeping opens and closes, who sweeps in the background) is
//! the heap's (`MHeap::finish_sweep`, `MHeap::start_sweep_cycle`) and the collector's.

use super::{MCentral, SpanCtx};
use crate::heapbits::HeapBits;
use crate::span::{word_mask, PtrMask, SpanInfo, SpanRef, NOT_BLACK};
use crate::sync::{AtomicU32, AtomicU8, Ordering};

/// Clears the pointer bits of the slots named by `freed` (bit `b` = slot `64w + b`) in the
/// heap bitmap if `bitmap`, and their memory if `memory`, a run at a time. The bits, so
/// that a free slot's bits are clear; the memory is otherwise left for the allocation that
/// hands the slot out again to clear (`AllocState::needzero`).
fn clear_slots(
    bits: &HeapBits,
    bitmap: bool,
    memory: bool,
    span: &SpanInfo,
    w: usize,
    mut freed: u64,
) {
    while freed != 0 {
        let start = freed.trailing_zeros() as usize;
        let run = (!(freed >> start)).trailing_zeros() as usize;
        let addr = span.base + (w * 64 + start) * span.elemsize;
        if memory {
            // SAFETY: these slots were just found dead (allocated, unmarked) in a span the
            // sweeper owns; nothing can reach them.
            unsafe { std::ptr::write_bytes(addr as *mut u8, 0, run * span.elemsize) };
        }
        if bitmap {
            bits.clear(addr, run * span.elemsize / 8);
        }
        freed = if start + run >= 64 {
            0
        } else {
            freed & !(((1u64 << run) - 1) << start)
        };
    }
}

/// The top bit of `SweepState::sweepers`: sweeping is finished for this cycle.
pub(crate) const SWEEP_DRAINED: u32 = 1 << 31;

/// Which cycle's sweep is under way, and who is sweeping.
pub(crate) struct SweepState {
    /// Go's `mheap_.sweepgen`: +2 per collection cycle.
    pub(crate) sweepgen: AtomicU32,
    /// Sweeps in progress (Go's `sweepers`), and the drained bit.
    pub(crate) sweepers: AtomicU32,
    /// Which mark bits this sweep cycle keeps (a [`KeepMarks`]; sticky: the next cycle
    /// is a minor one, and what stays marked is its old generation). Set only while
    /// sweeping is drained.
    pub(crate) keep_marks: AtomicU8,
}

/// Which mark bits a sweep cycle keeps for the cycle after it (sticky mark bits: what stays
/// marked is the next minor cycle's old generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KeepMarks {
    /// None: the next cycle is major.
    None = 0,
    /// Every mark: every object the cycle found live is old (after a major cycle).
    All = 1,
    /// The marks of objects allocated before the last sweep: old ones, and young ones
    /// surviving their second cycle. An object allocated since, found live, loses its
    /// mark and stays young for one more cycle (after a minor cycle: an object's *age*,
    /// kept in its alloc and mark bits: allocated and unmarked between cycles is a young
    /// object that survived one).
    Old = 2,
    /// The marks of the objects the cycle traced (or found marked): every one but those
    /// allocated black while it marked, which stay young (after a minor cycle without
    /// ages: a minor cycle that takes as long as a slice of the mutator's allocation would
    /// otherwise promote everything allocated meanwhile, most of it dead by the next).
    Traced = 3,
}

/// Counts a sweep in progress for as long as it lives.
pub(crate) struct SweepGuard<'a>(&'a SweepState);

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        self.0.sweepers.fetch_sub(1, Ordering::Release);
    }
}

impl SweepState {
    pub(crate) fn new() -> SweepState {
        SweepState {
            sweepgen: AtomicU32::new(0),
            sweepers: AtomicU32::new(0),
            keep_marks: AtomicU8::new(KeepMarks::None as u8),
        }
    }

    /// The current sweep generation (+2 per cycle).
    pub(crate) fn sweepgen(&self) -> u32 {
        self.sweepgen.load(Ordering::Acquire)
    }

    /// Registers a sweep, unless sweeping has been drained for this cycle (Go's
    /// `newSweepLocker` + `tryAcquire`). The `sweepgen` read after this is stable until the
    /// guard drops.
    pub(crate) fn begin_sweep(&self) -> Option<SweepGuard<'_>> {
        let mut s = self.sweepers.load(Ordering::Relaxed);
        loop {
            if s & SWEEP_DRAINED != 0 {
                return None;
            }
            match self.sweepers.compare_exchange_weak(
                s,
                s + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(SweepGuard(self)),
                Err(now) => s = now,
            }
        }
    }

    /// Registers a sweep that must happen now: a span cached before this cycle began,
    /// handed back, which is on no list for anyone else to sweep. Only between
    /// `start_sweep_cycle` and the next `finish_sweep`, when sweeping is open anyway.
    pub(crate) fn begin_sweep_forced(&self) -> SweepGuard<'_> {
        let before = self.sweepers.fetch_add(1, Ordering::Acquire);
        debug_assert_eq!(
            before & SWEEP_DRAINED,
            0,
            "an mcache held a span across a cycle"
        );
        SweepGuard(self)
    }

    /// Claims an unswept span for sweeping: `sg - 2` -> `sg - 1`.
    pub(crate) fn try_acquire(&self, span: SpanRef, sg: u32) -> bool {
        #[cfg(loom_mutant = "sweep_no_cas")]
        {
            span.get()
                .sweepgen
                .store(sg.wrapping_sub(1), Ordering::Relaxed);
            true
        }
        #[cfg(not(loom_mutant = "sweep_no_cas"))]
        span.get()
            .sweepgen
            .compare_exchange(
                sg.wrapping_sub(2),
                sg.wrapping_sub(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Which marks the sweep cycle under way keeps.
    pub(crate) fn keep_marks(&self) -> KeepMarks {
        match self.keep_marks.load(Ordering::Relaxed) {
            0 => KeepMarks::None,
            1 => KeepMarks::All,
            2 => KeepMarks::Old,
            _ => KeepMarks::Traced,
        }
    }
}

/// The mark word a sweep leaves for the next cycle, from the slots' `mark` and (before
/// the sweep) `alloc` words.
#[inline]
fn kept_marks(keep: KeepMarks, mark: u64, alloc: u64, black: u64) -> u64 {
    match keep {
        KeepMarks::None => 0,
        KeepMarks::All => mark,
        KeepMarks::Old => mark & alloc,
        KeepMarks::Traced => mark & !black,
    }
}

/// The slots of word `w` allocated black while the cycle marked: from `black_from` on, and
/// free at the last sweep (`alloc` is that sweep's word).
fn black_slots(black_from: u32, w: usize, alloc: u64) -> u64 {
    if black_from == NOT_BLACK {
        return 0;
    }
    !word_mask(w, black_from as usize) & !alloc
}

impl MCentral {
    /// Sweeps a span the caller claimed (`sweepgen == sg - 1`): mark bits become alloc bits
    /// (and are cleared, but for those this sweep cycle keeps for a minor cycle), the frees
    /// are counted, and the span is filed in its mcentral as swept or, if nothing
    /// in it survived, returned to the page heap. With `preserve` the caller keeps the span
    /// instead (an mcache about to allocate from it). Returns whether the span is still in
    /// use.
    pub(crate) fn sweep_span(&self, cx: SpanCtx<'_>, span: SpanRef, preserve: bool) -> bool {
        let s = span.get();
        let sg = cx.sweep.sweepgen.load(Ordering::Relaxed);
        debug_assert_eq!(s.sweepgen.load(Ordering::Relaxed), sg.wrapping_sub(1));
        let (spc, nelems, words, elemsize) =
            s.info(|i| (i.spc, i.nelems, i.words as usize, i.elemsize));
        let keep = cx.sweep.keep_marks();
        let black_from = s.info(|i| i.black_from.swap(NOT_BLACK, Ordering::Relaxed));
        s.info(|i| cx.specials.sweep(s, i, |slot| s.is_marked(slot)));
        if spc.size_class() == 0 {
            if s.is_marked(0) {
                // A large object's one alloc bit says, as a small one's, that it was
                // allocated before this sweep (its age, with `KeepMarks::Old`).
                s.info(|i| {
                    let alloc = i.alloc_word(0).swap(1, Ordering::Relaxed);
                    let black = black_slots(black_from, 0, alloc) & 1;
                    i.mark_word(0)
                        .store(kept_marks(keep, 1, alloc, black), Ordering::Relaxed);
                });
                if preserve {
                    s.sweepgen.store(sg, Ordering::Release);
                } else {
                    self.push_swept(sg, span, true);
                }
                return true;
            }
            let (fresh, held) = if cx.quarantine.on() {
                let base = s.info(|i| i.base);
                let v = cx
                    .quarantine
                    .sweep_span(sg, base, elemsize, 1, cx.pages.max_heap(), |_| 1);
                if v.fresh == 1 && v.held[0] != 0 {
                    // SAFETY: a dead large object in a span we own (we won its sweepgen):
                    // nothing can reach it. Cleared, it holds no stale pointers.
                    unsafe { std::ptr::write_bytes(base as *mut u8, 0, elemsize) };
                }
                (v.fresh == 1, v.held[0] != 0)
            } else {
                (true, false)
            };
            if fresh {
                let mut c = cx.stats.counters.lock();
                c.large_frees += 1;
                c.large_free_bytes += elemsize as u64;
            }
            if held {
                if preserve {
                    s.sweepgen.store(sg, Ordering::Release);
                } else {
                    self.push_swept(sg, span, true);
                }
                return true;
            }
            s.sweepgen.store(sg, Ordering::Relaxed);
            cx.pages.free_span(span);
            return false;
        }
        // SAFETY: we own the span: we won its sweepgen CAS (or it was on no list at all).
        let (freeindex, was_allocated, was_dirty) =
            unsafe { s.alloc_state(|st| (st.freeindex, st.alloc_count > 0, st.needzero != 0)) };
        let nmarked: usize = s.info(|i| {
            (0..words)
                .map(|w| i.mark_word(w).load(Ordering::Relaxed).count_ones() as usize)
                .sum()
        });
        // Allocated = below freeindex or alloc bit set; dead = allocated, unmarked.
        let dead = |i: &SpanInfo, w: usize| {
            let old = i.alloc_word(w).load(Ordering::Relaxed);
            let mark = i.mark_word(w).load(Ordering::Relaxed);
            (old | word_mask(w, freeindex)) & !mark & word_mask(w, nelems)
        };
        // Checked builds hold dead slots back from reuse for a while (`quarantine.rs`):
        // they stay allocated, and only the slots dead for the first time are frees.
        let verdict = cx.quarantine.on().then(|| {
            s.info(|i| {
                let max_heap = cx.pages.max_heap();
                cx.quarantine
                    .sweep_span(sg, i.base, elemsize, words, max_heap, |w| dead(i, w))
            })
        });
        let held = |w: usize| verdict.as_ref().map_or(0, |v| v.held[w]);
        let nalloc = nmarked
            + (0..words)
                .map(|w| held(w).count_ones() as usize)
                .sum::<usize>();
        // A span that keeps nobody goes back to the page heap dirty; otherwise its dead
        // slots keep their bytes, for the allocation that hands each out again to clear
        // (`AllocState::needzero`, as Go's `mallocgc` does): clearing them here was a
        // second pass over memory the allocation touches anyway (the memset was 5-7% of
        // binary-trees and gcbench). Their pointer bits, if the span writes them, are
        // cleared now. But a slot the quarantine holds stays allocated, and a stale word
        // that marks it would have its old pointers traced: those are cleared now too.
        let keeps = preserve || nalloc > 0;
        let mut freed_any = false;
        // SAFETY: as above.
        let bitmap = keeps && !spc.noscan() && s.ptrmask() == PtrMask::Bitmap;
        // A scan span kept with nothing left in it (swept for a refill to fill), unless it
        // is clean already (cached and handed back unused), is cleared whole instead, by
        // one memset, and needs no clearing per object: faster for a span whose every slot
        // is about to be handed out (criterion's alloc/scan/minigo/32, every span of which
        // dies whole: 3.8 ns this way against 4.8-6.2 ns a slot at a time).
        let whole = keeps && !spc.noscan() && nalloc == 0 && (was_allocated || was_dirty);
        let memory = keeps && !spc.noscan() && verdict.is_some() && !whole;
        if whole {
            let (base, bytes) = s.info(|i| (i.base, i.nelems * i.elemsize));
            // SAFETY: every slot of the span is free (nothing marked, nothing held) and the
            // span is ours: nothing can reach its memory.
            unsafe { std::ptr::write_bytes(base as *mut u8, 0, bytes) };
        }
        s.info(|i| {
            for w in 0..words {
                let mark = i.mark_word(w).load(Ordering::Relaxed);
                let dead_slots = dead(i, w);
                freed_any |= dead_slots != 0;
                if bitmap || memory {
                    clear_slots(cx.bits, bitmap, memory, i, w, dead_slots);
                }
                let alloc = i.alloc_word(w).swap(mark | held(w), Ordering::Relaxed);
                let kept = kept_marks(keep, mark, alloc, black_slots(black_from, w, alloc));
                if kept != mark {
                    i.mark_word(w).store(kept, Ordering::Relaxed);
                }
            }
        });
        // Every slot below the first free one is allocated: start `freeindex` there (Go
        // starts at 0 and skips them one word at a time), which also tells conservative
        // lookups that a full span needs no alloc-bit load.
        let first_free = s.info(|i| {
            (0..words)
                .find_map(|w| {
                    let a = i.alloc_word(w).load(Ordering::Relaxed);
                    (a != !0).then(|| w * 64 + a.trailing_ones() as usize)
                })
                .unwrap_or(nelems)
                .min(nelems)
        });
        // SAFETY: as above.
        let nfreed = unsafe {
            s.alloc_state(|st| {
                debug_assert!(st.alloc_count >= nalloc, "marked a free slot");
                debug_assert_eq!(
                    st.flushed as usize, st.alloc_count,
                    "sweeping unflushed allocations"
                );
                let nfreed = verdict
                    .as_ref()
                    .map_or(st.alloc_count - nalloc, |v| v.fresh);
                st.alloc_count = nalloc;
                st.flushed = nalloc as u32;
                st.freeindex = first_free;
                nfreed
            })
        };
        if whole {
            // SAFETY: as above.
            unsafe { s.clear_needzero() };
        } else if keeps && freed_any {
            // SAFETY: as above.
            unsafe { s.set_needzero() };
        }
        if nalloc == 0 && elemsize <= 64 * 8 {
            // No object left and every bit clear: the next layout may be uniform.
            s.ptrmask.set(PtrMask::Empty);
        }
        s.publish_freeindex(first_free);
        // SAFETY: as above.
        unsafe { s.reset_alloc_cache() };
        if nfreed > 0 {
            cx.stats.counters.lock().small_frees[spc.size_class() as usize] += nfreed as u64;
        }
        if preserve {
            s.sweepgen.store(sg, Ordering::Release);
            return true;
        }
        if nalloc == 0 {
            s.sweepgen.store(sg, Ordering::Relaxed);
            cx.pages.free_span(span);
            return false;
        }
        self.push_swept(sg, span, nalloc == nelems);
        true
    }
}
