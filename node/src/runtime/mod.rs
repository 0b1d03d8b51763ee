//! The node: one actor task that owns the ledger, the agreement voter, the mempool and the
//! store, and moves bytes between them, the network and the local API.
//!
//! The actor is the only place where time passes (timers for the voter, the catch-up
//! tick); everything it decides is delegated to the pure parts (`protocol`, `agreement`,
//! the catch-up state machine in `sync`). Our own vote is flushed to disk before it is
//! gossiped; a submission is flushed before it is acknowledged; a block is reported final
//! only after it is stored with its certificate.
//!
//! - `mod.rs` (this file): starting a node and the handle to a running one;
//! - `ingress`: the commands and the `Mailbox` the API and in-process callers hold;
//! - `actor`: the select loop, the voter's effects in order, committing final blocks,
//!   network events;
//! - `submit`: records from the API and from peers into the mempool;
//! - `queries`: status, balance, watch, history, block and export commands;
//! - `sync`: the catch-up state machine (which peer, which height, when to give up).

use std::net::SocketAddr;
use std::time::Duration;

use protocol::ledger::Ledger;
use protocol::{Genesis, Hash, RecordId, SignedRecord};
use storage::Store;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::agreement::{self, Schedule, Tip, Voter};
use crate::app::LedgerApp;
use crate::config::NodeConfig;
use crate::mempool::Mempool;
use crate::network;

mod actor;
pub mod ingress;
mod queries;
mod submit;
mod sync;

pub use ingress::{Command, CommandError, Mailbox, Stopped};

use actor::Engine;
use ingress::Submitted;

/// Commands the API sends to the actor (bounded channel).
pub const COMMAND_CHANNEL: usize = 1024;
/// Most clients waiting on records at once.
pub const WATCHERS_MAX: usize = 10_000;
/// Most recently committed record outcomes kept in memory for `wait`.
pub const RECENT_MAX: usize = 200_000;

/// Why the node stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot read the genesis {path}: {reason}")]
    Genesis { path: String, reason: String },
    #[error("{0}")]
    Key(#[from] crate::keyfile::KeyFileError),
    #[error("storage: {0}")]
    Store(#[from] storage::StoreError),
    #[error("network: {0}")]
    Network(#[from] network::Error),
    #[error("cannot serve the API on {addr}: {source} (is another node using that port?)")]
    Api {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("agreement: {0}")]
    Agreement(#[from] agreement::AgreementError),
    #[error("the stored log does not replay: {0}")]
    Replay(String),
    #[error("the node's task failed: {0}")]
    Task(String),
}

/// A node started in this process.
pub struct RunningNode {
    /// The local API address actually bound.
    pub api: SocketAddr,
    /// The libp2p listen addresses with `/p2p/<peer id>`.
    pub listen: Vec<String>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
    /// The actor's mailbox, for in-process callers (the bench) that skip HTTP.
    mailbox: Mailbox,
    /// What the node has made final so far.
    progress: watch::Receiver<Progress>,
}

/// What a node has made final: its certified height and the records in its log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub height: u64,
    pub records: u64,
}

impl RunningNode {
    /// Stops the node cleanly (API, actor, network) and waits for it.
    pub async fn stop(self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// Waits until the node stops by itself (it only does on a fatal error).
    pub async fn join(self) -> Result<(), NodeError> {
        self.task
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
    }

    /// A handle that stops the node when sent `true`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Submits one signed record in-process, exactly as the API's submit does (checked,
    /// stored durably, gossiped) but without HTTP.
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<Submitted, CommandError> {
        self.mailbox.submit(bytes).await.map_err(stopped)?
    }

    /// A watch on a pending record's standing (see `Command::Watch`).
    pub async fn watch(&self, id: &RecordId) -> Result<watch::Receiver<Submitted>, CommandError> {
        self.mailbox.watch(id.to_hex()).await.map_err(stopped)?
    }

    /// Certified height and records so far, updated as blocks become final.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }
}

fn stopped(s: Stopped) -> CommandError {
    CommandError::Internal(s.to_string())
}

fn read_genesis(config: &NodeConfig) -> Result<(Genesis, String), NodeError> {
    let path = config.genesis.display().to_string();
    let text = std::fs::read_to_string(&config.genesis).map_err(|e| NodeError::Genesis {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let g = Genesis::from_toml(&text).map_err(|e| NodeError::Genesis {
        path,
        reason: e.to_string(),
    })?;
    Ok((g, text))
}

/// Starts a node: opens (and verifies) its store, replays its log, joins the network and
/// serves the API. Returns once everything is listening.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    config
        .validate()
        .map_err(|reason| crate::config::ConfigError::Invalid {
            path: "config".into(),
            reason,
        })?;
    let (genesis, genesis_toml) = read_genesis(&config)?;
    let chain_id = genesis.chain_id();
    let key = config
        .delegate_key
        .as_ref()
        .map(|p| crate::keyfile::read(p))
        .transpose()?;

    let (mut store, ledger, tip) = open_store(&config, &genesis)?;
    let height = store.height();
    let schedule = schedule_from(&ledger, height)?;
    tracing::info!(height, root = %ledger.state_root(), "opened the stored log");
    let mempool = restore_pending(&mut store, &ledger, &chain_id, config.mempool_max)?;

    let mut app = LedgerApp::new(
        ledger,
        tip.hash,
        mempool,
        genesis.params.block_records_max as usize,
    );
    // An idle leader proposes an empty block at most every `idle`, always well inside the
    // other delegates' view timeout.
    let idle_ms = config.idle_block_ms.min(config.view_timeout_ms / 2);
    app.set_idle_policy(tip.timestamp_ms, idle_ms);
    let poke_every = Duration::from_millis((idle_ms / 5).clamp(10, 100));
    let is_delegate = key
        .as_ref()
        .is_some_and(|k| schedule.at(tip.height + 1).contains(&k.public()));
    let engine = match (&key, is_delegate) {
        (Some(k), true) => {
            let votes = store.votes()?;
            let cfg = agreement::Config {
                chain_id,
                key: k.clone(),
                view_timeout_ms: config.view_timeout_ms,
            };
            Engine::Delegate(Box::new(Voter::new(cfg, app, schedule, tip, votes)?))
        }
        _ => Engine::Observer(Box::new(app)),
    };

    let (net, events) = start_network(&config, chain_id)?;
    let listen = wait_listen(&net).await;

    let (api_listener, api_addr) = bind_api(config.api).await?;
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CHANNEL);
    let mailbox = Mailbox::new(cmd_tx);
    let (stop_tx, stop_rx) = watch::channel(false);
    spawn_api(api_listener, mailbox.clone(), stop_rx.clone());

    let (progress_tx, progress_rx) = watch::channel(Progress { height, records: 0 });
    let parts = actor::Parts {
        genesis,
        genesis_toml,
        chain_id,
        key,
        store,
        engine,
        net,
        listen: listen.clone(),
        poke_every,
        progress: progress_tx,
    };
    tracing::info!(api = %api_addr, ?listen, delegate = is_delegate, "node started");
    let task = actor::spawn(parts, events, cmd_rx, stop_rx);
    Ok(RunningNode {
        api: api_addr,
        listen,
        stop: stop_tx,
        task,
        mailbox,
        progress: progress_rx,
    })
}

/// Opens the store and takes its ledger, with the tip the next block builds on.
///
/// The store verifies the chain, cuts a damaged tail (peers send it again), replays the
/// log into its ledger and brings the indexes up to date.
fn open_store(config: &NodeConfig, genesis: &Genesis) -> Result<(Store, Ledger, Tip), NodeError> {
    let chain_id = genesis.chain_id();
    let mut store = Store::open_data(&config.data, genesis.clone(), config.cache_mb * 1024 * 1024)?;
    if let Some(cut) = &store.opened().cut {
        tracing::warn!(
            ?cut,
            "cut a damaged log tail; it will be fetched again from peers"
        );
    }
    // The node keeps the only full ledger: it verifies and applies every block once and
    // hands the store the result (`append_applied`).
    let ledger = store.take_ledger().ok_or_else(|| {
        NodeError::Store(storage::StoreError::Invalid(
            "the opened store holds no ledger".into(),
        ))
    })?;
    let height = store.height();
    let tip = if height == 0 {
        Tip::genesis(chain_id)
    } else {
        store
            .read(height..=height)?
            .pop()
            .map(|cb| Tip::of(&cb))
            .unwrap_or_else(|| Tip::genesis(chain_id))
    };
    Ok((store, ledger, tip))
}

/// The delegate sets from the next height on (a certified ChangeDelegates takes effect
/// two blocks after the one holding it).
fn schedule_from(ledger: &Ledger, height: u64) -> Result<Schedule, NodeError> {
    let mut schedule = Schedule::new(ledger.delegates_for(height + 1))?;
    let later = ledger.delegates_for(height + 2);
    if later != ledger.delegates_for(height + 1) {
        schedule.insert(height + 2, later)?;
    }
    Ok(schedule)
}

/// Pending submissions survive restarts and are proposed again; those the ledger now
/// refuses (or holds already) are dropped from the store.
fn restore_pending(
    store: &mut Store,
    ledger: &Ledger,
    chain_id: &Hash,
    mempool_max: usize,
) -> Result<Mempool, NodeError> {
    let mut mempool = Mempool::new(mempool_max);
    let mut stale = Vec::new();
    for (id, bytes) in store.pending()? {
        match SignedRecord::verify_bytes(&bytes, chain_id) {
            Ok(rec) if !ledger.contains_record(&id) && ledger.check(&rec).is_ok() => {
                let _ = mempool.insert(rec);
            }
            _ => stale.push(id),
        }
    }
    store.remove_pending(&stale)?;
    Ok(mempool)
}

/// Joins the network with the node's p2p key (made at first start).
fn start_network(
    config: &NodeConfig,
    chain_id: Hash,
) -> Result<(network::Client, network::EventReceiver), NodeError> {
    let p2p_key = crate::keyfile::read(&config.p2p_key).or_else(|_| {
        let k = crate::keyfile::random_keypair();
        crate::keyfile::write(&config.p2p_key, &k).map(|()| k)
    })?;
    let identity = network::Identity::from_seed(p2p_key.seed())?;
    let listen: network::Multiaddr = config
        .listen
        .parse()
        .map_err(|_| network::Error::Config(format!("bad listen address {}", config.listen)))?;
    let mut ncfg = network::Config::new(listen, identity, chain_id);
    ncfg.bootstrap = config
        .bootstrap
        .iter()
        .map(|b| {
            b.parse()
                .map_err(|_| network::Error::Config(format!("bad bootstrap address {b}")))
        })
        .collect::<Result<_, _>>()?;
    ncfg.mdns = config.mdns;
    // A proposal is pushed as a sync request holding the whole block: the request bound
    // must fit the largest block, or any block above 64 KiB could never be proposed (every
    // view would time out while the mempool holds more than ~600 records).
    ncfg.bounds.sync_request_bytes_max = crate::sync::REQUEST_BYTES_MAX;
    Ok(network::spawn(ncfg)?)
}

/// The swarm reports its listen addresses shortly after it starts.
async fn wait_listen(net: &network::Client) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match net.listen_addrs().await {
            Ok(a) if !a.is_empty() => return a,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            _ => return Vec::new(),
        }
    }
}

/// Binds the API address, so that a busy port fails start-up with a clear error.
async fn bind_api(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), NodeError> {
    let listener = crate::api::bind(addr)
        .await
        .map_err(|e| NodeError::Api { addr, source: e })?;
    let bound = listener
        .local_addr()
        .map_err(|e| NodeError::Api { addr, source: e })?;
    Ok((listener, bound))
}

/// Serves the API until the node is told to stop.
fn spawn_api(listener: tokio::net::TcpListener, mailbox: Mailbox, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::api::serve(listener, mailbox, shutdown).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });
}
