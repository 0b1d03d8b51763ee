//! What one view has seen: the proposal, the votes by kind and signer, and our own votes.

use std::collections::{BTreeMap, BTreeSet};

use protocol::{Hash, PublicKey, SignedVote, Vote};

/// The votes of one kind in one view: the first valid vote of each signer.
pub(crate) type Votes = BTreeMap<PublicKey, SignedVote>;

/// One view's state.
#[derive(Debug, Default)]
pub(crate) struct ViewState {
    /// Hash of the first correctly signed proposal of this view's leader: the only block we
    /// consider voting for in this view.
    pub proposal: Option<Hash>,
    /// Notarize votes, first per signer.
    pub notarizes: Votes,
    /// Nullify votes, first per signer.
    pub nullifies: Votes,
    /// Finalize votes, first per signer.
    pub finalizes: Votes,
    /// The block `q` delegates notarized here, with its height.
    pub notarized: Option<(Hash, u64)>,
    /// Whether `q` delegates nullified this view.
    pub nullified: bool,
    /// Our notarize in this view (at most one block, ever).
    pub own_notarize: Option<Hash>,
    /// Whether we nullified this view (then we never finalize in it).
    pub own_nullify: bool,
    /// Whether we finalized in this view (then we never nullify it).
    pub own_finalize: bool,
    /// Whether the finalize step of this view is settled (voted, or found unnecessary).
    pub finalize_settled: bool,
    /// Whether we proved the current proposal invalid (then we nullify at once).
    pub proposal_invalid: bool,
    /// Signers we already reported evidence for in this view (one report per signer).
    pub evidence: BTreeSet<PublicKey>,
}

impl ViewState {
    /// The stored vote of the same kind by the same signer, if any.
    pub fn slot(&mut self, vote: &Vote) -> &mut Votes {
        match vote {
            Vote::Notarize { .. } => &mut self.notarizes,
            Vote::Nullify { .. } => &mut self.nullifies,
            Vote::Finalize { .. } => &mut self.finalizes,
        }
    }

    /// A stored vote of `signer` that conflicts with `vote`, if any.
    pub fn conflicting(&self, vote: &SignedVote) -> Option<SignedVote> {
        [&self.notarizes, &self.nullifies, &self.finalizes]
            .into_iter()
            .filter_map(|m| m.get(&vote.signer))
            .find(|old| old.conflicts_with(vote))
            .copied()
    }

    /// Signers (from `delegates`) that notarized `block` at `height`, and their votes.
    pub fn notarizes_for(
        &self,
        block: Hash,
        height: u64,
        delegates: &[PublicKey],
    ) -> Vec<SignedVote> {
        votes_for(
            &self.notarizes,
            delegates,
            |v| matches!(v, Vote::Notarize { block: b, height: h, .. } if *b == block && *h == height),
        )
    }

    /// Nullify votes from `delegates`.
    pub fn nullifies_from(&self, delegates: &[PublicKey]) -> Vec<SignedVote> {
        votes_for(&self.nullifies, delegates, |_| true)
    }

    /// Finalize votes from `delegates` for `block` at `height`.
    pub fn finalizes_for(
        &self,
        block: Hash,
        height: u64,
        delegates: &[PublicKey],
    ) -> Vec<SignedVote> {
        votes_for(
            &self.finalizes,
            delegates,
            |v| matches!(v, Vote::Finalize { block: b, height: h, .. } if *b == block && *h == height),
        )
    }
}

fn votes_for(
    votes: &Votes,
    delegates: &[PublicKey],
    pick: impl Fn(&Vote) -> bool,
) -> Vec<SignedVote> {
    votes
        .values()
        .filter(|v| delegates.contains(&v.signer) && pick(&v.vote))
        .copied()
        .collect()
}
