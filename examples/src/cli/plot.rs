//! `--plot FILE.svg`: one run drawn over time. Heap live (Go's heapLive, the figure the
//! pacer compares with the goal), heap in use (HeapInuse) and RSS come from the sampler;
//! the goal is a step that changes at the end of each collection. Each cycle's concurrent
//! marking is a pale blue band; each stop of the world is a red band over it (at least a
//! pixel wide, so short ones show): a concurrent cycle's two, a stop-the-world cycle's
//! one. Heap live is exact at each collection: its value at the start and what it marked
//! are spliced into the sampled series, which makes the sawtooth's teeth sharp.

use std::path::Path;

use plotters::prelude::*;

use super::measure::Summary;

const MIB: f64 = (1 << 20) as f64;

/// Writes the SVG.
pub fn write(s: &Summary, path: &Path) -> Result<(), String> {
    draw(s, path).map_err(|e| format!("cannot write the plot {}: {e}", path.display()))
}

fn draw(s: &Summary, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let secs = |ns: u64| ns as f64 / 1e9;
    let t_end = s
        .samples
        .last()
        .map_or(0.0, |x| x.t)
        .max(s.cycles.last().map_or(0.0, |c| secs(c.end_ns())))
        .max(1e-3);

    let mut live: Vec<(f64, f64)> = s
        .samples
        .iter()
        .map(|x| (x.t, x.heap_live as f64 / MIB))
        .collect();
    for c in &s.cycles {
        live.push((secs(c.start_ns), c.heap_before as f64 / MIB));
        if c.concurrent {
            live.push((secs(c.mark_end_ns()), c.heap_at_term as f64 / MIB));
        }
        live.push((secs(c.end_ns()), c.heap_live as f64 / MIB));
    }
    live.sort_by(|a, b| a.0.total_cmp(&b.0));
    let inuse: Vec<(f64, f64)> = s
        .samples
        .iter()
        .map(|x| (x.t, x.heap_inuse as f64 / MIB))
        .collect();
    let rss: Vec<(f64, f64)> = s
        .samples
        .iter()
        .map(|x| (x.t, x.rss as f64 / MIB))
        .collect();

    // The goal as runs of finite values (GOGC=off without a limit has no goal).
    let mut goal_runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    let mut goal = s.first_goal;
    let mut from = 0.0;
    let finite = |g: u64| g != u64::MAX && g != 0;
    for c in &s.cycles {
        let end = secs(c.end_ns());
        if finite(goal) {
            let run = goal_runs.last_mut().expect("one run at least");
            run.push((from, goal as f64 / MIB));
            run.push((end, goal as f64 / MIB));
        } else {
            goal_runs.push(Vec::new());
        }
        goal = c.next_goal;
        from = end;
    }
    if finite(goal) {
        let run = goal_runs.last_mut().expect("one run at least");
        run.push((from, goal as f64 / MIB));
        run.push((t_end, goal as f64 / MIB));
    }
    goal_runs.retain(|r| !r.is_empty());

    let y_max = live
        .iter()
        .chain(&inuse)
        .chain(&rss)
        .chain(goal_runs.iter().flatten())
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.08;

    let root = SVGBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let caption = format!(
        "minigo {}: {} collections, pauses {:.1} ms in all, longest {:.2} ms",
        s.workload,
        s.collections(),
        s.pause_total().as_secs_f64() * 1e3,
        s.pause_max().as_secs_f64() * 1e3
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("MiB")
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    let mark_colour = RGBColor(120, 170, 240).mix(0.25);
    let pause_colour = RED.mix(0.45);
    let min_width = t_end / 1000.0;
    let band = |a: f64, b: f64, colour: RGBAColor| {
        Rectangle::new([(a, 0.0), (b.max(a + min_width), y_max)], colour.filled())
    };
    if s.cycles.iter().any(|c| c.concurrent) {
        chart
            .draw_series(
                s.cycles
                    .iter()
                    .filter(|c| c.concurrent)
                    .map(|c| band(secs(c.mark_start_ns()), secs(c.mark_end_ns()), mark_colour)),
            )?
            .label("concurrent mark")
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 6), (x + 18, y + 6)], mark_colour.filled())
            });
    }
    // Each stop: a concurrent cycle's first at its start, its last at the end of marking
    // (retries fall inside marking and are not drawn apart); a stop-the-world cycle's one.
    let stops = s.cycles.iter().flat_map(|c| {
        if c.concurrent {
            vec![
                (c.start_ns, c.start_ns + c.sweep_term_ns),
                (c.mark_end_ns(), c.end_ns()),
            ]
        } else {
            vec![(c.start_ns, c.end_ns())]
        }
    });
    chart
        .draw_series(stops.map(|(a, b)| band(secs(a), secs(b), pause_colour)))?
        .label("stop-the-world pause")
        .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], pause_colour.filled()));

    let rss_colour = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(rss, rss_colour.stroke_width(1)))?
        .label("RSS")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], rss_colour));
    let inuse_colour = RGBColor(0, 150, 80);
    chart
        .draw_series(LineSeries::new(inuse, inuse_colour.stroke_width(2)))?
        .label("heap in use (HeapInuse)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], inuse_colour));
    let live_colour = RGBColor(30, 90, 200);
    chart
        .draw_series(LineSeries::new(live, live_colour.stroke_width(2)))?
        .label("heap live (heapLive)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], live_colour));
    let goal_colour = RGBColor(230, 120, 0);
    for (i, run) in goal_runs.into_iter().enumerate() {
        let series = chart.draw_series(LineSeries::new(run, goal_colour.stroke_width(2)))?;
        if i == 0 {
            series
                .label("heap goal")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], goal_colour));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
