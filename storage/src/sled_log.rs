//! The sled adapter of the log: certified blocks in one sled tree (`layout::LOG_TREE`),
//! verified on open, flushed before `append` returns. `Db` (db.rs) opens it.

use std::ops::RangeInclusive;

use protocol::{CertifiedBlock, Hash};

use crate::error::LogError;
use crate::layout::{height_key, height_of_key};
use crate::log::{check_link, check_range, decode_frame, encode_frame, scan, Cut, Log, Tip};

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
                    .filter(|k| height_of_key(k).is_none_or(|h| h > keep))
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
    pub(crate) fn frames(
        tree: &sled::Tree,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> + '_ {
        tree.iter().map(|item| {
            let (k, v) = item?;
            let height = height_of_key(&k).ok_or_else(|| LogError::Corrupt {
                height: 0,
                reason: format!("a key of {} bytes is not a height", k.len()),
            })?;
            Ok((height, v.to_vec()))
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
            self.tree.insert(height_key(height), frame)?;
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
        self.tree.insert(height_key(height), frame)?;
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
            .range(height_key(height.max(1))..)
            .keys()
            .collect::<Result<_, _>>()?;
        for k in &doomed {
            self.tree.remove(k)?;
        }
        self.tree.flush()?;
        self.tip = match keep {
            0 => None,
            h => {
                let v = self.tree.get(height_key(h))?.ok_or(LogError::Corrupt {
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
            let v = self.tree.get(height_key(h))?.ok_or(LogError::Corrupt {
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
