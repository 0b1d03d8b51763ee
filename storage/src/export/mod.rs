//! `peerhours log export` / `log import`: a node directory's log to and from the portable
//! file whose format is `format.rs` (docs/log-format.md), and the node directory's paths.

mod format;

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use protocol::Genesis;

use crate::db::{Db, DbOptions};
use crate::error::StoreError;
use crate::log::{Log, READ_BLOCKS_MAX};
use crate::replay::{Replayer, BATCH_BLOCKS};
use format::io_err;
pub use format::{
    EndFrame, ExportError, ExportReader, ExportWriter, KIND_BLOCK, KIND_END, KIND_GENESIS,
    LINK_TAG, MAGIC,
};

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
        blocks: writer.blocks(),
        tip: writer.tip().to_hex(),
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
