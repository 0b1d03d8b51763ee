//! Applying a block: each record is judged, then its change committed; the block as a
//! whole is refused (`ApplyError`) only for what no delegate should have proposed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Ledger;
use super::Rejection;
use crate::crypto::{Hash, PublicKey};
use crate::limits::BLOCK_RECORDS_MAX;
use crate::record::{Record, RecordBody, RecordId, VerifiedRecord};

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

impl Ledger {
    /// Judges one record against the current state without changing it.
    pub fn check(&self, rec: &VerifiedRecord) -> Result<(), Rejection> {
        let id = rec.id();
        let r = rec.record();
        let height = self.height.saturating_add(1);
        if self.records.contains(&id) {
            return Err(Rejection::AlreadyInLog { id });
        }
        if !matches!(r.body, RecordBody::Evidence { .. }) && !self.signer_known(&r.signer, height) {
            return Err(Rejection::UnknownSigner { signer: r.signer });
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
                Err(r) => Outcome::Rejected {
                    reason: r.to_string(),
                },
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
}
