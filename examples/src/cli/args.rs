//! The command line: `minigo [WORKLOAD [ARGS]] [FLAGS]`, parsed into a [`Command`] without
//! touching the runtime, so that every mistake is reported (exit status 2) before anything
//! runs.

use std::path::PathBuf;

use crate::workloads::{self, parse_count_in, parse_size, Job};

/// Runtime settings and reporting choices from the flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// `--procs N` (Go's GOMAXPROCS); default: the environment's, else every core.
    pub procs: Option<usize>,
    /// `--gogc N|off`; default: `GOGC`, else 100.
    pub gogc: Option<Option<u32>>,
    /// `--memlimit SIZE|off`; default: `GOMEMLIMIT`, else none.
    pub memlimit: Option<Option<u64>>,
    /// `--gctrace`: a line per collection on stderr.
    pub gctrace: bool,
    /// `--verify`: the collector re-marks every cycle and fails loudly on a miss.
    pub verify: bool,
    /// `--plot FILE.svg`: heap and goal over time, with the pauses.
    pub plot: Option<PathBuf>,
    /// `--json`: the summary as one JSON object on stdout.
    pub json: bool,
    /// `--memprofile FILE`: the heap profile (pprof format) after the run and a final
    /// collection.
    pub memprofile: Option<PathBuf>,
    /// `--memprofilerate N`: Go's MemProfileRate, bytes per sample (1: every allocation;
    /// 0: off); default `GODEBUG=memprofilerate=N`, else 512 KiB.
    pub memprofilerate: Option<usize>,
    /// `--memstats`: Go's `runtime.MemStats` fields on stderr at the end of the run.
    pub memstats: bool,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// `--help` (`-h`).
    Help,
    /// `--version` (`-V`).
    Version,
    /// No workload: every workload at its table size, one table.
    Table(Options),
    /// One workload.
    One(Job, Options),
    /// `lox ARGS...`: the interpreter, with its arguments as given.
    Lox(Vec<String>),
}

/// Parses the arguments after the program name. `Err` is the message for a usage error.
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("lox") {
        return Ok(Command::Lox(args[1..].to_vec()));
    }
    let mut opts = Options::default();
    let mut positional = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        match arg.as_str() {
            "-h" => return Ok(Command::Help),
            "-V" => return Ok(Command::Version),
            _ => {}
        }
        let Some(flag) = arg.strip_prefix("--") else {
            positional.push(arg.clone());
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let takes_value = matches!(
            name,
            "procs" | "gogc" | "memlimit" | "plot" | "memprofile" | "memprofilerate"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| format!("--{name} needs a value"))?
                        .clone();
                    i += 1;
                    v
                }
            }
        } else {
            if inline.is_some() {
                return Err(format!("--{name} takes no value"));
            }
            String::new()
        };
        match name {
            "help" => return Ok(Command::Help),
            "version" => return Ok(Command::Version),
            "procs" => opts.procs = Some(parse_count_in("--procs", &value, 1, 1024)? as usize),
            "gogc" => {
                opts.gogc = Some(if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(parse_count_in("--gogc", &value, 0, 1_000_000)? as u32)
                })
            }
            "memlimit" => {
                opts.memlimit = Some(if value.eq_ignore_ascii_case("off") {
                    None
                } else {
                    Some(parse_size("--memlimit", &value)?)
                })
            }
            "gctrace" => opts.gctrace = true,
            "verify" => opts.verify = true,
            "plot" => {
                if value.is_empty() {
                    return Err("--plot needs a file name".into());
                }
                opts.plot = Some(PathBuf::from(value));
            }
            "json" => opts.json = true,
            "memprofile" => {
                if value.is_empty() {
                    return Err("--memprofile needs a file name".into());
                }
                opts.memprofile = Some(PathBuf::from(value));
            }
            "memprofilerate" => {
                opts.memprofilerate =
                    Some(parse_count_in("--memprofilerate", &value, 0, 1 << 40)? as usize)
            }
            "memstats" => opts.memstats = true,
            _ => return Err(format!("unknown flag --{name}")),
        }
    }
    if positional.first().map(String::as_str) == Some("help") {
        return Ok(Command::Help);
    }
    match positional.split_first() {
        None => {
            if opts.plot.is_some() {
                return Err("--plot needs a workload: it draws one run".into());
            }
            if opts.memprofile.is_some() {
                return Err("--memprofile needs a workload: it profiles one run".into());
            }
            if opts.memstats {
                return Err("--memstats needs a workload: it reports one run".into());
            }
            Ok(Command::Table(opts))
        }
        Some((name, rest)) => {
            if name == "lox" {
                return Err("put lox first: minigo lox FILE [lox's own flags]".into());
            }
            let spec = workloads::find(name).ok_or_else(|| {
                format!("unknown workload {name:?}; the workloads are {}", names())
            })?;
            Ok(Command::One((spec.parse)(rest)?, opts))
        }
    }
}

fn names() -> String {
    let mut v: Vec<&str> = workloads::WORKLOADS.iter().map(|s| s.name).collect();
    v.push("lox");
    v.join(", ")
}

/// The `--help` text.
pub fn help() -> String {
    let mut s = String::from(
        "minigo: mutator workloads on minigo's runtime (goroutines over a collected heap)\n\n\
         usage:\n  \
         minigo                       run every workload briefly and print one table\n  \
         minigo WORKLOAD [ARGS] [FLAGS]\n  \
         minigo lox FILE [--gc-stress] [--gctrace] [--verify] [--memprofile FILE]\n                 \
         [--memprofilerate N] [--memstats]\n\nworkloads:\n",
    );
    for w in workloads::WORKLOADS {
        s += &format!("  {:<13} {:<42} {}\n", w.name, w.usage, w.about);
    }
    s += &format!(
        "  {:<13} {:<42} {}\n",
        "lox", "FILE [LOX FLAGS]", "run a Lox program (the interpreter takes its own flags)"
    );
    s += "\nflags:\n  \
          --procs N          Ps (Go's GOMAXPROCS; default GOMAXPROCS, else every core)\n  \
          --gogc N|off       collect when the heap grows N% over the live heap (default GOGC, else 100)\n  \
          --memlimit SIZE    soft memory limit, e.g. 512MiB or 2GiB, or off (default GOMEMLIMIT)\n  \
          --gctrace          one line per collection on stderr, in Go's format\n  \
          --verify           re-mark after every collection and fail loudly if anything was missed\n  \
          --plot FILE.svg    draw heap in use and heap goal over time with each pause (one workload)\n  \
          --json             print the summary as one JSON object on stdout\n  \
          --memprofile FILE  write the heap profile after the run (pprof format: go tool pprof FILE)\n  \
          --memprofilerate N sample one allocation per N bytes (default 524288; 1 every one; 0 off)\n  \
          --memstats         print Go's runtime.MemStats fields on stderr after the run\n  \
          --help, -h         this text\n  \
          --version, -V      minigo's version\n\n\
          One workload prints its own output on stdout and a summary on stderr. Exit status:\n\
          0 if every output checked out, 1 if one did not, 2 for a usage error.\n";
    s
}
