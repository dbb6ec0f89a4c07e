//! One contender on one case: the command line and environment each program gets for
//! "workload W, procs N", what it reports about itself (minigo's `--json`, the peers'
//! `peer-gc:` stderr line), and its output with the measured figures masked, which must
//! then read the same for all of them.

use std::process::Command;

use crate::measure::{measure, Run};
use crate::plan::{Case, Config, Kind};

/// Runs one contender on one case.
pub(crate) fn run_one(c: &Config, kind: Kind, case: &Case, cpus: &[usize]) -> Run {
    let mut cmd = Command::new(&c.bins[&kind]);
    cmd.arg(case.workload).args(&case.args);
    // The environment each runtime reads, cleared so that a user's settings do not skew
    // one contender; every collector runs with its defaults (GOGC=100 for minigo and Go).
    for var in [
        "GOGC",
        "GOMEMLIMIT",
        "GODEBUG",
        "GOMAXPROCS",
        "GC_MARKERS",
        "GC_NPROCS",
    ] {
        cmd.env_remove(var);
    }
    match kind {
        Kind::Minigo => _ = cmd.arg("--procs").arg(case.procs.to_string()).arg("--json"),
        Kind::MinigoNoGen => {
            cmd.arg("--procs").arg(case.procs.to_string()).arg("--json");
            cmd.env("GODEBUG", "gcgen=0");
        }
        Kind::MinigoStw => {
            cmd.arg("--procs").arg(case.procs.to_string()).arg("--json");
            cmd.env("GODEBUG", "gcstoptheworld=1");
        }
        Kind::Go => _ = cmd.env("GOMAXPROCS", case.procs.to_string()),
        Kind::Boehm => _ = cmd.env("GC_MARKERS", case.procs.to_string()),
        // Its threads are its parallelism: pinning below gives it N CPUs.
        Kind::Mimalloc => {}
    }
    // Boehm's threads are OS threads and Go and minigo keep helper threads besides their
    // Ps: "procs N" gives every contender the same N CPUs.
    let pin = (case.procs < cpus.len()).then(|| &cpus[..case.procs]);
    let (mut run, stdout, stderr) = match measure(cmd, pin, c.timeout) {
        Ok(r) => r,
        Err(e) => {
            return Run {
                error: e,
                ..Run::default()
            }
        }
    };
    match kind {
        Kind::Minigo | Kind::MinigoNoGen | Kind::MinigoStw => {
            match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
                Ok(v) => {
                    run.output = mask(v["output"].as_str().unwrap_or(""));
                    run.pause_max_ms = v["pause_max_ms"].as_f64();
                    run.collections = v["collections"].as_u64();
                    if let Some(e) = v["error"].as_str() {
                        run.error = e.lines().next().unwrap_or("").to_string();
                        run.ok = false;
                    }
                }
                Err(e) if run.error.is_empty() => {
                    run.error = format!("minigo's --json output did not parse: {e}");
                    run.ok = false;
                }
                Err(_) => {}
            }
        }
        Kind::Go | Kind::Boehm | Kind::Mimalloc => {
            run.output = mask(&stdout);
            if let Some(line) = stderr.lines().find(|l| l.starts_with("peer-gc:")) {
                let f: Vec<&str> = line.split_whitespace().collect();
                let field = |name: &str| {
                    f.iter()
                        .position(|w| *w == name)
                        .and_then(|i| f.get(i + 1))
                        .map(|s| s.to_string())
                };
                run.collections = field("collections").and_then(|s| s.parse().ok());
                run.pause_max_ms = field("pause-max-ms").and_then(|s| s.parse().ok());
            }
        }
    }
    if !run.ok && run.error.is_empty() {
        run.error = "failed".into();
    }
    if !run.ok {
        if let Some(l) = stderr
            .lines()
            .rev()
            .find(|l| !l.starts_with("peer-gc:") && !l.is_empty())
        {
            run.error = format!("{}: {l}", run.error);
        }
    }
    run
}

/// An output with its measured figures (times, rates, collection counts) replaced by
/// `#`: what is left must be the same for every contender.
pub(crate) fn mask(text: &str) -> String {
    const UNITS: &[&str] = &[
        "s",
        "ms",
        "msec",
        "ns/allocation",
        "ns/message",
        "collections",
    ];
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let core = w.trim_start_matches('(');
            let core = core.trim_end_matches([',', ')', ';']);
            let next = words
                .get(i + 1)
                .map_or("", |n| n.trim_end_matches([',', ')', ';', '.']));
            let numeric = !core.is_empty()
                && core.chars().all(|c| c.is_ascii_digit() || c == '.')
                && core.chars().next().is_some_and(|c| c.is_ascii_digit());
            if numeric && (core.contains('.') || UNITS.contains(&next)) {
                out.push_str(&w.replacen(core, "#", 1));
            } else {
                out.push_str(w);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn masking_keeps_what_must_agree() {
        let a = "churn: 100 allocations of 32 bytes, the last 10 alive: 47.24 ns/allocation (0.047 s)\n\
                 \tTop down construction took 12 msec\nCompleted in 345 msec.\n\
                 churn: replaced 32768 lists (64MiB allocated) in 0.103 s, 3 collections\n\
                 1024\t trees of depth 4\t check: 31744\n";
        let b = "churn: 100 allocations of 32 bytes, the last 10 alive: 30.48 ns/allocation (0.030 s)\n\
                 \tTop down construction took 0 msec\nCompleted in 9 msec.\n\
                 churn: replaced 32768 lists (64MiB allocated) in 0.195 s, 5 collections\n\
                 1024\t trees of depth 4\t check: 31744\n";
        assert_eq!(mask(a), mask(b));
        assert!(mask(a).contains("100 allocations of 32 bytes"));
        assert!(mask(a).contains("check: 31744"));
        assert_ne!(mask(a), mask(&b.replace("31744", "31743")));
    }
}
