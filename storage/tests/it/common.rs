//! Chains of certified blocks for tests, built with the protocol's testkit.

use protocol::record::RecordBody;
use protocol::testkit::Fixture;
use protocol::{Block, CertifiedBlock, Hash, SignedRecord};

/// The next block after `parent` (or block 1 when `None`), holding `records`, certified
/// by the fixture's delegates. The state root is a stand-in: the log does not read it.
pub fn next_block(
    fx: &Fixture,
    parent: Option<&CertifiedBlock>,
    records: Vec<SignedRecord>,
) -> CertifiedBlock {
    let (height, parent_hash, ts) = match parent {
        None => (1, fx.chain_id, 1_000),
        Some(p) => (p.block.height + 1, p.block.hash(), p.block.timestamp_ms + 1),
    };
    let proposer = fx.delegates[(height as usize) % fx.delegates.len()].public();
    fx.certify(Block {
        height,
        view: height,
        parent: parent_hash,
        proposer,
        timestamp_ms: ts,
        records,
        state_root: Hash::of(&height.to_be_bytes()),
    })
}

/// A chain of `n` blocks, each with a signed record.
pub fn chain(fx: &Fixture, n: u64) -> Vec<CertifiedBlock> {
    let mut out: Vec<CertifiedBlock> = Vec::new();
    for h in 1..=n {
        let b = next_block(fx, out.last(), records_for(fx, h));
        out.push(b);
    }
    out
}

/// The records `chain` puts in block `h`.
pub fn records_for(fx: &Fixture, h: u64) -> Vec<SignedRecord> {
    let member = &fx.members[(h as usize) % fx.members.len()];
    vec![SignedRecord::sign(
        member,
        &fx.chain_id,
        h,
        RecordBody::Contribute {
            period: 1,
            task: format!("task-{h}"),
            hours_mh: 1_500,
            note: String::new(),
        },
    )]
}

pub fn fixture() -> Fixture {
    Fixture::new("storage-tests", 4, 3)
}

/// A real chain: records applied by the ledger, state roots computed by it, blocks
/// certified by the fixture's delegates.
pub struct LedgerChain {
    pub fx: Fixture,
    pub ledger: protocol::ledger::Ledger,
    pub blocks: Vec<CertifiedBlock>,
    nonce: u64,
}

impl LedgerChain {
    pub fn new(fx: Fixture) -> LedgerChain {
        let ledger = protocol::ledger::Ledger::from_genesis(&fx.genesis);
        LedgerChain {
            fx,
            ledger,
            blocks: Vec::new(),
            nonce: 0,
        }
    }

    pub fn rec(&mut self, key: &protocol::Keypair, body: RecordBody) -> SignedRecord {
        self.nonce += 1;
        SignedRecord::sign(key, &self.fx.chain_id, self.nonce, body)
    }

    /// Applies `records` as the next block and certifies it; returns the outcomes.
    pub fn push(&mut self, records: Vec<SignedRecord>) -> Vec<protocol::ledger::Outcome> {
        let verified =
            protocol::record::verify_all(&records, &self.fx.chain_id).expect("test records verify");
        let h = self.ledger.height() + 1;
        let receipt = self.ledger.apply(h, &verified).expect("test block applies");
        self.ledger.check_invariants().expect("invariants");
        let mut b = next_block(&self.fx, self.blocks.last(), records);
        b.block.state_root = receipt.state_root;
        let b = self.fx.certify(b.block);
        self.blocks.push(b);
        receipt.outcomes
    }
}

/// What `period_chain` made, to look things up in the tests.
pub struct Period {
    pub chain: LedgerChain,
    /// A contribution that was attested, then amended.
    pub amended: protocol::RecordId,
    /// A contribution retracted by its member.
    pub retracted: protocol::RecordId,
    /// A record kept in the log as rejected.
    pub rejected: protocol::RecordId,
    /// Height after which the task auction is open (posted, not yet cleared).
    pub auction_open_at: u64,
}

/// One whole period with every kind of layer, padded with empty blocks to `pad` blocks.
pub fn period_chain(pad: u64) -> Period {
    use protocol::ledger::Outcome;
    let mut c = LedgerChain::new(fixture());
    let d = c.fx.delegates[0].clone();
    let co = c.fx.coordinator.clone();
    let m: Vec<protocol::Keypair> = c.fx.members.clone();
    let r = c.rec(&d, RecordBody::OpenPeriod { period: 1 });
    assert_eq!(c.push(vec![r]), vec![Outcome::Accepted]);
    let post = c.rec(
        &co,
        RecordBody::PostTask {
            period: 1,
            task: "garden".into(),
            project: "commons".into(),
            hours_mh: 3_000,
            slots: 3,
            min_weight_bp: 5_000,
            max_weight_bp: 50_000,
        },
    );
    assert_eq!(c.push(vec![post]), vec![Outcome::Accepted]);
    let auction_open_at = c.ledger.height();
    let bids: Vec<SignedRecord> = (0..3)
        .map(|i| {
            c.rec(
                &m[i],
                RecordBody::BidTask {
                    period: 1,
                    task: "garden".into(),
                    weight_bp: 10_000 + 1_000 * i as u32,
                },
            )
        })
        .collect();
    assert!(c.push(bids).iter().all(|o| *o == Outcome::Accepted));
    let r = c.rec(&d, RecordBody::CloseBidding { period: 1 });
    assert_eq!(c.push(vec![r]), vec![Outcome::Accepted]);
    let contribs: Vec<SignedRecord> = (0..3)
        .map(|i| {
            c.rec(
                &m[i],
                RecordBody::Contribute {
                    period: 1,
                    task: "garden".into(),
                    hours_mh: 2_000 + 500 * i as i64,
                    note: format!("by {i}"),
                },
            )
        })
        .collect();
    let ids: Vec<protocol::RecordId> = contribs.iter().map(SignedRecord::id).collect();
    assert!(c.push(contribs).iter().all(|o| *o == Outcome::Accepted));
    // A late bid: valid when signed, rejected when applied (the phase moved on).
    let late = c.rec(
        &m[0],
        RecordBody::BidTask {
            period: 1,
            task: "garden".into(),
            weight_bp: 9_000,
        },
    );
    let rejected = late.id();
    let attest = c.rec(
        &co,
        RecordBody::Attest {
            contribution: ids[0],
            hours_mh: None,
        },
    );
    let out = c.push(vec![late, attest]);
    assert!(matches!(out[0], Outcome::Rejected { .. }), "{out:?}");
    assert_eq!(out[1], Outcome::Accepted);
    let amend = c.rec(
        &co,
        RecordBody::Amend {
            contribution: ids[0],
            hours_mh: 1_500,
        },
    );
    let retract = c.rec(
        &m[1],
        RecordBody::Retract {
            contribution: ids[1],
        },
    );
    let attest2 = c.rec(
        &co,
        RecordBody::Attest {
            contribution: ids[2],
            hours_mh: Some(2_800),
        },
    );
    assert!(c
        .push(vec![amend, retract, attest2])
        .iter()
        .all(|o| *o == Outcome::Accepted));
    let r = c.rec(&d, RecordBody::ClosePeriod { period: 1 });
    assert_eq!(c.push(vec![r]), vec![Outcome::Accepted]);
    while (c.blocks.len() as u64) < pad {
        c.push(vec![]);
    }
    Period {
        chain: c,
        amended: ids[0],
        retracted: ids[1],
        rejected,
        auction_open_at,
    }
}
