//! The `minigo` binary: the workloads and reports live in the library (`cli`,
//! `workloads`), where the tests can reach them; this only hands over the arguments and
//! exits with the status they produce.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = minigo_examples::cli::main(&args);
    std::process::exit(status);
}
