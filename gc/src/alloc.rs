//! The allocation slow path, once for every kind of mutator (Go's `mallocgc` past the fast
//! path). An allocation the mcache cannot serve from its cached span:
//!
//! 1. reaches a safepoint (the runtime parks there if the world is stopping);
//! 2. in stress mode runs a whole cycle; otherwise starts one if the pacer's trigger is
//!    reached, and while the heap marks, ends the cycle if marking looks done and the
//!    caller is the one to end it (the standalone heap's only mutator);
//! 3. refills (or allocates a large object); on out-of-memory under `max_heap`, runs a
//!    whole cycle and tries once more;
//! 4. records the allocation in the heap profile if the mcache sampled it (the fast path
//!    leaves every sampled allocation to this path);
//! 5. pays for what it took while the heap marks (an assist).
//!
//! What differs between the runtime (a goroutine on a P) and the standalone heap (one
//! mutator, its roots in hand) is behind [`MutatorContext`].

use std::ptr::NonNull;

use minigo_alloc_core::{AllocError, Layout};

use crate::mprof::SampleStack;
use crate::mutator::MutatorState;

/// What an allocation's slow path needs from the code around its mutator state.
pub trait MutatorContext {
    /// The state of the mutator allocating (the runtime: its P's, found again after a
    /// park).
    fn state(&mut self) -> &mut MutatorState;

    /// A safepoint: the runtime parks here while the world is stopping.
    fn safepoint(&mut self);

    /// Starts a cycle: sweeps what the last one left, stops every mutator, and calls
    /// [`Collector::start_cycle`](crate::Collector::start_cycle).
    fn start_cycle(&mut self);

    /// Runs a whole cycle and waits for its end: stress mode, and (`full`: a major cycle,
    /// whatever the generational policy says) the last try before out-of-memory.
    fn collect(&mut self, full: bool);

    /// While the heap marks: ends the cycle now if marking looks done and this mutator is
    /// the one to end it (the standalone heap; the runtime's workers end its cycles).
    fn poll_mark_done(&mut self) {}

    /// The stack of an allocation the heap profile sampled (see
    /// [`Roots::sample_stack`](crate::Roots::sample_stack)); by default the Rust call
    /// stack.
    fn sample_stack(&mut self, stack: &mut SampleStack) {
        stack.capture_rust();
    }
}

/// Allocates a zeroed array of `len` elements of `layout` past the fast path (see the
/// module comment).
pub fn alloc_slow<C: MutatorContext + ?Sized>(
    cx: &mut C,
    layout: &Layout,
    len: usize,
) -> Result<NonNull<u8>, AllocError> {
    cx.safepoint();
    let (stress, start) = {
        let c = cx.state().collector();
        (c.config.stress, !c.config.stress && c.should_start())
    };
    if stress {
        cx.collect(false);
    } else if start {
        cx.start_cycle();
    }
    if cx.state().marking() {
        cx.poll_mark_done();
    }
    let r = match cx.state().cache.alloc_array(layout, len) {
        Err(AllocError::OutOfMemory { .. }) => {
            cx.collect(true);
            cx.state().cache.alloc_array(layout, len)
        }
        r => r,
    };
    // Recorded before the assist: nothing between the allocation and its special may let
    // a cycle end and sweep the object's span.
    if let Some((addr, size)) = cx.state().cache.take_sample() {
        profile_alloc(cx, addr, size);
    }
    cx.state().assist();
    r
}

/// Go's `profilealloc`: records a sampled allocation's stack and attaches the record to
/// the object, so that its sweep counts the free.
#[cold]
#[inline(never)]
fn profile_alloc<C: MutatorContext + ?Sized>(cx: &mut C, addr: usize, size: usize) {
    let mut stack = SampleStack::new();
    cx.sample_stack(&mut stack);
    let c = cx.state().collector().clone();
    let bucket = c.mprof.malloc(stack.frames(), size);
    c.heap().add_special(addr, bucket);
}
