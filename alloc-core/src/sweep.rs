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
//! A cycle, as the collector drives it:
//! 1. with the world stopped, [`MHeap::finish_sweep`], then mark;
//! 2. [`MHeap::start_sweep_cycle`] (sweepgen += 2): every span is now unswept, and sweeping
//!    is open again;
//! 3. every mcache [`release_all`](crate::MCache::release_all)s before it allocates again;
//! 4. spans are swept lazily by refilling mcaches and by [`MHeap::sweep_one`] callers (a
//!    background sweeper), until the next cycle's step 1.

use crate::heap::MHeap;
use crate::heapbits::HeapBits;
use crate::sizeclass::NUM_SPAN_CLASSES;
use crate::span::{PtrMask, SpanInfo, SpanRef};
use crate::sync::{spin_loop, Ordering};

/// The bits of slots `[64w, 64w + 64)` that lie below `limit`.
fn word_mask(w: usize, limit: usize) -> u64 {
    match limit.saturating_sub(w * 64) {
        0 => 0,
        n if n >= 64 => !0,
        n => (1u64 << n) - 1,
    }
}

/// Clears the slots named by `freed` (bit `b` = slot `64w + b`) and their pointer bits, a
/// run at a time, keeping the invariant that free slots are zero with clear bits.
fn clear_slots(bits: &HeapBits, clear_bits: bool, span: &SpanInfo, w: usize, mut freed: u64) {
    while freed != 0 {
        let start = freed.trailing_zeros() as usize;
        let run = (!(freed >> start)).trailing_zeros() as usize;
        let addr = span.base + (w * 64 + start) * span.elemsize;
        // SAFETY: these slots were just found dead (allocated, unmarked) in a span the
        // sweeper owns; nothing can reach them.
        unsafe { std::ptr::write_bytes(addr as *mut u8, 0, run * span.elemsize) };
        if clear_bits {
            bits.clear(addr, run * span.elemsize / 8);
        }
        freed = if start + run >= 64 {
            0
        } else {
            freed & !(((1u64 << run) - 1) << start)
        };
    }
}

/// The top bit of `MHeap::sweepers`: sweeping is finished for this cycle.
pub(crate) const SWEEP_DRAINED: u32 = 1 << 31;

/// Counts a sweep in progress for as long as it lives.
pub(crate) struct SweepGuard<'a>(&'a MHeap);

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        self.0.sweepers.fetch_sub(1, Ordering::Release);
    }
}

impl MHeap {
    /// The current sweep generation (+2 per cycle).
    pub fn sweepgen(&self) -> u32 {
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
    pub(crate) fn try_acquire_for_sweep(&self, span: SpanRef, sg: u32) -> bool {
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

    /// Sweeps a span the caller claimed (`sweepgen == sg - 1`): mark bits become alloc bits,
    /// the frees are counted, and the span is filed in its mcentral as swept or, if nothing
    /// in it survived, returned to the page heap. With `preserve` the caller keeps the span
    /// instead (an mcache about to allocate from it). Returns whether the span is still in
    /// use.
    pub(crate) fn sweep_span(&self, span: SpanRef, preserve: bool) -> bool {
        let s = span.get();
        let sg = self.sweepgen.load(Ordering::Relaxed);
        debug_assert_eq!(s.sweepgen.load(Ordering::Relaxed), sg.wrapping_sub(1));
        let (spc, nelems, words, elemsize) =
            s.info(|i| (i.spc, i.nelems, i.words as usize, i.elemsize));
        if spc.size_class() == 0 {
            if s.is_marked(0) {
                s.info(|i| i.mark_word(0).store(0, Ordering::Relaxed));
                if preserve {
                    s.sweepgen.store(sg, Ordering::Release);
                } else {
                    self.central(spc).push_swept(self, sg, span, true);
                }
                return true;
            }
            let mut c = self.counters.lock();
            c.large_frees += 1;
            c.large_free_bytes += elemsize as u64;
            drop(c);
            s.sweepgen.store(sg, Ordering::Relaxed);
            self.free_span(span);
            return false;
        }
        // SAFETY: we own the span: we won its sweepgen CAS (or it was on no list at all).
        let freeindex = unsafe { s.alloc_state(|st| st.freeindex) };
        let nalloc: usize = s.info(|i| {
            (0..words)
                .map(|w| i.mark_word(w).load(Ordering::Relaxed).count_ones() as usize)
                .sum()
        });
        // A span that keeps nobody goes back to the page heap dirty; otherwise its freed
        // slots are cleared now so that allocation never has to.
        let keeps = preserve || nalloc > 0;
        // SAFETY: as above.
        let bitmap = !spc.noscan() && unsafe { s.alloc_state(|st| st.ptrmask) } == PtrMask::Bitmap;
        s.info(|i| {
            for w in 0..words {
                let mark = i.mark_word(w).load(Ordering::Relaxed);
                if keeps {
                    // Allocated = below freeindex or alloc bit set; freed = allocated, unmarked.
                    let old = i.alloc_word(w).load(Ordering::Relaxed);
                    let freed = (old | word_mask(w, freeindex)) & !mark & word_mask(w, nelems);
                    clear_slots(&self.bits, bitmap, i, w, freed);
                }
                i.alloc_word(w).store(mark, Ordering::Relaxed);
                i.mark_word(w).store(0, Ordering::Relaxed);
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
                if nalloc == 0 && elemsize <= 64 * 8 {
                    // No object left and every bit clear: the next layout may be uniform.
                    st.ptrmask = PtrMask::Empty;
                }
                debug_assert!(st.alloc_count >= nalloc, "marked a free slot");
                debug_assert_eq!(st.flushed, st.alloc_count, "sweeping unflushed allocations");
                let nfreed = st.alloc_count - nalloc;
                st.alloc_count = nalloc;
                st.flushed = nalloc;
                st.freeindex = first_free;
                nfreed
            })
        };
        s.publish_freeindex(first_free);
        // SAFETY: as above.
        unsafe { s.reset_alloc_cache() };
        if nfreed > 0 {
            self.counters.lock().small_frees[spc.size_class() as usize] += nfreed as u64;
        }
        if preserve {
            s.sweepgen.store(sg, Ordering::Release);
            return true;
        }
        if nalloc == 0 {
            s.sweepgen.store(sg, Ordering::Relaxed);
            self.free_span(span);
            return false;
        }
        self.central(spc)
            .push_swept(self, sg, span, nalloc == nelems);
        true
    }

    /// Sweeps one unswept span, if any is left; false when there was none (Go's
    /// `sweepone`). This is the background sweeper's step.
    pub fn sweep_one(&self) -> bool {
        let Some(_sweeping) = self.begin_sweep() else {
            return false;
        };
        let sg = self.sweepgen.load(Ordering::Acquire);
        let start = self.sweep_cursor.load(Ordering::Relaxed);
        for k in 0..NUM_SPAN_CLASSES {
            let class = (start + k) % NUM_SPAN_CLASSES;
            if !self.class_used(class) {
                continue;
            }
            while let Some(span) = self.central[class].pop_unswept(sg) {
                if self.try_acquire_for_sweep(span, sg) {
                    self.sweep_span(span, false);
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
        self.sweepers.fetch_or(SWEEP_DRAINED, Ordering::AcqRel);
        #[cfg(not(loom_mutant = "finish_sweep_no_wait"))]
        while self.sweepers.load(Ordering::Acquire) != SWEEP_DRAINED {
            spin_loop();
        }
    }

    /// True when no span waits for sweeping and no sweep is in progress.
    pub fn sweep_done(&self) -> bool {
        let sg = self.sweepgen.load(Ordering::Acquire);
        self.sweepers.load(Ordering::Acquire) & !SWEEP_DRAINED == 0
            && (0..NUM_SPAN_CLASSES).all(|c| !self.class_used(c) || self.central[c].all_swept(sg))
    }

    /// Ends a collection's mark phase: every span becomes unswept, to be swept against the
    /// mark bits just set (Go's `gcSweep`: `sweepgen += 2`), and sweeping opens again.
    ///
    /// Call with the world stopped, after [`MHeap::finish_sweep`] and marking. (Should
    /// sweeping still be open, this finishes it first; but marks set meanwhile may have been
    /// swept away: finish first.) Every mcache must
    /// [`release_all`](crate::MCache::release_all) before it allocates again.
    pub fn start_sweep_cycle(&self) {
        self.finish_sweep();
        self.sweep_cursor.store(0, Ordering::Relaxed);
        self.sweepgen.fetch_add(2, Ordering::AcqRel);
        // Reopen, keeping the count of any sweeper still registered (none, unless a bug).
        self.sweepers.fetch_and(!SWEEP_DRAINED, Ordering::Release);
    }

    /// Spans per mcentral list for span class `spc`: `[partial swept, partial unswept,
    /// full swept, full unswept]`.
    pub fn central_counts(&self, spc: crate::SpanClass) -> [usize; 4] {
        self.central(spc).counts(self.sweepgen())
    }
}
