//! The sled adapter of the log, and `Db`: one node's sled database with its log, its own
//! votes and its pending submissions. Everything that is acknowledged is flushed first.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use protocol::limits::{RECORD_BYTES_MAX, VOTE_BYTES_MAX};
use protocol::{CertifiedBlock, Hash, RecordId, SignedVote};

use crate::error::{LogError, StoreError};
use crate::log::{check_link, check_range, decode_frame, encode_frame, scan, Cut, Log, Tip};

/// Most own votes kept; older views are pruned by `prune_votes_below` long before.
pub const VOTES_MAX: usize = 1 << 16;
/// Most pending submissions kept.
pub const PENDING_MAX: usize = 1 << 16;

const LOG_TREE: &str = "log";
/// How long `Db::open` waits for sled's directory lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const VOTES_TREE: &str = "votes";
const PENDING_TREE: &str = "pending";

/// The log in a sled tree: key = height (u64 big-endian), value = frame.
#[derive(Debug, Clone)]
pub struct SledLog {
    /// The tree holding the frames; `flush` on it flushes the whole database.
    tree: sled::Tree,
    /// The network's chain id (parent of block 1).
    chain_id: Hash,
    /// Cached tip, verified on open and advanced by `append`.
    tip: Option<Tip>,
}

impl SledLog {
    /// Opens the log in `tree`, verifies every frame and hash link, and cuts a damaged
    /// tail (flushed before returning).
    pub fn open(tree: sled::Tree, chain_id: Hash) -> Result<(SledLog, Option<Cut>), LogError> {
        let (tip, damage) = scan(&chain_id, SledLog::frames(&tree));
        let cut = match damage {
            None => None,
            Some((from_height, reason)) => {
                // Everything from the first bad block on goes: later blocks cannot be
                // trusted without it, and peers will send them again.
                let keep = tip.map_or(0, |t| t.height);
                let mut removed = 0u64;
                let doomed: Vec<sled::IVec> = tree
                    .iter()
                    .keys()
                    .filter_map(Result::ok)
                    .filter(|k| {
                        k.as_ref().len() != 8
                            || u64::from_be_bytes(k.as_ref().try_into().unwrap_or([0xff; 8])) > keep
                    })
                    .collect();
                for k in doomed {
                    tree.remove(k)?;
                    removed += 1;
                }
                tree.flush()?;
                tracing::warn!(from_height, removed, %reason, "damaged log tail cut");
                Some(Cut {
                    from_height,
                    removed,
                    reason,
                })
            }
        };
        Ok((
            SledLog {
                tree,
                chain_id,
                tip,
            },
            cut,
        ))
    }

    /// The stored frames in key order, undecoded.
    fn frames(tree: &sled::Tree) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> + '_ {
        tree.iter().map(|item| {
            let (k, v) = item?;
            let key: [u8; 8] = k.as_ref().try_into().map_err(|_| LogError::Corrupt {
                height: 0,
                reason: format!("a key of {} bytes is not a height", k.len()),
            })?;
            Ok((u64::from_be_bytes(key), v.to_vec()))
        })
    }

    /// Appends consecutive blocks with one flush at the end (bulk import). Each is
    /// checked as `append` checks it; on error the blocks before the bad one are kept.
    pub fn append_batch(&mut self, blocks: &[CertifiedBlock]) -> Result<(), LogError> {
        let mut result = Ok(());
        for block in blocks {
            if let Err(e) = check_link(&self.chain_id, self.tip, block) {
                result = Err(e);
                break;
            }
            let height = block.block.height;
            let frame = encode_frame(block);
            decode_frame(height, &frame)?;
            self.tree.insert(height.to_be_bytes(), frame)?;
            self.tip = Some(Tip {
                height,
                hash: block.block.hash(),
            });
        }
        self.tree.flush()?;
        result
    }

    /// `append` without the flush: the caller flushes the database once for the block
    /// and everything written with it (pending removal, indexes) before acknowledging.
    pub(crate) fn append_unflushed(&mut self, block: &CertifiedBlock) -> Result<(), LogError> {
        check_link(&self.chain_id, self.tip, block)?;
        let height = block.block.height;
        let frame = encode_frame(block);
        // Check before writing and again after reading back (STYLE: limits and checks).
        decode_frame(height, &frame)?;
        self.tree.insert(height.to_be_bytes(), frame)?;
        self.tip = Some(Tip {
            height,
            hash: block.block.hash(),
        });
        Ok(())
    }

    /// Removes blocks `height` and above (a tail that failed verification), flushed.
    /// Returns how many were removed.
    pub fn cut_from(&mut self, height: u64) -> Result<u64, LogError> {
        let keep = height.saturating_sub(1);
        let doomed: Vec<sled::IVec> = self
            .tree
            .range(height.max(1).to_be_bytes()..)
            .keys()
            .collect::<Result<_, _>>()?;
        for k in &doomed {
            self.tree.remove(k)?;
        }
        self.tree.flush()?;
        self.tip = match keep {
            0 => None,
            h => {
                let v = self.tree.get(h.to_be_bytes())?.ok_or(LogError::Corrupt {
                    height: h,
                    reason: "block vanished from the log".into(),
                })?;
                Some(Tip {
                    height: h,
                    hash: decode_frame(h, &v)?.block.hash(),
                })
            }
        };
        Ok(doomed.len() as u64)
    }

    /// The raw tree, for tests that simulate damage on disk.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

impl Log for SledLog {
    fn chain_id(&self) -> Hash {
        self.chain_id
    }

    fn append(&mut self, block: &CertifiedBlock) -> Result<(), LogError> {
        self.append_unflushed(block)?;
        self.tree.flush()?;
        Ok(())
    }

    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<CertifiedBlock>, LogError> {
        check_range(&range, self.height())?;
        let mut out = Vec::new();
        for h in range {
            let v = self.tree.get(h.to_be_bytes())?.ok_or(LogError::Corrupt {
                height: h,
                reason: "block vanished from the log".into(),
            })?;
            out.push(decode_frame(h, &v)?);
        }
        Ok(out)
    }

    fn tip(&self) -> Option<Tip> {
        self.tip
    }
}

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
    /// The database; kept to open index trees and to flush.
    db: sled::Db,
    /// The certified chain.
    log: SledLog,
    /// Own votes: key = view (u64 BE) || blake3(vote bytes), value = vote bytes.
    votes: sled::Tree,
    /// Accepted submissions not yet in a certified block: key = record id, value = bytes.
    pending: sled::Tree,
    /// How many entries `pending` holds (shared by clones of the handle).
    pending_count: Arc<AtomicUsize>,
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
        let tree = db.open_tree(LOG_TREE)?;
        if !opts.repair {
            if let (_, Some((height, reason))) = scan(&chain_id, SledLog::frames(&tree)) {
                return Err(StoreError::Damaged { height, reason });
            }
        }
        let (log, cut) = SledLog::open(tree, chain_id)?;
        let votes = db.open_tree(VOTES_TREE)?;
        let pending = db.open_tree(PENDING_TREE)?;
        let pending_count = Arc::new(AtomicUsize::new(pending.len()));
        Ok((
            Db {
                db,
                log,
                votes,
                pending,
                pending_count,
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

    /// The sled database, for the indexes kept next to the log.
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }

    /// Stores one of our own votes durably. Returns only after the flush: the caller may
    /// send the vote once this returns, never before.
    pub fn record_vote(&self, vote: &SignedVote) -> Result<(), StoreError> {
        let bytes = vote.to_bytes();
        let mut key = Vec::with_capacity(40);
        key.extend_from_slice(&vote.vote.view().to_be_bytes());
        key.extend_from_slice(&Hash::of(&bytes).0);
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
            .range(..view.to_be_bytes().to_vec())
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
                let key: [u8; 32] = k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    what: "pending key",
                    reason: "not 32 bytes".into(),
                })?;
                let id = Hash(key);
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
