//! The project's own Lox programs (`tests/lox/{gc,lang,limit}`), for what the shared
//! Crafting Interpreters suite does not reach: collector behaviour (deep closure chains,
//! large object graphs, cycles, weakly interned strings, large strings), `super` chains,
//! shadowing, `%g` number printing, full stack traces and the compiler's limits. Same
//! conventions and harness as `lox_suite.rs`, in the same four modes.

#[path = "lox/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// Files whose object graphs are large on purpose (hundreds of thousands of live objects,
/// or enough dropped strings to trigger collections unaided): with a full collection
/// before every allocation they would take minutes, and what they check under stress is
/// already checked by the smaller files, which all run in every mode.
const TOO_BIG_FOR_STRESS: &[&str] = &[
    "gc/large_list.lox",
    "gc/large_tree.lox",
    "gc/strings_dropped.lox",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lox")
}

fn relative(file: &Path) -> String {
    let rel = file.strip_prefix(dir()).expect("a file under tests/lox");
    rel.to_string_lossy().replace('\\', "/")
}

fn files(stress: bool) -> Vec<PathBuf> {
    harness::lox_files(&dir())
        .into_iter()
        .filter(|f| {
            let rel = relative(f);
            // The sign of the NaN that 0/0 makes is the CPU's; the file expects x86-64's.
            let arch_ok = !rel.contains("_x86_64") || cfg!(target_arch = "x86_64");
            arch_ok && !(stress && TOO_BIG_FOR_STRESS.contains(&rel.as_str()))
        })
        .collect()
}

fn own(flags: &[&str]) {
    let stress = flags.contains(&"--gc-stress");
    let files = files(stress);
    // A miscounted directory would pass vacuously.
    assert!(files.len() >= 15, "found only {} files", files.len());
    harness::check_all("own lox tests", &files, flags);
}

#[test]
fn own_tests_pass() {
    own(&[]);
}

#[test]
fn own_tests_pass_under_gc_stress() {
    own(&["--gc-stress"]);
}

#[test]
fn own_tests_pass_in_verify_mode() {
    own(&["--verify"]);
}

#[test]
fn own_tests_pass_under_gc_stress_in_verify_mode() {
    own(&["--gc-stress", "--verify"]);
}

#[test]
fn heavy_files_exist() {
    // The skip list names files by path; a rename must not silently drop a skip.
    for name in TOO_BIG_FOR_STRESS {
        assert!(dir().join(name).is_file(), "{name} is missing");
    }
}

/// The harness checks only a trace's first line; here every frame, in order.
#[test]
fn runtime_error_trace_names_every_frame() {
    let o = harness::run(&dir().join("lang/deep_runtime_error.lox"), &[]);
    assert_eq!(o.stdout, "400\nbefore\n");
    assert_eq!(
        o.stderr,
        "Operands must be two numbers or two strings.\n\
         [line 13] in settle()\n\
         [line 8] in withdraw()\n\
         [line 18] in step()\n\
         [line 19] in inner()\n\
         [line 20] in step()\n\
         [line 19] in inner()\n\
         [line 20] in step()\n\
         [line 25] in script\n"
    );
    assert_eq!(o.code, 70);
}

/// A stack overflow's trace lists all 64 frames: 63 calls and the script.
#[test]
fn stack_overflow_trace_has_every_frame() {
    let o = harness::run(&dir().join("limit/frame_limit.lox"), &[]);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.first(), Some(&"Stack overflow."));
    let frames = &lines[1..];
    assert_eq!(frames.len(), 64, "{}", o.stderr);
    assert!(frames[..63].iter().all(|l| *l == "[line 7] in depth()"));
    assert_eq!(frames[63], "[line 21] in script");
    assert_eq!(o.code, 70);
}
