//! Keeps the node connected to its bootstrap peers: dial at start, redial with exponential
//! backoff after a failed dial or a lost connection. Delegates must stay connected to each
//! other, so this never gives up; the backoff only caps how often it knocks.
//!
//! Pure bookkeeping over `Instant`s handed in by the caller, so it is tested without a clock.

use std::time::{Duration, Instant};

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// Where one bootstrap address stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not connected; dial at or after `next`.
    Waiting { next: Instant },
    /// A dial is in flight with this connection id.
    Dialing(ConnectionId),
    /// Connected since this instant.
    Connected { since: Instant },
}

#[derive(Debug)]
struct Entry {
    /// The address from the config.
    addr: Multiaddr,
    /// The peer at that address: from its `/p2p/` suffix, or learned from our last dial.
    peer: Option<PeerId>,
    state: State,
    /// Wait before the next dial after a failure; doubles up to the maximum.
    backoff: Duration,
}

/// Redial bookkeeping for all bootstrap addresses.
#[derive(Debug)]
pub(crate) struct Redial {
    entries: Vec<Entry>,
    /// First wait after a failure, and the wait after a long-lived connection drops.
    backoff_min: Duration,
    /// Longest wait between dials.
    backoff_max: Duration,
}

/// The peer id named by a multiaddr's trailing `/p2p/<id>`, if any.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// `now + wait`, or `now` if that overflows (waits are bounded by the config anyway).
fn after(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait).unwrap_or(now)
}

impl Redial {
    pub(crate) fn new(
        addrs: &[Multiaddr],
        now: Instant,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> Redial {
        let entries = addrs
            .iter()
            .map(|addr| Entry {
                addr: addr.clone(),
                peer: peer_of(addr),
                state: State::Waiting { next: now },
                backoff: backoff_min,
            })
            .collect();
        Redial {
            entries,
            backoff_min,
            backoff_max,
        }
    }

    /// Addresses whose next dial is due, in config order. The caller dials each and reports
    /// the connection id with [`Redial::dialing`].
    pub(crate) fn due(&self, now: Instant) -> Vec<(usize, Multiaddr)> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.state, State::Waiting { next } if next <= now))
            .map(|(i, e)| (i, e.addr.clone()))
            .collect()
    }

    pub(crate) fn dialing(&mut self, index: usize, connection: ConnectionId) {
        if let Some(e) = self.entries.get_mut(index) {
            e.state = State::Dialing(connection);
        }
    }

    /// A dial could not even start (e.g. an unsupported address): treat it as a failure.
    pub(crate) fn dial_refused(&mut self, index: usize, now: Instant) {
        let max = self.backoff_max;
        if let Some(e) = self.entries.get_mut(index) {
            e.state = State::Waiting {
                next: after(now, e.backoff),
            };
            e.backoff = e.backoff.saturating_mul(2).min(max);
        }
    }

    /// An outgoing connection failed; the matching entry waits out its backoff.
    pub(crate) fn dial_failed(&mut self, connection: ConnectionId, now: Instant) {
        let max = self.backoff_max;
        for e in &mut self.entries {
            if e.state == State::Dialing(connection) {
                e.state = State::Waiting {
                    next: after(now, e.backoff),
                };
                e.backoff = e.backoff.saturating_mul(2).min(max);
            }
        }
    }

    /// A connection to `peer` is up (ours or theirs). Entries for that peer, or the entry
    /// whose dial produced this connection, count as connected.
    pub(crate) fn connected(&mut self, peer: PeerId, connection: ConnectionId, now: Instant) {
        for e in &mut self.entries {
            let ours = e.state == State::Dialing(connection);
            if ours {
                // Our dial reached whoever listens there now (a node may have restarted
                // with a new identity at the same address); an address with `/p2p/` can
                // only reach that peer anyway.
                e.peer = Some(peer);
            }
            if (ours || e.peer == Some(peer)) && !matches!(e.state, State::Connected { .. }) {
                e.state = State::Connected { since: now };
            }
        }
    }

    /// The last connection to `peer` closed. Redial after the backoff; a connection that
    /// lived at least `backoff_max` resets it, so only flapping peers are slowed down.
    pub(crate) fn disconnected(&mut self, peer: PeerId, now: Instant) {
        let (min, max) = (self.backoff_min, self.backoff_max);
        for e in &mut self.entries {
            if e.peer != Some(peer) {
                continue;
            }
            if let State::Connected { since } = e.state {
                if now.saturating_duration_since(since) >= max {
                    e.backoff = min;
                }
                e.state = State::Waiting {
                    next: after(now, e.backoff),
                };
                e.backoff = e.backoff.saturating_mul(2).min(max);
            }
        }
    }

    /// Whether any entry is waiting for its next dial (the caller may skip its timer if not).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::Waiting { .. }))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16, peer: Option<PeerId>) -> Multiaddr {
        let mut a: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
        if let Some(p) = peer {
            a.push(libp2p::multiaddr::Protocol::P2p(p));
        }
        a
    }

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_millis(800);

    #[test]
    fn failed_dials_back_off_exponentially_up_to_the_cap() {
        let t0 = Instant::now();
        let mut r = Redial::new(&[addr(1, None)], t0, MIN, MAX);
        let mut now = t0;
        let mut waits = Vec::new();
        for n in 0..6u64 {
            let due = r.due(now);
            assert_eq!(due.len(), 1, "due at round {n}");
            let id = ConnectionId::new_unchecked(usize::try_from(n).expect("small"));
            r.dialing(0, id);
            assert!(
                r.due(now + MAX * 10).is_empty(),
                "no second dial while dialing"
            );
            r.dial_failed(id, now);
            let State::Waiting { next } = r.entries[0].state else {
                panic!("waiting after failure")
            };
            waits.push(next - now);
            assert!(r.due(next - Duration::from_millis(1)).is_empty());
            now = next;
        }
        let ms: Vec<u128> = waits.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 800, 800]);
    }

    #[test]
    fn learns_the_peer_and_redials_after_disconnect() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let mut r = Redial::new(&[addr(1, None)], t0, MIN, MAX);
        let id = ConnectionId::new_unchecked(7);
        r.dialing(0, id);
        r.connected(peer, id, t0);
        assert_eq!(r.waiting(), 0);
        assert!(r.due(t0 + MAX * 10).is_empty());
        // A short-lived connection: backoff keeps growing.
        r.disconnected(peer, t0 + Duration::from_millis(10));
        assert_eq!(r.due(t0 + Duration::from_millis(10) + MIN).len(), 1);
    }

    #[test]
    fn an_inbound_connection_from_a_bootstrap_peer_counts() {
        let t0 = Instant::now();
        let peer = PeerId::random();
        let other = PeerId::random();
        let mut r = Redial::new(&[addr(1, Some(peer)), addr(2, Some(other))], t0, MIN, MAX);
        r.connected(peer, ConnectionId::new_unchecked(1), t0);
        let due: Vec<usize> = r.due(t0).into_iter().map(|(i, _)| i).collect();
        assert_eq!(due, vec![1]);
        // Disconnecting a peer that is not a bootstrap peer changes nothing.
        r.disconnected(PeerId::random(), t0);
        assert_eq!(r.waiting(), 1);
        // A long-lived connection resets the backoff to the minimum.
        let later = t0 + MAX * 2;
        r.disconnected(peer, later);
        let State::Waiting { next } = r.entries[0].state else {
            panic!("waiting")
        };
        assert_eq!(next - later, MIN);
    }
}
