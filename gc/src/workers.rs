//! Background mark workers (Go's `gcBgMarkWorker`), as OS threads of the collector's own:
//! they mark beside the mutators, so the collector never needs a mutator's thread to make
//! progress, and the standalone heap (which has no scheduler) gets them too.
//!
//! Go sizes background marking at 25% of GOMAXPROCS (`startCycle`): whole *dedicated*
//! workers, rounded, unless rounding is more than 30% off, in which case a *fractional*
//! worker makes up the rest by marking only part of the time; *idle* workers mark on
//! processors with nothing else to run. Here:
//!
//! 1. dedicated workers mark flat out while the cycle marks;
//! 2. the fractional worker marks in slices and sleeps whenever its CPU time since the
//!    cycle began is over its share of the wall time (with one P it is the 25% worker,
//!    on a thread of its own);
//! 3. idle workers mark while processors have nothing else to run: as many as the
//!    runtime has idle Ps ([`MarkHost::idle_procs`]), or, for a standalone heap, all the
//!    processors but the one its mutator runs on; while a processor is idle the
//!    fractional worker marks flat out as the first of them. Each marks in short slices
//!    and checks again between them, so that a P that finds work again gets its core
//!    back. Never more marking threads than idle processors plus the background share:
//!    more would take cores from the mutators (as slices of the OS scheduler, which showed
//!    as stalls of several milliseconds).
//!
//! (Idle workers at the kernel's `SCHED_IDLE` priority were tried and dropped: a worker
//! descheduled for hours-long-in-GC-terms while holding grey objects on its private stack
//! kept every cycle from ending.)
//!
//! A worker with nothing to mark sleeps on the cycle's queue until a push wakes it. When
//! the last marker leaves with nothing queued (the queue's done hint), a worker asks the
//! cycle's host to end marking ([`MarkHost::finish_mark`]): the runtime stops the world
//! from this thread, which holds no P. A standalone heap has no host; its mutator ends the
//! cycle at its next allocation slow path.

use std::sync::Arc as StdArc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{Arc, AtomicU64, Condvar, Mutex, Ordering};

use crate::cycle::MarkHost;
use crate::mark::{GcWork, MarkCpu, MarkQueue};
use crate::pacer::BACKGROUND_UTILIZATION;

/// Scan work between two looks at the clock, the hint and the fractional quota (about
/// 100 µs of marking).
const SLICE_WORK: u64 = 256 << 10;

/// An idle worker's slice (and the fractional worker's while it marks on an idle
/// processor): short, so that it gives the core back soon after a P needs it. Bounded in
/// time, not only in work: 32 KiB of pointers into a big heap is milliseconds of cache
/// misses.
const IDLE_SLICE: Duration = Duration::from_micros(100);

/// How many workers of each kind a cycle gets for `procs` processors (Go's `startCycle`):
/// dedicated workers, and the fractional worker's share of one CPU (0: none).
pub(crate) fn plan(procs: usize) -> (usize, f64) {
    let goal = procs as f64 * BACKGROUND_UTILIZATION;
    let mut dedicated = (goal + 0.5) as usize;
    let error = dedicated as f64 / goal - 1.0;
    if !(-0.3..=0.3).contains(&error) {
        if dedicated as f64 > goal {
            dedicated -= 1;
        }
        (dedicated, goal - dedicated as f64)
    } else {
        (dedicated, 0.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Dedicated,
    Fractional,
    /// The `n`th idle worker: runs while more than `n` processors are idle.
    Idle(usize),
}

/// One cycle's marking, as the workers see it.
#[derive(Clone)]
pub(crate) struct Job {
    pub(crate) queue: Arc<MarkQueue>,
    pub(crate) host: Option<StdArc<dyn MarkHost>>,
    pub(crate) start: Instant,
    /// The collector's CPU total (for its limiter), which background marking adds to.
    pub(crate) gc_cpu: Arc<AtomicU64>,
}

struct PoolState {
    generation: u64,
    job: Option<Job>,
    stop: bool,
    /// Workers holding a copy of a job.
    busy: usize,
}

struct Pool {
    state: Mutex<PoolState>,
    cv: Condvar,
    fractional: f64,
    /// There is a fractional worker.
    fractional_thread: bool,
    /// Idle processors when the cycle has no host to ask (a standalone heap: all but its
    /// mutator's).
    standalone_idle: usize,
}

impl Pool {
    /// Sleeps for `d`, or until the cycle changes or a processor goes idle.
    fn pause(&self, d: Duration) {
        let st = self.state.lock();
        let _st = self.cv.wait_for(st, d);
    }
}

/// A collector's background mark workers.
pub(crate) struct Workers {
    pool: Arc<Pool>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// The workers for a collector of `procs` processors on a machine of `cores`.
    pub(crate) fn start(procs: usize, cores: usize) -> std::io::Result<Workers> {
        let (dedicated, fractional) = plan(procs);
        // The fractional worker marks on the first idle processor: idle workers cover the
        // others.
        let idle = procs
            .min(cores)
            .saturating_sub(dedicated + (fractional > 0.0) as usize);
        let standalone_idle = procs.min(cores).saturating_sub(1 + dedicated);
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState {
                generation: 0,
                job: None,
                stop: false,
                busy: 0,
            }),
            cv: Condvar::new(),
            fractional,
            fractional_thread: fractional > 0.0,
            standalone_idle,
        });
        let mut roles = vec![Role::Dedicated; dedicated];
        if fractional > 0.0 {
            roles.push(Role::Fractional);
        }
        roles.extend((0..idle).map(Role::Idle));
        let mut threads = Vec::new();
        for (i, role) in roles.into_iter().enumerate() {
            let p = pool.clone();
            let t = std::thread::Builder::new()
                .name(format!("minigo-gc-{i}"))
                .spawn(move || run(&p, role))?;
            threads.push(t);
        }
        Ok(Workers { pool, threads })
    }

    /// Number of worker threads.
    pub(crate) fn len(&self) -> usize {
        self.threads.len()
    }

    /// Sets the workers on a cycle's marking.
    pub(crate) fn begin(&self, job: Job) {
        let mut st = self.pool.state.lock();
        st.generation += 1;
        st.job = Some(job);
        self.pool.cv.notify_all();
    }

    /// A processor went idle: wakes idle workers waiting for one.
    pub(crate) fn proc_idle(&self) {
        let _st = self.pool.state.lock();
        self.pool.cv.notify_all();
    }

    /// Forgets the cycle (its queue is finished; workers stop on their own).
    pub(crate) fn end(&self) {
        self.pool.state.lock().job = None;
    }

    /// Waits until no worker holds a job: what a job holds (a runtime's scheduler) is then
    /// the caller's to drop.
    pub(crate) fn quiesce(&self) {
        let mut st = self.pool.state.lock();
        while st.busy > 0 {
            st = self.pool.cv.wait(st);
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        {
            let mut st = self.pool.state.lock();
            st.stop = true;
            if let Some(j) = st.job.take() {
                j.queue.finish();
            }
            self.pool.cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A worker thread: waits for a cycle, marks it in its role, waits for the next.
fn run(pool: &Pool, role: Role) {
    let mut gcw = GcWork::new();
    let mut seen = 0;
    loop {
        let job = {
            let mut st = pool.state.lock();
            loop {
                if st.stop {
                    return;
                }
                if st.generation != seen {
                    seen = st.generation;
                    if let Some(j) = st.job.clone() {
                        st.busy += 1;
                        break j;
                    }
                }
                st = pool.cv.wait(st);
            }
        };
        mark(&job, role, pool, &mut gcw);
        drop(job);
        let mut st = pool.state.lock();
        st.busy -= 1;
        pool.cv.notify_all();
    }
}

/// Marks one cycle until its queue is finished.
fn mark(job: &Job, role: Role, pool: &Pool, gcw: &mut GcWork) {
    let q = &job.queue;
    // CPU this worker spent on the cycle (for the fractional quota).
    let mut busy = Duration::ZERO;
    let idle = matches!(role, Role::Idle(_));
    // An idle worker never ends marking: it may have to give its core back at any moment.
    let host = job.host.as_ref().filter(|_| !idle);
    while !q.finished() {
        if let Some(host) = host {
            if q.take_done_hint() {
                host.finish_mark();
                continue;
            }
        }
        if !q.has_work() {
            // Joining just to find nothing would make marking look unfinished to a
            // mark termination checking right then.
            q.sleep(Duration::from_millis(1), host.is_some());
            continue;
        }
        let idle_procs = match &job.host {
            Some(h) => h.idle_procs(),
            None => pool.standalone_idle,
        };
        match role {
            // With a processor idle, the fractional worker marks on it flat out (it is
            // the first idle worker); else it keeps to its share of the CPU.
            Role::Fractional if idle_procs == 0 => {
                let over = busy.as_secs_f64() - pool.fractional * job.start.elapsed().as_secs_f64();
                if over > 0.0 {
                    // Back under quota after `over / fractional` more seconds of wall time
                    // (a pause the queue's wake-ups, which are for work, do not cut short).
                    let wait = (over / pool.fractional).clamp(1e-4, 2e-3);
                    pool.pause(Duration::from_secs_f64(wait));
                    continue;
                }
            }
            Role::Idle(n) if n + pool.fractional_thread as usize >= idle_procs => {
                // No processor for it (the fractional worker takes the first idle one):
                // wait until one goes idle. More marking threads than idle processors
                // would take cores from the mutators, and so would polling for one: each
                // wake-up of a thread preempts a mutator.
                pool.pause(Duration::from_millis(10));
                continue;
            }
            _ => {}
        }
        let cpu = thread_cpu_time();
        let on_idle_proc = idle || (role == Role::Fractional && idle_procs > 0);
        let deadline = on_idle_proc.then(|| Instant::now() + IDLE_SLICE);
        let (_, done) = gcw.drain_until(q, SLICE_WORK, deadline);
        let dt = thread_cpu_time().saturating_sub(cpu);
        // A slice on an idle processor is idle marking (Go's idle mode), whoever runs it:
        // it takes nothing from the mutators, so it counts neither toward the fractional
        // quota nor for the CPU limiter.
        if on_idle_proc {
            q.note_cpu(MarkCpu::Idle, dt.as_nanos() as u64);
        } else {
            busy += dt;
            q.note_cpu(MarkCpu::Background, dt.as_nanos() as u64);
            job.gc_cpu
                .fetch_add(dt.as_nanos() as u64, Ordering::Relaxed);
        }
        q.add_credit(done);
    }
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the calling thread's CPU clock into `ts`, a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn worker_plan_is_gos() {
        assert_eq!(plan(1), (0, 0.25));
        assert_eq!(plan(2), (0, 0.5));
        assert_eq!(plan(3), (0, 0.75));
        assert_eq!(plan(4), (1, 0.0));
        assert_eq!(plan(8), (2, 0.0));
        let (d, f) = plan(6);
        assert_eq!(d, 1);
        assert!((f - 0.5).abs() < 1e-9);
    }
}
