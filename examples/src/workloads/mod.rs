//! The mutator workloads the `minigo` CLI runs: what each is called, how its arguments
//! parse, and how it runs.
//!
//! Data flow: the CLI parses a workload's name and arguments into a [`Job`] (plain data),
//! builds a runtime, and calls [`Job::run`] as the body of the main goroutine. The workload
//! allocates only through the runtime (`Gc`, `GcSlice`, channels), writes its lines to an
//! [`Out`], and checks its own result, which comes back as a [`Verdict`]. Everything that
//! leaves a workload is plain Rust data: no `Gc` outlives the run.

pub mod binary_trees;
pub mod churn;
pub mod gcbench;
pub mod goroutines;
pub mod latency;
pub mod pipeline;

use minigo_runtime::Mutation;
use std::sync::{Arc, Mutex};

/// A workload's own judgement of its result: `Err` says what did not check out.
pub type Verdict = Result<(), String>;

/// Where a workload's output lines go. Always kept (tests and `--json` read it back);
/// also written to stdout as they come when a person runs one workload.
#[derive(Clone, Debug, Default)]
pub struct Out {
    text: Arc<Mutex<String>>,
    echo: bool,
}

impl Out {
    /// An output that keeps lines, and prints them too when `echo`.
    pub fn new(echo: bool) -> Out {
        Out {
            text: Arc::default(),
            echo,
        }
    }

    /// Appends one line (a newline is added).
    pub fn line(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.push_str(line);
        text.push('\n');
        if self.echo {
            // Printed under the lock so that lines of concurrent goroutines stay whole and in
            // the order they were kept.
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A parsed workload with its parameters, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// `binary-trees N`.
    BinaryTrees(binary_trees::Params),
    /// `gcbench [DEPTH]`.
    GcBench(gcbench::Params),
    /// `churn [COUNT] [WINDOW]`.
    Churn(churn::Params),
    /// `latency [SIZE]`.
    Latency(latency::Params),
    /// `pipeline [MESSAGES] [STAGES] [WORKERS]`.
    Pipeline(pipeline::Params),
    /// `goroutines [N]`.
    Goroutines(goroutines::Params),
}

/// What the CLI knows about a workload besides running it.
pub struct Spec {
    /// The command-line name.
    pub name: &'static str,
    /// Its arguments, as `--help` shows them.
    pub usage: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// Arguments for the all-workloads table (sized so that the whole table takes seconds).
    pub table_args: &'static [&'static str],
    /// Parses the arguments after the name.
    pub parse: fn(&[String]) -> Result<Job, String>,
}

/// Every workload that runs on the runtime (`lox` is dispatched separately: it brings its
/// own heap).
pub const WORKLOADS: &[Spec] = &[
    Spec {
        name: "binary-trees",
        usage: "[N=21]",
        about: "Benchmarks Game binary-trees: trees of depth 4..N, one goroutine per depth",
        table_args: &["16"],
        parse: |a| binary_trees::Params::parse(a).map(Job::BinaryTrees),
    },
    Spec {
        name: "gcbench",
        usage: "[DEPTH=16]",
        about: "Ellis/Kovac/Boehm GCBench: long-lived tree and array, top-down and bottom-up trees",
        table_args: &[],
        parse: |a| gcbench::Params::parse(a).map(Job::GcBench),
    },
    Spec {
        name: "churn",
        usage: "[COUNT=100000000] [WINDOW=10000]",
        about:
            "COUNT 32-byte allocations, the last WINDOW kept alive in a heap array; ns/allocation",
        table_args: &["20000000"],
        parse: |a| churn::Params::parse(a).map(Job::Churn),
    },
    Spec {
        name: "latency",
        usage: "[SIZE=1GiB]",
        about: "a SIZE live heap of 32-byte linked nodes, then churn through it; pause max and p99",
        table_args: &["128MiB"],
        parse: |a| latency::Params::parse(a).map(Job::Latency),
    },
    Spec {
        name: "pipeline",
        usage: "[MESSAGES=1000000] [STAGES=4] [WORKERS=8]",
        about: "heap messages through a chain of goroutines, fanned out to workers and back in",
        table_args: &["200000"],
        parse: |a| pipeline::Params::parse(a).map(Job::Pipeline),
    },
    Spec {
        name: "goroutines",
        usage: "[N=100000]",
        about: "N goroutines parked at once, then released to allocate, beside a spinner without safepoints",
        table_args: &["10000"],
        parse: |a| goroutines::Params::parse(a).map(Job::Goroutines),
    },
];

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Spec> {
    WORKLOADS.iter().find(|s| s.name == name)
}

impl Job {
    /// The workload's name and arguments, as a command line would give them.
    pub fn label(&self) -> String {
        match self {
            Job::BinaryTrees(p) => format!("binary-trees {}", p.n),
            Job::GcBench(p) => format!("gcbench {}", p.depth),
            Job::Churn(p) => format!("churn {} {}", p.count, p.window),
            Job::Latency(p) => format!("latency {}", size_label(p.size)),
            Job::Pipeline(p) => format!("pipeline {} {} {}", p.messages, p.stages, p.workers),
            Job::Goroutines(p) => format!("goroutines {}", p.n),
        }
    }

    /// Runs the workload; must be called from a goroutine (the CLI's main goroutine).
    pub fn run(&self, mu: Mutation<'_>, out: &Out) -> Verdict {
        match self {
            Job::BinaryTrees(p) => binary_trees::run(mu, p, out),
            Job::GcBench(p) => gcbench::run(mu, p, out),
            Job::Churn(p) => churn::run(mu, p, out),
            Job::Latency(p) => latency::run(mu, p, out),
            Job::Pipeline(p) => pipeline::run(mu, p, out),
            Job::Goroutines(p) => goroutines::run(mu, p, out),
        }
    }
}

/// Parses a count argument: digits, optionally grouped with `_` or `,`.
pub fn parse_count(what: &str, s: &str) -> Result<u64, String> {
    let digits: String = s.chars().filter(|&c| c != '_' && c != ',').collect();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what}: expected a whole number, got {s:?}"));
    }
    digits
        .parse()
        .map_err(|_| format!("{what}: {s:?} is too large"))
}

/// A count that must lie in `lo..=hi`.
pub fn parse_count_in(what: &str, s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let n = parse_count(what, s)?;
    if n < lo || n > hi {
        return Err(format!("{what}: {n} is out of range ({lo}..={hi})"));
    }
    Ok(n)
}

/// Parses a byte size as GOMEMLIMIT writes it (`1GiB`, `512MiB`, `4096`).
pub fn parse_size(what: &str, s: &str) -> Result<u64, String> {
    minigo_gc::config::parse_size(s).ok_or_else(|| {
        format!("{what}: expected a byte size such as 512MiB or 1GiB (units B, KiB, MiB, GiB, TiB), got {s:?}")
    })
}

/// At most `max` positional arguments, or an error naming the first extra one.
pub fn at_most(workload: &str, args: &[String], max: usize) -> Result<(), String> {
    match args.get(max) {
        Some(extra) => Err(format!("{workload}: unexpected argument {extra:?}")),
        None => Ok(()),
    }
}

/// A size in the unit GOMEMLIMIT would use for it, exactly.
pub fn size_label(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A small, fast, deterministic generator (xorshift64*), for workloads that pick at random
/// but must be repeatable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a nonzero-ized seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (n > 0; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Panics with what failed to allocate: under a `max_heap` that is out of memory, and a
/// workload has no better answer than Go's (the run ends with the message).
#[cold]
#[inline(never)]
pub fn out_of_memory(what: &str, e: minigo_runtime::AllocError) -> ! {
    panic!("{what}: {e}")
}
