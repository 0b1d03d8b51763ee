//! Quorum records (a new delegate set, a key rebound for a member who lost theirs),
//! approved by enough current delegates, and evidence of a delegate voting twice.

use std::collections::BTreeSet;

use super::short;
use crate::codec;
use crate::crypto::{domain, Hash};
use crate::ledger::change::Change;
use crate::ledger::rejection::{reject, Rejection};
use crate::ledger::Ledger;
use crate::record::{Approval, DelegateInfo, QuorumProposal, RecordId};
use crate::vote::{quorum, SignedVote};

impl Ledger {
    pub(super) fn judge_quorum(
        &self,
        height: u64,
        proposal: &QuorumProposal,
        approvals: &[Approval],
    ) -> Result<Change, Rejection> {
        let h = self.check_quorum(height, proposal, approvals)?;
        match proposal {
            QuorumProposal::ChangeDelegates { delegates, .. } => {
                self.check_delegate_set(delegates)?;
                Ok(Change::Delegates {
                    proposal: h,
                    delegates: delegates.clone(),
                })
            }
            QuorumProposal::RebindKey {
                account, new_key, ..
            } => {
                if !self.members.contains_key(account) {
                    return reject(format!("{} is not a member's account id", short(account)));
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

    /// A proposed delegate set: usable keys, each once, of associations that exist.
    fn check_delegate_set(&self, delegates: &[DelegateInfo]) -> Result<(), Rejection> {
        let mut keys = BTreeSet::new();
        for d in delegates {
            if let Err(e) = d.key.verifying_key() {
                return reject(format!("delegate {} cannot be used: {e}", d.key));
            }
            if !keys.insert(d.key) {
                return reject(format!("delegate {} is listed twice", short(&d.key)));
            }
            if !self.associations.contains_key(&d.association) {
                return reject(format!("association {:?} does not exist", d.association));
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

    pub(super) fn judge_evidence(
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
}
