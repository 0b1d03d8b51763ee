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

// The answer documents are the actor's replies: they live with its mailbox, so that the
// dependency goes from the API to the runtime's ingress and never back.
pub use crate::runtime::ingress::{Balance, BlockInfo, Status, Submitted};
