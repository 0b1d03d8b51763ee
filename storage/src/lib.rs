//! The palimpsest log: certified blocks in sled, indexes derived from them, export and
//! import in our own format, and the auditor's replay.
//!
//! Layout of a node directory: `DIR/genesis.toml` (the genesis) and `DIR/data/` (sled).

pub mod audit;
pub mod db;
pub mod error;
pub mod export;
pub mod index;
pub mod layout;
pub mod log;
pub mod replay;
pub mod sled_log;
pub mod store;

pub use audit::ReplayReport;
pub use db::{Db, DbOptions};
pub use error::{LogError, StoreError};
pub use log::{Cut, Log, MemLog, Tip};
pub use replay::{ReplayError, Replayer};
pub use sled_log::SledLog;
pub use store::{OpenReport, Store};
