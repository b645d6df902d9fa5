//! The `clsbench` binary: parse flags, call the library, map errors to exit codes
//! (0 ok, 1 regression or contradicted claim when asked to gate, 2 bad input or usage,
//! 3 a model failed, 4 the environment stopped the run, 5 a partial merge).

mod cli;
mod commands;

use clap::Parser;

// Why: see the mimalloc entry in Cargo.toml (page faults from candle's per-op buffers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(err) = commands::dispatch(cli) {
        eprintln!("clsbench: error: {err}");
        std::process::exit(err.exit_code());
    }
}
