//! Regression tests for bugs the multi-node tests found, named after what broke.

use std::time::Duration;

use protocol::ledger::Ledger;
use protocol::testkit::Fixture;
use protocol::vote::quorum;
use protocol::{Block, Certificate, CertifiedBlock, Keypair, RecordBody, SignedVote, Vote};

use crate::harness::{sign, Net};

/// Block 1 proposed in `view` by that view's leader, certified by finalize votes of
/// `certified_view` (the agreement finalizes a block in the view where its descendant
/// was notarized, which may be later than the view it was proposed in).
fn block_one(fx: &Fixture, view: u64, certified_view: u64) -> CertifiedBlock {
    let n = fx.delegates.len() as u64;
    let proposer: &Keypair = &fx.delegates[(view % n) as usize];
    let mut ledger = Ledger::from_genesis(&fx.genesis);
    let receipt = ledger.apply(1, &[]).expect("an empty block applies");
    let block = Block {
        height: 1,
        view,
        parent: fx.chain_id,
        proposer: proposer.public(),
        timestamp_ms: 1,
        records: Vec::new(),
        state_root: receipt.state_root,
    };
    let hash = block.hash();
    let vote = Vote::Finalize {
        view: certified_view,
        height: 1,
        block: hash,
    };
    let mut signatures: Vec<_> = fx.delegates[..quorum(fx.delegates.len())]
        .iter()
        .map(|k| {
            let v = SignedVote::sign(k, &fx.chain_id, vote);
            (v.signer, v.signature)
        })
        .collect();
    signatures.sort_by_key(|s| s.0);
    let proposer_signature = block.sign(proposer, &fx.chain_id);
    let certificate = Certificate {
        view: certified_view,
        height: 1,
        block: hash,
        signatures,
    };
    CertifiedBlock {
        block,
        proposer_signature,
        certificate,
    }
}

/// The store refused a block whose certificate's view is later than the block's view,
/// and the node that had just finalized it stopped (the network stalled after a few
/// hundred blocks).
#[test]
fn block_certified_in_a_later_view_is_stored_replayed_and_audited() {
    let fx = Fixture::new("it/later-view", 4, 1);
    let cb = block_one(&fx, 1, 3);
    let delegates = fx.genesis.delegate_keys();
    node::agreement::verify_certified(&fx.chain_id, &delegates, &cb)
        .expect("the agreement accepts it");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let data = dir.path().join("data");
    {
        let mut store = storage::Store::open_data(&data, fx.genesis.clone(), 1 << 20)
            .expect("a fresh store opens");
        store
            .append(&cb)
            .expect("the store takes a block certified in a later view");
    }
    let store =
        storage::Store::open_data(&data, fx.genesis.clone(), 1 << 20).expect("the store reopens");
    assert_eq!(
        store.height(),
        1,
        "the block survives a reopen (verified replay)"
    );

    let mut audit = storage::Replayer::new(&fx.genesis);
    audit.push(&cb).expect("the auditor accepts it");

    // A certificate from a view before the block's proves nothing about it.
    let early = block_one(&fx, 3, 1);
    let mut log = storage::MemLog::new(fx.chain_id);
    assert!(
        storage::Log::append(&mut log, &early).is_err(),
        "the log refuses a certificate older than its block"
    );
    let mut audit = storage::Replayer::new(&fx.genesis);
    assert!(
        audit.push(&early).is_err(),
        "the auditor refuses a certificate older than its block"
    );
}

/// An observer applied blocks fetched by catch-up but dropped their receipts, so a record
/// submitted to it stayed "pending" there forever although it was certified.
#[test]
fn observer_reports_records_committed_by_catch_up() {
    let mut net = Net::new("it/observer-receipts", 4, 1, 1);
    net.start_all();
    net.wait_connected();
    let newcomer = Keypair::from_label("it/observer-receipts/newcomer");
    let body = RecordBody::AdmitMember {
        member: newcomer.public(),
        association: "local".into(),
        exempt: false,
    };
    let rec = sign(&net.fx.delegates[0], &net.chain_id(), body);
    let s = net
        .api(4)
        .post(&rec.to_bytes())
        .expect("the observer takes a valid submission");
    let done = net.wait_accepted(4, &s.id);
    // The observer and a delegate agree on where it went.
    let at_delegate = net
        .api(0)
        .record(&s.id, Duration::ZERO)
        .expect("the delegate knows it");
    assert_eq!(at_delegate, done);
}

/// Block bodies lived only in memory: after every node stopped while a block was notarized
/// but not final, nobody could build on it (or fetch it) and the chain stopped for good.
/// Each stop lands at a random point of the pipeline; a few rounds hit that window.
#[test]
fn a_block_notarized_when_the_whole_network_stops_does_not_stop_the_chain() {
    let mut net = Net::new("it/notarized-restart", 4, 0, 0);
    net.start_all();
    net.wait_connected();
    let d = net.fx.delegates.clone();
    for round in 0..3 {
        let who = Keypair::from_label(&format!("it/notarized-restart/{round}"));
        let body = RecordBody::AdmitMember {
            member: who.public(),
            association: "local".into(),
            exempt: false,
        };
        net.act(round % 4, &d[round % 4], body);
        for i in 0..4 {
            net.stop(i);
        }
        net.start_all();
        net.wait_connected();
    }
    let h = net.max_height();
    net.wait_height(h + 3);
    net.check_agreement();
}
