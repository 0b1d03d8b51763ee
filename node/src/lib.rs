//! A peerhours node.

pub mod agreement;
pub mod api_types;
pub mod config;
pub mod keyfile;
pub mod network;
