//! The libp2p networking layer of a node.
//!
//! One tokio task owns the libp2p `Swarm` (see [`spawn`]); the rest of the node talks to it
//! through a [`Client`] (bounded command channel, oneshot replies) and reads [`Event`]s from
//! a bounded channel. Nothing here knows what the bytes mean: gossip topics and sync
//! requests carry opaque bytes and the node decides whether they are valid.
//!
//! - gossipsub, anonymous, content-addressed (message id = blake3 of the data), every
//!   message held back until the node reports it valid ([`Client::report_validation`]);
//!   peers that send invalid messages lose score and are eventually ignored;
//! - request-response `/peerhours/sync/1` for blocks and history;
//! - identify (`peerhours/1`), bootstrap dialing with redial and backoff, optional mDNS.
//!
//! See `docs/network.md` for the wire-level names and limits.

mod client;
mod codec;
mod event_loop;
mod identity;
mod redial;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use protocol::limits::{BLOCK_BYTES_MAX, CERTIFICATE_BYTES_MAX};
use protocol::Hash;

pub use client::Client;
pub use codec::SYNC_PROTOCOL;
pub use identity::Identity;
/// A network address (`/ip4/127.0.0.1/tcp/7000[/p2p/<peer id>]`); parse with `str::parse`.
pub use libp2p::Multiaddr;

/// Identify protocol version: part of the wire contract.
pub const IDENTIFY_PROTOCOL: &str = "peerhours/1";

/// Most bootstrap addresses a config may list.
pub const BOOTSTRAP_MAX: usize = 256;

/// The receiving end of the node's event stream.
pub type EventReceiver = tokio::sync::mpsc::Receiver<Event>;

/// A remote node, named by its libp2p peer id (shown and parsed as the usual base58 text).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Peer(libp2p::PeerId);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Peer({})", self.0)
    }
}

impl FromStr for Peer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Peer, Error> {
        libp2p::PeerId::from_str(s)
            .map(Peer)
            .map_err(|_| Error::InvalidPeer(s.to_owned()))
    }
}

/// The two gossip topics of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// Signed records (user actions).
    Records,
    /// Votes and proposals of the delegates.
    Votes,
}

impl Topic {
    pub const ALL: [Topic; 2] = [Topic::Records, Topic::Votes];

    /// The topic name: `peerhours/<first 16 hex chars of the chain id>/records|votes`.
    pub fn name(self, chain_id: &Hash) -> String {
        let hex = chain_id.to_hex();
        let chain = hex.get(..16).unwrap_or(&hex);
        let kind = match self {
            Topic::Records => "records",
            Topic::Votes => "votes",
        };
        format!("peerhours/{chain}/{kind}")
    }
}

/// A gossip message id: blake3 of the message bytes (so the same bytes have the same id on
/// every node, and a record's message id is its record id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(pub Hash);

impl MessageId {
    pub fn of(data: &[u8]) -> MessageId {
        MessageId(Hash::of(data))
    }
}

/// What the node decided about a gossip message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Valid: deliver and forward it.
    Accept,
    /// Invalid whatever our state (malformed, bad signature): drop it and penalise the peer
    /// that sent it.
    Reject,
    /// Not useful to us now (stale, duplicate, depends on state we lack): drop it without
    /// penalty.
    Ignore,
}

/// Handle for answering one inbound sync request with [`Client::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResponseChannelId(pub u64);

/// How a publish went. None of these is a failure: a lone node has nobody to send to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Handed to at least one peer.
    Sent(MessageId),
    /// No peer is subscribed to the topic yet; nothing was sent.
    NoPeers(MessageId),
    /// The same bytes were published recently; not sent again.
    Duplicate(MessageId),
}

impl Published {
    pub fn id(&self) -> MessageId {
        match *self {
            Published::Sent(id) | Published::NoPeers(id) | Published::Duplicate(id) => id,
        }
    }
}

/// What the network tells the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A gossip message, held until the node answers with [`Client::report_validation`]
    /// (`msg_id`, `from`): it is forwarded only if accepted.
    Gossip {
        topic: Topic,
        data: Vec<u8>,
        msg_id: MessageId,
        /// The peer that sent it to us (not necessarily its author).
        from: Peer,
    },
    /// A sync request; answer with [`Client::respond`] (dropping it makes the peer's request
    /// fail after its timeout).
    Request {
        from: Peer,
        data: Vec<u8>,
        channel: ResponseChannelId,
    },
    /// The first connection to a peer is up.
    PeerConnected { peer: Peer },
    /// The last connection to a peer closed.
    PeerDisconnected { peer: Peer },
    /// A peer subscribed to one of our topics (from then on it is in our mesh or fanout, so
    /// gossip reaches it). Informational: the node may ignore it.
    PeerSubscribed { peer: Peer, topic: Topic },
}

/// Node-local bounds of the network layer. Every queue and map of the event loop is bounded
/// by one of these; the gossip message limit is not here because it is a protocol constant
/// ([`protocol::limits::GOSSIP_BYTES_MAX`]) that every node must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Commands queued from clients to the event loop.
    pub command_channel: usize,
    /// Events queued from the event loop to the node; when full, new events are dropped
    /// (gossip is reported `Ignore`, requests fail) rather than stalling the swarm.
    pub event_channel: usize,
    /// Largest sync request accepted from a peer.
    pub sync_request_bytes_max: usize,
    /// Largest sync response accepted from a peer.
    pub sync_response_bytes_max: usize,
    /// Outbound sync requests in flight at once.
    pub requests_in_flight_max: usize,
    /// Inbound sync requests waiting for the node's response at once.
    pub responses_pending_max: usize,
    /// Established connections at once (inbound and outbound).
    pub connections_max: u32,
    /// Established connections per peer.
    pub connections_per_peer_max: u32,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            command_channel: 1024,
            event_channel: 4096,
            sync_request_bytes_max: 64 * 1024,
            // A response carries at least one whole block with its certificate.
            sync_response_bytes_max: 2 * (BLOCK_BYTES_MAX + CERTIFICATE_BYTES_MAX),
            requests_in_flight_max: 256,
            responses_pending_max: 256,
            connections_max: 256,
            connections_per_peer_max: 2,
        }
    }
}

/// Everything [`spawn`] needs. Build with [`Config::new`], adjust fields, and `spawn`
/// validates it once.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen for peers, e.g. `/ip4/127.0.0.1/tcp/7000` (port 0 picks a free one;
    /// [`Client::listen_addrs`] tells which).
    pub listen: Multiaddr,
    /// Peers to dial at start and to keep redialing while disconnected. A `/p2p/<id>`
    /// suffix is recommended: it lets the node recognise that peer's inbound connections.
    pub bootstrap: Vec<Multiaddr>,
    /// The node's libp2p identity (not its delegate key).
    pub identity: Identity,
    /// The chain whose topics the node joins.
    pub chain_id: Hash,
    /// Discover peers on the LAN by multicast. Off by default; never on in tests.
    pub mdns: bool,
    /// Queue, map and message bounds.
    pub bounds: Bounds,
    /// Close a connection after it carried no stream for this long. Long, because delegate
    /// connections should stay open between blocks.
    pub idle_connection_timeout: Duration,
    /// How long an outbound sync request may take.
    pub request_timeout: Duration,
    /// First wait before redialing a bootstrap peer after a failure.
    pub redial_backoff_min: Duration,
    /// Longest wait between redials.
    pub redial_backoff_max: Duration,
}

impl Config {
    pub fn new(listen: Multiaddr, identity: Identity, chain_id: Hash) -> Config {
        Config {
            listen,
            bootstrap: Vec::new(),
            identity,
            chain_id,
            mdns: false,
            bounds: Bounds::default(),
            idle_connection_timeout: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            redial_backoff_min: Duration::from_millis(500),
            redial_backoff_max: Duration::from_secs(30),
        }
    }

    /// Checks the knobs once at start-up.
    pub fn validate(&self) -> Result<(), Error> {
        let b = &self.bounds;
        let bad = |what: &str| Err(Error::Config(what.to_owned()));
        if self.bootstrap.len() > BOOTSTRAP_MAX {
            return bad(&format!("more than {BOOTSTRAP_MAX} bootstrap addresses"));
        }
        if b.command_channel == 0 || b.event_channel == 0 {
            return bad("channel sizes must be at least 1");
        }
        if b.sync_request_bytes_max == 0 || b.sync_response_bytes_max == 0 {
            return bad("sync message bounds must be at least 1 byte");
        }
        if b.sync_response_bytes_max > 1 << 30 || b.sync_request_bytes_max > 1 << 30 {
            return bad("sync message bounds must be at most 1 GiB");
        }
        if b.requests_in_flight_max == 0 || b.responses_pending_max == 0 {
            return bad("request bounds must be at least 1");
        }
        if b.connections_max == 0 || b.connections_per_peer_max == 0 {
            return bad("connection bounds must be at least 1");
        }
        let day = Duration::from_secs(24 * 3600);
        if self.request_timeout.is_zero() || self.request_timeout > day {
            return bad("request_timeout must be between 0 and a day");
        }
        if self.idle_connection_timeout > day * 365 {
            return bad("idle_connection_timeout must be at most a year");
        }
        if self.redial_backoff_min < Duration::from_millis(10)
            || self.redial_backoff_max < self.redial_backoff_min
            || self.redial_backoff_max > day
        {
            return bad("redial backoff must satisfy 10ms <= min <= max <= 1 day");
        }
        Ok(())
    }
}

/// What can go wrong in the network layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid network config: {0}")]
    Config(String),
    #[error("network identity {path:?}: {reason}")]
    Identity { path: String, reason: String },
    #[error("network setup failed: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("network must be spawned inside a tokio runtime")]
    NoRuntime,
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("publish failed: {0}")]
    Publish(String),
    #[error("invalid peer id {0:?}")]
    InvalidPeer(String),
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddr { addr: String, reason: String },
    #[error("dialing {addr} failed: {reason}")]
    Dial { addr: String, reason: String },
    #[error("request to {peer} failed: {reason}")]
    Request { peer: String, reason: String },
    #[error("request to {peer} timed out")]
    Timeout { peer: String },
    #[error("too many sync requests in flight (at most {max})")]
    Busy { max: usize },
    #[error("response channel {0} is unknown, answered or expired")]
    UnknownChannel(u64),
    #[error("the network task has stopped")]
    Stopped,
}

/// Starts the network: builds the swarm, starts listening, joins the chain's topics, and
/// spawns the task that owns the swarm on the current tokio runtime. The task runs until
/// [`Client::shutdown`] or until every `Client` is dropped.
pub fn spawn(config: Config) -> Result<(Client, EventReceiver), Error> {
    config.validate()?;
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let (command_tx, command_rx) = tokio::sync::mpsc::channel(config.bounds.command_channel);
    let (event_tx, event_rx) = tokio::sync::mpsc::channel(config.bounds.event_channel);
    let request_timeout = config.request_timeout;
    let event_loop = {
        // Building the TCP transport and listening needs the runtime's reactor.
        let _guard = runtime.enter();
        event_loop::EventLoop::new(config, command_rx, event_tx)?
    };
    runtime.spawn(event_loop.run());
    Ok((Client::new(command_tx, request_timeout), event_rx))
}
