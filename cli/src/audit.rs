//! Export, import, replay and history: what auditors use.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum LogCommand {
    /// Write the whole certified log with its certificates to one portable file.
    Export {
        /// A stopped node's directory.
        #[arg(long, conflicts_with = "node", required_unless_present = "node")]
        data_dir: Option<PathBuf>,
        /// A running node's API URL, e.g. http://127.0.0.1:7001.
        #[arg(long)]
        node: Option<String>,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Make a fresh node directory from an exported log.
    Import {
        /// The exported log file.
        #[arg(long)]
        log: PathBuf,
        /// The new node directory (must not hold a log yet).
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Replay a log from the genesis, checking everything, and print the balances.
    Replay {
        #[arg(long, conflicts_with = "log", required_unless_present = "log")]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        log: Option<PathBuf>,
        #[command(flatten)]
        json: crate::JsonFlag,
    },
}

#[derive(Args)]
pub struct HistoryArgs {
    /// The record id (hex).
    pub id: String,
    #[arg(long, conflicts_with = "node", required_unless_present = "node")]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub node: Option<String>,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

pub fn run_log(_c: LogCommand) -> anyhow::Result<()> {
    anyhow::bail!("log export/import is being built")
}

pub fn run_audit(_c: AuditCommand) -> anyhow::Result<()> {
    anyhow::bail!("audit replay is being built")
}

pub fn run_history(_a: HistoryArgs) -> anyhow::Result<()> {
    anyhow::bail!("history is being built")
}
