//! Messages of the request-response protocol `/peerhours/sync/1`.
//!
//! A leader pushes its proposal to the delegates with `Propose`; a node that is behind asks
//! a peer for certified blocks with `Blocks`. Both are postcard, bounded on decode.

use protocol::codec::{self, CodecError};
use protocol::{Block, CertifiedBlock, Signature};
use serde::{Deserialize, Serialize};

/// Most blocks in one `Blocks` answer.
pub const BLOCKS_PER_RESPONSE_MAX: u32 = 256;
/// Most encoded bytes of blocks in one answer (one block is always sent, whatever its size).
pub const RESPONSE_BLOCK_BYTES_BUDGET: usize = 8 * 1024 * 1024;
/// Most votes in one `Votes` push.
pub const VOTES_PER_PUSH_MAX: usize = 256;
/// Largest request: a proposal with its block.
pub const REQUEST_BYTES_MAX: usize = protocol::limits::BLOCK_BYTES_MAX + 1024;
/// Largest response.
pub const RESPONSE_BYTES_MAX: usize =
    2 * (protocol::limits::BLOCK_BYTES_MAX + protocol::limits::CERTIFICATE_BYTES_MAX);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    /// The leader's proposal for its view.
    Propose { block: Block, signature: Signature },
    /// Certified blocks from height `from` on, at most `max`.
    Blocks { from: u64, max: u32 },
    /// The body of a block we saw votes for.
    Proposal { block: protocol::Hash },
    /// Votes pushed directly (re-sent or forwarded votes, which gossip's duplicate filter
    /// would drop). At most `VOTES_PER_PUSH_MAX`.
    Votes(Vec<protocol::SignedVote>),
    /// Signed records (their postcard bytes) pushed by a node that cannot propose them
    /// itself (an observer), so they do not depend on gossip alone. At most
    /// `VOTES_PER_PUSH_MAX`.
    Records(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    /// The proposal was received.
    Ack,
    /// Certified blocks in height order, and the answering node's tip height.
    Blocks {
        tip: u64,
        blocks: Vec<CertifiedBlock>,
    },
    /// A block body with its proposer's signature.
    Proposal { block: Block, signature: Signature },
    /// The request was not served, and why.
    Refused(String),
}

impl SyncRequest {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }
    pub fn from_bytes(b: &[u8]) -> Result<SyncRequest, CodecError> {
        codec::decode(b, REQUEST_BYTES_MAX)
    }
}

impl SyncResponse {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }
    pub fn from_bytes(b: &[u8]) -> Result<SyncResponse, CodecError> {
        codec::decode(b, RESPONSE_BYTES_MAX)
    }
}
