//! What the API refuses: forged, foreign, malformed, unknown-signer and duplicate
//! submissions get a clear error and change nothing on any node.

use std::time::Duration;

use protocol::{Hash, Keypair, RecordBody, SignedRecord};

use crate::harness::{sign, Net};

fn admit(label: &str) -> RecordBody {
    RecordBody::AdmitMember {
        member: Keypair::from_label(label).public(),
        association: "local".into(),
        exempt: false,
    }
}

#[test]
fn forged_foreign_malformed_and_unknown_signer_submissions_are_refused() {
    let mut net = Net::new("it/submissions", 4, 0, 0);
    net.start_all();
    net.wait_connected();
    let chain = net.chain_id();
    let d0 = net.fx.delegates[0].clone();
    let mut refused: Vec<(String, u16, &str)> = Vec::new();

    // A bad signature: a delegate's record with one signature bit flipped.
    let mut bytes = sign(&d0, &chain, admit("it/submissions/forged")).to_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let e = net
        .api(1)
        .post(&bytes)
        .expect_err("a forged signature is refused");
    assert_eq!(e.code, 400, "{e:?}");
    assert!(
        e.error.contains("signature"),
        "says what is wrong: {}",
        e.error
    );
    refused.push((Hash::of(&bytes).to_hex(), e.code, "forged"));

    // Signed by the right key for another network.
    let other_chain = Hash::of(b"another network");
    let foreign =
        SignedRecord::sign(&d0, &other_chain, 1, admit("it/submissions/foreign")).to_bytes();
    let e = net
        .api(2)
        .post(&foreign)
        .expect_err("a record of another chain is refused");
    assert_eq!(e.code, 400, "{e:?}");
    assert!(
        e.error.contains("signed for this network"),
        "points at the chain: {}",
        e.error
    );
    refused.push((Hash::of(&foreign).to_hex(), e.code, "foreign"));

    // Not a record at all.
    let e = net
        .api(0)
        .post(b"hello, ledger")
        .expect_err("garbage is refused");
    assert_eq!(e.code, 400, "{e:?}");
    assert!(e.error.contains("malformed"), "{}", e.error);

    // Well signed by a key this network does not know.
    let stranger = Keypair::from_label("it/submissions/stranger");
    let unknown = sign(&stranger, &chain, admit("it/submissions/by-stranger")).to_bytes();
    let e = net
        .api(3)
        .post(&unknown)
        .expect_err("an unknown signer is refused");
    assert_eq!(e.code, 422, "{e:?}");
    assert!(
        e.error.contains("not a delegate, member or coordinator"),
        "{}",
        e.error
    );
    refused.push((Hash::of(&unknown).to_hex(), e.code, "unknown signer"));

    // A valid record is taken once; the same bytes again, anywhere, are refused.
    let good = sign(&d0, &chain, admit("it/submissions/good")).to_bytes();
    let s = net.api(0).post(&good).expect("a valid record is taken");
    let again = net
        .api(0)
        .post(&good)
        .expect_err("the same record twice is refused");
    assert_eq!(again.code, 422, "{again:?}");
    let done = net.wait_accepted(0, &s.id);
    // Every node must have committed the block before the replay is tried there (else
    // node 1 may still hold the record as pending, a different refusal).
    net.wait_height(done.height.unwrap_or(0));
    let later = net
        .api(1)
        .post(&good)
        .expect_err("a committed record cannot be replayed");
    assert_eq!(later.code, 422, "{later:?}");
    assert!(
        later.error.contains("already in the log"),
        "{}",
        later.error
    );

    // Nothing refused reached a block or a mempool anywhere; only the good record counts.
    net.wait_height(done.height.unwrap_or(0));
    let log = net.wait_converged();
    let ids: Vec<String> = log
        .iter()
        .flat_map(|b| &b.block.records)
        .map(|r| r.id().to_hex())
        .collect();
    assert_eq!(
        ids,
        vec![s.id.clone()],
        "only the valid record is in the log"
    );
    for i in net.up() {
        assert_eq!(net.status(i).pending, 0, "node {i} holds nothing pending");
        for (id, code, what) in &refused {
            let r = net
                .api(i)
                .record(id, Duration::ZERO)
                .expect_err("a refused record is unknown");
            assert_eq!(
                r.code, 404,
                "the {what} record (refused with {code}) is unknown at node {i}: {r:?}"
            );
        }
        let b = net
            .api(i)
            .balance(&stranger.public().to_hex())
            .expect_err("the stranger has no account");
        assert_eq!(b.code, 404);
    }
}
