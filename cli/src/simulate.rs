//! `peerhours simulate`: the economic rules on one period, without a network.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use protocol::amount::{format_bp, format_mh};
use protocol::simulate::{self, SimReport};

#[derive(Args)]
pub struct SimulateArgs {
    /// The scenario file (TOML, as in the spec's `cli.md`).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub json: crate::JsonFlag,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("cannot read the scenario {}", args.scenario.display()))?;
    let report =
        simulate::run(&text).with_context(|| format!("scenario {}", args.scenario.display()))?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The report for people: hours and weights as decimals.
fn table(r: &SimReport) -> String {
    let mut out = String::new();
    if !r.tasks.is_empty() {
        out.push_str("Tasks\n");
        out.push_str(&format!(
            "  {:<20} {:>8} {:>9}  winners\n",
            "task", "weight", "shortfall"
        ));
        for (id, t) in &r.tasks {
            out.push_str(&format!(
                "  {:<20} {:>8} {:>9}  {}\n",
                id,
                format_bp(t.weight_bp),
                t.shortfall,
                t.winners.join(", ")
            ));
        }
        out.push('\n');
    }
    if !r.products.is_empty() {
        out.push_str("Products\n");
        out.push_str(&format!(
            "  {:<20} {:>10} {:>10}  winners\n",
            "product", "price h", "surplus h"
        ));
        for (id, p) in &r.products {
            out.push_str(&format!(
                "  {:<20} {:>10} {:>10}  {}\n",
                id,
                format_mh(p.price_mh),
                format_mh(p.surplus_mh),
                p.winners.join(", ")
            ));
        }
        out.push('\n');
    }
    out.push_str("Balances (hours)\n");
    for (name, b) in &r.balances_mh {
        out.push_str(&format!("  {:<28} {:>12}\n", name, format_mh(*b)));
    }
    for (name, b) in &r.accounts_mh {
        out.push_str(&format!("  {:<28} {:>12}\n", name, format_mh(*b)));
    }
    out.push_str(&format!("  {:<28} {:>12}\n", "sum", format_mh(r.sum_mh)));
    out
}
