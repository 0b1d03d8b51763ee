//! The pure core of peerhours: record types, canonical encoding, hashing, signing, and
//! the ledger state machine with its auctions and levies.
//!
//! No I/O, clock, randomness, floats or hash-map iteration: the same log gives the same
//! balances and state root on every machine.

pub mod amount;
pub mod block;
pub mod codec;
pub mod crypto;
pub mod genesis;
pub mod ledger;
pub mod limits;
pub mod merkle;
pub mod record;
pub mod simulate;
pub mod vote;

pub use block::{Block, CertifiedBlock};
pub use crypto::{Hash, Keypair, PublicKey, Signature};
pub use genesis::Genesis;
pub use record::{RecordBody, RecordId, SignedRecord, VerifiedRecord};
pub use vote::{Certificate, SignedVote, Vote};

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
