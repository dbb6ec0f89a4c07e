//! The collector's phase (Go's `gcphase`) and the write barrier's switch.
//!
//! Each heap has its own phase: `Off` between cycles, `Mark` while marking runs beside the
//! mutators, `MarkTermination` while the world is stopped to finish it. The write barrier
//! is on in the last two (Go's `setGCPhase`). Code asks the phase rather than assuming
//! what the world is doing.
//!
//! A pointer store from code that has no mutator state at hand (a `GcCell` in the runtime)
//! first tests one process-wide count of heaps whose barrier is on, as Go's compiled code
//! tests `writeBarrier.enabled`, and looks for its P's state only when that count is not
//! zero. The count changes only while the heap's mutators are stopped, and the restart
//! that follows publishes it.

use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use minigo_alloc_core::sync::{AtomicU8, Ordering};

/// Where a heap's collection cycle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum GcPhase {
    /// No cycle is marking: sweeping may be running; the write barrier is off.
    Off = 0,
    /// Marking runs beside the mutators; the write barrier is on and new objects are black.
    Mark = 1,
    /// The world is stopped to finish marking.
    MarkTermination = 2,
}

/// Heaps in the process whose write barrier is on. (Std's atomic even under loom: loom
/// atomics cannot live in statics, and the models drive one heap's own flag.)
static BARRIERS_ON: StdAtomicUsize = StdAtomicUsize::new(0);

/// True when some heap of the process has its write barrier on (it marks, or it is
/// generational and every store dirties a card): the one test a pointer store without its
/// mutator state makes before it looks for it.
#[inline(always)]
pub fn any_barrier_on() -> bool {
    BARRIERS_ON.load(Ordering::Relaxed) != 0
}

/// One heap's phase.
pub(crate) struct Phase(AtomicU8);

impl Phase {
    pub(crate) fn new() -> Phase {
        Phase(AtomicU8::new(GcPhase::Off as u8))
    }

    pub(crate) fn get(&self) -> GcPhase {
        match self.0.load(Ordering::Acquire) {
            0 => GcPhase::Off,
            1 => GcPhase::Mark,
            _ => GcPhase::MarkTermination,
        }
    }

    /// True while the write barrier must run (mark and mark termination).
    #[inline(always)]
    pub(crate) fn barrier_on(&self) -> bool {
        self.0.load(Ordering::Relaxed) != GcPhase::Off as u8
    }

    /// Moves to `p`. Called with the heap's mutators stopped (or by its only mutator).
    pub(crate) fn set(&self, p: GcPhase) {
        let was_on = self.barrier_on();
        self.0.store(p as u8, Ordering::Release);
        match (was_on, p != GcPhase::Off) {
            (false, true) => {
                BARRIERS_ON.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                BARRIERS_ON.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        // A heap dropped in the middle of a cycle takes its barrier with it.
        self.set(GcPhase::Off);
    }
}

/// Keeps [`any_barrier_on`] true for as long as it lives: a generational heap's pointer
/// stores dirty cards in every phase, so they must always find their mutator state.
pub(crate) struct BarrierHold(());

impl BarrierHold {
    pub(crate) fn new() -> BarrierHold {
        BARRIERS_ON.fetch_add(1, Ordering::AcqRel);
        BarrierHold(())
    }
}

impl Drop for BarrierHold {
    fn drop(&mut self) {
        BARRIERS_ON.fetch_sub(1, Ordering::AcqRel);
    }
}
