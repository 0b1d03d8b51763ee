//! `peerhours status` and `peerhours balance`.

use std::time::Duration;

use clap::Args;
use node::api_types::{Balance, Status};
use protocol::amount::format_mh;

use crate::client::{Api, NodeArgs};

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

#[derive(Args)]
pub struct BalanceArgs {
    /// The member: public key (hex) or key file; or `pool`, `surplus`, `social:<association>`.
    pub member: String,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

pub fn run_status(a: StatusArgs) -> anyhow::Result<()> {
    let api = Api::new(&a.node)?;
    if a.json.json {
        let v: serde_json::Value = api.get_json("/v1/status", Duration::from_secs(10))?;
        println!("{v}");
        return Ok(());
    }
    let s: Status = api.status()?;
    println!("chain       {}", s.chain_id);
    println!("height      {}", s.height);
    println!("state root  {}", s.state_root);
    println!("period      {} ({})", s.period, s.phase);
    println!("peers       {}", s.peers);
    println!(
        "delegates   {}{}",
        s.delegates,
        if s.delegate { " (this node votes)" } else { "" }
    );
    println!("pending     {}", s.pending);
    for l in &s.listen {
        println!("listen      {l}");
    }
    Ok(())
}

pub fn run_balance(a: BalanceArgs) -> anyhow::Result<()> {
    let account = match a.member.as_str() {
        "pool" | "surplus" => a.member.clone(),
        s if s.starts_with("social:") => s.to_string(),
        s => node::keyfile::resolve_public(s)?.to_hex(),
    };
    let api = Api::new(&a.node)?;
    let b: Balance = api.get_json(&format!("/v1/balance/{account}"), Duration::from_secs(10))?;
    if a.json.json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "{} h  ({} at block {}, state root {})",
            format_mh(b.balance_mh),
            b.member,
            b.height,
            b.state_root
        );
    }
    Ok(())
}
