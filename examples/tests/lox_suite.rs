//! The Crafting Interpreters test suite (`../shared/lox/tests`, when it is there) against
//! the `lox` binary: every file, normally, with a collection before every allocation
//! (`--gc-stress`), and in the collector's verify mode (`--verify`).

#[path = "lox/harness.rs"]
mod harness;

use std::path::Path;

fn suite(flags: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/lox/tests");
    if !dir.is_dir() {
        eprintln!("skipped: no test suite at {}", dir.display());
        return;
    }
    let files = harness::lox_files(&dir);
    assert!(files.len() > 100, "the suite has its files");
    harness::check_all("lox suite", &files, flags);
}

#[test]
fn suite_passes() {
    suite(&[]);
}

#[test]
fn suite_passes_under_gc_stress() {
    suite(&["--gc-stress"]);
}

#[test]
fn suite_passes_in_verify_mode() {
    suite(&["--verify"]);
}

#[test]
fn suite_passes_under_gc_stress_in_verify_mode() {
    suite(&["--gc-stress", "--verify"]);
}
