//! Simplex agreement among the delegates, as a pure, deterministic, sans-io state machine.
//!
//! The [`Voter`] is driven only through [`Input`]s and answers with [`Effect`]s; it never
//! reads a clock, touches a socket or a disk, or draws randomness. The caller (the node
//! runtime, or the seeded simulation in `node/tests/it/sim.rs`) moves the bytes, keeps
//! the timers and persists our own votes. `docs/agreement.md` describes the protocol
//! message by message, with the safety and progress arguments.
//!
//! Contract for the caller:
//! - Execute the effects of one `handle` call **in order**. A [`Effect::PersistVote`] must be
//!   durable (flushed) before any later effect of the list is executed: that is what makes a
//!   crash and restart unable to produce a conflicting vote.
//! - Restart with [`Voter::new`] from every own vote persisted so far (votes at or below the
//!   last finalized block's view may be dropped), the last certified block and the delegate
//!   schedule, then send [`Input::Start`].
//! - [`Effect::Finalized`] comes in height order, each height exactly once; store the block
//!   and its certificate before telling anyone it is final.

mod view;
mod voter;

use std::collections::BTreeMap;

use protocol::{
    Block, CertifiedBlock, Hash, Keypair, PublicKey, Signature, SignedRecord, SignedVote,
};

pub use voter::{Stats, Voter};

/// Views ahead of our current view for which votes and proposals are kept (a bound on
/// memory that a peer can make us use, and on how far a lagging node can jump by votes).
pub const VIEWS_AHEAD_MAX: u64 = 64;
/// Unfinished views kept behind the current view; older ones are dropped even when no block
/// was finalized for a long time, so memory stays bounded.
pub const VIEWS_BEHIND_MAX: u64 = 512;
/// Most views whose certificates (notarization or nullification) are re-sent on a timeout.
pub const FORWARD_VIEWS_MAX: usize = 16;
/// Ticks per view timeout. Every tick of a view that has not ended re-sends what a peer
/// may have missed (our votes of the view, our finalize votes without a certificate, the
/// votes that justify the view); the last tick of each timeout also nullifies. A vote
/// whose first send was lost (gossip is best-effort) thus reaches the others within a
/// fraction of the timeout, before they give up on the view: re-sending only when the view
/// times out meant re-sending when everyone nullifies, so a view whose votes travelled
/// only by re-sends ended notarized *and* nullified everywhere, and no block could ever be
/// finalized again.
pub const TICKS_PER_TIMEOUT: u64 = 4;
/// A leader from whom we have seen no vote in this many views before its own view is
/// presumed down: we vote to skip its view as soon as we enter it, instead of waiting the
/// whole view timeout. A live delegate votes in every view, so it is never skipped this way;
/// skipping early can only cost liveness, never safety (a nullify is always allowed before
/// we finalize the view).
pub const SKIP_SILENT_LEADER_AFTER_VIEWS: u64 = 12;
/// Certificates kept for heights above the finalized tip (beyond, catch-up fetches them).
pub const CERTS_AHEAD_MAX: u64 = 256;
/// Most block bodies asked for and not yet received at one time.
pub const WANTED_MAX: usize = 64;

/// Node-local settings of the voter.
#[derive(Debug, Clone)]
pub struct Config {
    /// The network's chain id (genesis hash): every signature covers it.
    pub chain_id: Hash,
    /// Our delegate signing key.
    pub key: Keypair,
    /// How long we wait in a view for a notarized block before we vote to skip it. Our
    /// votes are re-sent every `view_timeout_ms / TICKS_PER_TIMEOUT` while a view lasts.
    pub view_timeout_ms: u64,
}

/// The last finalized (certified) block as the voter needs it: where new blocks attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
    /// The view the block was proposed in (0 for the genesis).
    pub view: u64,
    /// The view of its certificate (at least `view`; 0 for the genesis).
    pub certified_view: u64,
    pub timestamp_ms: u64,
}

impl Tip {
    /// The tip before the first block: height 0, hash = the chain id.
    pub fn genesis(chain_id: Hash) -> Tip {
        Tip {
            height: 0,
            hash: chain_id,
            view: 0,
            certified_view: 0,
            timestamp_ms: 0,
        }
    }

    /// The tip after a certified block.
    pub fn of(block: &CertifiedBlock) -> Tip {
        Tip {
            height: block.block.height,
            hash: block.block.hash(),
            view: block.block.view,
            certified_view: block.certificate.view,
            timestamp_ms: block.block.timestamp_ms,
        }
    }
}

/// The delegate set in force for each block height: `from height -> set`. The set of
/// height `h` is the entry with the largest key `<= h`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    sets: BTreeMap<u64, Vec<PublicKey>>,
}

impl Schedule {
    /// The genesis delegates, in force from height 1.
    pub fn new(genesis_delegates: Vec<PublicKey>) -> Result<Schedule, AgreementError> {
        let mut s = Schedule {
            sets: BTreeMap::new(),
        };
        s.insert(1, genesis_delegates)?;
        Ok(s)
    }

    /// A set taking effect at `from_height`.
    pub fn insert(
        &mut self,
        from_height: u64,
        delegates: Vec<PublicKey>,
    ) -> Result<(), AgreementError> {
        if delegates.is_empty() || delegates.len() > protocol::limits::DELEGATES_MAX {
            return Err(AgreementError::BadDelegateSet(delegates.len()));
        }
        let mut sorted = delegates.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != delegates.len() {
            return Err(AgreementError::BadDelegateSet(delegates.len()));
        }
        self.sets.insert(from_height, delegates);
        Ok(())
    }

    /// The delegates whose signatures count for a block at `height` (and whose rotation
    /// picks its proposer).
    pub fn at(&self, height: u64) -> &[PublicKey] {
        match self.sets.range(..=height).next_back() {
            Some((_, set)) => set,
            // Heights below the first entry use the first set (only height 0 can be
            // below it, and nothing is voted on at height 0).
            None => self.sets.values().next().map(Vec::as_slice).unwrap_or(&[]),
        }
    }

    /// Drops the sets no longer needed below `height`, keeping the one in force there.
    pub fn prune_below(&mut self, height: u64) {
        let keep = self.sets.range(..=height).next_back().map(|(k, _)| *k);
        if let Some(keep) = keep {
            self.sets = self.sets.split_off(&keep);
        }
    }
}

/// Leader of `view` among `delegates`: plain rotation, `delegates[view mod n]`.
pub fn leader(delegates: &[PublicKey], view: u64) -> Option<PublicKey> {
    protocol::vote::leader(delegates, view)
}

/// What the caller tells the voter.
#[derive(Debug, Clone)]
pub enum Input {
    /// Begin (or resume after a restart): arm the timer of the current view, propose if we
    /// lead it, re-send our votes of the current view.
    Start,
    /// A block proposal (or a block body fetched after [`Effect::RequestProposal`]) with its
    /// proposer's signature.
    Proposal { block: Block, signature: Signature },
    /// A vote gossiped by a delegate (or forwarded by anyone: votes are self-authenticating).
    Vote(SignedVote),
    /// The timer of `view` fired (a tick: the view times out on every
    /// [`TICKS_PER_TIMEOUT`]th tick, the others re-send).
    Timeout { view: u64 },
    /// A certified block fetched by catch-up, in height order after [`Effect::RequestBlocks`].
    Certified(CertifiedBlock),
    /// Nothing happened but time passed or records arrived: a leader that declined to build
    /// a block earlier (`Application::build` returned `Ok(None)`) tries again.
    Poke,
}

/// What the voter asks the caller to do, in order.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Make our own vote durable. Must be flushed before any later effect is executed.
    PersistVote(SignedVote),
    /// Gossip our own vote (already persisted).
    SendVote(SignedVote),
    /// Gossip our proposal for the view we lead.
    SendProposal { block: Block, signature: Signature },
    /// Re-send votes of others that make up a notarization or nullification, so lagging
    /// delegates can enter our view and check its proposal.
    Forward(Vec<SignedVote>),
    /// Call back with `Input::Timeout { view }` after `after_ms` (replacing any earlier timer).
    SetTimer { view: u64, after_ms: u64 },
    /// This block is final. In height order, each height exactly once.
    Finalized(CertifiedBlock),
    /// Two conflicting signed votes of one delegate: gossip them and have them committed.
    Evidence(SignedVote, SignedVote),
    /// Fetch the certified blocks from `from_height` on from peers; feed them back as
    /// `Input::Certified` in height order.
    RequestBlocks { from_height: u64 },
    /// Fetch the body of a block we saw votes for (peers answer from [`Voter::proposal`] or
    /// from their log); feed it back as `Input::Proposal`.
    RequestProposal { block: Hash },
}

/// Records and state root of a block being built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub records: Vec<SignedRecord>,
    pub state_root: Hash,
}

/// What verifying a block taught the application.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The delegate set this block installs (a certified `ChangeDelegates`); it takes effect
    /// from the second block after this one.
    pub delegates: Option<Vec<PublicKey>>,
}

/// Why the application refused to build on or accept a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AppError(pub String);

/// The state the blocks change (the ledger, or a test application), called synchronously.
///
/// The application holds the committed state at the finalized tip and speculative states
/// of verified blocks above it, keyed by block hash: Simplex lets a notarized block be
/// extended before it is final, so a parent can be any block the application verified.
pub trait Application {
    /// Takes pending records (bounded by `protocol::limits` count and bytes), applies them
    /// on the state of `parent` (the tip or a verified block) and returns them with the
    /// resulting state root, for a block at `height`. `Ok(None)` means "nothing worth a
    /// block yet": the voter asks again on its next input (see [`Input::Poke`]), so an idle
    /// network does not fill its log with empty blocks.
    fn build(
        &mut self,
        parent: &Hash,
        height: u64,
        timestamp_ms: u64,
    ) -> Result<Option<Payload>, AppError>;

    /// Checks `block` on a copy of its parent's state (the parent is the tip or a block this
    /// application verified): every record valid, the state root the one its records
    /// produce. On success keeps the resulting state under `block.hash()`.
    fn verify(&mut self, block: &Block) -> Result<Verdict, AppError>;

    /// `block` (verified earlier) is final: make its state the committed one and drop
    /// speculative states that do not descend from it.
    fn finalized(&mut self, block: &CertifiedBlock);
}

/// Why a voter could not be built from what was persisted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgreementError {
    #[error("a delegate set must hold 1 to {max} distinct keys, got {0}", max = protocol::limits::DELEGATES_MAX)]
    BadDelegateSet(usize),
    #[error("persisted vote for view {view} is signed by {found}, not by our key {expected}")]
    ForeignVote {
        view: u64,
        expected: PublicKey,
        found: PublicKey,
    },
    #[error("persisted vote for view {view} does not verify")]
    BadOwnVote { view: u64 },
    #[error("persisted votes conflict in view {view}: the store is corrupt")]
    ConflictingOwnVotes { view: u64 },
}

/// Checks a certified block offline against the delegate set of its height: proposer
/// signature, and `q` finalize signatures whose view is at least the block's view (a block
/// may be certified in a later view than the one it was proposed in, see
/// `docs/agreement.md`).
pub fn verify_certified(
    chain_id: &Hash,
    delegates: &[PublicKey],
    certified: &CertifiedBlock,
) -> Result<(), CertifiedError> {
    let block = &certified.block;
    let cert = &certified.certificate;
    if cert.view < block.view {
        return Err(CertifiedError::ViewBeforeBlock {
            block: block.view,
            certificate: cert.view,
        });
    }
    if leader(delegates, block.view) != Some(block.proposer) {
        return Err(CertifiedError::WrongProposer { view: block.view });
    }
    block
        .verify_proposer(chain_id, &certified.proposer_signature)
        .map_err(|_| CertifiedError::BadProposerSignature)?;
    cert.verify(chain_id, delegates, cert.view, block.height, block.hash())?;
    Ok(())
}

/// Why a certified block does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertifiedError {
    #[error("certificate view {certificate} precedes the block's view {block}")]
    ViewBeforeBlock { block: u64, certificate: u64 },
    #[error("the proposer is not the leader of view {view}")]
    WrongProposer { view: u64 },
    #[error("the proposer signature does not verify")]
    BadProposerSignature,
    #[error(transparent)]
    Certificate(#[from] protocol::vote::CertificateError),
}
