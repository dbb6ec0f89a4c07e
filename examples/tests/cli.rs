//! The `minigo` binary as a person or a script meets it: help, usage errors (exit status 2
//! with a message that says what was wrong), one workload's stdout, `--json`, `--plot`.

use std::io::Read;
use std::process::{Command, Output};

use minigo_gc::pprof::proto::Profile;
use prost::Message;

fn minigo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minigo"))
        .args(args)
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT")
        .env_remove("GODEBUG")
        .output()
        .expect("the minigo binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[track_caller]
fn usage_error(args: &[&str], says: &str) {
    let o = minigo(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    let e = stderr(&o);
    assert!(e.starts_with("minigo: "), "{args:?}: {e}");
    assert!(e.contains(says), "{args:?}: expected {says:?} in {e:?}");
    assert!(e.contains("minigo --help"), "{args:?}: {e}");
    assert!(o.stdout.is_empty(), "{args:?}: nothing runs");
}

#[test]
fn help_lists_every_workload_and_flag() {
    for args in [&["--help"][..], &["help"], &["churn", "--help"]] {
        let o = minigo(args);
        assert_eq!(o.status.code(), Some(0));
        let text = stdout(&o);
        for name in [
            "binary-trees",
            "gcbench",
            "churn",
            "latency",
            "pipeline",
            "lox",
        ] {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no line for {name} in\n{text}"));
            assert!(line.len() > 40, "{name}'s line says what it does: {line}");
        }
        for flag in [
            "--procs N",
            "--gogc N|off",
            "--memlimit SIZE",
            "--gctrace",
            "--verify",
            "--plot FILE.svg",
            "--json",
            "--memprofile FILE",
            "--memprofilerate N",
            "--memstats",
        ] {
            assert!(text.contains(flag), "no {flag} in help");
        }
    }
}

#[test]
fn unknown_workloads_and_flags_are_usage_errors() {
    usage_error(&["binary-tree", "10"], "unknown workload \"binary-tree\"");
    usage_error(&["--fast"], "unknown flag --fast");
    usage_error(&["churn", "--procs"], "--procs needs a value");
    usage_error(&["churn", "--json=yes"], "--json takes no value");
    usage_error(&["binary-trees", "6", "7"], "unexpected argument \"7\"");
    usage_error(&["--plot", "x.svg"], "--plot needs a workload");
    usage_error(&["--json", "lox", "x.lox"], "put lox first");
    usage_error(
        &["--memprofile", "m.pb.gz"],
        "--memprofile needs a workload",
    );
    usage_error(&["--memstats"], "--memstats needs a workload");
    usage_error(
        &["churn", "10", "--memprofile", "/nonexistent-dir/m.pb.gz"],
        "cannot write the heap profile to /nonexistent-dir/m.pb.gz",
    );
    usage_error(
        &["churn", "10", "--memprofilerate", "-1"],
        "--memprofilerate: expected a whole number",
    );
    // Found before the run: a 10-million-allocation churn would take seconds first.
    usage_error(
        &["churn", "10000000", "--plot", "/nonexistent-dir/p.svg"],
        "cannot write the plot to /nonexistent-dir/p.svg",
    );
}

#[test]
fn short_help_and_version() {
    let help = minigo(&["-h"]);
    assert_eq!(help.status.code(), Some(0));
    assert_eq!(stdout(&help), stdout(&minigo(&["--help"])));
    for args in [&["--version"][..], &["-V"]] {
        let o = minigo(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert_eq!(
            stdout(&o),
            format!("minigo {}\n", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
    }
    let lox = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_lox"))
            .args(args)
            .output()
            .expect("the lox binary runs")
    };
    for args in [&["-h"][..], &["--help"]] {
        let o = lox(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        assert!(stdout(&o).starts_with("Usage: lox [path]"), "{args:?}");
    }
    let o = lox(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        format!("lox (minigo {})\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_numbers_and_sizes_are_usage_errors() {
    usage_error(
        &["binary-trees", "ten"],
        "binary-trees N: expected a whole number, got \"ten\"",
    );
    usage_error(
        &["binary-trees", "-3"],
        "expected a whole number, got \"-3\"",
    );
    usage_error(&["binary-trees", "29"], "out of range (0..=28)");
    usage_error(&["churn", "1e8"], "churn COUNT: expected a whole number");
    usage_error(&["churn", "0"], "out of range");
    usage_error(
        &["pipeline", "10", "x"],
        "pipeline STAGES: expected a whole number",
    );
    usage_error(&["gcbench", "99999999999999999999999"], "too large");
    usage_error(&["latency", "1GB"], "latency SIZE: expected a byte size");
    usage_error(&["latency", "1KiB"], "at least 2048 bytes");
    usage_error(
        &["churn", "10", "--procs", "0"],
        "--procs: 0 is out of range",
    );
    usage_error(
        &["churn", "10", "--gogc", "lots"],
        "--gogc: expected a whole number",
    );
    usage_error(
        &["churn", "10", "--memlimit", "2G"],
        "--memlimit: expected a byte size",
    );
}

#[test]
fn a_bad_environment_is_a_usage_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_minigo"))
        .args(["binary-trees", "6"])
        .env("GOGC", "sometimes")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("GOGC"), "{}", stderr(&o));
}

#[test]
fn one_workload_prints_exactly_its_output_and_a_summary_on_stderr() {
    let o = minigo(&["binary-trees", "10", "--procs", "2", "--gogc", "50"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "stretch tree of depth 11\t check: 4095\n\
         1024\t trees of depth 4\t check: 31744\n\
         256\t trees of depth 6\t check: 32512\n\
         64\t trees of depth 8\t check: 32704\n\
         16\t trees of depth 10\t check: 32752\n\
         long lived tree of depth 10\t check: 2047\n"
    );
    let e = stderr(&o);
    assert!(
        e.contains("--- minigo binary-trees 10: 2 procs, GOGC=50"),
        "{e}"
    );
    assert!(
        e.contains(" collections (") && e.contains(" minor), pause total"),
        "{e}"
    );
    assert!(e.contains("check: ok"), "{e}");
}

#[test]
fn gctrace_writes_go_lines_to_stderr() {
    let o = minigo(&[
        "churn",
        "300000",
        "--gctrace",
        "--memlimit",
        "64MiB",
        "--verify",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    let first = e.lines().next().unwrap();
    assert!(first.starts_with("gc 1 @"), "{e}");
    assert!(first.contains(" MB goal, "), "{e}");
    assert!(e.contains("memory limit 64.0 MiB"), "{e}");
}

#[test]
fn json_is_one_object_with_the_summary() {
    let o = minigo(&["pipeline", "3000", "2", "2", "--json", "--gogc", "off"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["workload"], "pipeline 3000 2 2");
    assert_eq!(v["ok"], true);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(v["gogc"], serde_json::Value::Null, "GOGC off");
    assert_eq!(v["collections"], 0, "GOGC off and no limit: no collection");
    assert!(v["output"]
        .as_str()
        .unwrap()
        .starts_with("pipeline: 3000 messages"));
    for key in [
        "wall_s",
        "cpu_s",
        "pause_total_ms",
        "pause_max_ms",
        "pause_p99_ms",
        "peak_heap_bytes",
        "peak_rss_bytes",
        "procs",
    ] {
        assert!(v[key].is_number(), "{key} in {v}");
    }
}

#[test]
fn plot_draws_heap_goal_and_pauses() {
    let path = std::env::temp_dir().join(format!("minigo-plot-{}.svg", std::process::id()));
    let p = path.to_str().unwrap();
    let o = minigo(&["binary-trees", "12", "--plot", p]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100.min(svg.len())]);
    for label in [
        "heap live",
        "heap in use",
        "heap goal",
        "stop-the-world pause",
        "concurrent mark",
        "RSS",
    ] {
        assert!(svg.contains(label), "no {label} in the plot");
    }
    assert!(svg.contains("minigo binary-trees 12: "));
    // One translucent band per pause, besides the legend's.
    let collections: usize = svg
        .split("minigo binary-trees 12: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(collections > 0);
    // Two red bands per concurrent cycle (its two pauses) and one blue one (its marking),
    // besides the legend's.
    assert!(svg.matches("opacity=\"0.45\"").count() > 2 * collections);
    assert!(svg.matches("opacity=\"0.25\"").count() > collections);

    // A path that cannot be written is a usage error, found before the run.
    usage_error(
        &["binary-trees", "6", "--plot", "/nonexistent-dir/x.svg"],
        "cannot write the plot",
    );
}

#[test]
fn flags_parse_anywhere_after_the_workload_and_lox_keeps_its_own() {
    use minigo_examples::cli::args::{parse, Command, Options};
    use minigo_examples::workloads::{churn, Job};
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        parse(&args(
            "churn --procs=3 5 --gogc off --memlimit 1GiB --json --verify"
        )),
        Ok(Command::One(
            Job::Churn(churn::Params {
                count: 5,
                window: 10_000
            }),
            Options {
                procs: Some(3),
                gogc: Some(None),
                memlimit: Some(Some(1 << 30)),
                verify: true,
                json: true,
                ..Options::default()
            }
        ))
    );
    assert_eq!(
        parse(&args("--gctrace --gogc 50")),
        Ok(Command::Table(Options {
            gctrace: true,
            gogc: Some(Some(50)),
            ..Options::default()
        }))
    );
    assert_eq!(
        parse(&args("lox prog.lox --gc-stress --procs x")),
        Ok(Command::Lox(args("prog.lox --gc-stress --procs x")))
    );
    assert_eq!(parse(&args("")), Ok(Command::Table(Options::default())));
}

#[test]
fn memprofile_writes_a_profile_that_names_the_workloads_functions() {
    let path = std::env::temp_dir().join(format!("minigo-cli-{}.pb.gz", std::process::id()));
    let o = minigo(&[
        "binary-trees",
        "12",
        "--procs",
        "1",
        "--memprofilerate",
        "4096",
        "--memprofile",
        path.to_str().unwrap(),
        "--memstats",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("heap profile written to"), "{e}");
    assert!(e.contains("# runtime.MemStats\n# Alloc = "), "{e}");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let p = Profile::decode(&raw[..]).unwrap();
    assert_eq!(p.period, 4096);
    let names: Vec<&str> = p
        .function
        .iter()
        .map(|f| p.string_table[f.name as usize].as_str())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with("binary_trees::bottom_up_tree")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("minigo_runtime::") || n.contains("minigo_gc::")),
        "the runtime's frames are trimmed: {names:?}"
    );
}
