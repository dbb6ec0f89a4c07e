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

/// A small random Lox program built from what the analysis decides on: nested local
/// functions that call each other and themselves, read and assign their declarers'
/// variables and parameters, and sometimes escape (stored, passed, compared), inside
/// loops and blocks. A global call budget keeps every run short.
struct ProgramGen {
    state: u64,
    names: usize,
    out: String,
}

impl ProgramGen {
    fn next(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }

    fn name(&mut self, prefix: &str) -> String {
        self.names += 1;
        format!("{prefix}{}", self.names)
    }

    fn expr(&mut self, vars: &[String], funs: &[(String, usize)], depth: u32) -> String {
        let c = self.next(100);
        if depth > 2 || c < 30 {
            if !vars.is_empty() && self.next(10) < 7 {
                return vars[self.next(vars.len() as u64) as usize].clone();
            }
            return self.next(10).to_string();
        }
        if c < 55 && !funs.is_empty() {
            let (f, arity) = funs[self.next(funs.len() as u64) as usize].clone();
            let args: Vec<String> = (0..arity)
                .map(|_| self.expr(vars, funs, depth + 1))
                .collect();
            return format!("{f}({})", args.join(", "));
        }
        if c < 62 && !funs.is_empty() {
            let (f, _) = funs[self.next(funs.len() as u64) as usize].clone();
            return match self.next(3) {
                0 => format!("keep({f})"),
                1 => format!("({f} == {f})"),
                _ => format!("hold({f})"),
            };
        }
        let (a, b) = (
            self.expr(vars, funs, depth + 1),
            self.expr(vars, funs, depth + 1),
        );
        format!("({a} + {b})")
    }

    fn block(&mut self, vars: &[String], funs: &[(String, usize)], depth: u32, indent: &str) {
        let mut vars = vars.to_vec();
        let mut funs = funs.to_vec();
        for _ in 0..1 + self.next(5) {
            let c = self.next(100);
            if c < 25 {
                let v = self.name("v");
                let e = self.expr(&vars, &funs, 0);
                self.out += &format!("{indent}var {v} = {e};\n");
                vars.push(v);
            } else if c < 47 && depth < 4 {
                let f = self.name("f");
                let arity = self.next(3) as usize;
                let params: Vec<String> = (0..arity).map(|_| self.name("p")).collect();
                self.out += &format!("{indent}fun {f}({}) {{\n", params.join(", "));
                self.out += &format!("{indent}  if (budget < 1) return 0;\n");
                self.out += &format!("{indent}  budget = budget - 1;\n");
                let mut inner_vars = vars.clone();
                inner_vars.extend(params);
                let mut inner_funs = funs.clone();
                inner_funs.push((f.clone(), arity));
                self.block(&inner_vars, &inner_funs, depth + 1, &format!("{indent}  "));
                let e = self.expr(&inner_vars, &funs, 1);
                self.out += &format!("{indent}  return {e};\n{indent}}}\n");
                funs.push((f, arity));
            } else if c < 62 && !vars.is_empty() {
                let v = vars[self.next(vars.len() as u64) as usize].clone();
                let e = self.expr(&vars, &funs, 0);
                self.out += &format!("{indent}{v} = {e};\n");
            } else if c < 70 && !funs.is_empty() {
                let (f, _) = funs[self.next(funs.len() as u64) as usize].clone();
                self.out += &format!("{indent}saved = {f};\n");
            } else if c < 80 && depth < 4 {
                let i = format!("i{depth}");
                self.out += &format!("{indent}for (var {i} = 0; {i} < 2; {i} = {i} + 1) {{\n");
                self.block(&vars, &funs, depth + 1, &format!("{indent}  "));
                self.out += &format!("{indent}}}\n");
            } else {
                let e = self.expr(&vars, &funs, 0);
                self.out += &format!("{indent}print {e};\n");
            }
        }
    }

    fn program(seed: u64) -> String {
        let mut g = ProgramGen {
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            names: 0,
            out: String::from(
                "var budget = 50;\nvar saved = nil;\nvar kept = nil;\n\
                 fun keep(f) { kept = f; return 1; }\n\
                 fun hold(f) { return 2; }\n\
                 fun main() {\n",
            ),
        };
        g.block(&[], &[], 0, "  ");
        g.out += "  return 0;\n}\nprint main();\nif (saved != nil) print saved;\n";
        g.out
    }
}

/// Random programs print the same with the analysis on as off (and under `--gc-stress
/// --verify` with it on), errors and traces included. Each one's decisions are mixed:
/// most have direct functions, many have escaping ones.
#[test]
fn random_programs_agree_with_the_analysis_on_and_off() {
    let dir = std::env::temp_dir().join(format!("lox-escape-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let (mut direct, mut escaping, mut differ) = (0, 0, Vec::new());
    for seed in 0..150u64 {
        let source = ProgramGen::program(seed);
        let file = dir.join(format!("p{seed}.lox"));
        std::fs::write(&file, &source).expect("a writable temporary file");
        let off = harness::run(&file, &["--no-escape-analysis"]);
        let flags: &[&str] = if seed % 5 == 0 {
            &["-m", "--gc-stress", "--verify"]
        } else {
            &["-m"]
        };
        let on = harness::run(&file, flags);
        // The report comes first on stderr: one line per decision.
        let report_lines = on
            .stderr
            .lines()
            .take_while(|l| l.contains(".lox:") && !l.starts_with('['))
            .count();
        let report: Vec<&str> = on.stderr.lines().take(report_lines).collect();
        direct += report
            .iter()
            .filter(|l| l.ends_with("does not escape"))
            .count();
        escaping += report
            .iter()
            .filter(|l| l.ends_with("escapes to heap"))
            .count();
        let rest: String = on
            .stderr
            .lines()
            .skip(report_lines)
            .map(|l| format!("{l}\n"))
            .collect();
        if (&on.stdout, &rest, on.code) != (&off.stdout, &off.stderr, off.code) {
            differ.push(format!("seed {seed}:\n{source}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("150 programs: {direct} direct functions, {escaping} escaping");
    assert!(
        direct > 100 && escaping > 50,
        "{direct} direct, {escaping} escaping"
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// A direct function reads its declarer's variables with `GET_OUTER`, a byte longer than
/// clox's `GET_UPVALUE`: a block of 20,000 such reads (`n;`) is too long to jump over here
/// (80,000 bytes) though clox's 60,000 fit. The program still compiles and runs, as clox
/// compiles it.
#[test]
fn code_too_long_for_direct_functions_compiles_as_clox() {
    let reads = "n; ".repeat(20_000);
    let source = format!(
        "fun main() {{\n  var n = 0;\n  fun f() {{ if (true) {{ {reads} }} n = n + 1; }}\n  f();\n  print n;\n}}\nmain();\n"
    );
    let dir = std::env::temp_dir().join(format!("lox-escape-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("long.lox");
    std::fs::write(&file, source).expect("a writable temporary file");
    let on = harness::run(&file, &["-m"]);
    let off = harness::run(&file, &["--no-escape-analysis"]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!((on.code, on.stdout.as_str()), (0, "1\n"), "{}", on.stderr);
    assert_eq!(
        (off.code, off.stdout.as_str()),
        (0, "1\n"),
        "{}",
        off.stderr
    );
    // Compiled as clox: no decisions to report.
    assert_eq!(on.stderr, "");
}
