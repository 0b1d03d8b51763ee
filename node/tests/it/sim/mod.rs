//! A seeded simulation of `n` agreement voters over a simulated network: drops, delays,
//! duplicates, reordering, partitions that heal, crashes and restarts (the votes store and
//! the log survive), and Byzantine delegates. Everything is driven by one seed, so a run
//! is replayed exactly by running its seed again.

pub mod app;

use std::collections::{BTreeMap, BTreeSet};

use node::agreement::{verify_certified, Config, Effect, Input, Schedule, Tip, Voter};
use protocol::{Block, CertifiedBlock, Hash, Keypair, PublicKey, Signature, SignedVote, Vote};

use app::SimApp;

/// splitmix64: a tiny deterministic generator, enough for fault injection.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005e_ed0f_9ee7_4045)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo <= hi);
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

/// How a delegate behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Honest,
    /// Never sends anything.
    Silent,
    /// Signs conflicting votes and proposes two different blocks in its views.
    Equivocator,
    /// Proposes blocks with a wrong state root.
    InvalidProposer,
}

/// What one simulation run is made of.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub n: usize,
    /// Byzantine roles given to the last delegates (at most `f` for the checks to hold).
    pub byzantine: Vec<Role>,
    /// Delegate sets installed by blocks at given heights (keys by index into `nodes`).
    pub changes: BTreeMap<u64, Vec<usize>>,
    /// Extra nodes that are not delegates at genesis (they may become delegates).
    pub extra: usize,
    /// New blocks every honest node must finalize after the network heals.
    pub progress_blocks: u64,
    /// No drops, partitions or crashes: only short random delays (and Byzantine roles).
    pub calm: bool,
    /// The application's idle policy: with nothing to propose, a leader declines to build
    /// until this long after the parent block and is poked again every `idle_ms / 5`
    /// (0: it always builds at once).
    pub idle_ms: u64,
    /// How the first send of a vote (gossip) fares, before and after the heal.
    pub gossip: Gossip,
}

/// The first send of a vote goes by gossip, which is best-effort; a vote sent again
/// (gossip's duplicate filter refuses it, so the runtime pushes it over request-response)
/// and forwarded votes are delivered like any other message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gossip {
    /// Gossip delivers like any other message.
    Reliable,
    /// Lossy for good (also after the heal): one honest delegate never receives a
    /// first-sent vote, the others lose each at a seeded rate (0 to 100 %).
    Lossy,
    /// Every first-sent vote is lost: votes travel only through re-sends.
    Lost,
}

/// What a run produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub digest: Hash,
    pub heights: Vec<u64>,
    pub faults: Faults,
    pub certified: u64,
    pub evidence: u64,
    pub invalid_proposals: u64,
    pub cross_view_certificates: u64,
}

/// Faults injected in one run.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub dropped: u64,
    pub duplicated: u64,
    pub partitions: u64,
    pub crashes: u64,
    pub byzantine: u64,
    /// First-sent votes lost by the lossy gossip (`Scenario::lossy_gossip`).
    pub gossip_lost: u64,
    /// Builds the application declined (`Scenario::idle_ms`).
    pub declined: u64,
}

impl Faults {
    pub fn add(&mut self, o: &Faults) {
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.partitions += o.partitions;
        self.crashes += o.crashes;
        self.byzantine += o.byzantine;
        self.gossip_lost += o.gossip_lost;
        self.declined += o.declined;
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Proposal(Block, Signature),
    Vote(SignedVote),
    /// `from_height`, asked by node `.1`.
    RequestBlocks(u64, usize),
    Blocks(Vec<CertifiedBlock>),
    /// A block body, asked by node `.1`.
    RequestProposal(Hash, usize),
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        to: usize,
        msg: Msg,
    },
    Timer {
        node: usize,
        view: u64,
        token: u64,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
    /// The runtime's poke: a leader that declined to build looks again.
    Poke {
        node: usize,
    },
}

struct SimNode {
    role: Role,
    key: Keypair,
    voter: Option<Voter<SimApp>>,
    /// Durable own votes (survive a crash).
    votes: Vec<SignedVote>,
    /// Durable log of certified blocks (survives a crash).
    log: Vec<CertifiedBlock>,
    /// The token of the latest `SetTimer`; older timers are stale.
    timer_token: u64,
    /// A crash is pending: the next input executes only a prefix of its effects.
    crash_armed: bool,
    /// Votes this process has gossiped already (gossip's duplicate filter; lost on a crash).
    gossiped: BTreeSet<(PublicKey, Vote)>,
}

const VIEW_TIMEOUT_MS: u64 = 500;
const BLOCKS_PER_REPLY: usize = 16;
const EVENTS_MAX: u64 = 2_000_000;
const AFTER_HEAL_DEADLINE_MS: u64 = 120_000;

pub struct Sim {
    sc: Scenario,
    rng: Rng,
    chain_id: Hash,
    genesis_set: Vec<PublicKey>,
    changes: BTreeMap<u64, Vec<PublicKey>>,
    nodes: Vec<SimNode>,
    events: BTreeMap<(u64, u64), Event>,
    seq: u64,
    now: u64,
    heal_at: u64,
    drop_per_mille: u64,
    dup_per_mille: u64,
    delay_max: u64,
    /// Partition group of each node while `partition` is active (before the heal).
    partition: Option<(u64, u64, Vec<u8>)>,
    /// Safety: the first block finalized at each height by anyone honest.
    finalized: BTreeMap<u64, Hash>,
    /// Every vote an honest node persisted, by (signer, view): never conflicting.
    honest_votes: BTreeMap<(PublicKey, u64), Vec<SignedVote>>,
    faults: Faults,
    evidence: u64,
    cross_view: u64,
    /// With lossy gossip: the delegate that never receives gossip, and the loss rate of
    /// gossip to the others.
    deaf: Option<usize>,
    gossip_loss_per_mille: u64,
}

impl Sim {
    pub fn new(sc: Scenario) -> Sim {
        let mut rng = Rng::new(sc.seed);
        let label = "sim";
        let total = sc.n + sc.extra;
        let keys: Vec<Keypair> = (0..total)
            .map(|i| Keypair::from_label(&format!("{label}/delegate/{i}")))
            .collect();
        let genesis_set: Vec<PublicKey> = keys[..sc.n].iter().map(Keypair::public).collect();
        let chain_id = Hash::of_parts(&[b"peerhours/sim/chain", &(sc.n as u64).to_le_bytes()]);
        let changes = sc
            .changes
            .iter()
            .map(|(h, idx)| {
                (
                    *h,
                    idx.iter().map(|i| keys[*i].public()).collect::<Vec<_>>(),
                )
            })
            .collect();
        let mut nodes: Vec<SimNode> = keys
            .into_iter()
            .map(|key| SimNode {
                role: Role::Honest,
                key,
                voter: None,
                votes: Vec::new(),
                log: Vec::new(),
                timer_token: 0,
                crash_armed: false,
                gossiped: BTreeSet::new(),
            })
            .collect();
        for (i, role) in sc.byzantine.iter().enumerate() {
            let idx = sc.n - 1 - i;
            nodes[idx].role = *role;
        }
        let heal_at = rng.range(1_500, 6_000);
        let (drop_per_mille, dup_per_mille, delay_max) = if sc.calm {
            (0, 0, 40)
        } else {
            (rng.range(0, 300), rng.range(0, 100), rng.range(5, 400))
        };
        let mut sim = Sim {
            rng,
            chain_id,
            genesis_set,
            changes,
            nodes,
            events: BTreeMap::new(),
            seq: 0,
            now: 0,
            heal_at,
            drop_per_mille,
            dup_per_mille,
            delay_max,
            partition: None,
            finalized: BTreeMap::new(),
            honest_votes: BTreeMap::new(),
            faults: Faults {
                byzantine: sc.byzantine.len() as u64,
                ..Faults::default()
            },
            evidence: 0,
            cross_view: 0,
            deaf: None,
            gossip_loss_per_mille: 0,
            sc,
        };
        if sim.sc.gossip == Gossip::Lost {
            sim.gossip_loss_per_mille = 1000;
        }
        if sim.sc.gossip == Gossip::Lossy {
            let honest: Vec<usize> = (0..total)
                .filter(|i| sim.nodes[*i].role == Role::Honest)
                .collect();
            if !honest.is_empty() {
                let pick = sim.rng.range(0, honest.len() as u64 - 1) as usize;
                sim.deaf = Some(honest[pick]);
            }
            sim.gossip_loss_per_mille = sim.rng.range(0, 1000);
        }
        if sim.sc.idle_ms > 0 {
            let every = (sim.sc.idle_ms / 5).max(1);
            for node in 0..total {
                let at = sim.rng.range(1, every);
                sim.schedule(at, Event::Poke { node });
            }
        }
        if !sim.sc.calm && sim.rng.chance(500) {
            let from = sim.rng.range(0, heal_at / 2);
            let until = sim.rng.range(from, heal_at);
            let groups = (0..total).map(|_| (sim.rng.next() % 2) as u8).collect();
            sim.partition = Some((from, until, groups));
            sim.faults.partitions += 1;
        }
        let crashes = if sim.sc.calm { 0 } else { sim.rng.range(0, 2) };
        for _ in 0..crashes {
            let node = sim.rng.range(0, total as u64 - 1) as usize;
            if sim.nodes[node].role != Role::Honest {
                continue;
            }
            let at = sim.rng.range(1, heal_at);
            let back = sim.rng.range(at, heal_at);
            sim.schedule(at, Event::Crash { node });
            sim.schedule(back, Event::Restart { node });
            sim.faults.crashes += 1;
        }
        sim
    }

    fn schedule(&mut self, at: u64, ev: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), ev);
    }

    fn schedule_for(&self, log: &[CertifiedBlock]) -> Schedule {
        let mut s = Schedule::new(self.genesis_set.clone()).expect("genesis set is valid");
        for cb in log {
            if let Some(set) = self.changes.get(&cb.block.height) {
                s.insert(cb.block.height + 2, set.clone())
                    .expect("change set is valid");
            }
        }
        s
    }

    fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.role == Role::Silent {
            return;
        }
        let app =
            SimApp::replay(self.chain_id, self.changes.clone(), &n.log).with_idle(self.sc.idle_ms);
        let tip = n
            .log
            .last()
            .map(Tip::of)
            .unwrap_or(Tip::genesis(self.chain_id));
        let cfg = Config {
            chain_id: self.chain_id,
            key: n.key.clone(),
            view_timeout_ms: VIEW_TIMEOUT_MS,
        };
        let schedule = self.schedule_for(&n.log);
        let voter = Voter::new(cfg, app, schedule, tip, n.votes.clone())
            .unwrap_or_else(|e| panic!("node {i} cannot restart from its store: {e}"));
        self.nodes[i].voter = Some(voter);
        self.input(i, Input::Start);
    }

    fn healed(&self) -> bool {
        self.now >= self.heal_at
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if from == to {
            return;
        }
        let (delay_max, drop, dup) = if self.healed() {
            (40, 0, 20)
        } else {
            (self.delay_max, self.drop_per_mille, self.dup_per_mille)
        };
        if !self.healed() {
            if let Some((a, b, groups)) = &self.partition {
                if self.now >= *a && self.now < *b && groups[from] != groups[to] {
                    self.faults.dropped += 1;
                    return;
                }
            }
        }
        if self.rng.chance(drop) {
            self.faults.dropped += 1;
            return;
        }
        let copies = if self.rng.chance(dup) { 2 } else { 1 };
        if copies == 2 {
            self.faults.duplicated += 1;
        }
        for _ in 0..copies {
            let at = self.now + self.rng.range(1, delay_max);
            self.schedule(
                at,
                Event::Deliver {
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            self.send(from, to, msg.clone());
        }
    }

    /// Sends our own vote: unless gossip is reliable, its first send goes by gossip (lost
    /// for the deaf delegate, and for the others at the loss rate); a re-send is pushed.
    fn send_vote(&mut self, from: usize, v: SignedVote) {
        if self.sc.gossip == Gossip::Reliable
            || !self.nodes[from].gossiped.insert((v.signer, v.vote))
        {
            self.broadcast(from, Msg::Vote(v));
            return;
        }
        for to in 0..self.nodes.len() {
            if to == from {
                continue;
            }
            if Some(to) == self.deaf || self.rng.chance(self.gossip_loss_per_mille) {
                self.faults.gossip_lost += 1;
                continue;
            }
            self.send(from, to, Msg::Vote(v));
        }
    }

    /// Peers to ask for something: two at random.
    fn pick_peers(&mut self, me: usize) -> Vec<usize> {
        let total = self.nodes.len() as u64;
        let mut out = Vec::new();
        for _ in 0..2 {
            let p = self.rng.range(0, total - 1) as usize;
            if p != me && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.now;
        let Some(voter) = self.nodes[i].voter.as_mut() else {
            return;
        };
        let effects = voter.handle(now, input);
        let keep = if self.nodes[i].crash_armed {
            // Crash in the middle of executing the effects.
            let k = self.rng.range(0, effects.len() as u64) as usize;
            self.nodes[i].crash_armed = false;
            if let Some(v) = self.nodes[i].voter.take() {
                self.faults.declined += v.app().declined;
            }
            self.nodes[i].gossiped.clear();
            k
        } else {
            effects.len()
        };
        for effect in effects.into_iter().take(keep) {
            self.execute(i, effect);
        }
    }

    fn execute(&mut self, i: usize, effect: Effect) {
        let role = self.nodes[i].role;
        match effect {
            Effect::PersistVote(v) => {
                self.nodes[i].votes.push(v);
                if role == Role::Honest {
                    let seen = self
                        .honest_votes
                        .entry((v.signer, v.vote.view()))
                        .or_default();
                    for old in seen.iter() {
                        assert!(
                            !old.conflicts_with(&v),
                            "honest node {i} signed conflicting votes {old:?} and {v:?}"
                        );
                        if let (Vote::Notarize { .. }, Vote::Notarize { .. }) = (old.vote, v.vote) {
                            panic!("honest node {i} notarized twice in view {}", v.vote.view());
                        }
                    }
                    seen.push(v);
                }
            }
            Effect::SendVote(v) => match role {
                Role::Equivocator => self.equivocate_vote(i, v),
                _ => self.send_vote(i, v),
            },
            Effect::SendProposal { block, signature } => match role {
                Role::Equivocator => self.equivocate_proposal(i, block, signature),
                Role::InvalidProposer => {
                    let mut bad = block;
                    bad.state_root = Hash::of_parts(&[b"garbage", &bad.state_root.0]);
                    let sig = bad.sign(&self.nodes[i].key, &self.chain_id);
                    self.broadcast(i, Msg::Proposal(bad, sig));
                }
                _ => self.broadcast(i, Msg::Proposal(block, signature)),
            },
            Effect::Forward(votes) => {
                for v in votes {
                    self.broadcast(i, Msg::Vote(v));
                }
            }
            Effect::SetTimer { view, after_ms } => {
                self.nodes[i].timer_token += 1;
                let token = self.nodes[i].timer_token;
                self.schedule(
                    self.now + after_ms,
                    Event::Timer {
                        node: i,
                        view,
                        token,
                    },
                );
            }
            Effect::Finalized(cb) => self.on_finalized(i, cb),
            Effect::Evidence(_, _) => {
                if role == Role::Honest {
                    self.evidence += 1;
                }
            }
            Effect::RequestBlocks { from_height } => {
                for p in self.pick_peers(i) {
                    self.send(i, p, Msg::RequestBlocks(from_height, i));
                }
            }
            Effect::RequestProposal { block } => {
                for p in self.pick_peers(i) {
                    self.send(i, p, Msg::RequestProposal(block, i));
                }
            }
        }
    }

    fn on_finalized(&mut self, i: usize, cb: CertifiedBlock) {
        let node = &self.nodes[i];
        let height = cb.block.height;
        assert_eq!(
            height,
            node.log.len() as u64 + 1,
            "node {i} finalized height {height} out of order"
        );
        if let Some(prev) = node.log.last() {
            assert_eq!(
                cb.block.parent,
                prev.block.hash(),
                "node {i} finalized a block not on its log"
            );
        }
        let hash = cb.block.hash();
        if node.role == Role::Honest {
            match self.finalized.get(&height) {
                Some(h) => assert_eq!(
                    *h, hash,
                    "SAFETY: two different blocks finalized at height {height}"
                ),
                None => {
                    let set = self.schedule_for(&node.log);
                    verify_certified(&self.chain_id, set.at(height), &cb).unwrap_or_else(|e| {
                        panic!("certificate of height {height} does not check: {e}")
                    });
                    if cb.certificate.view != cb.block.view {
                        self.cross_view += 1;
                    }
                    self.finalized.insert(height, hash);
                }
            }
        }
        self.nodes[i].log.push(cb);
    }

    fn equivocate_vote(&mut self, i: usize, v: SignedVote) {
        let key = self.nodes[i].key.clone();
        let other = match v.vote {
            Vote::Notarize { view, height, .. } => Vote::Notarize {
                view,
                height,
                block: Hash::of_parts(&[b"fake", &self.rng.next().to_le_bytes()]),
            },
            Vote::Finalize { view, .. } => Vote::Nullify { view },
            Vote::Nullify { view } => {
                let height = self.nodes[i].log.len() as u64 + 1;
                Vote::Finalize {
                    view,
                    height,
                    block: Hash::of_parts(&[b"fake", &self.rng.next().to_le_bytes()]),
                }
            }
        };
        let other = SignedVote::sign(&key, &self.chain_id, other);
        for to in 0..self.nodes.len() {
            let msg = if self.rng.chance(500) {
                Msg::Vote(v)
            } else {
                Msg::Vote(other)
            };
            self.send(i, to, msg);
        }
    }

    fn equivocate_proposal(&mut self, i: usize, block: Block, sig: Signature) {
        let mut twin = block.clone();
        twin.timestamp_ms += 1;
        let twin_sig = twin.sign(&self.nodes[i].key, &self.chain_id);
        let twin_vote = SignedVote::sign(
            &self.nodes[i].key,
            &self.chain_id,
            Vote::Notarize {
                view: twin.view,
                height: twin.height,
                block: twin.hash(),
            },
        );
        for to in 0..self.nodes.len() {
            if self.rng.chance(500) {
                self.send(i, to, Msg::Proposal(block.clone(), sig));
            } else {
                self.send(i, to, Msg::Proposal(twin.clone(), twin_sig));
                self.send(i, to, Msg::Vote(twin_vote));
            }
        }
    }

    fn deliver(&mut self, to: usize, msg: Msg) {
        if self.nodes[to].voter.is_none() {
            return;
        }
        match msg {
            Msg::Proposal(block, signature) => self.input(to, Input::Proposal { block, signature }),
            Msg::Vote(v) => self.input(to, Input::Vote(v)),
            Msg::RequestBlocks(from, requester) => {
                // Answered from the durable log (the runtime's sync does the same).
                let log = &self.nodes[to].log;
                let start = from.saturating_sub(1) as usize;
                if start < log.len() {
                    let end = (start + BLOCKS_PER_REPLY).min(log.len());
                    let blocks = log[start..end].to_vec();
                    self.send(to, requester, Msg::Blocks(blocks));
                }
            }
            Msg::Blocks(blocks) => {
                for cb in blocks {
                    self.input(to, Input::Certified(cb));
                }
            }
            Msg::RequestProposal(hash, requester) => {
                let found = {
                    let n = &self.nodes[to];
                    let from_voter = n
                        .voter
                        .as_ref()
                        .and_then(|v| v.proposal(&hash))
                        .map(|(b, s)| (b.clone(), *s));
                    from_voter.or_else(|| {
                        n.log
                            .iter()
                            .rev()
                            .take(64)
                            .find(|cb| cb.block.hash() == hash)
                            .map(|cb| (cb.block.clone(), cb.proposer_signature))
                    })
                };
                if let Some((block, sig)) = found {
                    self.send(to, requester, Msg::Proposal(block, sig));
                }
            }
        }
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].role == Role::Honest)
            .collect()
    }

    /// Runs the scenario; `Err` describes the first violated check.
    pub fn run(mut self) -> Result<Outcome, String> {
        for i in 0..self.nodes.len() {
            self.start(i);
        }
        let mut target: Option<u64> = None;
        let mut processed = 0u64;
        loop {
            let next_at = self.events.first_key_value().map(|((at, _), _)| *at);
            if target.is_none() && next_at.is_none_or(|at| at >= self.heal_at) {
                self.now = self.now.max(self.heal_at);
                // The heal: every crashed node is back; from here on the network is kind.
                for i in 0..self.nodes.len() {
                    if self.nodes[i].voter.is_none() && self.nodes[i].role != Role::Silent {
                        self.nodes[i].crash_armed = false;
                        self.start(i);
                    }
                }
                let top = self
                    .honest()
                    .iter()
                    .map(|i| self.nodes[*i].log.len() as u64)
                    .max()
                    .unwrap_or(0);
                target = Some(top + self.sc.progress_blocks);
            }
            if let Some(t) = target {
                if self
                    .honest()
                    .iter()
                    .all(|i| self.nodes[*i].log.len() as u64 >= t)
                {
                    break;
                }
                if self.now > self.heal_at + AFTER_HEAL_DEADLINE_MS {
                    return Err(format!(
                        "no progress after the heal: target height {t}, honest heights {:?}, views {:?}{}",
                        self.heights(),
                        self.views(),
                        if std::env::var("PEERHOURS_SIM_DEBUG").is_ok() { self.describe() } else { String::new() }
                    ));
                }
            }
            processed += 1;
            if processed > EVENTS_MAX {
                return Err(format!(
                    "event bound hit at t={} ms, heights {:?}",
                    self.now,
                    self.heights()
                ));
            }
            let Some(((at, _), ev)) = self.events.pop_first() else {
                return Err("no events left".into());
            };
            self.now = at;
            match ev {
                Event::Deliver { to, msg } => self.deliver(to, msg),
                Event::Timer { node, view, token } => {
                    if self.nodes[node].timer_token == token {
                        self.input(node, Input::Timeout { view });
                    }
                }
                Event::Crash { node } => {
                    if self.nodes[node].voter.is_some() {
                        self.nodes[node].crash_armed = true;
                    }
                }
                Event::Restart { node } => {
                    self.nodes[node].crash_armed = false;
                    if self.nodes[node].voter.is_none() {
                        self.start(node);
                    }
                }
                Event::Poke { node } => {
                    self.input(node, Input::Poke);
                    let every = (self.sc.idle_ms / 5).max(1);
                    self.schedule(self.now + every, Event::Poke { node });
                }
            }
        }
        self.outcome()
    }

    fn heights(&self) -> Vec<u64> {
        self.honest()
            .iter()
            .map(|i| self.nodes[*i].log.len() as u64)
            .collect()
    }

    /// Every node's voter state, for a failure report.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let state = n
                .voter
                .as_ref()
                .map_or("down".to_string(), |v| v.describe());
            out.push_str(&format!(
                "\n  node {i} {:?} log {}: {state}",
                n.role,
                n.log.len()
            ));
        }
        out
    }

    fn views(&self) -> Vec<u64> {
        self.honest()
            .iter()
            .map(|i| self.nodes[*i].voter.as_ref().map_or(0, |v| v.view()))
            .collect()
    }

    fn outcome(mut self) -> Result<Outcome, String> {
        for n in &self.nodes {
            if let Some(v) = &n.voter {
                self.faults.declined += v.app().declined;
            }
        }
        let honest = self.honest();
        let common = honest
            .iter()
            .map(|i| self.nodes[*i].log.len())
            .min()
            .unwrap_or(0);
        let mut roots = Vec::new();
        for i in &honest {
            let Some(voter) = self.nodes[*i].voter.as_ref() else {
                return Err(format!("honest node {i} is down at the end"));
            };
            let app = voter.app();
            roots.push(app.roots[common]);
            if app.roots.len() != self.nodes[*i].log.len() + 1
                || app.root() != *app.roots.last().expect("genesis root")
            {
                return Err(format!(
                    "node {i}: application state does not follow its log"
                ));
            }
        }
        if roots.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "honest nodes disagree on the state root at height {common}"
            ));
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut invalid = 0;
        for (i, n) in self.nodes.iter().enumerate() {
            parts.push((i as u64).to_le_bytes().to_vec());
            for cb in &n.log {
                parts.push(cb.block.hash().0.to_vec());
            }
            if let Some(v) = &n.voter {
                parts.push(v.view().to_le_bytes().to_vec());
                if n.role == Role::Honest {
                    invalid += v.stats().proposals_invalid;
                }
            }
            parts.push((n.votes.len() as u64).to_le_bytes().to_vec());
        }
        parts.push(self.now.to_le_bytes().to_vec());
        parts.push(self.faults.dropped.to_le_bytes().to_vec());
        parts.push(self.faults.duplicated.to_le_bytes().to_vec());
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let digest = Hash::of_parts(&refs);
        Ok(Outcome {
            digest,
            heights: self.heights(),
            faults: self.faults.clone(),
            certified: self.finalized.len() as u64,
            evidence: self.evidence,
            invalid_proposals: invalid,
            cross_view_certificates: self.cross_view,
        })
    }
}
