//! Arbitrary bytes into the record decoders: never a panic, and whatever decodes is
//! canonical (re-encodes to the same bytes) and keeps its id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerhours_fuzz::fixture;
use protocol::{Hash, SignedRecord};

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    if let Ok(rec) = SignedRecord::from_bytes(data) {
        assert_eq!(
            rec.to_bytes(),
            data,
            "a decoded record re-encodes to other bytes"
        );
        assert_eq!(
            rec.id(),
            Hash::of(data),
            "a decoded record's id is not the hash of its bytes"
        );
        let _ = rec.record.body.check_shape();
        let _ = rec.record.body.kind();
    }
    for chain in [fx.chain_id, Hash::ZERO] {
        if let Ok(v) = SignedRecord::verify_bytes(data, &chain) {
            assert_eq!(v.id(), Hash::of(data));
            assert_eq!(v.signed().to_bytes(), data);
            // The in-memory path agrees with the bytes path.
            let again = v
                .signed()
                .clone()
                .verify(&chain)
                .expect("a verified record verifies again");
            assert_eq!(again.id(), v.id());
        }
    }
});
