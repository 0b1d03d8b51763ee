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
