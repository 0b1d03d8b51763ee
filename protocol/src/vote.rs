//! Votes of the Simplex agreement and the certificates built from them.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::crypto::{domain, Hash, Keypair, PublicKey, Signature, SignatureError};
use crate::limits::VOTE_BYTES_MAX;

/// What a delegate votes for in a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Vote {
    /// "This block, proposed in this view at this height, is valid."
    Notarize { view: u64, height: u64, block: Hash },
    /// "Skip this view" (leader silent or faulty).
    Nullify { view: u64 },
    /// "I saw this block notarized and did not nullify this view."
    Finalize { view: u64, height: u64, block: Hash },
}

impl Vote {
    pub fn view(&self) -> u64 {
        match *self {
            Vote::Notarize { view, .. } | Vote::Nullify { view } | Vote::Finalize { view, .. } => {
                view
            }
        }
    }
}

/// A vote with its delegate's signature over `VOTE tag || chain id || postcard(vote)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub signer: PublicKey,
    pub signature: Signature,
}

impl SignedVote {
    pub fn sign(key: &Keypair, chain_id: &Hash, vote: Vote) -> SignedVote {
        let signature = key.sign(domain::VOTE, chain_id, &codec::encode(&vote));
        SignedVote {
            vote,
            signer: key.public(),
            signature,
        }
    }

    pub fn verify(&self, chain_id: &Hash) -> Result<(), SignatureError> {
        self.signer.verify(
            domain::VOTE,
            chain_id,
            &codec::encode(&self.vote),
            &self.signature,
        )
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<SignedVote, CodecError> {
        codec::decode(bytes, VOTE_BYTES_MAX)
    }

    /// Whether two votes of the same signer conflict (are evidence of misbehaviour):
    /// two notarizes or two finalizes for different blocks in one view, or a nullify
    /// and a finalize in one view. A notarize and a nullify in one view are allowed.
    pub fn conflicts_with(&self, other: &SignedVote) -> bool {
        if self.signer != other.signer || self.vote.view() != other.vote.view() {
            return false;
        }
        match (self.vote, other.vote) {
            (
                Vote::Notarize {
                    block: a,
                    height: ha,
                    ..
                },
                Vote::Notarize {
                    block: b,
                    height: hb,
                    ..
                },
            )
            | (
                Vote::Finalize {
                    block: a,
                    height: ha,
                    ..
                },
                Vote::Finalize {
                    block: b,
                    height: hb,
                    ..
                },
            ) => a != b || ha != hb,
            (Vote::Nullify { .. }, Vote::Finalize { .. })
            | (Vote::Finalize { .. }, Vote::Nullify { .. }) => true,
            _ => false,
        }
    }
}

/// `q` finalize signatures on one block: anyone with the delegate set checks it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub view: u64,
    pub height: u64,
    pub block: Hash,
    /// (delegate, signature over `Vote::Finalize { view, height, block }`), sorted by key,
    /// no key twice.
    pub signatures: Vec<(PublicKey, Signature)>,
}

/// Why a certificate does not certify its block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate is for block {found} but the block hashes to {expected}")]
    WrongBlock { expected: Hash, found: Hash },
    #[error("certificate height {found} differs from block height {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("certificate view {found} differs from block view {expected}")]
    WrongView { expected: u64, found: u64 },
    #[error("certificate has {found} distinct delegate signatures, {needed} needed")]
    TooFew { needed: usize, found: usize },
    #[error("certificate signatures are not sorted by key or repeat a key")]
    Unsorted,
    #[error("certificate is signed by {0}, who is not a delegate")]
    NotDelegate(PublicKey),
    #[error("certificate signature of {0} does not verify")]
    BadSignature(PublicKey),
}

/// The leader of `view` among `delegates` (the set in force at the block's height): plain
/// rotation, `delegates[view mod n]`. Part of the protocol: auditors check every block's
/// proposer with it.
pub fn leader(delegates: &[PublicKey], view: u64) -> Option<PublicKey> {
    let n = u64::try_from(delegates.len()).ok().filter(|n| *n > 0)?;
    let i = usize::try_from(view % n).ok()?;
    delegates.get(i).copied()
}

/// Faults tolerated among `n` delegates.
pub fn faults(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// Signatures needed among `n` delegates: `q = n - f`.
pub fn quorum(n: usize) -> usize {
    n - faults(n)
}

impl Certificate {
    /// Checks `q` valid finalize signatures of `delegates` on (`view`, `height`, `block`).
    pub fn verify(
        &self,
        chain_id: &Hash,
        delegates: &[PublicKey],
        view: u64,
        height: u64,
        block: Hash,
    ) -> Result<(), CertificateError> {
        if self.block != block {
            return Err(CertificateError::WrongBlock {
                expected: block,
                found: self.block,
            });
        }
        if self.height != height {
            return Err(CertificateError::WrongHeight {
                expected: height,
                found: self.height,
            });
        }
        if self.view != view {
            return Err(CertificateError::WrongView {
                expected: view,
                found: self.view,
            });
        }
        if !self.signatures.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(CertificateError::Unsorted);
        }
        let needed = quorum(delegates.len());
        if self.signatures.len() < needed {
            return Err(CertificateError::TooFew {
                needed,
                found: self.signatures.len(),
            });
        }
        let msg = codec::encode(&Vote::Finalize {
            view,
            height,
            block,
        });
        for (key, sig) in &self.signatures {
            if !delegates.contains(key) {
                return Err(CertificateError::NotDelegate(*key));
            }
            key.verify(domain::VOTE, chain_id, &msg, sig)
                .map_err(|_| CertificateError::BadSignature(*key))?;
        }
        Ok(())
    }
}
