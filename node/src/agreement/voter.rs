//! The voter: one delegate's side of Simplex, `handle(now, input) -> effects`.

use std::collections::{BTreeMap, BTreeSet};

use protocol::limits::{BLOCK_BYTES_MAX, BLOCK_RECORDS_MAX};
use protocol::vote::quorum;
use protocol::{Block, Certificate, CertifiedBlock, Hash, PublicKey, Signature, SignedVote, Vote};
use tracing::{debug, error, warn};

use super::view::{Added, ViewState};
use super::{
    leader, verify_certified, AgreementError, Application, Config, Effect, Input, Schedule, Tip,
    Verdict, CERTS_AHEAD_MAX, FORWARD_VIEWS_MAX, SKIP_SILENT_LEADER_AFTER_VIEWS, TICKS_PER_TIMEOUT,
    VIEWS_AHEAD_MAX, VIEWS_BEHIND_MAX, WANTED_MAX,
};

/// Counters of what the voter did and refused, for logs, metrics and the simulation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub proposals_made: u64,
    pub proposals_invalid: u64,
    pub proposals_rejected: u64,
    pub votes_rejected: u64,
    pub evidence: u64,
    pub timeouts: u64,
    pub finalized: u64,
    pub catchup_rejected: u64,
    /// Two different blocks certified at one height: only possible with more than `f`
    /// Byzantine delegates. Never expected; reported, never acted on.
    pub conflicting_certificates: u64,
}

/// A block body above the tip, with what we know of its validity.
#[derive(Debug)]
struct Stored {
    block: Block,
    signature: Signature,
    state: BodyState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BodyState {
    Unchecked,
    Valid(Verdict),
    /// Invalid, or not extending the finalized tip: never voted for nor built on.
    Invalid,
}

/// Outcome of checking a block and its unchecked ancestors down to the tip.
enum Check {
    Valid,
    Invalid,
    /// A body on the way down is unknown.
    Missing(Hash),
}

/// Where a new block attaches.
#[derive(Debug, Clone, Copy)]
struct Parent {
    hash: Hash,
    height: u64,
    timestamp_ms: u64,
}

/// One delegate's Simplex state machine. See the module docs for the caller's contract.
pub struct Voter<A: Application> {
    /// Chain id, our key, the view timeout.
    cfg: Config,
    /// Our public key (cached from `cfg.key`).
    me: PublicKey,
    /// The state blocks change; called synchronously.
    app: A,
    /// Delegate sets by height, from the genesis and certified `ChangeDelegates`.
    schedule: Schedule,
    /// The last finalized block, emitted as `Finalized` (or restored).
    tip: Tip,
    /// Our current view.
    view: u64,
    /// Timer ticks since we entered (or resumed in) the current view.
    ticks: u64,
    /// Views above the tip's view that we keep state for.
    views: BTreeMap<u64, ViewState>,
    /// Block bodies above the tip (first proposal per view, plus bodies we asked for).
    blocks: BTreeMap<Hash, Stored>,
    /// Certificates for heights above the tip, waiting for their turn (or their body).
    certs: BTreeMap<u64, Certificate>,
    /// Bodies asked for with `RequestProposal` and not received yet (bounded).
    wanted: BTreeSet<Hash>,
    /// The last `(view, from_height)` we sent `RequestBlocks` for (one request per pair).
    last_block_request: Option<(u64, u64)>,
    /// The caller's clock for this call (only used to stamp our proposals).
    now_ms: u64,
    /// The latest view in which we saw a vote of each delegate (at most one entry per
    /// delegate: only votes of delegates are recorded).
    last_seen: BTreeMap<PublicKey, u64>,
    /// The view we started (or resumed) in: nobody is presumed down before we have watched
    /// `SKIP_SILENT_LEADER_AFTER_VIEWS` views ourselves.
    started_view: u64,
    /// Effects of the call being handled, in order.
    out: Vec<Effect>,
    stats: Stats,
}

impl<A: Application> Voter<A> {
    /// A voter resuming after `tip` (use `Tip::genesis` for a new chain) with the delegate
    /// `schedule` in force there and every own vote persisted so far, so it never signs a
    /// vote conflicting with one it signed before a crash.
    pub fn new(
        cfg: Config,
        app: A,
        schedule: Schedule,
        tip: Tip,
        own_votes: Vec<SignedVote>,
    ) -> Result<Voter<A>, AgreementError> {
        let me = cfg.key.public();
        let mut voter = Voter {
            me,
            app,
            schedule,
            tip,
            view: tip.certified_view.saturating_add(1),
            ticks: 0,
            views: BTreeMap::new(),
            blocks: BTreeMap::new(),
            certs: BTreeMap::new(),
            wanted: BTreeSet::new(),
            last_block_request: None,
            now_ms: 0,
            last_seen: BTreeMap::new(),
            started_view: 0,
            out: Vec::new(),
            stats: Stats::default(),
            cfg,
        };
        for sv in own_votes {
            let view = sv.vote.view();
            if sv.signer != me {
                return Err(AgreementError::ForeignVote {
                    view,
                    expected: me,
                    found: sv.signer,
                });
            }
            if sv.verify(&voter.cfg.chain_id).is_err() {
                return Err(AgreementError::BadOwnVote { view });
            }
            if view <= tip.view {
                continue;
            }
            let vs = voter.views.entry(view).or_default();
            if let Added::New(Some(_)) = vs.add(sv) {
                return Err(AgreementError::ConflictingOwnVotes { view });
            }
            let mut resume = view;
            match sv.vote {
                Vote::Notarize { block, .. } => vs.own_notarize = Some(block),
                Vote::Nullify { .. } => vs.own_nullify = true,
                Vote::Finalize { .. } => {
                    vs.own_finalize = Some(sv);
                    vs.finalize_settled = true;
                    // We finalize only views we saw notarized, and that moved us past them.
                    resume = view.saturating_add(1);
                }
            }
            voter.view = voter.view.max(resume);
        }
        voter.started_view = voter.view;
        Ok(voter)
    }

    /// Handles one input; `now_ms` is the caller's clock, used only to stamp a block we
    /// propose. Returns the effects to execute in order.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        self.now_ms = now_ms;
        match input {
            Input::Start => self.on_start(),
            Input::Proposal { block, signature } => self.on_proposal(block, signature),
            Input::Vote(vote) => self.on_vote(vote),
            Input::Timeout { view } => self.on_timeout(view),
            Input::Certified(block) => self.on_certified(block),
            Input::Poke => {}
        }
        self.progress();
        std::mem::take(&mut self.out)
    }

    /// Our current view.
    pub fn view(&self) -> u64 {
        self.view
    }

    /// The last finalized block.
    pub fn tip(&self) -> Tip {
        self.tip
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn app(&self) -> &A {
        &self.app
    }

    /// The application, for the runtime to feed it records (its mempool). Changing what
    /// it has verified or finalized from outside would break the voter's view of it.
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// The delegate sets in force from the tip on.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// A one-line summary of every kept view, for diagnostics and status pages.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "view {} timeouts {} tip {}@{} certs {:?} |",
            self.view,
            self.stats.timeouts,
            self.tip.height,
            self.tip.view,
            self.certs.keys().collect::<Vec<_>>()
        );
        for (v, vs) in &self.views {
            out.push_str(&format!(
                " v{v}[prop={} N{} X{} F{} notarized={} nullified={} own(n={},x={},f={}) settled={}]",
                                vs.proposal.is_some(),
                vs.count(|v| matches!(v, Vote::Notarize { .. })),
                vs.count(|v| matches!(v, Vote::Nullify { .. })),
                vs.count(|v| matches!(v, Vote::Finalize { .. })),
                vs.notarized.map(|(_, h)| h.to_string()).unwrap_or("-".into()),
                vs.nullified,
                vs.own_notarize.is_some(),
                vs.own_nullify,
                                vs.own_finalize.is_some(),
                vs.finalize_settled,
            ));
        }
        out
    }

    /// A block body above the tip with its proposer's signature, to answer a peer's
    /// `RequestProposal`.
    pub fn proposal(&self, hash: &Hash) -> Option<(&Block, &Signature)> {
        self.blocks.get(hash).map(|s| (&s.block, &s.signature))
    }

    // ----- inputs -----

    fn on_start(&mut self) {
        self.ticks = 0;
        self.out.push(Effect::SetTimer {
            view: self.view,
            after_ms: self.tick_ms(),
        });
        self.resend_own(self.view);
    }

    fn on_proposal(&mut self, block: Block, signature: Signature) {
        let view = block.view;
        if block.height <= self.tip.height || view <= self.tip.view {
            return;
        }
        let hash = block.hash();
        if self.blocks.contains_key(&hash) {
            return;
        }
        let wanted = self.wanted.contains(&hash);
        if !wanted && !self.in_window(view) {
            debug!(
                view,
                current = self.view,
                "proposal outside the view window dropped"
            );
            return;
        }
        if block.records.len() > BLOCK_RECORDS_MAX {
            self.reject_proposal(view, "too many records");
            return;
        }
        if leader(&self.set_at(block.height), view) != Some(block.proposer) {
            self.reject_proposal(view, "proposer is not the leader of its view");
            return;
        }
        if block
            .verify_proposer(&self.cfg.chain_id, &signature)
            .is_err()
        {
            self.reject_proposal(view, "bad proposer signature");
            return;
        }
        let first = self.views.get(&view).is_none_or(|vs| vs.proposal.is_none());
        if !first && !wanted {
            // A second block from the leader of one view: only its votes can prove the
            // equivocation; keeping every body would let a leader fill our memory.
            debug!(view, "second proposal for a view ignored");
            return;
        }
        if first && self.in_window(view) {
            self.views.entry(view).or_default().proposal = Some(hash);
        }
        self.wanted.remove(&hash);
        self.blocks.insert(
            hash,
            Stored {
                block,
                signature,
                state: BodyState::Unchecked,
            },
        );
    }

    fn on_vote(&mut self, sv: SignedVote) {
        let view = sv.vote.view();
        if view <= self.tip.view {
            return;
        }
        if !self.in_window(view) {
            if view > self.view.saturating_add(VIEWS_AHEAD_MAX) {
                // The others are far ahead: catch up on certified blocks.
                self.request_blocks();
            }
            return;
        }
        if sv.signer == self.me {
            // Our own votes are known from the store; a copy forwarded back adds nothing.
            return;
        }
        let delegates = match sv.vote {
            Vote::Notarize { height, .. } | Vote::Finalize { height, .. } => {
                if height <= self.tip.height {
                    return;
                }
                self.set_at(height)
            }
            Vote::Nullify { .. } => self.set_at(self.tip.height.saturating_add(1)),
        };
        if !delegates.contains(&sv.signer) {
            self.stats.votes_rejected = self.stats.votes_rejected.saturating_add(1);
            debug!(view, signer = %sv.signer, "vote from a non-delegate dropped");
            return;
        }
        if self.views.get(&view).is_some_and(|vs| vs.knows(&sv)) {
            return;
        }
        if sv.verify(&self.cfg.chain_id).is_err() {
            self.stats.votes_rejected = self.stats.votes_rejected.saturating_add(1);
            warn!(view, signer = %sv.signer, "vote with a bad signature dropped");
            return;
        }
        let seen = self.last_seen.entry(sv.signer).or_insert(view);
        *seen = (*seen).max(view);
        let vs = self.views.entry(view).or_default();
        match vs.add(sv) {
            Added::Known => return,
            Added::New(None) => {}
            Added::New(Some(old)) => {
                // Still counted: others may have counted it in a quorum we need to see.
                if vs.evidence.insert(sv.signer) {
                    warn!(view, signer = %sv.signer, "conflicting votes: evidence");
                    self.stats.evidence = self.stats.evidence.saturating_add(1);
                    self.out.push(Effect::Evidence(old, sv));
                }
            }
        }
        if let Vote::Finalize { height, .. } = sv.vote {
            if height > self.lowest_uncertified() {
                // Others finalize above what we lack a certificate for: they know
                // certificates we missed. Fetch the blocks rather than keep voting low.
                self.request_blocks();
            }
        }
        self.tally(view);
    }

    /// A tick of the current view. Every tick re-sends what may have been lost: our votes of
    /// the view, our finalize votes without a certificate, the votes that justify the view.
    /// Every `TICKS_PER_TIMEOUT`th tick the view times out: we nullify it (once), and also
    /// re-send our proposal, ask again for missing bodies and for certified blocks.
    fn on_timeout(&mut self, view: u64) {
        if view != self.view {
            return;
        }
        self.ticks = self.ticks.saturating_add(1);
        let timed_out = self.ticks.is_multiple_of(TICKS_PER_TIMEOUT);
        // Our votes of this view first (a notarize whose first send was lost must reach
        // the others before they give up on the view), then the nullify if it is time.
        self.resend_own(view);
        // Earlier views above the tip that we voted to notarize but never saw notarized nor
        // nullified: the others' votes there were lost (a whole-network restart keeps only
        // each delegate's own votes). Nobody will nullify a view it finalized, so unless our
        // own votes go out again, no later block can find its parent and the chain stops.
        let unresolved: Vec<u64> = self
            .views
            .range(self.tip.view.saturating_add(1)..view)
            .filter(|(_, vs)| vs.own_notarize.is_some() && vs.notarized.is_none() && !vs.nullified)
            .map(|(v, _)| *v)
            .take(FORWARD_VIEWS_MAX)
            .collect();
        for v in unresolved {
            self.resend_own(v);
        }
        if timed_out {
            self.stats.timeouts = self.stats.timeouts.saturating_add(1);
            debug!(view, "view timed out");
            let vs = self.views.entry(view).or_default();
            if !vs.own_nullify && vs.own_finalize.is_none() {
                self.cast(Vote::Nullify { view });
            }
        }
        // Our finalize votes whose certificate has not formed yet: a lost finalize vote
        // must not leave a block uncertified forever.
        let lowest = self.lowest_uncertified();
        let pending: Vec<SignedVote> = self
            .views
            .values()
            .rev()
            .filter_map(|vs| vs.own_finalize)
            .filter(|v| matches!(v.vote, Vote::Finalize { height, .. } if height >= lowest))
            .take(FORWARD_VIEWS_MAX)
            .collect();
        for v in pending {
            self.out.push(Effect::SendVote(v));
        }
        if timed_out {
            if let Some(vs) = self.views.get(&view) {
                if let (Some(own), Some(p)) = (vs.own_notarize, vs.proposal) {
                    // Our own proposal: send it again for those who missed it. Same block,
                    // same signature: not a second proposal.
                    if own == p {
                        if let Some(s) = self.blocks.get(&p).filter(|s| s.block.proposer == self.me)
                        {
                            self.out.push(Effect::SendProposal {
                                block: s.block.clone(),
                                signature: s.signature,
                            });
                        }
                    }
                }
            }
        }
        // The votes that let a peer that missed them enter our view.
        let proof = self.proof_votes(view);
        if !proof.is_empty() {
            self.out.push(Effect::Forward(proof));
        }
        if timed_out {
            // Ask again on every timeout: an answer may have been lost, and a node whose
            // view does not move would otherwise never ask twice.
            self.last_block_request = None;
            self.request_blocks();
            let wanted: Vec<Hash> = self.wanted.iter().copied().collect();
            for block in wanted {
                self.out.push(Effect::RequestProposal { block });
            }
        }
        if self.view == view {
            self.out.push(Effect::SetTimer {
                view,
                after_ms: self.tick_ms(),
            });
        }
    }

    /// The period of the view timer's ticks.
    fn tick_ms(&self) -> u64 {
        (self.cfg.view_timeout_ms / TICKS_PER_TIMEOUT).max(1)
    }

    fn on_certified(&mut self, cb: CertifiedBlock) {
        let height = cb.block.height;
        if height <= self.tip.height {
            return;
        }
        if height != self.tip.height.saturating_add(1) {
            debug!(
                height,
                tip = self.tip.height,
                "certified block out of order dropped"
            );
            return;
        }
        if let Err(e) = verify_certified(&self.cfg.chain_id, self.schedule.at(height), &cb) {
            self.stats.catchup_rejected = self.stats.catchup_rejected.saturating_add(1);
            warn!(height, error = %e, "fetched certified block does not check");
            return;
        }
        let hash = cb.block.hash();
        if let Some(known) = self.certs.get(&height) {
            if known.block != hash {
                self.conflicting_certificate(height, known.block, hash);
                return;
            }
        }
        self.wanted.remove(&hash);
        self.blocks.entry(hash).or_insert(Stored {
            block: cb.block,
            signature: cb.proposer_signature,
            state: BodyState::Unchecked,
        });
        self.certs.insert(height, cb.certificate);
    }

    // ----- the rules -----

    /// Re-evaluates everything an input may have unlocked, until nothing changes.
    fn progress(&mut self) {
        // Each round either changes some bounded state or stops; the bound is a guard.
        for _ in 0..256 {
            let mut changed = self.emit_finalized();
            changed |= self.finalize_views();
            changed |= self.vote_current();
            changed |= self.propose();
            if !changed {
                return;
            }
        }
        warn!(view = self.view, "agreement progress loop hit its bound");
    }

    /// Counts the votes of `view`: notarization, nullification, certificates; moves on.
    fn tally(&mut self, view: u64) {
        let tip_height = self.tip.height;
        let Some(vs) = self.views.get(&view) else {
            return;
        };
        let notarize_targets = if vs.notarized.is_none() {
            vs.targets(false)
        } else {
            Default::default()
        };
        let finalize_targets: Vec<(Hash, u64)> = vs
            .targets(true)
            .into_iter()
            .filter(|(_, h)| *h > tip_height && *h <= tip_height.saturating_add(CERTS_AHEAD_MAX))
            .collect();
        let mut sets: BTreeMap<u64, Vec<PublicKey>> = BTreeMap::new();
        for h in notarize_targets
            .iter()
            .chain(finalize_targets.iter())
            .map(|(_, h)| *h)
        {
            if let std::collections::btree_map::Entry::Vacant(e) = sets.entry(h) {
                e.insert(self.set_at(h));
            }
        }
        let nullify_set = self.set_at(tip_height.saturating_add(1));
        let Some(vs) = self.views.get_mut(&view) else {
            return;
        };
        let mut advance = false;
        for (block, height) in notarize_targets {
            let Some(set) = sets.get(&height) else {
                continue;
            };
            if vs.notarizes_for(block, height, set).len() >= quorum(set.len()) {
                vs.notarized = Some((block, height));
                debug!(view, height, %block, "notarized");
                break;
            }
        }
        if vs.notarized.is_some() {
            advance = true;
        }
        if !vs.nullified && vs.nullifies_from(&nullify_set).len() >= quorum(nullify_set.len()) {
            vs.nullified = true;
            debug!(view, "nullified");
        }
        if vs.nullified {
            advance = true;
        }
        let mut formed = Vec::new();
        for (block, height) in finalize_targets {
            let Some(set) = sets.get(&height) else {
                continue;
            };
            let votes = vs.finalizes_for(block, height, set);
            if votes.len() >= quorum(set.len()) {
                let mut signatures: Vec<(PublicKey, Signature)> =
                    votes.iter().map(|v| (v.signer, v.signature)).collect();
                signatures.sort_by_key(|s| s.0);
                formed.push(Certificate {
                    view,
                    height,
                    block,
                    signatures,
                });
            }
        }
        for cert in formed {
            advance = true;
            match self.certs.get(&cert.height) {
                Some(known) if known.block != cert.block => {
                    let (h, a, b) = (cert.height, known.block, cert.block);
                    self.conflicting_certificate(h, a, b);
                }
                Some(_) => {}
                None => {
                    debug!(view, height = cert.height, block = %cert.block, "certificate formed");
                    self.certs.insert(cert.height, cert);
                }
            }
        }
        if advance && view >= self.view {
            self.enter_view(view.saturating_add(1));
        }
    }

    /// Emits the certified blocks that follow the tip, in height order.
    fn emit_finalized(&mut self) -> bool {
        let mut changed = false;
        loop {
            let height = self.tip.height.saturating_add(1);
            let Some(hash) = self.certs.get(&height).map(|c| c.block) else {
                if !self.certs.is_empty() {
                    // Certificates above a gap: the gap's certificate formed without us.
                    self.request_blocks();
                }
                break;
            };
            match self.check(hash) {
                Check::Valid => {}
                Check::Missing(missing) => {
                    self.want(missing);
                    self.request_blocks();
                    break;
                }
                Check::Invalid => {
                    // A certified block we cannot apply: more than f delegates lied, or the
                    // application is broken. Stop finalizing rather than diverge.
                    error!(height, %hash, "certified block is invalid here; finalization stops");
                    self.stats.conflicting_certificates =
                        self.stats.conflicting_certificates.saturating_add(1);
                    self.certs.remove(&height);
                    break;
                }
            }
            let Some(stored) = self.blocks.remove(&hash) else {
                break;
            };
            let Some(certificate) = self.certs.remove(&height) else {
                break;
            };
            let verdict = match stored.state {
                BodyState::Valid(v) => v,
                _ => Verdict::default(),
            };
            let cb = CertifiedBlock {
                block: stored.block,
                proposer_signature: stored.signature,
                certificate,
            };
            if let Some(set) = verdict.delegates {
                if let Err(e) = self.schedule.insert(height.saturating_add(2), set) {
                    error!(height, error = %e, "finalized block installs an unusable delegate set; ignored");
                }
            }
            self.app.finalized(&cb);
            self.tip = Tip::of(&cb);
            self.stats.finalized = self.stats.finalized.saturating_add(1);
            debug!(height, view = cb.block.view, certified_view = cb.certificate.view, %hash, "block finalized");
            self.out.push(Effect::Finalized(cb));
            self.prune();
            if self.tip.certified_view >= self.view {
                self.enter_view(self.tip.certified_view.saturating_add(1));
            }
            changed = true;
        }
        changed
    }

    /// Casts the finalize vote of every notarized view whose finalize step is open: for the
    /// lowest height above the tip without a certificate, on the notarized block's chain.
    fn finalize_views(&mut self) -> bool {
        let open: Vec<(u64, Hash, u64)> = self
            .views
            .iter()
            .filter(|(_, vs)| !vs.own_nullify && !vs.finalize_settled)
            .filter_map(|(v, vs)| vs.notarized.map(|(b, h)| (*v, b, h)))
            .collect();
        let mut changed = false;
        for (view, notarized, height) in open {
            let target_height = self.lowest_uncertified();
            if height < target_height {
                // Everything on this chain up to the notarized block is certified already.
                if let Some(vs) = self.views.get_mut(&view) {
                    vs.finalize_settled = true;
                }
                continue;
            }
            let mut target = notarized;
            let mut at = height;
            let mut missing = None;
            while at > target_height {
                match self.blocks.get(&target) {
                    Some(s) if s.block.height == at => {
                        target = s.block.parent;
                        at -= 1;
                    }
                    Some(_) => break,
                    None => {
                        missing = Some(target);
                        break;
                    }
                }
            }
            if let Some(m) = missing {
                self.want(m);
                continue;
            }
            if at != target_height {
                // A body that claims a wrong height: this chain is broken; do not vote on it.
                if let Some(vs) = self.views.get_mut(&view) {
                    vs.finalize_settled = true;
                }
                continue;
            }
            self.cast(Vote::Finalize {
                view,
                height: target_height,
                block: target,
            });
            changed = true;
        }
        changed
    }

    /// Notarizes the proposal of the current view once it and its parent chain check, or
    /// nullifies at once if the proposal is invalid.
    fn vote_current(&mut self) -> bool {
        let view = self.view;
        let Some(vs) = self.views.get(&view) else {
            return false;
        };
        let Some(p) = vs.proposal else { return false };
        if vs.own_notarize.is_some()
            || vs.own_nullify
            || vs.own_finalize.is_some()
            || vs.proposal_invalid
        {
            return false;
        }
        let Some(stored) = self.blocks.get(&p) else {
            return false;
        };
        let (parent, height) = (stored.block.parent, stored.block.height);
        let parent_view = if parent == self.tip.hash {
            self.tip.view
        } else {
            let Some(ps) = self.blocks.get(&parent) else {
                self.want(parent);
                return false;
            };
            let pv = ps.block.view;
            if pv <= self.tip.view || pv >= view {
                return self.invalid_proposal(view, "parent view out of range");
            }
            match self.views.get(&pv).and_then(|s| s.notarized) {
                Some((b, _)) if b == parent => {}
                // The parent's notarization may still arrive.
                _ => return false,
            }
            pv
        };
        if parent_view >= view {
            return self.invalid_proposal(view, "parent view not below the block's view");
        }
        let mut skipped = parent_view.saturating_add(1);
        while skipped < view {
            if !self.views.get(&skipped).is_some_and(|s| s.nullified) {
                // Not (yet) known to be skipped: wait for its nullification or time out.
                return false;
            }
            skipped += 1;
        }
        match self.check(p) {
            Check::Valid => {
                self.cast(Vote::Notarize {
                    view,
                    height,
                    block: p,
                });
                true
            }
            Check::Invalid => self.invalid_proposal(view, "block does not apply"),
            Check::Missing(m) => {
                self.want(m);
                false
            }
        }
    }

    /// Proposes a block if we lead the current view and know where to attach it.
    fn propose(&mut self) -> bool {
        let view = self.view;
        if let Some(vs) = self.views.get(&view) {
            if vs.own_notarize.is_some() || vs.own_nullify || vs.proposal.is_some() {
                return false;
            }
        }
        let Some(parent) = self.parent_for(view) else {
            return false;
        };
        let height = parent.height.saturating_add(1);
        if leader(&self.set_at(height), view) != Some(self.me) {
            return false;
        }
        let timestamp_ms = self.now_ms.max(parent.timestamp_ms.saturating_add(1));
        let payload = match self.app.build(&parent.hash, height, timestamp_ms) {
            Ok(Some(p)) => p,
            // Nothing to propose yet; a later input (a poke, a record) asks again.
            Ok(None) => return false,
            Err(e) => {
                warn!(view, height, error = %e, "application could not build a block");
                return false;
            }
        };
        let block = Block {
            height,
            view,
            parent: parent.hash,
            proposer: self.me,
            timestamp_ms,
            records: payload.records,
            state_root: payload.state_root,
        };
        if block.records.len() > BLOCK_RECORDS_MAX || block.to_bytes().len() > BLOCK_BYTES_MAX {
            error!(
                view,
                height, "application built a block over the limits; not proposed"
            );
            return false;
        }
        let verdict = match self.app.verify(&block) {
            Ok(v) => v,
            Err(e) => {
                error!(view, height, error = %e, "application rejects the block it built");
                return false;
            }
        };
        let hash = block.hash();
        let signature = block.sign(&self.cfg.key, &self.cfg.chain_id);
        let vote = SignedVote::sign(
            &self.cfg.key,
            &self.cfg.chain_id,
            Vote::Notarize {
                view,
                height,
                block: hash,
            },
        );
        let vs = self.views.entry(view).or_default();
        vs.proposal = Some(hash);
        vs.own_notarize = Some(hash);
        let _ = vs.add(vote);
        self.out.push(Effect::PersistVote(vote));
        self.out.push(Effect::SendProposal {
            block: block.clone(),
            signature,
        });
        self.out.push(Effect::SendVote(vote));
        self.blocks.insert(
            hash,
            Stored {
                block,
                signature,
                state: BodyState::Valid(verdict),
            },
        );
        self.stats.proposals_made = self.stats.proposals_made.saturating_add(1);
        debug!(view, height, %hash, "proposed");
        self.tally(view);
        true
    }

    // ----- helpers -----

    /// Signs, persists (first), sends and counts our vote; records it in the view.
    fn cast(&mut self, vote: Vote) {
        let view = vote.view();
        let vs = self.views.entry(view).or_default();
        // The honest rules, checked where the vote is made.
        match vote {
            Vote::Notarize { block, .. } => {
                assert!(
                    vs.own_notarize.is_none(),
                    "never two notarizes in view {view}"
                );
                vs.own_notarize = Some(block);
            }
            Vote::Nullify { .. } => {
                assert!(
                    vs.own_finalize.is_none() && !vs.own_nullify,
                    "never nullify after finalize in view {view}"
                );
                vs.own_nullify = true;
            }
            Vote::Finalize { .. } => {
                assert!(
                    !vs.own_nullify && vs.own_finalize.is_none(),
                    "never finalize after nullify in view {view}"
                );
                vs.finalize_settled = true;
            }
        }
        let sv = SignedVote::sign(&self.cfg.key, &self.cfg.chain_id, vote);
        if let Vote::Finalize { .. } = vote {
            vs.own_finalize = Some(sv);
        }
        let _ = vs.add(sv);
        self.out.push(Effect::PersistVote(sv));
        self.out.push(Effect::SendVote(sv));
        self.tally(view);
    }

    fn resend_own(&mut self, view: u64) {
        if let Some(mine) = self.views.get(&view).and_then(|vs| vs.votes.get(&self.me)) {
            for v in mine {
                self.out.push(Effect::SendVote(*v));
            }
        }
    }

    fn invalid_proposal(&mut self, view: u64, why: &str) -> bool {
        warn!(view, why, "invalid proposal; nullifying the view");
        self.stats.proposals_invalid = self.stats.proposals_invalid.saturating_add(1);
        let vs = self.views.entry(view).or_default();
        vs.proposal_invalid = true;
        if !vs.own_nullify && vs.own_finalize.is_none() {
            self.cast(Vote::Nullify { view });
        }
        true
    }

    fn reject_proposal(&mut self, view: u64, why: &str) {
        self.stats.proposals_rejected = self.stats.proposals_rejected.saturating_add(1);
        warn!(view, why, "proposal rejected");
    }

    fn conflicting_certificate(&mut self, height: u64, a: Hash, b: Hash) {
        self.stats.conflicting_certificates = self.stats.conflicting_certificates.saturating_add(1);
        error!(height, %a, %b, "two blocks certified at one height: more than f delegates are faulty");
    }

    fn in_window(&self, view: u64) -> bool {
        view > self.tip.view
            && view <= self.view.saturating_add(VIEWS_AHEAD_MAX)
            && view.saturating_add(VIEWS_BEHIND_MAX) >= self.view
    }

    fn enter_view(&mut self, view: u64) {
        if view <= self.view {
            return;
        }
        debug!(from = self.view, to = view, "entering view");
        self.view = view;
        self.ticks = 0;
        self.out.push(Effect::SetTimer {
            view,
            after_ms: self.tick_ms(),
        });
        let floor = view.saturating_sub(VIEWS_BEHIND_MAX);
        if floor > 0 {
            self.views = self.views.split_off(&floor);
            self.blocks.retain(|_, s| s.block.view >= floor);
        }
        if self.leader_presumed_down(view) {
            let vs = self.views.entry(view).or_default();
            if !vs.own_nullify && vs.own_finalize.is_none() {
                debug!(
                    view,
                    "leader silent for many views: skipping its view at once"
                );
                self.stats.timeouts = self.stats.timeouts.saturating_add(1);
                self.cast(Vote::Nullify { view });
            }
        }
    }

    /// Whether the leader of `view` has cast no vote we saw for
    /// `SKIP_SILENT_LEADER_AFTER_VIEWS` views (and we have watched that long).
    fn leader_presumed_down(&self, view: u64) -> bool {
        let set = self.set_at(self.tip.height.saturating_add(1));
        let Some(leader) = leader(&set, view) else {
            return false;
        };
        if leader == self.me {
            return false;
        }
        let since = self
            .last_seen
            .get(&leader)
            .copied()
            .unwrap_or(0)
            .max(self.started_view);
        view > since.saturating_add(SKIP_SILENT_LEADER_AFTER_VIEWS)
    }

    /// Drops what the new tip made useless.
    fn prune(&mut self) {
        let (height, view) = (self.tip.height, self.tip.view);
        self.views = self.views.split_off(&view.saturating_add(1));
        self.blocks
            .retain(|_, s| s.block.height > height && s.block.view > view);
        self.certs = self.certs.split_off(&height.saturating_add(1));
        let blocks = &self.blocks;
        self.wanted.retain(|h| !blocks.contains_key(h));
        self.schedule.prune_below(height.saturating_add(1));
    }

    /// The lowest height above the tip without a known certificate.
    fn lowest_uncertified(&self) -> u64 {
        let mut h = self.tip.height.saturating_add(1);
        while self.certs.contains_key(&h) {
            h = h.saturating_add(1);
        }
        h
    }

    fn want(&mut self, hash: Hash) {
        if hash == self.tip.hash || self.blocks.contains_key(&hash) {
            return;
        }
        if self.wanted.len() < WANTED_MAX && self.wanted.insert(hash) {
            self.out.push(Effect::RequestProposal { block: hash });
        }
    }

    fn request_blocks(&mut self) {
        let key = (self.view, self.tip.height.saturating_add(1));
        if self.last_block_request != Some(key) {
            self.last_block_request = Some(key);
            self.out.push(Effect::RequestBlocks { from_height: key.1 });
        }
    }

    /// Where a proposal of `view` attaches (Simplex): the block notarized in the latest view
    /// before `view` such that every view in between is nullified; the tip if all views
    /// down to the tip's are nullified. `None` while that is unknown or its body unchecked.
    fn parent_for(&mut self, view: u64) -> Option<Parent> {
        let mut cursor = view.checked_sub(1)?;
        loop {
            if cursor <= self.tip.view {
                return Some(Parent {
                    hash: self.tip.hash,
                    height: self.tip.height,
                    timestamp_ms: self.tip.timestamp_ms,
                });
            }
            let vs = self.views.get(&cursor)?;
            if let Some((hash, _)) = vs.notarized {
                return match self.check(hash) {
                    Check::Valid => self.blocks.get(&hash).map(|s| Parent {
                        hash,
                        height: s.block.height,
                        timestamp_ms: s.block.timestamp_ms,
                    }),
                    Check::Missing(m) => {
                        self.want(m);
                        None
                    }
                    Check::Invalid => None,
                };
            }
            if !vs.nullified {
                return None;
            }
            cursor -= 1;
        }
    }

    /// Checks `hash` and its unchecked ancestors down to the tip, oldest first: height and
    /// view and timestamp above the parent's, then the application's verdict.
    fn check(&mut self, hash: Hash) -> Check {
        let mut chain = Vec::new();
        let mut cursor = hash;
        while cursor != self.tip.hash {
            let Some(s) = self.blocks.get(&cursor) else {
                return Check::Missing(cursor);
            };
            match s.state {
                BodyState::Valid(_) => break,
                BodyState::Invalid => return Check::Invalid,
                BodyState::Unchecked => {}
            }
            if s.block.height <= self.tip.height || chain.len() > self.blocks.len() {
                return Check::Invalid;
            }
            chain.push(cursor);
            cursor = s.block.parent;
        }
        for h in chain.into_iter().rev() {
            let Some(s) = self.blocks.get(&h) else {
                return Check::Missing(h);
            };
            let parent = &s.block.parent;
            let (ph, pv, pts) = if *parent == self.tip.hash {
                (self.tip.height, self.tip.view, self.tip.timestamp_ms)
            } else {
                match self.blocks.get(parent) {
                    Some(p) => (p.block.height, p.block.view, p.block.timestamp_ms),
                    None => return Check::Missing(*parent),
                }
            };
            let b = &s.block;
            let shape_ok =
                ph.checked_add(1) == Some(b.height) && b.view > pv && b.timestamp_ms > pts;
            let state = if !shape_ok {
                BodyState::Invalid
            } else {
                match self.app.verify(b) {
                    Ok(v) => BodyState::Valid(v),
                    Err(e) => {
                        debug!(height = b.height, view = b.view, error = %e, "block does not apply");
                        BodyState::Invalid
                    }
                }
            };
            let valid = state != BodyState::Invalid;
            if let Some(s) = self.blocks.get_mut(&h) {
                s.state = state;
            }
            if !valid {
                return Check::Invalid;
            }
        }
        Check::Valid
    }

    /// The delegates whose votes count for a block at `height`: the certified schedule,
    /// unless a notarized, verified block above the tip installs a set that is in force
    /// at `height` (from its height + 2 on); then the highest such.
    fn set_at(&self, height: u64) -> Vec<PublicKey> {
        let mut best: Option<(u64, &Vec<PublicKey>)> = None;
        for (hash, s) in &self.blocks {
            let BodyState::Valid(Verdict {
                delegates: Some(set),
            }) = &s.state
            else {
                continue;
            };
            let h = s.block.height;
            let notarized = self
                .views
                .get(&s.block.view)
                .and_then(|v| v.notarized)
                .is_some_and(|(b, _)| b == *hash);
            if notarized && h.saturating_add(2) <= height && best.is_none_or(|(bh, _)| h > bh) {
                best = Some((h, set));
            }
        }
        match best {
            Some((_, set)) => set.clone(),
            None => self.schedule.at(height).to_vec(),
        }
    }

    /// Votes that justify our current view: the notarization we build on and the
    /// nullifications of the views skipped since (bounded).
    fn proof_votes(&self, view: u64) -> Vec<SignedVote> {
        let mut votes = Vec::new();
        let mut cursor = view.saturating_sub(1);
        let nullify_set = self.set_at(self.tip.height.saturating_add(1));
        let mut n = 0;
        while cursor > self.tip.view && n < FORWARD_VIEWS_MAX {
            let Some(vs) = self.views.get(&cursor) else {
                break;
            };
            // Our own votes included: a peer may have missed them as much as anyone's.
            if vs.nullified {
                votes.extend(vs.nullifies_from(&nullify_set));
            }
            if let Some((block, height)) = vs.notarized {
                votes.extend(vs.notarizes_for(block, height, &self.set_at(height)));
                break;
            }
            if !vs.nullified {
                break;
            }
            cursor -= 1;
            n += 1;
        }
        votes
    }
}
