//! Behaviour the book's C interpreter (clox) has and differential testing found this one
//! lacking, each against clox's own output: deep nesting compiles as far as memory goes,
//! a NUL byte ends the source, and `super` outside a class adds the constants clox adds.
//! (NaN signs under `+` and `*` are in `tests/lox/lang/nan_x86_64.lox`.)

use std::path::PathBuf;
use std::process::Command;

/// Runs `source` as a file; returns stdout, stderr and the exit code.
fn lox(name: &str, source: &[u8]) -> (String, String, i32) {
    let dir = std::env::temp_dir().join(format!("lox-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join(name);
    std::fs::write(&file, source).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_lox"))
        .arg(&file)
        .output()
        .expect("the lox binary runs");
    std::fs::remove_file(&file).unwrap();
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[track_caller]
fn prints(name: &str, source: String, out: &str) {
    let (stdout, stderr, code) = lox(name, source.as_bytes());
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        (out, "", 0),
        "{name}"
    );
}

#[test]
fn deep_nesting_compiles_as_in_clox() {
    prints("unary.lox", format!("print {}2;", "-".repeat(1500)), "2\n");
    prints(
        "parens.lox",
        format!("print {}1{};", "(".repeat(100_000), ")".repeat(100_000)),
        "1\n",
    );
    prints(
        "and.lox",
        format!("print {};", vec!["true"; 1000].join(" and ")),
        "true\n",
    );
    prints(
        "blocks.lox",
        format!("{}print 6;{}", "{".repeat(20_000), "}".repeat(20_000)),
        "6\n",
    );
    let mut nested = String::new();
    for i in 0..500 {
        nested += &format!("fun f{i}() {{\n");
    }
    nested += "print \"deep\";\n";
    for i in (0..500).rev() {
        nested += &format!("}}\nf{i}();\n");
    }
    // 500 nested functions compile; calling them overflows the 64 frames, as in clox.
    let (stdout, stderr, code) = lox("functions.lox", nested.as_bytes());
    assert_eq!((stdout.as_str(), code), ("", 70));
    let trace: Vec<&str> = stderr.lines().collect();
    assert_eq!(trace.len(), 65, "{stderr}");
    assert_eq!(trace[0], "Stack overflow.");
    assert_eq!(trace[1], "[line 1375] in f62()");
    assert_eq!(trace[63], "[line 1499] in f0()");
    assert_eq!(trace[64], "[line 1501] in script");
}

#[test]
fn a_nul_byte_ends_the_source() {
    let (stdout, stderr, code) = lox("nul.lox", b"print 1;\0print 2;");
    assert_eq!((stdout.as_str(), stderr.as_str(), code), ("1\n", "", 0));
}

#[test]
fn super_outside_a_class_adds_the_constants_clox_adds() {
    let args: Vec<String> = (0..255).map(|i| i.to_string()).collect();
    let call = format!("f({});", args.join(", "));
    for (where_, source, line) in [
        ("top level", format!("super.m36();\n{call}\n"), 2),
        (
            "a function",
            format!("fun g() {{ super.m36(); {call} }}\n"),
            1,
        ),
    ] {
        let (_, stderr, code) = lox("super.lox", source.as_bytes());
        assert_eq!(code, 65, "{where_}");
        assert_eq!(
            stderr,
            format!(
                "[line 1] Error at 'super': Can't use 'super' outside of a class.\n\
                 [line {line}] Error at '253': Too many constants in one chunk.\n"
            ),
            "{where_}"
        );
    }
}
