//! Crash faults: with one of four delegates down blocks keep finalizing; restarted on its
//! old data directory it catches up and votes again.

use protocol::{Keypair, RecordBody};

use crate::harness::Net;

fn admit(label: &str) -> RecordBody {
    RecordBody::AdmitMember {
        member: Keypair::from_label(label).public(),
        association: "local".into(),
        exempt: false,
    }
}

#[test]
fn blocks_finalize_with_a_delegate_down_and_it_rejoins_after_a_restart() {
    let mut net = Net::new("it/faults", 4, 0, 0);
    net.start_all();
    net.wait_connected();
    let d = net.fx.delegates.clone();
    net.act(0, &d[0], admit("it/faults/a"));

    // Delegate 3 crashes: the other three are a quorum; views it leads time out.
    net.stop(3);
    let stopped_at = net.max_height();
    for (at, key) in d.iter().enumerate().take(3) {
        let s = net.act(at, key, admit(&format!("it/faults/while-down/{at}")));
        assert!(s.height.unwrap_or(0) > stopped_at);
    }
    // Several rotations of the leader, so views led by the dead delegate were skipped.
    net.wait_height(net.max_height() + 8);
    net.check_agreement();

    // Back on the same directory: it replays its log, fetches what it missed, rejoins.
    net.start(3);
    net.wait_connected();
    let log = net.wait_converged();
    assert!(log.len() as u64 > stopped_at);

    // It votes again: with delegate 1 down now, no quorum forms without delegate 3.
    net.stop(1);
    let s = net.act(3, &d[3], admit("it/faults/after-restart"));
    let h = s.height.expect("a committed record has a height");
    net.wait_height(h + 4);
    let log = net.check_agreement();
    let signed_by_3 = log[h as usize..]
        .iter()
        .filter(|b| {
            b.certificate
                .signatures
                .iter()
                .any(|(k, _)| *k == d[3].public())
        })
        .count();
    assert!(
        signed_by_3 > 0,
        "the restarted delegate's finalize votes certify blocks"
    );
}
