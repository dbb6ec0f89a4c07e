//! The SVG bar chart of the medians: written by hand (a few dozen elements), so the
//! harness needs no plotting dependency.

use std::fmt::Write as _;

use crate::plan::Case;
use crate::plan::Kind;
use crate::report::Row;

pub(crate) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped bars, one panel per figure (wall, CPU, peak RSS): a group per case, a bar per
/// contender, heights relative to minigo's (so workloads of any size share an axis), each
/// labelled with its absolute value. Bars beyond the axis are clipped and say so.
pub(crate) fn chart(cases: &[Case], rows: &[Row]) -> String {
    type Metric = (&'static str, fn(&Row) -> Option<f64>, &'static str);
    let metrics: [Metric; 3] = [
        ("wall time", |r| r.wall, "s"),
        ("CPU time", |r| r.cpu, "s"),
        ("peak RSS", |r| r.rss_mib, "MiB"),
    ];
    let colours = [
        (Kind::Minigo, "#1f77b4"),
        (Kind::MinigoNoGen, "#6baed6"),
        (Kind::MinigoStw, "#c6dbef"),
        (Kind::Go, "#2ca02c"),
        (Kind::Boehm, "#ff7f0e"),
        (Kind::Mimalloc, "#7f7f7f"),
    ];
    let (bar, gap, left, panel_h, top) = (18.0, 26.0, 60.0, 240.0, 60.0);
    let group_w = colours.len() as f64 * bar + gap;
    // Wide enough for the title even with one or two cases.
    let width = (left + cases.len() as f64 * group_w + 30.0).max(620.0);
    let y_max = 3.0;
    let height = top + metrics.len() as f64 * (panel_h + 90.0);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"24\" font-size=\"16\">minigo vs minigo gcgen=0 vs minigo STW vs Go vs Boehm GC vs Box+mimalloc: medians, relative to minigo (= 1)</text>\n"
    );
    for (i, (k, col)) in colours.iter().enumerate() {
        let x = left + i as f64 * 110.0;
        let _ = writeln!(
            s,
            "<rect x=\"{x}\" y=\"36\" width=\"12\" height=\"12\" fill=\"{col}\"/><text x=\"{}\" y=\"46\">{}</text>",
            x + 16.0,
            k.name()
        );
    }
    for (p, (title, get, unit)) in metrics.iter().enumerate() {
        let y0 = top + p as f64 * (panel_h + 90.0) + 20.0;
        let base = y0 + panel_h;
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{}\" font-size=\"13\">{title} (lower is better)</text>",
            y0 - 6.0
        );
        for tick in [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] {
            let y = base - tick / y_max * panel_h;
            let stroke = if tick == 1.0 { "#888" } else { "#ddd" };
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{stroke}\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{tick:.1}x</text>",
                width - 20.0,
                left - 6.0,
                y + 4.0
            );
        }
        for (ci, case) in cases.iter().enumerate() {
            let gx = left + ci as f64 * group_w + gap / 2.0;
            let find = |k: Kind| rows.iter().find(|r| r.case == ci && r.kind == k);
            let reference = find(Kind::Minigo).and_then(get);
            for (bi, (k, col)) in colours.iter().enumerate() {
                let Some(v) = find(*k).and_then(get) else {
                    continue;
                };
                let rel = reference.filter(|&m| m > 0.0).map_or(1.0, |m| v / m);
                let h = rel.min(y_max) / y_max * panel_h;
                let x = gx + bi as f64 * bar;
                let _ = writeln!(
                    s,
                    "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{col}\">\
                     <title>{} {}: {v:.2} {unit} ({rel:.2}x minigo)</title></rect>",
                    base - h,
                    bar - 2.0,
                    k.name(),
                    xml_escape(&case.label())
                );
                let label = if rel > y_max {
                    format!("{v:.3} ▲")
                } else {
                    format!("{v:.3}")
                };
                let (lx, ly) = (x + bar / 2.0, base - h - 4.0);
                let _ = writeln!(
                    s,
                    "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"9\" transform=\"rotate(-90 {lx:.1} {ly:.1})\">{label}</text>"
                );
            }
            // Three short lines: a case's one-line label is wider than its bars.
            let lx = gx + colours.len() as f64 * bar / 2.0;
            let _ = writeln!(
                s,
                "<text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
                 <text x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">procs {}</text>",
                base + 14.0,
                xml_escape(case.workload),
                base + 27.0,
                xml_escape(&case.args.join(" ")),
                base + 40.0,
                case.procs
            );
        }
    }
    s + "</svg>\n"
}
