//! A peerhours node.

pub mod config;
pub mod keyfile;
