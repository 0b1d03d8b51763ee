//! Arbitrary UTF-8 into the genesis TOML reader: never a panic. A genesis it accepts is
//! valid, round-trips through TOML and through its canonical bytes to the same value and
//! chain id, and opens a ledger whose invariants hold (accounts sum to 0).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ledger::Ledger;
use protocol::Genesis;

fn check_accepted(g: &Genesis) {
    g.validate().expect("an accepted genesis validates");
    let again =
        Genesis::from_toml(&g.to_toml()).expect("to_toml of an accepted genesis reads back");
    assert_eq!(&again, g, "the genesis changed through to_toml/from_toml");
    let bytes = g.to_bytes();
    let decoded = Genesis::from_bytes(&bytes).expect("the bytes of an accepted genesis decode");
    assert_eq!(
        &decoded, g,
        "the genesis changed through to_bytes/from_bytes"
    );
    assert_eq!(decoded.chain_id(), g.chain_id());
    let ledger = Ledger::from_genesis(g);
    if let Err(e) = ledger.check_invariants() {
        panic!("an accepted genesis opens a ledger that breaks an invariant: {e}");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(g) = Genesis::from_toml(text) {
            check_accepted(&g);
        }
    }
    if let Ok(g) = Genesis::from_bytes(data) {
        assert_eq!(
            g.to_bytes(),
            data,
            "a decoded genesis re-encodes to other bytes"
        );
        check_accepted(&g);
    }
});
