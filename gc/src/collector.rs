//! The collector of one heap: its phase, its pacer, its background mark workers and
//! sweeper, and its statistics. The cycle itself, phase by phase, is in `cycle`.

use std::io::{self, Write};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use minigo_alloc_core::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Condvar, Mutex, Ordering};
use minigo_alloc_core::{HeapConfig, MHeap, MemStats};

use crate::config::GcConfig;
use crate::cycle::{Cycle, Deferred};
use crate::generations::Generations;
use crate::mark::{MarkCpu, MarkQueue};
use crate::mprof::{MemProfile, MemProfileRecord};
use crate::pacer::{assist_work_per_byte, Estimates, Limiter, Pacer};
use crate::phase::{GcPhase, Phase};
use crate::stats::{gctrace_line, CycleRecord, GcStats};
use crate::workers::Workers;

/// The collector of one heap.
pub struct Collector {
    pub(crate) heap: Arc<MHeap>,
    pub(crate) config: GcConfig,
    pub(crate) phase: Phase,
    pub(crate) pacer: Mutex<Pacer>,
    /// `heap_live` at which the pacer wants the next cycle.
    pub(crate) trigger: AtomicU64,
    /// `heap_live` from which the next cycle starts once the last cycle's sweep is done:
    /// below `trigger` only for a major cycle after minor ones, paced from what the last
    /// major found live (`generations.rs`). Starting it there with spans left to sweep
    /// would have the goroutine that starts it sweep the rest first (`latency 1GiB`:
    /// stalls of 26-113 ms, against 1-3).
    pub(crate) early_trigger: AtomicU64,
    /// The heap goal of the cycle under way (or the next one).
    pub(crate) goal: AtomicU64,
    /// The cycle under way's pacing: the trigger it started at, the scan work expected
    /// (last cycle's) and the most there can be (everything live scanned).
    pub(crate) mark_trigger: AtomicU64,
    pub(crate) mark_expected: AtomicU64,
    pub(crate) mark_max_work: AtomicU64,
    pub(crate) estimates: Mutex<Estimates>,
    limiter: Mutex<Limiter>,
    limiter_on: AtomicBool,
    /// Every nanosecond of CPU the collector has taken from the mutators: pauses times the
    /// processors they stopped, assists, and dedicated and fractional workers' marking as
    /// it happens (for the CPU limiter; idle workers' time is nobody's, as in Go).
    pub(crate) gc_cpu_total: Arc<AtomicU64>,
    /// The cycle under way, if any; its lock orders the phases.
    pub(crate) cycle: Mutex<Option<Cycle>>,
    /// No cycle starts any more ([`Collector::abandon_cycle`]).
    pub(crate) closed: AtomicBool,
    /// The cycle under way's mark queue, for mutator states made while it marks.
    pub(crate) queue: Mutex<Option<Arc<MarkQueue>>>,
    /// Cycles finished, for [`Collector::wait_cycle`].
    pub(crate) finished: Mutex<u32>,
    pub(crate) finished_cv: Condvar,
    /// Cycles started.
    pub(crate) started: AtomicU32,
    pub(crate) stats: Mutex<GcStats>,
    pub(crate) created: Instant,
    trace_out: Mutex<Option<Box<dyn Write + Send>>>,
    sweeper: Option<Sweeper>,
    pub(crate) workers: Option<Workers>,
    /// Wake-ups left for after the stop (see [`Collector::resume`]).
    pub(crate) deferred: Mutex<Deferred>,
    /// The heap profile's records.
    pub(crate) mprof: MemProfile,
    /// Generational mode's state between cycles.
    pub(crate) gen: Generations,
}

impl Collector {
    /// A collector over a new heap (reserves its address space; starts the background
    /// sweeper and, unless marking is stop-the-world or mutator-only, the mark workers).
    pub fn new(config: GcConfig) -> io::Result<Arc<Collector>> {
        let heap = MHeap::new(HeapConfig {
            address_space: config.address_space,
            max_heap: config.max_heap,
        })?;
        let pacer = Pacer {
            gogc: config.gogc,
            memory_limit: config.memory_limit,
        };
        let first_goal = pacer.goal(0, 0, 0);
        let sweeper = if config.background_sweep {
            Some(Sweeper::start(heap.clone())?)
        } else {
            None
        };
        let workers = if config.stop_the_world || config.mark_workers == 0 {
            None
        } else {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            Some(Workers::start(config.mark_workers, cores)?)
        };
        Ok(Arc::new(Collector {
            heap,
            phase: Phase::new(),
            pacer: Mutex::new(pacer),
            trigger: AtomicU64::new(first_goal),
            early_trigger: AtomicU64::new(first_goal),
            goal: AtomicU64::new(first_goal),
            mark_trigger: AtomicU64::new(0),
            mark_expected: AtomicU64::new(0),
            mark_max_work: AtomicU64::new(0),
            estimates: Mutex::new(Estimates::default()),
            limiter: Mutex::new(Limiter::new(config.mark_workers)),
            limiter_on: AtomicBool::new(false),
            gc_cpu_total: Arc::new(AtomicU64::new(0)),
            closed: AtomicBool::new(false),
            cycle: Mutex::new(None),
            queue: Mutex::new(None),
            finished: Mutex::new(0),
            finished_cv: Condvar::new(),
            started: AtomicU32::new(0),
            stats: Mutex::new(GcStats {
                next_gc: first_goal,
                procs: config.mark_workers,
                ..GcStats::default()
            }),
            created: Instant::now(),
            trace_out: Mutex::new(None),
            sweeper,
            workers,
            deferred: Mutex::new(Deferred::default()),
            mprof: MemProfile::default(),
            gen: Generations::default(),
            config,
        }))
    }

    /// The heap this collector manages.
    pub fn heap(&self) -> &Arc<MHeap> {
        &self.heap
    }

    /// The heap profile's records as of the last completed cycle (Go's
    /// `runtime.MemProfile`): sampled counts, not scaled. Empty until a cycle has ended.
    pub fn mem_profile(&self) -> Vec<MemProfileRecord> {
        self.mprof.records()
    }

    /// Writes the heap profile as of the last completed cycle to `w`: gzip-compressed
    /// profile.proto, as Go's `pprof.WriteHeapProfile`, for `go tool pprof` (see
    /// [`crate::pprof`]). Collect first (as `go test -memprofile` does) for a profile of
    /// the heap as it is now.
    pub fn write_heap_profile(&self, w: impl Write) -> io::Result<()> {
        crate::pprof::write_heap_profile(&self.mem_profile(), self.config.mem_profile_rate, w)
    }

    /// A collection's sweep is complete (after `gc()` and its `sweep_all`): publishes its
    /// cycle's heap profile now rather than at the next mark termination (Go's
    /// `mProf_PostSweep`).
    pub fn profile_post_sweep(&self) {
        self.mprof.post_sweep(&self.heap);
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &GcConfig {
        &self.config
    }

    /// The heap's phase now.
    pub fn phase(&self) -> GcPhase {
        self.phase.get()
    }

    /// True when the pacer wants a cycle to start: heap live has reached the trigger (or
    /// the early trigger, with the sweep done) and no cycle is under way. Cheap: an
    /// allocation slow path asks it.
    #[inline]
    pub fn should_start(&self) -> bool {
        let live = self.heap.heap_live();
        (live >= self.trigger.load(Ordering::Relaxed)
            || (live >= self.early_trigger.load(Ordering::Relaxed) && self.heap.sweep_done()))
            && self.phase.get() == GcPhase::Off
    }

    /// The cycle under way's mark queue, while one marks.
    pub(crate) fn marking_queue(&self) -> Option<Arc<MarkQueue>> {
        self.queue.lock().clone()
    }

    /// The mark queue of the cycle marking now, if one is: what a marker of the
    /// embedder's own (a thread it runs, a test stepping marking by hand) drains with a
    /// [`GcWork`](crate::mark::GcWork).
    pub fn mark_queue(&self) -> Option<Arc<MarkQueue>> {
        self.marking_queue()
    }

    /// Shades `words` for the cycle marking now, if one is (see
    /// [`MutatorState::shade_words`](crate::MutatorState::shade_words)), for code that has
    /// no mutator state of this heap at hand.
    pub fn shade_words(&self, words: impl IntoIterator<Item = usize>) {
        if let Some(q) = self.marking_queue() {
            crate::mark::GcWork::new().shade_all(&q, words.into_iter());
        }
    }

    /// [`Collector::shade_words`] for the words of `[start, end)`.
    ///
    /// # Safety
    /// The range is readable memory (read as `usize` words, aligned down).
    pub unsafe fn shade_conservative(&self, start: usize, end: usize) {
        if self.phase.barrier_on() {
            let mut words = Vec::new();
            // SAFETY: the caller's contract.
            unsafe {
                crate::roots::Tracer::new(&mut |w, _| words.push(w)).scan_conservative(start, end)
            };
            self.shade_words(words);
        }
    }

    /// Cycles finished so far.
    pub fn cycles_finished(&self) -> u32 {
        *self.finished.lock()
    }

    /// Cycles started so far.
    pub fn cycles_started(&self) -> u32 {
        self.started.load(Ordering::Acquire)
    }

    /// Blocks the calling thread until `n` cycles have finished. (The runtime parks its
    /// goroutines instead; this is for threads that are not mutators of the heap.)
    pub fn wait_cycle(&self, n: u32) {
        let mut f = self.finished.lock();
        while *f < n {
            f = self.finished_cv.wait(f);
        }
    }

    /// Go's `debug.SetGCPercent`: sets GOGC (`None` = off), returns the old setting.
    pub fn set_gogc(&self, gogc: Option<u32>) -> Option<u32> {
        let mut p = self.pacer.lock();
        let old = std::mem::replace(&mut p.gogc, gogc);
        self.retarget(&p);
        old
    }

    /// Go's `debug.SetMemoryLimit`: sets the soft limit (`None` = none), returns the old one.
    pub fn set_memory_limit(&self, limit: Option<u64>) -> Option<u64> {
        let mut p = self.pacer.lock();
        let old = std::mem::replace(&mut p.memory_limit, limit);
        self.retarget(&p);
        old
    }

    /// Bytes the last cycle marked, if there was one.
    pub(crate) fn last_marked(&self) -> Option<u64> {
        self.stats.lock().history.back().map(|r| r.heap_live)
    }

    /// Sets goal and trigger from the last cycle's live heap and the pacer's estimates.
    pub(crate) fn retarget(&self, p: &Pacer) -> (u64, u64) {
        let live = self.last_marked().unwrap_or(0);
        let roots = self.stats.lock().history.back().map_or(0, |r| r.root_bytes);
        let goal = p.goal(live, roots, self.overhead());
        let trigger = if self.config.stop_the_world {
            goal
        } else {
            p.trigger(live, goal, self.estimates.lock().runway())
        };
        self.goal.store(goal, Ordering::Relaxed);
        self.trigger.store(trigger, Ordering::Relaxed);
        self.early_trigger.store(trigger, Ordering::Relaxed);
        self.stats.lock().next_gc = goal;
        (goal, trigger)
    }

    /// Memory that is not heap objects, counted against the memory limit.
    pub(crate) fn overhead(&self) -> u64 {
        let m = self.heap.mem_stats();
        (m.sys - m.heap_sys) + (m.heap_inuse - m.heap_alloc.min(m.heap_inuse))
    }

    /// Scan work a mutator owes per byte it allocates now (see
    /// [`assist_work_per_byte`]).
    pub(crate) fn assist_work_per_byte(&self, q: &MarkQueue) -> f64 {
        assist_work_per_byte(
            self.heap.heap_live(),
            self.mark_trigger.load(Ordering::Relaxed),
            self.goal.load(Ordering::Relaxed),
            self.mark_expected.load(Ordering::Relaxed),
            self.mark_max_work.load(Ordering::Relaxed),
            q.scan_work(),
            self.pacer.lock().gogc,
        )
        .max(1e-6)
    }

    /// Records an assist's time, and moves the CPU limiter.
    pub(crate) fn note_assist(&self, q: &MarkQueue, d: Duration) {
        let ns = d.as_nanos() as u64;
        q.note_cpu(MarkCpu::Assist, ns);
        let total = self.gc_cpu_total.fetch_add(ns, Ordering::Relaxed) + ns;
        self.update_limiter(total);
    }

    /// Moves the CPU limiter's bucket (at most every millisecond).
    pub(crate) fn update_limiter(&self, gc_cpu_total: u64) {
        let on = self.limiter.lock().update(gc_cpu_total, Instant::now());
        self.limiter_on.store(on, Ordering::Relaxed);
    }

    /// True while the GC CPU limiter keeps assists off.
    pub fn limiter_on(&self) -> bool {
        self.limiter_on.load(Ordering::Relaxed)
    }

    /// Sends gctrace lines to `out` instead of stderr (when tracing is on).
    pub fn set_trace_output(&self, out: Box<dyn Write + Send>) {
        *self.trace_out.lock() = Some(out);
    }

    /// Adds a finished cycle to the statistics (and prints its gctrace line).
    pub(crate) fn record(&self, mut r: CycleRecord) -> CycleRecord {
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut stats = self.stats.lock();
        r.number = stats.num_gc + 1;
        stats.record(r.clone(), end);
        if self.config.trace {
            let elapsed = self.created.elapsed().as_nanos() as u64;
            let procs = self.config.mark_workers.max(1) as u64;
            let pct = (stats.gc_cpu_ns * 100) / (elapsed * procs).max(1);
            let line = gctrace_line(&r, pct, procs as usize);
            drop(stats);
            match self.trace_out.lock().as_mut() {
                Some(out) => {
                    let _ = writeln!(out, "{line}");
                }
                // Not `eprintln!`, which panics when stderr is a closed pipe (`| head`):
                // inside a stop, on a thread that holds the world, that panic hung the
                // process. Go ignores a failed trace write too.
                None => {
                    let _ = writeln!(io::stderr(), "{line}");
                }
            }
        }
        r
    }

    /// Wakes the background sweeper (or sweeps now, without one) and has it return memory
    /// over `retain` bytes to the OS.
    pub(crate) fn start_background_sweep(&self, retain: u64) {
        match &self.sweeper {
            Some(s) => s.wake(retain),
            None => scavenge_to(&self.heap, retain),
        }
    }

    /// A statistics snapshot: the heap's (exact for flushed mcaches) and the collector's.
    pub fn mem_stats(&self) -> MemStats {
        let mut m = self.heap.mem_stats();
        let elapsed = self.created.elapsed().as_nanos() as u64;
        self.stats
            .lock()
            .fill(&mut m, elapsed, self.config.mark_workers);
        m
    }

    /// Every cycle so far (the last 65,536), oldest first.
    pub fn cycles(&self) -> Vec<CycleRecord> {
        self.stats.lock().history.iter().cloned().collect()
    }

    /// A processor of the embedder went idle: while a cycle marks, idle mark workers may
    /// use it (the runtime calls this when a P is put on the idle list).
    #[inline]
    pub fn proc_idle(&self) {
        if self.phase.barrier_on() {
            if let Some(w) = &self.workers {
                w.proc_idle();
            }
        }
    }

    /// Background mark worker threads (0 when marking is stop-the-world or mutator-only).
    pub fn background_workers(&self) -> usize {
        self.workers.as_ref().map_or(0, |w| w.len())
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Stops the workers first: a cycle abandoned with its heap must not mark on.
        self.workers.take();
        if let Some(s) = self.sweeper.take() {
            s.stop();
        }
    }
}

/// Returns free memory to the OS until the heap keeps at most `retain` bytes backed.
fn scavenge_to(heap: &MHeap, retain: u64) {
    let (in_use, free, released) = heap.page_summary();
    let backed = (in_use + free - released) as u64;
    if backed > retain {
        heap.scavenge((backed - retain) as usize);
    }
}

/// Moves the calling thread to Linux's `SCHED_IDLE`: it runs only on a core nothing else
/// wants. For the background sweeper: Go's `bgsweep` yields to every goroutine that wants
/// its P, and a sweeper thread competing with the mutators at their priority took their
/// cores for scheduler slices (stalls of several milliseconds). A sweeper preempted while
/// holding an mcentral's lock costs little: a mutator blocking on the lock frees its core.
fn set_idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: changes the calling thread's (pid 0) policy; `param` is a valid struct
        // for the duration of the call. Failure leaves the thread at normal priority.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    }
}

/// Go's `bgsweep` and background scavenger, on one OS thread per heap, at idle priority.
struct Sweeper {
    shared: Arc<SweeperShared>,
    thread: Option<JoinHandle<()>>,
}

struct SweeperShared {
    state: Mutex<SweeperState>,
    wake: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct SweeperState {
    pending: bool,
    retain: u64,
}

impl Sweeper {
    fn start(heap: Arc<MHeap>) -> io::Result<Sweeper> {
        let shared = Arc::new(SweeperShared {
            state: Mutex::new(SweeperState::default()),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("minigo-bgsweep".into())
            .spawn(move || {
                set_idle_priority();
                loop {
                    let retain = {
                        let mut st = s.state.lock();
                        while !st.pending && !s.stop.load(Ordering::Acquire) {
                            st = s.wake.wait(st);
                        }
                        if s.stop.load(Ordering::Acquire) {
                            return;
                        }
                        st.pending = false;
                        st.retain
                    };
                    while !s.stop.load(Ordering::Relaxed) {
                        if !heap.sweep_one() {
                            break;
                        }
                    }
                    scavenge_to(&heap, retain);
                }
            })?;
        Ok(Sweeper {
            shared,
            thread: Some(thread),
        })
    }

    fn wake(&self, retain: u64) {
        let mut st = self.shared.state.lock();
        st.pending = true;
        st.retain = retain;
        self.shared.wake.notify_one();
    }

    fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Release);
        {
            let _st = self.shared.state.lock();
            self.shared.wake.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
