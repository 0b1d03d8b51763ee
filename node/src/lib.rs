//! A peerhours node.

pub mod agreement;
pub mod api;
pub mod api_types;
pub mod app;
pub mod config;
pub mod keyfile;
pub mod mempool;
pub mod network;
pub mod runtime;
pub mod sync;
