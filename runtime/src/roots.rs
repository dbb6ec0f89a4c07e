//! What the collector sees of a runtime, and when.
//!
//! The roots are every goroutine's stack, conservatively, from its saved stack pointer to
//! its top (registers are spilled there when it parks); goroutine closures that have not
//! started yet; the global handles, precisely; channel buffers and the closures of
//! cleanups (`cleanup.rs`), conservatively.
//!
//! **Concurrent cycles** take them without a long stop ([`RuntimeCycle`], the collector's
//! `MarkHost`): the mark-start stop only snapshots the list of goroutines; the markers
//! then scan root jobs — the globals, the channel buffers, the cleanups' captures, and one
//! job per goroutine — while the world runs. A goroutine's stack is scanned once per
//! cycle, by whoever gets there first: a mark worker, while the goroutine is parked (or
//! inside `blocking`, its stack frozen above the saved pointer); or the goroutine's own M,
//! before it resumes it ([`Sched::ensure_scanned`]). Its `scan_gen` decides who: a compare-and-swap to
//! "scanning for this cycle", then "scanned". A goroutine therefore never runs with an
//! unscanned stack while a cycle marks: its stack is black, and what it does afterwards is
//! covered by the write barrier (heap stores), by shading values that leave a root area
//! (`barrier.rs`), and by black allocation. A grey stack belongs to a parked goroutine,
//! which cannot hand anything over but through a channel receive, and that shades.
//!
//! A goroutine created while a cycle marks is not among the goroutines the cycle
//! snapshot; its closure holds what its creator's black stack held, so it needs nothing.
//!
//! Verify mode re-scans every stack at mark termination, from where it is then. Frames
//! pushed since a stack's scan may hold dead words of frames that returned before it, which
//! the cycle never saw: those frames are shaded first ([`Sched::shade_stale_frames`]), and
//! verify is strict about the part of each stack the cycle scanned.

use std::sync::Arc as StdArc;

use minigo_alloc_core::sync::{Arc, Ordering};
use minigo_gc::{Liveness, MarkHost, MutatorState, RootJobs, Roots, Tracer};

use crate::g::{GRef, G};
use crate::sched::Sched;

/// Every root at once, for a cycle that holds the world stopped throughout (stop-the-world
/// mode, stress mode) and for verify mode at mark termination.
pub(crate) struct RuntimeRoots<'a> {
    pub(crate) sched: &'a Sched,
}

impl Roots for RuntimeRoots<'_> {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for g in self.sched.goroutines() {
            // SAFETY: a `RuntimeRoots` is made only inside a stop of the world (the three
            // uses below), so every G in the list is alive and not running.
            unsafe { scan_goroutine(g.as_ref(), t) };
        }
        self.sched.globals.trace(t);
        self.sched.chans.trace(t);
        self.sched.cleanups.trace(t);
    }

    fn clear_weak(&mut self, live: &Liveness<'_>) {
        self.sched.weaks.clear_dead(live);
        self.sched.cleanups.clear_dead(live);
    }
}

/// Scans a goroutine's closure (if it has not started) and its stack from the saved
/// stack pointer up.
///
/// # Safety
/// The goroutine is not running: parked, queued, or inside `blocking` (its stack frozen
/// above `saved_sp`), and stays so until this returns.
unsafe fn scan_goroutine(g: &G, t: &mut Tracer<'_>) {
    if let Some((lo, hi)) = g.entry_range() {
        // SAFETY: the closure's own memory, alive until the goroutine starts (which the
        // caller rules out meanwhile).
        unsafe { t.scan_conservative(lo, hi) };
    }
    let sp = g.saved_sp.load(Ordering::Acquire);
    if sp != 0 {
        // SAFETY: `[sp, top)` is the live part of the goroutine's stack mapping, which
        // stays mapped while the goroutine exists and is not being run. A channel
        // operation on another thread may write one of its waiting slots meanwhile: the
        // scan reads it with a word-sized volatile load (it cannot tear), and the writer
        // shades the value it writes (`barrier.rs`), so whatever the scan sees is safe.
        unsafe { t.scan_conservative(sp, g.stack_top.load(Ordering::Acquire)) };
    }
}

/// Shrinks the stack of `g` if it is parked (switched out: queued or waiting) and has run
/// since the last look (`stack::shrink`). Called by a collection for each goroutine whose
/// stack it scans (Go's `scanstack` -> `shrinkstack`).
///
/// # Safety
/// `g` is not resumed until this returns (its scan claim is held, or the world is
/// stopped).
unsafe fn shrinkstack(g: &G) {
    let status = g.status.load(Ordering::Acquire);
    if status != crate::g::RUNNABLE && status != crate::status::WAITING {
        // Running, or in `blocking` or stopped in place: frames below the saved pointer.
        return;
    }
    let runs = g.runs.load(Ordering::Relaxed);
    if g.shrink_seen.swap(runs, Ordering::Relaxed) == runs {
        return;
    }
    let (sp, lo) = (
        g.saved_sp.load(Ordering::Acquire),
        g.stack_lo.load(Ordering::Acquire),
    );
    if sp == 0 || lo == 0 {
        return;
    }
    // SAFETY: a switched-out goroutine has nothing below its saved pointer, and the
    // caller keeps it from resuming meanwhile.
    if unsafe { crate::stack::shrink(lo, sp, g.stack_top.load(Ordering::Acquire)) } > 0 {
        g.resident_runs.store(u32::MAX, Ordering::Relaxed);
    }
}

/// A concurrent cycle's roots: the goroutines that existed when it started, the globals
/// and the channel buffers, as root jobs; and the way to end marking.
pub(crate) struct RuntimeCycle {
    sched: Arc<Sched>,
    goroutines: Vec<GRef>,
    /// The cycle's number (its stacks are scanned once marked `2 * epoch`).
    epoch: u32,
}

// SAFETY: the G pointers are never freed while the scheduler lives (which this holds), and
// a G is touched here only through its atomics and the scan protocol above.
unsafe impl Send for RuntimeCycle {}
// SAFETY: as above.
unsafe impl Sync for RuntimeCycle {}

/// Goroutines a stopped cycle looks at for `shrinkstack`.
const SHRINK_PER_STOP: usize = 2048;

/// Root jobs before the goroutines': the globals, the channel buffers and the cleanups.
const FIXED_JOBS: usize = 3;

impl RootJobs for RuntimeCycle {
    fn count(&self) -> usize {
        FIXED_JOBS + self.goroutines.len()
    }

    fn scan(&self, job: usize, t: &mut Tracer<'_>) {
        match job {
            0 => self.sched.globals.trace(t),
            1 => self.sched.chans.trace(t),
            2 => self.sched.cleanups.trace(t),
            i => {
                // SAFETY: Gs are never freed while the scheduler lives.
                let g = unsafe { self.goroutines[i - FIXED_JOBS].as_ref() };
                scan_once(g, self.epoch, |g| {
                    // SAFETY: `scan_once` holds the G's scan claim: its M waits for it
                    // before resuming it, so it is not running.
                    unsafe {
                        scan_goroutine(g, t);
                        shrinkstack(g);
                    }
                    note_scanned(g);
                });
            }
        }
    }
}

impl MarkHost for RuntimeCycle {
    fn finish_mark(&self) {
        let s = &*self.sched;
        let ended = s.stop_world_outside(|| {
            crate::g::fatal_on_panic(|| {
                // SAFETY: the world is stopped until this closure returns.
                let mut states = unsafe { s.all_states() };
                s.shade_preempted(states[0]);
                if s.collector.config().verify {
                    // SAFETY: the world is stopped.
                    unsafe { s.shade_stale_frames(states[0], self.epoch) };
                }
                // SAFETY: every P's state, and no P runs.
                unsafe {
                    s.collector
                        .mark_termination(&mut states, &mut RuntimeRoots { sched: s })
                }
            })
        });
        if ended {
            s.cycle_ended();
        }
    }

    fn idle_procs(&self) -> usize {
        self.sched.world.npidle()
    }
}

/// Records where a concurrent cycle scanned `g`'s stack from (inside its scan claim, the
/// goroutine not running), for verify mode's [`Sched::shade_stale_frames`].
fn note_scanned(g: &G) {
    g.scan_sp
        .store(g.saved_sp.load(Ordering::Acquire), Ordering::Relaxed);
}

/// [`scan_once`](crate::scan_claim::scan_once) on `g`'s claim word.
fn scan_once(g: &G, epoch: u32, scan: impl FnOnce(&G)) {
    crate::scan_claim::scan_once(&g.scan_gen, epoch, || scan(g));
}

impl Sched {
    /// Starts a concurrent cycle (world stopped, from a stop-the-world job): every P's state
    /// and a snapshot of the goroutines go to the collector.
    /// Returns whether the cycle also ended in this stop (a small heap's, see
    /// [`Collector::finish_small_cycle`](minigo_gc::Collector::finish_small_cycle)): call
    /// [`Sched::cycle_ended`] once the world runs again.
    pub(crate) fn start_cycle(&self, forced: bool) -> bool {
        let host = StdArc::new(RuntimeCycle {
            sched: self.arc(),
            goroutines: self.all_goroutines(),
            epoch: self.collector.cycles_started() + 1,
        });
        // SAFETY: the world is stopped for the length of this job.
        let mut states = unsafe { self.all_states() };
        let c = &self.collector;
        // SAFETY: every P's state, and no P runs (the world is stopped).
        let started =
            unsafe { c.start_cycle(&mut states, minigo_gc::CycleRoots::Jobs(host), forced) };
        // SAFETY: as above.
        let ended = started
            && unsafe { c.finish_small_cycle(&mut states, &mut RuntimeRoots { sched: self }) };
        if ended {
            self.shrink_stacks();
        }
        ended
    }

    /// `shrinkstack` for a cycle that ran with the world stopped throughout (no root jobs
    /// ran): for the next [`SHRINK_PER_STOP`] goroutines, round-robin, so that the pause
    /// does not grow with the number of goroutines (a `mincore` each that ran since its
    /// last look). Concurrent cycles shrink every stack they scan, off the pause.
    fn shrink_stacks(&self) {
        let all = self.all_goroutines();
        if all.is_empty() {
            return;
        }
        let start = self.shrink_cursor.load(Ordering::Relaxed) % all.len();
        let n = all.len().min(SHRINK_PER_STOP);
        for k in 0..n {
            // SAFETY: the world is stopped (the callers' job), so no goroutine resumes;
            // Gs are never freed while the scheduler lives.
            unsafe { shrinkstack(all[(start + k) % all.len()].as_ref()) };
        }
        self.shrink_cursor.store(start + n, Ordering::Relaxed);
    }

    /// A whole cycle with the world stopped throughout (from a stop-the-world job).
    pub(crate) fn collect_stopped(&self, forced: bool) {
        // SAFETY: the world is stopped for the length of this job.
        let mut states = unsafe { self.all_states() };
        // SAFETY: every P's state, and no P runs.
        unsafe {
            self.collector
                .collect_stopped(&mut states, &mut RuntimeRoots { sched: self }, forced)
        };
        self.shrink_stacks();
        self.free.release_stacks();
    }

    /// Before P `p`'s M resumes `g` (or `g` leaves `blocking` on `p`): if a cycle marks and
    /// `g`'s stack has not been scanned for it, scan it now, on this M.
    #[inline]
    pub(crate) fn ensure_scanned(&self, g: &G, p: usize) {
        // SAFETY: this M holds P `p`; the reference is dropped before the goroutine runs.
        let st = unsafe { self.state(p) };
        if !st.marking() {
            return;
        }
        let epoch = self.collector.cycles_started();
        scan_once(g, epoch, |g| {
            let mut words = Vec::new();
            // SAFETY: `g` is not running (its M is here, about to resume it) and we hold
            // its scan claim.
            unsafe { scan_goroutine(g, &mut Tracer::new(&mut |w, _| words.push(w))) };
            st.shade_root_words(words);
            note_scanned(g);
        });
    }

    /// At mark termination (world stopped): shades what the stacks of asynchronously
    /// preempted goroutines hold now. Their stacks were scanned earlier in the cycle, and
    /// everything a goroutine *uses* since is marked (the stack is black); but a
    /// preemption saves every register, dead ones too, and a dead register may hold
    /// anything — an object the sweeper just looked at, one that died before the cycle.
    /// The conservative scan of that stack is a root from now on (verify mode checks
    /// that every root's objects are marked, and a later cycle would keep them), so what
    /// it sees is marked now: the same as marking any conservative root, which may keep a
    /// dead object, never frees a live one.
    fn shade_preempted(&self, st: &mut MutatorState) {
        let preempted = self.preempted.lock().clone();
        for g in preempted {
            let mut words = Vec::new();
            // SAFETY: a preempted goroutine is stopped (the world is), its stack frozen
            // above its saved pointer.
            unsafe { scan_goroutine(g.0.as_ref(), &mut Tracer::new(&mut |w, _| words.push(w))) };
            st.shade_words(words);
        }
    }

    /// Verify mode, at a concurrent cycle's mark termination: shades what the frames pushed
    /// since each stack's scan hold, before verify re-scans every stack from where it is
    /// now. Those frames' slots are not all written by their functions: some still hold
    /// words of frames that returned before the scan, below the pointer it scanned from,
    /// and such a word may name an object that died before the cycle (it is never read
    /// again). Verify took it for a live object the cycle lost: one `.ci/run` in about
    /// nine failed so, in `goroutines.rs`, each time on a 16-byte node of garbage. So
    /// verify checks the frames the scan saw strictly, and those below leniently: what they
    /// hold is marked, and kept, as any conservative root's objects are. A goroutine the
    /// cycle did not scan (started during it, on a recycled stack) is lenient throughout.
    /// Outside verify mode nothing looks at these words until the next cycle scans them.
    ///
    /// # Safety
    /// The world is stopped.
    unsafe fn shade_stale_frames(&self, st: &mut MutatorState, epoch: u32) {
        let mut words = Vec::new();
        for g in self.goroutines() {
            // SAFETY: Gs are never freed while the scheduler lives.
            let g = unsafe { g.as_ref() };
            let (sp, top) = (
                g.saved_sp.load(Ordering::Acquire),
                g.stack_top.load(Ordering::Acquire),
            );
            if sp == 0 {
                continue;
            }
            let scanned = g.scan_sp.load(Ordering::Relaxed);
            let limit =
                if g.scan_gen.load(Ordering::Acquire) == epoch.wrapping_mul(2) && scanned != 0 {
                    scanned.min(top)
                } else {
                    top
                };
            if sp < limit {
                // SAFETY: `[sp, limit)` is inside the live part of a stopped goroutine's
                // stack, which stays mapped while the goroutine exists.
                unsafe { Tracer::new(&mut |w, _| words.push(w)).scan_conservative(sp, limit) };
            }
        }
        st.shade_words(words);
    }

    /// Runs `f` with the world stopped, from a thread that holds no P (a mark worker
    /// ending a cycle). Waits its turn if a goroutine is stopping the world.
    pub(crate) fn stop_world_outside<R>(&self, f: impl FnOnce() -> R) -> R {
        while self
            .stw_running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            std::thread::yield_now();
        }
        self.stop_world(None);
        self.worlds_stopped.fetch_add(1, Ordering::AcqRel);
        let r = f();
        self.world.start(None);
        self.collector.resume();
        self.wakep_if_work();
        self.stw_running.store(false, Ordering::Release);
        r
    }

    /// After a cycle ended: idle stacks go back to the OS, and goroutines in `gc()`
    /// waiting for it run again.
    pub(crate) fn cycle_ended(&self) {
        self.free.release_stacks();
        self.cleanups.run_ready(&self.arc());
        let finished = self.collector.cycles_finished();
        // Counted from before the waiters leave the list until they are ready (see
        // `checkdead.rs`).
        self.wakers.fetch_add(1, Ordering::SeqCst);
        let ready: Vec<_> = {
            let mut w = self.gc_waiters.lock();
            let (ready, wait) = w.drain(..).partition(|&(n, _)| n <= finished);
            *w = wait;
            ready
        };
        for (_, g) in ready {
            self.ready(g.0);
        }
        self.wakers.fetch_sub(1, Ordering::SeqCst);
    }
}
