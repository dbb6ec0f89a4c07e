//! A goroutine's status word, and the handshake between a goroutine that parks to wait and
//! the goroutine that wakes it.
//!
//! Whoever a status says owns the G (a run queue, the M running it, a wait queue) is the
//! only one who may move it on:
//!
//! ```text
//! RUNNABLE --M takes it--> RUNNING --prepare_wait--> WAITING_PREPARE --M--> WAITING
//!     ^                                              |                      |
//!     +--------- wake() (CAS) -----------------------+ (READY_EARLY)        |
//!     +--------- wake() (CAS) ----------------------------------------------+
//! ```
//!
//! A goroutine about to wait publishes WAITING_PREPARE *before* it releases the lock that
//! made it visible to wakers (`prepare_wait`); after it has suspended, its M moves it to
//! WAITING (`finish_parking`). A waker that comes in between finds WAITING_PREPARE and leaves
//! READY_EARLY, which tells the M to queue it again at once; a later waker finds WAITING and
//! queues it itself. So a goroutine is never resumed before it has stopped, and never lost
//! (Go's `gopark` uses an unlock callback on the system stack for the same purpose).
//!
//! This file compiles under loom: the channel model (loom-tests/tests/chan.rs) runs it with
//! loom threads standing in for goroutines.

use minigo_alloc_core::sync::{AtomicU32, Ordering};

pub(crate) const RUNNABLE: u32 = 0;
pub(crate) const RUNNING: u32 = 1;
pub(crate) const WAITING_PREPARE: u32 = 2;
pub(crate) const WAITING: u32 = 3;
pub(crate) const READY_EARLY: u32 = 4;
/// In a `blocking` region: running without a P, its stack spilled at `saved_sp`.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const SYSCALL: u32 = 5;
/// Finished; kept on a free list for the next `go` (Go's `gfput`).
#[cfg_attr(loom, allow(dead_code))]
pub(crate) const DEAD: u32 = 6;

/// The status word of a goroutine.
pub(crate) struct GStatus(AtomicU32);

impl GStatus {
    pub(crate) fn new(s: u32) -> GStatus {
        GStatus(AtomicU32::new(s))
    }

    pub(crate) fn load(&self, order: Ordering) -> u32 {
        self.0.load(order)
    }

    pub(crate) fn store(&self, s: u32, order: Ordering) {
        self.0.store(s, order)
    }

    /// The running goroutine is about to wait: publishes that, then runs `unlock`, which
    /// releases the lock under which wakers can find it. The caller then suspends and its M
    /// calls `finish_parking`.
    pub(crate) fn prepare_wait(&self, unlock: impl FnOnce()) {
        #[cfg(not(loom_mutant = "prepare_after_unlock"))]
        {
            self.0.store(WAITING_PREPARE, Ordering::Release);
            unlock();
        }
        #[cfg(loom_mutant = "prepare_after_unlock")]
        {
            unlock();
            self.0.store(WAITING_PREPARE, Ordering::Release);
        }
    }

    /// Takes a goroutine that waits (or is about to) out of its wait: true if the caller
    /// must now queue it (it was fully parked), false if its M will (it had not finished
    /// parking). Panics if it was not waiting: a goroutine woken twice is a runtime bug.
    pub(crate) fn wake(&self) -> bool {
        loop {
            match self.0.load(Ordering::Acquire) {
                WAITING => {
                    if self
                        .0
                        .compare_exchange(WAITING, RUNNABLE, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        return true;
                    }
                }
                WAITING_PREPARE => {
                    if self
                        .0
                        .compare_exchange(
                            WAITING_PREPARE,
                            READY_EARLY,
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        )
                        .is_ok()
                    {
                        return false;
                    }
                }
                s => panic!("waking a goroutine in state {s}"),
            }
        }
    }

    /// Its M's side of parking: WAITING_PREPARE -> WAITING (false), or, if a waker came
    /// first, READY_EARLY -> RUNNABLE and true (queue it again).
    pub(crate) fn finish_parking(&self) -> bool {
        match self.0.compare_exchange(
            WAITING_PREPARE,
            WAITING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => false,
            Err(READY_EARLY) => {
                self.0.store(RUNNABLE, Ordering::Release);
                true
            }
            Err(s) => panic!("a goroutine parked in state {s}"),
        }
    }
}
