//! A mutator's side of the collector (the GC fields of Go's `p`): its mcache, its
//! write-barrier buffer, its mark work buffer (gcWork) and its assist credit. The runtime
//! has one per P; a standalone [`Mutator`](crate::Mutator) has one. Everything a mutator
//! does for the collector goes through it, so several heaps in one process never mix:
//!
//! - **The write barrier** ([`MutatorState::write`]): while its heap marks, a pointer store
//!   records the pointer it overwrites in the buffer. A full buffer is shaded at once;
//!   mark termination shades what is left, with the world stopped. This is Go's hybrid
//!   barrier: its deletion half (Yuasa) keeps everything reachable when marking began
//!   alive; its insertion half (Dijkstra) shades the new value only while the storing
//!   mutator's stack is grey, and here no mutator ever stores with a grey stack — the
//!   runtime scans a goroutine's stack before it resumes it once a cycle marks, and a
//!   standalone heap's roots are traced when the cycle starts. So the insertion half has
//!   nothing to do, and a store records one word, not two.
//! - **Assists** ([`MutatorState::assist`]): allocating while the heap marks runs up a debt
//!   of scan work, paid by stealing credit the background workers earned, or by marking.
//! - **Shading** roots the collector cannot see otherwise: an object taken out of a weak
//!   table ([`MutatorState::shade`]), a value moved between goroutines, a stack scanned
//!   before its goroutine resumes ([`MutatorState::shade_conservative`]).
//!
//! - **The card mark** (generational mode): every pointer store also dirties the card of
//!   its slot, so that a minor cycle finds the old objects that may now point at young
//!   ones (`alloc-core/src/cards.rs`).
//!
//! The state knows the cycle's [`MarkQueue`] while its heap marks: the collector gives it
//! at the start of marking and takes it back at mark termination, both with the mutator
//! stopped. So "is the barrier on?" is one load of the state's own field.

use std::ptr::NonNull;
use std::time::Instant;

use minigo_alloc_core::sync::{load_word, store_word, Arc};
use minigo_alloc_core::{CardMarker, Layout, MCache};

use crate::mark::{GcWork, MarkQueue};
use crate::wbbuf::WbBuf;
use crate::Collector;

/// A mutator's state for one heap.
pub struct MutatorState {
    pub(crate) cache: MCache,
    /// The cycle's queue while the heap marks.
    pub(crate) queue: Option<Arc<MarkQueue>>,
    wb: WbBuf,
    pub(crate) gcw: GcWork,
    /// Go's `gcAssistBytes`: bytes this mutator may still allocate during marking before it
    /// owes scan work (negative: in debt).
    pub(crate) credit: i64,
    /// The heap's card table, in generational mode.
    cards: Option<CardMarker>,
    collector: Arc<Collector>,
}

impl MutatorState {
    /// A state for a new mutator of `collector`'s heap; a cycle marking now is seen.
    ///
    /// # Safety
    /// No cycle of the heap starts or ends while this runs, and from now on the state is
    /// among the `states` of every [`Collector::start_cycle`] and
    /// [`Collector::mark_termination`] of the heap (see their contract).
    ///
    /// ```compile_fail,E0133
    /// # use minigo_gc::{GcConfig, Heap, MutatorState};
    /// let heap = Heap::new(GcConfig::default()).unwrap();
    /// let _second = MutatorState::new(heap.collector());
    /// ```
    pub unsafe fn new(collector: &Arc<Collector>) -> MutatorState {
        let mut cache = MCache::new(collector.heap());
        cache.set_profile_rate(collector.config.mem_profile_rate);
        MutatorState {
            cache,
            queue: collector.marking_queue(),
            wb: WbBuf::default(),
            gcw: GcWork::new(),
            credit: 0,
            cards: collector
                .config
                .generational
                .then(|| collector.heap().card_marker()),
            collector: collector.clone(),
        }
    }

    /// A major cycle's end or a minor cycle's start moved the card table to a new epoch
    /// (world stopped): the barrier stores the new one from now on.
    pub(crate) fn set_card_marker(&mut self, marker: CardMarker) {
        if self.cards.is_some() {
            self.cards = Some(marker);
        }
    }

    /// The collector of this state's heap.
    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }

    /// True while the heap marks: the write barrier is on and allocation is black.
    #[inline(always)]
    pub fn marking(&self) -> bool {
        self.queue.is_some()
    }

    /// The allocation fast path: `None` when it needs the slow path
    /// ([`crate::alloc_slow`]). It counts no locks
    /// ([`minigo_alloc_core::MCache::alloc_fast`]): for the standalone heap, and for the
    /// runtime's fast path inlined into goroutine code, which keeps preemption out itself.
    /// With `ZERO` false, a pointer-free object may hold old bytes, for a caller that
    /// writes over all of them.
    #[inline(always)]
    pub fn alloc_fast<const ZERO: bool>(&mut self, layout: &Layout) -> Option<NonNull<u8>> {
        self.cache.alloc_fast::<ZERO>(layout)
    }

    /// [`MutatorState::alloc_fast`] for a caller that asynchronous preemption never stops
    /// midway, whose calls out of line must then hold the thread's lock count up
    /// ([`minigo_alloc_core::MCache::alloc_fast_nopreempt`]): the runtime's. With `ZERO`
    /// false, a pointer-free object may hold old bytes, for a caller that writes over all
    /// of them.
    #[inline(always)]
    pub fn alloc_fast_nopreempt<const ZERO: bool>(
        &mut self,
        layout: &Layout,
    ) -> Option<NonNull<u8>> {
        self.cache.alloc_fast_nopreempt::<ZERO>(layout)
    }

    /// Stores a pointer into a heap object: the one function every such store goes through.
    /// While the heap marks, the overwritten pointer is recorded for shading first; in
    /// generational mode the slot's card is dirtied. The store is atomic (relaxed, word-sized: a plain `mov` on x86-64), so a marker or a
    /// goroutine on another thread may read the word meanwhile.
    ///
    /// # Safety
    /// `slot` is an aligned word of a live heap object of this state's heap that its layout
    /// calls a pointer. `value` may be any word: every reader of pointer words (the
    /// barrier's shade, the markers) looks it up with `find_object` and treats it as a
    /// pointer only if it lies inside an allocated object (which it then keeps alive).
    /// Precise embedders store null, a heap object of this heap, or a word outside every
    /// heap; verify mode reports any other word inside the heap as a dangling pointer.
    #[inline(always)]
    pub unsafe fn write(&mut self, slot: *mut usize, value: usize) {
        if self.queue.is_some() {
            // SAFETY: the caller's contract.
            unsafe { self.write_barrier(slot as usize) };
        }
        if let Some(cards) = self.cards {
            // SAFETY: the state's collector keeps the heap, and so its card table, alive.
            unsafe { cards.mark(slot as usize) };
        }
        // SAFETY: the caller's contract: an aligned word of a live object.
        unsafe { store_word(slot as usize, value) };
    }

    /// Stores a pointer into an object this mutator has just allocated, with no safepoint
    /// (allocation) since: a plain store, no barrier and no card. While a cycle marks, the
    /// object is black and the value is reachable from what the cycle's snapshot holds or
    /// is new (black); between cycles the object is young, and the first cycle that finds
    /// it reachable traces it, stores and all. (Go's stores into a new object skip the
    /// barrier the same way.)
    ///
    /// # Safety
    /// As for [`MutatorState::write`], and the object was allocated through this state
    /// with no allocation since.
    #[inline(always)]
    pub unsafe fn init(&mut self, slot: *mut usize, value: usize) {
        // SAFETY: the caller's contract: an aligned word of a live object.
        unsafe { store_word(slot as usize, value) };
    }

    /// Go's `gcWriteBarrier`: records the pointer a store to `slot` overwrites (the new
    /// value needs nothing: see the module comment).
    ///
    /// # Safety
    /// As for [`MutatorState::write`].
    #[inline(never)]
    unsafe fn write_barrier(&mut self, slot: usize) {
        // SAFETY: the caller's contract: an aligned word of a live object.
        let old = unsafe { load_word(slot) };
        // The seeded bug of the barrier's loom model: a barrier that records nothing.
        #[cfg(loom_mutant = "barrier_no_old")]
        let old = old & 0;
        if self.wb.put(old) {
            self.flush_wb();
        }
    }

    /// Shades every pointer the write barrier recorded (Go's `wbBufFlush`).
    pub fn flush_wb(&mut self) {
        match &self.queue {
            Some(q) => {
                self.gcw.shade_all(q, self.wb.take());
            }
            None => self.wb.clear(),
        }
    }

    /// True when the barrier buffer holds pointers not yet shaded.
    pub fn wb_pending(&self) -> bool {
        !self.wb.is_empty()
    }

    /// Shades the object holding `addr` if the heap is marking (a read barrier): for an
    /// object reached through a reference the collector does not trace, such as a weak
    /// table's entry, which the mutator is about to keep. Without it, an object found in a
    /// weak table while marking runs could be freed under the mutator.
    #[inline]
    pub fn shade(&mut self, addr: usize) {
        if self.queue.is_some() {
            self.shade_words(std::iter::once(addr));
        }
    }

    /// Shades, if the heap is marking, every word of `words` that points into an allocated
    /// object: a value moved somewhere already scanned (a channel buffer, another
    /// goroutine's stack), or a stack scanned before its goroutine resumes.
    pub fn shade_words(&mut self, words: impl IntoIterator<Item = usize>) {
        #[cfg(loom_mutant = "shade_noop")]
        return;
        #[allow(unreachable_code)]
        if let Some(q) = &self.queue {
            self.gcw.shade_all(q, words.into_iter());
        }
    }

    /// [`MutatorState::shade_words`] for the words of a root area scanned while marking (a
    /// goroutine's stack, scanned by its M before it resumes): counted as roots, which the
    /// pacer adds to the next goal.
    pub fn shade_root_words(&mut self, words: Vec<usize>) {
        if let Some(q) = &self.queue {
            q.add_root_bytes(8 * words.len() as u64);
        }
        self.shade_words(words);
    }

    /// [`MutatorState::shade_words`] for the words of `[start, end)`.
    ///
    /// # Safety
    /// The range is readable memory (read as `usize` words, aligned down).
    pub unsafe fn shade_conservative(&mut self, start: usize, end: usize) {
        if self.queue.is_some() {
            let mut words = Vec::new();
            // SAFETY: the caller's contract.
            unsafe {
                crate::roots::Tracer::new(&mut |w, _| words.push(w)).scan_conservative(start, end)
            };
            self.shade_words(words);
        }
    }

    /// Pays for what this mutator allocated since it last asked (Go's `gcAssistAlloc`):
    /// while the heap marks, the bytes it took from the heap are debited from its credit;
    /// a debt is paid first with credit the background workers earned, then by marking,
    /// at least [`OVER_ASSIST_WORK`](crate::pacer::OVER_ASSIST_WORK) and at most
    /// [`MAX_ASSIST_WORK`](crate::pacer::MAX_ASSIST_WORK) at a time and for
    /// [`MAX_ASSIST_TIME`](crate::pacer::MAX_ASSIST_TIME) at most (the rest stays owed).
    /// Not while the GC CPU limiter is on.
    pub fn assist(&mut self) {
        let reserved = self.cache.take_reserved();
        let Some(q) = self.queue.clone() else {
            return;
        };
        self.credit -= reserved as i64;
        if self.credit >= 0 {
            return;
        }
        let c = &self.collector;
        if c.limiter_on() {
            self.credit = 0;
            return;
        }
        let ratio = c.assist_work_per_byte(&q);
        let owed = ((-self.credit) as f64 * ratio) as u64;
        let want = owed.clamp(
            crate::pacer::OVER_ASSIST_WORK,
            crate::pacer::MAX_ASSIST_WORK,
        );
        let stolen = q.steal_credit(want);
        self.credit += (stolen as f64 / ratio) as i64;
        let want = want - stolen;
        if want == 0 {
            return;
        }
        let t = Instant::now();
        let deadline = t + crate::pacer::MAX_ASSIST_TIME;
        let (drained, done) = self.gcw.drain_until(&q, want, Some(deadline));
        self.credit += (done as f64 / ratio) as i64;
        c.note_assist(&q, t.elapsed());
        if drained == crate::mark::Drained::Empty && self.credit < 0 {
            // Nothing left to mark: the cycle is about to end, and the debt with it.
            self.credit = 0;
        }
    }

    /// Reports every allocation made so far to the heap's statistics.
    pub fn flush_stats(&mut self) {
        self.cache.flush_stats();
    }
}

impl Drop for MutatorState {
    fn drop(&mut self) {
        // What the barrier recorded may be the only trace of a pointer stored into a
        // black object: it must be shaded even though this mutator is going away.
        self.flush_wb();
    }
}
