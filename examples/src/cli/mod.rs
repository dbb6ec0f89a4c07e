//! The `minigo` command: parse the arguments ([`args`]), run one workload or all of them on
//! fresh runtimes while measuring ([`measure`](mod@measure)), and report ([`report`], [`plot`]).
//!
//! Data flow: arguments -> [`args::Command`] -> for each job, [`measure::measure`] ->
//! [`measure::Summary`] -> table, stderr summary, JSON or SVG. `main` returns the exit
//! status: 0 when every output checked out, 1 when one did not (or a run failed), 2 for a
//! usage error.

pub mod args;
pub mod measure;
pub mod plot;
pub mod report;

use args::{Command, Options};
use measure::{measure, Summary};
use minigo_runtime::BuildError;

use crate::workloads::{Job, WORKLOADS};

/// Exit status of a usage error.
pub const USAGE: i32 = 2;

/// Runs the command line `args` (without the program name); returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let command = match args::parse(args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("minigo: {msg}\nRun 'minigo --help' for the workloads and flags.");
            return USAGE;
        }
    };
    match command {
        Command::Help => {
            print!("{}", args::help());
            0
        }
        Command::Version => {
            println!("minigo {}", env!("CARGO_PKG_VERSION"));
            0
        }
        Command::Lox(args) => crate::lox::cli(args),
        Command::One(job, opts) => one(&job, &opts),
        Command::Table(opts) => table(&opts),
    }
}

fn build_failed(e: &BuildError) -> i32 {
    eprintln!("minigo: cannot start the runtime: {e}");
    match e {
        BuildError::Env(_) => USAGE,
        BuildError::Os(_) => 1,
    }
}

fn one(job: &Job, opts: &Options) -> i32 {
    let profile = match &opts.memprofile {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!(
                    "minigo: cannot write the heap profile to {}: {e}\n\
                     Run 'minigo --help' for the workloads and flags.",
                    path.display()
                );
                return USAGE;
            }
        },
        None => None,
    };
    // The plot's file is made now, so that a path that cannot be written fails before the
    // run rather than after it; the plot overwrites it at the end.
    if let Some(path) = &opts.plot {
        if let Err(e) = std::fs::File::create(path) {
            eprintln!(
                "minigo: cannot write the plot to {}: {e}
                 Run 'minigo --help' for the workloads and flags.",
                path.display()
            );
            return USAGE;
        }
    }
    let s = match measure(job, opts, !opts.json, profile) {
        Ok(s) => s,
        Err(e) => return build_failed(&e),
    };
    if opts.json {
        println!("{}", report::json(&s));
    } else {
        eprint!("{}", report::summary(&s));
    }
    if let Some(m) = &s.mem_stats {
        eprint!("{}", m.go_text());
    }
    if let Some(path) = &opts.memprofile {
        match &s.profile {
            Some(Ok(())) => eprintln!("heap profile written to {}", path.display()),
            Some(Err(e)) => {
                eprintln!(
                    "minigo: cannot write the heap profile to {}: {e}",
                    path.display()
                );
                return 1;
            }
            None => {
                eprintln!(
                    "minigo: no heap profile in {}: the run ended before the workload did",
                    path.display()
                );
                return 1;
            }
        }
    }
    if let Some(path) = &opts.plot {
        match plot::write(&s, path) {
            Ok(()) => eprintln!("plot written to {}", path.display()),
            Err(e) => {
                eprintln!("minigo: {e}");
                return 1;
            }
        }
    }
    status(&[s])
}

/// The jobs of the all-workloads table.
pub fn table_jobs() -> Vec<Job> {
    WORKLOADS
        .iter()
        .map(|w| {
            let args: Vec<String> = w.table_args.iter().map(|a| a.to_string()).collect();
            (w.parse)(&args).expect("the table's own arguments parse")
        })
        .collect()
}

fn table(opts: &Options) -> i32 {
    let mut runs = Vec::new();
    for job in table_jobs() {
        if !opts.json {
            eprintln!("running {} ...", job.label());
        }
        match measure(&job, opts, false, None) {
            Ok(s) => runs.push(s),
            Err(e) => return build_failed(&e),
        }
    }
    if opts.json {
        println!("{}", report::json_table(&runs));
    } else {
        print!("{}", report::table(&runs));
    }
    status(&runs)
}

fn status(runs: &[Summary]) -> i32 {
    if runs.iter().all(|s| s.verdict.is_ok()) {
        0
    } else {
        1
    }
}
