//! Quorum records (a new delegate set, a key rebound for a member who lost theirs),
//! approved by enough current delegates, and evidence of a delegate voting twice.

use std::collections::BTreeSet;

use crate::codec;
use crate::crypto::{domain, Hash};
use crate::ledger::change::Change;
use crate::ledger::{Ledger, Rejection};
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
                    return Err(Rejection::NotAnAccount { account: *account });
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
                return Err(Rejection::DelegateUnusable {
                    key: d.key,
                    reason: e,
                });
            }
            if !keys.insert(d.key) {
                return Err(Rejection::DelegateTwice { key: d.key });
            }
            if !self.associations.contains_key(&d.association) {
                return Err(Rejection::AssociationUnknown {
                    association: d.association.clone(),
                });
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
                return Err(Rejection::ApprovalByNonDelegate {
                    delegate: a.delegate,
                });
            }
            if a.delegate
                .verify(domain::QUORUM, &self.chain_id, &msg, &a.signature)
                .is_err()
            {
                return Err(Rejection::ApprovalInvalid {
                    delegate: a.delegate,
                });
            }
            signed.insert(a.delegate);
        }
        let needed = quorum(set.len());
        if signed.len() < needed {
            return Err(Rejection::TooFewApprovals {
                found: signed.len(),
                needed,
            });
        }
        let h = Hash::of_parts(&[domain::QUORUM, &msg]);
        if self.proposals.contains(&h) {
            return Err(Rejection::ProposalReplayed);
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
            return Err(Rejection::VotesDoNotConflict);
        }
        if first.verify(&self.chain_id).is_err() || second.verify(&self.chain_id).is_err() {
            return Err(Rejection::EvidenceVoteInvalid);
        }
        let delegate = first.signer;
        if !self
            .epochs
            .iter()
            .any(|e| e.delegates.iter().any(|d| d.key == delegate))
        {
            return Err(Rejection::NeverADelegate { key: delegate });
        }
        let view = first.vote.view();
        if self.evidence.contains_key(&(delegate, view)) {
            return Err(Rejection::EvidenceRecorded { delegate, view });
        }
        Ok(Change::Evidence {
            delegate,
            view,
            id: *id,
        })
    }
}
