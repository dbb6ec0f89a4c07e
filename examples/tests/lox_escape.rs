//! Escape analysis in the Lox compiler (`examples/src/lox/escape.rs`), through the `lox`
//! binary and the `Vm` API:
//!
//! - each rule's file in `tests/lox/escape/` reports under `-m` (and `-m -m`) exactly the
//!   decisions its comments give: `// m: COL: DECISION // why: REASON` on the line the
//!   decision names, several per line if need be (the harness runs the same files for
//!   their output, in every GC mode, with `lox_own.rs`);
//! - every Lox program of the book's suite and of this project prints the same bytes, to
//!   both streams, with the same exit code, whether the analysis is on or off;
//! - the closures and upvalues a direct function saves are gone from MemStats.Mallocs.

#[path = "lox/harness.rs"]
mod harness;

use std::io;
use std::path::{Path, PathBuf};

use minigo_examples::lox::{EscapeOptions, InterpretResult, Vm};
use minigo_gc::GcConfig;

fn own_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lox")
}

/// The `-m` lines (and with `level` 2 their reasons) that `source`'s comments expect of
/// `file`.
fn expected_report(file: &str, source: &str, level: u32) -> String {
    let mut out = String::new();
    for (i, line) in source.lines().enumerate() {
        for entry in line.split("// m: ").skip(1) {
            let (decision, why) = entry.split_once(" // why: ").unwrap_or((entry, ""));
            let (col, decision) = decision.split_once(": ").expect("// m: COL: DECISION");
            out += &format!("{file}:{}:{col}: {}\n", i + 1, decision.trim_end());
            if level >= 2 {
                out += &format!("{file}:{}:{col}:   {}\n", i + 1, why.trim_end());
            }
        }
    }
    out
}

#[test]
fn each_rule_reports_its_decisions() {
    let files = harness::lox_files(&own_dir().join("escape"));
    assert!(files.len() >= 9, "found only {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let source = std::fs::read_to_string(f).expect("a readable test");
        let name = f.to_string_lossy().into_owned();
        let expect = harness::parse(&source);
        for (flags, level) in [(&["-m"][..], 1), (&["-m", "-m"][..], 2)] {
            let o = harness::run(f, flags);
            let want = expected_report(&name, &source, level);
            assert!(!want.is_empty(), "{name} expects no decisions");
            // The report comes first, then what the program itself writes to stderr.
            match o.stderr.strip_prefix(&want) {
                None => failures.push(format!(
                    "{name} {flags:?}: expected report\n{want}got stderr\n{}",
                    o.stderr
                )),
                Some(rest) => {
                    let program = harness::Outcome {
                        stdout: o.stdout,
                        stderr: rest.to_string(),
                        code: o.code,
                    };
                    if let Err(why) = harness::check(&expect, &program) {
                        failures.push(format!("{name} {flags:?}: {why}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every program of the suite and of this project behaves the same with the analysis on
/// and off: stdout, stderr and exit code, byte for byte.
#[test]
fn the_analysis_changes_no_program_output() {
    let mut files = harness::lox_files(&own_dir());
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lox/tests");
    if suite.is_dir() {
        files.extend(harness::lox_files(&suite));
    } else {
        eprintln!("no test suite at {}: own files only", suite.display());
    }
    assert!(files.len() >= 30, "found only {} files", files.len());
    let mut differ = Vec::new();
    for f in &files {
        let on = harness::run(f, &[]);
        let off = harness::run(f, &["--no-escape-analysis"]);
        if (&on.stdout, &on.stderr, on.code) != (&off.stdout, &off.stderr, off.code) {
            differ.push(format!(
                "{}:\n  on:  {:?} {:?} {}\n  off: {:?} {:?} {}",
                f.display(),
                on.stdout,
                on.stderr,
                on.code,
                off.stdout,
                off.stderr,
                off.code
            ));
        }
    }
    eprintln!("{} programs compared", files.len());
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// Heap objects `source` allocates (MemStats.Mallocs), compiling included.
fn mallocs(source: &str, off: bool) -> u64 {
    let mut vm = Vm::new(
        GcConfig::default(),
        Box::new(io::sink()),
        Box::new(io::sink()),
    )
    .expect("a heap");
    vm.set_escape(EscapeOptions { off, report: 0 });
    let before = vm.heap_stats().mallocs;
    assert_eq!(vm.interpret(source.as_bytes()), InterpretResult::Ok);
    vm.heap_stats().mallocs - before
}

#[test]
fn direct_functions_allocate_no_closures_or_upvalues() {
    // Per call of `work`, clox makes a closure for `add` and an upvalue for `total`.
    let source = "
        fun work(i) {
          var total = 0;
          fun add(k) { total = total + k; }
          add(i);
          add(1);
          return total;
        }
        var sum = 0;
        for (var i = 0; i < 10000; i = i + 1) sum = sum + work(i);
        if (sum != 50005000) print nil.wrong;
    ";
    let (on, off) = (mallocs(source, false), mallocs(source, true));
    eprintln!("mallocs: analysis on {on}, off {off}");
    assert!(off >= 20_000, "without the analysis: {off} mallocs");
    assert!(on < 200, "with the analysis: {on} mallocs");

    // An escaping closure still gets both, every call.
    let escaping = "
        fun make(i) {
          var total = i;
          fun get() { return total; }
          return get;
        }
        for (var i = 0; i < 10000; i = i + 1) make(i)();
    ";
    let (on, off) = (mallocs(escaping, false), mallocs(escaping, true));
    assert!(on >= 20_000 && off >= 20_000, "on {on}, off {off}");
}
