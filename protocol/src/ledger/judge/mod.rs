//! Judging a record against the state: the `Change` it would make, or the `Rejection`
//! saying which rule it breaks. Never mutates. `judge` checks the nonce and hands the
//! record to its family; the checks shared by several families live here.

mod auction;
mod membership;
mod period;
mod quorum;
mod work;

use std::collections::BTreeMap;

use super::change::Change;
use super::rules::Transfer;
use super::state::{Phase, ProjectState};
use super::Rejection;
use super::{Account, Ledger};
use crate::crypto::PublicKey;
use crate::record::{Record, RecordBody, RecordId};

impl Ledger {
    /// Judges a record at block `height`: the change it makes, or why it breaks a rule.
    pub(super) fn judge(
        &self,
        height: u64,
        id: &RecordId,
        rec: &Record,
    ) -> Result<Change, Rejection> {
        let signer = &rec.signer;
        if self.nonces.contains(&(self.nonce_owner(signer), rec.nonce)) {
            return Err(Rejection::NonceUsed { nonce: rec.nonce });
        }
        match &rec.body {
            RecordBody::AdmitMember { .. }
            | RecordBody::SetExempt { .. }
            | RecordBody::RegisterProject { .. }
            | RecordBody::RotateKey { .. } => self.judge_membership(height, signer, &rec.body),
            RecordBody::OpenPeriod { .. }
            | RecordBody::CloseBidding { .. }
            | RecordBody::ClosePeriod { .. } => self.judge_period(height, signer, &rec.body),
            RecordBody::PostTask { .. }
            | RecordBody::OfferProduct { .. }
            | RecordBody::BidTask { .. }
            | RecordBody::BidProduct { .. } => self.judge_auction(signer, &rec.body),
            RecordBody::Contribute { .. }
            | RecordBody::Retract { .. }
            | RecordBody::Attest { .. }
            | RecordBody::Amend { .. } => self.judge_work(id, signer, &rec.body),
            RecordBody::Quorum {
                proposal,
                approvals,
            } => self.judge_quorum(height, proposal, approvals),
            RecordBody::Evidence { first, second } => self.judge_evidence(id, first, second),
        }
    }

    fn in_period(&self, period: u64, phase: Phase, what: &'static str) -> Result<(), Rejection> {
        if self.phase != phase || period != self.period {
            return Err(Rejection::WrongPhase {
                what,
                period,
                phase,
                ledger_period: self.period,
                ledger_phase: self.phase,
            });
        }
        Ok(())
    }

    fn member_account(
        &self,
        signer: &PublicKey,
        what: &'static str,
    ) -> Result<PublicKey, Rejection> {
        match self.account_of(signer) {
            Some(a) => Ok(a),
            None => Err(Rejection::NotAMember { what, key: *signer }),
        }
    }

    fn coordinator_of(
        &self,
        signer: &PublicKey,
        project: &str,
    ) -> Result<&ProjectState, Rejection> {
        let Some(p) = self.projects.get(project) else {
            return Err(Rejection::ProjectUnknown {
                project: project.to_string(),
            });
        };
        if !p.coordinators.contains(signer) {
            return Err(Rejection::NotACoordinator {
                key: *signer,
                project: project.to_string(),
            });
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
            Some(_) => Err(Rejection::DelegateOfOtherAssociation {
                key: *signer,
                association: association.to_string(),
            }),
            None => Err(Rejection::NotADelegate { key: *signer }),
        }
    }

    fn fresh_key(&self, key: &PublicKey, account: Option<&PublicKey>) -> Result<(), Rejection> {
        if let Err(e) = key.verifying_key() {
            return Err(Rejection::KeyUnusable {
                key: *key,
                reason: e,
            });
        }
        if self.keys.contains_key(key) {
            return Err(Rejection::KeyInUse { key: *key });
        }
        if self.members.contains_key(key) && account != Some(key) {
            return Err(Rejection::KeyIsAnotherAccount { key: *key });
        }
        Ok(())
    }

    /// Checks transfers against the balances they touch (overflow is a rejection).
    fn check_transfers(&self, transfers: &[Transfer]) -> Result<(), Rejection> {
        let mut scratch: BTreeMap<&Account, i64> = BTreeMap::new();
        for t in transfers {
            if t.amount_mh < 0 {
                return Err(Rejection::NegativeAmount);
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
                    return Err(Rejection::BalanceOverflow {
                        amount_mh: t.amount_mh,
                        from: t.from.clone(),
                        to: t.to.clone(),
                    })
                }
            }
        }
        Ok(())
    }
}
