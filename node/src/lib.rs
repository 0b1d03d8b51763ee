//! A peerhours node.

pub mod api_types;
pub mod config;
pub mod keyfile;
pub mod network;
