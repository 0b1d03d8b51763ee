//! Durability under SIGKILL: a child process appends blocks and acknowledges each one on
//! stdout after `append` returned (flushed); the parent kills it at seeded random moments
//! and checks that every acknowledged block (and vote) is there on reopen and the chain
//! verifies against the genesis delegates.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use protocol::{SignedVote, Vote};
use storage::{Db, DbOptions, Log};

use crate::common::{chain, fixture, next_block, records_for};

const CHILD_ENV: &str = "PEERHOURS_SIGKILL_CHILD_DIR";
const ROUNDS: u64 = 60;
const SEED: u64 = 0x5eed_f00d;
/// Blocks the child can write in all (it stops there; the parent never lets it).
const BLOCKS: u64 = 100_000;

fn opts() -> DbOptions {
    DbOptions {
        cache_bytes: 4 << 20,
        repair: true,
    }
}

/// splitmix64: a tiny seeded PRNG, enough to choose kill moments reproducibly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The child: not a test of its own, the entry point the parent re-executes.
#[test]
#[ignore = "entry point of the SIGKILL test's child process"]
fn sigkill_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let fx = fixture();
    let (mut db, _) = Db::open(Path::new(&dir), fx.chain_id, opts()).expect("child open");
    let start = db.log().height();
    let mut last = match start {
        0 => None,
        h => db.log().read(h..=h).expect("child read tip").pop(),
    };
    let key = &fx.delegates[0];
    for h in start + 1..=BLOCKS {
        // The same blocks `chain` builds, made one at a time from the stored tip.
        let b = next_block(&fx, last.as_ref(), records_for(&fx, h));
        // As a delegate would: persist our vote before it may be sent, then the block.
        let vote = SignedVote::sign(
            key,
            &fx.chain_id,
            Vote::Finalize {
                view: h,
                height: h,
                block: b.block.hash(),
            },
        );
        db.record_vote(&vote).expect("child vote");
        db.append(&b).expect("child append");
        println!("ack {h}");
        last = Some(b);
    }
}

#[test]
fn sigkill_loses_no_acknowledged_block() {
    let fx = fixture();
    let expected = chain(&fx, 400);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("data");
    let exe = std::env::current_exe().expect("current_exe");
    let mut rng = Rng(SEED);
    let mut acked = 0u64;
    let mut kills_mid_open = 0;
    for round in 0..ROUNDS {
        // Kill after 0..12 acknowledgements; 0 kills it while it opens or first appends.
        let after = rng.next() % 13;
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "sigkill::sigkill_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = 0u64;
        let take_ack = |line: String, acked: &mut u64| -> bool {
            // libtest may print its "test ... " prefix on the first ack's line.
            match line.find("ack ").map(|i| &line[i + 4..]) {
                Some(h) => {
                    let h: u64 = h.trim().parse().expect("height");
                    assert_eq!(h, *acked + 1, "round {round}: acks are consecutive");
                    *acked = h;
                    true
                }
                None => false,
            }
        };
        while seen < after {
            match lines.next() {
                Some(line) => {
                    if take_ack(line.expect("line"), &mut acked) {
                        seen += 1;
                    }
                }
                None => break,
            }
        }
        if after == 0 {
            kills_mid_open += 1;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        // Acks the child wrote before it died but we had not read yet count as well:
        // each was printed only after its block was flushed.
        for line in lines {
            take_ack(line.expect("line"), &mut acked);
        }

        let (db, cut) = Db::open(&path, fx.chain_id, opts()).expect("reopen after SIGKILL");
        assert!(
            cut.is_none(),
            "round {round}: a flushed log never needs a cut: {cut:?}"
        );
        let height = db.log().height();
        assert!(
            height >= acked,
            "round {round}: {acked} blocks acknowledged, only {height} on reopen"
        );
        // At most the one block being appended when killed may be there unacknowledged.
        assert!(
            height <= acked + 1,
            "round {round}: height {height} after {acked} acks"
        );
        acked = height;
        verify_chain(&fx, &db, &expected);
        let votes = db.votes().expect("votes");
        assert!(
            votes.len() as u64 >= height,
            "round {round}: every appended block's vote came first"
        );
    }
    assert!(acked > ROUNDS, "the writer made progress: {acked} blocks");
    eprintln!("sigkill: {ROUNDS} kills, {acked} blocks acknowledged and kept");
    assert!(
        kills_mid_open > 0,
        "some kills hit the child before its first ack"
    );
}

fn verify_chain(fx: &protocol::testkit::Fixture, db: &Db, expected: &[protocol::CertifiedBlock]) {
    let delegates = fx.genesis.delegate_keys();
    let mut parent = fx.chain_id;
    let tip = db.log().height();
    let mut from = 1;
    while from <= tip {
        let to = tip.min(from + 255);
        for b in db.log().read(from..=to).expect("read") {
            let h = b.block.height;
            assert_eq!(b.block.parent, parent, "block {h}: hash link");
            b.certificate
                .verify(&fx.chain_id, &delegates, b.block.view, h, b.block.hash())
                .expect("certificate");
            b.block
                .verify_proposer(&fx.chain_id, &b.proposer_signature)
                .expect("proposer");
            if let Some(e) = expected.get((h - 1) as usize) {
                assert_eq!(&b, e, "block {h} is the one written");
            }
            parent = b.block.hash();
        }
        from = to + 1;
    }
}
