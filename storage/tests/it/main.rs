//! Integration tests of the storage crate: one binary, one file per scenario family.

mod common;
mod db;
mod export;
mod log_contract;
mod replay;
mod sigkill;
mod store;
