//! `Db`: one node's sled database with its log, its own votes, its pending submissions
//! and the bodies of blocks it notarized. The only holder of the `sled::Db`: others get
//! methods (and the index its trees). Everything that is acknowledged is flushed first.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use protocol::limits::{RECORD_BYTES_MAX, VOTE_BYTES_MAX};
use protocol::{CertifiedBlock, Hash, RecordId, SignedVote};

use crate::error::StoreError;
use crate::layout;
use crate::log::{scan, Cut};
use crate::sled_log::SledLog;

/// Most own votes kept; older views are pruned by `prune_votes_below` long before.
pub const VOTES_MAX: usize = 1 << 16;
/// Most pending submissions kept.
pub const PENDING_MAX: usize = 1 << 16;

/// How long `Db::open` waits for sled's directory lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How to open a node's sled database.
#[derive(Debug, Clone, Copy)]
pub struct DbOptions {
    /// sled's page cache in bytes (its 1 GiB default is far above what a node needs).
    pub cache_bytes: u64,
    /// Cut a damaged log tail on open (a node: peers send it again) or refuse to open
    /// (an auditor: the damage is the finding).
    pub repair: bool,
}

/// One node's sled database: the log, the node's own votes, its pending submissions.
/// `Store` adds the derived indexes on top.
#[derive(Debug, Clone)]
pub struct Db {
    /// The database; kept to open the index trees and to flush. Never handed out.
    db: sled::Db,
    /// The certified chain.
    log: SledLog,
    /// Own votes: key = `layout::vote_key`, value = vote bytes.
    votes: sled::Tree,
    /// Accepted submissions not yet in a certified block: key = record id, value = bytes.
    pending: sled::Tree,
    /// How many entries `pending` holds (shared by clones of the handle).
    pending_count: Arc<AtomicUsize>,
    /// Bodies of blocks we notarized that are not final yet: key =
    /// `layout::notarized_key`, value = the bytes the node stored.
    notarized: sled::Tree,
}

impl Db {
    /// Opens (or creates) the database at `path` on chain `chain_id`, verifying the log
    /// and cutting a damaged tail.
    pub fn open(
        path: &Path,
        chain_id: Hash,
        opts: DbOptions,
    ) -> Result<(Db, Option<Cut>), StoreError> {
        if opts.cache_bytes == 0 {
            return Err(StoreError::Invalid(
                "the sled cache must be at least 1 byte".into(),
            ));
        }
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(opts.cache_bytes)
            // We flush explicitly before every acknowledgement; no background flusher.
            .flush_every_ms(None);
        // sled releases its directory lock only once its background threads let go of
        // a dropped database, shortly after the drop; a reopen in the same process
        // retries for a bounded time. Another process holding it (a running node) still
        // fails, with a message saying so.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                // sled reports a held lock as an `Other` I/O error with this text.
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked(path.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let tree = db.open_tree(layout::LOG_TREE)?;
        if !opts.repair {
            if let (_, Some((height, reason))) = scan(&chain_id, SledLog::frames(&tree)) {
                return Err(StoreError::Damaged { height, reason });
            }
        }
        let (log, cut) = SledLog::open(tree, chain_id)?;
        let votes = db.open_tree(layout::VOTES_TREE)?;
        let pending = db.open_tree(layout::PENDING_TREE)?;
        let pending_count = Arc::new(AtomicUsize::new(pending.len()));
        let notarized = db.open_tree(layout::NOTARIZED_TREE)?;
        Ok((
            Db {
                db,
                log,
                votes,
                pending,
                pending_count,
                notarized,
            },
            cut,
        ))
    }

    pub fn log(&self) -> &SledLog {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut SledLog {
        &mut self.log
    }

    /// One of the trees kept next to the log (the indexes open theirs here).
    pub(crate) fn open_tree(&self, name: &'static str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    /// Stores one of our own votes durably. Returns only after the flush: the caller may
    /// send the vote once this returns, never before.
    pub fn record_vote(&self, vote: &SignedVote) -> Result<(), StoreError> {
        let bytes = vote.to_bytes();
        let key = layout::vote_key(vote.vote.view(), &bytes);
        if self.votes.get(&key)?.is_none() && self.votes.len() >= VOTES_MAX {
            return Err(StoreError::Invalid(format!(
                "{VOTES_MAX} own votes are stored; prune old views first"
            )));
        }
        self.votes.insert(key, bytes)?;
        self.votes.flush()?;
        Ok(())
    }

    /// Our own votes, by view, to restore the agreement state after a restart.
    pub fn votes(&self) -> Result<Vec<SignedVote>, StoreError> {
        self.votes
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                if v.len() > VOTE_BYTES_MAX {
                    return Err(StoreError::Corrupt {
                        what: "vote",
                        reason: "too large".into(),
                    });
                }
                SignedVote::from_bytes(&v).map_err(|e| StoreError::Corrupt {
                    what: "vote",
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Forgets our votes of views below `view` (they can no longer matter). Flushed.
    pub fn prune_votes_below(&self, view: u64) -> Result<usize, StoreError> {
        let keys: Vec<sled::IVec> = self
            .votes
            .range(..layout::height_key(view).to_vec())
            .keys()
            .collect::<Result<_, _>>()?;
        for k in &keys {
            self.votes.remove(k)?;
        }
        self.votes.flush()?;
        Ok(keys.len())
    }

    /// Keeps an accepted submission durably until a certified block holds it. Flushed
    /// before returning, so the submitter may be told it is stored.
    pub fn add_pending(&self, id: RecordId, bytes: &[u8]) -> Result<(), StoreError> {
        self.add_pending_unflushed(id, bytes)?;
        self.pending.flush()?;
        Ok(())
    }

    /// The pending submissions, by id.
    pub fn pending(&self) -> Result<Vec<(RecordId, Vec<u8>)>, StoreError> {
        self.pending
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let id = layout::id_of_key(&k).ok_or_else(|| StoreError::Corrupt {
                    what: "pending key",
                    reason: "not 32 bytes".into(),
                })?;
                if Hash::of(&v) != id {
                    return Err(StoreError::Corrupt {
                        what: "pending record",
                        reason: format!("{id} does not hash to its key"),
                    });
                }
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    /// Drops pending submissions (now certified, or lapsed). Flushed.
    pub fn remove_pending(&self, ids: &[RecordId]) -> Result<(), StoreError> {
        self.remove_pending_unflushed(ids)?;
        self.pending.flush()?;
        Ok(())
    }

    /// Keeps the body of a block we notarized (block `hash` at `height`) until it is
    /// final: after a whole-network restart nobody else may hold it. Not flushed: it goes
    /// with the flush of our notarize vote (`record_vote`), before the vote is sent.
    pub fn put_notarized_body(
        &self,
        height: u64,
        hash: &Hash,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.notarized
            .insert(layout::notarized_key(height, hash), body)?;
        Ok(())
    }

    /// The notarized bodies kept, by height then hash: (height, block hash, body).
    pub fn notarized_bodies(&self) -> Result<Vec<(u64, Hash, Vec<u8>)>, StoreError> {
        self.notarized
            .iter()
            .map(|item| {
                let (k, v) = item?;
                let (height, hash) =
                    layout::notarized_of_key(&k).ok_or_else(|| StoreError::Corrupt {
                        what: "notarized body key",
                        reason: format!("{} bytes, not height and hash", k.len()),
                    })?;
                Ok((height, hash, v.to_vec()))
            })
            .collect()
    }

    /// Forgets one notarized body (not flushed).
    pub fn remove_notarized_body(&self, height: u64, hash: &Hash) -> Result<(), StoreError> {
        self.notarized.remove(layout::notarized_key(height, hash))?;
        Ok(())
    }

    /// Forgets the notarized bodies at heights up to `height`: they are in the log or can
    /// never be final. Not flushed (the removals go with the next flush). Returns how
    /// many were removed.
    pub fn prune_notarized_through(&self, height: u64) -> Result<usize, StoreError> {
        let bound = layout::height_key(height.saturating_add(1));
        let keys: Vec<sled::IVec> = self
            .notarized
            .range(..bound.to_vec())
            .keys()
            .collect::<Result<_, _>>()?;
        for k in &keys {
            self.notarized.remove(k)?;
        }
        Ok(keys.len())
    }

    /// Appends a certified block to the log (flushed) and drops its records from the
    /// pending submissions.
    pub fn append(&mut self, block: &CertifiedBlock) -> Result<(), StoreError> {
        self.append_unflushed(block)?;
        self.db.flush()?;
        Ok(())
    }

    /// `append` without the flush (one flush for the block, its pending removal and its
    /// index entries: the caller flushes before anyone is told the block is stored).
    pub(crate) fn append_unflushed(&mut self, block: &CertifiedBlock) -> Result<(), StoreError> {
        self.log.append_unflushed(block)?;
        let ids: Vec<RecordId> = block.block.records.iter().map(|r| r.id()).collect();
        self.remove_pending_unflushed(&ids)
    }

    /// Stores pending submissions without flushing; `flush` makes them durable (one
    /// flush for every submission of an actor turn). Checks as `add_pending` does.
    pub fn add_pending_unflushed(&self, id: RecordId, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.len() > RECORD_BYTES_MAX {
            return Err(StoreError::Invalid(format!(
                "a record of {} bytes exceeds {RECORD_BYTES_MAX}",
                bytes.len()
            )));
        }
        if Hash::of(bytes) != id {
            return Err(StoreError::Invalid(format!(
                "record bytes do not hash to id {id}"
            )));
        }
        // The count is kept, not taken: sled's `len` scans the whole tree.
        let count = &self.pending_count;
        if self.pending.get(id.0)?.is_none() && count.load(Ordering::Relaxed) >= PENDING_MAX {
            return Err(StoreError::Invalid(format!(
                "{PENDING_MAX} submissions are pending already"
            )));
        }
        if self.pending.insert(id.0, bytes)?.is_none() {
            count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Flushes everything written so far (the whole database).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Removes pending ids one by one, keeping the count (not flushed).
    fn remove_pending_unflushed<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a RecordId>,
    ) -> Result<(), StoreError> {
        for id in ids {
            if self.pending.remove(id.0)?.is_some() {
                self.pending_count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
