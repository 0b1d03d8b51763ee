//! The replayer: certified blocks checked and applied, in log order, on a ledger started
//! from the genesis. Every signature (`verify_strict`, in parallel over all cores), every
//! hash link, every certificate against the delegate set in force, every state root and
//! invariant. The first failure is named: block, record, reason. Used by the store (open,
//! `append`), by import, and by the auditor (audit.rs).

use rayon::prelude::*;

use protocol::ledger::{ApplyError, Ledger, Receipt};
use protocol::record::verify_all;
use protocol::vote::CertificateError;
use protocol::{CertifiedBlock, Genesis, Hash, PublicKey, VerifiedRecord};

pub use crate::error::{BadRecord, ReplayError};
use crate::log::Tip;

/// Blocks whose signatures are verified together in one parallel pass.
pub const BATCH_BLOCKS: usize = 64;

/// One block checked and applied.
#[derive(Debug, Clone)]
pub struct Applied {
    pub height: u64,
    /// The records, verified, in block order.
    pub records: Vec<VerifiedRecord>,
    pub receipt: Receipt,
}

/// What the parallel pass found for one block, consulted in order by the sequential pass.
struct Checked {
    records: Result<Vec<VerifiedRecord>, (usize, String)>,
    proposer: Result<(), String>,
    /// The certificate checked against the delegate set expected before the batch.
    certificate: (Vec<PublicKey>, Result<(), CertificateError>),
}

/// Replays blocks one batch at a time on a ledger started from the genesis.
#[derive(Debug, Clone)]
pub struct Replayer {
    /// The network's chain id.
    chain_id: Hash,
    /// The state after the last block replayed.
    ledger: Ledger,
    /// The last block replayed, for hash links.
    tip: Option<Tip>,
    /// Its timestamp: each block's must exceed its parent's.
    tip_timestamp_ms: u64,
    /// Records replayed so far.
    records: u64,
}

impl Replayer {
    pub fn new(genesis: &Genesis) -> Replayer {
        Replayer {
            chain_id: genesis.chain_id(),
            ledger: Ledger::from_genesis(genesis),
            tip: None,
            tip_timestamp_ms: 0,
            records: 0,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn tip(&self) -> Option<Tip> {
        self.tip
    }

    /// The ledger after the last block replayed, taken out (the replayer is done).
    pub fn into_ledger(self) -> Ledger {
        self.ledger
    }

    pub fn height(&self) -> u64 {
        self.tip.map_or(0, |t| t.height)
    }

    /// The network's chain id.
    pub fn chain_id(&self) -> Hash {
        self.chain_id
    }

    /// Records replayed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Checks and applies one block.
    pub fn push(&mut self, block: &CertifiedBlock) -> Result<Applied, ReplayError> {
        let mut out = self.push_batch(std::slice::from_ref(block))?;
        Ok(out.remove(0))
    }

    /// Checks and applies consecutive blocks: every signature of the batch verified in
    /// parallel first, then links, certificates, application and state roots in order,
    /// so the failure reported is always the first one in the log.
    ///
    /// On `Err` the blocks before the bad one stay applied. A block whose records apply
    /// but whose state root or invariants are wrong leaves the ledger past it: such a
    /// replayer must be dropped (`Store` does).
    pub fn push_batch(&mut self, blocks: &[CertifiedBlock]) -> Result<Vec<Applied>, ReplayError> {
        let chain_id = self.chain_id;
        let expected_sets: Vec<Vec<PublicKey>> = blocks
            .iter()
            .map(|b| self.ledger.delegates_for(b.block.height))
            .collect();
        let checked: Vec<Checked> = blocks
            .par_iter()
            .zip(expected_sets.into_par_iter())
            .map(|(cb, set)| {
                let b = &cb.block;
                let records =
                    verify_all(&b.records, &chain_id).map_err(|(i, e)| (i, e.to_string()));
                let proposer = b
                    .verify_proposer(&chain_id, &cb.proposer_signature)
                    .map_err(|e| e.to_string());
                let cert =
                    cb.certificate
                        .verify(&chain_id, &set, cb.certificate.view, b.height, b.hash());
                Checked {
                    records,
                    proposer,
                    certificate: (set, cert),
                }
            })
            .collect();
        let mut out = Vec::with_capacity(blocks.len());
        for (cb, c) in blocks.iter().zip(checked) {
            out.push(self.apply_checked(cb, c)?);
        }
        Ok(out)
    }

    fn apply_checked(
        &mut self,
        cb: &CertifiedBlock,
        checked: Checked,
    ) -> Result<Applied, ReplayError> {
        let b = &cb.block;
        let h = b.height;
        let expected = self
            .height()
            .checked_add(1)
            .ok_or_else(|| ReplayError::block(h, "height overflows"))?;
        if h != expected {
            let reason = if h > expected {
                format!("found where block {expected} was expected (block {expected} is missing or out of order)")
            } else {
                format!("found where block {expected} was expected (out of order or repeated)")
            };
            return Err(ReplayError::block(h, reason));
        }
        match self.tip {
            None if b.parent != self.chain_id => {
                return Err(ReplayError::block(
                    h,
                    "parent is not the chain id of the genesis",
                ));
            }
            Some(t) if b.parent != t.hash => {
                return Err(ReplayError::block(
                    h,
                    format!("parent hash does not match block {}", t.height),
                ));
            }
            _ => {}
        }
        if cb.certificate.view < b.view {
            return Err(ReplayError::block(
                h,
                format!(
                    "certificate view {} precedes the block's view {}",
                    cb.certificate.view, b.view
                ),
            ));
        }
        if self.tip.is_some() && b.timestamp_ms <= self.tip_timestamp_ms {
            return Err(ReplayError::block(
                h,
                format!("timestamp does not exceed block {}'s", h - 1),
            ));
        }
        let records = match checked.records {
            Ok(r) => r,
            Err((i, reason)) => {
                let id = b.records.get(i).map_or(Hash::ZERO, |r| r.id());
                return Err(ReplayError::record(h, i, id, reason));
            }
        };
        let delegates = self.ledger.delegates_for(h);
        if !delegates.contains(&b.proposer) {
            return Err(ReplayError::block(
                h,
                format!("proposer {} is not a delegate", b.proposer),
            ));
        }
        if protocol::vote::leader(&delegates, b.view) != Some(b.proposer) {
            return Err(ReplayError::block(
                h,
                format!(
                    "proposer {} is not the leader of view {}",
                    b.proposer, b.view
                ),
            ));
        }
        if let Err(e) = checked.proposer {
            return Err(ReplayError::block(h, format!("proposer signature: {e}")));
        }
        let (set, cert) = checked.certificate;
        let cert = if set == delegates {
            cert
        } else {
            // The delegate set changed inside the batch: check against the one in force.
            cb.certificate
                .verify(&self.chain_id, &delegates, cb.certificate.view, h, b.hash())
        };
        if let Err(e) = cert {
            return Err(ReplayError::block(h, format!("certificate: {e}")));
        }
        let receipt = self
            .ledger
            .apply(h, &records)
            .map_err(|e| apply_error(h, e))?;
        // The ledger is now past this block: record it before any later check fails.
        self.tip = Some(Tip {
            height: h,
            hash: b.hash(),
        });
        self.tip_timestamp_ms = b.timestamp_ms;
        self.records = self.records.saturating_add(records.len() as u64);
        if receipt.state_root != b.state_root {
            return Err(ReplayError::block(
                h,
                format!(
                    "state root {} after re-applying differs from the certified {}",
                    receipt.state_root, b.state_root
                ),
            ));
        }
        if let Err(e) = self.ledger.check_invariants() {
            return Err(ReplayError::block(h, format!("invariant broken: {e}")));
        }
        Ok(Applied {
            height: h,
            records,
            receipt,
        })
    }
}

fn apply_error(h: u64, e: ApplyError) -> ReplayError {
    match e {
        ApplyError::AlreadyInLog { index, id }
        | ApplyError::DuplicateInBlock { index, id }
        | ApplyError::UnknownSigner { index, id, .. } => {
            ReplayError::record(h, index, id, e.to_string())
        }
        other => ReplayError::block(h, other.to_string()),
    }
}
