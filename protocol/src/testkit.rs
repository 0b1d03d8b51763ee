//! Deterministic fixtures for tests, simulations, the demo and benchmarks: a genesis
//! with labelled keys, and certificates signed by those keys. Not used by the ledger.

use crate::block::{Block, CertifiedBlock};
use crate::crypto::{Hash, Keypair};
use crate::genesis::{Association, Genesis, GenesisMember, GenesisProject, Params, SocialRule};
use crate::record::DelegateInfo;
use crate::vote::{quorum, Certificate, SignedVote, Vote};

/// A small network's keys and genesis.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub genesis: Genesis,
    pub chain_id: Hash,
    pub delegates: Vec<Keypair>,
    pub members: Vec<Keypair>,
    pub coordinator: Keypair,
}

impl Fixture {
    /// `n` delegates and `m` contributing members of association `local` (average rule,
    /// 40 h credit limit), and one project `commons` coordinated by `coordinator`.
    /// Keys are derived from `label`, so two fixtures with one label are identical.
    pub fn new(label: &str, n: usize, m: usize) -> Fixture {
        let delegates: Vec<Keypair> = (0..n)
            .map(|i| Keypair::from_label(&format!("{label}/delegate/{i}")))
            .collect();
        let members: Vec<Keypair> = (0..m)
            .map(|j| Keypair::from_label(&format!("{label}/member/{j}")))
            .collect();
        let coordinator = Keypair::from_label(&format!("{label}/coordinator"));
        let genesis = Genesis {
            version: Genesis::VERSION,
            pool: format!("{label} pool"),
            associations: vec![Association {
                name: "local".into(),
                social_rule: SocialRule::Average,
                credit_limit_mh: 40_000,
            }],
            delegates: delegates
                .iter()
                .enumerate()
                .map(|(i, k)| DelegateInfo {
                    key: k.public(),
                    association: "local".into(),
                    addr: format!("/ip4/127.0.0.1/tcp/{}", 7000 + 2 * i),
                })
                .collect(),
            members: members
                .iter()
                .map(|k| GenesisMember {
                    key: k.public(),
                    association: "local".into(),
                    exempt: false,
                    opening_mh: 0,
                })
                .collect(),
            projects: vec![GenesisProject {
                name: "commons".into(),
                association: "local".into(),
                coordinators: vec![coordinator.public()],
                flat_rate: false,
            }],
            params: Params::default(),
        };
        let chain_id = genesis.chain_id();
        Fixture {
            genesis,
            chain_id,
            delegates,
            members,
            coordinator,
        }
    }

    /// Certifies `block` with the finalize votes of the first `q` delegates.
    pub fn certify(&self, block: Block) -> CertifiedBlock {
        let proposer = self
            .delegates
            .iter()
            .find(|k| k.public() == block.proposer)
            .unwrap_or(&self.delegates[0]);
        let proposer_signature = block.sign(proposer, &self.chain_id);
        let hash = block.hash();
        let q = quorum(self.delegates.len());
        let vote = Vote::Finalize {
            view: block.view,
            height: block.height,
            block: hash,
        };
        let mut signatures: Vec<_> = self.delegates[..q]
            .iter()
            .map(|k| {
                let v = SignedVote::sign(k, &self.chain_id, vote);
                (v.signer, v.signature)
            })
            .collect();
        signatures.sort_by_key(|s| s.0);
        let certificate = Certificate {
            view: block.view,
            height: block.height,
            block: hash,
            signatures,
        };
        CertifiedBlock {
            block,
            proposer_signature,
            certificate,
        }
    }
}
