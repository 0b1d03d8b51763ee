//! The JSON documents of the local HTTP API, shared by the node (server) and the CLI
//! (client). Field names follow `cli.md`.
//!
//! Routes (all under `/v1`):
//! - `POST /v1/records` with the postcard bytes of one signed record
//!   (`application/octet-stream`) → `Submitted`, or an `ApiError` with status 400/409/422/503;
//! - `GET /v1/status` → `Status`;
//! - `GET /v1/balance/{account}` → `Balance` (`account`: member hex, `pool`, `surplus`, `social:<a>`);
//! - `GET /v1/records/{id}?wait_ms=N` → `Submitted` (waits up to N ms for a certified block);
//! - `GET /v1/history/{id}` → `History`;
//! - `GET /v1/block/{height}` → `BlockInfo` (a certified block);
//! - `GET /v1/log` → the export file (`docs/log-format.md`).

use serde::{Deserialize, Serialize};

/// An error the API reports: one sentence saying what was wrong and what to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Where a record stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Submitted {
    pub id: String,
    /// The certified block holding it, once there is one.
    pub height: Option<u64>,
    /// `pending`, `accepted` or `rejected`.
    pub status: String,
    pub reason: Option<String>,
}

/// What `peerhours status` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub chain_id: String,
    /// The last certified block.
    pub height: u64,
    pub state_root: String,
    pub period: u64,
    /// `bidding`, `work` or `closed`.
    pub phase: String,
    pub peers: usize,
    pub delegates: usize,
    pub listen: Vec<String>,
    /// Whether this node votes (holds a delegate key of the current set).
    pub delegate: bool,
    /// Accepted submissions waiting for a block.
    pub pending: usize,
}

/// A balance with its proof against the certified state root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Balance {
    pub member: String,
    pub balance_mh: i64,
    pub height: u64,
    pub state_root: String,
    pub proof: serde_json::Value,
}

/// One certified block, as `GET /v1/block/{height}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockInfo {
    pub height: u64,
    pub hash: String,
    pub view: u64,
    pub proposer: String,
    pub timestamp_ms: u64,
    pub state_root: String,
    /// Record ids in block order.
    pub records: Vec<String>,
    /// Delegates whose finalize signatures certify it.
    pub signers: Vec<String>,
}
