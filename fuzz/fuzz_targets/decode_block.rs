//! Arbitrary bytes into the block decoders: never a panic; whatever decodes is canonical,
//! and checking its signatures and certificate against the fixture's delegates never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerhours_fuzz::fixture;
use protocol::limits::BLOCK_RECORDS_MAX;
use protocol::{Block, CertifiedBlock};

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    if let Ok(b) = Block::from_bytes(data) {
        assert_eq!(
            b.to_bytes(),
            data,
            "a decoded block re-encodes to other bytes"
        );
        assert!(b.records.len() <= BLOCK_RECORDS_MAX);
        let _ = b.hash();
        let _ = protocol::record::verify_all(&b.records, &fx.chain_id);
    }
    if let Ok(c) = CertifiedBlock::from_bytes(data) {
        assert_eq!(
            c.to_bytes(),
            data,
            "a decoded certified block re-encodes to other bytes"
        );
        assert!(c.block.records.len() <= BLOCK_RECORDS_MAX);
        let _ = c.block.verify_proposer(&fx.chain_id, &c.proposer_signature);
        let (view, height, hash) = (c.block.view, c.block.height, c.block.hash());
        let delegates = fx.genesis.delegate_keys();
        let _ = c
            .certificate
            .verify(&fx.chain_id, &delegates, view, height, hash);
        let _ = c.certificate.verify(&fx.chain_id, &[], view, height, hash);
        let _ = protocol::vote::leader(&delegates, view);
    }
});
