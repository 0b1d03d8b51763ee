//! The ledger's state: what it holds after each block, built from the genesis, and
//! the read-only views the node, storage and the CLI use.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::account::Account;
use super::rules::{ProductClearing, TaskClearing};
use crate::crypto::{Hash, PublicKey};
use crate::genesis::{Association, Genesis};
use crate::record::{DelegateInfo, RecordId};

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct MemberState {
    pub(super) association: String,
    pub(super) exempt: bool,
    /// The key it signs with now (its account id is the key it was admitted with).
    pub(super) key: PublicKey,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct ProjectState {
    pub(super) association: String,
    pub(super) coordinators: Vec<PublicKey>,
    pub(super) flat_rate: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct TaskState {
    pub(super) project: String,
    pub(super) hours_mh: i64,
    pub(super) slots: u32,
    pub(super) min_weight_bp: u32,
    pub(super) max_weight_bp: u32,
    /// Reserve weight by bidder account.
    pub(super) bids: BTreeMap<PublicKey, u32>,
    /// Set at `CloseBidding`.
    pub(super) clearing: Option<TaskClearing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct ProductState {
    pub(super) project: String,
    pub(super) units: u32,
    pub(super) cost_mh: i64,
    /// Maximum by bidder account.
    pub(super) bids: BTreeMap<PublicKey, i64>,
    /// Set at `CloseBidding`.
    pub(super) clearing: Option<ProductClearing>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) enum ContributionStatus {
    Pending,
    Retracted,
    /// The newest layer: attested (or amended) hours and what they credited.
    Attested {
        hours_mh: i64,
        credited_mh: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct ContributionState {
    pub(super) task: String,
    pub(super) member: PublicKey,
    pub(super) claimed_mh: i64,
    pub(super) status: ContributionStatus,
}

/// The auctions and contributions of the current (or last closed) period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(super) struct PeriodState {
    pub(super) tasks: BTreeMap<String, TaskState>,
    pub(super) products: BTreeMap<String, ProductState>,
    pub(super) contributions: BTreeMap<RecordId, ContributionState>,
}

/// A delegate set and the first block height it certifies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(super) struct Epoch {
    pub(super) from_height: u64,
    pub(super) delegates: Vec<DelegateInfo>,
}

/// The state of the ledger after some number of blocks.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub(super) chain_id: Hash,
    /// Last applied block height (0 at genesis).
    pub(super) height: u64,
    /// The associations of the genesis, by name.
    pub(super) associations: BTreeMap<String, Association>,
    /// Every account's balance, including zero balances.
    pub(super) balances: BTreeMap<Account, i64>,
    /// Members by account id.
    pub(super) members: BTreeMap<PublicKey, MemberState>,
    /// Current signing key -> account id.
    pub(super) keys: BTreeMap<PublicKey, PublicKey>,
    pub(super) projects: BTreeMap<String, ProjectState>,
    /// Every key that coordinates some project.
    pub(super) coordinators: BTreeSet<PublicKey>,
    /// Delegate sets, oldest first; never empty.
    pub(super) epochs: Vec<Epoch>,
    pub(super) period: u64,
    pub(super) phase: Phase,
    pub(super) current: PeriodState,
    /// Every record id in the log, accepted or rejected.
    pub(super) records: BTreeSet<RecordId>,
    /// (account id, or signer key for non-members; nonce) of every accepted record.
    pub(super) nonces: BTreeSet<(PublicKey, u64)>,
    /// Hashes of quorum proposals already applied (no replay).
    pub(super) proposals: BTreeSet<Hash>,
    /// Evidence committed: (delegate, view) -> the Evidence record.
    pub(super) evidence: BTreeMap<(PublicKey, u64), RecordId>,
    /// A running digest of the log: every record id and its outcome, in order.
    pub(super) log_digest: Hash,
    /// The state root, computed once per block (status, balances and proofs read it).
    pub(super) root: Hash,
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

    pub(super) fn epoch_for(&self, height: u64) -> &Epoch {
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

    pub(super) fn delegate_info(&self, key: &PublicKey, height: u64) -> Option<&DelegateInfo> {
        self.epoch_for(height)
            .delegates
            .iter()
            .find(|d| &d.key == key)
    }

    /// Whether a record signed by `key` may appear in block `height` at all.
    pub(super) fn signer_known(&self, key: &PublicKey, height: u64) -> bool {
        self.keys.contains_key(key)
            || self.coordinators.contains(key)
            || self.delegate_info(key, height).is_some()
            || self
                .epochs
                .last()
                .is_some_and(|e| e.delegates.iter().any(|d| &d.key == key))
    }

    /// Whose nonce space a signer's records use: its account, or the key itself.
    pub(super) fn nonce_owner(&self, key: &PublicKey) -> PublicKey {
        self.account_of(key).unwrap_or(*key)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::testkit::Fixture;

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
