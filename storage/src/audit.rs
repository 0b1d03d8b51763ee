//! The auditor's replay: a whole log, from an export file or a stopped node's directory,
//! through the replayer (replay.rs), ending in a report of every balance. The first
//! failure is named: block, record, reason.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use protocol::{CertifiedBlock, Genesis};

use crate::db::{Db, DbOptions};
use crate::error::StoreError;
use crate::export::{data_path, read_genesis, ExportError, ExportReader};
use crate::log::{Log, READ_BLOCKS_MAX};
pub use crate::replay::{Applied, BadRecord, ReplayError, Replayer, BATCH_BLOCKS};

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

/// The report of everything `replayer` replayed so far: every balance, checked to sum
/// to zero.
pub fn report(replayer: &Replayer) -> Result<ReplayReport, ReplayError> {
    let mut sum: i64 = 0;
    let mut balances_mh = BTreeMap::new();
    for (account, balance) in replayer.ledger().accounts() {
        sum = sum.checked_add(balance).ok_or_else(|| {
            ReplayError::block(replayer.height(), "the sum of all accounts overflows")
        })?;
        balances_mh.insert(account.to_string(), balance);
    }
    if sum != 0 {
        return Err(ReplayError::block(
            replayer.height(),
            format!("the accounts sum to {sum} mh, not 0"),
        ));
    }
    Ok(ReplayReport {
        ok: true,
        chain_id: replayer.chain_id().to_hex(),
        blocks: replayer.height(),
        records: replayer.records(),
        state_root: replayer.ledger().state_root().to_hex(),
        balances_mh,
        sum_mh: sum,
    })
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
    report(&r)
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
