//! The node database beyond the log: own votes and pending submissions survive restarts.

use protocol::record::RecordBody;
use protocol::{Hash, SignedRecord, SignedVote, Vote};
use storage::{Db, DbOptions, Log, StoreError};

use crate::common::{chain, fixture};

fn opts() -> DbOptions {
    DbOptions {
        cache_bytes: 4 << 20,
        repair: true,
    }
}

#[test]
fn votes_survive_restart_and_prune() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let key = &fx.delegates[0];
    let votes: Vec<SignedVote> = (1..=5u64)
        .flat_map(|v| {
            [
                SignedVote::sign(key, &fx.chain_id, Vote::Nullify { view: v }),
                SignedVote::sign(
                    key,
                    &fx.chain_id,
                    Vote::Notarize {
                        view: v,
                        height: v,
                        block: Hash::of(&v.to_be_bytes()),
                    },
                ),
            ]
        })
        .collect();
    {
        let (db, _) = Db::open(&path, fx.chain_id, opts()).expect("open");
        for v in &votes {
            db.record_vote(v).expect("record");
        }
        // Recording the same vote twice keeps one copy.
        db.record_vote(&votes[0]).expect("again");
    }
    let (db, _) = Db::open(&path, fx.chain_id, opts()).expect("reopen");
    let mut back = db.votes().expect("votes");
    assert_eq!(back.len(), votes.len());
    let mut expected = votes.clone();
    let order = |v: &SignedVote| (v.vote.view(), v.to_bytes());
    back.sort_by_key(order);
    expected.sort_by_key(order);
    assert_eq!(back, expected);
    assert_eq!(db.prune_votes_below(4).expect("prune"), 6);
    assert!(db
        .votes()
        .expect("votes")
        .iter()
        .all(|v| v.vote.view() >= 4));
}

#[test]
fn pending_survives_restart_and_leaves_with_its_block() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let blocks = chain(&fx, 2);
    let in_block = blocks[1].block.records[0].clone();
    let other = SignedRecord::sign(
        &fx.members[0],
        &fx.chain_id,
        99,
        RecordBody::OpenPeriod { period: 2 },
    );
    {
        let (db, _) = Db::open(&path, fx.chain_id, opts()).expect("open");
        for r in [&in_block, &other] {
            db.add_pending(r.id(), &r.to_bytes()).expect("add");
        }
        // Bytes that do not hash to the id are refused.
        let e = db
            .add_pending(Hash::ZERO, &other.to_bytes())
            .expect_err("wrong id");
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    }
    let (mut db, _) = Db::open(&path, fx.chain_id, opts()).expect("reopen");
    let mut ids: Vec<Hash> = db
        .pending()
        .expect("pending")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let mut expected = vec![in_block.id(), other.id()];
    expected.sort();
    assert_eq!(ids, expected);
    db.append(&blocks[0]).expect("append 1");
    db.append(&blocks[1]).expect("append 2");
    let left: Vec<Hash> = db
        .pending()
        .expect("pending")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, vec![other.id()]);
    db.remove_pending(&[other.id()]).expect("remove");
    assert!(db.pending().expect("pending").is_empty());
    assert_eq!(db.log().height(), 2);
}

#[test]
fn zero_cache_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = Db::open(
        &dir.path().join("data"),
        Hash::ZERO,
        DbOptions {
            cache_bytes: 0,
            repair: true,
        },
    )
    .expect_err("zero cache");
    assert!(matches!(e, StoreError::Invalid(_)));
}

#[test]
fn auditor_open_refuses_a_damaged_log_instead_of_cutting_it() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    {
        let (mut db, _) = Db::open(&path, fx.chain_id, opts()).expect("open");
        for b in chain(&fx, 5) {
            db.append(&b).expect("append");
        }
        let tree = db.log().tree().clone();
        let mut v = tree
            .get(3u64.to_be_bytes())
            .expect("get")
            .expect("there")
            .to_vec();
        v[40] ^= 1;
        tree.insert(3u64.to_be_bytes(), v).expect("insert");
        tree.flush().expect("flush");
    }
    let e = Db::open(
        &path,
        fx.chain_id,
        DbOptions {
            cache_bytes: 4 << 20,
            repair: false,
        },
    )
    .expect_err("damaged");
    assert!(matches!(e, StoreError::Damaged { height: 3, .. }), "{e}");
    // The auditor's attempt changed nothing: a repairing open still finds and cuts it.
    let (db, cut) = Db::open(&path, fx.chain_id, opts()).expect("repair");
    assert_eq!(cut.expect("cut").from_height, 3);
    assert_eq!(db.log().height(), 2);
}

#[test]
fn notarized_bodies_survive_restart_and_leave_once_final() {
    let fx = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let (a, b, c) = (Hash::of(b"a"), Hash::of(b"b"), Hash::of(b"c"));
    {
        let (db, _) = Db::open(&path, fx.chain_id, opts()).expect("open");
        db.put_notarized_body(6, &c, b"six").expect("put");
        db.put_notarized_body(3, &a, b"three").expect("put");
        db.put_notarized_body(4, &b, b"four").expect("put");
        db.put_notarized_body(4, &a, b"four again").expect("put");
        // Not flushed by the puts: the vote they go with flushes them.
        db.flush().expect("flush");
    }
    let (db, _) = Db::open(&path, fx.chain_id, opts()).expect("reopen");
    let mut expected = vec![
        (3, a, b"three".to_vec()),
        (4, a, b"four again".to_vec()),
        (4, b, b"four".to_vec()),
        (6, c, b"six".to_vec()),
    ];
    expected.sort();
    assert_eq!(db.notarized_bodies().expect("bodies"), expected);
    // Block 4 is final: everything at or below it goes.
    assert_eq!(db.prune_notarized_through(4).expect("prune"), 3);
    db.remove_notarized_body(6, &a).expect("absent is fine");
    assert_eq!(
        db.notarized_bodies().expect("bodies"),
        vec![(6, c, b"six".to_vec())]
    );
    db.remove_notarized_body(6, &c).expect("remove");
    assert!(db.notarized_bodies().expect("bodies").is_empty());
    assert_eq!(db.prune_notarized_through(u64::MAX).expect("prune"), 0);
}
