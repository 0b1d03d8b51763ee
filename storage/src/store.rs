//! `Store`: a node's durable state in `DIR/data`: the log, its own votes, its pending
//! submissions, and the indexes derived from the log, with the ledger replayed to the
//! tip. Opening verifies the whole log (signatures, links, certificates, state roots),
//! cuts a tail that does not verify, and rebuilds the indexes when missing or stale.
//!
//! Two ways to append a certified block:
//! - `append` checks it completely on the store's own ledger (imported, untrusted blocks);
//! - `append_applied` takes a block its caller has verified and applied already (the
//!   node's application checked signatures, proposer, certificate and state root) with
//!   what applying it produced, and only writes: no second signature check, no second
//!   apply. A node hands the store's ledger over with `take_ledger` once opened, so the
//!   node and its store do not hold two full ledgers.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

use protocol::ledger::{Account, Ledger};
use protocol::{CertifiedBlock, Genesis, Hash, RecordId, SignedVote};

use crate::db::{Db, DbOptions};
use crate::error::StoreError;
use crate::export::{data_path, read_genesis};
use crate::index::{History, Index, OpenAuction, RecordEntry, Rejected};
use crate::log::{Cut, Log, Tip, READ_BLOCKS_MAX};
use crate::replay::{Applied, ReplayError, Replayer};

/// What opening found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenReport {
    /// A damaged or unverifiable tail that was cut off (peers will send it again).
    pub cut: Option<Cut>,
    /// Whether the indexes were rebuilt from the log (all or from some height on).
    pub index_rebuilt_from: Option<u64>,
}

/// A node's storage.
#[derive(Debug)]
pub struct Store {
    /// The sled database: log, votes, pending submissions.
    db: Db,
    /// The indexes derived from the log.
    index: Index,
    /// The network's genesis.
    genesis: Genesis,
    /// The ledger replayed to the log's tip, and the checks every appended block passes;
    /// `None` once handed over (`take_ledger`) or left behind by `append_applied`.
    replayer: Option<Replayer>,
    /// The balances as last written to the index, to write only what a block changes
    /// (kept with the replayer, for `append`).
    balances: BTreeMap<String, i64>,
    /// What `open` found.
    opened: OpenReport,
    /// Set when the ledger and the log may disagree (a failed append half-way); every
    /// later write is refused until the store is reopened, which replays the log again.
    poisoned: Option<String>,
}

impl Store {
    /// Opens the node directory `dir` (`dir/genesis.toml`, `dir/data`).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let genesis = read_genesis(dir)?;
        Store::open_data(&data_path(dir), genesis, cache_bytes)
    }

    /// Opens the database at `path` for the network of `genesis`.
    pub fn open_data(path: &Path, genesis: Genesis, cache_bytes: u64) -> Result<Store, StoreError> {
        let chain_id = genesis.chain_id();
        let (mut db, cut) = Db::open(
            path,
            chain_id,
            DbOptions {
                cache_bytes,
                repair: true,
            },
        )?;
        let index = Index::open(&db)?;
        let mut opened = OpenReport {
            cut,
            index_rebuilt_from: None,
        };
        // At most three passes: one, one more after cutting an unverifiable tail, one
        // more after finding the index stale.
        for _ in 0..3 {
            match replay_into(&mut db, &index, &genesis)? {
                Pass::Done {
                    replayer,
                    balances,
                    rebuilt_from,
                } => {
                    db.flush()?;
                    if rebuilt_from.is_some() {
                        opened.index_rebuilt_from = rebuilt_from;
                    }
                    tracing::info!(height = replayer.height(), "store opened");
                    return Ok(Store {
                        db,
                        index,
                        genesis,
                        replayer: Some(*replayer),
                        balances,
                        opened,
                        poisoned: None,
                    });
                }
                Pass::Cut(e) => {
                    let removed = db.log_mut().cut_from(e.height)?;
                    tracing::warn!(height = e.height, removed, reason = %e, "log tail does not verify; cut");
                    opened.cut = Some(Cut {
                        from_height: e.height,
                        removed,
                        reason: e.to_string(),
                    });
                }
                Pass::Stale => {
                    tracing::warn!("indexes do not match the log; rebuilding");
                    index.clear()?;
                }
            }
        }
        Err(StoreError::Invalid(
            "the log and its indexes could not be brought to agree".into(),
        ))
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    pub fn chain_id(&self) -> Hash {
        self.db.log().chain_id()
    }

    /// The ledger at the log's tip, while the store holds it (not after `take_ledger`
    /// or `append_applied`).
    pub fn ledger(&self) -> Option<&Ledger> {
        self.replayer.as_ref().map(Replayer::ledger)
    }

    /// Hands the ledger at the log's tip to the caller, who keeps it in step with the
    /// log from then on and appends with `append_applied`. `None` if it was taken already.
    pub fn take_ledger(&mut self) -> Option<Ledger> {
        self.balances = BTreeMap::new();
        self.replayer.take().map(Replayer::into_ledger)
    }

    pub fn tip(&self) -> Option<Tip> {
        self.db.log().tip()
    }

    pub fn height(&self) -> u64 {
        self.db.log().height()
    }

    pub fn opened(&self) -> &OpenReport {
        &self.opened
    }

    /// Blocks `range`, at most `READ_BLOCKS_MAX` per call.
    pub fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<CertifiedBlock>, StoreError> {
        Ok(self.db.log().read(range)?)
    }

    /// The database (votes and pending submissions).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Checks a certified block completely (signatures, link, certificate against the
    /// delegates in force, state root, invariants), applies it, appends it to the log,
    /// drops its records from the pending submissions and updates the indexes, all made
    /// durable by one flush before returning. Needs the store's own ledger (refused after
    /// `take_ledger`: the holder of the ledger verifies and calls `append_applied`).
    pub fn append(&mut self, block: &CertifiedBlock) -> Result<Applied, StoreError> {
        self.check_writable()?;
        let Some(replayer) = self.replayer.as_mut() else {
            return Err(StoreError::Invalid(
                "the store's ledger was handed over: append verified blocks with append_applied"
                    .into(),
            ));
        };
        let before = replayer.height();
        let applied = match replayer.push(block) {
            Ok(a) => a,
            Err(e) => {
                if replayer.height() != before {
                    self.poisoned = Some(e.to_string());
                }
                return Err(StoreError::Rejected(e));
            }
        };
        let (changes, now) = balance_changes(&self.balances, replayer.ledger());
        self.write(block, &applied, &changes)?;
        self.balances = now;
        Ok(applied)
    }

    /// Appends a block the caller has verified and applied already, with what applying
    /// it produced: its records (verified, in block order), its receipt, and the balances
    /// it changed (`Ledger::balance_changes` from the state before to the state after).
    /// Checks only what is cheap and ties these to the block: the link to the tip, the
    /// certificate naming the block, the records being the block's, the receipt's state
    /// root being the certified one. Log, pending removal and indexes share one flush.
    ///
    /// The store stops holding a ledger of its own (it would fall behind): later blocks
    /// must come through `append_applied` too, until the store is reopened.
    pub fn append_applied(
        &mut self,
        block: &CertifiedBlock,
        applied: &Applied,
        changes: &BTreeMap<Account, Option<i64>>,
    ) -> Result<(), StoreError> {
        self.check_writable()?;
        let b = &block.block;
        let mismatch = |what: String| {
            Err(StoreError::Invalid(format!(
                "block {}: applied result does not match: {what}",
                b.height
            )))
        };
        if applied.height != b.height {
            return mismatch(format!("it is for height {}", applied.height));
        }
        if applied.receipt.state_root != b.state_root {
            return mismatch(format!(
                "state root {} is not the certified {}",
                applied.receipt.state_root, b.state_root
            ));
        }
        if applied.records.len() != b.records.len()
            || applied.receipt.outcomes.len() != b.records.len()
        {
            return mismatch(format!(
                "{} records and {} outcomes for {} records in the block",
                applied.records.len(),
                applied.receipt.outcomes.len(),
                b.records.len()
            ));
        }
        if let Some(i) =
            (0..b.records.len()).find(|&i| applied.records[i].signed() != &b.records[i])
        {
            return mismatch(format!("record #{i} differs"));
        }
        if self.replayer.take().is_some() {
            self.balances = BTreeMap::new();
        }
        let changes: BTreeMap<String, Option<i64>> =
            changes.iter().map(|(a, v)| (a.to_string(), *v)).collect();
        self.write(block, applied, &changes)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match &self.poisoned {
            Some(why) => Err(StoreError::Invalid(format!(
                "the store must be reopened: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// Log append, pending removal and index entries of one block, then one flush.
    fn write(
        &mut self,
        block: &CertifiedBlock,
        applied: &Applied,
        changes: &BTreeMap<String, Option<i64>>,
    ) -> Result<(), StoreError> {
        // A block that does not follow the tip is refused before anything is written.
        crate::log::check_link(&self.chain_id(), self.tip(), block).map_err(StoreError::from)?;
        if let Err(e) = self.db.append_unflushed(block) {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        if let Err(e) = self
            .index
            .write_blocks(std::slice::from_ref(applied), changes, Hash::ZERO)
        {
            // The log holds the block; the index is repaired on the next open.
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        if let Err(e) = self.db.flush() {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        Ok(())
    }

    pub fn record_vote(&self, vote: &SignedVote) -> Result<(), StoreError> {
        self.db.record_vote(vote)
    }

    pub fn votes(&self) -> Result<Vec<SignedVote>, StoreError> {
        self.db.votes()
    }

    pub fn add_pending(&self, id: RecordId, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.add_pending(id, bytes)
    }

    /// `add_pending` without the flush: several submissions then share one `flush`,
    /// which must return before any of them is acknowledged.
    pub fn add_pending_unflushed(&self, id: RecordId, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.add_pending_unflushed(id, bytes)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()
    }

    pub fn pending(&self) -> Result<Vec<(RecordId, Vec<u8>)>, StoreError> {
        self.db.pending()
    }

    pub fn remove_pending(&self, ids: &[RecordId]) -> Result<(), StoreError> {
        self.db.remove_pending(ids)
    }

    /// Every layer of a record, oldest first.
    pub fn history(&self, id: &RecordId) -> Result<History, StoreError> {
        self.index.history(id)
    }

    /// Where a record is in the log and what became of it.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordEntry>, StoreError> {
        self.index.record(id)
    }

    /// Every balance from the index (the same as `ledger().accounts()`).
    pub fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        self.index.balances()
    }

    pub fn open_auctions(&self) -> Result<Vec<OpenAuction>, StoreError> {
        self.index.open_auctions()
    }

    pub fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        self.index.rejected()
    }

    /// Throws the indexes away and derives them again from the log.
    pub fn rebuild_indexes(&mut self) -> Result<(), StoreError> {
        self.index.clear()?;
        match replay_into(&mut self.db, &self.index, &self.genesis)? {
            Pass::Done {
                replayer, balances, ..
            } => {
                self.db.flush()?;
                self.replayer = Some(*replayer);
                self.balances = balances;
                self.poisoned = None;
                Ok(())
            }
            Pass::Cut(e) => Err(StoreError::Rejected(e)),
            Pass::Stale => Err(StoreError::Invalid(
                "indexes stale right after clearing them".into(),
            )),
        }
    }
}

/// The balance entries to write to go from `old` to the ledger's, and the new map.
fn balance_changes(
    old: &BTreeMap<String, i64>,
    ledger: &Ledger,
) -> (BTreeMap<String, Option<i64>>, BTreeMap<String, i64>) {
    let now: BTreeMap<String, i64> = ledger
        .accounts()
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
    let mut changes = BTreeMap::new();
    for (k, v) in &now {
        if old.get(k) != Some(v) {
            changes.insert(k.clone(), Some(*v));
        }
    }
    for k in old.keys() {
        if !now.contains_key(k) {
            changes.insert(k.clone(), None);
        }
    }
    (changes, now)
}

enum Pass {
    Done {
        replayer: Box<Replayer>,
        balances: BTreeMap<String, i64>,
        rebuilt_from: Option<u64>,
    },
    /// The log does not verify from this block on.
    Cut(ReplayError),
    /// The index meta does not match the log.
    Stale,
}

/// Replays the whole log, writing index entries above what the index already holds.
fn replay_into(db: &mut Db, index: &Index, genesis: &Genesis) -> Result<Pass, StoreError> {
    let tip = db.log().height();
    let meta = match index.meta()? {
        Some(m) if m.height <= tip => Some(m),
        Some(_) => return Ok(Pass::Stale),
        None => None,
    };
    let mut replayer = Replayer::new(genesis);
    let (indexed, mut balances) = match meta {
        Some(m) => {
            if m.height == 0 && m.state_root != replayer.ledger().state_root() {
                return Ok(Pass::Stale);
            }
            (m.height, index.balances()?)
        }
        None => {
            // No meta: whatever is in the index trees is from an interrupted rebuild.
            index.clear()?;
            let (changes, now) = balance_changes(&BTreeMap::new(), replayer.ledger());
            index.write_blocks(&[], &changes, replayer.ledger().state_root())?;
            (0, now)
        }
    };
    let mut from = 1u64;
    while from <= tip {
        let to = tip.min(from.saturating_add(READ_BLOCKS_MAX - 1));
        let page = match db.log().read(from..=to) {
            Ok(p) => p,
            Err(e) => {
                return Ok(Pass::Cut(ReplayError {
                    height: from,
                    record: None,
                    reason: e.to_string(),
                }))
            }
        };
        let applied = match replayer.push_batch(&page) {
            Ok(a) => a,
            Err(e) => return Ok(Pass::Cut(e)),
        };
        if let Some(m) = meta {
            if let Some(a) = applied.iter().find(|a| a.height == m.height) {
                if a.receipt.state_root != m.state_root {
                    return Ok(Pass::Stale);
                }
            }
        }
        let fresh: Vec<Applied> = applied.into_iter().filter(|a| a.height > indexed).collect();
        if !fresh.is_empty() {
            let (changes, now) = balance_changes(&balances, replayer.ledger());
            index.write_blocks(&fresh, &changes, Hash::ZERO)?;
            balances = now;
        }
        from = to + 1;
    }
    let rebuilt_from = (tip > indexed).then_some(indexed + 1);
    Ok(Pass::Done {
        replayer: Box::new(replayer),
        balances,
        rebuilt_from,
    })
}
