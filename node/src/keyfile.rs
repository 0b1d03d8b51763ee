//! Key files: a member's, coordinator's or delegate's ed25519 secret key on disk.
//!
//! Format (TOML, so a person can see what the file is):
//! ```toml
//! # peerhours ed25519 secret key: keep this file private.
//! kind = "peerhours-ed25519-secret-key-v1"
//! secret = "<64 hex>"
//! public = "<64 hex>"
//! ```
//! Files are created with mode 0600 and never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};

const KIND: &str = "peerhours-ed25519-secret-key-v1";

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {0} already exists; refusing to overwrite it (choose another --out)")]
    Exists(PathBuf),
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a peerhours key file: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyToml {
    kind: String,
    secret: String,
    public: String,
}

/// Creates a fresh random secret key (from the operating system's generator).
pub fn random_keypair() -> Keypair {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the operating system's random generator failed");
    Keypair::from_seed(&seed)
}

/// Writes `key` to a new file with mode 0600; refuses to overwrite.
pub fn write(path: &Path, key: &Keypair) -> Result<(), KeyFileError> {
    let body = KeyToml {
        kind: KIND.into(),
        secret: hex::encode(key.seed()),
        public: key.public().to_hex(),
    };
    let text = format!(
        "# peerhours ed25519 secret key: keep this file private.\n{}",
        toml::to_string(&body).expect("key TOML serialisation cannot fail")
    );
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(path.to_path_buf())
        } else {
            KeyFileError::Write {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| KeyFileError::Write {
            path: path.to_path_buf(),
            source: e,
        })
}

/// Reads a key file and checks that its public key matches its secret.
pub fn read(path: &Path) -> Result<Keypair, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyFileError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let invalid = |reason: String| KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let k: KeyToml = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
    if k.kind != KIND {
        return Err(invalid(format!("kind is {:?}, expected {KIND:?}", k.kind)));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(k.secret.trim(), &mut seed)
        .map_err(|_| invalid("secret is not 64 hex characters".into()))?;
    let key = Keypair::from_seed(&seed);
    if key.public().to_hex() != k.public.trim() {
        return Err(invalid(
            "its public key does not match its secret key".into(),
        ));
    }
    Ok(key)
}

/// A member named on the command line: a public key in hex, or a key file whose public
/// key is used.
pub fn resolve_public(arg: &str) -> Result<PublicKey, KeyFileError> {
    if let Ok(pk) = PublicKey::from_hex(arg) {
        return Ok(pk);
    }
    let path = Path::new(arg);
    if path.exists() {
        return read(path).map(|k| k.public());
    }
    Err(KeyFileError::Invalid {
        path: path.to_path_buf(),
        reason: "it is neither a 64-character hex public key nor an existing key file".into(),
    })
}
