//! The runtime's write barrier: pointer stores from typed handles, objects just built,
//! and values that move where the collector has already looked.
//!
//! `GcCell::set` and `GcSlice::set` store through [`write`]: one test of the process-wide
//! "some heap's barrier is on" count, and when it is set, the running goroutine's P's
//! mutator state does the store with its barrier (Go: the compiled test of
//! `writeBarrier.enabled`, then `gcWriteBarrier` on `getg().m.p`'s buffer). So a store
//! costs nothing extra between cycles, and each heap's own phase decides during one.
//!
//! Values also move outside heap objects, between places a concurrent cycle scans once:
//! a channel's buffer, a parked goroutine's stack (a channel hands a value straight to a
//! waiting receiver), a global handle, a new goroutine's closure. Go puts write barriers
//! on those moves too (`sendDirect`, `typedmemmove` into the buffer); here the value's
//! words are shaded ([`shade_value`]) while the heap marks, whichever way it moves.

use minigo_alloc_core::sync::store_word;
use minigo_alloc_core::Layout;
use minigo_gc::{any_barrier_on, GcPhase};

use crate::sched::{try_current, try_current_state, Sched};

/// Stores `value` into the pointer word `slot` of a heap object, with the barrier of the
/// running goroutine's heap while it marks.
///
/// Off a goroutine (a thread of the embedding program, which the rules say holds no `Gc`)
/// the store is plain.
///
/// # Safety
/// `slot` is an aligned pointer word of a live heap object; `value` is null or a heap
/// object of the same heap.
#[inline(always)]
pub(crate) unsafe fn write(slot: *mut usize, value: usize) {
    if any_barrier_on() {
        // SAFETY: the caller's contract.
        unsafe { write_slow(slot, value) };
    } else {
        // SAFETY: the caller's contract.
        unsafe { store_word(slot as usize, value) };
    }
}

/// # Safety
/// As for [`write`].
#[inline(never)]
unsafe fn write_slow(slot: *mut usize, value: usize) {
    match try_current_state() {
        // SAFETY: the caller's contract; the state is this goroutine's P's, not held
        // across a park.
        Some(st) => unsafe { st.write(slot, value) },
        // SAFETY: the caller's contract.
        None => unsafe { store_word(slot as usize, value) },
    }
}

/// After `Gc::new` wrote its value into a fresh (black) object: shades the pointers it
/// wrote, while the heap marks (the insertion half of the barrier for its initialising
/// stores).
pub(crate) fn shade_new_object(obj: usize, layout: &Layout) {
    if !any_barrier_on() || !layout.has_pointers() {
        return;
    }
    if let Some(st) = try_current_state() {
        if st.marking() {
            let words = (0..layout.size() / 8)
                .filter(|&i| layout.is_pointer(i))
                // SAFETY: a pointer word of the object just written.
                .map(|i| unsafe { minigo_alloc_core::sync::load_word(obj + i * 8) });
            st.shade_words(words.collect::<Vec<_>>());
        }
    }
}

/// Shades the words of `v` (conservatively) if `sched`'s heap is marking: for a value a
/// channel moves.
#[inline]
pub(crate) fn shade_value<T>(sched: &Sched, v: &T) {
    if std::mem::size_of::<T>() < 8 || sched.collector.phase() == GcPhase::Off {
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
    let mine = try_current().is_some_and(|c| std::ptr::eq(c.sched(), sched));
    match try_current_state().filter(|_| mine) {
        // SAFETY: the caller's contract.
        Some(st) => unsafe { st.shade_conservative(lo, hi) },
        // SAFETY: the caller's contract.
        None => unsafe { sched.collector.shade_conservative(lo, hi) },
    }
}

/// Shades `words` (pointers a global handle gave up or took) if `sched`'s heap is marking.
pub(crate) fn shade_words(sched: &Sched, words: &[usize]) {
    if sched.collector.phase() == GcPhase::Off {
        return;
    }
    let mine = try_current().is_some_and(|c| std::ptr::eq(c.sched(), sched));
    match try_current_state().filter(|_| mine) {
        Some(st) => st.shade_words(words.iter().copied()),
        None => sched.collector.shade_words(words.iter().copied()),
    }
}
