//! The store: indexes derived from the log agree with the ledger, survive reopening, are
//! rebuilt when missing or stale, and the history shows every layer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use storage::{Db, DbOptions, Log, Store, StoreError};

use crate::common::{next_block, period_chain, Period};

fn node(dir: &Path, p: &Period) -> PathBuf {
    let node = dir.join("node0");
    std::fs::create_dir_all(&node).expect("mkdir");
    std::fs::write(node.join("genesis.toml"), p.chain.fx.genesis.to_toml()).expect("genesis");
    node
}

/// The node's sled database opened raw, to damage the index trees on disk as a crash or
/// bit rot would. Waits, with a deadline, for the store just dropped to release sled's
/// directory lock (sled lets go of it shortly after the drop).
fn raw(n: &Path) -> sled::Db {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let config = sled::Config::new()
            .path(n.join("data"))
            .cache_capacity(4 << 20);
        match config.open() {
            Ok(db) => return db,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("raw open: {e}"),
        }
    }
}

fn filled(dir: &Path, p: &Period) -> PathBuf {
    let n = node(dir, p);
    let mut store = Store::open(&n, 8 << 20).expect("open");
    for b in &p.chain.blocks {
        store.append(b).expect("append");
    }
    n
}

#[test]
fn history_shows_every_layer() {
    let p = period_chain(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&filled(dir.path(), &p), 8 << 20).expect("open");
    let h = store.history(&p.amended).expect("history");
    let kinds: Vec<&str> = h.layers.iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["Contribute", "Attest", "Amend"]);
    assert_eq!(h.layers[0].hours_mh, Some(2_000));
    assert_eq!(h.layers[1].hours_mh, None);
    assert_eq!(h.layers[2].hours_mh, Some(1_500));
    assert!(h
        .layers
        .iter()
        .all(|l| l.status == "accepted" && l.reason.is_none()));
    assert_eq!(h.layers[0].signer, p.chain.fx.members[0].public().to_hex());
    assert_eq!(h.layers[2].signer, p.chain.fx.coordinator.public().to_hex());
    assert!(h.layers.windows(2).all(|w| w[0].height < w[1].height));
    let r = store.history(&p.retracted).expect("history");
    assert_eq!(
        r.layers.iter().map(|l| l.kind.as_str()).collect::<Vec<_>>(),
        ["Contribute", "Retract"]
    );
    let rej = store.history(&p.rejected).expect("history");
    assert_eq!(rej.layers.len(), 1);
    assert_eq!(rej.layers[0].status, "rejected");
    assert!(
        rej.layers[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("phase"),
        "{rej:?}"
    );
    assert_eq!(
        store
            .rejected()
            .expect("rejected")
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>(),
        [p.rejected.to_hex()]
    );
    assert!(matches!(
        store.history(&protocol::Hash::ZERO),
        Err(StoreError::UnknownRecord(_))
    ));
    let json = serde_json::to_value(&h).expect("json");
    for f in [
        "id", "kind", "signer", "height", "status", "reason", "hours_mh",
    ] {
        assert!(json["layers"][0].get(f).is_some(), "field {f}");
    }
}

#[test]
fn indexes_follow_the_ledger_block_by_block() {
    let p = period_chain(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path(), &p);
    let mut store = Store::open(&n, 8 << 20).expect("open");
    // The genesis balances are indexed before any block.
    assert_eq!(
        store.balances().expect("balances").len(),
        store
            .ledger()
            .expect("the store holds its ledger")
            .accounts()
            .len()
    );
    for b in &p.chain.blocks {
        store.append(b).expect("append");
        let live: std::collections::BTreeMap<String, i64> = store
            .ledger()
            .expect("the store holds its ledger")
            .accounts()
            .into_iter()
            .map(|(a, v)| (a.to_string(), v))
            .collect();
        assert_eq!(
            store.balances().expect("balances"),
            live,
            "after block {}",
            b.block.height
        );
        let open = store.open_auctions().expect("auctions");
        let h = b.block.height;
        // Open from its posting until bidding closes two blocks later.
        let expect_open = h >= p.auction_open_at && h < p.auction_open_at + 2;
        assert_eq!(
            open.len(),
            usize::from(expect_open),
            "after block {h}: {open:?}"
        );
    }
}

#[test]
fn reopen_keeps_the_index_and_rebuilds_it_when_missing_or_stale() {
    let p = period_chain(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = filled(dir.path(), &p);
    let (root, balances) = {
        let s = Store::open(&n, 8 << 20).expect("reopen");
        assert_eq!(
            s.opened().index_rebuilt_from,
            None,
            "a consistent index is kept"
        );
        assert_eq!(s.opened().cut, None);
        assert_eq!(s.height(), 20);
        (
            s.ledger().expect("the store holds its ledger").state_root(),
            s.balances().expect("balances"),
        )
    };
    // Lose the index meta: everything is derived again.
    {
        let db = raw(&n);
        db.open_tree("idx/meta")
            .expect("tree")
            .clear()
            .expect("clear");
        db.open_tree("idx/balances")
            .expect("tree")
            .insert("pool", &7i64.to_be_bytes())
            .expect("junk");
        db.flush().expect("flush");
    }
    let s = Store::open(&n, 8 << 20).expect("rebuild");
    assert_eq!(s.opened().index_rebuilt_from, Some(1));
    assert_eq!(s.balances().expect("balances"), balances);
    assert_eq!(
        s.ledger().expect("the store holds its ledger").state_root(),
        root
    );
    assert_eq!(s.history(&p.amended).expect("history").layers.len(), 3);
    drop(s);
    // A meta naming the wrong state root: stale, rebuilt.
    {
        let db = raw(&n);
        let meta = storage::index::IndexMeta {
            height: 10,
            state_root: protocol::Hash::of(b"wrong"),
        };
        db.open_tree("idx/meta")
            .expect("tree")
            .insert("tip", protocol::codec::encode(&meta))
            .expect("meta");
        db.flush().expect("flush");
    }
    let s = Store::open(&n, 8 << 20).expect("rebuild stale");
    assert_eq!(s.opened().index_rebuilt_from, Some(1));
    assert_eq!(s.balances().expect("balances"), balances);
    drop(s);
    // An index behind the log (crash between log append and index write): caught up.
    {
        let db = raw(&n);
        let meta = storage::index::IndexMeta {
            height: 0,
            state_root: protocol::Hash::of(b"x"),
        };
        db.open_tree("idx/meta")
            .expect("tree")
            .insert("tip", protocol::codec::encode(&meta))
            .expect("meta");
        db.flush().expect("flush");
    }
    let s = Store::open(&n, 8 << 20).expect("rebuild behind");
    assert_eq!(s.balances().expect("balances"), balances);
}

#[test]
fn append_refuses_what_does_not_verify_and_stays_usable() {
    let p = period_chain(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = node(dir.path(), &p);
    let mut store = Store::open(&n, 8 << 20).expect("open");
    for b in &p.chain.blocks[..4] {
        store.append(b).expect("append");
    }
    let mut bad = p.chain.blocks[4].clone();
    bad.certificate.signatures[0].1 .0[5] ^= 1;
    let e = store.append(&bad).expect_err("bad certificate");
    assert!(e.to_string().contains("block 5: certificate"), "{e}");
    // Nothing was written; the good block still goes in.
    assert_eq!(store.height(), 4);
    store.append(&p.chain.blocks[4]).expect("append good");
    // A block out of place is refused too.
    assert!(store.append(&p.chain.blocks[6]).is_err());
    assert_eq!(store.height(), 5);
}

#[test]
fn open_cuts_a_tail_that_does_not_verify() {
    let p = period_chain(8);
    let dir = tempfile::tempdir().expect("tempdir");
    let n = filled(dir.path(), &p);
    // Sneak a block with a forged certificate past the store, straight into the log.
    let stranger = protocol::testkit::Fixture::new("strangers", 4, 0);
    {
        let (mut db, _) = Db::open(
            &n.join("data"),
            p.chain.fx.chain_id,
            DbOptions {
                cache_bytes: 4 << 20,
                repair: true,
            },
        )
        .expect("db");
        let mut b = next_block(&p.chain.fx, p.chain.blocks.last(), vec![]).block;
        b.state_root = p.chain.ledger.state_root();
        let mut forged = stranger.certify(b);
        forged.proposer_signature = forged
            .block
            .sign(&p.chain.fx.delegates[1], &p.chain.fx.chain_id);
        db.append(&forged).expect("structurally fine");
        assert_eq!(db.log().height(), 9);
    }
    let s = Store::open(&n, 8 << 20).expect("open");
    let cut = s.opened().cut.clone().expect("cut");
    assert_eq!((cut.from_height, cut.removed), (9, 1));
    assert!(cut.reason.contains("certificate"), "{cut:?}");
    assert_eq!(s.height(), 8);
    assert_eq!(
        s.ledger().expect("the store holds its ledger").state_root(),
        p.chain.ledger.state_root()
    );
}

/// The trusted path (a node that verified and applied each block itself) writes the same
/// log and indexes as the checking path, refuses results that are not the block's, and
/// the store it leaves behind reopens with a full verification.
#[test]
fn append_applied_writes_what_append_writes_and_refuses_mismatches() {
    let p = period_chain(12);
    let dir = tempfile::tempdir().expect("tempdir");
    let checked = filled(dir.path(), &p);
    let trusted = dir.path().join("trusted");
    std::fs::create_dir_all(&trusted).expect("mkdir");
    std::fs::write(trusted.join("genesis.toml"), p.chain.fx.genesis.to_toml()).expect("genesis");
    let mut store = Store::open(&trusted, 8 << 20).expect("open");
    // The node takes the ledger: the store holds none and refuses the checking path.
    let mut ledger = store.take_ledger().expect("the ledger");
    assert!(store.ledger().is_none());
    assert!(store.take_ledger().is_none());
    let e = store
        .append(&p.chain.blocks[0])
        .expect_err("no ledger to check on");
    assert!(e.to_string().contains("append_applied"), "{e}");
    // The caller's own verification and application, as the node's application does.
    let mut verifier = storage::Replayer::new(&p.chain.fx.genesis);
    for (i, b) in p.chain.blocks.iter().enumerate() {
        let applied = verifier.push(b).expect("verifies");
        let mut after = ledger.clone();
        after
            .apply(b.block.height, &applied.records)
            .expect("applies");
        let changes = ledger.balance_changes(&after);
        if i == 3 {
            // Results of another block, a wrong root, other records: refused, unwritten.
            let mut wrong = applied.clone();
            wrong.receipt.state_root = protocol::Hash::of(b"wrong");
            assert!(store.append_applied(b, &wrong, &changes).is_err());
            let mut fewer = applied.clone();
            fewer.records.clear();
            fewer.receipt.outcomes.clear();
            if !b.block.records.is_empty() {
                assert!(store.append_applied(b, &fewer, &changes).is_err());
            }
            assert!(store
                .append_applied(&p.chain.blocks[i + 1], &applied, &changes)
                .is_err());
            assert_eq!(store.height(), 3, "nothing was written");
        }
        store
            .append_applied(b, &applied, &changes)
            .expect("append_applied");
        ledger = after;
    }
    // A block out of place (here: again) is refused, nothing written.
    let again = storage::Replayer::new(&p.chain.fx.genesis)
        .push(&p.chain.blocks[0])
        .expect("verifies");
    let e = store
        .append_applied(&p.chain.blocks[0], &again, &Default::default())
        .expect_err("out of place");
    assert!(e.to_string().contains("block 1"), "{e}");
    assert_eq!(store.height(), 12);
    let a = Store::open(&checked, 8 << 20).expect("reopen checked");
    let root = a.ledger().expect("ledger").state_root();
    let balances = a.balances().expect("balances");
    let history = a.history(&p.amended).expect("history");
    drop(a);
    drop(store);
    let b = Store::open(&trusted, 8 << 20).expect("reopen trusted");
    assert_eq!(
        b.opened().index_rebuilt_from,
        None,
        "the index was complete"
    );
    assert_eq!(b.opened().cut, None, "every block verifies");
    assert_eq!(b.ledger().expect("ledger").state_root(), root);
    assert_eq!(b.balances().expect("balances"), balances);
    assert_eq!(
        b.balances().expect("balances").len(),
        ledger.accounts().len()
    );
    assert_eq!(b.history(&p.amended).expect("history"), history);
    assert_eq!(ledger.state_root(), root);
    assert_eq!(b.pending().expect("pending"), vec![]);
}
