//! The change an accepted record makes, computed by `judge` (which never mutates) and
//! made by `commit` (which cannot fail: every check was done while judging).

use super::rules::{ProductClearing, TaskClearing, Transfer};
use super::state::{
    ContributionState, ContributionStatus, Epoch, MemberState, PeriodState, Phase, ProductState,
    ProjectState, TaskState,
};
use super::{Account, Ledger};
use crate::crypto::{Hash, PublicKey};
use crate::record::{DelegateInfo, RecordId};

/// What an accepted record changes, computed by `judge` and made by `commit`.
pub(super) enum Change {
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

impl Ledger {
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

    /// Makes a judged change (see `judge`); nothing here can fail.
    pub(super) fn commit(&mut self, height: u64, change: Change) {
        match change {
            Change::Admit {
                account,
                association,
                exempt,
            } => self.commit_admit(account, association, exempt),
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
            } => self.commit_clearings(tasks, products, &transfers),
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
            other => self.commit_other(height, other),
        }
    }

    /// The changes of work, key and quorum records; `commit` makes the others.
    fn commit_other(&mut self, height: u64, change: Change) {
        match change {
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
            } => self.commit_delegates(height, proposal, delegates),
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
            _ => unreachable!("commit makes the membership, period and auction changes itself"),
        }
    }

    fn commit_admit(&mut self, account: PublicKey, association: String, exempt: bool) {
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

    fn commit_clearings(
        &mut self,
        tasks: Vec<(String, TaskClearing)>,
        products: Vec<(String, ProductClearing)>,
        transfers: &[Transfer],
    ) {
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
        self.post(transfers);
        self.phase = Phase::Work;
    }

    /// A new delegate set certifies from the block after next; a second change approved
    /// in the same block replaces the first.
    fn commit_delegates(&mut self, height: u64, proposal: Hash, delegates: Vec<DelegateInfo>) {
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
}
