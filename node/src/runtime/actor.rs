//! The actor: one task that owns the ledger (inside the voter or alone), the store and
//! the network client, and runs the select loop over the network's events, the API's
//! commands, catch-up answers and timers.
//!
//! The voter's effects are executed in the order given (our own vote is persisted before
//! it is sent); a final block is stored with its certificate before anyone is told.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use protocol::ledger::Outcome;
use protocol::{
    CertifiedBlock, Genesis, Hash, Keypair, RecordBody, RecordId, SignedRecord, SignedVote,
};
use storage::Store;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::ingress::{Command, Submitted};
use super::sync::{Answer, Ask, CatchUp};
use super::{NodeError, Progress, RECENT_MAX};
use crate::agreement::{self, Effect, Input, Voter};
use crate::app::LedgerApp;
use crate::network::{self, Event, Peer, Topic, Validation};
use crate::sync::{
    SyncRequest, SyncResponse, BLOCKS_PER_RESPONSE_MAX, RESPONSE_BLOCK_BYTES_BUDGET,
};

/// How often a node asks a peer whether it is behind.
const CATCH_UP_EVERY: Duration = Duration::from_millis(500);
/// How long one catch-up request may take before the next peer is asked.
const CATCH_UP_REQUEST_TIMEOUT_MS: u64 = 5_000;
/// Most queued commands taken in one turn of the actor (their submissions share a flush).
const SUBMIT_BATCH_MAX: usize = 256;
/// Sync answers queued back to the actor.
const SYNC_CHANNEL: usize = 256;

/// What the actor drives: a voter (delegates) or the ledger alone (observers).
pub(super) enum Engine {
    Delegate(Box<Voter<LedgerApp>>),
    Observer(Box<LedgerApp>),
}

impl Engine {
    pub(super) fn app(&self) -> &LedgerApp {
        match self {
            Engine::Delegate(v) => v.app(),
            Engine::Observer(a) => a,
        }
    }
    pub(super) fn app_mut(&mut self) -> &mut LedgerApp {
        match self {
            Engine::Delegate(v) => v.app_mut(),
            Engine::Observer(a) => a,
        }
    }
}

/// An answer to one of our sync requests.
enum SyncAnswer {
    Blocks(Ask<Peer>, Result<SyncResponse, String>),
    Proposal(Result<SyncResponse, String>),
}

/// What the actor is given when it starts (opened, replayed and connected by `start`).
pub(super) struct Parts {
    pub(super) genesis: Genesis,
    pub(super) genesis_toml: String,
    pub(super) chain_id: Hash,
    pub(super) key: Option<Keypair>,
    pub(super) store: Store,
    pub(super) engine: Engine,
    pub(super) net: network::Client,
    pub(super) listen: Vec<String>,
    pub(super) poke_every: Duration,
    pub(super) progress: watch::Sender<Progress>,
}

pub(super) struct Actor {
    /// The genesis, for exports.
    pub(super) genesis: Genesis,
    /// The genesis file as read, served by `GET /v1/genesis`.
    pub(super) genesis_toml: String,
    pub(super) chain_id: Hash,
    /// Our delegate key, if this node votes.
    pub(super) key: Option<Keypair>,
    /// The log, own votes, pending submissions and indexes.
    pub(super) store: Store,
    pub(super) engine: Engine,
    pub(super) net: network::Client,
    /// Connected peers.
    pub(super) peers: BTreeSet<Peer>,
    /// Our listen addresses.
    pub(super) listen: Vec<String>,
    /// Clients waiting on records.
    pub(super) watchers: BTreeMap<RecordId, watch::Sender<Submitted>>,
    /// Outcomes of recently committed records (bounded), for `wait` after the fact.
    pub(super) recent: BTreeMap<RecordId, Submitted>,
    /// The ids in `recent`, oldest first: the first to go beyond `RECENT_MAX`.
    recent_order: VecDeque<RecordId>,
    /// The voter's one timer.
    timer: Option<(u64, Instant)>,
    /// Which peer to ask for which blocks, and when to give up on it.
    catch_up: CatchUp<Peer>,
    /// Where the tasks that ask peers send their answers back.
    sync_tx: mpsc::Sender<SyncAnswer>,
    /// How often an idle leader is asked again whether it has a block to propose.
    poke_every: Duration,
    /// Published after every final block (height, records in the log).
    progress: watch::Sender<Progress>,
}

/// Spawns the actor's task; it runs until `stop` says so or a fatal error.
pub(super) fn spawn(
    parts: Parts,
    events: network::EventReceiver,
    commands: mpsc::Receiver<Command>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), NodeError>> {
    let (sync_tx, sync_rx) = mpsc::channel(SYNC_CHANNEL);
    let actor = Actor {
        genesis: parts.genesis,
        genesis_toml: parts.genesis_toml,
        chain_id: parts.chain_id,
        key: parts.key,
        store: parts.store,
        engine: parts.engine,
        net: parts.net,
        peers: BTreeSet::new(),
        listen: parts.listen,
        watchers: BTreeMap::new(),
        recent: BTreeMap::new(),
        recent_order: VecDeque::new(),
        timer: None,
        catch_up: CatchUp::new(CATCH_UP_REQUEST_TIMEOUT_MS),
        sync_tx,
        poke_every: parts.poke_every,
        progress: parts.progress,
    };
    tokio::spawn(async move {
        let result = actor.run(events, commands, sync_rx, stop).await;
        // Say why at once: whoever holds the handle may only look at shutdown.
        if let Err(e) = &result {
            tracing::error!(error = %e, "the node stopped on an error");
        }
        result
    })
}

/// Wall-clock milliseconds since the Unix epoch: block timestamps (display only).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Actor {
    /// Runs the loop until `stop` says so (or a fatal error), then stops the network and
    /// flushes the store.
    async fn run(
        mut self,
        mut events: network::EventReceiver,
        mut commands: mpsc::Receiver<Command>,
        mut sync_rx: mpsc::Receiver<SyncAnswer>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        self.restore_notarized().await?;
        self.feed(Input::Start).await?;
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
                    let cmds = take_queued(cmd, &mut commands);
                    self.on_commands(cmds).await?;
                }
                ev = events.recv() => match ev {
                    Some(ev) => self.on_event(ev).await?,
                    None => return Err(NodeError::Task("the network task stopped".into())),
                },
                Some(answer) = sync_rx.recv() => self.on_sync_answer(answer).await?,
                _ = async { tokio::time::sleep_until(timer_at.unwrap_or_else(Instant::now)).await }, if timer_at.is_some() => {
                    self.on_timer().await?;
                }
                _ = tick.tick() => self.catch_up(),
                _ = poke.tick() => self.poke().await?,
            }
        }
        let _ = self.net.shutdown().await;
        self.store.flush()?;
        tracing::info!("node stopped");
        Ok(())
    }

    /// The bodies we notarized before a restart come first: later views build on them.
    /// After a whole-network restart nobody else may hold the body of a notarized block,
    /// and no later block can be built without it.
    async fn restore_notarized(&mut self) -> Result<(), NodeError> {
        let Engine::Delegate(v) = &self.engine else {
            return Ok(());
        };
        let tip = v.app().ledger().height();
        let mut restored = Vec::new();
        for (height, hash, bytes) in self.store.db().notarized_bodies()? {
            match SyncRequest::from_bytes(&bytes) {
                Ok(SyncRequest::Propose { block, signature }) if block.height > tip => {
                    restored.push((block, signature))
                }
                _ => self.store.db().remove_notarized_body(height, &hash)?,
            }
        }
        for (block, signature) in restored {
            self.feed(Input::Proposal { block, signature }).await?;
        }
        Ok(())
    }

    /// Hands one input to the voter and executes its effects; an observer has no voter
    /// and ignores it.
    async fn feed(&mut self, input: Input) -> Result<(), NodeError> {
        if let Engine::Delegate(v) = &mut self.engine {
            let effects = v.handle(now_ms(), input);
            self.execute(effects).await?;
        }
        Ok(())
    }

    /// The voter's timer fired: a re-send tick, or the view timed out.
    async fn on_timer(&mut self) -> Result<(), NodeError> {
        let Some((view, _)) = self.timer.take() else {
            return Ok(());
        };
        let Engine::Delegate(v) = &mut self.engine else {
            return Ok(());
        };
        // The timer ticks a few times per view timeout (re-sends); only a tick that timed
        // the view out counts here.
        let before = v.stats().timeouts;
        let effects = v.handle(now_ms(), Input::Timeout { view });
        // A view that keeps timing out is worth a line in the log.
        let timeouts = v.stats().timeouts;
        if timeouts != before && timeouts % 10 == 0 {
            tracing::info!(state = %v.describe(), "views are timing out");
        }
        self.execute(effects).await
    }

    /// Lets a leader that had nothing to propose look again (records arrived, time passed).
    pub(super) async fn poke(&mut self) -> Result<(), NodeError> {
        self.feed(Input::Poke).await
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
    pub(super) fn push_to_peers(&self, request: SyncRequest) {
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

    pub(super) fn ledger(&self) -> &protocol::ledger::Ledger {
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
                            let body = SyncRequest::Propose {
                                block: b.clone(),
                                signature: *signature,
                            }
                            .to_bytes();
                            // Flushed together with the vote by `record_vote`.
                            self.store
                                .db()
                                .put_notarized_body(b.height, &block, &body)?;
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
                    let ask = self.catch_up.behind(now_ms(), self.height(), &self.peers);
                    self.ask_blocks(ask);
                }
                Effect::RequestProposal { block } => self.request_proposal(block),
            }
        }
        Ok(())
    }

    pub(super) async fn publish(&self, topic: Topic, bytes: Vec<u8>) {
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
        self.store.db().prune_notarized_through(height)?;
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

    // ---- catch-up: the driver of `sync::CatchUp` -------------------------------------

    /// The catch-up tick.
    fn catch_up(&mut self) {
        let ask = self.catch_up.tick(now_ms(), self.height(), &self.peers);
        self.ask_blocks(ask);
    }

    /// Sends a `Blocks` request in its own task; the answer comes back on `sync_tx`. A
    /// silent peer does not hold catch-up: `CatchUp::tick` gives up on it at its deadline.
    fn ask_blocks(&self, ask: Option<Ask<Peer>>) {
        let Some(ask) = ask else { return };
        let req = SyncRequest::Blocks {
            from: ask.from,
            max: ask.max,
        }
        .to_bytes();
        let net = self.net.clone();
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            let answer = match net.request(ask.peer, req).await {
                Ok(bytes) => SyncResponse::from_bytes(&bytes).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(SyncAnswer::Blocks(ask, answer)).await;
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
                self.feed(Input::Proposal { block, signature }).await?;
            }
            SyncAnswer::Proposal(_) => {}
            SyncAnswer::Blocks(ask, result) => self.on_blocks(ask, result).await?,
        }
        Ok(())
    }

    /// The answer to a `Blocks` request: the blocks that continue our log are checked and
    /// taken in order; the first that does not check ends the answer.
    async fn on_blocks(
        &mut self,
        ask: Ask<Peer>,
        result: Result<SyncResponse, String>,
    ) -> Result<(), NodeError> {
        let peer = ask.peer;
        let (tip, blocks) = match self.catch_up.answer(ask.id, peer, result) {
            Answer::Blocks { tip, blocks } => (tip, blocks),
            Answer::Stale => {
                tracing::debug!(%peer, "late sync answer dropped");
                return Ok(());
            }
            Answer::Failed(e) => {
                tracing::debug!(%peer, error = %e, "sync request failed");
                return Ok(());
            }
            Answer::Bad(e) => {
                tracing::warn!(%peer, error = %e, "peer sent blocks that do not fit the request");
                return Ok(());
            }
        };
        for cb in blocks {
            // Agreement may have made some of them final meanwhile.
            if cb.block.height != self.height() + 1 {
                continue;
            }
            if let Err(e) = self.take_certified(cb).await {
                tracing::warn!(%peer, error = %e, "peer sent a block that does not check");
                return Ok(());
            }
        }
        let ask = self
            .catch_up
            .taken(now_ms(), self.height(), tip, &self.peers);
        self.ask_blocks(ask);
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
                        self.feed(Input::Vote(v)).await?;
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
                let answer = self.on_request(&data).await?;
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

    /// A peer's request of `/peerhours/sync/1`, and our answer.
    async fn on_request(&mut self, data: &[u8]) -> Result<SyncResponse, NodeError> {
        let answer = match SyncRequest::from_bytes(data) {
            Err(e) => SyncResponse::Refused(format!("malformed request: {e}")),
            Ok(SyncRequest::Propose { block, signature }) => {
                self.feed(Input::Proposal { block, signature }).await?;
                SyncResponse::Ack
            }
            Ok(SyncRequest::Blocks { from: start, max }) => self.serve_blocks(start, max),
            Ok(SyncRequest::Votes(votes)) if votes.len() <= crate::sync::VOTES_PER_PUSH_MAX => {
                for v in votes {
                    if v.verify(&self.chain_id).is_err() {
                        continue;
                    }
                    self.feed(Input::Vote(v)).await?;
                }
                SyncResponse::Ack
            }
            Ok(SyncRequest::Votes(_)) => SyncResponse::Refused("too many votes in one push".into()),
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
            Ok(SyncRequest::Proposal { block }) => self.serve_proposal(&block),
        };
        Ok(answer)
    }

    /// The body of a block we hold as a proposal (delegates only).
    fn serve_proposal(&self, block: &Hash) -> SyncResponse {
        match &self.engine {
            Engine::Delegate(v) => match v.proposal(block) {
                Some((block, signature)) => SyncResponse::Proposal {
                    block: block.clone(),
                    signature: *signature,
                },
                None => SyncResponse::Refused("unknown block".into()),
            },
            Engine::Observer(_) => SyncResponse::Refused("unknown block".into()),
        }
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
}

/// The first command and what else is queued (up to `SUBMIT_BATCH_MAX`): submissions
/// among them share one flush.
fn take_queued(first: Command, commands: &mut mpsc::Receiver<Command>) -> Vec<Command> {
    let mut cmds = vec![first];
    while cmds.len() < SUBMIT_BATCH_MAX {
        match commands.try_recv() {
            Ok(c) => cmds.push(c),
            Err(_) => break,
        }
    }
    cmds
}
