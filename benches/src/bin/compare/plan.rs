//! The run plan: the command line (`Config`), who is measured (`Kind`), the five workloads
//! and the sizes they run at in the full comparison and in `--quick`, and the list of
//! cases (workload x procs) that `main` runs in order, each with its contenders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
usage: compare --minigo BIN --go BIN --boehm BIN --mimalloc BIN [options]

Runs minigo's workloads and their Go and Boehm GC counterparts (benches/peers/) several
times each, alternating contenders, and prints a table of medians. minigo runs twice per
round: as it is (concurrent marking), without minor collections (GODEBUG=gcgen=0), and as
minigo STW (GODEBUG=gcstoptheworld=1). The
allocation workloads (binary-trees, gcbench, churn) also run as Rust programs that free
by hand, on mimalloc (Box+mimalloc): what allocation costs with no tracing at all.

options:
  --quick               small sizes, 2 rounds, procs 2 only (under a minute)
  --runs N              rounds per workload (default 3; --quick: 2)
  --procs LIST          e.g. 2 or 1,2: GOMAXPROCS / --procs / GC_MARKERS and CPUs pinned
                        (default: each workload's own list, see below)
  --only LIST           only these workloads, e.g. binary-trees,churn
  --out DIR             where the CSV, SVG and Markdown go (default target/compare)
  --timeout SECS        kill a run that takes longer (default 900)
  --go-version S        shown in the table's header
  --boehm-version S     shown in the table's header
  --mimalloc-version S  shown in the table's header
  --help                this text
";

/// Who is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Minigo,
    /// The same minigo binary with `GODEBUG=gcgen=0`: every cycle is a major one, as
    /// before generational collection.
    MinigoNoGen,
    /// The same minigo binary with `GODEBUG=gcstoptheworld=1`: every cycle marks with the
    /// world stopped, as minigo did before concurrent marking (the "before" column).
    MinigoStw,
    Go,
    Boehm,
    /// Box + mimalloc: the workload in Rust, freeing each object by hand (dropping its
    /// Box) on mimalloc. Only for the workloads that are about allocation.
    Mimalloc,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Minigo,
        Kind::MinigoNoGen,
        Kind::MinigoStw,
        Kind::Go,
        Kind::Boehm,
        Kind::Mimalloc,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Minigo => "minigo",
            Kind::MinigoNoGen => "minigo gcgen=0",
            Kind::MinigoStw => "minigo STW",
            Kind::Go => "Go",
            Kind::Boehm => "Boehm",
            Kind::Mimalloc => "Box+mimalloc",
        }
    }

    /// The command-line flag that names this contender's binary.
    fn flag(self) -> &'static str {
        match self {
            Kind::Minigo | Kind::MinigoNoGen | Kind::MinigoStw => "--minigo",
            Kind::Go => "--go",
            Kind::Boehm => "--boehm",
            Kind::Mimalloc => "--mimalloc",
        }
    }
}

/// A workload and the sizes it runs at.
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    /// Arguments of the full comparison: sized so that one round of the three programs
    /// takes seconds to tens of seconds on a 2-core machine.
    pub(crate) full: &'static [&'static str],
    /// Arguments of `--quick`.
    pub(crate) quick: &'static [&'static str],
    /// Procs it runs with by default: 1 and 2 where parallelism changes the picture.
    pub(crate) procs: &'static [usize],
    /// Whether Box+mimalloc runs it: a workload about allocation and reclamation, which a
    /// manual allocator can do without a collector (not the pause or scheduler ones).
    pub(crate) manual: bool,
}

pub(crate) const WORKLOADS: &[Workload] = &[
    Workload {
        name: "binary-trees",
        full: &["19"],
        quick: &["16"],
        procs: &[1, 2],
        manual: true,
    },
    Workload {
        name: "gcbench",
        full: &["18"],
        quick: &["14"],
        procs: &[1, 2],
        manual: true,
    },
    Workload {
        name: "churn",
        full: &["100000000"],
        quick: &["10000000"],
        procs: &[1, 2],
        manual: true,
    },
    Workload {
        name: "latency",
        full: &["1GiB"],
        quick: &["64MiB"],
        procs: &[2],
        manual: false,
    },
    Workload {
        name: "pipeline",
        full: &["1000000"],
        quick: &["100000"],
        procs: &[1, 2],
        manual: false,
    },
];

/// The command line.
pub(crate) struct Config {
    pub(crate) bins: BTreeMap<Kind, PathBuf>,
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) procs: Option<Vec<usize>>,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) out: PathBuf,
    pub(crate) timeout: Duration,
    pub(crate) versions: BTreeMap<Kind, String>,
}

pub(crate) fn parse_args(args: &[String]) -> Result<Option<Config>, String> {
    let mut c = Config {
        bins: BTreeMap::new(),
        quick: false,
        runs: 0,
        procs: None,
        only: None,
        out: PathBuf::from("target/compare"),
        timeout: Duration::from_secs(900),
        versions: BTreeMap::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |what: &str, s: String, lo: u64, hi: u64| {
            s.parse::<u64>()
                .ok()
                .filter(|n| (lo..=hi).contains(n))
                .ok_or_else(|| format!("{what}: expected a whole number in {lo}..={hi}, got {s:?}"))
        };
        match flag {
            "--help" | "-h" => return Ok(None),
            "--minigo" => _ = c.bins.insert(Kind::Minigo, value()?.into()),
            "--go" => _ = c.bins.insert(Kind::Go, value()?.into()),
            "--boehm" => _ = c.bins.insert(Kind::Boehm, value()?.into()),
            "--mimalloc" => _ = c.bins.insert(Kind::Mimalloc, value()?.into()),
            "--go-version" => _ = c.versions.insert(Kind::Go, value()?),
            "--boehm-version" => _ = c.versions.insert(Kind::Boehm, value()?),
            "--mimalloc-version" => _ = c.versions.insert(Kind::Mimalloc, value()?),
            "--quick" if inline.is_none() => c.quick = true,
            "--runs" => c.runs = number("--runs", value()?, 1, 100)? as usize,
            "--timeout" => {
                c.timeout = Duration::from_secs(number("--timeout", value()?, 1, 86_400)?)
            }
            "--out" => c.out = value()?.into(),
            "--procs" => {
                let list = value()?
                    .split(',')
                    .map(|p| number("--procs", p.trim().to_string(), 1, 1024).map(|n| n as usize))
                    .collect::<Result<Vec<_>, _>>()?;
                c.procs = Some(list);
            }
            "--only" => {
                let list: Vec<String> = value()?.split(',').map(|s| s.trim().to_string()).collect();
                for w in &list {
                    if !WORKLOADS.iter().any(|x| x.name == w) {
                        let names: Vec<&str> = WORKLOADS.iter().map(|x| x.name).collect();
                        return Err(format!(
                            "--only: unknown workload {w:?}; the workloads are {}",
                            names.join(", ")
                        ));
                    }
                }
                c.only = Some(list);
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    if let Some(m) = c.bins.get(&Kind::Minigo).cloned() {
        c.bins.insert(Kind::MinigoNoGen, m.clone());
        c.bins.insert(Kind::MinigoStw, m);
    }
    for k in Kind::ALL {
        match c.bins.get(&k) {
            None => return Err(format!("{} BIN is required", k.flag())),
            Some(p) if !p.is_file() => {
                return Err(format!(
                    "{} binary {} does not exist",
                    k.name(),
                    p.display()
                ))
            }
            Some(_) => {}
        }
    }
    if c.runs == 0 {
        c.runs = if c.quick { 2 } else { 3 };
    }
    Ok(Some(c))
}

/// One workload at one size and procs.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    pub(crate) workload: &'static str,
    pub(crate) args: Vec<String>,
    pub(crate) procs: usize,
    /// Who runs it, in `Kind::ALL`'s order.
    pub(crate) contenders: Vec<Kind>,
}

impl Case {
    pub(crate) fn label(&self) -> String {
        format!("{} {}", self.workload, self.args.join(" "))
    }
}

pub(crate) fn plan(c: &Config) -> Vec<Case> {
    let mut cases = Vec::new();
    for w in WORKLOADS {
        if c.only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == w.name))
        {
            continue;
        }
        let default_procs: &[usize] = if c.quick { &[2] } else { w.procs };
        for &procs in c.procs.as_deref().unwrap_or(default_procs) {
            cases.push(Case {
                workload: w.name,
                args: (if c.quick { w.quick } else { w.full })
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                procs,
                contenders: Kind::ALL
                    .into_iter()
                    .filter(|&k| k != Kind::Mimalloc || w.manual)
                    .collect(),
            });
        }
    }
    cases
}
