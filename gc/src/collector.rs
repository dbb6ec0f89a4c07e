//! The collector: one cycle from roots to sweeping, the pacer's trigger, the background
//! sweeper, the statistics. Shared by everything that allocates from one heap.
//!
//! A cycle, with the world stopped by the caller (the standalone [`Mutator`](crate::Mutator)
//! is the only mutator of its heap; the runtime stops its goroutines):
//!
//! 1. sweep termination: finish the last cycle's sweeping and close sweeping;
//! 2. mark: shade the roots, then drain grey objects on the mark workers (in parallel once
//!    the heap is big enough to pay for starting them); in verify mode, mark again
//!    single-threaded and compare;
//! 3. mark termination: let the embedder clear its weak tables, make the marked bytes the
//!    new live heap, start the sweep cycle (every span becomes unswept), release every
//!    mcache, set the next goal;
//! 4. after the world restarts, spans are swept lazily by allocation and by the background
//!    sweeper, which then returns memory over the retention target to the OS.

use std::io::{self, Write};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use minigo_alloc_core::sync::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering};
use minigo_alloc_core::{HeapConfig, MCache, MHeap, MemStats};

use crate::config::GcConfig;
use crate::mark;
use crate::pacer::Pacer;
use crate::roots::{Liveness, Roots, Tracer};
use crate::stats::{gctrace_line, CycleRecord, GcStats};
use crate::verify;

/// Bytes expected to be marked from which marking uses more than one worker: below it,
/// starting threads costs more than it saves.
const PARALLEL_MARK_MIN: u64 = 1 << 20;

/// The collector of one heap.
pub struct Collector {
    heap: Arc<MHeap>,
    config: GcConfig,
    pacer: Mutex<Pacer>,
    /// `heap_live` at which the pacer wants the next cycle.
    trigger: AtomicU64,
    stats: Mutex<GcStats>,
    /// One cycle at a time.
    cycle: Mutex<()>,
    created: Instant,
    trace_out: Mutex<Option<Box<dyn Write + Send>>>,
    sweeper: Option<Sweeper>,
}

impl Collector {
    /// A collector over a new heap.
    pub fn new(config: GcConfig) -> io::Result<Arc<Collector>> {
        let heap = MHeap::new(HeapConfig {
            address_space: config.address_space,
            max_heap: config.max_heap,
        })?;
        let pacer = Pacer {
            gogc: config.gogc,
            memory_limit: config.memory_limit,
        };
        let first_goal = pacer.goal(0, 0);
        let sweeper = if config.background_sweep {
            Some(Sweeper::start(heap.clone())?)
        } else {
            None
        };
        Ok(Arc::new(Collector {
            heap,
            pacer: Mutex::new(pacer),
            trigger: AtomicU64::new(first_goal),
            stats: Mutex::new(GcStats {
                next_gc: first_goal,
                ..GcStats::default()
            }),
            cycle: Mutex::new(()),
            created: Instant::now(),
            trace_out: Mutex::new(None),
            sweeper,
            config,
        }))
    }

    /// The heap this collector manages.
    pub fn heap(&self) -> &Arc<MHeap> {
        &self.heap
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &GcConfig {
        &self.config
    }

    /// True when the pacer wants a cycle (heap live has reached the goal). Cheap: an
    /// allocation slow path asks it.
    #[inline]
    pub fn should_collect(&self) -> bool {
        self.heap.heap_live() >= self.trigger.load(Ordering::Relaxed)
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
    fn last_marked(&self) -> Option<u64> {
        self.stats.lock().history.back().map(|r| r.heap_live)
    }

    fn retarget(&self, p: &Pacer) {
        let live = self.last_marked().unwrap_or(0);
        let goal = p.goal(live, self.overhead());
        self.trigger.store(goal, Ordering::Relaxed);
        self.stats.lock().next_gc = goal;
    }

    /// Memory that is not heap objects, counted against the memory limit.
    fn overhead(&self) -> u64 {
        let m = self.heap.mem_stats();
        (m.sys - m.heap_sys) + (m.heap_inuse - m.heap_alloc.min(m.heap_inuse))
    }

    /// Sends gctrace lines to `out` instead of stderr (when tracing is on).
    pub fn set_trace_output(&self, out: Box<dyn Write + Send>) {
        *self.trace_out.lock() = Some(out);
    }

    /// Runs a whole collection. The caller guarantees that nothing else allocates from
    /// this heap or writes into it until this returns, and passes every mcache of the heap
    /// (each is released so that spans it cached get swept). `forced` marks a cycle the
    /// program asked for.
    ///
    /// Panics in verify mode if marking missed a reachable object or found a dangling
    /// pointer, with the object, its span and the path to it.
    pub fn collect(
        &self,
        roots: &mut dyn Roots,
        caches: &mut [&mut MCache],
        forced: bool,
    ) -> CycleRecord {
        let _one = self.cycle.lock();
        let heap = &*self.heap;
        let t0 = Instant::now();
        let start_ns = (t0 - self.created).as_nanos() as u64;
        let heap_before = heap.heap_live();

        heap.finish_sweep();
        let t1 = Instant::now();

        // The heap before the cycle is mostly garbage when it is small next to the goal;
        // the last cycle's marked bytes say better how much there is to mark.
        let expected = heap_before.min(self.last_marked().unwrap_or(u64::MAX));
        let nworkers = if expected >= PARALLEL_MARK_MIN {
            self.config.mark_workers.max(1)
        } else {
            1
        };
        let (shared, mut workers) = mark::workers(heap, nworkers);
        {
            let w0 = &mut workers[0];
            roots.trace(&mut Tracer::new(&mut |addr, _| {
                w0.shade(&shared, addr);
            }));
        }
        let roots_ns = t1.elapsed().as_nanos() as u64;
        mark::run(&shared, &mut workers);
        let marked: u64 = workers.iter().map(|w| w.marked_bytes).sum();
        let objects: u64 = workers.iter().map(|w| w.marked_objects).sum();
        let mark_cpu_ns = roots_ns
            + workers
                .iter()
                .map(|w| w.busy.as_nanos() as u64)
                .sum::<u64>();
        drop(workers);
        drop(shared);
        if self.config.verify {
            match verify::verify(heap, roots) {
                Err(report) => panic!("minigo gc verify (cycle {}): {report}", self.stats.lock().num_gc + 1),
                Ok(reachable) if reachable != objects => panic!(
                    "minigo gc verify (cycle {}): marked {objects} objects but {reachable} are reachable",
                    self.stats.lock().num_gc + 1
                ),
                Ok(_) => {}
            }
        }
        let t2 = Instant::now();

        roots.clear_weak(&Liveness::new(heap));
        heap.set_heap_live(marked);
        heap.start_sweep_cycle();
        for c in caches.iter_mut() {
            c.release_all();
        }
        let pacer = *self.pacer.lock();
        let goal = pacer.goal(marked, self.overhead());
        self.trigger.store(goal, Ordering::Relaxed);
        let t3 = Instant::now();

        let record = CycleRecord {
            number: 0,
            start_ns,
            sweep_term_ns: (t1 - t0).as_nanos() as u64,
            mark_ns: (t2 - t1).as_nanos() as u64,
            mark_term_ns: (t3 - t2).as_nanos() as u64,
            mark_cpu_ns,
            pause_ns: (t3 - t0).as_nanos() as u64,
            heap_before,
            heap_live: marked,
            objects_live: objects,
            next_goal: goal,
            workers: nworkers,
            forced,
        };
        let record = self.record(record);
        match &self.sweeper {
            Some(s) => s.wake(pacer.retain(goal)),
            None => scavenge_to(heap, pacer.retain(goal)),
        }
        record
    }

    fn record(&self, mut r: CycleRecord) -> CycleRecord {
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
                None => eprintln!("{line}"),
            }
        }
        r
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

    /// The one function every store of a pointer into a heap object goes through. Today
    /// it only stores: the collector stops the world to mark. It is where a write barrier
    /// (Go's hybrid barrier) goes when marking becomes concurrent, so no pointer store may
    /// bypass it.
    ///
    /// The store is atomic (relaxed, word-sized: a plain `mov` on x86-64), so goroutines on
    /// other threads may read the word meanwhile without a data race. It takes no collector:
    /// callers on the hot path (every `GcCell::set`) need not find theirs, and Go's barrier
    /// too is switched by one global flag, not per heap.
    ///
    /// # Safety
    /// `slot` is an aligned word of a live heap object that its layout calls a pointer, and
    /// `value` is null, a heap object of the slot's heap, or an address outside every heap.
    #[inline(always)]
    pub unsafe fn write(slot: *mut usize, value: usize) {
        // SAFETY: the caller's contract: an aligned, live word.
        unsafe { std::sync::atomic::AtomicUsize::from_ptr(slot) }
            .store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
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

/// Go's `bgsweep` and background scavenger, on one OS thread per heap.
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
            .spawn(move || loop {
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
