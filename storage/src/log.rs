//! The log: the chain of certified blocks, append-only, behind a small trait with a sled
//! adapter (`SledLog`) and an in-memory twin (`MemLog`) that pass the same contract tests.
//!
//! Each stored block is a *frame*: `blake3(payload) || payload`, the payload being the
//! canonical bytes of the `CertifiedBlock`. The checksum catches bit rot anywhere in the
//! value (including certificate signatures, which hash links alone would not cover), so a
//! damaged tail is found on open without needing the delegate set.

use std::ops::RangeInclusive;

use protocol::limits::{BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX};
use protocol::{CertifiedBlock, Hash};

use crate::error::LogError;

/// Most blocks one `read` returns: callers page through longer ranges.
pub const READ_BLOCKS_MAX: u64 = 256;

/// Largest stored frame: checksum plus the largest certified block.
pub const FRAME_BYTES_MAX: usize = 32 + BLOCK_BYTES_MAX + CERTIFICATE_BYTES_MAX;

/// The last block of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub height: u64,
    pub hash: Hash,
}

/// Where a damaged tail was cut off when a log was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    /// The first block removed (every block from here on is gone).
    pub from_height: u64,
    /// How many stored blocks were removed.
    pub removed: u64,
    /// What was wrong with block `from_height`.
    pub reason: String,
}

/// The certified chain. `append` checks the block links to the tip and returns only once
/// the block is durable.
pub trait Log {
    /// The network this log belongs to (the parent of block 1).
    fn chain_id(&self) -> Hash;
    /// Appends the next block (height tip + 1, parent = tip hash, certificate bound to it).
    fn append(&mut self, block: &CertifiedBlock) -> Result<(), LogError>;
    /// Blocks `range` (heights, inclusive), at most `READ_BLOCKS_MAX` per call.
    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<CertifiedBlock>, LogError>;
    /// The last block, `None` while the log is empty.
    fn tip(&self) -> Option<Tip>;

    /// The height of the tip, 0 while empty.
    fn height(&self) -> u64 {
        self.tip().map_or(0, |t| t.height)
    }
}

/// Checks that `block` may follow `tip` on chain `chain_id`: next height, parent hash,
/// and a certificate naming this very block (its signatures are checked by replay, which
/// knows the delegate set in force).
pub fn check_link(
    chain_id: &Hash,
    tip: Option<Tip>,
    block: &CertifiedBlock,
) -> Result<(), LogError> {
    let (expected_height, expected_parent) = match tip {
        None => (1, *chain_id),
        Some(t) => (
            t.height.checked_add(1).ok_or(LogError::Gap {
                expected: u64::MAX,
                found: block.block.height,
            })?,
            t.hash,
        ),
    };
    let b = &block.block;
    if b.height != expected_height {
        return Err(LogError::Gap {
            expected: expected_height,
            found: b.height,
        });
    }
    if b.parent != expected_parent {
        return Err(LogError::WrongParent {
            height: b.height,
            expected: expected_parent,
            found: b.parent,
        });
    }
    check_binding(block)
}

/// Checks that the certificate of `block` names its hash and height, and a view at or
/// after the block's.
pub fn check_binding(block: &CertifiedBlock) -> Result<(), LogError> {
    let b = &block.block;
    let c = &block.certificate;
    let hash = b.hash();
    let reason = if c.block != hash {
        format!(
            "certificate is for block {:?}, the block hashes to {:?}",
            c.block, hash
        )
    } else if c.height != b.height {
        format!(
            "certificate height {} differs from block height {}",
            c.height, b.height
        )
    } else if c.view < b.view {
        // The agreement may finalize a block in a later view than the one it was proposed
        // in (its finalize votes name the later view), never in an earlier one.
        format!("certificate view {} precedes block view {}", c.view, b.view)
    } else {
        return Ok(());
    };
    Err(LogError::CertificateMismatch {
        height: b.height,
        reason,
    })
}

/// The stored form of a block: checksum then canonical bytes.
pub fn encode_frame(block: &CertifiedBlock) -> Vec<u8> {
    let payload = block.to_bytes();
    let mut out = Vec::with_capacity(32 + payload.len());
    out.extend_from_slice(&Hash::of(&payload).0);
    out.extend_from_slice(&payload);
    out
}

/// Reads a stored frame back, checking its size, checksum and canonical encoding.
/// `height` is only used to name the block in errors.
pub fn decode_frame(height: u64, frame: &[u8]) -> Result<CertifiedBlock, LogError> {
    let corrupt = |reason: String| LogError::Corrupt { height, reason };
    if frame.len() > FRAME_BYTES_MAX {
        return Err(corrupt(format!(
            "frame of {} bytes exceeds {FRAME_BYTES_MAX}",
            frame.len()
        )));
    }
    if frame.len() < 32 {
        return Err(corrupt(format!(
            "frame of {} bytes is shorter than its checksum",
            frame.len()
        )));
    }
    let (sum, payload) = frame.split_at(32);
    if Hash::of(payload).0 != sum {
        return Err(corrupt("checksum does not match".into()));
    }
    let block = CertifiedBlock::from_bytes(payload).map_err(|e| corrupt(e.to_string()))?;
    if block.block.height != height {
        return Err(corrupt(format!(
            "stored under height {height} but holds block {}",
            block.block.height
        )));
    }
    Ok(block)
}

/// Walks stored frames (height, bytes) in key order and returns the verified prefix's
/// tip and, if something is wrong, where the damage starts. Used on open by both logs.
pub fn scan<I>(chain_id: &Hash, frames: I) -> (Option<Tip>, Option<(u64, String)>)
where
    I: IntoIterator<Item = Result<(u64, Vec<u8>), LogError>>,
{
    let mut tip: Option<Tip> = None;
    for item in frames {
        let expected = tip.map_or(1, |t| t.height.saturating_add(1));
        let (height, bytes) = match item {
            Ok(f) => f,
            Err(e) => return (tip, Some((expected, e.to_string()))),
        };
        if height != expected {
            return (
                tip,
                Some((
                    expected.min(height),
                    format!("block {expected} is missing, found {height}"),
                )),
            );
        }
        let block = match decode_frame(height, &bytes) {
            Ok(b) => b,
            Err(e) => return (tip, Some((height, e.to_string()))),
        };
        if let Err(e) = check_link(chain_id, tip, &block) {
            return (tip, Some((height, e.to_string())));
        }
        tip = Some(Tip {
            height,
            hash: block.block.hash(),
        });
    }
    (tip, None)
}

/// Checks a requested range against the bound and the tip.
pub(crate) fn check_range(range: &RangeInclusive<u64>, tip: u64) -> Result<(), LogError> {
    let (from, to) = (*range.start(), *range.end());
    if from > to {
        return Ok(());
    }
    let requested = to - from + 1;
    if requested > READ_BLOCKS_MAX {
        return Err(LogError::RangeTooLarge {
            requested,
            max: READ_BLOCKS_MAX,
        });
    }
    if from == 0 || to > tip {
        return Err(LogError::OutOfRange { from, to, tip });
    }
    Ok(())
}

/// The in-memory twin of `SledLog`: the same frames, the same checks, no disk.
#[derive(Debug, Clone)]
pub struct MemLog {
    /// The network's chain id (parent of block 1).
    chain_id: Hash,
    /// Frames of blocks 1..=n, index i holding height i + 1.
    frames: Vec<Vec<u8>>,
    /// Cached tip so appends need not decode.
    tip: Option<Tip>,
}

impl MemLog {
    pub fn new(chain_id: Hash) -> MemLog {
        MemLog {
            chain_id,
            frames: Vec::new(),
            tip: None,
        }
    }

    /// "Reopens" a log from its frames, as `SledLog::open` does from disk: verifies the
    /// chain and cuts a damaged tail.
    pub fn from_frames(chain_id: Hash, mut frames: Vec<Vec<u8>>) -> (MemLog, Option<Cut>) {
        let numbered = frames
            .iter()
            .enumerate()
            .map(|(i, f)| Ok((i as u64 + 1, f.clone())));
        let (tip, damage) = scan(&chain_id, numbered);
        let keep = tip.map_or(0, |t| t.height) as usize;
        let cut = damage.map(|(from_height, reason)| Cut {
            from_height,
            removed: (frames.len() - keep) as u64,
            reason,
        });
        frames.truncate(keep);
        (
            MemLog {
                chain_id,
                frames,
                tip,
            },
            cut,
        )
    }

    /// The stored frames (what a reopen would read).
    pub fn into_frames(self) -> Vec<Vec<u8>> {
        self.frames
    }

    /// Direct access to the stored frames, for tests that simulate damage.
    pub fn frames_mut(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.frames
    }
}

impl Log for MemLog {
    fn chain_id(&self) -> Hash {
        self.chain_id
    }

    fn append(&mut self, block: &CertifiedBlock) -> Result<(), LogError> {
        check_link(&self.chain_id, self.tip, block)?;
        self.frames.push(encode_frame(block));
        self.tip = Some(Tip {
            height: block.block.height,
            hash: block.block.hash(),
        });
        Ok(())
    }

    fn read(&self, range: RangeInclusive<u64>) -> Result<Vec<CertifiedBlock>, LogError> {
        check_range(&range, self.height())?;
        range
            .map(|h| decode_frame(h, &self.frames[(h - 1) as usize]))
            .collect()
    }

    fn tip(&self) -> Option<Tip> {
        self.tip
    }
}
