//! Each workload at a small size, run the way the CLI runs it (a fresh runtime, measured),
//! checking its output and its own verdict.

use minigo_examples::cli::args::Options;
use minigo_examples::cli::measure::{measure, Summary};
use minigo_examples::cli::report;
use minigo_examples::workloads::{self, binary_trees, Job};

fn job(line: &str) -> Job {
    let mut words = line.split_whitespace();
    let spec = workloads::find(words.next().unwrap()).unwrap();
    let args: Vec<String> = words.map(String::from).collect();
    (spec.parse)(&args).unwrap()
}

fn run_with(line: &str, opts: Options) -> Summary {
    let s = measure(&job(line), &opts, false, None).unwrap();
    assert_eq!(s.verdict, Ok(()), "{line}: output was\n{}", s.output);
    s
}

fn run(line: &str) -> Summary {
    run_with(
        line,
        Options {
            procs: Some(2),
            ..Options::default()
        },
    )
}

/// The Benchmarks Game's output for N=6: max depth 6 (4 + 2), stretch depth 7 (255 nodes),
/// 2^(6-4+4) = 64 trees of depth 4 (31 nodes), 2^(6-6+4) = 16 of depth 6 (127 nodes).
const BINARY_TREES_6: &str = "stretch tree of depth 7\t check: 255
64\t trees of depth 4\t check: 1984
16\t trees of depth 6\t check: 2032
long lived tree of depth 6\t check: 127
";

const BINARY_TREES_10: &str = "stretch tree of depth 11\t check: 4095
1024\t trees of depth 4\t check: 31744
256\t trees of depth 6\t check: 32512
64\t trees of depth 8\t check: 32704
16\t trees of depth 10\t check: 32752
long lived tree of depth 10\t check: 2047
";

#[test]
fn binary_trees_prints_the_reference_output() {
    assert_eq!(binary_trees::expected_output(6), BINARY_TREES_6);
    assert_eq!(binary_trees::expected_output(10), BINARY_TREES_10);
    assert_eq!(run("binary-trees 6").output, BINARY_TREES_6);
    assert_eq!(run("binary-trees 10").output, BINARY_TREES_10);
    // Below the minimum depth the program still builds depths 4 and 6.
    assert_eq!(run("binary-trees 2").output, BINARY_TREES_6);
}

#[test]
fn binary_trees_collects_and_stays_right_under_verify() {
    let s = run_with(
        "binary-trees 14",
        Options {
            procs: Some(2),
            verify: true,
            ..Options::default()
        },
    );
    assert_eq!(s.output, binary_trees::expected_output(14));
    assert!(
        s.collections() > 0,
        "depth 14 allocates far past the first goal"
    );
    assert!(s.pause_max() <= s.pause_total());
    assert!(s.peak_heap > 0 && s.peak_rss > 0);
    assert!(s.cpu.as_nanos() > 0 && s.wall.as_nanos() > 0);
}

#[test]
fn gcbench_runs_every_phase() {
    let s = run("gcbench 10");
    let lines: Vec<&str> = s.output.lines().collect();
    assert_eq!(lines[0], "Garbage Collector Test");
    assert!(s
        .output
        .contains(" Stretching memory with a binary tree of depth 12\n"));
    assert!(s
        .output
        .contains(" Creating a long-lived binary tree of depth 10\n"));
    assert!(s
        .output
        .contains(" Creating a long-lived array of 500000 doubles\n"));
    // NumIters(d) = 2 * TreeSize(12) / TreeSize(d), TreeSize(d) = 2^(d+1) - 1.
    for (iters, depth) in [(528, 4), (128, 6), (32, 8), (8, 10)] {
        let at = lines
            .iter()
            .position(|l| *l == format!("Creating {iters} trees of depth {depth}"))
            .unwrap_or_else(|| panic!("no phase for depth {depth} in\n{}", s.output));
        assert!(lines[at + 1].starts_with("\tTop down construction took "));
        assert!(lines[at + 2].starts_with("\tBottom up construction took "));
        assert!(lines[at + 2].ends_with(" msec"));
    }
    assert!(lines.last().unwrap().starts_with("Completed in "));
    assert!(s.collections() > 0);
}

#[test]
fn churn_keeps_its_window_alive() {
    let s = run("churn 400000 1000");
    assert!(
        s.output
            .starts_with("churn: 400000 allocations of 32 bytes, the last 1000 alive: "),
        "{}",
        s.output
    );
    assert!(s.output.contains(" ns/allocation "));
    // 12.8 MB of 32-byte objects with a 4 MiB minimum goal: a few collections at least.
    assert!(s.collections() >= 2, "{} collections", s.collections());
    // The window is tiny: the heap never grows far past the minimum goal.
    assert!(s.peak_heap < 64 << 20, "peak heap {}", s.peak_heap);
}

#[test]
fn latency_reports_pauses_over_an_intact_heap() {
    let s = run("latency 8MiB");
    let lines: Vec<&str> = s.output.lines().collect();
    assert!(
        lines[0].starts_with("latency: built 8MiB live in 4096 lists of 64 nodes of 32 bytes"),
        "{}",
        s.output
    );
    assert!(lines[1].starts_with("churn: replaced 16384 lists (32MiB allocated) in "));
    assert!(lines[2].starts_with("stop-the-world pauses during churn: max "));
    assert!(lines[2].contains(", p99 ") && lines[2].contains(", median "));
    assert!(lines[3].starts_with("mutator stalls (every 1024 allocations): max "));
    assert!(lines[3].contains(", p99 ") && lines[3].contains(", median "));
    // 32 MiB churned over an 8 MiB live heap at GOGC=100: at least one collection per 8 MiB.
    assert!(s.collections() >= 3, "{} collections", s.collections());
    assert!(s.peak_heap >= 8 << 20);
}

#[test]
fn pipeline_delivers_every_message_intact() {
    let s = run("pipeline 30000 3 4");
    assert!(
        s.output
            .starts_with("pipeline: 30000 messages through 3 stages and 4 workers in "),
        "{}",
        s.output
    );
    assert!(s.collections() > 0);
    // One P: every hand-off is a goroutine switch on the same thread.
    run_with(
        "pipeline 5000 2 3",
        Options {
            procs: Some(1),
            verify: true,
            ..Options::default()
        },
    );
}

#[test]
fn table_and_json_report_every_run() {
    let runs = vec![run("binary-trees 8"), run("pipeline 2000 1 1")];
    let table = report::table(&runs);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("workload"));
    for col in [
        "wall",
        "CPU",
        "GCs",
        "pause total",
        "pause max",
        "peak heap",
        "peak RSS",
        "check",
    ] {
        assert!(lines[0].contains(col), "no {col} column in\n{table}");
    }
    assert!(lines[1].starts_with("----"));
    assert!(lines[2].starts_with("binary-trees 8 ") && lines[2].ends_with("  ok"));
    assert!(lines[3].starts_with("pipeline 2000 1 1 ") && lines[3].ends_with("  ok"));
    assert_eq!(lines.len(), 4);
    // Columns line up: every row is as wide as the header up to the check column.
    let at = lines[0].find("check").unwrap();
    assert!(lines[2..].iter().all(|l| &l[at..] == "ok"));

    let v = report::json_table(&runs);
    assert_eq!(v["ok"], true);
    assert_eq!(v["runs"][0]["workload"], "binary-trees 8");
    assert_eq!(v["runs"][0]["output"], binary_trees::expected_output(8));
    assert_eq!(v["runs"][1]["procs"], 2);
    assert!(v["runs"][1]["wall_s"].as_f64().unwrap() > 0.0);

    let mut failed = runs[0].clone();
    failed.verdict = Err("output differs".into());
    let table = report::table(&[failed]);
    assert!(table.contains("FAILED"));
    assert!(table.contains("binary-trees 8 FAILED: output differs"));
}

#[test]
fn the_table_jobs_are_every_workload() {
    let labels: Vec<String> = minigo_examples::cli::table_jobs()
        .iter()
        .map(Job::label)
        .collect();
    let names: Vec<&str> = labels
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "binary-trees",
            "gcbench",
            "churn",
            "latency",
            "pipeline",
            "goroutines"
        ]
    );
}
