//! Indexes derived from the log, kept in sled next to it: balances, records by id with
//! their layers, open auctions, rejected records. They are caches: `Store` rebuilds them
//! by replay whenever they are missing or do not match the log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use protocol::codec;
use protocol::ledger::Outcome;
use protocol::{Hash, PublicKey, RecordBody, RecordId};

use crate::db::Db;
use crate::error::StoreError;
use crate::layout::{
    self, auction_key, auction_of_key, balance_of_value, balance_value, id_of_key, layer_key,
    position_key, AUCTION_PRODUCT, AUCTION_TASK, INDEX_META_KEY,
};
use crate::replay::Applied;
/// Largest stored index entry (a record entry with a long rejection reason).
const ENTRY_BYTES_MAX: usize = 64 * 1024;

/// Up to which block the indexes are derived, and the state root there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMeta {
    pub height: u64,
    pub state_root: Hash,
}

/// What the index knows of one record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    pub height: u64,
    /// Position in its block.
    pub index: u32,
    pub kind: String,
    pub signer: PublicKey,
    pub accepted: bool,
    pub reason: Option<String>,
    /// The hours the record states, for kinds that state some.
    pub hours_mh: Option<i64>,
    /// The record this one is a layer of (Retract, Attest, Amend).
    pub target: Option<RecordId>,
}

/// One layer of a record's history, as `peerhours history --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub id: String,
    pub kind: String,
    pub signer: String,
    pub height: u64,
    pub status: &'static str,
    pub reason: Option<String>,
    pub hours_mh: Option<i64>,
}

/// A record and every layer over it, oldest first (the record itself first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    pub id: String,
    pub layers: Vec<Layer>,
}

/// A task or product auction posted and not yet cleared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenAuction {
    /// "task" or "product".
    pub kind: &'static str,
    pub period: u64,
    pub name: String,
    /// The PostTask / OfferProduct record (hex).
    pub record: String,
}

/// A record kept in the log as rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub id: String,
    pub height: u64,
    pub index: u32,
    pub reason: String,
}

/// The index trees (keys and values as `layout` encodes them).
#[derive(Debug, Clone)]
pub struct Index {
    /// `INDEX_META_KEY` -> `IndexMeta`.
    meta: sled::Tree,
    /// Account name (`Account` Display) -> balance (`layout::balance_value`).
    balances: sled::Tree,
    /// Record id -> `RecordEntry`.
    records: sled::Tree,
    /// `layout::layer_key` -> layer record id: layers in log order.
    layers: sled::Tree,
    /// `layout::position_key` -> record id of a rejected record.
    rejected: sled::Tree,
    /// `layout::auction_key` -> PostTask/OfferProduct record id.
    auctions: sled::Tree,
}

fn corrupt(what: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.into(),
    }
}

fn hours_of(body: &RecordBody) -> Option<i64> {
    match body {
        RecordBody::Contribute { hours_mh, .. }
        | RecordBody::Amend { hours_mh, .. }
        | RecordBody::PostTask { hours_mh, .. } => Some(*hours_mh),
        RecordBody::Attest { hours_mh, .. } => *hours_mh,
        RecordBody::OfferProduct { cost_mh, .. } => Some(*cost_mh),
        RecordBody::BidProduct { max_mh, .. } => Some(*max_mh),
        _ => None,
    }
}

fn target_of(body: &RecordBody) -> Option<RecordId> {
    match body {
        RecordBody::Retract { contribution }
        | RecordBody::Attest { contribution, .. }
        | RecordBody::Amend { contribution, .. } => Some(*contribution),
        _ => None,
    }
}

impl Index {
    /// Opens the index trees of `db`.
    pub fn open(db: &Db) -> Result<Index, StoreError> {
        Ok(Index {
            meta: db.open_tree(layout::INDEX_META_TREE)?,
            balances: db.open_tree(layout::INDEX_BALANCES_TREE)?,
            records: db.open_tree(layout::INDEX_RECORDS_TREE)?,
            layers: db.open_tree(layout::INDEX_LAYERS_TREE)?,
            rejected: db.open_tree(layout::INDEX_REJECTED_TREE)?,
            auctions: db.open_tree(layout::INDEX_AUCTIONS_TREE)?,
        })
    }

    fn trees(&self) -> [&sled::Tree; 6] {
        [
            &self.meta,
            &self.balances,
            &self.records,
            &self.layers,
            &self.rejected,
            &self.auctions,
        ]
    }

    pub fn meta(&self) -> Result<Option<IndexMeta>, StoreError> {
        match self.meta.get(INDEX_META_KEY)? {
            None => Ok(None),
            Some(v) => codec::decode(&v, 64)
                .map(Some)
                .map_err(|e| corrupt("index meta", e.to_string())),
        }
    }

    /// Empties every index (before a rebuild).
    pub fn clear(&self) -> Result<(), StoreError> {
        // Meta first: a crash mid-way leaves no meta, hence a rebuild on the next open.
        self.meta.clear()?;
        self.meta.flush()?;
        for t in self.trees() {
            t.clear()?;
        }
        Ok(())
    }

    /// Writes what consecutive applied blocks change, atomically with the new meta (the
    /// last block's height and root, or `genesis_root` at height 0 when `blocks` is
    /// empty); `balance_changes` bring the balances to the last block's. Not flushed: the
    /// caller flushes.
    pub fn write_blocks(
        &self,
        blocks: &[Applied],
        balance_changes: &BTreeMap<String, Option<i64>>,
        genesis_root: Hash,
    ) -> Result<(), StoreError> {
        let new_meta = match blocks.last() {
            Some(last) => IndexMeta {
                height: last.height,
                state_root: last.receipt.state_root,
            },
            None => IndexMeta {
                height: 0,
                state_root: genesis_root,
            },
        };
        // Auctions cleared by an accepted CloseBidding, found before the transaction
        // (sled transactions cannot scan). Auctions posted and cleared within these
        // same blocks are removed in order inside the transaction.
        let mut closing: Vec<sled::IVec> = Vec::new();
        let mut closed_periods: Vec<u64> = Vec::new();
        for applied in blocks {
            for (rec, outcome) in applied.records.iter().zip(&applied.receipt.outcomes) {
                if let (RecordBody::CloseBidding { period }, Outcome::Accepted) =
                    (&rec.record().body, outcome)
                {
                    closed_periods.push(*period);
                    for kind in [AUCTION_TASK, AUCTION_PRODUCT] {
                        let prefix = auction_key(kind, *period, "");
                        for k in self.auctions.scan_prefix(prefix).keys() {
                            closing.push(k?);
                        }
                    }
                }
            }
        }
        let meta = codec::encode(&new_meta);
        let mut entries = Vec::new();
        for applied in blocks {
            let h = applied.height;
            for (i, (rec, outcome)) in applied
                .records
                .iter()
                .zip(&applied.receipt.outcomes)
                .enumerate()
            {
                let index = u32::try_from(i)
                    .map_err(|_| StoreError::Invalid("too many records in a block".into()))?;
                let body = &rec.record().body;
                let (accepted, reason) = match outcome {
                    Outcome::Accepted => (true, None),
                    Outcome::Rejected { reason } => (false, Some(reason.clone())),
                };
                let entry = RecordEntry {
                    height: h,
                    index,
                    kind: body.kind().to_string(),
                    signer: rec.record().signer,
                    accepted,
                    reason,
                    hours_mh: hours_of(body),
                    target: target_of(body),
                };
                let auction = match (body, accepted) {
                    (RecordBody::PostTask { period, task, .. }, true) => {
                        Some(auction_key(AUCTION_TASK, *period, task))
                    }
                    (
                        RecordBody::OfferProduct {
                            period, product, ..
                        },
                        true,
                    ) => Some(auction_key(AUCTION_PRODUCT, *period, product)),
                    _ => None,
                };
                // An auction posted in these blocks and cleared in them too stays closed.
                let auction = auction.filter(|_| {
                    let period = match body {
                        RecordBody::PostTask { period, .. }
                        | RecordBody::OfferProduct { period, .. } => *period,
                        _ => 0,
                    };
                    !closed_periods.contains(&period)
                });
                entries.push((rec.id(), codec::encode(&entry), entry, auction));
            }
        }
        let trees = [
            self.meta.clone(),
            self.balances.clone(),
            self.records.clone(),
            self.layers.clone(),
            self.rejected.clone(),
            self.auctions.clone(),
        ];
        let result: Result<(), TransactionError<()>> = trees.as_slice().transaction(|t| {
            let (meta_t, bal_t, rec_t, lay_t, rej_t, auc_t) =
                (&t[0], &t[1], &t[2], &t[3], &t[4], &t[5]);
            for (id, bytes, entry, auction) in &entries {
                rec_t.insert(&id.0, bytes.as_slice())?;
                let pos = position_key(entry.height, entry.index);
                if let Some(target) = &entry.target {
                    lay_t.insert(layer_key(target, entry.height, entry.index), &id.0)?;
                }
                if !entry.accepted {
                    rej_t.insert(&pos, &id.0)?;
                }
                if let Some(k) = auction {
                    auc_t.insert(k.as_slice(), &id.0)?;
                }
            }
            for k in &closing {
                auc_t.remove(k)?;
            }
            for (account, balance) in balance_changes {
                match balance {
                    Some(b) => bal_t.insert(account.as_bytes(), &balance_value(*b))?,
                    None => bal_t.remove(account.as_bytes())?,
                };
            }
            meta_t.insert(INDEX_META_KEY, meta.as_slice())?;
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| match e {
            TransactionError::Storage(s) => StoreError::from(s),
            TransactionError::Abort(()) => StoreError::Invalid("index transaction aborted".into()),
        })
    }

    /// Every balance, as of the indexed height.
    pub fn balances(&self) -> Result<BTreeMap<String, i64>, StoreError> {
        let mut out = BTreeMap::new();
        for item in self.balances.iter() {
            let (k, v) = item?;
            let name =
                String::from_utf8(k.to_vec()).map_err(|_| corrupt("balance key", "not UTF-8"))?;
            let b = balance_of_value(&v).ok_or_else(|| corrupt("balance", "not 8 bytes"))?;
            out.insert(name, b);
        }
        Ok(out)
    }

    /// The index entry of one record.
    pub fn record(&self, id: &RecordId) -> Result<Option<RecordEntry>, StoreError> {
        match self.records.get(id.0)? {
            None => Ok(None),
            Some(v) => codec::decode(&v, ENTRY_BYTES_MAX)
                .map(Some)
                .map_err(|e| corrupt("record entry", e.to_string())),
        }
    }

    /// Every layer of `id`: the record itself, then the records naming it, in log order.
    pub fn history(&self, id: &RecordId) -> Result<History, StoreError> {
        let first = self.record(id)?.ok_or(StoreError::UnknownRecord(*id))?;
        let mut layers = vec![layer(id, &first)];
        for item in self.layers.scan_prefix(id.0) {
            let (_, v) = item?;
            let lid = id_of_key(&v).ok_or_else(|| corrupt("layer", "not a record id"))?;
            let e = self
                .record(&lid)?
                .ok_or_else(|| corrupt("layer", format!("{lid} has no entry")))?;
            layers.push(layer(&lid, &e));
        }
        Ok(History {
            id: id.to_hex(),
            layers,
        })
    }

    /// Auctions posted and not yet cleared.
    pub fn open_auctions(&self) -> Result<Vec<OpenAuction>, StoreError> {
        let mut out = Vec::new();
        for item in self.auctions.iter() {
            let (k, v) = item?;
            let Some((kind, period, name)) = auction_of_key(&k).filter(|_| v.len() == 32) else {
                return Err(corrupt("auction entry", "too short"));
            };
            let kind = if kind == AUCTION_TASK {
                "task"
            } else {
                "product"
            };
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| corrupt("auction name", "not UTF-8"))?;
            out.push(OpenAuction {
                kind,
                period,
                name,
                record: hex_of(&v),
            });
        }
        Ok(out)
    }

    /// Records kept as rejected, in log order.
    pub fn rejected(&self) -> Result<Vec<Rejected>, StoreError> {
        let mut out = Vec::new();
        for item in self.rejected.iter() {
            let (_, v) = item?;
            let id = id_of_key(&v).ok_or_else(|| corrupt("rejected entry", "not a record id"))?;
            let e = self
                .record(&id)?
                .ok_or_else(|| corrupt("rejected entry", format!("{id} has no entry")))?;
            out.push(Rejected {
                id: id.to_hex(),
                height: e.height,
                index: e.index,
                reason: e.reason.unwrap_or_default(),
            });
        }
        Ok(out)
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn layer(id: &RecordId, e: &RecordEntry) -> Layer {
    Layer {
        id: id.to_hex(),
        kind: e.kind.clone(),
        signer: e.signer.to_hex(),
        height: e.height,
        status: if e.accepted { "accepted" } else { "rejected" },
        reason: e.reason.clone(),
        hours_mh: e.hours_mh,
    }
}
