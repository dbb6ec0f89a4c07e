//! Running one workload on a fresh runtime and measuring it: wall and CPU time, the
//! collector's cycle records, and a time series of the heap and the process's RSS.
//!
//! Data flow: [`measure`] builds a runtime from the [`Options`], starts a sampler thread
//! that reads the heap's counters (atomics and a short lock, never a heap object) and
//! `/proc/self/statm` every two milliseconds (less often on long runs), runs the job as the main goroutine, then
//! collects everything into a [`Summary`], which the table, JSON and plot read. The
//! runtime is gone (its heap unmapped) before `measure` returns, so runs in one process do
//! not see each other's memory.

use std::fs::File;
use std::io::BufWriter;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use minigo_gc::alloc_core::MHeap;
use minigo_gc::CycleRecord;
use minigo_runtime::{gc, read_mem_stats, write_heap_profile, BuildError, MemStats, Runtime};

use super::args::Options;
use crate::workloads::{Job, Out, Verdict};

/// One look at the heap and the process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the run's runtime was built.
    pub t: f64,
    /// Go's heapLive: what the pacer compares with the goal.
    pub heap_live: u64,
    /// Go's HeapInuse: bytes in spans that hold objects.
    pub heap_inuse: u64,
    /// Resident set of the whole process.
    pub rss: u64,
}

/// Everything measured about one run.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The workload and its arguments.
    pub workload: String,
    /// Ps the runtime had.
    pub procs: usize,
    /// GOGC in force (`None` = off).
    pub gogc: Option<u32>,
    /// The soft memory limit in force.
    pub memlimit: Option<u64>,
    /// Cycles mark with the world stopped (`GODEBUG=gcstoptheworld=1`).
    pub stop_the_world: bool,
    /// Minor collections between major ones (off with `GODEBUG=gcgen=0`).
    pub generational: bool,
    /// Young objects are promoted after their second cycle (`GODEBUG=gcage=1`).
    pub ages: bool,
    /// What a minor cycle allocates while it marks stays young (off with
    /// `GODEBUG=gcblackyoung=0`).
    pub black_young: bool,
    /// From the start of the main goroutine to the end of the job (what `--memprofile` and
    /// `--memstats` do after it is not counted).
    pub wall: Duration,
    /// User + system time of the process over the same span (every thread).
    pub cpu: Duration,
    /// Every collection, oldest first; times are since the collector was created, which
    /// is within the runtime's build time (well under a millisecond) of the samples' zero.
    pub cycles: Vec<CycleRecord>,
    /// The heap goal before the first collection.
    pub first_goal: u64,
    /// The heap over time (thinned to at most a few thousand points).
    pub samples: Vec<Sample>,
    /// The most HeapInuse seen.
    pub peak_heap: u64,
    /// The most RSS seen (the kernel's high-water mark when it can be reset per run).
    pub peak_rss: u64,
    /// The workload's check of its own output, or how the run failed.
    pub verdict: Verdict,
    /// What the workload printed.
    pub output: String,
    /// `--memstats`: the statistics at the end of the run.
    pub mem_stats: Option<MemStats>,
    /// `--memprofile`: whether the profile was written (`None`: the run ended before it
    /// got there).
    pub profile: Option<Result<(), String>>,
}

impl Summary {
    /// Number of collections.
    pub fn collections(&self) -> usize {
        self.cycles.len()
    }

    /// How many of them were minor (generational mode).
    pub fn minor_collections(&self) -> usize {
        self.cycles.iter().filter(|c| c.minor).count()
    }

    /// All pauses added up. A pause is a stop of the world by the collector, from the
    /// moment every P has stopped: the wait for running goroutines to reach a safepoint is
    /// not in it. A concurrent cycle stops the world twice (more if ending marking needed
    /// retries); a stop-the-world cycle once.
    pub fn pause_total(&self) -> Duration {
        Duration::from_nanos(self.cycles.iter().map(|c| c.pause_ns).sum())
    }

    /// The longest pause.
    pub fn pause_max(&self) -> Duration {
        Duration::from_nanos(
            self.cycles
                .iter()
                .map(|c| c.longest_pause_ns)
                .max()
                .unwrap_or(0),
        )
    }

    /// Time mutators spent in assists.
    pub fn assist_total(&self) -> Duration {
        Duration::from_nanos(self.cycles.iter().map(|c| c.assist_cpu_ns).sum())
    }

    /// The longest single assist.
    pub fn longest_assist(&self) -> Duration {
        Duration::from_nanos(
            self.cycles
                .iter()
                .map(|c| c.longest_assist_ns)
                .max()
                .unwrap_or(0),
        )
    }

    /// The collector's share of the CPU the run had (its processors times its wall time):
    /// pauses stop every processor; marking beside the mutators counts what it used,
    /// idle-core marking excepted (as Go's GCCPUFraction).
    pub fn gc_cpu_fraction(&self) -> f64 {
        let procs = self.procs.max(1) as f64;
        let gc: u64 = self
            .cycles
            .iter()
            .map(|c| {
                let pause = c.pause_ns as f64 * procs;
                if c.concurrent {
                    pause + (c.mark_cpu_ns - c.idle_cpu_ns) as f64
                } else {
                    pause
                }
            })
            .sum::<f64>() as u64;
        gc as f64 / (self.wall.as_secs_f64() * 1e9 * procs).max(1.0)
    }

    /// Every pause, sorted.
    pub fn pauses_sorted(&self) -> Vec<u64> {
        let mut p: Vec<u64> = self.cycles.iter().flat_map(|c| c.pauses.clone()).collect();
        p.sort_unstable();
        p
    }
}

/// Builds a runtime as `opts` say, runs `job` as its main goroutine, and measures it.
/// `echo` prints the workload's lines as they come.
///
/// With `profile` (the `--memprofile` file, opened by the caller so that a bad path is
/// reported before anything runs), the main goroutine collects once more after the job, as
/// `go test -memprofile` does, and writes the heap profile; `--memstats` reads the
/// statistics last. Neither counts in the run's wall time.
pub fn measure(
    job: &Job,
    opts: &Options,
    echo: bool,
    profile: Option<File>,
) -> Result<Summary, BuildError> {
    let mut b = Runtime::builder().gctrace(opts.gctrace).verify(opts.verify);
    if let Some(r) = opts.memprofilerate {
        b = b.mem_profile_rate(r);
    }
    if let Some(p) = opts.procs {
        b = b.procs(p);
    }
    if let Some(g) = opts.gogc {
        b = b.gogc(g);
    }
    if let Some(l) = opts.memlimit {
        b = b.memory_limit(l);
    }
    let t0 = Instant::now();
    let rt = b.build()?;
    let collector = rt.collector().clone();
    let first_goal = collector.mem_stats().next_gc;
    let (procs, gogc, memlimit, stop_the_world, generational, ages, black_young) = {
        let c = collector.config();
        (
            c.mark_workers,
            c.gogc,
            c.memory_limit,
            c.stop_the_world,
            c.generational,
            c.ages,
            c.black_young,
        )
    };

    let rss_reset = reset_peak_rss();
    let sampler = Sampler::start(collector.heap().clone(), t0);
    let out = Out::new(echo);
    let verdict: Arc<Mutex<Option<Verdict>>> = Arc::default();
    let after: Arc<Mutex<After>> = Arc::default();
    let memstats = opts.memstats;
    let cpu0 = cpu_time();
    let start = Instant::now();
    let run = {
        let (job, out, verdict, after) = (job.clone(), out.clone(), verdict.clone(), after.clone());
        rt.run(move |mu| {
            let v = job.run(mu, &out);
            let mut a = After {
                end: Some((Instant::now(), cpu_time())),
                ..After::default()
            };
            *verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(v);
            if let Some(f) = profile {
                gc();
                a.profile = Some(write_heap_profile(BufWriter::new(f)).map_err(|e| e.to_string()));
            }
            if memstats {
                a.mem_stats = Some(read_mem_stats());
            }
            *after.lock().unwrap_or_else(|e| e.into_inner()) = a;
        })
    };
    let after = std::mem::take(&mut *after.lock().unwrap_or_else(|e| e.into_inner()));
    let (end, cpu_end) = after.end.unwrap_or_else(|| (Instant::now(), cpu_time()));
    let wall = end.duration_since(start);
    let cpu = cpu_end.saturating_sub(cpu0);
    let (samples, sampled_peak_heap, sampled_peak_rss) = sampler.stop();
    let peak_rss = match (rss_reset, high_water_rss()) {
        (true, Some(hwm)) => hwm.max(sampled_peak_rss),
        _ => sampled_peak_rss,
    };
    let verdict = match run {
        Err(e) => Err(e.to_string()),
        Ok(()) => verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err("the workload did not finish".into())),
    };
    let cycles = collector.cycles();
    // The scheduler's threads let go of the runtime as they notice it has ended; wait for
    // them so that its heap is unmapped before the next run measures RSS.
    let deadline = Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&collector) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(collector);

    Ok(Summary {
        workload: job.label(),
        procs,
        gogc,
        memlimit,
        stop_the_world,
        generational,
        ages,
        black_young,
        wall,
        cpu,
        cycles,
        first_goal,
        samples,
        peak_heap: sampled_peak_heap,
        peak_rss,
        verdict,
        output: out.text(),
        mem_stats: after.mem_stats,
        profile: after.profile,
    })
}

/// What the main goroutine leaves after the job: when it ended, and the `--memprofile` and
/// `--memstats` results.
#[derive(Default)]
struct After {
    end: Option<(Instant, Duration)>,
    profile: Option<Result<(), String>>,
    mem_stats: Option<MemStats>,
}

/// Samples kept before the series is thinned (every other one dropped, the interval
/// doubled).
const MAX_SAMPLES: usize = 4096;

/// A thread that looks at the heap and RSS every `interval`.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<Sample>, u64, u64)>,
}

impl Sampler {
    fn start(heap: Arc<MHeap>, t0: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("minigo-sampler".into())
            .spawn(move || {
                // Often enough to see every cycle's sawtooth; each look costs a few
                // microseconds of the sampler's CPU, which the CPU column includes.
                let mut interval = Duration::from_millis(2);
                let (mut samples, mut peak_heap, mut peak_rss) = (Vec::new(), 0, 0);
                loop {
                    let done = flag.load(Ordering::Acquire);
                    let s = Sample {
                        t: t0.elapsed().as_secs_f64(),
                        heap_live: heap.heap_live(),
                        heap_inuse: heap.page_summary().0 as u64,
                        rss: current_rss().unwrap_or(0),
                    };
                    peak_heap = peak_heap.max(s.heap_inuse);
                    peak_rss = peak_rss.max(s.rss);
                    samples.push(s);
                    if done {
                        return (samples, peak_heap, peak_rss);
                    }
                    if samples.len() >= MAX_SAMPLES {
                        let mut i = 0;
                        samples.retain(|_| {
                            i += 1;
                            i % 2 == 1
                        });
                        interval *= 2;
                    }
                    std::thread::park_timeout(interval);
                }
            })
            .expect("a thread for the sampler");
        Sampler { stop, thread }
    }

    /// Takes a last sample and returns the series, the peak HeapInuse and the peak RSS.
    fn stop(self) -> (Vec<Sample>, u64, u64) {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        self.thread.join().expect("the sampler does not panic")
    }
}

/// User + system CPU time of the whole process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct we pass and nothing else; zeroed is a valid
    // rusage.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return Duration::ZERO;
        }
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident bytes now, from `/proc/self/statm`.
fn current_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// Resets the kernel's peak-RSS mark (VmHWM) to the current RSS, so that it measures this
/// run only. False where the kernel does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The kernel's peak RSS (VmHWM), in bytes.
fn high_water_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
