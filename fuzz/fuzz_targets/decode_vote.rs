//! Arbitrary bytes into the vote decoder: never a panic; whatever decodes is canonical,
//! verifies without panicking, and never conflicts with itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use peerhours_fuzz::fixture;
use protocol::{Hash, SignedVote};

fuzz_target!(|data: &[u8]| {
    let fx = fixture();
    // Two votes back to back as well, as evidence carries them.
    let halves = if data.is_empty() {
        0
    } else {
        usize::from(data[0]) % data.len()
    };
    let (a, b) = data.split_at(halves);
    let mut decoded = Vec::new();
    for bytes in [data, a, b] {
        if let Ok(v) = SignedVote::from_bytes(bytes) {
            assert_eq!(
                v.to_bytes(),
                bytes,
                "a decoded vote re-encodes to other bytes"
            );
            assert!(!v.conflicts_with(&v), "a vote conflicts with itself");
            let _ = v.verify(&fx.chain_id);
            let _ = v.verify(&Hash::ZERO);
            decoded.push(v);
        }
    }
    for x in &decoded {
        for y in &decoded {
            assert_eq!(
                x.conflicts_with(y),
                y.conflicts_with(x),
                "conflict is not symmetric"
            );
        }
    }
});
