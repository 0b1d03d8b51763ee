//! Keys, signatures and hashes. Validity is `verify_strict`, everywhere.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Domain tags: every signature covers `tag || chain id || message`.
/// Changing a tag is a protocol change.
pub mod domain {
    pub const RECORD: &[u8] = b"peerhours/v1/record";
    pub const VOTE: &[u8] = b"peerhours/v1/vote";
    pub const PROPOSAL: &[u8] = b"peerhours/v1/proposal";
    pub const QUORUM: &[u8] = b"peerhours/v1/quorum";
    pub const GENESIS: &[u8] = b"peerhours/v1/genesis";
}

/// A blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Hash of several parts, each fed in order (no framing: callers frame when needed).
    pub fn of_parts(parts: &[&[u8]]) -> Hash {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p);
        }
        Hash(*h.finalize().as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<Hash, HexError> {
        parse_hex32(s).map(Hash)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

/// Why a hex string is not a 32-byte value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 64 lowercase hex characters, got {0:?}")]
pub struct HexError(pub String);

fn parse_hex32(s: &str) -> Result<[u8; 32], HexError> {
    let s = s.trim();
    if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(HexError(s.chars().take(80).collect()));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HexError(s.chars().take(80).collect()))?;
    Ok(out)
}

/// An ed25519 public key (32 bytes). Whether it is a valid, non-weak point is checked
/// when it is used to verify and when a member is admitted.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Result<PublicKey, HexError> {
        parse_hex32(s).map(PublicKey)
    }

    /// The key as a dalek verifying key, refusing points that do not decompress and
    /// weak (small-order) keys.
    pub fn verifying_key(&self) -> Result<VerifyingKey, SignatureError> {
        let vk = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey)?;
        if vk.is_weak() {
            return Err(SignatureError::WeakKey);
        }
        Ok(vk)
    }

    /// Verifies `sig` over `tag || chain_id || msg` with `verify_strict`.
    pub fn verify(
        &self,
        tag: &[u8],
        chain_id: &Hash,
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        let vk = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
        let m = signing_message(tag, chain_id, msg);
        vk.verify_strict(&m, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &self.to_hex()[..16])
    }
}

/// Why a signature is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key is not a valid ed25519 point")]
    BadKey,
    #[error("the public key is weak (small order)")]
    WeakKey,
    #[error("the signature does not verify")]
    Invalid,
}

fn signing_message(tag: &[u8], chain_id: &Hash, msg: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + 32 + msg.len());
    m.extend_from_slice(tag);
    m.extend_from_slice(&chain_id.0);
    m.extend_from_slice(msg);
    m
}

/// An ed25519 signature (64 bytes), encoded as 64 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Signature, A::Error> {
                let mut out = [0u8; 64];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}

/// A signing key. Never printed, never logged.
pub struct Keypair {
    signing: SigningKey,
}

impl Keypair {
    /// A key from 32 secret seed bytes.
    pub fn from_seed(seed: &[u8; 32]) -> Keypair {
        Keypair {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A deterministic key for tests, simulations and the demo: blake3 of a label.
    pub fn from_label(label: &str) -> Keypair {
        Keypair::from_seed(
            Hash::of_parts(&[b"peerhours/test-key/v1", label.as_bytes()]).as_ref_bytes(),
        )
    }

    pub fn seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `tag || chain_id || msg`.
    pub fn sign(&self, tag: &[u8], chain_id: &Hash, msg: &[u8]) -> Signature {
        Signature(
            self.signing
                .sign(&signing_message(tag, chain_id, msg))
                .to_bytes(),
        )
    }
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Keypair::from_seed(&self.seed())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair(public {})", self.public())
    }
}

impl Hash {
    fn as_ref_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}
