//! `peerhours key ...`: make, show and rotate a member's key.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use node::keyfile;
use protocol::RecordBody;

use crate::client::{NodeArgs, SubmitOpts};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a new ed25519 key file (mode 0600; never overwrites) and print its public key.
    Generate {
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        json: crate::JsonFlag,
    },
    /// Print the public key (your account id when you were admitted with it) of a key file.
    Show {
        /// The key file.
        file: PathBuf,
        #[command(flatten)]
        json: crate::JsonFlag,
    },
    /// Bind a new key to your account, signed with your current key.
    Rotate {
        /// Your current key file.
        #[arg(long)]
        key: PathBuf,
        /// The new key file (create it first with `peerhours key generate`).
        #[arg(long)]
        new: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        submit: SubmitOpts,
    },
}

pub fn run(c: KeyCommand) -> anyhow::Result<()> {
    match c {
        KeyCommand::Generate { out, json } => {
            let key = keyfile::random_keypair();
            keyfile::write(&out, &key)?;
            if json.json {
                println!(
                    "{}",
                    serde_json::json!({ "public_key": key.public().to_hex(), "file": out })
                );
            } else {
                println!("{}", key.public());
                eprintln!(
                    "wrote {} (keep it private; it signs for you)",
                    out.display()
                );
            }
            Ok(())
        }
        KeyCommand::Show { file, json } => {
            let key = keyfile::read(&file)?;
            if json.json {
                println!(
                    "{}",
                    serde_json::json!({ "public_key": key.public().to_hex() })
                );
            } else {
                println!("{}", key.public());
            }
            Ok(())
        }
        KeyCommand::Rotate {
            key,
            new,
            node,
            submit,
        } => {
            let old = keyfile::read(&key)?;
            let new_key = keyfile::read(&new).context("reading the new key")?;
            if old.public() == new_key.public() {
                anyhow::bail!(
                    "the new key is the same as the current key; generate a new one first"
                );
            }
            crate::client::submit(
                &node,
                &submit,
                &old,
                RecordBody::RotateKey {
                    new_key: new_key.public(),
                },
            )
        }
    }
}
