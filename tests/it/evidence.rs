//! A delegate that signs two different blocks in one view: the others see both votes,
//! commit evidence against it, and never certify two blocks at one height.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::network::{self, Event, Identity, Topic, Validation};
use node::sync::SyncResponse;
use protocol::{Hash, RecordBody, SignedVote, Vote};

use crate::harness::{wait_until, Net, WAIT};

/// Views ahead of the network's tip at which the forged votes are cast: far enough that
/// the network has not finalized that view when they arrive, within the window of views
/// a delegate keeps votes for (`node::agreement::VIEWS_AHEAD_MAX`).
const VIEWS_AHEAD: u64 = 40;

#[test]
fn a_delegate_signing_two_blocks_in_one_view_is_recorded_as_evidence() {
    let mut net = Net::new("it/evidence", 4, 0, 0);
    net.start_all();
    net.wait_connected();
    let chain = net.chain_id();
    let liar = net.fx.delegates[3].clone();

    // A bare network peer (no node behind it) that joins the chain's topics and gossips
    // what the liar signed.
    let bootstrap = (0..4)
        .flat_map(|i| {
            net.slots[i]
                .running
                .as_ref()
                .map(|r| r.listen.clone())
                .unwrap_or_default()
        })
        .map(|a| a.parse().expect("a node's listen address parses"))
        .collect();
    let (client, mut events) = {
        let _in_runtime = net.rt.enter();
        let identity = Identity::generate().expect("a network identity");
        let listen = "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr");
        let mut cfg = network::Config::new(listen, identity, chain);
        cfg.bootstrap = bootstrap;
        network::spawn(cfg).expect("the injector's network starts")
    };
    let subscribed = Arc::new(Mutex::new(BTreeSet::new()));
    {
        let subscribed = subscribed.clone();
        let client = client.clone();
        net.rt.spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    Event::PeerSubscribed {
                        peer,
                        topic: Topic::Votes,
                    } => {
                        subscribed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(peer);
                    }
                    Event::Gossip { msg_id, from, .. } => {
                        let _ = client
                            .report_validation(msg_id, from, Validation::Ignore)
                            .await;
                    }
                    Event::Request { channel, .. } => {
                        let no = SyncResponse::Refused("not a node".into()).to_bytes();
                        let _ = client.respond(channel, no).await;
                    }
                    _ => {}
                }
            }
        });
    }
    wait_until(
        WAIT,
        "every delegate to subscribe the injector to votes",
        || {
            let n = subscribed.lock().unwrap_or_else(|e| e.into_inner()).len();
            if n >= 4 {
                Ok(())
            } else {
                Err(format!("{n} subscribed"))
            }
        },
    );

    // Two notarize votes of the liar for two different blocks in one view just ahead of
    // the tip. If the network overtakes that view before they land, try a later view.
    let mut forged = Vec::new();
    let found = wait_until(
        WAIT,
        "evidence against the lying delegate in the log",
        || {
            let log = net.api(0).blocks().map_err(|e| format!("{e:?}"))?;
            let evidence: Vec<(SignedVote, SignedVote)> = log
                .iter()
                .flat_map(|b| &b.block.records)
                .filter_map(|r| match &r.record.body {
                    RecordBody::Evidence { first, second } => Some((*first, *second)),
                    _ => None,
                })
                .collect();
            if !evidence.is_empty() {
                return Ok((log, evidence));
            }
            if forged.len() < 20
                && forged
                    .last()
                    .is_none_or(|(_, at): &(u64, std::time::Instant)| {
                        at.elapsed() > Duration::from_secs(2)
                    })
            {
                let tip = net.status(0).height;
                let view = net.api(0).block(tip).map(|b| b.view).unwrap_or(0) + VIEWS_AHEAD;
                let height = tip + VIEWS_AHEAD / 2;
                for label in ["left", "right"] {
                    let vote = Vote::Notarize {
                        view,
                        height,
                        block: Hash::of(label.as_bytes()),
                    };
                    let bytes = SignedVote::sign(&liar, &chain, vote).to_bytes();
                    net.rt
                        .block_on(client.publish(Topic::Votes, bytes))
                        .map_err(|e| e.to_string())?;
                }
                forged.push((view, std::time::Instant::now()));
            }
            Err(format!(
                "no evidence yet; forged votes in views {:?}",
                forged.iter().map(|f| f.0).collect::<Vec<_>>()
            ))
        },
    );
    let (log, evidence) = found;
    for (first, second) in &evidence {
        assert_eq!(first.signer, liar.public(), "evidence names only the liar");
        assert!(
            first.conflicts_with(second),
            "committed evidence is a real conflict"
        );
        assert!(
            forged.iter().any(|(v, _)| *v == first.vote.view()),
            "evidence is for a view we forged"
        );
    }

    // The auditor's replay of the log holds the evidence in the ledger.
    let mut audit = storage::Replayer::new(&net.fx.genesis);
    for b in &log {
        audit.push(b).expect("the log replays");
    }
    let recorded: Vec<_> = audit.ledger().evidence().keys().copied().collect();
    assert!(!recorded.is_empty(), "the ledger recorded the evidence");
    assert!(
        recorded.iter().all(|(who, _)| *who == liar.public()),
        "only the liar is blamed: {recorded:?}"
    );

    // Neither forged block was certified, and all nodes hold one chain.
    let fakes = [Hash::of(b"left"), Hash::of(b"right")];
    assert!(log.iter().all(|b| !fakes.contains(&b.block.hash())));
    net.wait_converged();
    let _ = net.rt.block_on(client.shutdown());
}
