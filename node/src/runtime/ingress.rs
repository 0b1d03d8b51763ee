//! The node's mailbox: the commands the local API (and in-process callers such as the
//! CLI's demo and bench) send to the actor, and the documents the actor answers with.
//!
//! This is the only part of the runtime others import: the API depends on it, never the
//! other way round. The answer documents are also the API's JSON bodies (re-exported by
//! `api_types`); their field names follow `cli.md`.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

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

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The request itself is malformed (400).
    BadRequest(String),
    /// A well-formed record the ledger refuses now (422).
    Refused(String),
    NotFound(String),
    /// The node cannot take more now (503).
    Busy(String),
    Internal(String),
}

/// What the API asks of the actor.
#[derive(Debug)]
pub enum Command {
    Submit {
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<Submitted, CommandError>>,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Balance {
        account: String,
        reply: oneshot::Sender<Result<Balance, CommandError>>,
    },
    /// A watch on a record's standing (pending, then accepted/rejected with its height).
    Watch {
        id: String,
        reply: oneshot::Sender<Result<watch::Receiver<Submitted>, CommandError>>,
    },
    History {
        id: String,
        reply: oneshot::Sender<Result<serde_json::Value, CommandError>>,
    },
    Export {
        reply: oneshot::Sender<Result<Vec<u8>, CommandError>>,
    },
    Block {
        height: u64,
        reply: oneshot::Sender<Result<BlockInfo, CommandError>>,
    },
    Genesis {
        reply: oneshot::Sender<String>,
    },
}

/// The actor has stopped: the command was not taken, or its answer never came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node has stopped")]
pub struct Stopped;

/// The sending end of the actor's bounded command channel. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mailbox {
    sender: mpsc::Sender<Command>,
}

impl Mailbox {
    /// A mailbox over the actor's command channel.
    pub fn new(sender: mpsc::Sender<Command>) -> Mailbox {
        Mailbox { sender }
    }

    /// Sends one command built around a oneshot reply and waits for the answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.sender.send(make(reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Submits one signed record (postcard bytes): checked, stored durably, gossiped.
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<Result<Submitted, CommandError>, Stopped> {
        self.ask(|reply| Command::Submit { bytes, reply }).await
    }

    pub async fn status(&self) -> Result<Status, Stopped> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// `account`: a member's public key (hex), `pool`, `surplus` or `social:<association>`.
    pub async fn balance(&self, account: String) -> Result<Result<Balance, CommandError>, Stopped> {
        self.ask(|reply| Command::Balance { account, reply }).await
    }

    /// A watch on a record's standing (see [`Command::Watch`]); `id` in hex.
    pub async fn watch(
        &self,
        id: String,
    ) -> Result<Result<watch::Receiver<Submitted>, CommandError>, Stopped> {
        self.ask(|reply| Command::Watch { id, reply }).await
    }

    /// The layers of a record's history in the log; `id` in hex.
    pub async fn history(
        &self,
        id: String,
    ) -> Result<Result<serde_json::Value, CommandError>, Stopped> {
        self.ask(|reply| Command::History { id, reply }).await
    }

    /// The certified block at `height`.
    pub async fn block(&self, height: u64) -> Result<Result<BlockInfo, CommandError>, Stopped> {
        self.ask(|reply| Command::Block { height, reply }).await
    }

    /// The whole log as an export file (`docs/log-format.md`).
    pub async fn export(&self) -> Result<Result<Vec<u8>, CommandError>, Stopped> {
        self.ask(|reply| Command::Export { reply }).await
    }

    /// The genesis file the node runs (TOML).
    pub async fn genesis(&self) -> Result<String, Stopped> {
        self.ask(|reply| Command::Genesis { reply }).await
    }
}
