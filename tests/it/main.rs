//! In-process multi-node tests: real nodes on loopback, driven over their HTTP API.

mod harness;

mod catchup;
mod evidence;
mod faults;
mod network;
mod regressions;
mod submissions;
