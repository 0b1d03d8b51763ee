//! The portable log file of `peerhours log export` / `log import` (docs/log-format.md):
//! a magic line, then frames `kind u8 | len u32 LE | payload | link [32]`, where
//! `link = blake3("peerhours/v1/export" || previous link || kind || len || payload)`
//! (the previous link of the first frame is 32 zero bytes). Frames: one genesis, the
//! certified blocks from height 1 in order, one end frame naming the count and the tip.
//! Independent of sled's on-disk format. This file is the format only: no database.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use protocol::codec;
use protocol::limits::{BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX, GENESIS_BYTES_MAX};
use protocol::{CertifiedBlock, Genesis, Hash};

use crate::error::{ReplayError, StoreError};

/// The first 16 bytes of every export file.
pub const MAGIC: &[u8; 16] = b"peerhours-log/1\n";
/// Domain tag of the frame links.
pub const LINK_TAG: &[u8] = b"peerhours/v1/export";

/// Frame kinds.
pub const KIND_GENESIS: u8 = 1;
pub const KIND_BLOCK: u8 = 2;
pub const KIND_END: u8 = 3;

/// Largest payload of each kind.
const GENESIS_FRAME_MAX: usize = GENESIS_BYTES_MAX;
const BLOCK_FRAME_MAX: usize = BLOCK_BYTES_MAX + CERTIFICATE_BYTES_MAX;
const END_FRAME_MAX: usize = 64;

/// The last frame: how many blocks came before it and the hash of the last one, so a
/// truncated file is told apart from a short log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndFrame {
    pub blocks: u64,
    /// Hash of the last block (the chain id for an empty log).
    pub tip: Hash,
}

/// Why an export file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("not a peerhours log file (bad magic line)")]
    Magic,
    /// `frame` counts from 0 (the genesis frame); block frames are numbered by height.
    #[error("frame {frame}: {reason}")]
    Frame { frame: u64, reason: String },
    #[error("the file ends after frame {frames} without its end frame (truncated)")]
    Truncated { frames: u64 },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the log does not verify: {0}")]
    Replay(#[from] ReplayError),
    #[error("{0}")]
    Invalid(String),
}

pub(crate) fn io_err(path: &Path) -> impl Fn(io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes frames, chaining their links.
pub struct ExportWriter<W: Write> {
    /// Where the bytes go.
    out: W,
    /// Link of the last frame written.
    link: Hash,
    /// Blocks written so far and the hash of the last, for the end frame.
    blocks: u64,
    tip: Hash,
}

fn link(prev: &Hash, kind: u8, payload: &[u8]) -> Hash {
    let len = (payload.len() as u32).to_le_bytes();
    Hash::of_parts(&[LINK_TAG, &prev.0, &[kind], &len, payload])
}

impl<W: Write> ExportWriter<W> {
    /// Starts a file with the magic line and the genesis frame.
    pub fn new(mut out: W, genesis: &Genesis) -> io::Result<ExportWriter<W>> {
        out.write_all(MAGIC)?;
        let mut w = ExportWriter {
            out,
            link: Hash::ZERO,
            blocks: 0,
            tip: genesis.chain_id(),
        };
        w.frame(KIND_GENESIS, &genesis.to_bytes())?;
        Ok(w)
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        let len: u32 = payload
            .len()
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
        self.link = link(&self.link, kind, payload);
        self.out.write_all(&[kind])?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(payload)?;
        self.out.write_all(&self.link.0)
    }

    /// Blocks written so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Hash of the last block written (the chain id before the first).
    pub fn tip(&self) -> Hash {
        self.tip
    }

    /// Writes the next block (the caller hands them in height order).
    pub fn block(&mut self, block: &CertifiedBlock) -> io::Result<()> {
        self.frame(KIND_BLOCK, &block.to_bytes())?;
        self.blocks += 1;
        self.tip = block.block.hash();
        Ok(())
    }

    /// Writes the end frame and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        let end = codec::encode(&EndFrame {
            blocks: self.blocks,
            tip: self.tip,
        });
        self.frame(KIND_END, &end)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads an export file frame by frame: the genesis first, then blocks on demand, so a
/// long log is never held in memory at once.
pub struct ExportReader<R: Read> {
    /// Where the bytes come from.
    input: R,
    /// Link of the last frame read.
    link: Hash,
    /// Frames read so far (the genesis frame is frame 0).
    frames: u64,
    /// Blocks read so far and the hash of the last, checked against the end frame.
    blocks: u64,
    tip: Hash,
    /// Set once the end frame was read and checked.
    done: bool,
    genesis: Genesis,
}

impl ExportReader<BufReader<fs::File>> {
    pub fn open(path: &Path) -> Result<Self, ExportError> {
        let f = fs::File::open(path).map_err(io_err(path))?;
        ExportReader::new(BufReader::new(f))
    }
}

impl<R: Read> ExportReader<R> {
    /// Reads the magic line and the genesis frame.
    pub fn new(mut input: R) -> Result<Self, ExportError> {
        let mut magic = [0u8; 16];
        input
            .read_exact(&mut magic)
            .map_err(|_| ExportError::Magic)?;
        if &magic != MAGIC {
            return Err(ExportError::Magic);
        }
        let mut link = Hash::ZERO;
        let (kind, payload) =
            read_frame(&mut input, &mut link, 0)?.ok_or(ExportError::Truncated { frames: 0 })?;
        if kind != KIND_GENESIS {
            return Err(ExportError::Frame {
                frame: 0,
                reason: format!("kind {kind}, the genesis frame expected"),
            });
        }
        let genesis = Genesis::from_bytes(&payload).map_err(|e| ExportError::Frame {
            frame: 0,
            reason: e.to_string(),
        })?;
        let tip = genesis.chain_id();
        Ok(ExportReader {
            input,
            link,
            frames: 1,
            blocks: 0,
            tip,
            done: false,
            genesis,
        })
    }

    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The next block, `Ok(None)` after a valid end frame. Any damage to the framing is
    /// an error naming the frame (frame `h` holds block `h` in an intact file).
    pub fn next_block(&mut self) -> Result<Option<CertifiedBlock>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let frame = self.frames;
        let (kind, payload) = read_frame(&mut self.input, &mut self.link, frame)?
            .ok_or(ExportError::Truncated { frames: frame })?;
        self.frames += 1;
        match kind {
            KIND_BLOCK => {
                let block =
                    CertifiedBlock::from_bytes(&payload).map_err(|e| ExportError::Frame {
                        frame,
                        reason: format!("malformed block: {e}"),
                    })?;
                self.blocks += 1;
                self.tip = block.block.hash();
                Ok(Some(block))
            }
            KIND_END => {
                let end: EndFrame =
                    codec::decode(&payload, END_FRAME_MAX).map_err(|e| ExportError::Frame {
                        frame,
                        reason: format!("malformed end frame: {e}"),
                    })?;
                if end.blocks != self.blocks || end.tip != self.tip {
                    return Err(ExportError::Frame {
                        frame,
                        reason: format!(
                            "end frame names {} blocks ending in {:?}, the file holds {} ending in {:?}",
                            end.blocks, end.tip, self.blocks, self.tip
                        ),
                    });
                }
                let mut rest = [0u8; 1];
                match self.input.read(&mut rest) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(ExportError::Frame {
                            frame,
                            reason: "bytes after the end frame".into(),
                        })
                    }
                    Err(e) => {
                        return Err(ExportError::Frame {
                            frame,
                            reason: e.to_string(),
                        })
                    }
                }
                self.done = true;
                Ok(None)
            }
            other => Err(ExportError::Frame {
                frame,
                reason: format!("unknown frame kind {other}"),
            }),
        }
    }
}

/// Reads one frame, checking its bound and link. `Ok(None)` at a clean end of input.
fn read_frame<R: Read>(
    input: &mut R,
    prev: &mut Hash,
    frame: u64,
) -> Result<Option<(u8, Vec<u8>)>, ExportError> {
    let bad = |reason: String| ExportError::Frame { frame, reason };
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < head.len() {
        match input.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(bad("file ends inside a frame header".into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    let kind = head[0];
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let max = match kind {
        KIND_GENESIS => GENESIS_FRAME_MAX,
        KIND_BLOCK => BLOCK_FRAME_MAX,
        KIND_END => END_FRAME_MAX,
        other => return Err(bad(format!("unknown frame kind {other}"))),
    };
    if len > max {
        return Err(bad(format!(
            "frame of {len} bytes exceeds the limit of {max}"
        )));
    }
    let mut payload = vec![0u8; len];
    input
        .read_exact(&mut payload)
        .map_err(|_| bad("file ends inside a frame".into()))?;
    let mut stored = [0u8; 32];
    input
        .read_exact(&mut stored)
        .map_err(|_| bad("file ends inside a frame link".into()))?;
    let expected = link(prev, kind, &payload);
    if expected.0 != stored {
        return Err(bad(
            "link hash does not match (the file was altered or damaged)".into(),
        ));
    }
    *prev = expected;
    Ok(Some((kind, payload)))
}
