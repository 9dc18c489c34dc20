//! `flint`: parse arguments, hand over to the library, report a failure once.

use clap::Parser;

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
