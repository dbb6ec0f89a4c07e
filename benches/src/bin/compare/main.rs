//! `compare`: the side-by-side comparison of minigo with Go, Boehm GC and Box+mimalloc
//! (what `benches/compare.sh` runs once it has built the four programs). Owns the run plan
//! (workload sizes, procs, rounds), measuring each run from outside the process the same
//! way for every contender, checking that their outputs agree, and the reports: a
//! Markdown table of medians on stdout, and CSV, SVG and the table under `--out`.
//!
//! Every contender is measured by `wait4` on its process: wall from spawn to exit, user +
//! system CPU, and peak RSS (`ru_maxrss`). The longest collector pause is each program's
//! own report (minigo's `--json`, the peers' `peer-gc:` line on stderr), because nothing
//! outside a process can see its pauses.
//!
//! Modules, in the order data flows: `plan` (command line, workloads, cases) -> `contender`
//! (a program's command line and what it reports) -> `measure` (spawn, wait4) -> `report`
//! (medians, Markdown, CSV) and `svg`.

mod contender;
mod measure;
mod plan;
mod report;
mod svg;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use contender::run_one;
use measure::{allowed_cpus, Run};
use plan::{parse_args, plan, Config, Kind, USAGE};
use report::{csv, loadavg, machine, runs_csv, summarize, table};

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn run(c: &Config) -> Result<bool, String> {
    let cases = plan(c);
    let cpus = allowed_cpus();
    if cpus.is_empty() {
        return Err("cannot read this process's CPU affinity".into());
    }
    if let Some(&p) = cases.iter().map(|k| &k.procs).max() {
        if p > cpus.len() {
            eprintln!(
                "compare: note: procs {p} is more than the {} CPUs available; runs are not pinned",
                cpus.len()
            );
        }
    }
    std::fs::create_dir_all(&c.out)
        .map_err(|e| format!("cannot create {}: {e}", c.out.display()))?;
    let (load_before, started) = (loadavg(), Instant::now());
    let total: usize = cases.iter().map(|k| c.runs * k.contenders.len()).sum();
    let mut all: Vec<(usize, Kind, usize, Run)> = Vec::new();
    let mut n = 0;
    for (ci, case) in cases.iter().enumerate() {
        for round in 0..c.runs {
            // A B C D, then B C D A, ...: each contender takes each place in the order in
            // turn, so whatever one run leaves behind (page cache, a hot CPU) is shared.
            let who = &case.contenders;
            for j in 0..who.len() {
                let kind = who[(round + j) % who.len()];
                n += 1;
                let r = run_one(c, kind, case, &cpus);
                eprintln!(
                    "[{n}/{total}] {}, procs {}, {}: {:.2} s wall, {:.2} s CPU, {:.0} MiB{}{}",
                    case.label(),
                    case.procs,
                    kind.name(),
                    r.wall,
                    r.cpu,
                    r.rss as f64 / (1 << 20) as f64,
                    r.pause_max_ms
                        .map_or(String::new(), |p| format!(", max pause {p:.2} ms")),
                    if r.ok {
                        String::new()
                    } else {
                        format!("  FAILED: {}", r.error)
                    }
                );
                all.push((ci, kind, round, r));
            }
        }
    }

    let mut rows = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let of = |k: Kind| -> Vec<Run> {
            all.iter()
                .filter(|(i, kind, _, _)| *i == ci && *kind == k)
                .map(|x| x.3.clone())
                .collect()
        };
        let mine = of(Kind::Minigo);
        let reference = mine.iter().find(|r| r.ok).map(|r| r.output.clone());
        for &k in &case.contenders {
            rows.push(summarize(
                ci,
                k,
                &of(k),
                if k == Kind::Minigo {
                    None
                } else {
                    reference.as_deref()
                },
            ));
        }
    }

    let versions = format!(
        "minigo (this tree, release), Go {}, Boehm GC {}, Box+mimalloc (libmimalloc-sys {})",
        c.versions.get(&Kind::Go).map_or("?", String::as_str),
        c.versions.get(&Kind::Boehm).map_or("?", String::as_str),
        c.versions.get(&Kind::Mimalloc).map_or("?", String::as_str)
    );
    let mut md = format!(
        "Machine: {}. {versions}. Medians of {} runs per contender, alternating; {} in all, \
         load average {load_before} before and {} after.\n\n",
        machine(),
        c.runs,
        humantime(started.elapsed()),
        loadavg()
    );
    md += &table(&cases, &rows);
    md += "\nWall, CPU (user + system) and peak RSS are measured from outside each process \
           (wait4). Max pause: the longest stop-the-world pause. minigo and Go mark concurrently \
           and stop the world only for short phases (minigo's CycleRecord pauses, Go's \
           MemStats.PauseNs); minigo gcgen=0 is minigo without minor collections; minigo STW \
           (GODEBUG=gcstoptheworld=1) and Boehm stop it for \
           the whole collection (Boehm: GC_EVENT_START..END). Box+mimalloc frees each object \
           by hand and has no collector; it runs the allocation workloads only. procs N: \
           --procs N / GOMAXPROCS=N / GC_MARKERS=N (Box+mimalloc: its threads), and the \
           process pinned to N CPUs when N is below the machine's count. Ratios are minigo \
           over the peer: below 1, minigo is faster or smaller. check: the program verified \
           its result and printed the same lines as minigo (figures masked).\n";
    print!("{md}");
    let failed: Vec<String> = all
        .iter()
        .filter(|x| !x.3.ok)
        .map(|(ci, k, round, r)| {
            format!(
                "{} procs {} {} round {round}: {}",
                cases[*ci].label(),
                cases[*ci].procs,
                k.name(),
                r.error
            )
        })
        .collect();
    for f in &failed {
        println!("FAILED: {f}");
    }
    let paths = [
        write(&c.out, "compare.md", &md)?,
        write(&c.out, "compare.csv", &csv(&cases, &rows))?,
        write(&c.out, "runs.csv", &runs_csv(&cases, &all))?,
        write(&c.out, "compare.svg", &svg::chart(&cases, &rows))?,
    ];
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    eprintln!("compare: wrote {}", names.join(", "));
    Ok(failed.is_empty() && rows.iter().all(|r| r.check == "ok"))
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse_args(&args) {
        Ok(Some(c)) => c,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("compare: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::from(1)
        }
    }
}
