//! The ledger state machine: applies the records of one block at a time to the state
//! and computes the state root. Pure and deterministic: no clock, no I/O, BTreeMaps only.
//!
//! Every record is first *judged* against the state (`judge`, which never mutates and
//! returns the `Change` it would make), then *committed*. `check` is judging alone;
//! `apply` judges and commits each record of a block on a copy of the state and swaps
//! the copy in only if the block is valid as a whole, so an `Err` leaves `self` untouched.
//!
//! - `state`: the `Ledger` and what it holds, built from the genesis; read-only views.
//! - `apply`: `check` and `apply` of a block, its `Receipt` and `ApplyError`.
//! - `judge`: one file per family of records (membership, period, auction, work,
//!   quorum), each returning a `Change` or a `Rejection`.
//! - `change`: the `Change` a judged record makes, and `commit`, which makes it.
//! - `rules`: the pure arithmetic of auctions, levies and weights.
//! - `root`: the state root and balance proofs; `invariants`: what holds after a block.

mod account;
mod apply;
mod change;
mod invariants;
mod judge;
mod rejection;
mod root;
pub mod rules;
mod state;

pub use account::{Account, AccountParseError, BalanceProof};
// The ledger's bounds live with the other consensus bounds; re-exported here so
// `ledger::MEMBERS_MAX` and friends keep resolving.
pub use crate::limits::{
    BIDS_PER_AUCTION_MAX, CONTRIBUTIONS_PER_PERIOD_MAX, MEMBERS_MAX, PRODUCTS_PER_PERIOD_MAX,
    PROJECTS_MAX, TASKS_PER_PERIOD_MAX,
};
pub use apply::{ApplyError, Outcome, Receipt};
pub use rejection::Rejection;
pub use rules::{ProductClearing, TaskClearing, Transfer};
pub use state::{Ledger, Phase};
