//! Turning [`Summary`]s into text: the table of the all-workloads run, the summary a
//! single run prints on stderr, and the JSON object `--json` prints.

use std::time::Duration;

use serde_json::{json, Value};

use super::measure::Summary;
use crate::workloads::latency::quantile;

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn check(s: &Summary) -> &'static str {
    if s.verdict.is_ok() {
        "ok"
    } else {
        "FAILED"
    }
}

/// The table: one row per run, columns aligned, then the reasons for any failure.
pub fn table(runs: &[Summary]) -> String {
    let header = [
        "workload",
        "wall",
        "CPU",
        "GCs",
        "pause total",
        "pause max",
        "peak heap",
        "peak RSS",
        "check",
    ];
    let rows: Vec<[String; 9]> = runs
        .iter()
        .map(|s| {
            [
                s.workload.clone(),
                secs(s.wall),
                secs(s.cpu),
                s.collections().to_string(),
                millis(s.pause_total()),
                millis(s.pause_max()),
                mib(s.peak_heap),
                mib(s.peak_rss),
                check(s).to_string(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            // The workload's name reads best left-aligned, the figures right-aligned.
            match i {
                0 => l += &format!("{cell:<w$}"),
                8 => l += &format!("  {cell}"),
                _ => l += &format!("  {cell:>w$}"),
            }
        }
        l + "\n"
    };
    let mut out = line(&header);
    let rule: Vec<String> = width.iter().map(|&w| "-".repeat(w)).collect();
    out += &line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for r in &rows {
        out += &line(&r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    for s in runs {
        if let Err(e) = &s.verdict {
            out += &format!("\n{} FAILED: {e}\n", s.workload);
        }
    }
    out
}

/// The few lines a single run prints on stderr after the workload's own output.
pub fn summary(s: &Summary) -> String {
    let pauses = s.pauses_sorted();
    let gogc = s.gogc.map_or("off".to_string(), |g| g.to_string());
    let mut out = format!(
        "--- minigo {}: {} procs, GOGC={gogc}{}{}{}\n\
         wall {}, CPU {}; {} collections ({} minor), pause total {}, max {}, p99 {}\n\
         GC CPU {:.0}%, of which assists {}; longest assist {}\n\
         peak heap in use {}, peak RSS {}; check: {}\n",
        s.workload,
        s.procs,
        s.memlimit
            .map_or(String::new(), |l| format!(", memory limit {}", mib(l))),
        if s.stop_the_world {
            ", gcstoptheworld=1"
        } else {
            ""
        },
        match (s.generational, s.ages, s.black_young) {
            (false, _, _) => ", gcgen=0",
            (true, true, _) => ", gcage=1",
            (true, false, false) => ", gcblackyoung=0",
            (true, false, true) => "",
        },
        secs(s.wall),
        secs(s.cpu),
        s.collections(),
        s.minor_collections(),
        millis(s.pause_total()),
        millis(s.pause_max()),
        millis(Duration::from_nanos(quantile(&pauses, 0.99))),
        s.gc_cpu_fraction() * 100.0,
        millis(s.assist_total()),
        millis(s.longest_assist()),
        mib(s.peak_heap),
        mib(s.peak_rss),
        check(s),
    );
    if let Err(e) = &s.verdict {
        out += &format!("{e}\n");
    }
    out
}

/// One run as a JSON value (times in seconds or milliseconds as the names say).
pub fn json(s: &Summary) -> Value {
    let pauses = s.pauses_sorted();
    json!({
        "workload": s.workload,
        "procs": s.procs,
        "gogc": s.gogc,
        "memlimit_bytes": s.memlimit,
        "wall_s": s.wall.as_secs_f64(),
        "cpu_s": s.cpu.as_secs_f64(),
        "collections": s.collections(),
        "minor_collections": s.minor_collections(),
        "pause_total_ms": s.pause_total().as_secs_f64() * 1e3,
        "pause_max_ms": s.pause_max().as_secs_f64() * 1e3,
        "pause_p99_ms": quantile(&pauses, 0.99) as f64 / 1e6,
        "stop_the_world": s.stop_the_world,
        "generational": s.generational,
        "ages": s.ages,
        "black_young": s.black_young,
        "gc_cpu_fraction": s.gc_cpu_fraction(),
        "assist_total_ms": s.assist_total().as_secs_f64() * 1e3,
        "longest_assist_ms": s.longest_assist().as_secs_f64() * 1e3,
        "peak_heap_bytes": s.peak_heap,
        "peak_rss_bytes": s.peak_rss,
        "ok": s.verdict.is_ok(),
        "error": s.verdict.as_ref().err(),
        "output": s.output,
    })
}

/// The all-workloads run as one JSON object.
pub fn json_table(runs: &[Summary]) -> Value {
    json!({
        "ok": runs.iter().all(|s| s.verdict.is_ok()),
        "runs": runs.iter().map(json).collect::<Vec<_>>(),
    })
}
