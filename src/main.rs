//! `flint`: parse arguments, hand over to the library, report a failure once.

use clap::Parser;

/// jemalloc rather than glibc's malloc, whose malloc/free/consolidate were a quarter of the
/// worker's CPU time in `perf` profiles of `flint bench e2e`.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = flint::Cli::parse();
    match flint::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flint: {e:#}");
            std::process::ExitCode::from(flint::exit_code(&e))
        }
    }
}
