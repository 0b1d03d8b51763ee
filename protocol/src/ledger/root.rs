//! The state root: a Merkle tree over the sorted accounts, and a last leaf for the
//! digest of everything else; balance proofs against it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::account::{Account, BalanceProof, LeafData};
use super::state::{Epoch, MemberState, PeriodState, Phase, ProjectState};
use super::Ledger;
use crate::codec;
use crate::crypto::{Hash, PublicKey};
use crate::genesis::Association;
use crate::merkle;
use crate::record::RecordId;

impl Ledger {
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
    pub(super) fn compute_root(&self) -> Hash {
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
}
