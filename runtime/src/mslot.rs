//! How a P reaches an M that waits without one (Go's `mp.nextp` + `notewakeup(&mp.park)`).
//!
//! An M with no P waits on its [`MSlot`]: an idle M on the scheduler's [`IdleMs`] list, an
//! M whose goroutine was preempted at the end of its time slice on the preempted queue. A
//! giver takes the slot off its list (under the list's lock) and only then puts a P in it
//! ([`MSlot::hand`]). So between the two, the P belongs to an M that does not have it yet:
//!
//! 1. An M that stops waiting (the run is over) leaves its list ([`IdleMs::leave`]). If its
//!    slot was still listed, no P is coming. If it was not, a giver took it off and a P is
//!    on its way: the M waits for it ([`MSlot::wait_handed`]) and lets it go.
//! 2. Left in the slot, that P would stay "running" for good, and the next stop of the
//!    world (a mark worker ending its cycle while the run winds down) would wait for it
//!    forever, and `run` for the worker (1 run in about 1,000 of `binary-trees 14
//!    --verify` hung so). Loom model 16 (`loom-tests/tests/mslot.rs`) checks the idle
//!    list's side; the preempted queue's (`Sched::wait_for_p`) has the same shape over
//!    its own list.

use minigo_alloc_core::sync::{Arc, Condvar, Mutex};

/// What an M waits on while it has no P: the P a giver hands it.
#[doc(hidden)]
pub struct MSlot {
    pub(crate) p: Mutex<Option<usize>>,
    pub(crate) cv: Condvar,
}

impl MSlot {
    /// An empty slot.
    pub fn new() -> Arc<MSlot> {
        Arc::new(MSlot {
            p: Mutex::new(None),
            cv: Condvar::new(),
        })
    }

    /// Gives P `p` to the slot's M, whom the caller took off its list.
    pub fn hand(&self, p: usize) {
        *self.p.lock() = Some(p);
        self.cv.notify_one();
    }

    /// Waits for the P a giver that took this slot off its list is handing over.
    pub fn wait_handed(&self) -> usize {
        let mut got = self.p.lock();
        loop {
            if let Some(p) = got.take() {
                return p;
            }
            got = self.cv.wait(got);
        }
    }
}

/// The Ms that wait for a P with nothing to run (Go's `sched.midle`).
#[doc(hidden)]
#[derive(Default)]
pub struct IdleMs(Mutex<Vec<Arc<MSlot>>>);

impl IdleMs {
    /// Lists `slot`'s M as idle.
    pub fn push(&self, slot: Arc<MSlot>) {
        self.0.lock().push(slot);
    }

    /// Takes an idle M off the list, to [`MSlot::hand`] it a P.
    pub fn pop(&self) -> Option<Arc<MSlot>> {
        self.0.lock().pop()
    }

    /// Wakes every idle M (to see that the run is over).
    pub fn notify_all(&self) {
        for m in self.0.lock().iter() {
            m.cv.notify_one();
        }
    }

    /// `slot`'s M stops waiting for good: off the list. Returns the P a giver that took it
    /// off first was handing it, which the caller must let go.
    pub fn leave(&self, slot: &Arc<MSlot>) -> Option<usize> {
        let listed = {
            let mut ms = self.0.lock();
            let before = ms.len();
            ms.retain(|m| !Arc::ptr_eq(m, slot));
            ms.len() != before
        };
        #[cfg(not(loom_mutant = "m_leave_no_wait"))]
        if !listed {
            return Some(slot.wait_handed());
        }
        #[cfg(loom_mutant = "m_leave_no_wait")]
        let _ = listed;
        None
    }
}
