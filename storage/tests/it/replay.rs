//! The auditor's replay over real chains: an untouched log passes and agrees with the
//! live indexes; every kind of tampering is caught and named.

use std::path::Path;

use protocol::{CertifiedBlock, Genesis};
use storage::audit::{self, ReplayError, ReplayReport};
use storage::export::ExportWriter;
use storage::{export, Store};

use crate::common::{fixture, next_block, period_chain};

fn write_file(path: &Path, genesis: &Genesis, blocks: &[CertifiedBlock]) {
    let mut w = ExportWriter::new(Vec::new(), genesis).expect("writer");
    for b in blocks {
        w.block(b).expect("block");
    }
    std::fs::write(path, w.finish().expect("finish")).expect("write");
}

fn replay_blocks(blocks: &[CertifiedBlock]) -> Result<ReplayReport, ReplayError> {
    let g = fixture().genesis;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.phl");
    write_file(&file, &g, blocks);
    match audit::replay_file(&file, &mut |_| {}) {
        Ok(r) => Ok(r),
        Err(audit::AuditError::Replay(e)) => Err(e),
        Err(e) => panic!("not a replay finding: {e}"),
    }
}

#[test]
fn exported_log_replays_to_the_live_state() {
    let p = period_chain(30);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = dir.path().join("node0");
    std::fs::create_dir_all(&node).expect("mkdir");
    std::fs::write(node.join("genesis.toml"), p.chain.fx.genesis.to_toml()).expect("genesis");
    let (live_root, live_balances) = {
        let mut store = Store::open(&node, 8 << 20).expect("open");
        for b in &p.chain.blocks {
            store.append(b).expect("append");
        }
        assert_eq!(
            store
                .ledger()
                .expect("the store holds its ledger")
                .state_root(),
            p.chain.ledger.state_root()
        );
        (
            store
                .ledger()
                .expect("the store holds its ledger")
                .state_root(),
            store.balances().expect("balances"),
        )
    };
    let file = dir.path().join("log.phl");
    export::export(&node, &file, 8 << 20).expect("export");
    let report = audit::replay_file(&file, &mut |_| {}).expect("replay file");
    assert!(report.ok);
    assert_eq!(report.blocks, 30);
    assert_eq!(report.records, 15);
    assert_eq!(report.state_root, live_root.to_hex());
    assert_eq!(report.balances_mh, live_balances);
    assert_eq!(report.sum_mh, 0);
    assert!(
        report.balances_mh.contains_key("pool") && report.balances_mh.contains_key("social:local")
    );
    // The node directory itself replays to the same report.
    let from_dir = audit::replay_dir(&node, 8 << 20, &mut |_| {}).expect("replay dir");
    assert_eq!(from_dir, report);
    // And so does an imported copy.
    let copy = dir.path().join("node9");
    export::import(&file, &copy, 8 << 20).expect("import");
    assert_eq!(
        audit::replay_dir(&copy, 8 << 20, &mut |_| {}).expect("replay copy"),
        report
    );
    let json = serde_json::to_value(&report).expect("json");
    for field in [
        "ok",
        "blocks",
        "records",
        "state_root",
        "balances_mh",
        "sum_mh",
    ] {
        assert!(json.get(field).is_some(), "field {field}");
    }
}

fn assert_named(
    r: Result<ReplayReport, ReplayError>,
    height: u64,
    record: Option<usize>,
    words: &str,
) {
    let e = r.expect_err("tampering must be caught");
    assert_eq!(e.height, height, "{e}");
    assert_eq!(e.record.as_ref().map(|r| r.index), record, "{e}");
    assert!(
        e.to_string().contains(words),
        "{e:?} should mention {words:?}"
    );
}

#[test]
fn untouched_log_passes() {
    let p = period_chain(12);
    let r = replay_blocks(&p.chain.blocks).expect("untouched log passes");
    assert_eq!(r.state_root, p.chain.ledger.state_root().to_hex());
}

#[test]
fn flipped_byte_in_a_record_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    // Block 3 holds the three bids; change the nonce of the second one (a byte of the
    // signed bytes) and keep its signature.
    blocks[2].block.records[1].record.nonce ^= 1;
    assert_named(replay_blocks(&blocks), 3, Some(1), "bad signature");
}

#[test]
fn flipped_byte_in_a_record_signature_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    blocks[4].block.records[2].signature.0[10] ^= 0x80;
    let id = blocks[4].block.records[2].id().to_hex();
    let e = replay_blocks(&blocks).expect_err("caught");
    assert_eq!(
        (e.height, e.record.as_ref().map(|r| r.index)),
        (5, Some(2)),
        "{e}"
    );
    assert_eq!(e.record.as_ref().map(|r| r.id.clone()), Some(id));
    assert!(e.to_string().contains("bad signature"), "{e}");
}

#[test]
fn flipped_byte_in_a_certificate_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    blocks[8].certificate.signatures[1].1 .0[0] ^= 0x01;
    assert_named(replay_blocks(&blocks), 9, None, "certificate");
}

#[test]
fn certificate_short_of_quorum_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    blocks[3].certificate.signatures.pop();
    assert_named(
        replay_blocks(&blocks),
        4,
        None,
        "certificate has 2 distinct delegate signatures, 3 needed",
    );
}

#[test]
fn dropped_block_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    blocks.remove(4);
    assert_named(replay_blocks(&blocks), 6, None, "block 5 was expected");
}

#[test]
fn reordered_blocks_are_named() {
    let mut blocks = period_chain(12).chain.blocks;
    blocks.swap(6, 7);
    assert_named(replay_blocks(&blocks), 8, None, "block 7 was expected");
}

#[test]
fn record_swapped_between_blocks_is_named() {
    let mut blocks = period_chain(12).chain.blocks;
    // The attest of block 6 and the first bid of block 3 change places.
    let a = blocks[5].block.records[1].clone();
    let b = std::mem::replace(&mut blocks[2].block.records[0], a);
    blocks[5].block.records[1] = b;
    // Every record still carries a valid signature; the block no longer is the one its
    // proposer signed and its quorum certified.
    assert_named(replay_blocks(&blocks), 3, None, "proposer signature");
}

#[test]
fn recertified_wrong_state_root_is_named() {
    // Even a quorum cannot certify balances the records do not produce.
    let p = period_chain(12);
    let fx = fixture();
    let mut blocks = p.chain.blocks;
    let mut b = blocks[6].block.clone();
    b.state_root = protocol::Hash::of(b"made up");
    blocks[6] = fx.certify(b);
    // Relink the rest so only the root is wrong.
    for i in 7..blocks.len() {
        let mut nb = blocks[i].block.clone();
        nb.parent = blocks[i - 1].block.hash();
        blocks[i] = fx.certify(nb);
    }
    assert_named(replay_blocks(&blocks), 7, None, "state root");
}

#[test]
fn parent_link_is_named() {
    let p = period_chain(12);
    let fx = fixture();
    let mut blocks = p.chain.blocks;
    let mut b = blocks[4].block.clone();
    b.parent = blocks[2].block.hash();
    blocks[4] = fx.certify(b);
    assert_named(
        replay_blocks(&blocks),
        5,
        None,
        "parent hash does not match block 4",
    );
}

#[test]
fn certificate_of_a_stranger_is_named() {
    let p = period_chain(6);
    let stranger = protocol::testkit::Fixture::new("strangers", 4, 0);
    let mut blocks = p.chain.blocks;
    let b = blocks[2].block.clone();
    // The rightful proposer (the view's leader) stays; only the certificate is foreign.
    let leader = p
        .chain
        .fx
        .delegates
        .iter()
        .find(|k| k.public() == b.proposer)
        .expect("the block's proposer is a fixture delegate");
    let mut forged = stranger.certify(b);
    forged.proposer_signature = forged.block.sign(leader, &p.chain.fx.chain_id);
    blocks[2] = forged;
    assert_named(replay_blocks(&blocks), 3, None, "certificate");
}

#[test]
fn a_proposer_that_is_not_the_views_leader_is_named() {
    let p = period_chain(6);
    let mut blocks = p.chain.blocks;
    let mut b = blocks[2].block.clone();
    let keys: Vec<_> = p.chain.fx.delegates.iter().map(|k| k.public()).collect();
    let impostor = p
        .chain
        .fx
        .delegates
        .iter()
        .find(|k| Some(k.public()) != protocol::vote::leader(&keys, b.view))
        .expect("4 delegates, one leader");
    b.proposer = impostor.public();
    let mut forged = p.chain.fx.certify(b);
    forged.proposer_signature = forged.block.sign(impostor, &p.chain.fx.chain_id);
    blocks[2] = forged;
    assert_named(replay_blocks(&blocks), 3, None, "not the leader of view");
}

#[test]
fn raw_damage_to_the_file_is_named() {
    let p = period_chain(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.phl");
    write_file(&file, &p.chain.fx.genesis, &p.chain.blocks);
    let mut bytes = std::fs::read(&file).expect("read");
    let n = bytes.len();
    bytes[n - 200] ^= 0x04;
    std::fs::write(&file, &bytes).expect("write");
    let e = audit::replay_file(&file, &mut |_| {}).expect_err("damage");
    assert!(e.to_string().contains("export file"), "{e}");
    assert!(e.to_string().starts_with("block 8:"), "{e}");
}

#[test]
fn a_block_after_the_chain_of_another_network_is_refused() {
    // Blocks of another genesis do not replay on this one.
    let other = protocol::testkit::Fixture::new("other", 4, 3);
    let blocks = vec![next_block(&other, None, vec![])];
    assert_named(
        replay_blocks(&blocks),
        1,
        None,
        "parent is not the chain id",
    );
}
