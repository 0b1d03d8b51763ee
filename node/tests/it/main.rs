//! Integration tests of the node crate: one binary, one file per scenario family.

mod agreement;
mod sim;
mod voter_rules;
