//! Integration tests of the protocol crate: one binary, one file per scenario family.

mod decode;
mod fuzz_regressions;
mod golden;
mod harness;
mod ledger_flow;
mod props;
mod simulate_examples;
