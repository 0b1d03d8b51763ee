//! Nodes that were not there: an observer started late on an empty directory fetches the
//! whole log, and a whole network stopped and started again resumes from its sled stores.

use protocol::{Keypair, RecordBody};

use crate::harness::{wait_until, Net, WAIT};

fn admit(label: &str) -> RecordBody {
    RecordBody::AdmitMember {
        member: Keypair::from_label(label).public(),
        association: "local".into(),
        exempt: false,
    }
}

#[test]
fn an_observer_started_late_with_an_empty_directory_catches_up() {
    let mut net = Net::new("it/late-observer", 4, 1, 0);
    for i in 0..4 {
        net.start(i);
    }
    net.wait_connected();
    let d = net.fx.delegates.clone();
    for (at, key) in d.iter().enumerate() {
        net.act(at, key, admit(&format!("it/late-observer/{at}")));
    }
    let target = net.max_height();
    assert!(
        !net.slots[4].config.data.exists(),
        "the observer starts from nothing"
    );

    net.start(4);
    assert!(!net.status(4).delegate);
    net.wait_height(target);
    let log = net.check_agreement();
    assert!(log.len() as u64 >= target);
    // It serves what it fetched: the delegates' records, with their outcome.
    for rec in log.iter().flat_map(|b| &b.block.records) {
        let s = net
            .api(4)
            .record(&rec.id().to_hex(), std::time::Duration::ZERO);
        assert_eq!(s.map(|s| s.status).ok().as_deref(), Some("accepted"));
    }
    // And keeps following the chain.
    let s = net.act(0, &d[0], admit("it/late-observer/after"));
    net.wait_height(s.height.unwrap_or(0));
    net.check_agreement();
}

#[test]
fn a_whole_network_restart_resumes_from_the_stores() {
    let mut net = Net::new("it/restart", 4, 1, 0);
    net.start_all();
    net.wait_connected();
    let d = net.fx.delegates.clone();
    let first = net.act(1, &d[1], admit("it/restart/before"));
    let before = net.wait_converged();

    for i in (0..5).rev() {
        net.stop(i);
    }
    net.start_all();
    // Each node replayed its own store: nothing it had certified is lost or changed.
    for i in net.up() {
        let s = net.status(i);
        assert!(
            s.height >= first.height.unwrap_or(0),
            "node {i} restarted at height {}",
            s.height
        );
    }
    let after = net.check_agreement();
    assert!(after.len() >= before.len());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(
            a.block.hash(),
            b.block.hash(),
            "block {} changed across the restart",
            a.block.height
        );
    }
    let s = net
        .api(2)
        .record(&first.id, std::time::Duration::ZERO)
        .expect("the committed record is known");
    assert_eq!((s.status.as_str(), s.height), ("accepted", first.height));

    // And agreement resumes.
    net.wait_connected();
    let resumed = net.act(2, &d[2], admit("it/restart/after"));
    assert!(resumed.height > first.height);
    wait_until(WAIT, "every node to hold the new record", || {
        let h = resumed.height.unwrap_or(0);
        let behind: Vec<usize> = net
            .up()
            .into_iter()
            .filter(|&i| net.status(i).height < h)
            .collect();
        if behind.is_empty() {
            Ok(())
        } else {
            Err(format!("nodes {behind:?} below height {h}"))
        }
    });
    net.check_agreement();
}
