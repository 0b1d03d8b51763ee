//! The node: one actor task that owns the ledger, the agreement voter, the mempool and the
//! store, and moves bytes between them, the network and the local API.
//!
//! The actor is the only place where time passes (timers for the voter, the catch-up
//! tick); everything it decides is delegated to the pure parts (`protocol`, `agreement`).
//! Our own vote is flushed to disk before it is gossiped; a submission is flushed before it
//! is acknowledged; a block is reported final only after it is stored with its certificate.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use protocol::ledger::{Account, Outcome};
use protocol::{
    CertifiedBlock, Genesis, Hash, Keypair, RecordBody, RecordId, SignedRecord, SignedVote,
};
use storage::Store;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::agreement::{self, Effect, Input, Schedule, Tip, Voter};
use crate::api_types::{Balance, Status, Submitted};
use crate::app::LedgerApp;
use crate::config::NodeConfig;
use crate::mempool::Mempool;
use crate::network::{self, Event, Peer, Topic, Validation};
use crate::sync::{
    SyncRequest, SyncResponse, BLOCKS_PER_RESPONSE_MAX, RESPONSE_BLOCK_BYTES_BUDGET,
};

/// Commands the API sends to the actor (bounded channel).
pub const COMMAND_CHANNEL: usize = 1024;
/// Most clients waiting on records at once.
pub const WATCHERS_MAX: usize = 10_000;
/// Most recently committed record outcomes kept in memory for `wait`.
pub const RECENT_MAX: usize = 200_000;
/// How often a node asks a peer whether it is behind.
const CATCH_UP_EVERY: Duration = Duration::from_millis(500);
/// The sled tree of the bodies of blocks we notarized that are not final yet.
const NOTARIZED_TREE: &str = "notarized-bodies";
/// How long one catch-up request may take before the next peer is asked.
const CATCH_UP_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most queued commands taken in one turn of the actor (their submissions share a flush).
const SUBMIT_BATCH_MAX: usize = 256;
/// The reply channel of one submission.
type SubmitReply = oneshot::Sender<Result<Submitted, CommandError>>;
/// Sync answers queued back to the actor.
const SYNC_CHANNEL: usize = 256;

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

/// Why an API command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The request itself is malformed (400).
    BadRequest(String),
    /// A well-formed record the ledger refuses now (422).
    Refused(String),
    NotFound(String),
    /// The node cannot take more now (503).
    Busy(String),
    Internal(String),
}

/// What the API asks of the actor.
#[derive(Debug)]
pub enum Command {
    Submit {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Submitted, CommandError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Balance {
        account: String,
        reply: oneshot::Sender<Result<Balance, CommandError>>,
    },
    /// A watch on a record's standing (pending, then accepted/rejected with its height).
    Watch {
        id: String,
        reply: oneshot::Sender<Result<watch::Receiver<Submitted>, CommandError>>,
    },
    History {
        id: String,
        reply: oneshot::Sender<Result<serde_json::Value, CommandError>>,
    },
    Export {
        reply: oneshot::Sender<Result<Vec<u8>, CommandError>>,
    },
    Block {
        height: u64,
        reply: oneshot::Sender<Result<crate::api_types::BlockInfo, CommandError>>,
    },
    Genesis {
        reply: oneshot::Sender<String>,
    },
}

/// A node started in this process.
pub struct RunningNode {
    /// The local API address actually bound.
    pub api: SocketAddr,
    /// The libp2p listen addresses with `/p2p/<peer id>`.
    pub listen: Vec<String>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
    /// The actor's command channel, for in-process callers (the bench) that skip HTTP.
    commands: mpsc::Sender<Command>,
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
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Submit { bytes, reply })
            .await
            .map_err(|_| CommandError::Internal("the node has stopped".into()))?;
        rx.await
            .map_err(|_| CommandError::Internal("the node has stopped".into()))?
    }

    /// A watch on a pending record's standing (see `Command::Watch`).
    pub async fn watch(&self, id: &RecordId) -> Result<watch::Receiver<Submitted>, CommandError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Watch {
                id: id.to_hex(),
                reply,
            })
            .await
            .map_err(|_| CommandError::Internal("the node has stopped".into()))?;
        rx.await
            .map_err(|_| CommandError::Internal("the node has stopped".into()))?
    }

    /// Certified height and records so far, updated as blocks become final.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }
}

/// What the actor drives: a voter (delegates) or the ledger alone (observers).
enum Engine {
    Delegate(Box<Voter<LedgerApp>>),
    Observer(Box<LedgerApp>),
}

impl Engine {
    fn app(&self) -> &LedgerApp {
        match self {
            Engine::Delegate(v) => v.app(),
            Engine::Observer(a) => a,
        }
    }
    fn app_mut(&mut self) -> &mut LedgerApp {
        match self {
            Engine::Delegate(v) => v.app_mut(),
            Engine::Observer(a) => a,
        }
    }
}

/// Catch-up bookkeeping.
struct Sync {
    /// A `Blocks` request is in flight.
    in_flight: bool,
    /// Round-robin index into the peers.
    next_peer: usize,
    /// Ask again at once after the current answer (we know we are behind).
    again: bool,
}

/// An answer to one of our sync requests.
enum SyncAnswer {
    Blocks(Peer, Result<SyncResponse, String>),
    Proposal(Result<SyncResponse, String>),
}

struct Node {
    genesis: Genesis,
    genesis_toml: String,
    chain_id: Hash,
    /// Our delegate key, if this node votes.
    key: Option<Keypair>,
    /// The log, own votes, pending submissions and indexes.
    store: Store,
    engine: Engine,
    net: network::Client,
    /// Connected peers.
    peers: BTreeSet<Peer>,
    /// Our listen addresses.
    listen: Vec<String>,
    /// Clients waiting on records.
    watchers: BTreeMap<RecordId, watch::Sender<Submitted>>,
    /// Outcomes of recently committed records (bounded), for `wait` after the fact.
    recent: BTreeMap<RecordId, Submitted>,
    recent_order: std::collections::VecDeque<RecordId>,
    /// The voter's one timer.
    timer: Option<(u64, Instant)>,
    sync: Sync,
    sync_tx: mpsc::Sender<SyncAnswer>,
    /// How often an idle leader is asked again whether it has a block to propose.
    poke_every: Duration,
    /// Published after every final block (height, records in the log).
    progress: watch::Sender<Progress>,
    /// Bodies of the blocks we notarized and that are not final yet, flushed with our
    /// notarize vote (key: height BE || hash). After a whole-network restart nobody else may
    /// hold the body of a notarized block, and no later block can be built without it.
    notarized: sled::Tree,
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

    // The store verifies the chain, cuts a damaged tail (peers send it again), replays the
    // log into its ledger and brings the indexes up to date.
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
    // The delegate sets from the next height on (a certified ChangeDelegates takes effect
    // two blocks after the one holding it).
    let mut schedule = Schedule::new(ledger.delegates_for(height + 1))?;
    let later = ledger.delegates_for(height + 2);
    if later != ledger.delegates_for(height + 1) {
        schedule.insert(height + 2, later)?;
    }
    tracing::info!(height, root = %ledger.state_root(), "opened the stored log");

    // Pending submissions survive restarts and are proposed again.
    let mut mempool = Mempool::new(config.mempool_max);
    let mut stale = Vec::new();
    for (id, bytes) in store.pending()? {
        match SignedRecord::verify_bytes(&bytes, &chain_id) {
            Ok(rec) if !ledger.contains_record(&id) && ledger.check(&rec).is_ok() => {
                let _ = mempool.insert(rec);
            }
            _ => stale.push(id),
        }
    }
    store.remove_pending(&stale)?;

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
    let notarized = store
        .db()
        .sled()
        .open_tree(NOTARIZED_TREE)
        .map_err(|e| NodeError::Store(e.into()))?;
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

    // The network.
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
    let (net, events) = network::spawn(ncfg)?;
    let listen = wait_listen(&net).await;

    // The API.
    let api_listener = crate::api::bind(config.api)
        .await
        .map_err(|e| NodeError::Api {
            addr: config.api,
            source: e,
        })?;
    let api_addr = api_listener.local_addr().map_err(|e| NodeError::Api {
        addr: config.api,
        source: e,
    })?;
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_CHANNEL);
    let commands = cmd_tx.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut api_stop = stop_rx.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = api_stop.wait_for(|s| *s).await;
        };
        if let Err(e) = crate::api::serve(api_listener, cmd_tx, shutdown).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    });

    let (sync_tx, sync_rx) = mpsc::channel(SYNC_CHANNEL);
    let (progress_tx, progress_rx) = watch::channel(Progress { height, records: 0 });
    let node = Node {
        genesis,
        genesis_toml,
        chain_id,
        key,
        store,
        engine,
        net,
        peers: BTreeSet::new(),
        listen: listen.clone(),
        watchers: BTreeMap::new(),
        recent: BTreeMap::new(),
        recent_order: Default::default(),
        timer: None,
        sync: Sync {
            in_flight: false,
            next_peer: 0,
            again: false,
        },
        sync_tx,
        poke_every,
        notarized,
        progress: progress_tx,
    };
    tracing::info!(api = %api_addr, ?listen, delegate = is_delegate, "node started");
    let task = tokio::spawn(async move {
        let result = node.run(events, cmd_rx, sync_rx, stop_rx).await;
        // Say why at once: whoever holds the handle may only look at shutdown.
        if let Err(e) = &result {
            tracing::error!(error = %e, "the node stopped on an error");
        }
        result
    });
    Ok(RunningNode {
        api: api_addr,
        listen,
        stop: stop_tx,
        task,
        commands,
        progress: progress_rx,
    })
}

/// Wall-clock milliseconds since the Unix epoch: block timestamps (display only).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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

impl Node {
    async fn run(
        mut self,
        mut events: network::EventReceiver,
        mut commands: mpsc::Receiver<Command>,
        mut sync_rx: mpsc::Receiver<SyncAnswer>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        if let Engine::Delegate(v) = &mut self.engine {
            // The bodies we notarized before a restart come first: later views build on them.
            let tip = v.app().ledger().height();
            let mut restored = Vec::new();
            for entry in self.notarized.iter() {
                let (k, bytes) = entry.map_err(|e| NodeError::Store(e.into()))?;
                match SyncRequest::from_bytes(&bytes) {
                    Ok(SyncRequest::Propose { block, signature }) if block.height > tip => {
                        restored.push((block, signature))
                    }
                    _ => {
                        self.notarized
                            .remove(k)
                            .map_err(|e| NodeError::Store(e.into()))?;
                    }
                }
            }
            for (block, signature) in restored {
                if let Engine::Delegate(v) = &mut self.engine {
                    let effects = v.handle(now_ms(), Input::Proposal { block, signature });
                    self.execute(effects).await?;
                }
            }
        }
        if let Engine::Delegate(v) = &mut self.engine {
            let effects = v.handle(now_ms(), Input::Start);
            self.execute(effects).await?;
        }
        let mut tick = tokio::time::interval(CATCH_UP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poke = tokio::time::interval(self.poke_every);
        poke.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let timer_at = self.timer.map(|(_, at)| at);
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                Some(cmd) = commands.recv() => {
                    // Take what else is queued: submissions among them share one flush.
                    let mut cmds = vec![cmd];
                    while cmds.len() < SUBMIT_BATCH_MAX {
                        match commands.try_recv() {
                            Ok(c) => cmds.push(c),
                            Err(_) => break,
                        }
                    }
                    self.on_commands(cmds).await?;
                }
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await?,
                    None => return Err(NodeError::Task("the network task stopped".into())),
                },
                Some(answer) = sync_rx.recv() => self.on_sync_answer(answer).await?,
                _ = async { tokio::time::sleep_until(timer_at.unwrap_or_else(Instant::now)).await }, if timer_at.is_some() => {
                    if let Some((view, _)) = self.timer.take() {
                        if let Engine::Delegate(v) = &mut self.engine {
                            // The timer ticks a few times per view timeout (re-sends); only
                            // a tick that timed the view out counts here.
                            let before = v.stats().timeouts;
                            let effects = v.handle(now_ms(), Input::Timeout { view });
                            // A view that keeps timing out is worth a line in the log.
                            let timeouts = v.stats().timeouts;
                            if timeouts != before && timeouts % 10 == 0 {
                                tracing::info!(state = %v.describe(), "views are timing out");
                            }
                            self.execute(effects).await?;
                        }
                    }
                }
                _ = tick.tick() => self.catch_up(),
                _ = poke.tick() => self.poke().await?,
            }
        }
        let _ = self.net.shutdown().await;
        self.store
            .db()
            .sled()
            .flush()
            .map_err(|e| NodeError::Store(e.into()))?;
        tracing::info!("node stopped");
        Ok(())
    }

    /// Lets a leader that had nothing to propose look again (records arrived, time passed).
    async fn poke(&mut self) -> Result<(), NodeError> {
        if let Engine::Delegate(v) = &mut self.engine {
            let effects = v.handle(now_ms(), Input::Poke);
            self.execute(effects).await?;
        }
        Ok(())
    }

    /// Sends votes straight to every peer over request-response: re-sent and forwarded
    /// votes are bytes gossip has seen already, and its duplicate filter would drop them.
    fn push_votes(&self, votes: Vec<SignedVote>) {
        for chunk in votes.chunks(crate::sync::VOTES_PER_PUSH_MAX) {
            self.push_to_peers(SyncRequest::Votes(chunk.to_vec()));
        }
    }

    /// Sends one request to every connected peer, each in its own task; the answer is
    /// only an acknowledgement, so a failure is logged and otherwise ignored (re-sends and
    /// catch-up cover what is lost).
    fn push_to_peers(&self, request: SyncRequest) {
        let bytes = request.to_bytes();
        for peer in self.peers.iter().copied() {
            let net = self.net.clone();
            let bytes = bytes.clone();
            tokio::spawn(async move {
                if let Err(e) = net.request(peer, bytes).await {
                    tracing::debug!(%peer, error = %e, "push to a peer failed");
                }
            });
        }
    }

    /// A record from a peer: verified, then kept for a block. One that our committed state
    /// refuses is not forwarded (Ignore), but is kept all the same: we may simply be a block
    /// behind the node that accepted it, and a leader that includes a record the state then
    /// refuses only marks it rejected in the log.
    fn take_record(&mut self, data: &[u8]) -> Validation {
        let rec = match SignedRecord::verify_bytes(data, &self.chain_id) {
            Ok(rec) => rec,
            Err(_) => return Validation::Reject,
        };
        let id = rec.id();
        let app = self.engine.app_mut();
        if app.mempool.contains(&id) || app.ledger().contains_record(&id) {
            return Validation::Ignore;
        }
        let valid_now = app.ledger().check(&rec).is_ok();
        match app.mempool.insert(rec) {
            Ok(_) if valid_now => Validation::Accept,
            _ => Validation::Ignore,
        }
    }

    /// Sends record bytes straight to every peer (see `SyncRequest::Records`).
    fn push_records(&self, records: Vec<Vec<u8>>) {
        for chunk in records.chunks(crate::sync::VOTES_PER_PUSH_MAX) {
            self.push_to_peers(SyncRequest::Records(chunk.to_vec()));
        }
    }

    fn ledger(&self) -> &protocol::ledger::Ledger {
        self.engine.app().ledger()
    }

    fn height(&self) -> u64 {
        self.ledger().height()
    }

    // ---- effects of the voter -------------------------------------------------------

    async fn execute(&mut self, effects: Vec<Effect>) -> Result<(), NodeError> {
        for effect in effects {
            match effect {
                Effect::PersistVote(v) => {
                    if let (protocol::Vote::Notarize { block, .. }, Engine::Delegate(voter)) =
                        (v.vote, &self.engine)
                    {
                        if let Some((b, signature)) = voter.proposal(&block) {
                            let mut key = b.height.to_be_bytes().to_vec();
                            key.extend_from_slice(&block.0);
                            let body = SyncRequest::Propose {
                                block: b.clone(),
                                signature: *signature,
                            }
                            .to_bytes();
                            // Flushed together with the vote by `record_vote`.
                            self.notarized
                                .insert(key, body)
                                .map_err(|e| NodeError::Store(e.into()))?;
                        }
                    }
                    self.store.record_vote(&v)?
                }
                Effect::SendVote(v) => {
                    // Our own votes go to every connected peer directly as well as by gossip:
                    // the delegates are few and a vote must not wait for the gossip mesh
                    // (a peer the mesh has not learned of yet gets nothing by gossip), nor
                    // for gossip's duplicate filter, which drops a re-sent vote.
                    if let Err(e) = self.net.publish(Topic::Votes, v.to_bytes()).await {
                        tracing::debug!(error = %e, "publish failed");
                    }
                    self.push_votes(vec![v]);
                }
                Effect::SendProposal { block, signature } => {
                    self.push_to_peers(SyncRequest::Propose { block, signature })
                }
                Effect::Forward(votes) => self.push_votes(votes),
                Effect::SetTimer { view, after_ms } => {
                    self.timer = Some((view, Instant::now() + Duration::from_millis(after_ms)));
                }
                Effect::Finalized(cb) => self.commit(cb)?,
                Effect::Evidence(a, b) => self.report_evidence(a, b).await,
                Effect::RequestBlocks { .. } => {
                    self.sync.again = true;
                    self.catch_up();
                }
                Effect::RequestProposal { block } => self.request_proposal(block),
            }
        }
        Ok(())
    }

    async fn publish(&self, topic: Topic, bytes: Vec<u8>) {
        if let Err(e) = self.net.publish(topic, bytes).await {
            tracing::debug!(error = %e, "publish failed");
        }
    }

    /// Stores a final block with its certificate, then tells everyone who waits.
    fn commit(&mut self, cb: CertifiedBlock) -> Result<(), NodeError> {
        let height = cb.block.height;
        let hash = cb.block.hash();
        // Verified and applied once, by the application: the store only writes it.
        let Some(fin) = self.engine.app_mut().take_final(height, &hash) else {
            return Err(NodeError::Store(storage::StoreError::Invalid(format!(
                "final block {height} ({hash}) was not handed over by the application"
            ))));
        };
        let applied = storage::audit::Applied {
            height,
            records: fin.records,
            receipt: fin.receipt,
        };
        self.store
            .append_applied(&cb, &applied, &fin.balance_changes)?;
        // Bodies at or below a final height are in the log or can never be final (removed
        // after the block is durable; the removals go with the next flush).
        for key in self
            .notarized
            .range(..height.saturating_add(1).to_be_bytes().to_vec())
            .keys()
        {
            let key = key.map_err(|e| NodeError::Store(e.into()))?;
            self.notarized
                .remove(key)
                .map_err(|e| NodeError::Store(e.into()))?;
        }
        let app = self.engine.app_mut();
        let lapsed = app.take_lapsed();

        if !lapsed.is_empty() {
            self.store.remove_pending(&lapsed)?;
        }
        if cb.block.records.is_empty() {
            tracing::debug!(height, root = %cb.block.state_root, "empty block final");
        } else {
            tracing::info!(height, records = cb.block.records.len(), root = %cb.block.state_root, "block final");
        }
        self.progress.send_modify(|p| {
            p.height = height;
            p.records = p.records.saturating_add(cb.block.records.len() as u64);
        });
        for (rec, outcome) in cb.block.records.iter().zip(applied.receipt.outcomes) {
            let id = rec.id();
            let (status, reason) = match outcome {
                Outcome::Accepted => ("accepted", None),
                Outcome::Rejected { reason } => ("rejected", Some(reason)),
            };
            let s = Submitted {
                id: id.to_hex(),
                height: Some(height),
                status: status.into(),
                reason,
            };
            if let Some(w) = self.watchers.remove(&id) {
                let _ = w.send(s.clone());
            }
            self.remember(id, s);
        }
        Ok(())
    }

    fn remember(&mut self, id: RecordId, s: Submitted) {
        if self.recent.insert(id, s).is_none() {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > RECENT_MAX {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    async fn report_evidence(&mut self, a: SignedVote, b: SignedVote) {
        tracing::warn!(delegate = %a.signer, view = a.vote.view(), "conflicting votes: recording evidence");
        let Some(key) = &self.key else { return };
        // A nonce unique to this evidence: derived from the two votes.
        let nonce = u64::from_le_bytes(
            Hash::of_parts(&[&a.to_bytes(), &b.to_bytes()]).0[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let rec = SignedRecord::sign(
            key,
            &self.chain_id,
            nonce,
            RecordBody::Evidence {
                first: a,
                second: b,
            },
        );
        let bytes = rec.to_bytes();
        if let Ok(v) = SignedRecord::verify_bytes(&bytes, &self.chain_id) {
            if self.ledger().check(&v).is_ok() {
                let _ = self.engine.app_mut().mempool.insert(v);
                self.publish(Topic::Records, bytes).await;
            }
        }
    }

    // ---- catch-up ---------------------------------------------------------------------

    fn catch_up(&mut self) {
        if self.sync.in_flight || self.peers.is_empty() {
            return;
        }
        let peers: Vec<Peer> = self.peers.iter().copied().collect();
        let peer = peers[self.sync.next_peer % peers.len()];
        self.sync.next_peer = self.sync.next_peer.wrapping_add(1);
        self.sync.in_flight = true;
        self.sync.again = false;
        let req = SyncRequest::Blocks {
            from: self.height() + 1,
            max: BLOCKS_PER_RESPONSE_MAX,
        }
        .to_bytes();
        let net = self.net.clone();
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            // A silent peer must not hold catch-up for the whole request timeout: the next
            // tick asks the next peer.
            let answer = match tokio::time::timeout(
                CATCH_UP_REQUEST_TIMEOUT,
                net.request(peer, req),
            )
            .await
            {
                Ok(Ok(bytes)) => SyncResponse::from_bytes(&bytes).map_err(|e| e.to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {CATCH_UP_REQUEST_TIMEOUT:?}")),
            };
            let _ = tx.send(SyncAnswer::Blocks(peer, answer)).await;
        });
    }

    fn request_proposal(&mut self, block: Hash) {
        let req = SyncRequest::Proposal { block }.to_bytes();
        for peer in self.peers.iter().copied() {
            let net = self.net.clone();
            let tx = self.sync_tx.clone();
            let req = req.clone();
            tokio::spawn(async move {
                let answer = match net.request(peer, req).await {
                    Ok(bytes) => SyncResponse::from_bytes(&bytes).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = tx.send(SyncAnswer::Proposal(answer)).await;
            });
        }
    }

    async fn on_sync_answer(&mut self, answer: SyncAnswer) -> Result<(), NodeError> {
        match answer {
            SyncAnswer::Proposal(Ok(SyncResponse::Proposal { block, signature })) => {
                if let Engine::Delegate(v) = &mut self.engine {
                    let effects = v.handle(now_ms(), Input::Proposal { block, signature });
                    self.execute(effects).await?;
                }
            }
            SyncAnswer::Proposal(_) => {}
            SyncAnswer::Blocks(peer, result) => {
                self.sync.in_flight = false;
                match result {
                    Ok(SyncResponse::Blocks { tip, blocks }) => {
                        for cb in blocks {
                            if cb.block.height != self.height() + 1 {
                                continue;
                            }
                            if let Err(e) = self.take_certified(cb).await {
                                tracing::warn!(%peer, error = %e, "peer sent a block that does not check");
                                return Ok(());
                            }
                        }
                        if tip > self.height() || self.sync.again {
                            self.catch_up();
                        }
                    }
                    Ok(other) => tracing::debug!(%peer, ?other, "unexpected sync answer"),
                    Err(e) => tracing::debug!(%peer, error = %e, "sync request failed"),
                }
            }
        }
        Ok(())
    }

    /// A certified block from a peer: check it offline, then apply and store it.
    async fn take_certified(&mut self, cb: CertifiedBlock) -> Result<(), String> {
        let delegates = self.ledger().delegates_for(cb.block.height);
        agreement::verify_certified(&self.chain_id, &delegates, &cb).map_err(|e| e.to_string())?;
        match &mut self.engine {
            Engine::Delegate(v) => {
                let effects = v.handle(now_ms(), Input::Certified(cb));
                self.execute(effects).await.map_err(|e| e.to_string())
            }
            Engine::Observer(app) => {
                app.commit_certified(&cb).map_err(|e| e.0)?;
                // `commit_certified` left the receipt for `commit`, which takes it.
                self.commit(cb).map_err(|e| e.to_string())
            }
        }
    }

    // ---- network events ---------------------------------------------------------------

    async fn on_event(&mut self, ev: Event) -> Result<(), NodeError> {
        match ev {
            Event::Gossip {
                topic: Topic::Records,
                data,
                msg_id,
                from,
            } => {
                let verdict = self.take_record(&data);
                let _ = self.net.report_validation(msg_id, from, verdict).await;
                if verdict == Validation::Accept {
                    self.poke().await?;
                }
            }
            Event::Gossip {
                topic: Topic::Votes,
                data,
                msg_id,
                from,
            } => {
                let verdict = match SignedVote::from_bytes(&data) {
                    Ok(v) if v.verify(&self.chain_id).is_ok() => {
                        if let Engine::Delegate(voter) = &mut self.engine {
                            let effects = voter.handle(now_ms(), Input::Vote(v));
                            self.execute(effects).await?;
                        }
                        Validation::Accept
                    }
                    _ => Validation::Reject,
                };
                let _ = self.net.report_validation(msg_id, from, verdict).await;
            }
            Event::Request {
                from,
                data,
                channel,
            } => {
                let answer = match SyncRequest::from_bytes(&data) {
                    Err(e) => SyncResponse::Refused(format!("malformed request: {e}")),
                    Ok(SyncRequest::Propose { block, signature }) => {
                        if let Engine::Delegate(voter) = &mut self.engine {
                            let effects =
                                voter.handle(now_ms(), Input::Proposal { block, signature });
                            self.execute(effects).await?;
                        }
                        SyncResponse::Ack
                    }
                    Ok(SyncRequest::Blocks { from: start, max }) => self.serve_blocks(start, max),
                    Ok(SyncRequest::Votes(votes))
                        if votes.len() <= crate::sync::VOTES_PER_PUSH_MAX =>
                    {
                        for v in votes {
                            if v.verify(&self.chain_id).is_err() {
                                continue;
                            }
                            if let Engine::Delegate(voter) = &mut self.engine {
                                let effects = voter.handle(now_ms(), Input::Vote(v));
                                self.execute(effects).await?;
                            }
                        }
                        SyncResponse::Ack
                    }
                    Ok(SyncRequest::Votes(_)) => {
                        SyncResponse::Refused("too many votes in one push".into())
                    }
                    Ok(SyncRequest::Records(records))
                        if records.len() <= crate::sync::VOTES_PER_PUSH_MAX =>
                    {
                        let mut any = false;
                        for r in records {
                            any |= self.take_record(&r) == Validation::Accept;
                        }
                        if any {
                            self.poke().await?;
                        }
                        SyncResponse::Ack
                    }
                    Ok(SyncRequest::Records(_)) => {
                        SyncResponse::Refused("too many records in one push".into())
                    }
                    Ok(SyncRequest::Proposal { block }) => match &self.engine {
                        Engine::Delegate(v) => match v.proposal(&block) {
                            Some((block, signature)) => SyncResponse::Proposal {
                                block: block.clone(),
                                signature: *signature,
                            },
                            None => SyncResponse::Refused("unknown block".into()),
                        },
                        Engine::Observer(_) => SyncResponse::Refused("unknown block".into()),
                    },
                };
                tracing::debug!(%from, "answered a sync request");
                let _ = self.net.respond(channel, answer.to_bytes()).await;
            }
            Event::PeerConnected { peer } => {
                self.peers.insert(peer);
            }
            Event::PeerDisconnected { peer } => {
                self.peers.remove(&peer);
            }
            Event::PeerSubscribed { .. } => {}
        }
        Ok(())
    }

    fn serve_blocks(&self, from: u64, max: u32) -> SyncResponse {
        let tip = self.store.height();
        if from == 0 {
            return SyncResponse::Refused("heights start at 1".into());
        }
        if from > tip {
            return SyncResponse::Blocks {
                tip,
                blocks: Vec::new(),
            };
        }
        let to = tip.min(from.saturating_add(u64::from(max.clamp(1, BLOCKS_PER_RESPONSE_MAX))) - 1);
        match self.store.read(from..=to) {
            Ok(all) => {
                let mut blocks = Vec::new();
                let mut bytes = 0usize;
                for b in all {
                    let len = b.to_bytes().len();
                    if !blocks.is_empty() && bytes + len > RESPONSE_BLOCK_BYTES_BUDGET {
                        break;
                    }
                    bytes += len;
                    blocks.push(b);
                }
                SyncResponse::Blocks { tip, blocks }
            }
            Err(e) => SyncResponse::Refused(format!("cannot read blocks: {e}")),
        }
    }

    // ---- API commands -----------------------------------------------------------------

    /// Commands taken from the queue together: the submissions first, as one batch (one
    /// flush for all of them), then the rest in order.
    async fn on_commands(&mut self, cmds: Vec<Command>) -> Result<(), NodeError> {
        let mut submits = Vec::new();
        let mut others = Vec::new();
        for c in cmds {
            match c {
                Command::Submit { bytes, reply } => submits.push((bytes, reply)),
                other => others.push(other),
            }
        }
        if !submits.is_empty() {
            self.submit_batch(submits).await;
        }
        for c in others {
            self.on_command(c).await?;
        }
        Ok(())
    }

    async fn on_command(&mut self, cmd: Command) -> Result<(), NodeError> {
        match cmd {
            Command::Submit { bytes, reply } => self.submit_batch(vec![(bytes, reply)]).await,
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Balance { account, reply } => {
                let _ = reply.send(self.balance(&account));
            }
            Command::Watch { id, reply } => {
                let _ = reply.send(self.watch(&id));
            }
            Command::History { id, reply } => {
                let _ = reply.send(self.history(&id));
            }
            Command::Export { reply } => {
                let _ = reply.send(self.export());
            }
            Command::Block { height, reply } => {
                let _ = reply.send(self.block_info(height));
            }
            Command::Genesis { reply } => {
                let _ = reply.send(self.genesis_toml.clone());
            }
        }
        Ok(())
    }

    /// Takes submissions: each is checked and kept (unflushed), then one flush makes them
    /// all durable, and only then is each gossiped and acknowledged. A submission refused
    /// on its own merits is answered at once; if the flush fails, none is acknowledged.
    async fn submit_batch(&mut self, items: Vec<(Vec<u8>, SubmitReply)>) {
        let mut kept = Vec::new();
        for (bytes, reply) in items {
            match self.admit(&bytes) {
                Ok(id) => kept.push((id, bytes, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        if kept.is_empty() {
            return;
        }
        if let Err(e) = self.store.flush() {
            let ids: Vec<RecordId> = kept.iter().map(|(id, _, _)| *id).collect();
            self.engine.app_mut().mempool.remove(ids.iter());
            for (_, _, reply) in kept {
                let _ = reply.send(Err(CommandError::Internal(format!(
                    "could not store the record: {e}"
                ))));
            }
            return;
        }
        let delegate = matches!(self.engine, Engine::Delegate(_));
        if !delegate {
            // A node that does not vote cannot propose what it accepted: it also hands the
            // records to its peers directly, so they do not depend on gossip alone.
            self.push_records(kept.iter().map(|(_, b, _)| b.clone()).collect());
        }
        for (id, bytes, reply) in kept {
            self.publish(Topic::Records, bytes).await;
            let _ = reply.send(Ok(Submitted {
                id: id.to_hex(),
                height: None,
                status: "pending".into(),
                reason: None,
            }));
        }
        if let Err(e) = self.poke().await {
            tracing::warn!(error = %e, "could not hand the new records to the voter");
        }
    }

    /// Checks one submission and keeps it in the mempool and (unflushed) in the store.
    fn admit(&mut self, bytes: &[u8]) -> Result<RecordId, CommandError> {
        let rec = SignedRecord::verify_bytes(bytes, &self.chain_id).map_err(|e| {
            CommandError::BadRequest(format!(
                "{e}; was it signed for this network (chain {})?",
                &self.chain_id.to_hex()[..16]
            ))
        })?;
        let id = rec.id();
        let app = self.engine.app_mut();
        if app.ledger().contains_record(&id) {
            return Err(CommandError::Refused(format!(
                "record {id} is already in the log"
            )));
        }
        if app.mempool.contains(&id) {
            return Err(CommandError::Refused(format!(
                "record {id} was already submitted and is pending"
            )));
        }
        app.ledger()
            .check(&rec)
            .map_err(|r| CommandError::Refused(r.0))?;
        app.mempool
            .insert(rec)
            .map_err(|e| CommandError::Busy(e.to_string()))?;
        if let Err(e) = self.store.add_pending_unflushed(id, bytes) {
            self.engine.app_mut().mempool.remove([id].iter());
            return Err(CommandError::Internal(format!(
                "could not store the record: {e}"
            )));
        }
        Ok(id)
    }

    fn status(&self) -> Status {
        let l = self.ledger();
        let delegates = l.delegates_for(l.height() + 1);
        Status {
            chain_id: self.chain_id.to_hex(),
            height: l.height(),
            state_root: l.state_root().to_hex(),
            period: l.period(),
            phase: l.phase().as_str().into(),
            peers: self.peers.len(),
            delegates: delegates.len(),
            listen: self.listen.clone(),
            delegate: self
                .key
                .as_ref()
                .is_some_and(|k| delegates.contains(&k.public())),
            pending: self.engine.app().mempool.len(),
        }
    }

    fn balance(&self, account: &str) -> Result<Balance, CommandError> {
        let mut acc: Account = account.parse().map_err(|_| {
            CommandError::BadRequest(format!(
                "{account:?} is not an account: give a member's public key (64 hex), pool, surplus or social:<association>"
            ))
        })?;
        let l = self.ledger();
        if let Account::Member(pk) = &acc {
            if l.member(pk).is_none() {
                // A member who rotated its key names itself by its current key: the
                // account stays the one it was admitted with.
                match l.account_of(pk) {
                    Some(id) if l.member(&id).is_some() => acc = Account::Member(id),
                    _ => {
                        return Err(CommandError::NotFound(format!(
                            "{pk} is neither an admitted member's account id nor its current key"
                        )))
                    }
                }
            }
        }
        let proof = l.prove(&acc);
        Ok(Balance {
            member: acc.to_string(),
            balance_mh: l.balance(&acc),
            height: l.height(),
            state_root: l.state_root().to_hex(),
            proof: serde_json::to_value(&proof)
                .map_err(|e| CommandError::Internal(e.to_string()))?,
        })
    }

    fn watch(&mut self, id: &str) -> Result<watch::Receiver<Submitted>, CommandError> {
        let id = Hash::from_hex(id).map_err(|e| CommandError::BadRequest(e.to_string()))?;
        if let Some(s) = self.recent.get(&id) {
            return Ok(watch::channel(s.clone()).1);
        }
        if let Some(w) = self.watchers.get(&id) {
            return Ok(w.subscribe());
        }
        if let Ok(Some(e)) = self.store.record(&id) {
            let (status, reason) = if e.accepted {
                ("accepted", None)
            } else {
                ("rejected", e.reason)
            };
            let s = Submitted {
                id: id.to_hex(),
                height: Some(e.height),
                status: status.into(),
                reason,
            };
            return Ok(watch::channel(s).1);
        }
        if !self.engine.app().mempool.contains(&id) {
            return Err(CommandError::NotFound(format!(
                "record {id} is neither pending nor recently committed here"
            )));
        }
        if self.watchers.len() >= WATCHERS_MAX {
            return Err(CommandError::Busy(
                "too many clients are waiting; try again later".into(),
            ));
        }
        let (tx, rx) = watch::channel(Submitted {
            id: id.to_hex(),
            height: None,
            status: "pending".into(),
            reason: None,
        });
        self.watchers.insert(id, tx);
        Ok(rx)
    }

    fn history(&self, id: &str) -> Result<serde_json::Value, CommandError> {
        let id =
            Hash::from_hex(id).map_err(|e| CommandError::BadRequest(format!("record id: {e}")))?;
        let h = self
            .store
            .history(&id)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        if h.layers.is_empty() {
            return Err(CommandError::NotFound(format!(
                "record {id} is not in the log"
            )));
        }
        serde_json::to_value(&h).map_err(|e| CommandError::Internal(e.to_string()))
    }

    fn block_info(&self, height: u64) -> Result<crate::api_types::BlockInfo, CommandError> {
        let tip = self.store.height();
        if height == 0 || height > tip {
            return Err(CommandError::NotFound(format!(
                "no certified block at height {height} (the tip is {tip})"
            )));
        }
        let cb = self
            .store
            .read(height..=height)
            .map_err(|e| CommandError::Internal(e.to_string()))?
            .pop()
            .ok_or_else(|| {
                CommandError::NotFound(format!("no certified block at height {height}"))
            })?;
        let b = &cb.block;
        Ok(crate::api_types::BlockInfo {
            height: b.height,
            hash: b.hash().to_hex(),
            view: b.view,
            proposer: b.proposer.to_hex(),
            timestamp_ms: b.timestamp_ms,
            state_root: b.state_root.to_hex(),
            records: b.records.iter().map(|r| r.id().to_hex()).collect(),
            signers: cb
                .certificate
                .signatures
                .iter()
                .map(|(k, _)| k.to_hex())
                .collect(),
        })
    }

    fn export(&self) -> Result<Vec<u8>, CommandError> {
        let mut w = storage::export::ExportWriter::new(Vec::new(), &self.genesis)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let height = self.store.height();
        let mut from = 1;
        while from <= height {
            let to = (from + 255).min(height);
            let blocks = self
                .store
                .read(from..=to)
                .map_err(|e| CommandError::Internal(e.to_string()))?;
            for b in &blocks {
                w.block(b)
                    .map_err(|e| CommandError::Internal(e.to_string()))?;
            }
            from = to + 1;
        }
        w.finish()
            .map_err(|e| CommandError::Internal(e.to_string()))
    }
}
