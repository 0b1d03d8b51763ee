//! The ledger state machine: applies the records of one block at a time to the state
//! and computes the state root. Pure and deterministic: no clock, no I/O, BTreeMaps only.
//!
//! Every record is first *judged* against the state (`judge`, which never mutates and
//! returns the `Change` it would make), then *committed*. `check` is judging alone;
//! `apply` judges and commits each record of a block on a copy of the state and swaps
//! the copy in only if the block is valid as a whole, so an `Err` leaves `self` untouched.

mod account;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use account::LeafData;
pub use account::{Account, AccountParseError, BalanceProof};
pub use rules::{ProductClearing, TaskClearing, Transfer};

use crate::codec;
use crate::crypto::{domain, Hash, PublicKey};
use crate::genesis::{Association, Genesis, SocialRule};
use crate::limits::BLOCK_RECORDS_MAX;
use crate::merkle;
use crate::record::{
    Approval, DelegateInfo, QuorumProposal, Record, RecordBody, RecordId, VerifiedRecord,
};
use crate::vote::{quorum, SignedVote};

/// Most members a ledger admits (consensus bound).
pub const MEMBERS_MAX: usize = 1_000_000;
/// Most projects a ledger registers (consensus bound).
pub const PROJECTS_MAX: usize = 10_000;
/// Most tasks posted in one period.
pub const TASKS_PER_PERIOD_MAX: usize = 10_000;
/// Most products offered in one period.
pub const PRODUCTS_PER_PERIOD_MAX: usize = 10_000;
/// Most bids on one task or product.
pub const BIDS_PER_AUCTION_MAX: usize = 100_000;
/// Most contributions in one period.
pub const CONTRIBUTIONS_PER_PERIOD_MAX: usize = 1_000_000;

/// Where the pool-wide period stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Before the first `OpenPeriod`, and after each `ClosePeriod`.
    Closed,
    /// Tasks and products are posted and bid on.
    Bidding,
    /// Auctions have cleared; winners contribute and coordinators attest.
    Work,
}

impl Phase {
    /// The lowercase name used in JSON ("closed", "bidding", "work").
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Bidding => "bidding",
            Phase::Work => "work",
        }
    }
}

/// What became of one record of an applied block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Accepted,
    /// Kept in the log, changed nothing.
    Rejected {
        reason: String,
    },
}

/// The result of applying a valid block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// One outcome per record, in block order.
    pub outcomes: Vec<Outcome>,
    /// The state root after the block.
    pub state_root: Hash,
}

/// Why a block is invalid as a whole (delegates refuse to vote for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("block height {found} does not follow the ledger's height (expected {expected})")]
    WrongHeight { expected: u64, found: u64 },
    #[error("block holds {found} records, at most {max} allowed")]
    TooManyRecords { found: usize, max: usize },
    #[error("record #{index} ({id}) is already in the log")]
    AlreadyInLog { index: usize, id: RecordId },
    #[error("record #{index} ({id}) appears twice in the block")]
    DuplicateInBlock { index: usize, id: RecordId },
    #[error("record #{index} ({id}) is signed by {signer}, a key unknown to the ledger")]
    UnknownSigner {
        index: usize,
        id: RecordId,
        signer: PublicKey,
    },
}

/// Why a record breaks a rule; `Display` is one clear sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rejection {}

fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct MemberState {
    association: String,
    exempt: bool,
    /// The key it signs with now (its account id is the key it was admitted with).
    key: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct ProjectState {
    association: String,
    coordinators: Vec<PublicKey>,
    flat_rate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct TaskState {
    project: String,
    hours_mh: i64,
    slots: u32,
    min_weight_bp: u32,
    max_weight_bp: u32,
    /// Reserve weight by bidder account.
    bids: BTreeMap<PublicKey, u32>,
    /// Set at `CloseBidding`.
    clearing: Option<TaskClearing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct ProductState {
    project: String,
    units: u32,
    cost_mh: i64,
    /// Maximum by bidder account.
    bids: BTreeMap<PublicKey, i64>,
    /// Set at `CloseBidding`.
    clearing: Option<ProductClearing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
enum ContributionStatus {
    Pending,
    Retracted,
    /// The newest layer: attested (or amended) hours and what they credited.
    Attested {
        hours_mh: i64,
        credited_mh: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct ContributionState {
    task: String,
    member: PublicKey,
    claimed_mh: i64,
    status: ContributionStatus,
}

/// The auctions and contributions of the current (or last closed) period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct PeriodState {
    tasks: BTreeMap<String, TaskState>,
    products: BTreeMap<String, ProductState>,
    contributions: BTreeMap<RecordId, ContributionState>,
}

/// A delegate set and the first block height it certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Epoch {
    from_height: u64,
    delegates: Vec<DelegateInfo>,
}

/// The state of the ledger after some number of blocks.
#[derive(Clone, Debug)]
pub struct Ledger {
    chain_id: Hash,
    /// Last applied block height (0 at genesis).
    height: u64,
    /// The associations of the genesis, by name.
    associations: BTreeMap<String, Association>,
    /// Every account's balance, including zero balances.
    balances: BTreeMap<Account, i64>,
    /// Members by account id.
    members: BTreeMap<PublicKey, MemberState>,
    /// Current signing key -> account id.
    keys: BTreeMap<PublicKey, PublicKey>,
    projects: BTreeMap<String, ProjectState>,
    /// Every key that coordinates some project.
    coordinators: BTreeSet<PublicKey>,
    /// Delegate sets, oldest first; never empty.
    epochs: Vec<Epoch>,
    period: u64,
    phase: Phase,
    current: PeriodState,
    /// Every record id in the log, accepted or rejected.
    records: BTreeSet<RecordId>,
    /// (account id, or signer key for non-members; nonce) of every accepted record.
    nonces: BTreeSet<(PublicKey, u64)>,
    /// Hashes of quorum proposals already applied (no replay).
    proposals: BTreeSet<Hash>,
    /// Evidence committed: (delegate, view) -> the Evidence record.
    evidence: BTreeMap<(PublicKey, u64), RecordId>,
    /// A running digest of the log: every record id and its outcome, in order.
    log_digest: Hash,
    /// The state root, computed once per block (status, balances and proofs read it).
    root: Hash,
}

/// What an accepted record changes, computed by `judge` and made by `commit`.
enum Change {
    Admit {
        account: PublicKey,
        association: String,
        exempt: bool,
    },
    SetExempt {
        account: PublicKey,
        exempt: bool,
    },
    Register {
        name: String,
        project: ProjectState,
    },
    Open {
        period: u64,
    },
    CloseBidding {
        tasks: Vec<(String, TaskClearing)>,
        products: Vec<(String, ProductClearing)>,
        transfers: Vec<Transfer>,
    },
    Close {
        transfers: Vec<Transfer>,
    },
    PostTask {
        task: String,
        state: TaskState,
    },
    Offer {
        product: String,
        state: ProductState,
    },
    BidTask {
        task: String,
        account: PublicKey,
        weight_bp: u32,
    },
    BidProduct {
        product: String,
        account: PublicKey,
        max_mh: i64,
    },
    Contribute {
        id: RecordId,
        state: ContributionState,
    },
    Retract {
        id: RecordId,
    },
    Attest {
        id: RecordId,
        hours_mh: i64,
        credited_mh: i64,
        transfers: Vec<Transfer>,
    },
    Rotate {
        account: PublicKey,
        old_key: PublicKey,
        new_key: PublicKey,
    },
    Delegates {
        proposal: Hash,
        delegates: Vec<DelegateInfo>,
    },
    Rebind {
        proposal: Hash,
        account: PublicKey,
        new_key: PublicKey,
    },
    Evidence {
        delegate: PublicKey,
        view: u64,
        id: RecordId,
    },
}

fn short(k: &PublicKey) -> String {
    k.to_hex()[..16].to_string()
}

impl Ledger {
    /// The state at height 0. `genesis` is already validated.
    pub fn from_genesis(genesis: &Genesis) -> Ledger {
        let mut balances = BTreeMap::new();
        balances.insert(Account::Pool, 0i64);
        balances.insert(Account::Surplus, 0i64);
        let mut associations = BTreeMap::new();
        for a in &genesis.associations {
            balances.insert(Account::Social(a.name.clone()), 0);
            associations.insert(a.name.clone(), a.clone());
        }
        let mut members = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let mut pool: i64 = 0;
        for m in &genesis.members {
            members.insert(
                m.key,
                MemberState {
                    association: m.association.clone(),
                    exempt: m.exempt,
                    key: m.key,
                },
            );
            keys.insert(m.key, m.key);
            // Opening balances are booked against pool; a genesis whose openings
            // overflow i64 is refused by saturating (validation keeps them in range).
            balances.insert(Account::Member(m.key), m.opening_mh);
            pool = pool.saturating_sub(m.opening_mh);
        }
        balances.insert(Account::Pool, pool);
        let mut projects = BTreeMap::new();
        let mut coordinators = BTreeSet::new();
        for p in &genesis.projects {
            coordinators.extend(p.coordinators.iter().copied());
            projects.insert(
                p.name.clone(),
                ProjectState {
                    association: p.association.clone(),
                    coordinators: p.coordinators.clone(),
                    flat_rate: p.flat_rate,
                },
            );
        }
        let mut ledger = Ledger {
            chain_id: genesis.chain_id(),
            height: 0,
            associations,
            balances,
            members,
            keys,
            projects,
            coordinators,
            epochs: vec![Epoch {
                from_height: 1,
                delegates: genesis.delegates.clone(),
            }],
            period: 0,
            phase: Phase::Closed,
            current: PeriodState::default(),
            records: BTreeSet::new(),
            nonces: BTreeSet::new(),
            proposals: BTreeSet::new(),
            evidence: BTreeMap::new(),
            log_digest: genesis.chain_id(),
            root: Hash::ZERO,
        };
        ledger.root = ledger.compute_root();
        ledger
    }

    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// Last applied block height, 0 at genesis.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Current or last period number, 0 before the first.
    pub fn period(&self) -> u64 {
        self.period
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A balance (0 for an account the ledger does not hold).
    pub fn balance(&self, account: &Account) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Every account, including pool, surplus and every `social:*`, even at 0.
    pub fn accounts(&self) -> BTreeMap<Account, i64> {
        self.balances.clone()
    }

    /// The balances that differ between `self` and `after` (a later state): the new
    /// balance, or `None` for an account `after` no longer holds. One merge pass over both
    /// account maps, no copy of either.
    pub fn balance_changes(&self, after: &Ledger) -> BTreeMap<Account, Option<i64>> {
        let mut out = BTreeMap::new();
        let mut old = self.balances.iter().peekable();
        let mut new = after.balances.iter().peekable();
        loop {
            match (old.peek(), new.peek()) {
                (None, None) => break,
                (Some((a, _)), None) => {
                    out.insert((*a).clone(), None);
                    old.next();
                }
                (None, Some((a, b))) => {
                    out.insert((*a).clone(), Some(**b));
                    new.next();
                }
                (Some((oa, ob)), Some((na, nb))) => match oa.cmp(na) {
                    std::cmp::Ordering::Less => {
                        out.insert((*oa).clone(), None);
                        old.next();
                    }
                    std::cmp::Ordering::Greater => {
                        out.insert((*na).clone(), Some(**nb));
                        new.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if ob != nb {
                            out.insert((*na).clone(), Some(**nb));
                        }
                        old.next();
                        new.next();
                    }
                },
            }
        }
        out
    }

    /// The current key's account id.
    pub fn account_of(&self, key: &PublicKey) -> Option<PublicKey> {
        self.keys.get(key).copied()
    }

    /// The key an account signs with now.
    pub fn key_of(&self, account: &PublicKey) -> Option<PublicKey> {
        self.members.get(account).map(|m| m.key)
    }

    /// Whether the account is a member, and if so its association and exempt flag.
    pub fn member(&self, account: &PublicKey) -> Option<(&str, bool)> {
        self.members
            .get(account)
            .map(|m| (m.association.as_str(), m.exempt))
    }

    pub fn contains_record(&self, id: &RecordId) -> bool {
        self.records.contains(id)
    }

    /// The delegate keys that certify block `height`.
    pub fn delegates_for(&self, height: u64) -> Vec<PublicKey> {
        self.epoch_for(height)
            .delegates
            .iter()
            .map(|d| d.key)
            .collect()
    }

    /// Whether `key` is a delegate for the next block.
    pub fn is_delegate(&self, key: &PublicKey) -> bool {
        self.delegate_info(key, self.height.saturating_add(1))
            .is_some()
    }

    /// The clearing of a task of the current (or last closed) period, once cleared.
    pub fn task_clearing(&self, task: &str) -> Option<&TaskClearing> {
        self.current
            .tasks
            .get(task)
            .and_then(|t| t.clearing.as_ref())
    }

    /// The clearing of a product of the current (or last closed) period, and its cost.
    pub fn product_clearing(&self, product: &str) -> Option<(&ProductClearing, i64)> {
        self.current
            .products
            .get(product)
            .and_then(|p| p.clearing.as_ref().map(|c| (c, p.cost_mh)))
    }

    /// Evidence committed so far: (delegate, view) and the record that proved it.
    pub fn evidence(&self) -> &BTreeMap<(PublicKey, u64), RecordId> {
        &self.evidence
    }

    fn epoch_for(&self, height: u64) -> &Epoch {
        self.epochs
            .iter()
            .rev()
            .find(|e| e.from_height <= height)
            .unwrap_or_else(|| {
                self.epochs
                    .first()
                    .expect("the ledger always has a delegate set")
            })
    }

    fn delegate_info(&self, key: &PublicKey, height: u64) -> Option<&DelegateInfo> {
        self.epoch_for(height)
            .delegates
            .iter()
            .find(|d| &d.key == key)
    }

    /// Whether a record signed by `key` may appear in block `height` at all.
    fn signer_known(&self, key: &PublicKey, height: u64) -> bool {
        self.keys.contains_key(key)
            || self.coordinators.contains(key)
            || self.delegate_info(key, height).is_some()
            || self
                .epochs
                .last()
                .is_some_and(|e| e.delegates.iter().any(|d| &d.key == key))
    }

    /// Whose nonce space a signer's records use: its account, or the key itself.
    fn nonce_owner(&self, key: &PublicKey) -> PublicKey {
        self.account_of(key).unwrap_or(*key)
    }

    /// Judges one record against the current state without changing it.
    pub fn check(&self, rec: &VerifiedRecord) -> Result<(), Rejection> {
        let id = rec.id();
        let r = rec.record();
        let height = self.height.saturating_add(1);
        if self.records.contains(&id) {
            return reject(format!("record {id} is already in the log"));
        }
        if !matches!(r.body, RecordBody::Evidence { .. }) && !self.signer_known(&r.signer, height) {
            return reject(format!(
                "the signer {} is not a delegate, member or coordinator of this network",
                r.signer
            ));
        }
        self.judge(height, &id, r).map(|_| ())
    }

    /// Applies one block's verified records in order (see the module doc).
    pub fn apply(
        &mut self,
        height: u64,
        records: &[VerifiedRecord],
    ) -> Result<Receipt, ApplyError> {
        let items: Vec<(RecordId, &Record)> =
            records.iter().map(|r| (r.id(), r.record())).collect();
        self.apply_records(height, &items)
    }

    /// `apply` on records whose signatures the caller vouches for (simulate has no keys).
    pub(crate) fn apply_records(
        &mut self,
        height: u64,
        items: &[(RecordId, &Record)],
    ) -> Result<Receipt, ApplyError> {
        let expected = self.height.saturating_add(1);
        if height != expected {
            return Err(ApplyError::WrongHeight {
                expected,
                found: height,
            });
        }
        if items.len() > BLOCK_RECORDS_MAX {
            return Err(ApplyError::TooManyRecords {
                found: items.len(),
                max: BLOCK_RECORDS_MAX,
            });
        }
        // Fast path: when nothing in the block can fail after the first mutation, apply in
        // place (no O(state) copy). Failures are a replayed or repeated id, and a signer
        // that is unknown; a signer known before the block stays known through it unless
        // a key rotation or a quorum record (rebind, delegate change) moves keys around.
        let mut seen = BTreeSet::new();
        let mut in_place = true;
        for (index, (id, rec)) in items.iter().enumerate() {
            let moves_keys = matches!(
                rec.body,
                RecordBody::RotateKey { .. } | RecordBody::Quorum { .. }
            );
            let known = matches!(rec.body, RecordBody::Evidence { .. })
                || self.signer_known(&rec.signer, height);
            if moves_keys || !known {
                // The copy below finds the first failure exactly as it happens.
                in_place = false;
                break;
            }
            if self.records.contains(id) {
                return Err(ApplyError::AlreadyInLog { index, id: *id });
            }
            if !seen.insert(*id) {
                return Err(ApplyError::DuplicateInBlock { index, id: *id });
            }
        }
        if in_place {
            let outcomes = self
                .apply_unchecked(height, items)
                .expect("every failure of apply was ruled out before the first change");
            return Ok(self.finish_block(height, outcomes));
        }
        // Slow path: work on a copy, so an error leaves the state untouched.
        let mut next = self.clone();
        let outcomes = next.apply_unchecked(height, items).map_err(|e| match e {
            ApplyError::DuplicateInBlock { index, id } if self.records.contains(&id) => {
                ApplyError::AlreadyInLog { index, id }
            }
            other => other,
        })?;
        let receipt = next.finish_block(height, outcomes);
        *self = next;
        Ok(receipt)
    }

    /// Applies the records in order on `self`; on `Err` the state is partly changed and
    /// must be dropped (the caller holds a copy, or ruled the errors out beforehand).
    fn apply_unchecked(
        &mut self,
        height: u64,
        items: &[(RecordId, &Record)],
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mut outcomes = Vec::with_capacity(items.len());
        for (index, (id, rec)) in items.iter().enumerate() {
            if self.records.contains(id) {
                return Err(ApplyError::DuplicateInBlock { index, id: *id });
            }
            if !matches!(rec.body, RecordBody::Evidence { .. })
                && !self.signer_known(&rec.signer, height)
            {
                return Err(ApplyError::UnknownSigner {
                    index,
                    id: *id,
                    signer: rec.signer,
                });
            }
            let owner = self.nonce_owner(&rec.signer);
            let outcome = match self.judge(height, id, rec) {
                Ok(change) => {
                    self.commit(height, change);
                    self.nonces.insert((owner, rec.nonce));
                    Outcome::Accepted
                }
                Err(r) => Outcome::Rejected { reason: r.0 },
            };
            self.records.insert(*id);
            let accepted = [u8::from(outcome == Outcome::Accepted)];
            self.log_digest =
                Hash::of_parts(&[b"peerhours/log/v1", &self.log_digest.0, &id.0, &accepted]);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Ends a block: the new height and the state root, computed once and kept.
    fn finish_block(&mut self, height: u64, outcomes: Vec<Outcome>) -> Receipt {
        self.height = height;
        self.root = self.compute_root();
        Receipt {
            outcomes,
            state_root: self.root,
        }
    }

    fn in_period(&self, period: u64, phase: Phase, what: &str) -> Result<(), Rejection> {
        if self.phase != phase || period != self.period {
            return reject(format!(
                "{what} belongs to the {} phase of period {period}, but the ledger is in the {} phase of period {}",
                phase.as_str(),
                self.phase.as_str(),
                self.period
            ));
        }
        Ok(())
    }

    fn member_account(&self, signer: &PublicKey, what: &str) -> Result<PublicKey, Rejection> {
        match self.account_of(signer) {
            Some(a) => Ok(a),
            None => reject(format!(
                "only a member may {what}, and {} is not a member's current key",
                short(signer)
            )),
        }
    }

    fn coordinator_of(
        &self,
        signer: &PublicKey,
        project: &str,
    ) -> Result<&ProjectState, Rejection> {
        let Some(p) = self.projects.get(project) else {
            return reject(format!("project {project:?} is not registered"));
        };
        if !p.coordinators.contains(signer) {
            return reject(format!(
                "{} is not a coordinator of project {project:?}",
                short(signer)
            ));
        }
        Ok(p)
    }

    fn delegate_of(
        &self,
        signer: &PublicKey,
        association: &str,
        height: u64,
    ) -> Result<(), Rejection> {
        match self.delegate_info(signer, height) {
            Some(d) if d.association == association => Ok(()),
            Some(_) => reject(format!(
                "{} is a delegate, but not of association {association:?}",
                short(signer)
            )),
            None => reject(format!("{} is not a delegate", short(signer))),
        }
    }

    fn fresh_key(&self, key: &PublicKey, account: Option<&PublicKey>) -> Result<(), Rejection> {
        if let Err(e) = key.verifying_key() {
            return reject(format!("key {key} cannot be used: {e}"));
        }
        if self.keys.contains_key(key) {
            return reject(format!("key {} is already a member's key", short(key)));
        }
        if self.members.contains_key(key) && account != Some(key) {
            return reject(format!("key {} is another member's account id", short(key)));
        }
        Ok(())
    }

    /// Checks transfers against the balances they touch (overflow is a rejection).
    fn check_transfers(&self, transfers: &[Transfer]) -> Result<(), Rejection> {
        let mut scratch: BTreeMap<&Account, i64> = BTreeMap::new();
        for t in transfers {
            if t.amount_mh < 0 {
                return reject("an amount would be negative");
            }
            let from = *scratch
                .entry(&t.from)
                .or_insert_with(|| self.balance(&t.from));
            let from = from.checked_sub(t.amount_mh);
            let to = *scratch.entry(&t.to).or_insert_with(|| self.balance(&t.to));
            let to = to.checked_add(t.amount_mh);
            match (from, to) {
                (Some(f), Some(tt)) => {
                    scratch.insert(&t.from, f);
                    scratch.insert(&t.to, tt);
                }
                _ => {
                    return reject(format!(
                        "moving {} mh from {} to {} would overflow a balance",
                        t.amount_mh, t.from, t.to
                    ))
                }
            }
        }
        Ok(())
    }

    fn check_quorum(
        &self,
        height: u64,
        proposal: &QuorumProposal,
        approvals: &[Approval],
    ) -> Result<Hash, Rejection> {
        let set = self.delegates_for(height);
        let msg = codec::encode(proposal);
        let mut signed = BTreeSet::new();
        for a in approvals {
            if !set.contains(&a.delegate) {
                return reject(format!(
                    "approval by {}, who is not a current delegate",
                    short(&a.delegate)
                ));
            }
            if a.delegate
                .verify(domain::QUORUM, &self.chain_id, &msg, &a.signature)
                .is_err()
            {
                return reject(format!(
                    "the approval of delegate {} does not verify",
                    short(&a.delegate)
                ));
            }
            signed.insert(a.delegate);
        }
        let needed = quorum(set.len());
        if signed.len() < needed {
            return reject(format!(
                "the proposal has {} distinct delegate approvals, {needed} needed",
                signed.len()
            ));
        }
        let h = Hash::of_parts(&[domain::QUORUM, &msg]);
        if self.proposals.contains(&h) {
            return reject("this quorum proposal was already applied");
        }
        Ok(h)
    }

    fn contribution(&self, id: &RecordId) -> Result<&ContributionState, Rejection> {
        match self.current.contributions.get(id) {
            Some(c) => Ok(c),
            None => reject(format!("{id} is not a contribution of the current period")),
        }
    }

    fn task_weight(&self, task: &str) -> Result<u32, Rejection> {
        match self
            .current
            .tasks
            .get(task)
            .and_then(|t| t.clearing.as_ref())
        {
            Some(c) => Ok(c.weight_bp),
            None => reject(format!("task {task:?} has not cleared")),
        }
    }

    /// Judges a record at block `height`: the change it makes, or why it breaks a rule.
    fn judge(&self, height: u64, id: &RecordId, rec: &Record) -> Result<Change, Rejection> {
        let signer = &rec.signer;
        if self.nonces.contains(&(self.nonce_owner(signer), rec.nonce)) {
            return reject(format!(
                "nonce {} was already used by this signer",
                rec.nonce
            ));
        }
        match &rec.body {
            RecordBody::AdmitMember {
                member,
                association,
                exempt,
            } => {
                if !self.associations.contains_key(association) {
                    return reject(format!("association {association:?} does not exist"));
                }
                self.delegate_of(signer, association, height)?;
                if self.members.len() >= MEMBERS_MAX {
                    return reject(format!(
                        "the ledger already has the most members allowed ({MEMBERS_MAX})"
                    ));
                }
                if self.members.contains_key(member) {
                    return reject(format!("{} is already a member", short(member)));
                }
                self.fresh_key(member, None)?;
                Ok(Change::Admit {
                    account: *member,
                    association: association.clone(),
                    exempt: *exempt,
                })
            }
            RecordBody::SetExempt { account, exempt } => {
                let acc = if self.members.contains_key(account) {
                    *account
                } else {
                    self.member_account(account, "be marked exempt")?
                };
                let m = &self.members[&acc];
                self.delegate_of(signer, &m.association, height)?;
                Ok(Change::SetExempt {
                    account: acc,
                    exempt: *exempt,
                })
            }
            RecordBody::RegisterProject {
                name,
                association,
                coordinators,
                flat_rate,
            } => {
                if !self.associations.contains_key(association) {
                    return reject(format!("association {association:?} does not exist"));
                }
                self.delegate_of(signer, association, height)?;
                if self.projects.contains_key(name) {
                    return reject(format!("project {name:?} is already registered"));
                }
                if self.projects.len() >= PROJECTS_MAX {
                    return reject(format!(
                        "the ledger already has the most projects allowed ({PROJECTS_MAX})"
                    ));
                }
                let mut distinct = BTreeSet::new();
                for c in coordinators {
                    if let Err(e) = c.verifying_key() {
                        return reject(format!("coordinator {c} cannot be used: {e}"));
                    }
                    if !distinct.insert(c) {
                        return reject(format!("coordinator {} is listed twice", short(c)));
                    }
                }
                Ok(Change::Register {
                    name: name.clone(),
                    project: ProjectState {
                        association: association.clone(),
                        coordinators: coordinators.clone(),
                        flat_rate: *flat_rate,
                    },
                })
            }
            RecordBody::OpenPeriod { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return reject(format!(
                        "only a delegate may open a period, and {} is not one",
                        short(signer)
                    ));
                }
                if self.phase != Phase::Closed {
                    return reject(format!("period {} is still open", self.period));
                }
                let next = self
                    .period
                    .checked_add(1)
                    .ok_or_else(|| Rejection("no period follows".into()))?;
                if *period != next {
                    return reject(format!("the next period is {next}, not {period}"));
                }
                Ok(Change::Open { period: *period })
            }
            RecordBody::CloseBidding { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return reject(format!(
                        "only a delegate may close bidding, and {} is not one",
                        short(signer)
                    ));
                }
                self.in_period(*period, Phase::Bidding, "closing the bidding")?;
                self.judge_close_bidding()
            }
            RecordBody::ClosePeriod { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return reject(format!(
                        "only a delegate may close a period, and {} is not one",
                        short(signer)
                    ));
                }
                self.in_period(*period, Phase::Work, "closing the period")?;
                self.judge_close()
            }
            RecordBody::PostTask {
                period,
                task,
                project,
                hours_mh,
                slots,
                min_weight_bp,
                max_weight_bp,
            } => {
                self.coordinator_of(signer, project)?;
                self.in_period(*period, Phase::Bidding, "posting a task")?;
                if self.current.tasks.contains_key(task) {
                    return reject(format!(
                        "task {task:?} was already posted in period {period}"
                    ));
                }
                if self.current.tasks.len() >= TASKS_PER_PERIOD_MAX {
                    return reject(format!("period {period} already has the most tasks allowed ({TASKS_PER_PERIOD_MAX})"));
                }
                Ok(Change::PostTask {
                    task: task.clone(),
                    state: TaskState {
                        project: project.clone(),
                        hours_mh: *hours_mh,
                        slots: *slots,
                        min_weight_bp: *min_weight_bp,
                        max_weight_bp: *max_weight_bp,
                        bids: BTreeMap::new(),
                        clearing: None,
                    },
                })
            }
            RecordBody::OfferProduct {
                period,
                product,
                project,
                units,
                cost_mh,
            } => {
                let p = self.coordinator_of(signer, project)?;
                if p.flat_rate {
                    return reject(format!("project {project:?} is flat-rate: its goods are free and offer no products"));
                }
                self.in_period(*period, Phase::Bidding, "offering a product")?;
                if self.current.products.contains_key(product) {
                    return reject(format!(
                        "product {product:?} was already offered in period {period}"
                    ));
                }
                if self.current.products.len() >= PRODUCTS_PER_PERIOD_MAX {
                    return reject(format!("period {period} already has the most products allowed ({PRODUCTS_PER_PERIOD_MAX})"));
                }
                Ok(Change::Offer {
                    product: product.clone(),
                    state: ProductState {
                        project: project.clone(),
                        units: *units,
                        cost_mh: *cost_mh,
                        bids: BTreeMap::new(),
                        clearing: None,
                    },
                })
            }
            RecordBody::BidTask {
                period,
                task,
                weight_bp,
            } => {
                let account = self.member_account(signer, "bid on a task")?;
                self.in_period(*period, Phase::Bidding, "a task bid")?;
                let Some(t) = self.current.tasks.get(task) else {
                    return reject(format!("task {task:?} is not posted in period {period}"));
                };
                if t.bids.contains_key(&account) {
                    return reject(format!(
                        "a member bids once per task, and this member already bid on {task:?}"
                    ));
                }
                if t.bids.len() >= BIDS_PER_AUCTION_MAX {
                    return reject(format!(
                        "task {task:?} already has the most bids allowed ({BIDS_PER_AUCTION_MAX})"
                    ));
                }
                Ok(Change::BidTask {
                    task: task.clone(),
                    account,
                    weight_bp: *weight_bp,
                })
            }
            RecordBody::BidProduct {
                period,
                product,
                max_mh,
            } => {
                let account = self.member_account(signer, "bid on a product")?;
                self.in_period(*period, Phase::Bidding, "a product bid")?;
                let Some(p) = self.current.products.get(product) else {
                    return reject(format!(
                        "product {product:?} is not offered in period {period}"
                    ));
                };
                if *max_mh < p.cost_mh {
                    return reject(format!(
                        "a bid of {} h on {product:?} is below its cost of {} h",
                        crate::amount::format_mh(*max_mh),
                        crate::amount::format_mh(p.cost_mh)
                    ));
                }
                if p.bids.contains_key(&account) {
                    return reject(format!("a member bids once per product, and this member already bid on {product:?}"));
                }
                if p.bids.len() >= BIDS_PER_AUCTION_MAX {
                    return reject(format!("product {product:?} already has the most bids allowed ({BIDS_PER_AUCTION_MAX})"));
                }
                Ok(Change::BidProduct {
                    product: product.clone(),
                    account,
                    max_mh: *max_mh,
                })
            }
            RecordBody::Contribute {
                period,
                task,
                hours_mh,
                ..
            } => {
                let account = self.member_account(signer, "contribute")?;
                self.in_period(*period, Phase::Work, "a contribution")?;
                let Some(t) = self.current.tasks.get(task) else {
                    return reject(format!("task {task:?} is not posted in period {period}"));
                };
                let won = t
                    .clearing
                    .as_ref()
                    .is_some_and(|c| c.winners.contains(&account.0));
                if !won {
                    return reject(format!(
                        "member {} did not win task {task:?}",
                        short(&account)
                    ));
                }
                if self.current.contributions.len() >= CONTRIBUTIONS_PER_PERIOD_MAX {
                    return reject(format!(
                        "period {period} already has the most contributions allowed"
                    ));
                }
                Ok(Change::Contribute {
                    id: *id,
                    state: ContributionState {
                        task: task.clone(),
                        member: account,
                        claimed_mh: *hours_mh,
                        status: ContributionStatus::Pending,
                    },
                })
            }
            RecordBody::Retract { contribution } => {
                let account = self.member_account(signer, "retract a contribution")?;
                self.in_period(self.period, Phase::Work, "a retraction")?;
                let c = self.contribution(contribution)?;
                if c.member != account {
                    return reject("only the contributor may retract its contribution");
                }
                match c.status {
                    ContributionStatus::Pending => Ok(Change::Retract { id: *contribution }),
                    ContributionStatus::Retracted => {
                        reject("the contribution was already retracted")
                    }
                    ContributionStatus::Attested { .. } => {
                        reject("an attested contribution cannot be retracted")
                    }
                }
            }
            RecordBody::Attest {
                contribution,
                hours_mh,
            } => {
                self.in_period(self.period, Phase::Work, "an attestation")?;
                let c = self.contribution(contribution)?;
                let t = &self.current.tasks[&c.task];
                self.coordinator_of(signer, &t.project)?;
                match c.status {
                    ContributionStatus::Pending => {}
                    ContributionStatus::Retracted => {
                        return reject("the contribution was retracted")
                    }
                    ContributionStatus::Attested { .. } => {
                        return reject("the contribution is already attested: amend it instead")
                    }
                }
                let hours = hours_mh.unwrap_or(c.claimed_mh);
                let credited = rules::weighted(hours, self.task_weight(&c.task)?)
                    .map_err(|_| Rejection("the weighted hours overflow".into()))?;
                let transfers = vec![Transfer {
                    from: Account::Pool,
                    to: Account::Member(c.member),
                    amount_mh: credited,
                }];
                self.check_transfers(&transfers)?;
                Ok(Change::Attest {
                    id: *contribution,
                    hours_mh: hours,
                    credited_mh: credited,
                    transfers,
                })
            }
            RecordBody::Amend {
                contribution,
                hours_mh,
            } => {
                self.in_period(self.period, Phase::Work, "an amendment")?;
                let c = self.contribution(contribution)?;
                let t = &self.current.tasks[&c.task];
                self.coordinator_of(signer, &t.project)?;
                let ContributionStatus::Attested {
                    credited_mh: old, ..
                } = c.status
                else {
                    return reject("only an attested contribution can be amended");
                };
                let credited = rules::weighted(*hours_mh, self.task_weight(&c.task)?)
                    .map_err(|_| Rejection("the weighted hours overflow".into()))?;
                let member = Account::Member(c.member);
                let transfers = match credited.checked_sub(old) {
                    Some(d) if d >= 0 => vec![Transfer {
                        from: Account::Pool,
                        to: member,
                        amount_mh: d,
                    }],
                    Some(d) => vec![Transfer {
                        from: member,
                        to: Account::Pool,
                        amount_mh: d.checked_neg().unwrap_or(i64::MAX),
                    }],
                    None => return reject("the amended hours overflow"),
                };
                self.check_transfers(&transfers)?;
                Ok(Change::Attest {
                    id: *contribution,
                    hours_mh: *hours_mh,
                    credited_mh: credited,
                    transfers,
                })
            }
            RecordBody::RotateKey { new_key } => {
                let account = self.member_account(signer, "rotate its key")?;
                self.fresh_key(new_key, Some(&account))?;
                Ok(Change::Rotate {
                    account,
                    old_key: *signer,
                    new_key: *new_key,
                })
            }
            RecordBody::Quorum {
                proposal,
                approvals,
            } => {
                let h = self.check_quorum(height, proposal, approvals)?;
                match proposal {
                    QuorumProposal::ChangeDelegates { delegates, .. } => {
                        let mut keys = BTreeSet::new();
                        for d in delegates {
                            if let Err(e) = d.key.verifying_key() {
                                return reject(format!("delegate {} cannot be used: {e}", d.key));
                            }
                            if !keys.insert(d.key) {
                                return reject(format!(
                                    "delegate {} is listed twice",
                                    short(&d.key)
                                ));
                            }
                            if !self.associations.contains_key(&d.association) {
                                return reject(format!(
                                    "association {:?} does not exist",
                                    d.association
                                ));
                            }
                        }
                        Ok(Change::Delegates {
                            proposal: h,
                            delegates: delegates.clone(),
                        })
                    }
                    QuorumProposal::RebindKey {
                        account, new_key, ..
                    } => {
                        if !self.members.contains_key(account) {
                            return reject(format!(
                                "{} is not a member's account id",
                                short(account)
                            ));
                        }
                        self.fresh_key(new_key, Some(account))?;
                        Ok(Change::Rebind {
                            proposal: h,
                            account: *account,
                            new_key: *new_key,
                        })
                    }
                }
            }
            RecordBody::Evidence { first, second } => self.judge_evidence(id, first, second),
        }
    }

    fn judge_evidence(
        &self,
        id: &RecordId,
        first: &SignedVote,
        second: &SignedVote,
    ) -> Result<Change, Rejection> {
        if !first.conflicts_with(second) {
            return reject("the two votes do not conflict");
        }
        if first.verify(&self.chain_id).is_err() || second.verify(&self.chain_id).is_err() {
            return reject("a vote of the evidence does not verify");
        }
        let delegate = first.signer;
        if !self
            .epochs
            .iter()
            .any(|e| e.delegates.iter().any(|d| d.key == delegate))
        {
            return reject(format!("{} was never a delegate", short(&delegate)));
        }
        let view = first.vote.view();
        if self.evidence.contains_key(&(delegate, view)) {
            return reject(format!(
                "evidence against {} in view {view} is already recorded",
                short(&delegate)
            ));
        }
        Ok(Change::Evidence {
            delegate,
            view,
            id: *id,
        })
    }

    fn judge_close_bidding(&self) -> Result<Change, Rejection> {
        let period = self.period;
        let mut tasks = Vec::new();
        for (name, t) in &self.current.tasks {
            let bids: Vec<_> = t.bids.iter().map(|(a, r)| (a.0, *r)).collect();
            tasks.push((
                name.clone(),
                rules::clear_task(
                    period,
                    name,
                    t.slots,
                    t.min_weight_bp,
                    t.max_weight_bp,
                    &bids,
                ),
            ));
        }
        // Balances are taken once, here, before any product clears.
        let mut products = Vec::new();
        let mut transfers = Vec::new();
        for (name, p) in &self.current.products {
            let bids: Vec<rules::ProductBid> = p
                .bids
                .iter()
                .map(|(a, max)| rules::ProductBid {
                    account: a.0,
                    max_mh: *max,
                    balance_mh: self.balance(&Account::Member(*a)),
                    credit_limit_mh: self
                        .members
                        .get(a)
                        .and_then(|m| self.associations.get(&m.association))
                        .map_or(0, |x| x.credit_limit_mh),
                })
                .collect();
            let c = rules::clear_product(period, name, p.units, p.cost_mh, &bids);
            let extra = c
                .price_mh
                .checked_sub(p.cost_mh)
                .ok_or_else(|| Rejection("a price overflows".into()))?;
            for w in &c.winners {
                let m = Account::Member(PublicKey(*w));
                transfers.push(Transfer {
                    from: m.clone(),
                    to: Account::Pool,
                    amount_mh: p.cost_mh,
                });
                if extra > 0 {
                    transfers.push(Transfer {
                        from: m,
                        to: Account::Surplus,
                        amount_mh: extra,
                    });
                }
            }
            products.push((name.clone(), c));
        }
        self.check_transfers(&transfers)?;
        Ok(Change::CloseBidding {
            tasks,
            products,
            transfers,
        })
    }

    fn judge_close(&self) -> Result<Change, Rejection> {
        let overflow = || Rejection("the period's credited effort overflows".into());
        let mut credited: BTreeMap<PublicKey, i64> = BTreeMap::new();
        let mut flat: i64 = 0;
        for c in self.current.contributions.values() {
            if let ContributionStatus::Attested { credited_mh, .. } = c.status {
                let e = credited.entry(c.member).or_insert(0);
                *e = e.checked_add(credited_mh).ok_or_else(overflow)?;
                let project = &self.current.tasks[&c.task].project;
                if self.projects.get(project).is_some_and(|p| p.flat_rate) {
                    flat = flat.checked_add(credited_mh).ok_or_else(overflow)?;
                }
            }
        }
        let members: Vec<rules::CloseMember> = self
            .members
            .iter()
            .map(|(id, m)| rules::CloseMember {
                id: id.0,
                association: m.association.clone(),
                exempt: m.exempt,
                credited_mh: credited.get(id).copied().unwrap_or(0),
            })
            .collect();
        let rules_by_name: BTreeMap<String, SocialRule> = self
            .associations
            .iter()
            .map(|(n, a)| (n.clone(), a.social_rule.clone()))
            .collect();
        let input = rules::CloseInput {
            period: self.period,
            members: &members,
            associations: &rules_by_name,
            flat_mh: flat,
            surplus_mh: self.balance(&Account::Surplus),
        };
        let transfers = rules::close_transfers(&input).map_err(|_| overflow())?;
        self.check_transfers(&transfers)?;
        Ok(Change::Close { transfers })
    }

    fn post(&mut self, transfers: &[Transfer]) {
        for t in transfers {
            let from = self.balances.entry(t.from.clone()).or_insert(0);
            *from = from
                .checked_sub(t.amount_mh)
                .expect("a judged transfer cannot overflow");
            let to = self.balances.entry(t.to.clone()).or_insert(0);
            *to = to
                .checked_add(t.amount_mh)
                .expect("a judged transfer cannot overflow");
        }
    }

    fn commit(&mut self, height: u64, change: Change) {
        match change {
            Change::Admit {
                account,
                association,
                exempt,
            } => {
                self.members.insert(
                    account,
                    MemberState {
                        association,
                        exempt,
                        key: account,
                    },
                );
                self.keys.insert(account, account);
                self.balances.insert(Account::Member(account), 0);
            }
            Change::SetExempt { account, exempt } => {
                if let Some(m) = self.members.get_mut(&account) {
                    m.exempt = exempt;
                }
            }
            Change::Register { name, project } => {
                self.coordinators
                    .extend(project.coordinators.iter().copied());
                self.projects.insert(name, project);
            }
            Change::Open { period } => {
                self.period = period;
                self.phase = Phase::Bidding;
                self.current = PeriodState::default();
            }
            Change::CloseBidding {
                tasks,
                products,
                transfers,
            } => {
                for (name, c) in tasks {
                    if let Some(t) = self.current.tasks.get_mut(&name) {
                        t.clearing = Some(c);
                    }
                }
                for (name, c) in products {
                    if let Some(p) = self.current.products.get_mut(&name) {
                        p.clearing = Some(c);
                    }
                }
                self.post(&transfers);
                self.phase = Phase::Work;
            }
            Change::Close { transfers } => {
                self.post(&transfers);
                self.phase = Phase::Closed;
            }
            Change::PostTask { task, state } => {
                self.current.tasks.insert(task, state);
            }
            Change::Offer { product, state } => {
                self.current.products.insert(product, state);
            }
            Change::BidTask {
                task,
                account,
                weight_bp,
            } => {
                if let Some(t) = self.current.tasks.get_mut(&task) {
                    t.bids.insert(account, weight_bp);
                }
            }
            Change::BidProduct {
                product,
                account,
                max_mh,
            } => {
                if let Some(p) = self.current.products.get_mut(&product) {
                    p.bids.insert(account, max_mh);
                }
            }
            Change::Contribute { id, state } => {
                self.current.contributions.insert(id, state);
            }
            Change::Retract { id } => {
                if let Some(c) = self.current.contributions.get_mut(&id) {
                    c.status = ContributionStatus::Retracted;
                }
            }
            Change::Attest {
                id,
                hours_mh,
                credited_mh,
                transfers,
            } => {
                if let Some(c) = self.current.contributions.get_mut(&id) {
                    c.status = ContributionStatus::Attested {
                        hours_mh,
                        credited_mh,
                    };
                }
                self.post(&transfers);
            }
            Change::Rotate {
                account,
                old_key,
                new_key,
            } => {
                self.keys.remove(&old_key);
                self.keys.insert(new_key, account);
                if let Some(m) = self.members.get_mut(&account) {
                    m.key = new_key;
                }
            }
            Change::Delegates {
                proposal,
                delegates,
            } => {
                self.proposals.insert(proposal);
                let from_height = height.saturating_add(2);
                if let Some(last) = self.epochs.last_mut() {
                    if last.from_height == from_height {
                        last.delegates = delegates;
                        return;
                    }
                }
                self.epochs.push(Epoch {
                    from_height,
                    delegates,
                });
            }
            Change::Rebind {
                proposal,
                account,
                new_key,
            } => {
                self.proposals.insert(proposal);
                if let Some(m) = self.members.get_mut(&account) {
                    self.keys.remove(&m.key);
                    m.key = new_key;
                }
                self.keys.insert(new_key, account);
            }
            Change::Evidence { delegate, view, id } => {
                self.evidence.insert((delegate, view), id);
            }
        }
    }

    /// The digest of everything but the balances.
    fn meta_hash(&self) -> Hash {
        #[derive(Serialize)]
        struct Meta<'a> {
            chain_id: &'a Hash,
            height: u64,
            period: u64,
            phase: Phase,
            associations: &'a BTreeMap<String, Association>,
            members: &'a BTreeMap<PublicKey, MemberState>,
            projects: &'a BTreeMap<String, ProjectState>,
            epochs: &'a [Epoch],
            current: &'a PeriodState,
            proposals: &'a BTreeSet<Hash>,
            evidence: &'a BTreeMap<(PublicKey, u64), RecordId>,
            log_digest: &'a Hash,
        }
        let meta = Meta {
            chain_id: &self.chain_id,
            height: self.height,
            period: self.period,
            phase: self.phase,
            associations: &self.associations,
            members: &self.members,
            projects: &self.projects,
            epochs: &self.epochs,
            current: &self.current,
            proposals: &self.proposals,
            evidence: &self.evidence,
            log_digest: &self.log_digest,
        };
        Hash::of_parts(&[b"peerhours/state/meta/v1", &codec::encode(&meta)])
    }

    fn leaves(&self) -> Vec<Hash> {
        let mut leaves: Vec<Hash> = self
            .balances
            .iter()
            .map(|(a, b)| LeafData::Account(a, *b).hash())
            .collect();
        leaves.push(LeafData::State(self.meta_hash()).hash());
        leaves
    }

    /// The Merkle root over the sorted accounts and a last leaf for the rest of the state.
    pub fn state_root(&self) -> Hash {
        self.root
    }

    /// `state_root` from scratch (once per block: it hashes the whole state).
    fn compute_root(&self) -> Hash {
        merkle::root(&self.leaves())
    }

    /// A proof of `account`'s balance against `state_root()`. For an account the ledger
    /// does not hold, the proof carries balance 0 and never verifies.
    pub fn prove(&self, account: &Account) -> BalanceProof {
        let leaves = self.leaves();
        let count = leaves.len() as u64;
        match self.balances.keys().position(|a| a == account) {
            Some(i) => BalanceProof {
                account: account.clone(),
                balance_mh: self.balance(account),
                path: merkle::Path {
                    index: i as u64,
                    count,
                    siblings: merkle::path(&leaves, i).unwrap_or_default(),
                },
            },
            None => BalanceProof {
                account: account.clone(),
                balance_mh: 0,
                path: merkle::Path {
                    index: count,
                    count,
                    siblings: Vec::new(),
                },
            },
        }
    }

    /// The invariants of `economics.md` that hold after every block.
    pub fn check_invariants(&self) -> Result<(), String> {
        let sum: i128 = self.balances.values().map(|b| i128::from(*b)).sum();
        if sum != 0 {
            return Err(format!("the accounts sum to {sum} mh, not 0"));
        }
        for k in [Account::Pool, Account::Surplus] {
            if !self.balances.contains_key(&k) {
                return Err(format!("account {k} is missing"));
            }
        }
        for a in self.associations.keys() {
            let s = Account::Social(a.clone());
            match self.balances.get(&s) {
                None => return Err(format!("account {s} is missing")),
                Some(b) if *b != 0 && self.phase == Phase::Closed => {
                    return Err(format!("account {s} holds {b} mh after a close"))
                }
                _ => {}
            }
        }
        if self.phase == Phase::Closed && self.balance(&Account::Surplus) != 0 {
            return Err(format!(
                "surplus holds {} mh after a close",
                self.balance(&Account::Surplus)
            ));
        }
        for (id, m) in &self.members {
            if !self.balances.contains_key(&Account::Member(*id)) {
                return Err(format!("member {id} has no account"));
            }
            if self.keys.get(&m.key) != Some(id) {
                return Err(format!(
                    "member {id}'s key {} does not map back to it",
                    m.key
                ));
            }
        }
        if self.keys.len() != self.members.len() {
            return Err(format!(
                "{} keys for {} members",
                self.keys.len(),
                self.members.len()
            ));
        }
        for (name, t) in &self.current.tasks {
            if let Some(c) = &t.clearing {
                let distinct: BTreeSet<_> = c.winners.iter().collect();
                if c.winners.len() > t.slots as usize || distinct.len() != c.winners.len() {
                    return Err(format!(
                        "task {name:?} has {} winners for {} slots",
                        c.winners.len(),
                        t.slots
                    ));
                }
            }
        }
        for (name, p) in &self.current.products {
            if let Some(c) = &p.clearing {
                if c.winners.len() > p.units as usize {
                    return Err(format!(
                        "product {name:?} has {} winners for {} units",
                        c.winners.len(),
                        p.units
                    ));
                }
            }
        }
        if self.epochs.is_empty() {
            return Err("no delegate set".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Fixture;
    use crate::SignedRecord;

    fn signed(fx: &Fixture, key: &crate::Keypair, nonce: u64, body: RecordBody) -> VerifiedRecord {
        SignedRecord::sign(key, &fx.chain_id, nonce, body)
            .verify(&fx.chain_id)
            .expect("test records verify")
    }

    /// The root kept after each block is the root of the whole state, whichever path
    /// (in place, or on a copy) `apply` took.
    #[test]
    fn cached_root_matches_a_fresh_root_on_both_paths() {
        let fx = Fixture::new("ledger/root-cache", 4, 3);
        let mut l = Ledger::from_genesis(&fx.genesis);
        assert_eq!(l.state_root(), l.compute_root());
        let d = &fx.delegates[0];
        // In place: known signers only.
        let open = signed(&fx, d, 1, RecordBody::OpenPeriod { period: 1 });
        let post = signed(
            &fx,
            &fx.coordinator,
            1,
            RecordBody::PostTask {
                period: 1,
                task: "t".into(),
                project: "commons".into(),
                hours_mh: 1_000,
                slots: 2,
                min_weight_bp: 5_000,
                max_weight_bp: 50_000,
            },
        );
        let r = l.apply(1, &[open.clone(), post]).expect("applies");
        assert_eq!(r.state_root, l.compute_root());
        assert_eq!(l.state_root(), r.state_root);
        // On a copy: a key rotation, then a record of the new key in the same block.
        let new_key = crate::Keypair::from_label("ledger/root-cache/new");
        let rotate = signed(
            &fx,
            &fx.members[0],
            1,
            RecordBody::RotateKey {
                new_key: new_key.public(),
            },
        );
        let bid = signed(
            &fx,
            &new_key,
            2,
            RecordBody::BidTask {
                period: 1,
                task: "t".into(),
                weight_bp: 10_000,
            },
        );
        let mut copy = l.clone();
        let r2 = l.apply(2, &[rotate.clone(), bid.clone()]).expect("applies");
        assert_eq!(r2.outcomes, vec![Outcome::Accepted, Outcome::Accepted]);
        assert_eq!(l.state_root(), l.compute_root());
        // A record of the new key before the rotation: unknown signer, state untouched.
        let before = copy.state_root();
        assert!(matches!(
            copy.apply(2, &[bid, rotate]),
            Err(ApplyError::UnknownSigner { index: 0, .. })
        ));
        assert_eq!(copy.state_root(), before);
        assert_eq!(copy.height(), 1);
        // A replayed record fails before anything changes (fast path precheck).
        assert!(matches!(
            l.apply(3, &[open]),
            Err(ApplyError::AlreadyInLog { index: 0, .. })
        ));
        assert_eq!(l.height(), 2);
        assert_eq!(l.state_root(), r2.state_root);
    }

    /// The merge-pass diff equals the naive one: changed, added and removed accounts.
    #[test]
    fn balance_changes_name_exactly_what_differs() {
        let fx = Fixture::new("ledger/balance-changes", 4, 3);
        let before = Ledger::from_genesis(&fx.genesis);
        assert!(before.balance_changes(&before).is_empty());
        let mut after = before.clone();
        let accounts: Vec<Account> = before.balances.keys().cloned().collect();
        assert!(accounts.len() >= 3);
        // Change the first, drop the last, add a new one, keep the others.
        *after.balances.get_mut(&accounts[0]).expect("held") += 7;
        after.balances.remove(&accounts[accounts.len() - 1]);
        let added = Account::Member(crate::Keypair::from_label("ledger/bc/new").public());
        after.balances.insert(added.clone(), -7);
        let got = before.balance_changes(&after);
        let mut naive = BTreeMap::new();
        for (a, b) in &after.balances {
            if before.balances.get(a) != Some(b) {
                naive.insert(a.clone(), Some(*b));
            }
        }
        for a in before.balances.keys() {
            if !after.balances.contains_key(a) {
                naive.insert(a.clone(), None);
            }
        }
        assert_eq!(got, naive);
        assert_eq!(got.len(), 3);
        assert_eq!(got.get(&added), Some(&Some(-7)));
        assert_eq!(got.get(&accounts[accounts.len() - 1]), Some(&None));
        // And back again.
        let back = after.balance_changes(&before);
        assert_eq!(back.len(), 3);
        assert_eq!(back.get(&added), Some(&None));
    }
}
