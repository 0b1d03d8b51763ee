//! Errors of the storage crate, one enum per failure area.

use serde::Serialize;

use protocol::codec::CodecError;
use protocol::{Hash, RecordId};

/// Why the log refused a block or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("block {found} does not follow the tip: block {expected} expected")]
    Gap { expected: u64, found: u64 },
    #[error("block {height}: parent {found:?} does not match the hash {expected:?} of the block before it")]
    WrongParent {
        height: u64,
        expected: Hash,
        found: Hash,
    },
    #[error("block {height}: its certificate is not bound to it: {reason}")]
    CertificateMismatch { height: u64, reason: String },
    #[error("block {height}: stored bytes are damaged: {reason}")]
    Corrupt { height: u64, reason: String },
    #[error("a read of {requested} blocks exceeds the limit of {max} per call")]
    RangeTooLarge { requested: u64, max: u64 },
    #[error("blocks {from}..={to} are not all in the log (tip {tip})")]
    OutOfRange { from: u64, to: u64, tip: u64 },
    #[error("block encoding: {0}")]
    Codec(#[from] CodecError),
    #[error("sled: {0}")]
    Sled(String),
}

impl From<sled::Error> for LogError {
    fn from(e: sled::Error) -> Self {
        LogError::Sled(e.to_string())
    }
}

/// Why the node's store could not be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("sled: {0}")]
    Sled(String),
    #[error("{0} is locked by another process: is a node running on it? Stop it, or reach it with --node URL")]
    Locked(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Genesis { path: String, reason: String },
    #[error("stored {what} is damaged: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("the stored log is damaged at block {height}: {reason}")]
    Damaged { height: u64, reason: String },
    #[error("block refused: {0}")]
    Rejected(ReplayError),
    #[error("record {0} is not in the log")]
    UnknownRecord(Hash),
    #[error("{0}")]
    Invalid(String),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// A record named by a replay failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRecord {
    /// Position in its block, from 0.
    pub index: usize,
    /// The record id (hex).
    pub id: String,
}

/// The first thing wrong with a log: which block, which record if one, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ReplayError {
    /// The height of the bad block (the height expected at that place when the block
    /// itself could not be read).
    pub height: u64,
    pub record: Option<BadRecord>,
    pub reason: String,
}

impl ReplayError {
    pub(crate) fn block(height: u64, reason: impl Into<String>) -> ReplayError {
        ReplayError {
            height,
            record: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn record(
        height: u64,
        index: usize,
        id: RecordId,
        reason: impl Into<String>,
    ) -> ReplayError {
        ReplayError {
            height,
            record: Some(BadRecord {
                index,
                id: id.to_hex(),
            }),
            reason: reason.into(),
        }
    }

    fn describe(&self) -> String {
        match &self.record {
            None => format!("block {}: {}", self.height, self.reason),
            Some(r) => format!(
                "block {}: record {} (id {}..): {}",
                self.height,
                r.index,
                &r.id[..16.min(r.id.len())],
                self.reason
            ),
        }
    }
}
