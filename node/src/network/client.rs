//! The node's handle on the network task: a bounded command channel and oneshot replies.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Error, MessageId, Multiaddr, Peer, Published, ResponseChannelId, Topic, Validation};

/// Extra time the client waits beyond the request timeout, so that the swarm's own timeout
/// (which names the failure precisely) normally fires first.
const REQUEST_GRACE: Duration = Duration::from_secs(2);

/// What a [`Client`] asks of the event loop.
#[derive(Debug)]
pub(crate) enum Command {
    Publish {
        topic: Topic,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Published, Error>>,
    },
    Validate {
        msg_id: MessageId,
        from: Peer,
        verdict: Validation,
    },
    Request {
        peer: Peer,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, Error>>,
    },
    Respond {
        channel: ResponseChannelId,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<Peer>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<String>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A cheap, cloneable handle on the network task. Every method fails with
/// [`Error::Stopped`] once the task is gone.
#[derive(Debug, Clone)]
pub struct Client {
    /// Commands to the event loop; bounded, so a flood of calls waits instead of growing.
    commands: mpsc::Sender<Command>,
    /// The configured sync request timeout (the client's own deadline adds a grace period).
    request_timeout: Duration,
}

impl Client {
    pub(crate) fn new(commands: mpsc::Sender<Command>, request_timeout: Duration) -> Client {
        Client {
            commands,
            request_timeout,
        }
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Stopped)
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply)).await?;
        answer.await.map_err(|_| Error::Stopped)
    }

    /// Gossips the bytes of one signed record.
    pub async fn publish_record(&self, data: Vec<u8>) -> Result<Published, Error> {
        self.publish(Topic::Records, data).await
    }

    /// Gossips the bytes of one signed vote or proposal.
    pub async fn publish_vote(&self, data: Vec<u8>) -> Result<Published, Error> {
        self.publish(Topic::Votes, data).await
    }

    pub async fn publish(&self, topic: Topic, data: Vec<u8>) -> Result<Published, Error> {
        self.ask(|reply| Command::Publish { topic, data, reply })
            .await?
    }

    /// Tells gossipsub what the node made of a message from an [`super::Event::Gossip`]:
    /// accepted messages are forwarded, rejected ones count against `from`. Call it once per
    /// message; an unanswered message expires from the cache and is never forwarded.
    pub async fn report_validation(
        &self,
        msg_id: MessageId,
        from: Peer,
        verdict: Validation,
    ) -> Result<(), Error> {
        self.send(Command::Validate {
            msg_id,
            from,
            verdict,
        })
        .await
    }

    /// Sends a sync request to `peer` and waits for its response (or the request timeout).
    pub async fn request(&self, peer: Peer, data: Vec<u8>) -> Result<Vec<u8>, Error> {
        let deadline = self.request_timeout.saturating_add(REQUEST_GRACE);
        let asked = self.ask(|reply| Command::Request { peer, data, reply });
        match tokio::time::timeout(deadline, asked).await {
            Ok(answer) => answer?,
            Err(_) => Err(Error::Timeout {
                peer: peer.to_string(),
            }),
        }
    }

    /// Answers the inbound request behind `channel`.
    pub async fn respond(&self, channel: ResponseChannelId, data: Vec<u8>) -> Result<(), Error> {
        self.ask(|reply| Command::Respond {
            channel,
            data,
            reply,
        })
        .await?
    }

    /// The peers we are connected to, sorted.
    pub async fn peers(&self) -> Result<Vec<Peer>, Error> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Our listen addresses with `/p2p/<our peer id>`, as others should dial them. Waits
    /// until the listener is bound; empty if listening failed.
    pub async fn listen_addrs(&self) -> Result<Vec<String>, Error> {
        self.ask(|reply| Command::ListenAddrs { reply }).await
    }

    /// Dials an address (`/ip4/.../tcp/.../p2p/<id>`). Returns once the dial has started;
    /// the connection shows up as [`super::Event::PeerConnected`]. Not redialed if it drops.
    pub async fn dial(&self, addr: &str) -> Result<(), Error> {
        let addr: Multiaddr = addr.parse().map_err(|e| Error::InvalidAddr {
            addr: addr.to_owned(),
            reason: format!("{e}"),
        })?;
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }

    /// Stops the network task and waits until it has dropped the swarm (closing every
    /// connection). Idempotent: a second call finds the task gone and returns `Ok`.
    pub async fn shutdown(&self) -> Result<(), Error> {
        match self.ask(|reply| Command::Shutdown { reply }).await {
            Ok(()) | Err(Error::Stopped) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
