//! The task that owns the libp2p swarm. It turns client commands into swarm calls and swarm
//! events into node [`Event`]s; it never blocks on the node (a full event queue drops the
//! event), so connections, pings and gossip heartbeats keep running whatever the node does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, PublishError, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{connection_limits, identify, mdns, noise, tcp, yamux, PeerId, StreamProtocol, Swarm};
use protocol::limits::GOSSIP_BYTES_MAX;
use protocol::Hash;
use tokio::sync::{mpsc, oneshot};

use super::client::Command;
use super::codec::{SyncCodec, SYNC_PROTOCOL};
use super::redial::{peer_of, Redial};
use super::{
    Bounds, Config, Error, Event, MessageId, Peer, Published, ResponseChannelId, Topic, Validation,
    IDENTIFY_PROTOCOL,
};

/// Most listen addresses remembered (a wildcard listener reports one per interface).
const LISTEN_ADDRS_MAX: usize = 64;
/// Most `listen_addrs` callers parked until the listener is bound.
const LISTEN_WAITERS_MAX: usize = 64;
/// Most addresses kept per peer from identify (used to reach it for sync requests).
const IDENTIFY_ADDRS_MAX: usize = 8;

/// An outbound sync request: who was asked, and where the answer goes.
type PendingRequest = (Peer, oneshot::Sender<Result<Vec<u8>, Error>>);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    gossipsub:
        gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>,
    sync: request_response::Behaviour<SyncCodec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// The two topics of our chain, and their hashes for matching incoming messages.
struct Topics {
    records: IdentTopic,
    votes: IdentTopic,
}

impl Topics {
    fn new(chain_id: &Hash) -> Topics {
        Topics {
            records: IdentTopic::new(Topic::Records.name(chain_id)),
            votes: IdentTopic::new(Topic::Votes.name(chain_id)),
        }
    }

    fn get(&self, topic: Topic) -> &IdentTopic {
        match topic {
            Topic::Records => &self.records,
            Topic::Votes => &self.votes,
        }
    }

    fn find(&self, hash: &TopicHash) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| &self.get(*t).hash() == hash)
    }
}

pub(crate) struct EventLoop {
    /// The libp2p swarm: transports, connections and all behaviours.
    swarm: Swarm<Behaviour>,
    /// Commands from clients; the loop ends when every client is gone.
    commands: mpsc::Receiver<Command>,
    /// Events to the node; bounded, written with `try_send`.
    events: mpsc::Sender<Event>,
    topics: Topics,
    bounds: Bounds,
    /// Outbound sync requests awaiting a response, by libp2p request id (lookup only).
    requests: HashMap<OutboundRequestId, PendingRequest>,
    /// Inbound sync requests awaiting the node's response.
    responses: BTreeMap<u64, ResponseChannel<Vec<u8>>>,
    /// Next [`ResponseChannelId`]; never reused.
    next_response: u64,
    /// Addresses we listen on, as reported by the swarm.
    listen_addrs: Vec<libp2p::Multiaddr>,
    /// `listen_addrs` callers waiting for the first listen address.
    listen_waiters: Vec<oneshot::Sender<Vec<String>>>,
    /// Whether the listener is gone (then waiters get an empty answer at once).
    listener_closed: bool,
    /// Bootstrap redial bookkeeping.
    redial: Redial,
    /// How often bootstrap dials are checked.
    redial_tick: Duration,
    /// Events dropped because the node's queue was full (logged, for diagnosis).
    events_dropped: u64,
}

impl EventLoop {
    pub(crate) fn new(
        config: Config,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<Event>,
    ) -> Result<EventLoop, Error> {
        let topics = Topics::new(&config.chain_id);
        let bounds = config.bounds;
        let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());

        let mut swarm =
            libp2p::SwarmBuilder::with_existing_identity(config.identity.keypair.clone())
                .with_tokio()
                .with_tcp(
                    tcp::Config::default().nodelay(true),
                    noise::Config::new,
                    yamux::Config::default,
                )
                .map_err(|e| setup(&e))?
                .with_behaviour(
                    |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                        Ok(build_behaviour(key, &config, &topics)?)
                    },
                )
                .map_err(|e| setup(&e))?
                .with_swarm_config(|c| {
                    c.with_idle_connection_timeout(config.idle_connection_timeout)
                })
                .build();

        for topic in [&topics.records, &topics.votes] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| setup(&e))?;
        }
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| Error::Listen {
                addr: config.listen.to_string(),
                reason: e.to_string(),
            })?;
        tracing::info!(
            peer = %swarm.local_peer_id(),
            listen = %config.listen,
            records = %topics.records,
            votes = %topics.votes,
            "network starting"
        );

        // A shared address list may name this node too: never dial ourselves.
        let me = *swarm.local_peer_id();
        let bootstrap: Vec<libp2p::Multiaddr> = config
            .bootstrap
            .iter()
            .filter(|a| peer_of(a) != Some(me))
            .cloned()
            .collect();
        let redial = Redial::new(
            &bootstrap,
            Instant::now(),
            config.redial_backoff_min,
            config.redial_backoff_max,
        );
        Ok(EventLoop {
            swarm,
            commands,
            events,
            topics,
            bounds,
            requests: HashMap::new(),
            responses: BTreeMap::new(),
            next_response: 0,
            listen_addrs: Vec::new(),
            listen_waiters: Vec::new(),
            listener_closed: false,
            redial,
            redial_tick: config.redial_backoff_min.min(Duration::from_secs(1)),
            events_dropped: 0,
        })
    }

    pub(crate) async fn run(mut self) {
        self.dial_due();
        let mut tick = tokio::time::interval(self.redial_tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown_reply = loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown { reply }) => break Some(reply),
                    Some(command) => self.on_command(command),
                    None => break None,
                },
                _ = tick.tick() => self.dial_due(),
            }
        };
        let peer = *self.swarm.local_peer_id();
        // Dropping the swarm closes every connection and listener.
        drop(self);
        tracing::info!(%peer, "network stopped");
        if let Some(reply) = shutdown_reply {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(());
        }
    }

    fn dial_due(&mut self) {
        let now = Instant::now();
        for (index, addr) in self.redial.due(now) {
            let opts = DialOpts::from(addr.clone());
            let connection = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(%addr, "dialing bootstrap peer");
                    self.redial.dialing(index, connection);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "cannot dial bootstrap peer");
                    self.redial.dial_refused(index, now);
                }
            }
        }
    }

    /// Queues an event for the node without waiting. Returns whether it was queued: not if
    /// the queue is full or the node has stopped reading, and then the caller cleans up.
    fn emit(&mut self, event: Event) -> bool {
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.events_dropped = self.events_dropped.saturating_add(1);
                tracing::warn!(
                    dropped = self.events_dropped,
                    "node event queue full; dropping network event"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data, reply } => {
                let _ = reply.send(self.publish(topic, data));
            }
            Command::Validate {
                msg_id,
                from,
                verdict,
            } => {
                let acceptance = match verdict {
                    Validation::Accept => MessageAcceptance::Accept,
                    Validation::Reject => MessageAcceptance::Reject,
                    Validation::Ignore => MessageAcceptance::Ignore,
                };
                if verdict == Validation::Reject {
                    tracing::warn!(peer = %from, msg = %msg_id.0, "penalising peer for an invalid message");
                }
                let known = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&gossip_id(msg_id), &from.0, acceptance);
                if !known {
                    tracing::debug!(msg = %msg_id.0, "validation for a message no longer cached");
                }
            }
            Command::Request { peer, data, reply } => {
                if self.requests.len() >= self.bounds.requests_in_flight_max {
                    let _ = reply.send(Err(Error::Busy {
                        max: self.bounds.requests_in_flight_max,
                    }));
                    return;
                }
                if data.len() > self.bounds.sync_request_bytes_max {
                    let _ = reply.send(Err(Error::TooLarge {
                        len: data.len(),
                        max: self.bounds.sync_request_bytes_max,
                    }));
                    return;
                }
                let id = self.swarm.behaviour_mut().sync.send_request(&peer.0, data);
                self.requests.insert(id, (peer, reply));
            }
            Command::Respond {
                channel,
                data,
                reply,
            } => {
                let result = match self.responses.remove(&channel.0) {
                    None => Err(Error::UnknownChannel(channel.0)),
                    Some(_) if data.len() > self.bounds.sync_response_bytes_max => {
                        Err(Error::TooLarge {
                            len: data.len(),
                            max: self.bounds.sync_response_bytes_max,
                        })
                    }
                    Some(ch) => self
                        .swarm
                        .behaviour_mut()
                        .sync
                        .send_response(ch, data)
                        .map_err(|_| Error::UnknownChannel(channel.0)),
                };
                let _ = reply.send(result);
            }
            Command::Peers { reply } => {
                let mut peers: Vec<Peer> = self.swarm.connected_peers().map(|p| Peer(*p)).collect();
                peers.sort();
                let _ = reply.send(peers);
            }
            Command::ListenAddrs { reply } => {
                if self.listen_addrs.is_empty() && !self.listener_closed {
                    if self.listen_waiters.len() < LISTEN_WAITERS_MAX {
                        self.listen_waiters.push(reply);
                    } else {
                        let _ = reply.send(Vec::new());
                    }
                } else {
                    let _ = reply.send(self.full_listen_addrs());
                }
            }
            Command::Dial { addr, reply } => {
                let result = self.swarm.dial(addr.clone()).map_err(|e| Error::Dial {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
                let _ = reply.send(result);
            }
            Command::Shutdown { reply } => {
                // Handled by the loop itself; answering here keeps the match total.
                let _ = reply.send(());
            }
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) -> Result<Published, Error> {
        if data.len() > GOSSIP_BYTES_MAX {
            return Err(Error::TooLarge {
                len: data.len(),
                max: GOSSIP_BYTES_MAX,
            });
        }
        let id = MessageId::of(&data);
        let len = data.len();
        let hash = self.topics.get(topic).hash();
        match self.swarm.behaviour_mut().gossipsub.publish(hash, data) {
            Ok(_) => {
                tracing::debug!(?topic, msg = %id.0, len, "published");
                Ok(Published::Sent(id))
            }
            Err(PublishError::NoPeersSubscribedToTopic) => {
                // Normal for a lone node or before peers have joined.
                tracing::debug!(?topic, msg = %id.0, "published to nobody: no peers on topic");
                Ok(Published::NoPeers(id))
            }
            Err(PublishError::Duplicate) => Ok(Published::Duplicate(id)),
            Err(PublishError::MessageTooLarge) => Err(Error::TooLarge {
                // The encoded frame (data plus gossipsub framing) is over the limit.
                len,
                max: GOSSIP_BYTES_MAX,
            }),
            Err(e) => Err(Error::Publish(e.to_string())),
        }
    }

    fn full_listen_addrs(&self) -> Vec<String> {
        let me = *self.swarm.local_peer_id();
        self.listen_addrs
            .iter()
            .map(|a| {
                let mut a = a.clone();
                if peer_of(&a).is_none() {
                    a.push(Protocol::P2p(me));
                }
                a.to_string()
            })
            .collect()
    }

    fn answer_listen_waiters(&mut self) {
        let addrs = self.full_listen_addrs();
        for waiter in self.listen_waiters.drain(..) {
            let _ = waiter.send(addrs.clone());
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => self.on_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if info.protocol_version != IDENTIFY_PROTOCOL {
                    tracing::debug!(peer = %peer_id, version = %info.protocol_version, "peer speaks another protocol version");
                    return;
                }
                // Remember where the peer listens, so sync requests can reach it later.
                for addr in info.listen_addrs.into_iter().take(IDENTIFY_ADDRS_MAX) {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(_)) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    tracing::debug!(%peer, %addr, "mdns discovered peer");
                    if let Err(e) = self.swarm.dial(addr) {
                        tracing::debug!(%peer, error = %e, "cannot dial mdns peer");
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(_))) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Limits(never)) => match never {},
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                if self.listen_addrs.len() < LISTEN_ADDRS_MAX
                    && !self.listen_addrs.contains(&address)
                {
                    self.listen_addrs.push(address);
                }
                self.answer_listen_waiters();
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| a != &address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                tracing::warn!(?reason, "listener closed");
                self.listener_closed = true;
                self.answer_listen_waiters();
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::warn!(%error, "listener error");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                self.redial
                    .connected(peer_id, connection_id, Instant::now());
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                    self.emit(Event::PeerConnected {
                        peer: Peer(peer_id),
                    });
                }
            }
            // Only the last connection to a peer closing makes it disconnected.
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                cause,
                ..
            } => {
                tracing::info!(peer = %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                self.redial.disconnected(peer_id, Instant::now());
                self.emit(Event::PeerDisconnected {
                    peer: Peer(peer_id),
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, %error, "outgoing connection failed");
                self.redial.dial_failed(connection_id, Instant::now());
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                tracing::debug!(%send_back_addr, %error, "incoming connection failed");
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let from = Peer(propagation_source);
                let verdict = match (self.topics.find(&message.topic), message_hash(&message_id)) {
                    (Some(topic), Some(id)) if message.data.len() <= GOSSIP_BYTES_MAX => {
                        tracing::debug!(?topic, msg = %id, peer = %from, "gossip received");
                        let event = Event::Gossip {
                            topic,
                            data: message.data,
                            msg_id: MessageId(id),
                            from,
                        };
                        if self.emit(event) {
                            // The node now owes a verdict.
                            return;
                        }
                        // Never seen by the node: drop it without penalty.
                        MessageAcceptance::Ignore
                    }
                    _ => {
                        tracing::warn!(peer = %from, "penalising peer for a malformed gossip message");
                        MessageAcceptance::Reject
                    }
                };
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(topic) = self.topics.find(&topic) {
                    tracing::debug!(peer = %peer_id, ?topic, "peer subscribed");
                    self.emit(Event::PeerSubscribed {
                        peer: Peer(peer_id),
                        topic,
                    });
                }
            }
            gossipsub::Event::Unsubscribed { .. } => {}
            gossipsub::Event::GossipsubNotSupported { peer_id } => {
                tracing::debug!(peer = %peer_id, "peer does not speak gossipsub");
            }
            gossipsub::Event::SlowPeer { peer_id, .. } => {
                tracing::debug!(peer = %peer_id, "slow gossip peer");
            }
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_request(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, reply)) = self.requests.remove(&request_id) {
                    let error = match error {
                        request_response::OutboundFailure::Timeout => Error::Timeout {
                            peer: peer.to_string(),
                        },
                        other => Error::Request {
                            peer: peer.to_string(),
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound sync request failed");
                // The channel of a failed request is closed; forget it.
                self.responses.retain(|_, ch| ch.is_open());
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(&mut self, peer: PeerId, data: Vec<u8>, channel: ResponseChannel<Vec<u8>>) {
        if self.responses.len() >= self.bounds.responses_pending_max {
            self.responses.retain(|_, ch| ch.is_open());
        }
        if self.responses.len() >= self.bounds.responses_pending_max {
            tracing::warn!(%peer, "too many sync requests pending; dropping one");
            return; // dropping the channel fails the peer's request
        }
        let id = self.next_response;
        self.next_response = self.next_response.wrapping_add(1);
        let event = Event::Request {
            from: Peer(peer),
            data,
            channel: ResponseChannelId(id),
        };
        if self.emit(event) {
            self.responses.insert(id, channel);
        }
    }
}

/// Our message id for bytes: blake3 of the data, as gossipsub wants it.
fn gossip_id(id: MessageId) -> gossipsub::MessageId {
    gossipsub::MessageId(id.0 .0.to_vec())
}

/// The hash inside a gossipsub message id made by [`gossip_id`]'s rule.
fn message_hash(id: &gossipsub::MessageId) -> Option<Hash> {
    <[u8; 32]>::try_from(id.0.as_slice()).ok().map(Hash)
}

fn build_behaviour(
    key: &libp2p::identity::Keypair,
    config: &Config,
    topics: &Topics,
) -> Result<Behaviour, Error> {
    let setup = |e: &dyn std::fmt::Display| Error::Setup(e.to_string());
    let bounds = &config.bounds;

    let limits = connection_limits::Behaviour::new(
        connection_limits::ConnectionLimits::default()
            .with_max_established(Some(bounds.connections_max))
            .with_max_established_per_peer(Some(bounds.connections_per_peer_max))
            .with_max_pending_incoming(Some(bounds.connections_max))
            .with_max_pending_outgoing(Some(bounds.connections_max)),
    );

    let identify = identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
            .with_cache_size(usize::try_from(bounds.connections_max).unwrap_or(usize::MAX)),
    );

    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| gossip_id(MessageId::of(&m.data)))
        .max_transmit_size(GOSSIP_BYTES_MAX)
        .build()
        .map_err(|e| setup(&e))?;
    let whitelist: HashSet<TopicHash> = [topics.records.hash(), topics.votes.hash()]
        .into_iter()
        .collect();
    let mut gossipsub = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Anonymous,
        gossip_config,
        gossipsub::WhitelistSubscriptionFilter(whitelist),
    )
    .map_err(|e| setup(&e))?;
    let (params, thresholds) = scoring(topics);
    gossipsub
        .with_peer_score(params, thresholds)
        .map_err(|e| setup(&e))?;

    let codec = SyncCodec {
        request_bytes_max: bounds.sync_request_bytes_max,
        response_bytes_max: bounds.sync_response_bytes_max,
    };
    let sync = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(config.request_timeout)
            .with_max_concurrent_streams(
                bounds
                    .requests_in_flight_max
                    .saturating_add(bounds.responses_pending_max),
            ),
    );

    let mdns = if config.mdns {
        let peer = key.public().to_peer_id();
        Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer).map_err(|e| setup(&e))?)
    } else {
        None
    };

    Ok(Behaviour {
        limits,
        identify,
        gossipsub,
        sync,
        mdns: Toggle::from(mdns),
    })
}

/// Gossipsub peer scoring. Honest nodes validate before forwarding, so an invalid message
/// is always the sender's fault: P4 (invalid deliveries) weighs heavily, and its counter is
/// squared, so one rejected message puts a peer below the gossip threshold (-10) and two
/// below the graylist (-80), where everything it sends is ignored. The counter decays to
/// zero over about ten minutes. Mesh delivery-rate penalties (P3, P3b) are off: the ledger
/// is quiet between blocks and a quiet honest peer must not be punished. Loopback is exempt
/// from the IP colocation penalty so that test networks on one host score normally.
fn scoring(topics: &Topics) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let decay = gossipsub::score_parameter_decay(Duration::from_secs(600));
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: decay,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -20.0,
        invalid_message_deliveries_decay: decay,
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 20.0,
        ..gossipsub::PeerScoreParams::default()
    };
    params.topics.insert(topics.records.hash(), topic.clone());
    params.topics.insert(topics.votes.hash(), topic);
    params.ip_colocation_factor_whitelist.extend([
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]);
    (params, gossipsub::PeerScoreThresholds::default())
}
