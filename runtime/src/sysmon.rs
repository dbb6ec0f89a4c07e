//! sysmon: the monitor thread that preempts long-running goroutines (Go's `sysmon` and
//! `retake`, the preemption half).
//!
//! Each P counts the time slices it has begun (`schedtick`, bumped by its M when it
//! resumes a goroutine, and by a goroutine that comes back from `blocking` or a preemption
//! onto it; not for one resumed from `runnext`, which runs on in the slice of the goroutine
//! that readied it, as Go's `inheritTime`) and names the thread
//! that runs them (`m_tid`). sysmon wakes every [`SLICE`], and at once when a stop of the
//! world begins (`kick`), and looks at every P:
//!
//! 1. a P whose count has not moved since sysmon last saw it change, [`SLICE`] ago or more,
//!    has run one goroutine for a whole time slice: if other goroutines are waiting (a run
//!    queue, the global queue, a due sleeper), its M is asked to preempt it;
//! 2. while the world is stopping, every P still running is asked, every
//!    [`STOP_RECHECK`], until the stop completes: a goroutine in a loop without safepoints
//!    no longer holds a collection up;
//! 3. after the run has ended, `wait_finish` asks every running P itself (the goroutines
//!    still running stop for good).
//!
//! Asking is a signal (`preempt.rs`); the goroutine's thread decides whether it is at a
//! safe point, and if it is not, sysmon asks again next round.

use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{Condvar, Mutex, Ordering};

use crate::preempt::preempt_m;
use crate::sched::Sched;

/// How long a goroutine runs before it may be preempted for others (Go's
/// `forcePreemptNS`).
pub(crate) const SLICE: Duration = Duration::from_millis(10);
/// How often sysmon asks again while a stop of the world waits for running Ps.
const STOP_RECHECK: Duration = Duration::from_micros(200);

/// sysmon's wake-up call.
#[derive(Default)]
pub(crate) struct Sysmon {
    kicked: Mutex<bool>,
    cv: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Sysmon {
    /// Wakes sysmon now (a stop of the world is beginning, or the run ended).
    pub(crate) fn kick(&self) {
        *self.kicked.lock() = true;
        self.cv.notify_one();
    }
}

impl Sched {
    /// Starts the monitor thread (once per run).
    pub(crate) fn start_sysmon(&self) {
        if !crate::preempt::async_preemption_enabled() {
            return;
        }
        let sched = self.arc();
        let t = std::thread::Builder::new()
            .name("minigo-sysmon".into())
            .spawn(move || sched.sysmon_main());
        // Without the thread, goroutines are preempted at safepoints only, as before.
        *self.sysmon.thread.lock() = t.ok();
    }

    /// Stops the world (`World::stop`), with sysmon asking the running Ps to hurry.
    pub(crate) fn stop_world(&self, me: Option<usize>) {
        self.world.begin_stop(me);
        self.sysmon.kick();
        self.world.wait_stopped();
    }

    /// Stops the monitor thread and waits for it (the run has ended).
    pub(crate) fn stop_sysmon(&self) {
        self.sysmon.kick();
        let t = self.sysmon.thread.lock().take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    fn sysmon_main(&self) {
        let n = self.ps.len();
        let now = Instant::now();
        // Per P: the count last seen and when it was first seen.
        let mut seen: Vec<(u64, Instant)> = vec![(u64::MAX, now); n];
        loop {
            let stopping = self.world.stopping();
            {
                let mut k = self.sysmon.kicked.lock();
                if !*k {
                    let wait = if stopping { STOP_RECHECK } else { SLICE };
                    k = self.sysmon.cv.wait_for(k, wait);
                }
                *k = false;
            }
            if self.shutdown.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let stopping = self.world.stopping();
            let mut waiting = None;
            for (p, last) in seen.iter_mut().enumerate() {
                let tick = self.ps[p].schedtick.load(Ordering::Relaxed);
                if tick != last.0 {
                    *last = (tick, now);
                }
                if !self.world.is_running(p) {
                    continue;
                }
                let due = stopping
                    || (now.duration_since(last.1) >= SLICE
                        && *waiting.get_or_insert_with(|| self.work_waiting()));
                if due {
                    preempt_m(self.ps[p].m_tid.load(Ordering::Relaxed));
                }
            }
        }
    }

    /// Whether some goroutine is waiting for a P: queued, a sleeper whose time is up, or
    /// one preempted earlier.
    fn work_waiting(&self) -> bool {
        self.work_waiting_besides_preempted() || self.npreempt_waiting.load(Ordering::Acquire) > 0
    }

    /// Whether a goroutine is queued for a P, or a sleeper's time is up.
    pub(crate) fn work_waiting_besides_preempted(&self) -> bool {
        !self.global.is_empty() || self.ps.iter().any(|p| !p.runq.is_empty()) || self.timers.due()
    }

    /// Asks every running P's M to preempt its goroutine (the run has ended).
    pub(crate) fn preempt_running(&self) {
        for (p, pp) in self.ps.iter().enumerate() {
            if self.world.is_running(p) {
                preempt_m(pp.m_tid.load(Ordering::Relaxed));
            }
        }
    }
}
