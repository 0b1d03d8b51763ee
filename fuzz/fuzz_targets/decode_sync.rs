//! Arbitrary bytes into the node's sync-protocol decoders: never a panic, and whatever
//! decodes is canonical. Built only with `--features sync` (it links the node crate).
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::sync::{SyncRequest, SyncResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SyncRequest::from_bytes(data) {
        assert_eq!(
            r.to_bytes(),
            data,
            "a decoded sync request re-encodes to other bytes"
        );
    }
    if let Ok(r) = SyncResponse::from_bytes(data) {
        assert_eq!(
            r.to_bytes(),
            data,
            "a decoded sync response re-encodes to other bytes"
        );
    }
});
