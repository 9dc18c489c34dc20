//! `flint`: parse arguments, hand over to the library, report a failure once.

use clap::Parser;

/// mimalloc rather than the system allocator: the services allocate many small, short-lived
/// buffers (JSON, HTTP headers, Redis replies) across threads, where glibc's malloc showed as
/// the largest single cost in `perf` profiles of `flint bench e2e`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = flint::Cli::parse();
    match flint::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flint: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
