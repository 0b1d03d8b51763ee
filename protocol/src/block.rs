//! Blocks: ordered batches of records agreed by the delegates, and their certified form.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::crypto::{domain, Hash, Keypair, PublicKey, Signature, SignatureError};
use crate::limits::{BLOCK_BYTES_MAX, BLOCK_RECORDS_MAX};
use crate::record::SignedRecord;
use crate::vote::Certificate;

/// A block. The first block has height 1 and its parent is the chain id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub height: u64,
    /// The agreement view in which it was proposed.
    pub view: u64,
    /// Hash of the previous block (the chain id for height 1).
    pub parent: Hash,
    /// The delegate that proposed it (the leader of `view`).
    pub proposer: PublicKey,
    /// Proposer's clock in ms since the Unix epoch; must exceed the parent's. Shown to
    /// people, never read by the economic rules.
    pub timestamp_ms: u64,
    /// The records, in the order they are applied.
    pub records: Vec<SignedRecord>,
    /// The ledger's state root after applying the records.
    pub state_root: Hash,
}

impl Block {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Block, CodecError> {
        let b: Block = codec::decode(bytes, BLOCK_BYTES_MAX)?;
        if b.records.len() > BLOCK_RECORDS_MAX {
            return Err(CodecError::Malformed(format!(
                "block holds {} records, at most {BLOCK_RECORDS_MAX} allowed",
                b.records.len()
            )));
        }
        Ok(b)
    }

    /// The block hash: blake3 of its canonical encoding.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.to_bytes())
    }

    /// The proposer's signature over the block hash.
    pub fn sign(&self, key: &Keypair, chain_id: &Hash) -> Signature {
        key.sign(domain::PROPOSAL, chain_id, &self.hash().0)
    }

    pub fn verify_proposer(&self, chain_id: &Hash, sig: &Signature) -> Result<(), SignatureError> {
        self.proposer
            .verify(domain::PROPOSAL, chain_id, &self.hash().0, sig)
    }
}

/// A block with its proposer's signature and the quorum certificate that made it final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedBlock {
    pub block: Block,
    pub proposer_signature: Signature,
    pub certificate: Certificate,
}

impl CertifiedBlock {
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<CertifiedBlock, CodecError> {
        let c: CertifiedBlock = codec::decode(
            bytes,
            BLOCK_BYTES_MAX + crate::limits::CERTIFICATE_BYTES_MAX,
        )?;
        if c.block.records.len() > BLOCK_RECORDS_MAX {
            return Err(CodecError::Malformed("block holds too many records".into()));
        }
        Ok(c)
    }
}
