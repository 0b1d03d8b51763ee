//! End-to-end tests of the real `peerhours` binary: `testnet init`, one `node run` process
//! per node, and every command a user types, with its exit code, stderr and `--json`.

mod common;
mod errors;
mod flow;
mod offline;
