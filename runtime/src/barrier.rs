//! The runtime's write barrier: pointer stores from typed handles, objects just built,
//! and values that move where the collector has already looked.
//!
//! `GcCell::set` and `GcSlice::set` store through [`write`]: one test of the process-wide
//! "some heap's barrier is on" count, and when it is set, the running goroutine's P's
//! mutator state does the store with its barrier (Go: the compiled test of
//! `writeBarrier.enabled`, then `gcWriteBarrier` on `getg().m.p`'s buffer). So a store
//! costs nothing extra between cycles, and each heap's own phase decides during one. (A
//! generational heap keeps the count up for its whole life: its stores dirty cards.)
//!
//! What a store needs, while a cycle marks, is the deletion half of Go's hybrid barrier:
//! the overwritten pointer is recorded. Its insertion half (shade the new pointer while
//! the storing goroutine's stack is grey) never applies here: a goroutine's stack is
//! scanned before it resumes once a cycle marks (`roots.rs`), so a running goroutine's
//! stack is always black. The same reasoning covers the root areas values move through
//! outside heap objects, each scanned once a cycle: a value *leaving* one must be shaded
//! ([`shade_value`], [`shade_words`]) — taken from a channel's buffer or from a parked
//! sender's stack (which may not be scanned yet), or overwritten in a global handle —
//! while a value *entering* one comes from a running goroutine's black stack and needs
//! nothing: what it reaches was reachable when marking began, or is new and black.

use minigo_alloc_core::sync::store_word;
use std::sync::Mutex;

use minigo_gc::{any_barrier_on, Collector, GcPhase, MutatorState};

use crate::preempt::NoPreemptHere;
use crate::sched::{try_current, try_current_state, Sched};

/// Stores `value` into the pointer word `slot` of a heap object, with the barrier of the
/// running goroutine's heap while it marks.
///
/// Off a goroutine holding a P the store is plain when it may be (an arena's object, or
/// any object while no heap's barrier is on), and panics when the object is a run's and
/// its barrier is on ([`refuse_unbarriered_store`]).
///
/// # Safety
/// `slot` is an aligned pointer word of a live heap object; `value` is null or a heap
/// object of the same heap.
///
/// Inlined into the caller where the M's fast-path word can be reached inline
/// (`tls.rs`): between cycles of a generational heap (every store dirties a card) the P's
/// state comes from one `%fs`-relative load under the M's busy word, which keeps the
/// preemption handler out from the test of the phase to the store (a goroutine stopped
/// there while a cycle started would store without the barrier the cycle needs), and the
/// card mark and the store follow with no call. While its heap marks, and off a goroutine,
/// [`write_slow`] decides again under the thread's lock count. Elsewhere,
/// [`write_outlined`].
#[inline(always)]
pub(crate) unsafe fn write(slot: *mut usize, value: usize) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom)))]
    if let Some(off) = crate::tls::offset() {
        // SAFETY: `enter` and `leave` pair on this thread, nothing between them parks; the
        // state is non-null only while a goroutine runs on this M holding the P whose
        // state it is, and the busy word keeps the handler from giving the P away, or
        // stopping the goroutine for a cycle's start, between the test of the barrier and
        // the store. The stores: the caller's contract, the slot is of this goroutine's
        // heap when the state is used.
        let stored = unsafe {
            let st = crate::tls::enter(off);
            let stored = if !any_barrier_on() {
                store_word(slot as usize, value);
                true
            } else {
                match st.as_mut() {
                    Some(st) if !st.marking() => {
                        st.write(slot, value);
                        true
                    }
                    _ => false,
                }
            };
            crate::tls::leave(off);
            stored
        };
        if !stored {
            // SAFETY: the caller's contract.
            unsafe { write_slow(slot, value) };
        }
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { write_outlined(slot, value) }
}

/// [`write`] where the M's fast-path word cannot be reached inline: one test of the
/// barrier count, then the state from one thread-local, in one call. Never preempted
/// asynchronously between the test and the store: the function lives in the
/// `minigo_nopreempt` section, which the preemption handler treats as runtime code
/// (`preempt.rs`); everything it runs is inlined into it (the test and the store are
/// `#[inline(always)]`), but for `write_slow`, which decides again under the thread's
/// lock count.
///
/// # Safety
/// As for [`write`].
#[inline(never)]
#[link_section = "minigo_nopreempt"]
pub(crate) unsafe fn write_outlined(slot: *mut usize, value: usize) {
    if any_barrier_on() {
        let st = crate::tls::state();
        // SAFETY: non-null only while a goroutine runs on this M holding the P whose state
        // this is; nothing here can park or be preempted asynchronously (this section)
        // before the store, so the P stays ours.
        match unsafe { st.as_mut() } {
            // Its heap does not mark: `write` only dirties a card and stores, inlined.
            // SAFETY: the caller's contract; the slot is of the running goroutine's heap.
            Some(st) if !st.marking() => unsafe { st.write(slot, value) },
            // SAFETY: the caller's contract.
            _ => unsafe { write_slow(slot, value) },
        }
    } else {
        // SAFETY: the caller's contract.
        unsafe { store_word(slot as usize, value) };
    }
}

/// # Safety
/// As for [`write`].
#[inline(never)]
unsafe fn write_slow(slot: *mut usize, value: usize) {
    let _np = NoPreemptHere::new();
    match try_current_state() {
        // SAFETY: the caller's contract; the state is this goroutine's P's, not held
        // across a park.
        Some(st) => unsafe { st.write(slot, value) },
        None => {
            refuse_unbarriered_store(slot as usize);
            // SAFETY: the caller's contract.
            unsafe { store_word(slot as usize, value) }
        }
    }
}

/// The heaps of the runs under way (their collectors' addresses), for
/// [`refuse_unbarriered_store`].
static RUNNING: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// While the guard lives, `collector`'s heap is a run's (`Runtime::run`).
pub(crate) struct RunningHeap(usize);

impl RunningHeap {
    pub(crate) fn enter(collector: &Collector) -> RunningHeap {
        let key = collector as *const Collector as usize;
        running().push(key);
        RunningHeap(key)
    }
}

impl Drop for RunningHeap {
    fn drop(&mut self) {
        let mut r = running();
        let i = r.iter().position(|&k| k == self.0).expect("entered");
        r.swap_remove(i);
    }
}

fn running() -> std::sync::MutexGuard<'static, Vec<usize>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Panics, as [`refuse_unbarriered_store`], if this thread runs no goroutine with a P and
/// `slot` is in a running runtime's heap, whether or not the barrier is on: for a store of
/// several words that must not stop halfway (`GcSlice::set` under its seqlock), when the
/// barrier could come on between two of them.
pub(crate) fn refuse_store_off_goroutine(slot: usize) {
    if try_current_state().is_none() {
        refuse_unbarriered_store(slot);
    }
}

/// Panics if `slot` is in a running runtime's heap: a store from a thread that runs none
/// of its goroutines with a P (a scoped thread holding a handle, or code inside
/// `blocking`) would skip the barrier that heap's cycles need, and the object stored could
/// be freed while reachable. (An arena's stores come here too, from any thread, and go
/// ahead: nothing marks an arena during a mutation.)
fn refuse_unbarriered_store(slot: usize) {
    let in_run = running().iter().any(|&c| {
        // SAFETY: a collector is listed only while its run is under way (`RunningHeap`),
        // and the run holds the collector.
        unsafe { &*(c as *const Collector) }.heap().contains(slot)
    });
    assert!(
        !in_run,
        "minigo: a store into a run's object ({slot:#x}) from a thread that runs none of its \
         goroutines (a scoped thread, or code inside `blocking`): it would skip the write \
         barrier"
    );
}

/// Shades the words of `v` (conservatively) if `sched`'s heap is marking: for a value a
/// channel takes out of its buffer or from a parked sender.
#[inline]
pub(crate) fn shade_value<T>(sched: &Sched, v: &T) {
    if std::mem::size_of::<T>() < 8 {
        return;
    }
    let lo = v as *const T as usize;
    // SAFETY: `v`'s own bytes.
    unsafe { shade_range(sched, lo, lo + std::mem::size_of::<T>()) };
}

/// Shades the words of `[lo, hi)` if `sched`'s heap is marking, through the running
/// goroutine's P when it is one of `sched`'s, else through the collector.
///
/// # Safety
/// The range is readable memory.
pub(crate) unsafe fn shade_range(sched: &Sched, lo: usize, hi: usize) {
    if sched.collector.phase() == GcPhase::Off {
        return;
    }
    let _np = NoPreemptHere::new();
    match own_state(sched) {
        // SAFETY: the caller's contract.
        Some(st) => unsafe { st.shade_conservative(lo, hi) },
        // SAFETY: the caller's contract.
        None => unsafe { sched.collector.shade_conservative(lo, hi) },
    }
}

/// Shades `words` (pointers a global handle gave up) if `sched`'s heap is marking.
pub(crate) fn shade_words(sched: &Sched, words: &[usize]) {
    if sched.collector.phase() == GcPhase::Off {
        return;
    }
    let _np = NoPreemptHere::new();
    match own_state(sched) {
        Some(st) => st.shade_words(words.iter().copied()),
        None => sched.collector.shade_words(words.iter().copied()),
    }
}

/// The running goroutine's P's mutator state, if the goroutine is one of `sched`'s (else
/// the caller shades through the collector). Not to be held across a park.
fn own_state<'a>(sched: &Sched) -> Option<&'a mut MutatorState> {
    let mine = try_current().is_some_and(|c| std::ptr::eq(c.sched(), sched));
    try_current_state().filter(|_| mine)
}
