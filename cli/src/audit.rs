//! Export, import, replay and history: what auditors use. The work is done by the
//! `storage` crate (`export`, `audit`, `Store::history`); this module only parses,
//! shows progress and prints.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use protocol::amount::format_mh;
use protocol::Hash;
use storage::audit::{self, AuditError, ReplayReport};
use storage::export::{self, ExportReader};
use storage::index::History;

use crate::client::{Api, NodeArgs};

/// sled's cache for the short-lived databases these commands open.
const CACHE_BYTES: u64 = 64 << 20;

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

pub fn run_log(c: LogCommand) -> anyhow::Result<()> {
    match c {
        LogCommand::Export {
            data_dir: Some(dir),
            out,
            ..
        } => {
            let s = export::export(&dir, &out, CACHE_BYTES)
                .with_context(|| format!("exporting the log of {}", dir.display()))?;
            eprintln!(
                "exported {} blocks of chain {} to {} (tip {})",
                s.blocks,
                s.chain_id,
                out.display(),
                s.tip
            );
            Ok(())
        }
        LogCommand::Export {
            node: Some(url),
            out,
            ..
        } => export_from_node(&url, &out),
        LogCommand::Export { .. } => {
            bail!("name the log to export with --data-dir DIR or --node URL")
        }
        LogCommand::Import { log, data_dir } => {
            let s = export::import(&log, &data_dir, CACHE_BYTES).with_context(|| {
                format!("importing {} into {}", log.display(), data_dir.display())
            })?;
            eprintln!(
                "imported {} verified blocks of chain {} into {} (tip {})",
                s.blocks,
                s.chain_id,
                data_dir.display(),
                s.tip
            );
            Ok(())
        }
    }
}

/// A running node exports through its API (sled locks its directory). The bytes are
/// checked frame by frame before the file is written, so a broken transfer leaves none.
fn export_from_node(url: &str, out: &Path) -> anyhow::Result<()> {
    let api = Api::new(&NodeArgs {
        node: url.to_string(),
    })?;
    let bytes = api.get_bytes("/v1/log", Duration::from_secs(600))?;
    let mut reader = ExportReader::new(bytes.as_slice())
        .context("the node sent a log file that does not parse")?;
    let mut blocks = 0u64;
    while reader
        .next_block()
        .context("the node sent a damaged log file")?
        .is_some()
    {
        blocks += 1;
    }
    let tmp = out.with_extension("partial");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("exported {blocks} blocks from {url} to {}", out.display());
    Ok(())
}

pub fn run_audit(c: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Replay {
        data_dir,
        log,
        json,
    } = c;
    let bar = progress();
    let mut tick = |h: u64| {
        if let Some(b) = &bar {
            b.set_position(h);
        }
    };
    let result = match (&data_dir, &log) {
        (Some(dir), None) => audit::replay_dir(dir, CACHE_BYTES, &mut tick),
        (None, Some(file)) => audit::replay_file(file, &mut tick),
        _ => bail!("name the log to replay with --data-dir DIR or --log FILE (one of them)"),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    match result {
        Ok(report) => {
            if json.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_report(&report);
            }
            Ok(())
        }
        Err(AuditError::Replay(e)) => {
            if json.json {
                let v = serde_json::json!({
                    "ok": false,
                    "height": e.height,
                    "record": e.record,
                    "reason": e.reason,
                    "error": e.to_string(),
                });
                println!("{v}");
            }
            bail!("the log does not verify: {e}")
        }
        Err(e) => {
            if json.json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": e.to_string() })
                );
            }
            bail!("cannot replay: {e}")
        }
    }
}

/// A progress bar on a terminal (long logs take a while); nothing otherwise.
fn progress() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replayed {pos} blocks ({per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn print_report(r: &ReplayReport) {
    println!("ok: every signature, hash link, certificate, invariant and state root verified");
    println!("chain       {}", r.chain_id);
    println!("blocks      {}", r.blocks);
    println!("records     {}", r.records);
    println!("state root  {}", r.state_root);
    println!();
    println!("{:<66} {:>14}", "account", "hours");
    for (account, mh) in &r.balances_mh {
        println!("{account:<66} {:>14}", format_mh(*mh));
    }
    println!("{:<66} {:>14}", "sum", format_mh(r.sum_mh));
}

pub fn run_history(a: HistoryArgs) -> anyhow::Result<()> {
    let id = Hash::from_hex(&a.id).map_err(|_| {
        anyhow::anyhow!(
            "{:?} is not a record id: expected 64 lowercase hex characters",
            a.id
        )
    })?;
    let history: serde_json::Value = match (&a.data_dir, &a.node) {
        (Some(dir), None) => {
            let store = storage::Store::open(dir, CACHE_BYTES)
                .with_context(|| format!("opening the node directory {}", dir.display()))?;
            let h: History = store.history(&id).map_err(|e| match e {
                storage::StoreError::UnknownRecord(_) => {
                    anyhow::anyhow!("record {id} is not in the log of {}", dir.display())
                }
                e => anyhow::Error::new(e),
            })?;
            serde_json::to_value(h)?
        }
        (None, Some(url)) => {
            let api = Api::new(&NodeArgs { node: url.clone() })?;
            api.get_json(&format!("/v1/history/{id}"), Duration::from_secs(10))?
        }
        _ => bail!("name where to look with --data-dir DIR or --node URL (one of them)"),
    };
    if a.json.json {
        println!("{history}");
        return Ok(());
    }
    println!("record {id}");
    println!(
        "{:<3} {:<16} {:>7} {:<9} {:>10} {:<16} reason",
        "#", "kind", "height", "status", "hours", "signer"
    );
    let layers = history["layers"].as_array().cloned().unwrap_or_default();
    for (i, l) in layers.iter().enumerate() {
        let hours = l["hours_mh"]
            .as_i64()
            .map(format_mh)
            .unwrap_or_else(|| "-".into());
        let signer = l["signer"].as_str().unwrap_or("");
        println!(
            "{:<3} {:<16} {:>7} {:<9} {:>10} {:<16} {}",
            i,
            l["kind"].as_str().unwrap_or("?"),
            l["height"].as_u64().unwrap_or(0),
            l["status"].as_str().unwrap_or("?"),
            hours,
            &signer[..signer.len().min(16)],
            l["reason"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
