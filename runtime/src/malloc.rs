//! Allocation from goroutines, and the cycles it starts (Go's `mallocgc` and `gcStart`
//! for this runtime), and `gc()`.
//!
//! The fast path is the running goroutine's P's mcache. Past it, the collector's one slow
//! path ([`minigo_gc::alloc_slow`]) runs with this runtime's context: a safepoint; the
//! pacer's trigger starting a cycle (the goroutine sweeps what the last cycle left, then
//! stops the world briefly to start marking; in stop-the-world mode the whole cycle runs
//! in that stop); the refill and its assist; and before out-of-memory, a whole cycle
//! waited for. The P is looked up afresh after every park.

use std::ptr::NonNull;

use minigo_alloc_core::{AllocError, Layout};
use minigo_gc::{alloc_slow, GcPhase, MutatorContext, MutatorState};

use crate::preempt::NoPreempt;
use crate::sched::{
    alloc_fast, current, current_gptr, safepoint, try_current, wait_unlocking, with_world_stopped,
};

/// Allocates a zeroed array of `len` elements of `layout` from the running goroutine.
/// Inlined into the typed constructors, which then get the pointer in a register.
#[inline]
pub(crate) fn alloc(layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
    alloc_with::<true>(layout, len)
}

/// [`alloc`] for a constructor that writes over every byte of the array before anything
/// can read it: a pointer-free object may come back holding an old object's bytes rather
/// than cleared (Go's `mallocgc` with `needzero` false). An object with pointers is
/// always zero, so that a marker never reads an old pointer in it.
#[inline]
pub(crate) fn alloc_overwritten(layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
    alloc_with::<false>(layout, len)
}

#[inline(always)]
fn alloc_with<const ZERO: bool>(layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
    if len == 1 {
        if let Some(p) = alloc_fast::<ZERO>(layout) {
            return Ok(p);
        }
    }
    slow(layout, len)
}

#[cold]
fn slow(layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
    if try_current().is_none() {
        return Err(AllocError::NotInGoroutine);
    }
    let _np = NoPreempt::new();
    alloc_slow(&mut Goroutine, layout, len)
}

/// The running goroutine, as the collector's slow path sees it.
struct Goroutine;

impl MutatorContext for Goroutine {
    fn state(&mut self) -> &mut MutatorState {
        // SAFETY: called from a goroutine of this runtime; the slow path asks again after
        // anything that may park, and lets go of the reference before it.
        unsafe { current().sched().current_state() }
    }

    fn safepoint(&mut self) {
        safepoint();
    }

    fn start_cycle(&mut self) {
        start_cycle(false);
    }

    fn collect(&mut self, _full: bool) {
        // Always forced, so major.
        gc();
    }
}

/// Starts a cycle if none is under way (Go's `gcStart`): sweeps what the last cycle left
/// (on this goroutine, with the world running), then stops the world to start marking.
/// In stop-the-world mode, or in stress mode, runs the whole cycle in that stop.
fn start_cycle(forced: bool) {
    let sched = current().sched();
    let c = &sched.collector;
    if c.config().stop_the_world || c.config().stress {
        with_world_stopped(|s| s.collect_stopped(forced));
        sched.cleanups.run_ready(&sched.arc());
        return;
    }
    c.heap().sweep_all();
    let mut ended = false;
    with_world_stopped(|s| {
        if s.collector.phase() == GcPhase::Off && (forced || s.collector.should_start()) {
            ended = s.start_cycle(forced);
        }
    });
    if ended {
        sched.cycle_ended();
    }
}

/// Parks the running goroutine until `n` cycles have finished.
fn wait_cycles(n: u32) {
    let sched = current().sched();
    let w = sched.gc_waiters.lock();
    if sched.collector.cycles_finished() >= n {
        return;
    }
    let mut w = w;
    w.push((n, current_gptr()));
    wait_unlocking(|| drop(w));
}

/// Runs a collection now (Go's `runtime.GC()`): waits for a cycle under way to finish,
/// starts a new one (unless another goroutine did meanwhile) and waits for its end, then
/// sweeps everything, so that `read_mem_stats` right after it is exact. Other goroutines
/// keep running meanwhile, as in Go.
pub fn gc() {
    let _np = NoPreempt::new();
    let sched = current().sched();
    let c = sched.collector.clone();
    if c.config().stop_the_world || c.config().stress {
        start_cycle(true);
    } else {
        let n = c.cycles_started();
        wait_cycles(n);
        if c.cycles_started() == n {
            start_cycle(true);
        }
        wait_cycles(n + 1);
    }
    c.heap().sweep_all();
    c.profile_post_sweep();
}
