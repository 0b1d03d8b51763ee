//! `peerhours node run`: one node in the foreground until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;
use node::config::NodeConfig;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Run a node in the foreground; Ctrl-C (SIGINT) or SIGTERM shuts it down cleanly.
    Run {
        /// The node directory (reads DIR/config.toml).
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        dir: Option<PathBuf>,
        /// A config file elsewhere.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub fn run(c: NodeCommand) -> anyhow::Result<()> {
    let NodeCommand::Run { dir, config } = c;
    let path = match (dir, config) {
        (Some(d), _) => d.join("config.toml"),
        (None, Some(c)) => c,
        (None, None) => bail!("give --dir DIR (a node directory) or --config FILE"),
    };
    if !path.exists() {
        bail!(
            "{} does not exist; create a node directory with `peerhours testnet init` first",
            path.display()
        );
    }
    let cfg = NodeConfig::load(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let running = node::runtime::start(cfg).await?;
        eprintln!(
            "node running: API http://{}, peers {}",
            running.api,
            running.listen.join(", ")
        );
        let stopper = running.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = stopper.send(true);
        });
        running.join().await?;
        eprintln!("node stopped cleanly");
        Ok::<(), anyhow::Error>(())
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
