//! Runs Lox test programs the way the *Crafting Interpreters* test runner does, against
//! the `lox` binary: expectations come from comments in each file.
//!
//! - `// expect: TEXT`: the next line of stdout is TEXT;
//! - `// [line N] Error...` or `// [c line N] Error...` (`[java line N]` is jlox's, ignored),
//!   and `// Error...` (on the comment's own line): a compile error line on stderr, exit 65;
//! - `// expect runtime error: MESSAGE`: stderr starts with MESSAGE, then a stack trace
//!   whose first `[line N]` names the comment's line; exit 70.
//!
//! Anything else on stdout or stderr is a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a test file expects.
#[derive(Debug, Default)]
pub struct Expect {
    pub output: Vec<String>,
    pub compile_errors: Vec<String>,
    pub runtime_error: Option<(String, usize)>,
}

impl Expect {
    pub fn exit_code(&self) -> i32 {
        if !self.compile_errors.is_empty() {
            65
        } else if self.runtime_error.is_some() {
            70
        } else {
            0
        }
    }
}

/// Reads the expectations out of a test's source.
pub fn parse(source: &str) -> Expect {
    let mut e = Expect::default();
    for (i, line) in source.lines().enumerate() {
        let n = i + 1;
        if let Some(at) = line.find("// expect: ") {
            e.output.push(line[at + "// expect: ".len()..].to_string());
        } else if let Some(at) = line.find("// expect runtime error: ") {
            let msg = line[at + "// expect runtime error: ".len()..].to_string();
            e.runtime_error = Some((msg, n));
        } else if let Some(at) = line.find("// [") {
            let rest = &line[at + "// [".len()..];
            let Some((tag, msg)) = rest.split_once("] ") else {
                continue;
            };
            if !msg.starts_with("Error") {
                continue;
            }
            let num = match tag.strip_prefix("c line ") {
                Some(num) => num,
                None if tag.starts_with("java line ") => continue,
                None => match tag.strip_prefix("line ") {
                    Some(num) => num,
                    None => continue,
                },
            };
            e.compile_errors.push(format!("[line {num}] {msg}"));
        } else if let Some(at) = line.find("// Error") {
            e.compile_errors
                .push(format!("[line {n}] {}", &line[at + "// ".len()..]));
        }
    }
    e
}

/// What a run produced.
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

/// Runs `lox FILE FLAGS...`.
pub fn run(file: &Path, flags: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_lox"))
        .arg(file)
        .args(flags)
        .output()
        .expect("the lox binary runs");
    Outcome {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Compares an outcome with the expectations; `Err` says how it differs.
pub fn check(e: &Expect, o: &Outcome) -> Result<(), String> {
    let mut problems = Vec::new();
    let out: Vec<&str> = o.stdout.lines().collect();
    for (i, want) in e.output.iter().enumerate() {
        match out.get(i) {
            Some(got) if got == want => {}
            Some(got) => problems.push(format!(
                "stdout line {}: expected {want:?}, got {got:?}",
                i + 1
            )),
            None => problems.push(format!(
                "stdout line {}: expected {want:?}, got nothing",
                i + 1
            )),
        }
    }
    if out.len() > e.output.len() {
        problems.push(format!("extra stdout: {:?}", &out[e.output.len()..]));
    }
    let err: Vec<&str> = o.stderr.lines().filter(|l| !l.is_empty()).collect();
    if let Some((msg, line)) = &e.runtime_error {
        if err.first() != Some(&msg.as_str()) {
            problems.push(format!("expected runtime error {msg:?}, stderr {err:?}"));
        }
        let trace = err.iter().skip(1).find_map(|l| {
            l.strip_prefix("[line ")
                .and_then(|r| r.split_once(']'))
                .map(|(n, _)| n.to_string())
        });
        if trace.as_deref() != Some(line.to_string().as_str()) {
            problems.push(format!(
                "expected a stack trace at [line {line}], stderr {err:?}"
            ));
        }
    } else {
        let mut want = e.compile_errors.clone();
        for l in &err {
            match want.iter().position(|w| w == l) {
                Some(p) => {
                    want.remove(p);
                }
                None => problems.push(format!("unexpected stderr line {l:?}")),
            }
        }
        for w in want {
            problems.push(format!("missing error {w:?}"));
        }
    }
    if o.code != e.exit_code() {
        problems.push(format!("exit code {} (expected {})", o.code, e.exit_code()));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n    "))
    }
}

/// Every `.lox` file under `dir`, sorted.
pub fn lox_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("a readable test directory") {
            let p = entry.expect("a directory entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "lox") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Runs every file with `flags` on `threads` threads; returns (passed, failures).
pub fn run_all(files: &[PathBuf], flags: &[&str], threads: usize) -> (usize, Vec<String>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new((0usize, Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { return };
                let source = std::fs::read_to_string(f).expect("a readable test");
                let e = parse(&source);
                let o = run(f, flags);
                let mut r = results.lock().unwrap();
                match check(&e, &o) {
                    Ok(()) => r.0 += 1,
                    Err(why) => r.1.push(format!("{} {flags:?}:\n    {why}", f.display())),
                }
            });
        }
    });
    let (passed, mut failed) = results.into_inner().unwrap();
    failed.sort();
    (passed, failed)
}

/// Runs `files` with `flags` and fails the test with every failure listed; `what` names
/// the set in the summary line.
pub fn check_all(what: &str, files: &[PathBuf], flags: &[&str]) {
    let (passed, failed) = run_all(files, flags, 2);
    eprintln!("{what} {flags:?}: {passed} passed, {} failed", failed.len());
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
