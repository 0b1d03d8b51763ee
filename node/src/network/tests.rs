//! Several real nodes in one process on loopback TCP (free ports, no mDNS). Waits are on
//! events with a deadline; the only fixed windows are the short ones that check something
//! does *not* happen.

use std::time::Duration;

use protocol::Hash;
use tokio::time::timeout;

use super::*;

/// Longest wait for something that should happen.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long we watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(700);

fn chain() -> Hash {
    Hash::of(b"peerhours network test chain")
}

struct Node {
    client: Client,
    events: EventReceiver,
    peer: Peer,
    /// Our first listen address, with `/p2p/<peer>`.
    addr: Multiaddr,
}

fn config(seed: u8, listen: &str, bootstrap: &[&Multiaddr]) -> Config {
    let identity = Identity::from_seed([seed; 32]).expect("identity");
    let mut c = Config::new(listen.parse().expect("listen addr"), identity, chain());
    c.bootstrap = bootstrap.iter().map(|a| (*a).clone()).collect();
    c.redial_backoff_min = Duration::from_millis(50);
    c.redial_backoff_max = Duration::from_millis(400);
    c.request_timeout = Duration::from_secs(5);
    c
}

async fn start_with(config: Config) -> Node {
    let peer = config.identity.peer();
    let (client, events) = spawn(config).expect("spawn");
    let addrs = timeout(DEADLINE, client.listen_addrs())
        .await
        .expect("listen addrs in time")
        .expect("listen addrs");
    let addr: Multiaddr = addrs
        .first()
        .expect("one listen address")
        .parse()
        .expect("addr");
    assert!(addrs[0].ends_with(&format!("/p2p/{peer}")), "{addrs:?}");
    Node {
        client,
        events,
        peer,
        addr,
    }
}

async fn start(seed: u8, bootstrap: &[&Multiaddr]) -> Node {
    start_with(config(seed, "/ip4/127.0.0.1/tcp/0", bootstrap)).await
}

/// Waits for the first event matching `want`, dropping the others on the way.
async fn expect_event(node: &mut Node, what: &str, mut want: impl FnMut(&Event) -> bool) -> Event {
    let wait = async {
        loop {
            match node.events.recv().await {
                Some(e) if want(&e) => return e,
                Some(_) => continue,
                None => panic!("event stream ended while waiting for {what}"),
            }
        }
    };
    timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Asserts that no gossip arrives within [`QUIET`].
async fn expect_no_gossip(node: &mut Node, what: &str) {
    let wait = async {
        loop {
            match node.events.recv().await {
                Some(e @ Event::Gossip { .. }) => return e,
                Some(_) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    };
    if let Ok(e) = timeout(QUIET, wait).await {
        panic!("{what}: unexpected {e:?}");
    }
}

async fn expect_gossip(node: &mut Node, data: &[u8]) -> (MessageId, Peer) {
    match expect_event(
        node,
        "gossip",
        |e| matches!(e, Event::Gossip { data: d, .. } if d == data),
    )
    .await
    {
        Event::Gossip {
            topic,
            msg_id,
            from,
            ..
        } => {
            assert_eq!(topic, Topic::Records);
            assert_eq!(msg_id, MessageId::of(data));
            (msg_id, from)
        }
        other => panic!("not gossip: {other:?}"),
    }
}

/// Waits until every one of `peers` has subscribed to the records topic, in any order.
async fn expect_subscribed(node: &mut Node, peers: &[Peer]) {
    let mut missing: Vec<Peer> = peers.to_vec();
    while let Some(first) = missing.first().copied() {
        let what = format!(
            "{first} (and {} more) subscribing to records",
            missing.len() - 1
        );
        let event = expect_event(node, &what, |e| {
            matches!(e, Event::PeerSubscribed { peer, topic: Topic::Records } if missing.contains(peer))
        })
        .await;
        if let Event::PeerSubscribed { peer, .. } = event {
            missing.retain(|p| *p != peer);
        }
    }
}

/// A -- B -- C: A and C only know B, so whatever C gets from A went through B.
async fn line(seed: u8) -> (Node, Node, Node) {
    let mut b = start(seed + 1, &[]).await;
    let mut a = start(seed, &[&b.addr]).await;
    let mut c = start(seed + 2, &[&b.addr]).await;
    expect_subscribed(&mut b, &[a.peer, c.peer]).await;
    expect_subscribed(&mut a, &[b.peer]).await;
    expect_subscribed(&mut c, &[b.peer]).await;
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_reaches_others_only_after_accept() {
    let (a, mut b, mut c) = line(1).await;
    let record = b"signed record bytes #1".to_vec();
    let published = a
        .client
        .publish_record(record.clone())
        .await
        .expect("publish");
    assert_eq!(published, Published::Sent(MessageId::of(&record)));

    let (id, from) = expect_gossip(&mut b, &record).await;
    assert_eq!(from, a.peer);
    expect_no_gossip(&mut c, "C before B validated").await;

    b.client
        .report_validation(id, from, Validation::Accept)
        .await
        .expect("report");
    let (id_c, from_c) = expect_gossip(&mut c, &record).await;
    assert_eq!((id_c, from_c), (id, b.peer));
    c.client
        .report_validation(id_c, from_c, Validation::Accept)
        .await
        .expect("report");

    // Publishing the same bytes again is not an error and sends nothing new.
    let again = a
        .client
        .publish_record(record.clone())
        .await
        .expect("republish");
    assert_eq!(again, Published::Duplicate(id));
    for n in [a, b, c] {
        n.client.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_gossip_is_not_forwarded_and_the_sender_is_penalised() {
    let (a, mut b, mut c) = line(61).await;
    // Three invalid messages: the P4 penalty (-20 x count^2) takes A below the graylist.
    for n in 0..3u8 {
        let bad = vec![0xBA, 0xD0, n];
        a.client.publish_record(bad.clone()).await.expect("publish");
        let (id, from) = expect_gossip(&mut b, &bad).await;
        b.client
            .report_validation(id, from, Validation::Reject)
            .await
            .expect("report");
    }
    expect_no_gossip(&mut c, "C after B rejected").await;

    // B now ignores A altogether, even for a valid message.
    let good = b"a valid record from a graylisted peer".to_vec();
    a.client.publish_record(good).await.expect("publish");
    expect_no_gossip(&mut b, "B from a graylisted peer").await;

    // C, whose score at B is clean, still gets through B.
    let from_c = b"record from C".to_vec();
    c.client
        .publish_record(from_c.clone())
        .await
        .expect("publish");
    let (_, from) = expect_gossip(&mut b, &from_c).await;
    assert_eq!(from, c.peer);
    for n in [a, b, c] {
        n.client.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_request_round_trip() {
    let mut b = start(12, &[]).await;
    let mut a = start(11, &[&b.addr]).await;
    let b_peer = b.peer;
    expect_event(
        &mut a,
        "connection to B",
        |e| matches!(e, Event::PeerConnected { peer } if *peer == b_peer),
    )
    .await;

    let responder = async {
        let event = expect_event(&mut b, "sync request", |e| {
            matches!(e, Event::Request { .. })
        })
        .await;
        let Event::Request {
            from,
            data,
            channel,
        } = event
        else {
            unreachable!("matched above")
        };
        assert_eq!(from, a.peer);
        assert_eq!(data, b"blocks from height 1".to_vec());
        b.client
            .respond(channel, vec![42u8; 100_000])
            .await
            .expect("respond");
        // A channel answers once.
        assert_eq!(
            b.client.respond(channel, vec![1]).await,
            Err(Error::UnknownChannel(channel.0))
        );
    };
    let (response, ()) = tokio::join!(
        a.client.request(b_peer, b"blocks from height 1".to_vec()),
        responder
    );
    assert_eq!(response.expect("response"), vec![42u8; 100_000]);

    // An oversized request is refused locally.
    let too_big = vec![0u8; Bounds::default().sync_request_bytes_max + 1];
    assert!(matches!(
        a.client.request(b_peer, too_big).await,
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(a.client.peers().await.expect("peers"), vec![b_peer]);
    a.client.shutdown().await.expect("shutdown");
    b.client.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_request_times_out() {
    let mut b = start(22, &[]).await;
    let mut cfg = config(21, "/ip4/127.0.0.1/tcp/0", &[&b.addr]);
    cfg.request_timeout = Duration::from_millis(300);
    let mut a = start_with(cfg).await;
    let b_peer = b.peer;
    expect_event(
        &mut a,
        "connection to B",
        |e| matches!(e, Event::PeerConnected { peer } if *peer == b_peer),
    )
    .await;
    let (response, _request) = tokio::join!(
        a.client.request(b_peer, b"anyone?".to_vec()),
        // B receives the request and keeps the channel without answering.
        expect_event(&mut b, "sync request", |e| matches!(
            e,
            Event::Request { .. }
        ))
    );
    assert_eq!(
        response,
        Err(Error::Timeout {
            peer: b_peer.to_string()
        })
    );
    a.client.shutdown().await.expect("shutdown");
    b.client.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_node_joins_via_bootstrap_and_gets_gossip() {
    let mut b = start(32, &[]).await;
    let mut a = start(31, &[&b.addr]).await;
    expect_subscribed(&mut b, &[a.peer]).await;
    expect_subscribed(&mut a, &[b.peer]).await;

    let mut d = start(34, &[&b.addr]).await;
    let b_peer = b.peer;
    expect_event(
        &mut d,
        "D connected to B",
        |e| matches!(e, Event::PeerConnected { peer } if *peer == b_peer),
    )
    .await;
    expect_subscribed(&mut b, &[d.peer]).await;
    expect_subscribed(&mut d, &[b.peer]).await;

    let record = b"record after D joined".to_vec();
    a.client
        .publish_record(record.clone())
        .await
        .expect("publish");
    let (id, from) = expect_gossip(&mut b, &record).await;
    b.client
        .report_validation(id, from, Validation::Accept)
        .await
        .expect("report");
    let (_, from_d) = expect_gossip(&mut d, &record).await;
    assert_eq!(from_d, b.peer);
    for n in [a, b, d] {
        n.client.shutdown().await.expect("shutdown");
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_peer_is_redialed_until_it_is_up_and_after_it_restarts() {
    let port = free_port();
    let e_identity = Identity::from_seed([42; 32]).expect("identity");
    let e_peer = e_identity.peer();
    let e_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{e_peer}")
        .parse()
        .expect("addr");
    // D's list names D itself too (as a shared list would): it must not dial itself.
    let d_self: Multiaddr = format!(
        "/ip4/127.0.0.1/tcp/1/p2p/{}",
        Identity::from_seed([41; 32]).expect("identity").peer()
    )
    .parse()
    .expect("addr");
    let mut d = start(41, &[&d_self, &e_addr]).await;

    // E comes up after D has already failed to reach it.
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let e = start_with(config(42, &listen, &[])).await;
    assert_eq!(e.peer, e_peer);
    let connected = |e: &Event| matches!(e, Event::PeerConnected { peer } if *peer == e_peer);
    expect_event(&mut d, "D reaching E", connected).await;

    // E restarts on the same port: D notices and reconnects.
    e.client.shutdown().await.expect("shutdown");
    expect_event(
        &mut d,
        "D losing E",
        |e| matches!(e, Event::PeerDisconnected { peer } if *peer == e_peer),
    )
    .await;
    let e = start_with(config(42, &listen, &[])).await;
    expect_event(&mut d, "D reaching E again", connected).await;
    e.client.shutdown().await.expect("shutdown");
    d.client.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_node_publishes_without_error_and_shuts_down() {
    let n = start(51, &[]).await;
    let data = b"nobody listens".to_vec();
    assert_eq!(
        n.client.publish_vote(data.clone()).await,
        Ok(Published::NoPeers(MessageId::of(&data)))
    );
    let huge = vec![0u8; protocol::limits::GOSSIP_BYTES_MAX + 1];
    assert!(matches!(
        n.client.publish_record(huge).await,
        Err(Error::TooLarge { .. })
    ));
    assert!(n.client.peers().await.expect("peers").is_empty());
    let stranger = Identity::from_seed([52; 32]).expect("identity").peer();
    assert!(matches!(
        n.client.request(stranger, b"hello?".to_vec()).await,
        Err(Error::Request { .. })
    ));
    assert!(matches!(
        n.client.dial("not an address").await,
        Err(Error::InvalidAddr { .. })
    ));
    n.client.shutdown().await.expect("shutdown");
    assert_eq!(n.client.peers().await, Err(Error::Stopped));
    n.client.shutdown().await.expect("second shutdown is fine");
}

#[test]
fn topic_names_follow_the_spec() {
    let chain = Hash([0xAB; 32]);
    assert_eq!(
        Topic::Records.name(&chain),
        "peerhours/abababababababab/records"
    );
    assert_eq!(
        Topic::Votes.name(&chain),
        "peerhours/abababababababab/votes"
    );
}

#[test]
fn config_validation_rejects_unbounded_knobs() {
    let base = config(1, "/ip4/127.0.0.1/tcp/0", &[]);
    assert_eq!(base.validate(), Ok(()));
    let mut c = base.clone();
    c.bounds.event_channel = 0;
    assert!(matches!(c.validate(), Err(Error::Config(_))));
    let mut c = base.clone();
    c.redial_backoff_max = Duration::from_millis(1);
    assert!(matches!(c.validate(), Err(Error::Config(_))));
    let mut c = base;
    let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().expect("addr");
    c.bootstrap = vec![addr; BOOTSTRAP_MAX + 1];
    assert!(matches!(c.validate(), Err(Error::Config(_))));
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    let c = config(1, "/ip4/127.0.0.1/tcp/0", &[]);
    assert!(matches!(spawn(c), Err(Error::NoRuntime)));
}

#[test]
fn peer_ids_parse_and_print() {
    let peer = Identity::from_seed([9; 32]).expect("identity").peer();
    assert_eq!(peer.to_string().parse::<Peer>(), Ok(peer));
    assert!(matches!("nope".parse::<Peer>(), Err(Error::InvalidPeer(_))));
}
