//! A peerhours node.
