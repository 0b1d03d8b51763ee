//! `peerhours`: one binary for associations, members and auditors.
//!
//! `main` only parses arguments, sets up logging and maps the outcome to an exit code;
//! each command lives in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod bench;
mod client;
mod demo;
mod keys;
mod noderun;
mod read;
mod simulate;
mod submit;
mod testnet;

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
    /// Make, show and rotate keys.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Run a node.
    #[command(subcommand)]
    Node(noderun::NodeCommand),
    /// Lay out a local test network.
    #[command(subcommand)]
    Testnet(testnet::TestnetCommand),
    /// (Delegates) admit members and mark them exempt or contributing.
    #[command(subcommand)]
    Member(submit::MemberCommand),
    /// (Delegates) register projects.
    #[command(subcommand)]
    Project(submit::ProjectCommand),
    /// (Delegates) open a period, close its bidding, close it.
    #[command(subcommand)]
    Period(submit::PeriodCommand),
    /// (Coordinators) post tasks.
    #[command(subcommand)]
    Task(submit::TaskCommand),
    /// (Coordinators) offer products.
    #[command(subcommand)]
    Product(submit::ProductCommand),
    /// (Coordinators) attest a contribution, optionally setting its hours.
    Attest(submit::AttestArgs),
    /// (Coordinators) amend an attested contribution to new hours (a new layer; nothing is erased).
    Amend(submit::AmendArgs),
    /// (Members) bid on a task or a product.
    #[command(subcommand)]
    Bid(submit::BidCommand),
    /// (Members) record hours worked on a task you won; prints the record id.
    Contribute(submit::ContributeArgs),
    /// (Members) take back your own contribution before it is attested.
    Retract(submit::RetractArgs),
    /// Show a node's chain, height, state root, period and peers.
    Status(read::StatusArgs),
    /// Show an account's balance with its proof against the certified state root.
    Balance(read::BalanceArgs),
    /// A whole period on a local 4-delegate network, narrated, ending in an audit.
    Demo(demo::DemoArgs),
    /// Measure what this machine can carry: signature ceiling, finality, throughput, replay.
    Bench(bench::BenchArgs),
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
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log_filter(&cli))),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the line already
/// holds (errors that quote their source and also return it from `source()`).
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What is logged without `PEERHOURS_LOG`: a running node tells its lifecycle and the
/// blocks with records; every other command only warnings. gossipsub's own warning about
/// not re-publishing a duplicate is expected (votes are re-sent another way) and hidden.
fn default_log_filter(cli: &Cli) -> &'static str {
    match cli.command {
        Command::Node(_) => "info,libp2p_gossipsub=error",
        _ => "warn,libp2p_gossipsub=error",
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Key(c) => keys::run(c),
        Command::Testnet(c) => testnet::run(c),
        Command::Node(c) => noderun::run(c),
        Command::Member(c) => submit::run_member(c),
        Command::Project(c) => submit::run_project(c),
        Command::Period(c) => submit::run_period(c),
        Command::Task(c) => submit::run_task(c),
        Command::Product(c) => submit::run_product(c),
        Command::Attest(a) => submit::run_attest(a),
        Command::Amend(a) => submit::run_amend(a),
        Command::Bid(c) => submit::run_bid(c),
        Command::Contribute(a) => submit::run_contribute(a),
        Command::Retract(a) => submit::run_retract(a),
        Command::Status(a) => read::run_status(a),
        Command::Balance(a) => read::run_balance(a),
        Command::Simulate(a) => simulate::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Log(c) => audit::run_log(c),
        Command::Audit(c) => audit::run_audit(c),
        Command::History(a) => audit::run_history(a),
    }
}
