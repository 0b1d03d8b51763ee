//! Why the ledger refuses a record. A refused record stays in the log and changes
//! nothing; the reason is kept in the storage index and shown by the API and the CLI.

/// Why a record breaks a rule; `Display` is one clear sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rejection {}

pub(super) fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}
