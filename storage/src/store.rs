//! `Store`: a node's durable state in `DIR/data`: the log, its own votes, its pending
//! submissions, and the indexes derived from the log, with the ledger replayed to the
//! tip. Opening verifies the whole log (signatures, links, certificates, state roots),
//! cuts a tail that does not verify, and rebuilds the indexes when missing or stale.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

use protocol::ledger::Ledger;
use protocol::{CertifiedBlock, Genesis, Hash, RecordId, SignedVote};

use crate::audit::{Applied, ReplayError, Replayer};
use crate::error::StoreError;
use crate::export::{data_path, read_genesis};
use crate::index::{History, Index, OpenAuction, RecordEntry, Rejected};
use crate::log::{Cut, Log, Tip, READ_BLOCKS_MAX};
use crate::sled_log::{Db, DbOptions};

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
    /// The ledger replayed to the log's tip, and the checks every appended block passes.
    replayer: Replayer,
    /// The balances as last written to the index, to write only what a block changes.
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
        let index = Index::open(db.sled())?;
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
                    db.sled().flush()?;
                    if rebuilt_from.is_some() {
                        opened.index_rebuilt_from = rebuilt_from;
                    }
                    tracing::info!(height = replayer.height(), "store opened");
                    return Ok(Store {
                        db,
                        index,
                        genesis,
                        replayer: *replayer,
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

    /// The ledger at the log's tip.
    pub fn ledger(&self) -> &Ledger {
        self.replayer.ledger()
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
    /// delegates in force, state root, invariants), applies it, appends it to the log
    /// (flushed before returning), drops its records from the pending submissions and
    /// updates the indexes.
    pub fn append(&mut self, block: &CertifiedBlock) -> Result<Applied, StoreError> {
        if let Some(why) = &self.poisoned {
            return Err(StoreError::Invalid(format!(
                "the store must be reopened: {why}"
            )));
        }
        let before = self.replayer.height();
        let applied = match self.replayer.push(block) {
            Ok(a) => a,
            Err(e) => {
                if self.replayer.height() != before {
                    self.poisoned = Some(e.to_string());
                }
                return Err(StoreError::Rejected(e));
            }
        };
        if let Err(e) = self.db.append(block) {
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        let (changes, now) = balance_changes(&self.balances, self.replayer.ledger());
        if let Err(e) =
            self.index
                .write_blocks(std::slice::from_ref(&applied), &changes, Hash::ZERO)
        {
            // The log holds the block; the index is repaired on the next open.
            self.poisoned = Some(e.to_string());
            return Err(e);
        }
        self.db.sled().flush()?;
        self.balances = now;
        Ok(applied)
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
                self.db.sled().flush()?;
                self.replayer = *replayer;
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
