//! Errors of the storage crate, one enum per failure area.

use protocol::codec::CodecError;
use protocol::Hash;

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
    Rejected(crate::audit::ReplayError),
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
