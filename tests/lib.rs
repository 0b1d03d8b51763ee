//! In-process multi-node integration tests live in `it/`.
