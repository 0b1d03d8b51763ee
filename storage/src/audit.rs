//! The auditor's replay: from the genesis, check every signature (`verify_strict`, in
//! parallel over all cores), every hash link, every certificate against the delegate set
//! in force, re-apply every block, check every invariant, and compare the state roots
//! with the certified ones. The first failure is named: block, record, reason.

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

use protocol::ledger::{ApplyError, Ledger, Receipt};
use protocol::record::verify_all;
use protocol::vote::CertificateError;
use protocol::{CertifiedBlock, Genesis, Hash, PublicKey, RecordId, VerifiedRecord};

use crate::db::{Db, DbOptions};
use crate::error::StoreError;
use crate::export::{data_path, read_genesis, ExportError, ExportReader};
use crate::log::{Log, Tip, READ_BLOCKS_MAX};

/// Blocks whose signatures are verified together in one parallel pass.
pub const BATCH_BLOCKS: usize = 64;

/// A record named by a replay failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// Position in its block, from 0.
    pub index: usize,
    /// The record id (hex).
    pub id: String,
}

/// The first thing wrong with a log: which block, which record if one, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ReplayError {
    /// The height of the bad block (the height expected at that place when the block
    /// itself could not be read).
    pub height: u64,
    pub record: Option<BadRecord>,
    pub reason: String,
}

impl ReplayError {
    fn block(height: u64, reason: impl Into<String>) -> ReplayError {
        ReplayError {
            height,
            record: None,
            reason: reason.into(),
        }
    }

    fn record(height: u64, index: usize, id: RecordId, reason: impl Into<String>) -> ReplayError {
        ReplayError {
            height,
            record: Some(BadRecord {
                index,
                id: id.to_hex(),
            }),
            reason: reason.into(),
        }
    }

    fn describe(&self) -> String {
        match &self.record {
            None => format!("block {}: {}", self.height, self.reason),
            Some(r) => format!(
                "block {}: record {} (id {}..): {}",
                self.height,
                r.index,
                &r.id[..16.min(r.id.len())],
                self.reason
            ),
        }
    }
}

/// What a successful replay found: the JSON of `peerhours audit replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    pub ok: bool,
    pub chain_id: String,
    pub blocks: u64,
    pub records: u64,
    /// The state root after the last block (hex).
    pub state_root: String,
    /// Every account, by its JSON name (member hex, "pool", "surplus", "social:<a>").
    pub balances_mh: BTreeMap<String, i64>,
    pub sum_mh: i64,
}

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

    /// The report of everything replayed so far.
    pub fn report(&self) -> Result<ReplayReport, ReplayError> {
        let mut sum: i64 = 0;
        let mut balances_mh = BTreeMap::new();
        for (account, balance) in self.ledger.accounts() {
            sum = sum.checked_add(balance).ok_or_else(|| {
                ReplayError::block(self.height(), "the sum of all accounts overflows")
            })?;
            balances_mh.insert(account.to_string(), balance);
        }
        if sum != 0 {
            return Err(ReplayError::block(
                self.height(),
                format!("the accounts sum to {sum} mh, not 0"),
            ));
        }
        Ok(ReplayReport {
            ok: true,
            chain_id: self.chain_id.to_hex(),
            blocks: self.height(),
            records: self.records,
            state_root: self.ledger.state_root().to_hex(),
            balances_mh,
            sum_mh: sum,
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

/// Replays `blocks` (in log order) from `genesis`. `progress` is told the height reached
/// after each batch.
pub fn replay<I>(
    genesis: &Genesis,
    blocks: I,
    progress: &mut dyn FnMut(u64),
) -> Result<ReplayReport, ReplayError>
where
    I: IntoIterator<Item = Result<CertifiedBlock, ReplayError>>,
{
    let mut r = Replayer::new(genesis);
    let mut batch = Vec::with_capacity(BATCH_BLOCKS);
    let mut pending_err = None;
    let mut it = blocks.into_iter();
    loop {
        batch.clear();
        for item in it.by_ref() {
            match item {
                Ok(b) => batch.push(b),
                Err(e) => {
                    pending_err = Some(e);
                    break;
                }
            }
            if batch.len() == BATCH_BLOCKS {
                break;
            }
        }
        let done = batch.len() < BATCH_BLOCKS;
        r.push_batch(&batch)?;
        progress(r.height());
        if let Some(e) = pending_err {
            return Err(e);
        }
        if done {
            break;
        }
    }
    r.report()
}

/// Why an audit could not even start, or what it found.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Export(#[from] ExportError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Replays an export file (`audit replay --log FILE`). Damage to the file's framing is
/// named with the block at that place.
pub fn replay_file(path: &Path, progress: &mut dyn FnMut(u64)) -> Result<ReplayReport, AuditError> {
    let mut reader = ExportReader::open(path)?;
    let genesis = reader.genesis().clone();
    let blocks = std::iter::from_fn(move || match reader.next_block() {
        Ok(Some(b)) => Some(Ok(b)),
        Ok(None) => None,
        Err(ExportError::Frame { frame, reason }) => Some(Err(ReplayError::block(
            frame,
            format!("export file: {reason}"),
        ))),
        Err(ExportError::Truncated { frames }) => Some(Err(ReplayError::block(
            frames,
            "export file ends without its end frame (truncated)",
        ))),
        Err(e) => Some(Err(ReplayError::block(0, format!("export file: {e}")))),
    })
    // Nothing follows the first error.
    .scan(false, |failed, item| {
        if *failed {
            return None;
        }
        *failed = item.is_err();
        Some(item)
    });
    Ok(replay(&genesis, blocks, progress)?)
}

/// Replays a stopped node's directory (`audit replay --data-dir DIR`): its genesis and
/// its sled log, without repairing anything (damage is the finding).
pub fn replay_dir(
    dir: &Path,
    cache_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<ReplayReport, AuditError> {
    let genesis = read_genesis(dir)?;
    let db = match Db::open(
        &data_path(dir),
        genesis.chain_id(),
        DbOptions {
            cache_bytes,
            repair: false,
        },
    ) {
        Ok((db, _)) => db,
        Err(StoreError::Damaged { height, reason }) => {
            return Err(ReplayError::block(height, reason).into())
        }
        Err(e) => return Err(e.into()),
    };
    let tip = db.log().height();
    Ok(replay(
        &genesis,
        LogBlocks {
            db: &db,
            next: 1,
            tip,
            buf: Vec::new(),
        },
        progress,
    )?)
}

/// The blocks of a log, read a page at a time.
struct LogBlocks<'a> {
    db: &'a Db,
    next: u64,
    tip: u64,
    buf: Vec<CertifiedBlock>,
}

impl Iterator for LogBlocks<'_> {
    type Item = Result<CertifiedBlock, ReplayError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            if self.next > self.tip {
                return None;
            }
            let to = self.tip.min(self.next.saturating_add(READ_BLOCKS_MAX - 1));
            match self.db.log().read(self.next..=to) {
                Ok(mut page) => {
                    page.reverse();
                    self.buf = page;
                    self.next = to + 1;
                }
                Err(e) => {
                    let h = self.next;
                    self.next = u64::MAX;
                    self.tip = 0;
                    return Some(Err(ReplayError::block(h, e.to_string())));
                }
            }
        }
        self.buf.pop().map(Ok)
    }
}
