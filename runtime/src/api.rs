//! Building and running a runtime, and the goroutine-side functions of Go's `runtime`
//! package.

use std::fmt;
use std::io::{self, Write};

use minigo_alloc_core::sync::{Arc, Ordering};
use minigo_gc::{Collector, EnvError, GcConfig, MemProfileRecord, MemStats};

use crate::sched::{current, with_world_stopped, Finish, Sched};
use crate::stack::DEFAULT_STACK_SIZE;
use crate::typed_heap::Mutation;

/// How a run went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    /// A goroutine panicked (the run stops, as Go's program would).
    Panic {
        /// The goroutine's id (main is 1).
        goroutine: u64,
        /// The panic's message.
        message: String,
    },
    /// Every goroutine was asleep on something only another goroutine could end (a
    /// channel, a `select`, a `WaitGroup`), with no timer, `blocking` call or collection
    /// that could wake one (Go's "all goroutines are asleep - deadlock!").
    Deadlock {
        /// Goroutines alive (asleep) at the end.
        goroutines: usize,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Panic { goroutine, message } => {
                write!(f, "goroutine {goroutine} panicked: {message}")
            }
            RunError::Deadlock { goroutines } => write!(
                f,
                "all goroutines are asleep - deadlock! ({goroutines} asleep)"
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Why a runtime could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// An environment variable did not parse.
    Env(EnvError),
    /// The OS refused memory or a thread.
    Os(std::io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Env(e) => write!(f, "{e}"),
            BuildError::Os(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Configures a [`Runtime`]. Defaults come from the environment as in Go (`GOMAXPROCS`,
/// `GOGC`, `GOMEMLIMIT`, `GODEBUG=gctrace=1,gccheckmark=1,gcstoptheworld=1,memprofilerate=N`); the methods
/// override them.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    procs: Option<usize>,
    gogc: Option<Option<u32>>,
    memory_limit: Option<Option<u64>>,
    max_heap: Option<Option<usize>>,
    gctrace: Option<bool>,
    verify: Option<bool>,
    stop_the_world: Option<bool>,
    generational: Option<bool>,
    mem_profile_rate: Option<usize>,
    stress: bool,
    stack_size: Option<usize>,
    abort_on_panic: bool,
}

impl Builder {
    /// Number of Ps (Go's GOMAXPROCS). Default: `GOMAXPROCS`, else the available cores.
    pub fn procs(mut self, n: usize) -> Self {
        self.procs = Some(n.max(1));
        self
    }

    /// GOGC (`None` = off).
    pub fn gogc(mut self, gogc: Option<u32>) -> Self {
        self.gogc = Some(gogc);
        self
    }

    /// The soft memory limit (GOMEMLIMIT).
    pub fn memory_limit(mut self, limit: Option<u64>) -> Self {
        self.memory_limit = Some(limit);
        self
    }

    /// A hard limit on the heap: allocations beyond it fail with out-of-memory.
    pub fn max_heap(mut self, max: Option<usize>) -> Self {
        self.max_heap = Some(max);
        self
    }

    /// A gctrace line per collection on stderr.
    pub fn gctrace(mut self, on: bool) -> Self {
        self.gctrace = Some(on);
        self
    }

    /// The collector's verify mode (Go's gccheckmark).
    pub fn verify(mut self, on: bool) -> Self {
        self.verify = Some(on);
        self
    }

    /// Go's `GODEBUG=gcstoptheworld=1`: every cycle marks with the world stopped, in one
    /// pause (for comparison and debugging). Default: the environment's `GODEBUG`, else
    /// concurrent marking.
    pub fn stop_the_world(mut self, on: bool) -> Self {
        self.stop_the_world = Some(on);
        self
    }

    /// Generational collection (`GODEBUG=gcgen=0` turns it off): minor cycles between
    /// major ones mark only what was allocated since the last cycle and is still
    /// reachable (see `minigo_gc::GcConfig::generational`). Default: the environment's
    /// `GODEBUG`, else on.
    pub fn generational(mut self, on: bool) -> Self {
        self.generational = Some(on);
        self
    }

    /// Go's `runtime.MemProfileRate`: the heap profile samples one allocation per this
    /// many bytes on average (1: every allocation; 0: off). Default: the environment's
    /// `GODEBUG=memprofilerate=N`, else 512 KiB.
    pub fn mem_profile_rate(mut self, bytes: usize) -> Self {
        self.mem_profile_rate = Some(bytes);
        self
    }

    /// Collect before every allocation slow path (for testing rooting).
    pub fn gc_stress(mut self, on: bool) -> Self {
        self.stress = on;
        self
    }

    /// Usable bytes of each goroutine stack (default 1 MiB of address space, backed
    /// lazily: a goroutine's resident stack is what it touched, and a collection gives back
    /// what a parked one no longer uses). Rounded up to whole pages and to at least 64 KiB,
    /// the room an asynchronous preemption needs.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// A panicking goroutine aborts the process (exit status 2, as Go) instead of making
    /// `run` return an error.
    pub fn abort_on_panic(mut self, on: bool) -> Self {
        self.abort_on_panic = on;
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let mut gc = GcConfig::from_env().map_err(BuildError::Env)?;
        let procs =
            match self.procs {
                Some(n) => n,
                None => {
                    match std::env::var("GOMAXPROCS") {
                        Ok(v) => v.trim().parse::<usize>().ok().filter(|&n| n > 0).ok_or(
                            BuildError::Env(EnvError {
                                var: "GOMAXPROCS",
                                value: v,
                                expected: "a positive number",
                            }),
                        )?,
                        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    }
                }
            };
        if let Some(g) = self.gogc {
            gc.gogc = g;
        }
        if let Some(l) = self.memory_limit {
            gc.memory_limit = l;
        }
        if let Some(m) = self.max_heap {
            gc.max_heap = m;
        }
        if let Some(t) = self.gctrace {
            gc.trace = t;
        }
        if let Some(v) = self.verify {
            gc.verify = v;
        }
        if let Some(s) = self.stop_the_world {
            gc.stop_the_world = s;
        }
        if let Some(g) = self.generational {
            gc.generational = g;
        }
        if let Some(r) = self.mem_profile_rate {
            gc.mem_profile_rate = r;
        }
        gc.stress = self.stress;
        gc.mark_workers = procs;
        let collector = Collector::new(gc).map_err(BuildError::Os)?;
        crate::checked::quarantine(collector.heap());
        crate::signal::install();
        crate::preempt::install();
        crate::tls::init();
        let stack = self.stack_size.unwrap_or(DEFAULT_STACK_SIZE);
        Ok(Runtime {
            sched: Arc::new(Sched::new(collector, procs, stack, self.abort_on_panic)),
        })
    }
}

/// A runtime: Ps, Ms and a heap. `run` it with a main goroutine.
///
/// ```
/// use minigo_runtime::{go, Chan, Runtime};
/// let r = Runtime::builder().procs(2).build().unwrap().run(|_| {
///     let ch = Chan::new(0);
///     let tx = ch.clone();
///     go(move || tx.send(6 * 7));
///     assert_eq!(ch.recv(), Some(42));
/// });
/// assert!(r.is_ok());
/// ```
///
/// A panic in any goroutine ends the run with its id and message; so does a deadlock:
///
/// ```
/// use minigo_runtime::{Chan, RunError, Runtime};
/// let r = Runtime::new().unwrap().run(|_| {
///     Chan::<u8>::new(0).recv(); // no sender will ever come
/// });
/// assert!(matches!(r, Err(RunError::Deadlock { .. })));
/// ```
pub struct Runtime {
    sched: Arc<Sched>,
}

impl Runtime {
    /// A builder with the environment's defaults.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A runtime with the environment's defaults.
    pub fn new() -> Result<Runtime, BuildError> {
        Builder::default().build()
    }

    /// The collector (statistics and cycle history, before or after a run). Its steps
    /// that could free objects in use are `unsafe`: a run's heap cannot be swept from
    /// outside its collector in safe code.
    ///
    /// ```compile_fail,E0133
    /// let rt = minigo_runtime::Runtime::new().unwrap();
    /// rt.collector().heap().start_sweep_cycle(); // would free every unmarked object
    /// ```
    pub fn collector(&self) -> &Arc<Collector> {
        &self.sched.collector
    }

    /// Runs `main` as goroutine 1 and returns when it returns, when any goroutine panics,
    /// or when every goroutine is asleep on the others (a deadlock).
    ///
    /// Other goroutines end with the run, as Go's end with the program when main
    /// returns: a parked one is never resumed, and a running one stops for good at its
    /// next safepoint — an allocation past the mcache's fast path, a channel operation or
    /// `select`, `yield_now`, `sleep`, `gc` — or, inside `blocking`, when the call
    /// returns; one in a loop without safepoints is preempted asynchronously and stops
    /// there. `run` returns once they all have, so no goroutine of the run executes after
    /// it; their stacks are freed without unwinding (no destructors run), as Go's are.
    ///
    /// `main` gets the run's [`Mutation`] token, whose brand `'gc` every handle it
    /// allocates carries. `main` is a closure for every `'gc`, so nothing outside the run
    /// can name the brand, and no handle outlives the run.
    pub fn run<F>(self, main: F) -> Result<(), RunError>
    where
        F: for<'gc> FnOnce(Mutation<'gc>) + Send + 'static,
    {
        let _running = crate::barrier::RunningHeap::enter(&self.sched.collector);
        self.sched.spawn(Box::new(move || main(Mutation::new())));
        self.sched.start();
        match self.sched.wait_finish() {
            Finish::Main(Ok(())) => Ok(()),
            Finish::Main(Err(message)) => Err(RunError::Panic {
                goroutine: 1,
                message,
            }),
            Finish::Panic { goroutine, message } => Err(RunError::Panic { goroutine, message }),
            Finish::Deadlock { goroutines } => Err(RunError::Deadlock { goroutines }),
        }
    }
}

/// How many times a goroutine of this run has been preempted asynchronously (stopped by
/// sysmon's signal away from any safepoint: for a stop of the world, or at the end of its
/// time slice).
pub fn async_preemptions() -> u64 {
    current().sched().async_preemptions.load(Ordering::Relaxed)
}

/// Starts a goroutine running `f` (Go's `go f()`); returns its id. A closure that captures
/// handles (`Gc`, `Global`, ...) starts with [`Mutation::go`].
pub fn go<F: FnOnce() + Send + 'static>(f: F) -> u64 {
    let sched = current().sched().arc();
    sched.spawn(Box::new(f))
}

impl<'gc> Mutation<'gc> {
    /// Starts a goroutine running `f`, which may capture this run's handles (Go's
    /// `go f()`); returns its id. [`go`] starts one that captures none.
    ///
    /// ```
    /// use minigo_runtime::{gc, Chan, Gc, HeapType, Runtime};
    /// #[derive(HeapType)]
    /// struct Entry { key: u64 }
    /// Runtime::new().unwrap().run(|mu| {
    ///     let e = Gc::new(mu, Entry { key: 7 }).unwrap();
    ///     let done = Chan::new(0);
    ///     let tx = done.clone();
    ///     mu.go(move || {
    ///         gc(); // `e` lives: the closure holds it, then this goroutine's stack
    ///         tx.send(e.key);
    ///     });
    ///     assert_eq!(done.recv(), Some(7));
    /// }).unwrap();
    /// ```
    pub fn go<F: FnOnce() + Send + 'gc>(self, f: F) -> u64 {
        let f: Box<dyn FnOnce() + Send + 'gc> = Box::new(f);
        // SAFETY: the closure outlives its brand only as a box the scheduler holds: it
        // runs, if at all, on a goroutine of this run, and no goroutine of a run executes
        // after `run` returns (`Runtime::run`); one that never started is forgotten with
        // its G, not dropped (`Sched`'s drop). So nothing it captures is used after `'gc`.
        let f: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(f) };
        current().sched().arc().spawn(f)
    }
}

/// Goroutines that exist now (Go's `runtime.NumGoroutine`).
pub fn num_goroutine() -> usize {
    current()
        .sched()
        .ngoroutines
        .load(minigo_alloc_core::sync::Ordering::Relaxed)
}

/// Ps of the running runtime (Go's `runtime.GOMAXPROCS(0)`).
pub fn procs() -> usize {
    current().sched().procs()
}

/// The running goroutine's id.
pub fn goroutine_id() -> u64 {
    current().g().id()
}

/// The collector's record of every cycle so far (the last 65,536), oldest first: each
/// one's pauses, marking time and CPU, heap sizes and goals (what Go's runtime/metrics and
/// gctrace tell). Does not stop the world.
pub fn gc_cycles() -> Vec<minigo_gc::CycleRecord> {
    current().sched().collector.cycles()
}

/// The heap profile's records as of the last completed collection (Go's
/// `runtime.MemProfile`): per allocating stack and size, the sampled objects allocated and
/// freed, not scaled. Call [`gc`](crate::gc) first for the heap as it is now.
pub fn mem_profile() -> Vec<MemProfileRecord> {
    current().sched().collector.mem_profile()
}

/// Writes the heap profile as of the last completed collection to `w` (Go's
/// `pprof.WriteHeapProfile`): gzip-compressed profile.proto with Go's four sample types,
/// its stacks symbolized, for `go tool pprof`. Call [`gc`](crate::gc) first, as
/// `go test -memprofile` does, for the heap as it is now. The sampling rate is
/// [`Builder::mem_profile_rate`].
///
/// The file is written without holding a P (inside [`blocking`](crate::blocking)):
/// symbolizing reads the binary's debug information, and a stop of the world need not
/// wait for it.
pub fn write_heap_profile(w: impl Write) -> io::Result<()> {
    let c = current().sched().collector.clone();
    let records = c.mem_profile();
    let rate = c.config().mem_profile_rate;
    crate::blocking(move || minigo_gc::pprof::write_heap_profile(&records, rate, w))
}

/// Memory statistics, with every P's allocations counted (Go's `runtime.ReadMemStats`,
/// which also stops the world).
pub fn read_mem_stats() -> MemStats {
    let mut out = None;
    let mut idle_stacks = Vec::new();
    with_world_stopped(|s| {
        for p in 0..s.procs() {
            // SAFETY: the world is stopped.
            unsafe { s.state(p) }.flush_stats();
            // SAFETY: as above: no M uses P `p`'s free lists.
            idle_stacks.extend(unsafe { s.local_free(p) }.stack_ranges());
        }
        out = Some(s.collector.mem_stats());
    });
    let mut m = out.expect("the job ran");
    // Outside the stop: the stacks' resident pages (`stack::resident`).
    let sched = current().sched();
    idle_stacks.extend(sched.free.warm_stack_ranges());
    let idle: u64 = idle_stacks
        .iter()
        .map(|&(lo, top)| crate::stack::resident(lo, top))
        .sum();
    m.stack_inuse = sched.goroutine_stacks_resident();
    // Go's StackSys also counts stack memory held for reuse.
    m.stack_sys = m.stack_inuse + idle;
    m
}
