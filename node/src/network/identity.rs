//! The node's libp2p identity: an ed25519 key that names the node on the network.
//!
//! It is deliberately separate from the delegate signing key: rotating or leaking one must
//! not affect the other, and an observer node has a network identity but no delegate key.

use std::fmt;
use std::path::Path;

use libp2p::identity::Keypair;
use libp2p::PeerId;

use super::{Error, Peer};
use crate::keyfile;

/// Bytes of an ed25519 secret seed.
const SEED_BYTES: usize = 32;

/// A libp2p ed25519 identity. `Debug` shows only the peer id: keys are never logged.
#[derive(Clone)]
pub struct Identity {
    /// The libp2p keypair; private so that the rest of the node never handles libp2p types.
    pub(crate) keypair: Keypair,
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> Result<Identity, Error> {
        let mut seed = [0u8; SEED_BYTES];
        getrandom::getrandom(&mut seed).map_err(|e| Error::Identity {
            path: String::new(),
            reason: format!("no randomness: {e}"),
        })?;
        Identity::from_seed(seed)
    }

    /// The identity derived from a 32-byte ed25519 seed (deterministic; tests use it to know
    /// a peer id before the node starts).
    pub fn from_seed(mut seed: [u8; SEED_BYTES]) -> Result<Identity, Error> {
        let keypair = Keypair::ed25519_from_bytes(&mut seed).map_err(|e| Error::Identity {
            path: String::new(),
            reason: format!("bad ed25519 seed: {e}"),
        })?;
        Ok(Identity { keypair })
    }

    /// Reads the identity from `path`, or creates it there when the file does not exist.
    /// The file is a peerhours key file ([`crate::keyfile`]: TOML, mode 0600, never
    /// overwritten), the same format `peerhours testnet init` writes.
    pub fn load_or_create(path: &Path) -> Result<Identity, Error> {
        let failed = |e: keyfile::KeyFileError| Error::Identity {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        if !path.exists() {
            match keyfile::write(path, &keyfile::random_keypair()) {
                Ok(()) => tracing::info!(path = %path.display(), "created network identity"),
                // Someone else created it meanwhile: use theirs.
                Err(keyfile::KeyFileError::Exists(_)) => {}
                Err(e) => return Err(failed(e)),
            }
        }
        let key = keyfile::read(path).map_err(failed)?;
        Identity::from_seed(key.seed())
    }

    /// The peer id this identity gives the node.
    pub fn peer(&self) -> Peer {
        Peer(self.peer_id())
    }

    pub(crate) fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_or_create_round_trips_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p2p.key");
        let created = Identity::load_or_create(&path).expect("create");
        let loaded = Identity::load_or_create(&path).expect("load");
        assert_eq!(created.peer(), loaded.peer());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn reads_key_files_written_by_keyfile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p2p.key");
        let key = protocol::Keypair::from_label("node0-p2p");
        keyfile::write(&path, &key).expect("write");
        let identity = Identity::load_or_create(&path).expect("load");
        let expected = Identity::from_seed(key.seed()).expect("seed");
        assert_eq!(identity.peer(), expected.peer());
    }

    #[test]
    fn from_seed_is_deterministic_and_distinct() {
        let a = Identity::from_seed([1; 32]).expect("a");
        let b = Identity::from_seed([1; 32]).expect("b");
        let c = Identity::from_seed([2; 32]).expect("c");
        assert_eq!(a.peer(), b.peer());
        assert_ne!(a.peer(), c.peer());
    }

    #[test]
    fn malformed_key_files_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [("short", "abcd\n"), ("nottoml", "zz\n"), ("empty", "")] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            assert!(
                matches!(Identity::load_or_create(&path), Err(Error::Identity { .. })),
                "{name}"
            );
        }
    }
}
