//! The portable log file of `peerhours log export` / `log import` (docs/log-format.md):
//! a magic line, then frames `kind u8 | len u32 LE | payload | link [32]`, where
//! `link = blake3("peerhours/v1/export" || previous link || kind || len || payload)`
//! (the previous link of the first frame is 32 zero bytes). Frames: one genesis, the
//! certified blocks from height 1 in order, one end frame naming the count and the tip.
//! Independent of sled's on-disk format.

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use protocol::codec;
use protocol::limits::{BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX, GENESIS_BYTES_MAX};
use protocol::{CertifiedBlock, Genesis, Hash};

use crate::db::{Db, DbOptions};
use crate::error::StoreError;
use crate::log::{Log, READ_BLOCKS_MAX};
use crate::replay::{ReplayError, Replayer, BATCH_BLOCKS};

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

fn io_err(path: &Path) -> impl Fn(io::Error) -> ExportError + '_ {
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

/// The node directory's genesis file.
pub fn genesis_path(dir: &Path) -> PathBuf {
    dir.join("genesis.toml")
}

/// The node directory's sled database.
pub fn data_path(dir: &Path) -> PathBuf {
    dir.join("data")
}

/// Reads `DIR/genesis.toml`.
pub fn read_genesis(dir: &Path) -> Result<Genesis, StoreError> {
    let path = genesis_path(dir);
    let text = fs::read_to_string(&path).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Genesis::from_toml(&text).map_err(|e| StoreError::Genesis {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// What an export or import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub blocks: u64,
    /// Hash of the last block (hex), the chain id for an empty log.
    pub tip: String,
    pub chain_id: String,
}

/// Writes every block of `db` after `genesis` to `w`.
pub fn write_log<W: Write>(w: W, genesis: &Genesis, db: &Db) -> Result<(Summary, W), ExportError> {
    let mut writer = ExportWriter::new(w, genesis).map_err(io_err(Path::new("export")))?;
    let tip = db.log().height();
    let mut from = 1u64;
    while from <= tip {
        let to = tip.min(from.saturating_add(READ_BLOCKS_MAX - 1));
        for b in db.log().read(from..=to).map_err(StoreError::from)? {
            writer.block(&b).map_err(io_err(Path::new("export")))?;
        }
        from = to + 1;
    }
    let summary = Summary {
        blocks: writer.blocks,
        tip: writer.tip.to_hex(),
        chain_id: genesis.chain_id().to_hex(),
    };
    let w = writer.finish().map_err(io_err(Path::new("export")))?;
    Ok((summary, w))
}

/// `peerhours log export --data-dir DIR --out FILE`: the stopped node's whole log. The
/// file appears complete or not at all (written aside, then renamed).
pub fn export(dir: &Path, out: &Path, cache_bytes: u64) -> Result<Summary, ExportError> {
    let genesis = read_genesis(dir)?;
    let (db, _) = Db::open(
        &data_path(dir),
        genesis.chain_id(),
        DbOptions {
            cache_bytes,
            repair: false,
        },
    )?;
    let tmp = out.with_extension("partial");
    let f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    let (summary, w) = write_log(BufWriter::new(f), &genesis, &db)?;
    let f = w.into_inner().map_err(|e| ExportError::Io {
        path: tmp.display().to_string(),
        source: e.into_error(),
    })?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok(summary)
}

/// `peerhours log import --log FILE --data-dir DIR`: makes a fresh node directory from an
/// export. The directory must not hold a log yet; a genesis already there must be the
/// file's. Every block is checked as it is appended (links and certificate binding); a
/// full audit of signatures, certificates and state roots is `audit::replay`.
pub fn import(file: &Path, dir: &Path, cache_bytes: u64) -> Result<Summary, ExportError> {
    let mut reader = ExportReader::open(file)?;
    let genesis = reader.genesis().clone();
    let toml = genesis.to_toml();
    let back = Genesis::from_toml(&toml)
        .map_err(|e| ExportError::Invalid(format!("the genesis does not survive TOML: {e}")))?;
    if back.chain_id() != genesis.chain_id() {
        return Err(ExportError::Invalid(
            "the genesis does not survive TOML unchanged".into(),
        ));
    }
    let gpath = genesis_path(dir);
    if gpath.exists() {
        let existing = read_genesis(dir)?;
        if existing.chain_id() != genesis.chain_id() {
            return Err(ExportError::Invalid(format!(
                "{} holds another network's genesis (chain {}, the log is of chain {})",
                gpath.display(),
                existing.chain_id(),
                genesis.chain_id()
            )));
        }
    }
    let data = data_path(dir);
    if data.exists() {
        let empty = fs::read_dir(&data).map_err(io_err(&data))?.next().is_none();
        if !empty {
            return Err(ExportError::Invalid(format!(
                "{} already holds a database; import needs a fresh node directory",
                data.display()
            )));
        }
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    // Import aside and rename at the end: a refused file leaves nothing behind.
    let aside = dir.join("data.importing");
    if aside.exists() {
        fs::remove_dir_all(&aside).map_err(io_err(&aside))?;
    }
    let result = import_into(&mut reader, &genesis, &aside, cache_bytes);
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = fs::remove_dir_all(&aside);
            return Err(e);
        }
    };
    if data.exists() {
        fs::remove_dir(&data).map_err(io_err(&data))?;
    }
    fs::rename(&aside, &data).map_err(io_err(&data))?;
    if !gpath.exists() {
        fs::write(&gpath, toml).map_err(io_err(&gpath))?;
    }
    Ok(summary)
}

fn import_into<R: Read>(
    reader: &mut ExportReader<R>,
    genesis: &Genesis,
    path: &Path,
    cache_bytes: u64,
) -> Result<Summary, ExportError> {
    let (mut db, _) = Db::open(
        path,
        genesis.chain_id(),
        DbOptions {
            cache_bytes,
            repair: false,
        },
    )?;
    // Everything is verified as the auditor's replay would (signatures, links,
    // certificates, state roots, invariants) before it is written.
    let mut replayer = Replayer::new(genesis);
    let mut batch = Vec::with_capacity(BATCH_BLOCKS);
    loop {
        batch.clear();
        while batch.len() < BATCH_BLOCKS {
            match reader.next_block()? {
                Some(b) => batch.push(b),
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        replayer.push_batch(&batch)?;
        db.log_mut()
            .append_batch(&batch)
            .map_err(StoreError::from)?;
    }
    let tip = db.log().tip().map_or(genesis.chain_id(), |t| t.hash);
    Ok(Summary {
        blocks: db.log().height(),
        tip: tip.to_hex(),
        chain_id: genesis.chain_id().to_hex(),
    })
}
