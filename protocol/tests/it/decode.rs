//! Arbitrary and mutated bytes into every decoder never panic.

use proptest::prelude::*;

use protocol::record::RecordBody;
use protocol::testkit::Fixture;
use protocol::{Block, CertifiedBlock, Genesis, Hash, SignedRecord, SignedVote, Vote};

fn all_decoders(bytes: &[u8], chain: &Hash) {
    let _ = SignedRecord::from_bytes(bytes);
    let _ = SignedRecord::verify_bytes(bytes, chain);
    let _ = Block::from_bytes(bytes);
    let _ = CertifiedBlock::from_bytes(bytes);
    let _ = SignedVote::from_bytes(bytes);
    let _ = Genesis::from_bytes(bytes);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = Genesis::from_toml(text);
        let _ = protocol::simulate::run(text);
    }
}

fn samples() -> (Hash, Vec<Vec<u8>>) {
    let fx = Fixture::new("decode", 4, 2);
    let rec = SignedRecord::sign(
        &fx.members[0],
        &fx.chain_id,
        1,
        RecordBody::Contribute {
            period: 1,
            task: "t".into(),
            hours_mh: 1_000,
            note: "n".into(),
        },
    );
    let block = Block {
        height: 1,
        view: 0,
        parent: fx.chain_id,
        proposer: fx.delegates[0].public(),
        timestamp_ms: 1,
        records: vec![rec.clone()],
        state_root: Hash::ZERO,
    };
    let vote = SignedVote::sign(&fx.delegates[0], &fx.chain_id, Vote::Nullify { view: 3 });
    let cert = fx.certify(block.clone());
    (
        fx.chain_id,
        vec![
            rec.to_bytes(),
            block.to_bytes(),
            vote.to_bytes(),
            cert.to_bytes(),
            fx.genesis.to_bytes(),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_decoders(&bytes, &Hash::ZERO);
    }

    #[test]
    fn mutated_encodings_never_panic(which in 0usize..5, edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let (chain, all) = samples();
        let mut bytes = all[which].clone();
        for (i, b) in edits {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        all_decoders(&bytes, &chain);
        let n = cut.index(bytes.len() + 1);
        all_decoders(&bytes[..n], &chain);
    }

    #[test]
    fn arbitrary_toml_text_never_panics(text in "[\\[\\]a-z_=\" .0-9\n-]{0,300}") {
        let _ = protocol::simulate::run(&text);
        let _ = Genesis::from_toml(&text);
    }
}

#[test]
fn valid_encodings_decode_and_reencode_identically() {
    let (chain, all) = samples();
    let rec = SignedRecord::verify_bytes(&all[0], &chain).expect("record verifies");
    assert_eq!(rec.signed().to_bytes(), all[0]);
    assert_eq!(
        Block::from_bytes(&all[1]).expect("block").to_bytes(),
        all[1]
    );
    assert_eq!(
        SignedVote::from_bytes(&all[2]).expect("vote").to_bytes(),
        all[2]
    );
    assert_eq!(
        CertifiedBlock::from_bytes(&all[3])
            .expect("cert")
            .to_bytes(),
        all[3]
    );
    assert_eq!(
        Genesis::from_bytes(&all[4]).expect("genesis").to_bytes(),
        all[4]
    );
    // One trailing byte is refused.
    let mut longer = all[0].clone();
    longer.push(0);
    assert!(SignedRecord::from_bytes(&longer).is_err());
}
