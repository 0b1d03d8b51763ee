//! A whole network in the steady state: records submitted at different nodes, delegates
//! and an observer alike, end in certified blocks every node agrees on.

use std::time::Duration;

use protocol::{Keypair, RecordBody};

use crate::harness::{sign, Net};

#[test]
fn records_submitted_to_different_nodes_end_in_certified_blocks_everywhere() {
    let mut net = Net::new("it/network", 4, 1, 2);
    net.start_all();
    net.wait_connected();
    let chain = net.chain_id();

    // One admission per node, each signed by a different delegate; the observer's
    // submission must reach the delegates by gossip.
    let newcomers: Vec<Keypair> = (0..5)
        .map(|i| Keypair::from_label(&format!("it/network/newcomer/{i}")))
        .collect();
    let mut ids = Vec::new();
    for (at, k) in newcomers.iter().enumerate() {
        let signer = &net.fx.delegates[at % 4];
        let body = RecordBody::AdmitMember {
            member: k.public(),
            association: "local".into(),
            exempt: false,
        };
        let s = net
            .api(at)
            .post(&sign(signer, &chain, body).to_bytes())
            .expect("a valid submission is taken");
        assert_eq!(s.status, "pending");
        assert_eq!(s.height, None);
        ids.push((at, s.id));
    }
    let mut heights = Vec::new();
    for (at, id) in &ids {
        heights.push(
            net.wait_accepted(*at, id)
                .height
                .expect("a committed record has a height"),
        );
    }

    // Every node, the observer too, knows the outcome and reaches the same chain.
    let top = heights.iter().copied().max().unwrap_or(0);
    net.wait_height(top);
    for i in net.up() {
        for ((_, id), h) in ids.iter().zip(&heights) {
            let s = net
                .api(i)
                .record(id, Duration::ZERO)
                .expect("the record is known everywhere");
            assert_eq!(
                (s.status.as_str(), s.height),
                ("accepted", Some(*h)),
                "record {id} at node {i}"
            );
        }
        for k in &newcomers {
            let b = net
                .api(i)
                .balance(&k.public().to_hex())
                .expect("an admitted member has an account");
            assert_eq!(b["balance_mh"], 0);
        }
    }
    let log = net.wait_converged();
    let in_log: usize = log.iter().map(|b| b.block.records.len()).sum();
    assert_eq!(in_log, ids.len(), "each record is certified exactly once");
}
