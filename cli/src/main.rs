//! `peerhours`: one binary for associations, members and auditors.
//!
//! `main` only parses arguments, sets up logging and maps the outcome to an exit code;
//! each command lives in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod simulate;

#[derive(Parser)]
#[command(
    name = "peerhours",
    version,
    about = "A peer-to-peer ledger of weighted hours for a peer economy",
    long_about = "peerhours keeps the accounts of a peer economy: members contribute work counted \
in weighted hours, tasks and rival goods are auctioned, and the delegates of the local \
associations agree on every balance without a central server.\n\nStart with `peerhours demo`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the economic rules on one period described in a TOML scenario (no network, no keys).
    Simulate(simulate::SimulateArgs),
    /// Export or import the whole certified log.
    #[command(subcommand)]
    Log(audit::LogCommand),
    /// Audit a log: verify every signature, link and certificate and re-derive every balance.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Show every layer of a record (the palimpsest): who signed it, where it was committed.
    History(audit::HistoryArgs),
}

/// Where JSON output is wanted.
#[derive(Args, Clone, Copy, Debug, Default)]
pub struct JsonFlag {
    /// Print exactly one JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// A node's directory (`DIR/node<i>` in the testnet layout), holding its genesis and data.
pub type DataDir = PathBuf;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PEERHOURS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Log(c) => audit::run_log(c),
        Command::Audit(c) => audit::run_audit(c),
        Command::History(a) => audit::run_history(a),
    }
}
