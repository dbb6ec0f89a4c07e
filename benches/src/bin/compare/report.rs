//! From runs to reports: the medians of each contender on each case (`Row`), the Markdown
//! table with the minigo/peer ratios, the two CSV files (medians, every run) and the
//! machine line of the header. The SVG chart is in `svg`.

use std::fmt::Write as _;

use crate::measure::{allowed_cpus, Run};
use crate::plan::{Case, Kind};

pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The medians of one contender on one case.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) case: usize,
    pub(crate) kind: Kind,
    pub(crate) wall: Option<f64>,
    pub(crate) cpu: Option<f64>,
    pub(crate) rss_mib: Option<f64>,
    pub(crate) pause_ms: Option<f64>,
    pub(crate) collections: Option<f64>,
    /// "ok", "differs" (checked itself but printed something else than minigo) or
    /// "FAILED".
    pub(crate) check: String,
    pub(crate) walls: Vec<f64>,
}

pub(crate) fn summarize(case: usize, kind: Kind, runs: &[Run], reference: Option<&str>) -> Row {
    let good: Vec<&Run> = runs.iter().filter(|r| r.ok).collect();
    let m = |f: &dyn Fn(&Run) -> Option<f64>| median(good.iter().filter_map(|r| f(r)).collect());
    let check = if good.len() < runs.len() {
        "FAILED".to_string()
    } else if reference.is_some_and(|want| runs.iter().any(|r| r.output != want)) {
        "differs".to_string()
    } else {
        "ok".to_string()
    };
    Row {
        case,
        kind,
        wall: m(&|r| Some(r.wall)),
        cpu: m(&|r| Some(r.cpu)),
        rss_mib: m(&|r| Some(r.rss as f64 / (1 << 20) as f64)),
        pause_ms: m(&|r| r.pause_max_ms),
        collections: m(&|r| r.collections.map(|c| c as f64)),
        check,
        walls: good.iter().map(|r| r.wall).collect(),
    }
}

pub(crate) fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("—".into(), |x| format!("{x:.prec$}"))
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

/// The machine, for the header: CPU model, CPUs, memory, kernel.
pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, m)| m.trim().parse::<f64>().ok())
        .map_or(String::new(), |m| format!(" at {:.1} GHz", m / 1000.0));
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB", kib / (1 << 20) as f64)
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{model}{mhz}, {} CPUs{mem}, Linux {}",
        allowed_cpus().len(),
        kernel.trim()
    )
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The Markdown table: a row per contender per case; ratios are minigo's figure over the
/// peer's (below 1: minigo is faster / smaller).
pub(crate) fn table(cases: &[Case], rows: &[Row]) -> String {
    let header = [
        "workload",
        "procs",
        "contender",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "max pause ms",
        "GCs",
        "minigo/it wall",
        "minigo/it CPU",
        "minigo/it RSS",
        "check",
    ];
    let mut cells: Vec<Vec<String>> = Vec::new();
    for r in rows {
        let case = &cases[r.case];
        let mine = rows
            .iter()
            .find(|m| m.case == r.case && m.kind == Kind::Minigo);
        // The case is named once, on minigo's row, which comes first.
        let first = r.kind == Kind::Minigo;
        let (w, c, s) = match (r.kind, mine) {
            (Kind::Minigo, _) | (_, None) => ("".into(), "".into(), "".into()),
            (_, Some(m)) => (
                ratio(m.wall, r.wall),
                ratio(m.cpu, r.cpu),
                ratio(m.rss_mib, r.rss_mib),
            ),
        };
        cells.push(vec![
            if first { case.label() } else { String::new() },
            if first {
                case.procs.to_string()
            } else {
                String::new()
            },
            r.kind.name().into(),
            fmt_opt(r.wall, 2),
            fmt_opt(r.cpu, 2),
            fmt_opt(r.rss_mib, 0),
            fmt_opt(r.pause_ms, 2),
            fmt_opt(r.collections, 0),
            w,
            c,
            s,
            r.check.clone(),
        ]);
    }
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut l = String::from("|");
        for (i, (cell, &w)) in row.iter().zip(&width).enumerate() {
            let pad = w - cell.chars().count();
            if i < 3 || i == 11 {
                l += &format!(" {cell}{} |", " ".repeat(pad));
            } else {
                l += &format!(" {}{cell} |", " ".repeat(pad));
            }
        }
        l + "\n"
    };
    let mut out = line(&header.map(String::from));
    out += "|";
    for (i, &w) in width.iter().enumerate() {
        let dashes = "-".repeat(w.max(3) - 1);
        out += &if i < 3 || i == 11 {
            format!(" {dashes}- |")
        } else {
            format!(" {dashes}: |")
        };
    }
    out += "\n";
    for row in &cells {
        out += &line(row);
    }
    out
}

pub(crate) fn csv(cases: &[Case], rows: &[Row]) -> String {
    let mut s = String::from(
        "workload,args,procs,contender,runs,wall_s,cpu_s,peak_rss_mib,max_pause_ms,collections,wall_min_s,wall_max_s,check\n",
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.4}"));
    for r in rows {
        let c = &cases[r.case];
        let (lo, hi) = (
            r.walls.iter().copied().fold(f64::INFINITY, f64::min),
            r.walls.iter().copied().fold(0.0, f64::max),
        );
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            c.workload,
            c.args.join(" "),
            c.procs,
            r.kind.name(),
            r.walls.len(),
            o(r.wall),
            o(r.cpu),
            o(r.rss_mib),
            o(r.pause_ms),
            o(r.collections),
            o(lo.is_finite().then_some(lo)),
            o((hi > 0.0).then_some(hi)),
            r.check
        );
    }
    s
}

pub(crate) fn runs_csv(cases: &[Case], all: &[(usize, Kind, usize, Run)]) -> String {
    let mut s = String::from(
        "workload,args,procs,contender,round,wall_s,cpu_s,peak_rss_bytes,max_pause_ms,collections,ok,error\n",
    );
    for (ci, kind, round, r) in all {
        let c = &cases[*ci];
        let _ = writeln!(
            s,
            "{},{},{},{},{},{:.4},{:.4},{},{},{},{},\"{}\"",
            c.workload,
            c.args.join(" "),
            c.procs,
            kind.name(),
            round,
            r.wall,
            r.cpu,
            r.rss,
            r.pause_max_ms.map_or(String::new(), |p| format!("{p:.3}")),
            r.collections.map_or(String::new(), |n| n.to_string()),
            r.ok,
            r.error.replace('"', "'")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
