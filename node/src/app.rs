//! The ledger as the agreement's `Application`: builds proposals from the mempool,
//! verifies proposals by applying them to a copy of their parent's state, and keeps the
//! speculative states of verified blocks until one of them is final.

use std::collections::BTreeMap;

use protocol::ledger::{Account, ApplyError, Ledger, Receipt};
use protocol::limits::BLOCK_BYTES_MAX;
use protocol::record::verify_all;
use protocol::{Block, CertifiedBlock, Hash, PublicKey, RecordId, SignedRecord, VerifiedRecord};

use crate::agreement::{AppError, Application, Payload, Verdict};
use crate::mempool::Mempool;

/// Most speculative states kept (verified blocks not yet final): a bound on the memory a
/// faulty leader can make us spend.
pub const SPECULATIVE_MAX: usize = 256;
/// How often `build` retries after dropping a record that would make the block invalid.
const BUILD_RETRIES_MAX: usize = 64;

/// A verified, not yet final block and the state after it.
#[derive(Debug, Clone)]
struct Speculative {
    parent: Hash,
    height: u64,
    timestamp_ms: u64,
    ledger: Ledger,
    receipt: Receipt,
    ids: Vec<RecordId>,
    /// The block's records, verified (the store writes them without checking again).
    records: Vec<VerifiedRecord>,
}

/// What the runtime needs to store a final block without verifying or applying it again.
#[derive(Debug, Clone)]
pub struct FinalBlock {
    pub hash: Hash,
    pub height: u64,
    /// The block's records, verified, in block order.
    pub records: Vec<VerifiedRecord>,
    pub receipt: Receipt,
    /// The balances the block changed (`None`: the account is gone).
    pub balance_changes: BTreeMap<Account, Option<i64>>,
}

/// The state a proposal we built leads to, kept for `verify` of that same proposal (the
/// voter verifies its own block right after building it: no second copy and apply).
#[derive(Debug)]
struct Built {
    parent: Hash,
    height: u64,
    ids: Vec<RecordId>,
    records: Vec<VerifiedRecord>,
    ledger: Ledger,
    receipt: Receipt,
}

/// The ledger-backed application of a node.
#[derive(Debug)]
pub struct LedgerApp {
    /// The state at the last final block.
    committed: Ledger,
    /// Hash of the last final block (the chain id before the first).
    committed_hash: Hash,
    /// Proposer timestamp of the last final block (0 before the first).
    committed_ts: u64,
    /// With no records to propose, wait this long after the parent block before proposing
    /// an empty one (0: propose empty blocks at once).
    idle_block_ms: u64,
    /// Verified blocks above the final tip, by hash.
    speculative: BTreeMap<Hash, Speculative>,
    /// Records waiting for a block.
    pub mempool: Mempool,
    /// Most records a proposal holds (the genesis parameter).
    records_max: usize,
    /// The last proposal we built and the state after it, until `verify` takes it.
    built: Option<Built>,
    /// Blocks made final and not yet taken by the runtime, by height.
    finals: BTreeMap<u64, FinalBlock>,
    /// Records dropped from the mempool because their period closed, for the runtime to
    /// drop from the durable pending store too.
    lapsed: Vec<RecordId>,
}

impl LedgerApp {
    pub fn new(
        committed: Ledger,
        committed_hash: Hash,
        mempool: Mempool,
        records_max: usize,
    ) -> LedgerApp {
        LedgerApp {
            committed,
            committed_hash,
            committed_ts: 0,
            idle_block_ms: 0,
            speculative: BTreeMap::new(),
            built: None,
            mempool,
            records_max,
            finals: BTreeMap::new(),
            lapsed: Vec::new(),
        }
    }

    /// How long an idle leader waits after its parent block before proposing an empty
    /// block, and the timestamp of the final tip it starts from.
    pub fn set_idle_policy(&mut self, tip_timestamp_ms: u64, idle_block_ms: u64) {
        self.committed_ts = tip_timestamp_ms;
        self.idle_block_ms = idle_block_ms;
    }

    fn timestamp_of(&self, hash: &Hash) -> u64 {
        if *hash == self.committed_hash {
            return self.committed_ts;
        }
        self.speculative.get(hash).map_or(0, |s| s.timestamp_ms)
    }

    /// Records that lapsed since the last call.
    pub fn take_lapsed(&mut self) -> Vec<RecordId> {
        std::mem::take(&mut self.lapsed)
    }

    /// The state at the last final block.
    pub fn ledger(&self) -> &Ledger {
        &self.committed
    }

    pub fn committed_hash(&self) -> Hash {
        self.committed_hash
    }

    /// The final block `hash` at `height` as applied here, once (the runtime stores it
    /// and tells the clients waiting on its records).
    pub fn take_final(&mut self, height: u64, hash: &Hash) -> Option<FinalBlock> {
        match self.finals.remove(&height) {
            Some(f) if f.hash == *hash => Some(f),
            _ => None,
        }
    }

    /// Checks and applies a certified block fetched by catch-up directly on the committed
    /// state (used when this node is not a delegate and runs no voter).
    pub fn commit_certified(&mut self, cb: &CertifiedBlock) -> Result<Receipt, AppError> {
        if cb.block.parent != self.committed_hash {
            return Err(AppError(format!(
                "block {} does not extend our tip",
                cb.block.height
            )));
        }
        self.verify(&cb.block)?;
        self.finalized(cb);
        // The receipt stays for the runtime's `commit`, which takes it to tell the clients
        // waiting on the block's records.
        let hash = cb.block.hash();
        self.finals
            .get(&cb.block.height)
            .filter(|f| f.hash == hash)
            .map(|f| f.receipt.clone())
            .ok_or_else(|| AppError("the block's receipt went missing".into()))
    }

    fn state_of(&self, hash: &Hash) -> Option<(&Ledger, u64)> {
        if *hash == self.committed_hash {
            return Some((&self.committed, self.committed.height()));
        }
        self.speculative.get(hash).map(|s| (&s.ledger, s.height))
    }

    /// Record ids in the speculative ancestors of `hash` (not yet final, already in a block).
    fn ancestor_ids(&self, mut hash: Hash) -> std::collections::BTreeSet<RecordId> {
        let mut out = std::collections::BTreeSet::new();
        let mut steps = 0;
        while let Some(s) = self.speculative.get(&hash) {
            out.extend(s.ids.iter().copied());
            hash = s.parent;
            steps += 1;
            if steps > SPECULATIVE_MAX {
                break;
            }
        }
        out
    }

    /// The block's records, verified: those in our mempool were verified when they
    /// arrived (one signature check per record per node); the rest are checked here, in
    /// parallel. `ids` are the records' ids, in block order.
    fn verified(
        &self,
        records: &[SignedRecord],
        ids: &[RecordId],
        chain_id: &Hash,
        height: u64,
    ) -> Result<Vec<VerifiedRecord>, AppError> {
        let mut out: Vec<Option<VerifiedRecord>> = records
            .iter()
            .zip(ids)
            .map(|(r, id)| self.mempool.get(id).filter(|v| v.signed() == r).cloned())
            .collect();
        let missing: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_none()).collect();
        if !missing.is_empty() {
            let unseen: Vec<SignedRecord> = missing.iter().map(|&i| records[i].clone()).collect();
            let checked = verify_all(&unseen, chain_id).map_err(|(j, e)| {
                AppError(format!("record #{} of block {height}: {e}", missing[j]))
            })?;
            for (i, v) in missing.into_iter().zip(checked) {
                out[i] = Some(v);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    fn delegate_change(before: &Ledger, after: &Ledger, height: u64) -> Option<Vec<PublicKey>> {
        let old = before.delegates_for(height + 2);
        let new = after.delegates_for(height + 2);
        (old != new).then_some(new)
    }
}

fn index_of(e: &ApplyError) -> Option<usize> {
    match e {
        ApplyError::AlreadyInLog { index, .. }
        | ApplyError::DuplicateInBlock { index, .. }
        | ApplyError::UnknownSigner { index, .. } => Some(*index),
        ApplyError::WrongHeight { .. } | ApplyError::TooManyRecords { .. } => None,
    }
}

impl Application for LedgerApp {
    fn build(
        &mut self,
        parent: &Hash,
        height: u64,
        timestamp_ms: u64,
    ) -> Result<Option<Payload>, AppError> {
        let (base, base_height) = self
            .state_of(parent)
            .ok_or_else(|| AppError(format!("unknown parent block {parent}")))?;
        if base_height + 1 != height {
            return Err(AppError(format!(
                "parent is at height {base_height}, cannot build height {height}"
            )));
        }
        let taken = self.ancestor_ids(*parent);
        let mut records: Vec<VerifiedRecord> =
            self.mempool
                .select(self.records_max, BLOCK_BYTES_MAX / 2, |id| {
                    taken.contains(id) || base.contains_record(id)
                });
        // An idle network proposes an empty block only now and then (a heartbeat that keeps
        // views from timing out), not as fast as agreement allows.
        if records.is_empty()
            && self.idle_block_ms > 0
            && timestamp_ms < self.timestamp_of(parent).saturating_add(self.idle_block_ms)
        {
            return Ok(None);
        }
        for _ in 0..BUILD_RETRIES_MAX {
            let mut scratch = base.clone();
            match scratch.apply(height, &records) {
                Ok(receipt) => {
                    let state_root = receipt.state_root;
                    self.built = Some(Built {
                        parent: *parent,
                        height,
                        ids: records.iter().map(VerifiedRecord::id).collect(),
                        records: records.clone(),
                        ledger: scratch,
                        receipt,
                    });
                    return Ok(Some(Payload {
                        records: records
                            .into_iter()
                            .map(VerifiedRecord::into_signed)
                            .collect(),
                        state_root,
                    }));
                }
                Err(e) => match index_of(&e) {
                    // A record the state cannot take at all (a replay, an unknown signer):
                    // leave it out; it stays in the mempool until its period lapses.
                    Some(i) if i < records.len() => {
                        tracing::debug!(error = %e, "leaving a record out of the proposal");
                        records.remove(i);
                    }
                    _ => return Err(AppError(e.to_string())),
                },
            }
        }
        // Too many bad records at once: propose an empty block rather than none.
        let mut scratch = base.clone();
        let receipt = scratch
            .apply(height, &[])
            .map_err(|e| AppError(e.to_string()))?;
        Ok(Some(Payload {
            records: Vec::new(),
            state_root: receipt.state_root,
        }))
    }

    fn verify(&mut self, block: &Block) -> Result<Verdict, AppError> {
        let hash = block.hash();
        if let Some(s) = self.speculative.get(&hash) {
            let delegates = self
                .state_of(&s.parent)
                .and_then(|(before, _)| Self::delegate_change(before, &s.ledger, block.height));
            return Ok(Verdict { delegates });
        }
        if self.speculative.len() >= SPECULATIVE_MAX {
            return Err(AppError(format!(
                "{SPECULATIVE_MAX} unfinished blocks are held already"
            )));
        }
        let ids: Vec<RecordId> = block.records.iter().map(SignedRecord::id).collect();
        // Our own proposal: its state was computed when we built it.
        let built = self.built.take().filter(|b| {
            b.parent == block.parent
                && b.height == block.height
                && b.ids == ids
                && b.receipt.state_root == block.state_root
        });
        let (base, base_height) = self.state_of(&block.parent).ok_or_else(|| {
            AppError(format!(
                "block {} extends unknown parent {}",
                block.height, block.parent
            ))
        })?;
        if base_height + 1 != block.height {
            return Err(AppError(format!(
                "block height {} does not follow parent height {base_height}",
                block.height
            )));
        }
        let (next, receipt, records) = match built {
            Some(b) => (b.ledger, b.receipt, b.records),
            None => {
                let verified =
                    self.verified(&block.records, &ids, &base.chain_id(), block.height)?;
                let mut next = base.clone();
                let receipt = next
                    .apply(block.height, &verified)
                    .map_err(|e| AppError(e.to_string()))?;
                (next, receipt, verified)
            }
        };
        if receipt.state_root != block.state_root {
            return Err(AppError(format!(
                "block {} claims state root {} but its records produce {}",
                block.height, block.state_root, receipt.state_root
            )));
        }
        let delegates = Self::delegate_change(base, &next, block.height);
        self.speculative.insert(
            hash,
            Speculative {
                parent: block.parent,
                height: block.height,
                timestamp_ms: block.timestamp_ms,
                ledger: next,
                receipt,
                ids,
                records,
            },
        );
        Ok(Verdict { delegates })
    }

    fn finalized(&mut self, block: &CertifiedBlock) {
        let hash = block.block.hash();
        let Some(s) = self.speculative.remove(&hash) else {
            // The voter verifies every block before finalizing it; a miss is a bug.
            panic!(
                "block {} ({hash}) was finalized without being verified",
                block.block.height
            );
        };
        assert_eq!(
            s.parent, self.committed_hash,
            "finalized block {} does not extend the final tip",
            s.height
        );
        let balance_changes = self.committed.balance_changes(&s.ledger);
        self.committed = s.ledger;
        self.committed_hash = hash;
        self.committed_ts = s.timestamp_ms;
        self.mempool.remove(s.ids.iter());
        // Period-bound records of a closed period lapse (the next period's OpenPeriod stays).
        let live = match self.committed.phase() {
            protocol::ledger::Phase::Closed => self.committed.period() + 1,
            _ => self.committed.period(),
        };
        let lapsed = self.mempool.lapse_before(live);
        self.lapsed.extend(lapsed);
        let height = s.height;
        self.speculative.retain(|_, x| x.height > height);
        self.finals.insert(
            height,
            FinalBlock {
                hash,
                height,
                records: s.records,
                receipt: s.receipt,
                balance_changes,
            },
        );
        // Bounded: the runtime takes each one right after the Finalized effect. Every
        // block finalized in one voter call was verified, so held in `speculative`: at
        // most SPECULATIVE_MAX of them wait here at once.
        while self.finals.len() > SPECULATIVE_MAX {
            self.finals.pop_first();
        }
    }
}
