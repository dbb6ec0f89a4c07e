//! The Lox interpreter (clox-compatible), every object in a minigo heap. Being built.

/// Runs the interpreter as the `lox` command does, with `args` after the program name
/// (`[FILE] [--gc-stress] [--gctrace] [--verify]`); returns the process exit code.
pub fn cli(args: Vec<String>) -> i32 {
    let _ = args;
    eprintln!("lox: not built yet");
    70
}
