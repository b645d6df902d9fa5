//! The `clsbench` binary: parse flags, call the library, map errors to exit codes
//! (0 ok, 1 regression or contradicted claim when asked to gate, 2 bad input or usage,
//! 3 a model failed, 4 the environment stopped the run, 5 a partial merge: see
//! `clsbench::error::exit`).

mod cli;
mod commands;
mod terminal;

use clap::Parser;

// Why: see the mimalloc entry in Cargo.toml (page faults from candle's per-op buffers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    restore_default_sigpipe();
    let cli = cli::Cli::parse();
    if let Err(err) = commands::dispatch(cli) {
        eprintln!("clsbench: error: {err}");
        std::process::exit(err.exit_code());
    }
}

/// Printing into a closed pipe (`clsbench run SUITE | head`) ends the process quietly, as it
/// does for any Unix filter, instead of panicking in `println!`. Output is printed only after
/// every result file is written, so this never interrupts a write.
fn restore_default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
