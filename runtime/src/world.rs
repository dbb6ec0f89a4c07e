//! The Ps' states and the stop-the-world handshake (Go's `stopTheWorldWithSema` /
//! `startTheWorldWithSema`, and the parts of `pidleget`/`pidleput` that take part in it).
//!
//! Each P is IDLE (on the idle list), RUNNING (an M holds it) or STOPPED (claimed by a world
//! stop). To stop the world, the stopper sets `gcwaiting`, marks every idle P STOPPED, counts
//! the running ones into `stopwait`, and sleeps until that count is zero. A running P counts
//! itself down at its goroutine's next safepoint (`stop_self`, which then sleeps until the
//! world restarts) or when its M lets it go (`release_p`: an M with nothing to run, a
//! goroutine entering `blocking`). While `gcwaiting` is set nobody takes an idle P: neither
//! `wakep` (`take_idle_p`) nor a goroutine leaving `blocking` (`acquire_p`), so no goroutine
//! runs with the world stopped. `start` clears `gcwaiting` and wakes everyone waiting.
//!
//! All of it happens under one lock, which also orders the P-state words; the words are
//! atomics so that schedulers can peek at them without the lock (a thief checking whether
//! its victim runs, a safepoint checking `gcwaiting`). This file compiles under loom: the
//! stop-the-world model (loom-tests/tests/world.rs) runs it as it is.

use minigo_alloc_core::sync::{AtomicBool, AtomicU32, AtomicUsize, Condvar, Mutex, Ordering};

const P_IDLE: u32 = 0;
const P_RUNNING: u32 = 1;
const P_STOPPED: u32 = 2;

/// The Ps' states and the world-stop handshake of one scheduler.
pub struct World {
    status: Box<[AtomicU32]>,
    locked: Mutex<Idle>,
    /// The stopper waits here for `stopwait` to reach zero.
    stw_cv: Condvar,
    /// Stopped Ps and goroutines leaving `blocking` wait here for the world (or a P).
    world_cv: Condvar,
    gcwaiting: AtomicBool,
    npidle: AtomicUsize,
}

struct Idle {
    idle_ps: Vec<usize>,
    /// Running Ps not yet stopped, while the world is stopping.
    stopwait: usize,
}

impl World {
    /// `procs` Ps, all idle.
    pub fn new(procs: usize) -> World {
        World {
            status: (0..procs).map(|_| AtomicU32::new(P_IDLE)).collect(),
            locked: Mutex::new(Idle {
                idle_ps: (0..procs).rev().collect(),
                stopwait: 0,
            }),
            stw_cv: Condvar::new(),
            world_cv: Condvar::new(),
            gcwaiting: AtomicBool::new(false),
            npidle: AtomicUsize::new(procs),
        }
    }

    /// True while a world stop is under way or in effect: running Ps must `stop_self` at
    /// their next safepoint.
    #[inline]
    pub fn stopping(&self) -> bool {
        self.gcwaiting.load(Ordering::Acquire)
    }

    /// Idle Ps (a hint for `wakep`).
    pub fn npidle(&self) -> usize {
        self.npidle.load(Ordering::Acquire)
    }

    /// True if an M holds `p` (a hint).
    pub fn is_running(&self, p: usize) -> bool {
        self.status[p].load(Ordering::Acquire) == P_RUNNING
    }

    /// True if no M holds `p`: it is on the idle list (a hint). Not the same as not
    /// running: just after the world restarts, a P whose M is still waking from
    /// [`World::stop_self`] is stopped, and its M will run what it has queued.
    pub fn is_idle(&self, p: usize) -> bool {
        self.status[p].load(Ordering::Acquire) == P_IDLE
    }

    /// Takes an idle P for an M to run (Go's `pidleget` in `wakep`); none while the world
    /// is stopping.
    pub fn take_idle_p(&self) -> Option<usize> {
        let mut l = self.locked.lock();
        if self.stopping() {
            return None;
        }
        let p = l.idle_ps.pop()?;
        self.npidle.fetch_sub(1, Ordering::AcqRel);
        self.status[p].store(P_RUNNING, Ordering::Release);
        Some(p)
    }

    /// Puts running P `p` on the idle list (its M found nothing to run, or its goroutine
    /// entered `blocking`). If the world is stopping, that counts as `p` stopping.
    pub fn release_p(&self, p: usize) {
        let mut l = self.locked.lock();
        if self.stopping() && self.status[p].load(Ordering::Acquire) == P_RUNNING {
            self.status[p].store(P_STOPPED, Ordering::Release);
            self.count_stopped(&mut l);
        } else {
            self.status[p].store(P_IDLE, Ordering::Release);
        }
        l.idle_ps.push(p);
        self.npidle.fetch_add(1, Ordering::AcqRel);
        self.world_cv.notify_all();
    }

    /// A goroutine leaving `blocking` (Go's `exitsyscall`): takes an idle P, waiting while
    /// the world is stopped or every P is busy.
    pub fn acquire_p(&self) -> usize {
        let mut l = self.locked.lock();
        loop {
            #[cfg(not(loom_mutant = "exitsyscall_ignores_stw"))]
            let may_run = !self.stopping();
            #[cfg(loom_mutant = "exitsyscall_ignores_stw")]
            let may_run = true;
            if may_run {
                if let Some(p) = l.idle_ps.pop() {
                    self.npidle.fetch_sub(1, Ordering::AcqRel);
                    self.status[p].store(P_RUNNING, Ordering::Release);
                    return p;
                }
            }
            l = self.world_cv.wait(l);
        }
    }

    /// At a safepoint of a goroutine on running P `p`: if the world is stopping, stops `p`
    /// and waits until the world restarts.
    pub fn stop_self(&self, p: usize) {
        let mut l = self.locked.lock();
        if !self.stopping() || self.status[p].load(Ordering::Acquire) != P_RUNNING {
            return;
        }
        self.status[p].store(P_STOPPED, Ordering::Release);
        self.count_stopped(&mut l);
        #[cfg(not(loom_mutant = "stop_self_no_wait"))]
        while self.stopping() {
            l = self.world_cv.wait(l);
        }
        self.status[p].store(P_RUNNING, Ordering::Release);
    }

    fn count_stopped(&self, l: &mut Idle) {
        l.stopwait -= 1;
        if l.stopwait == 0 {
            self.stw_cv.notify_all();
        }
    }

    /// Stops every P but `me`, which the caller holds, if any: a goroutine's M stopping
    /// the world holds one, a collector's mark worker holds none (Go's
    /// `stopTheWorldWithSema`). Returns once none runs. One stopper at a time (the
    /// scheduler serialises them).
    #[cfg_attr(not(loom), allow(dead_code))] // the runtime splits it (`Sched::stop_world`)
    pub fn stop(&self, me: Option<usize>) {
        self.begin_stop(me);
        self.wait_stopped();
    }

    /// The first half of [`World::stop`]: from here on running Ps stop at their next
    /// safepoint (the caller may now ask them to hurry: `sysmon.rs`).
    pub fn begin_stop(&self, me: Option<usize>) {
        let mut l = self.locked.lock();
        self.gcwaiting.store(true, Ordering::Release);
        if let Some(me) = me {
            self.status[me].store(P_STOPPED, Ordering::Release);
        }
        let mut running = 0;
        for (i, s) in self.status.iter().enumerate() {
            if Some(i) == me {
                continue;
            }
            match s.load(Ordering::Acquire) {
                P_IDLE => s.store(P_STOPPED, Ordering::Release),
                P_RUNNING => running += 1,
                _ => {}
            }
        }
        l.stopwait = running;
    }

    /// The second half of [`World::stop`]: returns once no P but the stopper's runs.
    pub fn wait_stopped(&self) {
        let mut l = self.locked.lock();
        while l.stopwait > 0 {
            l = self.stw_cv.wait(l);
        }
    }

    /// Restarts the world stopped by `stop(me)` (Go's `startTheWorldWithSema`): idle Ps
    /// become takeable again, stopped ones resume.
    pub fn start(&self, me: Option<usize>) {
        let l = self.locked.lock();
        for &p in &l.idle_ps {
            self.status[p].store(P_IDLE, Ordering::Release);
        }
        if let Some(me) = me {
            self.status[me].store(P_RUNNING, Ordering::Release);
        }
        self.gcwaiting.store(false, Ordering::Release);
        self.world_cv.notify_all();
    }
}
