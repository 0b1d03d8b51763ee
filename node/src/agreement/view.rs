//! What one view has seen: the proposal, the votes by signer, and our own votes.

use std::collections::{BTreeMap, BTreeSet};

use protocol::{Hash, PublicKey, SignedVote, Vote};

/// Most notarize (or finalize) votes kept per signer and view: the first, and one that
/// conflicts with it (a Byzantine signer's other vote may be part of a quorum other nodes
/// counted, so it must count here too). A nullify has one possible content, so one.
pub(crate) const SAME_KIND_MAX: usize = 2;

/// One view's state.
#[derive(Debug, Default)]
pub(crate) struct ViewState {
    /// Hash of the first correctly signed proposal of this view's leader: the only block we
    /// consider voting for in this view.
    pub proposal: Option<Hash>,
    /// Every valid vote of each signer in this view (bounded per signer).
    pub votes: BTreeMap<PublicKey, Vec<SignedVote>>,
    /// The block `q` delegates notarized here, with its height.
    pub notarized: Option<(Hash, u64)>,
    /// Whether `q` delegates nullified this view.
    pub nullified: bool,
    /// Our notarize in this view (at most one block, ever).
    pub own_notarize: Option<Hash>,
    /// Whether we nullified this view (then we never finalize in it).
    pub own_nullify: bool,
    /// Our finalize vote in this view, if any (then we never nullify it).
    pub own_finalize: Option<SignedVote>,
    /// Whether the finalize step of this view is settled (voted, or found unnecessary).
    pub finalize_settled: bool,
    /// Whether we proved the current proposal invalid (then we nullify at once).
    pub proposal_invalid: bool,
    /// Signers we already reported evidence for in this view (one report per signer).
    pub evidence: BTreeSet<PublicKey>,
}

/// What adding a vote did.
pub(crate) enum Added {
    /// Stored; `Some(old)` if it conflicts with a vote of the same signer.
    New(Option<SignedVote>),
    /// Already known, or over the per-signer bound.
    Known,
}

impl ViewState {
    /// Whether this exact vote of this signer is known (signatures aside: ed25519 votes are
    /// deterministic, and a second signature on the same vote adds nothing).
    pub fn knows(&self, sv: &SignedVote) -> bool {
        self.votes
            .get(&sv.signer)
            .is_some_and(|vs| vs.iter().any(|v| v.vote == sv.vote))
    }

    /// Stores a verified vote. When the signer's slots for this kind are full, a vote
    /// nobody else supports is replaced by one that someone else supports, so junk votes
    /// cannot hide a signer's vote that others counted in a quorum.
    pub fn add(&mut self, sv: SignedVote) -> Added {
        let new_target = target(&sv.vote);
        let supported = |votes: &BTreeMap<PublicKey, Vec<SignedVote>>,
                         t: &Option<(Hash, u64)>,
                         who: &PublicKey| {
            votes
                .iter()
                .filter(|(signer, _)| *signer != who)
                .any(|(_, vs)| {
                    vs.iter()
                        .any(|v| same_kind(&v.vote, &sv.vote) && target(&v.vote) == *t)
                })
        };
        let new_supported = supported(&self.votes, &new_target, &sv.signer);
        let mine = self.votes.entry(sv.signer).or_default();
        if mine.iter().any(|v| v.vote == sv.vote) {
            return Added::Known;
        }
        let conflict = mine.iter().find(|old| old.conflicts_with(&sv)).copied();
        let max = if matches!(sv.vote, Vote::Nullify { .. }) {
            1
        } else {
            SAME_KIND_MAX
        };
        let kind: Vec<usize> = (0..mine.len())
            .filter(|i| same_kind(&mine[*i].vote, &sv.vote))
            .collect();
        if kind.len() < max {
            self.votes.entry(sv.signer).or_default().push(sv);
            return Added::New(conflict);
        }
        if !new_supported {
            return Added::Known;
        }
        let mine_now = self.votes.get(&sv.signer).cloned().unwrap_or_default();
        let junk = kind
            .into_iter()
            .find(|i| !supported(&self.votes, &target(&mine_now[*i].vote), &sv.signer));
        match junk {
            Some(i) => {
                let mine = self.votes.entry(sv.signer).or_default();
                mine[i] = sv;
                Added::New(conflict)
            }
            None => Added::Known,
        }
    }

    fn all(&self) -> impl Iterator<Item = &SignedVote> {
        self.votes.values().flatten()
    }

    /// Notarize votes from `delegates` for `block` at `height`, one per signer.
    pub fn notarizes_for(
        &self,
        block: Hash,
        height: u64,
        delegates: &[PublicKey],
    ) -> Vec<SignedVote> {
        self.pick(delegates, |v| matches!(v, Vote::Notarize { block: b, height: h, .. } if *b == block && *h == height))
    }

    /// Nullify votes from `delegates`, one per signer.
    pub fn nullifies_from(&self, delegates: &[PublicKey]) -> Vec<SignedVote> {
        self.pick(delegates, |v| matches!(v, Vote::Nullify { .. }))
    }

    /// Finalize votes from `delegates` for `block` at `height`, one per signer.
    pub fn finalizes_for(
        &self,
        block: Hash,
        height: u64,
        delegates: &[PublicKey],
    ) -> Vec<SignedVote> {
        self.pick(delegates, |v| matches!(v, Vote::Finalize { block: b, height: h, .. } if *b == block && *h == height))
    }

    /// The distinct `(block, height)` pairs voted on with notarize (`finalize = false`) or
    /// finalize (`finalize = true`) votes.
    pub fn targets(&self, finalize: bool) -> BTreeSet<(Hash, u64)> {
        self.all()
            .filter_map(|v| match v.vote {
                Vote::Notarize { block, height, .. } if !finalize => Some((block, height)),
                Vote::Finalize { block, height, .. } if finalize => Some((block, height)),
                _ => None,
            })
            .collect()
    }

    /// Number of votes stored (for diagnostics).
    pub fn count(&self, pick: impl Fn(&Vote) -> bool) -> usize {
        self.all().filter(|v| pick(&v.vote)).count()
    }

    fn pick(&self, delegates: &[PublicKey], pick: impl Fn(&Vote) -> bool) -> Vec<SignedVote> {
        self.votes
            .iter()
            .filter(|(signer, _)| delegates.contains(signer))
            .filter_map(|(_, vs)| vs.iter().find(|v| pick(&v.vote)).copied())
            .collect()
    }
}

/// The `(block, height)` a notarize or finalize is for.
fn target(v: &Vote) -> Option<(Hash, u64)> {
    match *v {
        Vote::Notarize { block, height, .. } | Vote::Finalize { block, height, .. } => {
            Some((block, height))
        }
        Vote::Nullify { .. } => None,
    }
}

fn same_kind(a: &Vote, b: &Vote) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}
