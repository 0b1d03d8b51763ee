//! The node configuration file (`config.toml`), validated once at start-up.
//!
//! Paths are relative to the directory of the config file. Every knob has a safe
//! default; see `docs/operating.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A node's configuration, as written in `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The network's genesis (TOML); its hash is the chain id.
    #[serde(default = "default_genesis")]
    pub genesis: PathBuf,
    /// The sled database directory.
    #[serde(default = "default_data")]
    pub data: PathBuf,
    /// The delegate signing key; absent for an observer node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_key: Option<PathBuf>,
    /// The node's libp2p identity key (not its delegate key); created on first start.
    #[serde(default = "default_p2p_key")]
    pub p2p_key: PathBuf,
    /// Where to listen for peers, as a multiaddr.
    pub listen: String,
    /// Peers to dial at start and keep connected to (multiaddrs).
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// The local HTTP API address (127.0.0.1 by default: it accepts submissions).
    #[serde(default = "default_api")]
    pub api: SocketAddr,
    /// Discover peers on the local network by multicast DNS (off by default).
    #[serde(default)]
    pub mdns: bool,
    /// sled's page cache in MiB (sled's own default of 1 GiB is far above what a node needs).
    #[serde(default = "default_cache_mb")]
    pub cache_mb: u64,
    /// How long a delegate waits for a view's leader before voting to skip it.
    #[serde(default = "default_view_timeout_ms")]
    pub view_timeout_ms: u64,
    /// With nothing to propose, a leader waits this long after the last block before it
    /// proposes an empty one (a heartbeat; 0 proposes empty blocks as fast as agreement
    /// runs). The node uses at most half of `view_timeout_ms`, so that an idle leader is
    /// never mistaken for a silent one.
    #[serde(default = "default_idle_block_ms")]
    pub idle_block_ms: u64,
    /// Most accepted submissions waiting for a block.
    #[serde(default = "default_mempool_max")]
    pub mempool_max: usize,
}

fn default_genesis() -> PathBuf {
    "genesis.toml".into()
}
fn default_data() -> PathBuf {
    "data".into()
}
fn default_p2p_key() -> PathBuf {
    "p2p.key".into()
}
fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7001))
}
fn default_cache_mb() -> u64 {
    64
}
fn default_view_timeout_ms() -> u64 {
    1_000
}
fn default_idle_block_ms() -> u64 {
    500
}
fn default_mempool_max() -> usize {
    100_000
}

impl NodeConfig {
    /// A config with defaults for everything but the addresses.
    pub fn new(listen: String, api: SocketAddr) -> NodeConfig {
        NodeConfig {
            genesis: default_genesis(),
            data: default_data(),
            delegate_key: None,
            p2p_key: default_p2p_key(),
            listen,
            bootstrap: Vec::new(),
            api,
            mdns: false,
            cache_mb: default_cache_mb(),
            view_timeout_ms: default_view_timeout_ms(),
            idle_block_ms: default_idle_block_ms(),
            mempool_max: default_mempool_max(),
        }
    }

    /// Reads and validates `path`; relative paths inside are made relative to its directory.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut c: NodeConfig =
            toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let abs = |p: &PathBuf| {
            if p.is_absolute() {
                p.clone()
            } else {
                base.join(p)
            }
        };
        c.genesis = abs(&c.genesis);
        c.data = abs(&c.data);
        c.p2p_key = abs(&c.p2p_key);
        c.delegate_key = c.delegate_key.as_ref().map(abs);
        c.validate().map_err(invalid)?;
        Ok(c)
    }

    /// Checks the bounds of every knob.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.starts_with('/') {
            return Err(format!(
                "listen {:?} is not a multiaddr such as /ip4/127.0.0.1/tcp/7000",
                self.listen
            ));
        }
        for b in &self.bootstrap {
            if !b.starts_with('/') {
                return Err(format!("bootstrap address {b:?} is not a multiaddr"));
            }
        }
        if !(1..=16_384).contains(&self.cache_mb) {
            return Err(format!(
                "cache_mb {} must be between 1 and 16384",
                self.cache_mb
            ));
        }
        if !(50..=600_000).contains(&self.view_timeout_ms) {
            return Err(format!(
                "view_timeout_ms {} must be between 50 and 600000",
                self.view_timeout_ms
            ));
        }
        if !(1..=10_000_000).contains(&self.mempool_max) {
            return Err(format!(
                "mempool_max {} must be between 1 and 10000000",
                self.mempool_max
            ));
        }
        Ok(())
    }

    /// The TOML text of this config, with a comment for people.
    pub fn to_toml(&self) -> String {
        format!(
            "# peerhours node configuration; paths are relative to this file. See docs/operating.md.\n{}",
            toml::to_string_pretty(self).expect("config TOML serialisation cannot fail")
        )
    }
}
