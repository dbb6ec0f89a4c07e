//! `lox [FILE] [--gc-stress] [--gctrace] [--verify]`: the Lox interpreter on its own (the
//! same as `minigo lox`), clox's exit codes.

fn main() {
    let code = minigo_examples::lox::cli(std::env::args().skip(1).collect());
    std::process::exit(code);
}
