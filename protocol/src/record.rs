//! Signed records: the user actions the ledger orders and applies.
//!
//! Wire form: `postcard(SignedRecord)` = `postcard(Record) || signature(64 bytes)`, so the
//! signed bytes are a prefix of the stored bytes and nothing is re-serialised to verify.

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::crypto::{domain, Hash, Keypair, PublicKey, Signature, SignatureError};
use crate::limits::{NAME_BYTES_MAX, NOTE_BYTES_MAX, RECORD_BYTES_MAX};
use crate::vote::SignedVote;

/// A record id: `blake3(postcard(signed record))`.
pub type RecordId = Hash;

/// Who signed: the signer's current public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key that signed this record.
    pub signer: PublicKey,
    /// Any u64, unique per signer, so two identical actions are two records.
    pub nonce: u64,
    /// What the record does.
    pub body: RecordBody,
}

/// A delegate of the network: its signing key, the association it serves, and where its
/// node listens for peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegateInfo {
    pub key: PublicKey,
    pub association: String,
    pub addr: String,
}

/// One delegate's signature over a quorum proposal (`ChangeDelegates`, `RebindKey`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub delegate: PublicKey,
    pub signature: Signature,
}

/// What a quorum of delegates approves; each approval signs
/// `QUORUM tag || chain id || postcard(QuorumProposal)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QuorumProposal {
    /// Replace the delegate set (takes effect from the second block after the one that
    /// certifies it).
    ChangeDelegates {
        delegates: Vec<DelegateInfo>,
        nonce: u64,
    },
    /// Bind a new key to an existing account whose key was lost.
    RebindKey {
        account: PublicKey,
        new_key: PublicKey,
        nonce: u64,
    },
}

/// The record kinds of `protocol.md`. Periods are named in every phase-bound record, so a
/// record signed for one period can never count in another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordBody {
    /// A delegate of `association` admits a member (account id = `member`).
    AdmitMember {
        member: PublicKey,
        association: String,
        exempt: bool,
    },
    /// A delegate of the member's association marks it exempt or contributing.
    SetExempt { account: PublicKey, exempt: bool },
    /// A delegate of `association` registers a project and its coordinators.
    RegisterProject {
        name: String,
        association: String,
        coordinators: Vec<PublicKey>,
        flat_rate: bool,
    },
    /// Any delegate: open period `period` (the next one).
    OpenPeriod { period: u64 },
    /// Any delegate: end the bidding phase; every auction clears.
    CloseBidding { period: u64 },
    /// Any delegate: close the period; levies and surplus.
    ClosePeriod { period: u64 },
    /// A coordinator of `project` posts a task.
    PostTask {
        period: u64,
        task: String,
        project: String,
        hours_mh: i64,
        slots: u32,
        min_weight_bp: u32,
        max_weight_bp: u32,
    },
    /// A coordinator of `project` offers units of a rival good.
    OfferProduct {
        period: u64,
        product: String,
        project: String,
        units: u32,
        cost_mh: i64,
    },
    /// A member's reserve weight for a task.
    BidTask {
        period: u64,
        task: String,
        weight_bp: u32,
    },
    /// A member's maximum contribution for one unit of a product.
    BidProduct {
        period: u64,
        product: String,
        max_mh: i64,
    },
    /// A winner's claimed hours on its task.
    Contribute {
        period: u64,
        task: String,
        hours_mh: i64,
        note: String,
    },
    /// The member takes back its own unattested contribution.
    Retract { contribution: RecordId },
    /// A coordinator of the task's project attests a contribution, optionally setting hours.
    Attest {
        contribution: RecordId,
        hours_mh: Option<i64>,
    },
    /// A coordinator amends an attested contribution to new hours (a new layer).
    Amend {
        contribution: RecordId,
        hours_mh: i64,
    },
    /// The member binds a new key to its account (signed by the current key).
    RotateKey { new_key: PublicKey },
    /// A quorum-approved change (delegate set or key rebinding).
    Quorum {
        proposal: QuorumProposal,
        approvals: Vec<Approval>,
    },
    /// Two conflicting signed votes of one delegate. Proves itself: the record's own
    /// signer is whoever reports it.
    Evidence {
        first: SignedVote,
        second: SignedVote,
    },
}

impl RecordBody {
    /// A short name of the kind, as shown in history and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::AdmitMember { .. } => "AdmitMember",
            RecordBody::SetExempt { .. } => "SetExempt",
            RecordBody::RegisterProject { .. } => "RegisterProject",
            RecordBody::OpenPeriod { .. } => "OpenPeriod",
            RecordBody::CloseBidding { .. } => "CloseBidding",
            RecordBody::ClosePeriod { .. } => "ClosePeriod",
            RecordBody::PostTask { .. } => "PostTask",
            RecordBody::OfferProduct { .. } => "OfferProduct",
            RecordBody::BidTask { .. } => "BidTask",
            RecordBody::BidProduct { .. } => "BidProduct",
            RecordBody::Contribute { .. } => "Contribute",
            RecordBody::Retract { .. } => "Retract",
            RecordBody::Attest { .. } => "Attest",
            RecordBody::Amend { .. } => "Amend",
            RecordBody::RotateKey { .. } => "RotateKey",
            RecordBody::Quorum {
                proposal: QuorumProposal::ChangeDelegates { .. },
                ..
            } => "ChangeDelegates",
            RecordBody::Quorum {
                proposal: QuorumProposal::RebindKey { .. },
                ..
            } => "RebindKey",
            RecordBody::Evidence { .. } => "Evidence",
        }
    }

    /// Checks what can be checked without any state: lengths and obvious ranges.
    pub fn check_shape(&self) -> Result<(), RecordError> {
        let name = |what: &'static str, s: &str| -> Result<(), RecordError> {
            if s.is_empty() || s.len() > NAME_BYTES_MAX || s.chars().any(char::is_control) {
                return Err(RecordError::Shape(format!(
                    "{what} must be 1 to {NAME_BYTES_MAX} bytes without control characters"
                )));
            }
            Ok(())
        };
        let nonneg = |what: &'static str, v: i64| -> Result<(), RecordError> {
            if v < 0 {
                return Err(RecordError::Shape(format!("{what} must not be negative")));
            }
            Ok(())
        };
        match self {
            RecordBody::AdmitMember { association, .. } => name("association", association),
            RecordBody::RegisterProject {
                name: n,
                association,
                coordinators,
                ..
            } => {
                name("project", n)?;
                name("association", association)?;
                if coordinators.is_empty() || coordinators.len() > crate::limits::COORDINATORS_MAX {
                    return Err(RecordError::Shape(format!(
                        "a project needs 1 to {} coordinators",
                        crate::limits::COORDINATORS_MAX
                    )));
                }
                Ok(())
            }
            RecordBody::PostTask {
                task,
                project,
                hours_mh,
                slots,
                min_weight_bp,
                max_weight_bp,
                ..
            } => {
                name("task", task)?;
                name("project", project)?;
                nonneg("estimated hours", *hours_mh)?;
                if *slots == 0 {
                    return Err(RecordError::Shape("a task needs at least one slot".into()));
                }
                if !(*min_weight_bp > 0
                    && *min_weight_bp <= crate::amount::WEIGHT_ONE_BP
                    && crate::amount::WEIGHT_ONE_BP <= *max_weight_bp)
                {
                    return Err(RecordError::Shape(
                        "weight bounds must satisfy 0 < min <= 1.0 <= max".into(),
                    ));
                }
                Ok(())
            }
            RecordBody::OfferProduct {
                product,
                project,
                units,
                cost_mh,
                ..
            } => {
                name("product", product)?;
                name("project", project)?;
                if *units == 0 {
                    return Err(RecordError::Shape(
                        "a product offer needs at least one unit".into(),
                    ));
                }
                nonneg("cost", *cost_mh)
            }
            RecordBody::BidTask {
                task, weight_bp, ..
            } => {
                name("task", task)?;
                if *weight_bp == 0 {
                    return Err(RecordError::Shape(
                        "a reserve weight must be above 0".into(),
                    ));
                }
                Ok(())
            }
            RecordBody::BidProduct {
                product, max_mh, ..
            } => {
                name("product", product)?;
                nonneg("maximum", *max_mh)
            }
            RecordBody::Contribute {
                task,
                hours_mh,
                note,
                ..
            } => {
                name("task", task)?;
                nonneg("hours", *hours_mh)?;
                if note.len() > NOTE_BYTES_MAX {
                    return Err(RecordError::Shape(format!(
                        "a note is at most {NOTE_BYTES_MAX} bytes"
                    )));
                }
                Ok(())
            }
            RecordBody::Attest { hours_mh, .. } => match hours_mh {
                Some(h) => nonneg("hours", *h),
                None => Ok(()),
            },
            RecordBody::Amend { hours_mh, .. } => nonneg("hours", *hours_mh),
            RecordBody::Quorum {
                proposal,
                approvals,
            } => {
                if approvals.len() > crate::limits::DELEGATES_MAX {
                    return Err(RecordError::Shape("too many approvals".into()));
                }
                if let QuorumProposal::ChangeDelegates { delegates, .. } = proposal {
                    if delegates.is_empty() || delegates.len() > crate::limits::DELEGATES_MAX {
                        return Err(RecordError::Shape(format!(
                            "a delegate set has 1 to {} delegates",
                            crate::limits::DELEGATES_MAX
                        )));
                    }
                    for d in delegates {
                        name("association", &d.association)?;
                    }
                }
                Ok(())
            }
            RecordBody::SetExempt { .. }
            | RecordBody::OpenPeriod { .. }
            | RecordBody::CloseBidding { .. }
            | RecordBody::ClosePeriod { .. }
            | RecordBody::Retract { .. }
            | RecordBody::RotateKey { .. }
            | RecordBody::Evidence { .. } => Ok(()),
        }
    }
}

/// A record with its author's signature over `RECORD tag || chain id || postcard(record)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRecord {
    pub record: Record,
    pub signature: Signature,
}

/// Why a record is refused before any state is consulted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("malformed record: {0}")]
    Malformed(#[from] CodecError),
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("invalid record: {0}")]
    Shape(String),
}

impl SignedRecord {
    /// Signs a record for the network `chain_id`.
    pub fn sign(key: &Keypair, chain_id: &Hash, nonce: u64, body: RecordBody) -> SignedRecord {
        let record = Record {
            signer: key.public(),
            nonce,
            body,
        };
        let signature = key.sign(domain::RECORD, chain_id, &codec::encode(&record));
        SignedRecord { record, signature }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes (bounded); does not check the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedRecord, RecordError> {
        Ok(codec::decode(bytes, RECORD_BYTES_MAX)?)
    }

    pub fn id(&self) -> RecordId {
        Hash::of(&self.to_bytes())
    }

    /// Decodes, checks the shape and verifies the signature (`verify_strict`), using the
    /// received bytes: the signed message is their prefix before the 64 signature bytes.
    pub fn verify_bytes(bytes: &[u8], chain_id: &Hash) -> Result<VerifiedRecord, RecordError> {
        let rec = SignedRecord::from_bytes(bytes)?;
        rec.record.body.check_shape()?;
        let msg = &bytes[..bytes.len() - 64];
        rec.record
            .signer
            .verify(domain::RECORD, chain_id, msg, &rec.signature)?;
        Ok(VerifiedRecord {
            id: Hash::of(bytes),
            record: rec,
        })
    }

    /// Checks the shape and signature of an in-memory record.
    pub fn verify(self, chain_id: &Hash) -> Result<VerifiedRecord, RecordError> {
        let bytes = self.to_bytes();
        SignedRecord::verify_bytes(&bytes, chain_id)
    }
}

/// A record whose encoding, shape and signature have been checked. Only `verify` makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    id: RecordId,
    record: SignedRecord,
}

impl VerifiedRecord {
    pub fn id(&self) -> RecordId {
        self.id
    }
    pub fn signed(&self) -> &SignedRecord {
        &self.record
    }
    pub fn record(&self) -> &Record {
        &self.record.record
    }
    pub fn into_signed(self) -> SignedRecord {
        self.record
    }
}

/// Verifies many records on all cores; the result is in input order and deterministic.
pub fn verify_all(
    records: &[SignedRecord],
    chain_id: &Hash,
) -> Result<Vec<VerifiedRecord>, (usize, RecordError)> {
    use rayon::prelude::*;
    let results: Vec<Result<VerifiedRecord, RecordError>> = records
        .par_iter()
        .map(|r| r.clone().verify(chain_id))
        .collect();
    // Collect sequentially so the error reported is always the first bad record.
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.map_err(|e| (i, e)))
        .collect()
}
