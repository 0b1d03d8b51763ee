//! In-process multi-node tests: real nodes on loopback, driven over their HTTP API.

mod harness;

mod network;
mod regressions;
