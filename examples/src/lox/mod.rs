//! The Lox interpreter of *Crafting Interpreters* (clox-compatible: output, messages, exit
//! codes, limits), with every Lox object in a minigo heap.
//!
//! How data flows: [`cli`] reads a file (or REPL lines) and hands the source to a [`Vm`].
//! The compiler (`compiler.rs`, pulling tokens from `scanner.rs`) builds each function in a
//! `chunk::ChunkBuilder` and copies it into an `ObjFunction` in the heap, after a resolve
//! pass whose escape analysis (`escape.rs`, `lox -m`) finds the local functions that need
//! no closure; the VM (`vm.rs`) runs it. Objects are made in `heap.rs`, the glue to
//! `minigo_gc` (layouts in `object.rs`, values in `value.rs`, hash tables in `table.rs`,
//! the slots classes give their instances' fields in `fields.rs`); the VM's stack, frames
//! and globals are reported to the collector by `roots.rs`.
//!
//! For embedders porting another language, the parts to copy are `value.rs` (a NaN-boxing
//! whose pointer words are exact addresses, so value slots get plain pointer bits),
//! `object.rs` (layouts from `#[repr(C)]` structs), `heap.rs` (allocate with the roots, store
//! through `Mutator::write`), `roots.rs` (a `Roots` over the VM state, and weak interning in
//! `clear_weak`) and `table.rs` (a weak table as a noscan array).

mod chunk;
mod compiler;
mod escape;
mod fields;
mod heap;
mod object;
mod roots;
mod scanner;
mod table;
mod value;
mod vm;

use std::io::{self, BufRead, BufWriter};

use minigo_gc::GcConfig;

pub use compiler::EscapeOptions;
pub use value::{format_number, Value};
pub use vm::{InterpretResult, Vm};

/// Exit codes, as clox (BSD `sysexits.h`).
const EX_USAGE: i32 = 64;
const EX_DATAERR: i32 = 65;
const EX_SOFTWARE: i32 = 70;
const EX_IOERR: i32 = 74;

const USAGE: &str = "Usage: lox [path] [-m [-m]] [--no-escape-analysis] [--gc-stress] [--gctrace] \
                     [--verify] [--memprofile FILE] [--memprofilerate N] [--memstats] \
                     [-h|--help] [-V|--version]";

/// Exit status of a `--memprofile` file that cannot be written (the `minigo` command's
/// usage status, reported before anything runs).
const EX_PROFILE: i32 = 2;

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    path: Option<String>,
    stress: bool,
    trace: bool,
    verify: bool,
    /// `--memprofile FILE`: the heap profile after the run and a final collection.
    memprofile: Option<String>,
    /// `--memprofilerate N`: Go's MemProfileRate (bytes per sample; 1 every allocation).
    memprofilerate: Option<usize>,
    /// `--memstats`: Go's MemStats fields on stderr after the run.
    memstats: bool,
    /// `-m` / `--escape`, once or twice: the escape analysis's decisions on stderr.
    escape_report: u32,
    /// `--no-escape-analysis`: every function a closure, as clox.
    no_escape: bool,
    /// `-h` / `--help`: the usage on stdout.
    help: bool,
    /// `-V` / `--version`.
    version: bool,
}

fn parse_args(args: Vec<String>) -> Option<Options> {
    let mut o = Options::default();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let takes_value = matches!(flag.as_str(), "--memprofile" | "--memprofilerate");
        if inline.is_some() && !takes_value {
            return None;
        }
        let mut value = || inline.clone().or_else(|| it.next());
        match flag.as_str() {
            "--gc-stress" => o.stress = true,
            "--gctrace" => o.trace = true,
            "--verify" => o.verify = true,
            "--memstats" => o.memstats = true,
            "-m" | "--escape" => o.escape_report += 1,
            "--no-escape-analysis" => o.no_escape = true,
            "-h" | "--help" => o.help = true,
            "-V" | "--version" => o.version = true,
            "--memprofile" => o.memprofile = Some(value().filter(|v| !v.is_empty())?),
            "--memprofilerate" => o.memprofilerate = Some(value()?.parse().ok()?),
            s if s.starts_with("--") => return None,
            _ if o.path.is_some() => return None,
            _ => o.path = Some(a),
        }
    }
    Some(o)
}

/// The collector's configuration for these options: Go's environment variables (GOGC,
/// GOMEMLIMIT, GODEBUG) over the VM's defaults, and then the flags.
fn gc_config(o: &Options) -> Result<GcConfig, String> {
    let get = |k| std::env::var(k).ok();
    // No background sweeper unless GODEBUG=gcbgsweep=1 asks: the VM is one thread, and a
    // sweeper on the other core made it slower (README, "Against the C reference
    // interpreter").
    let base = GcConfig {
        background_sweep: false,
        ..GcConfig::default()
    };
    let mut c = base
        .with_env(get("GOGC"), get("GOMEMLIMIT"), get("GODEBUG"))
        .map_err(|e| e.to_string())?;
    c.stress |= o.stress;
    c.trace |= o.trace;
    c.verify |= o.verify;
    if let Some(r) = o.memprofilerate {
        c.mem_profile_rate = r;
    }
    Ok(c)
}

/// Runs the interpreter as the `lox` command does, with `args` after the program name
/// (`[FILE] [-m [-m]] [--no-escape-analysis] [--gc-stress] [--gctrace] [--verify]
/// [--memprofile FILE] [--memprofilerate N] [--memstats]`); returns the process exit code: 0, 64 (usage), 65 (compile error), 70
/// (runtime error), 74 (unreadable file), 2 (a `--memprofile` file that cannot be
/// created, found before the program runs).
pub fn cli(args: Vec<String>) -> i32 {
    let Some(options) = parse_args(args) else {
        eprintln!("{USAGE}");
        return EX_USAGE;
    };
    if options.help {
        println!("{USAGE}");
        return 0;
    }
    if options.version {
        println!("lox (minigo {})", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let config = match gc_config(&options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("lox: {e}");
            return EX_USAGE;
        }
    };
    let source = match &options.path {
        Some(path) => match std::fs::read(path) {
            Ok(s) => Some(s),
            Err(_) => {
                eprintln!("Could not open file \"{path}\".");
                return EX_IOERR;
            }
        },
        None => None,
    };
    let profile = match &options.memprofile {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some((path, f)),
            Err(e) => {
                eprintln!("lox: cannot write the heap profile to {path}: {e}");
                return EX_PROFILE;
            }
        },
        None => None,
    };
    let out = Box::new(BufWriter::with_capacity(64 * 1024, io::stdout().lock()));
    let mut vm = match Vm::new(config, out, Box::new(io::stderr())) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("lox: cannot make the heap: {e}");
            return EX_SOFTWARE;
        }
    };
    if let Some(path) = &options.path {
        vm.set_script_name(path);
    }
    vm.set_escape(EscapeOptions {
        off: options.no_escape,
        report: options.escape_report,
    });
    let code = match source {
        Some(source) => match vm.interpret(&source) {
            InterpretResult::Ok => 0,
            InterpretResult::CompileError => EX_DATAERR,
            InterpretResult::RuntimeError => EX_SOFTWARE,
        },
        None => {
            repl(&mut vm, &mut io::stdin().lock());
            0
        }
    };
    vm.write_output(b"");
    if let Some((path, file)) = profile {
        // As `go test -memprofile`: a final collection, so the profile shows the heap as
        // the program left it.
        vm.collect();
        let w = io::BufWriter::new(file);
        if let Err(e) = vm.heap().collector().write_heap_profile(w) {
            eprintln!("lox: cannot write the heap profile to {path}: {e}");
            return EX_IOERR;
        }
    }
    if options.memstats {
        eprint!("{}", vm.heap_stats().go_text());
    }
    code
}

/// clox's REPL: a prompt, one line, run it; globals persist; end of input ends it.
fn repl(vm: &mut Vm, input: &mut dyn BufRead) {
    let mut line = Vec::new();
    loop {
        vm.write_output(b"> ");
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => {
                vm.write_output(b"\n");
                return;
            }
            Ok(_) => {
                vm.interpret(&line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_go_anywhere_and_one_path_at_most() {
        let o = parse_args(args(&["--verify", "a.lox", "--gc-stress"])).unwrap();
        assert_eq!(o.path.as_deref(), Some("a.lox"));
        assert!(o.verify && o.stress && !o.trace);
        assert!(parse_args(args(&["a.lox", "b.lox"])).is_none());
        assert!(parse_args(args(&["--fast"])).is_none());
        assert_eq!(parse_args(args(&[])).unwrap().path, None);
        let o = parse_args(args(&[
            "a.lox",
            "--memprofile",
            "m.pb.gz",
            "--memprofilerate=1",
        ]));
        let o = o.unwrap();
        assert_eq!(o.memprofile.as_deref(), Some("m.pb.gz"));
        assert_eq!(o.memprofilerate, Some(1));
        assert!(parse_args(args(&["a.lox", "--memprofile"])).is_none());
        assert!(parse_args(args(&["--memprofilerate", "lots"])).is_none());
        assert!(parse_args(args(&["a.lox", "--gctrace=0"])).is_none());
        let o = parse_args(args(&["-m", "a.lox", "--escape", "--no-escape-analysis"])).unwrap();
        assert_eq!((o.escape_report, o.no_escape), (2, true));
    }
}
