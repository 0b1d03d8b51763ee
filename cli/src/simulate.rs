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
    let report = simulate::run(&text).map_err(|e| {
        anyhow::anyhow!(
            "scenario {}: {}",
            args.scenario.display(),
            one_line(&e.to_string())
        )
    })?;
    if args.json.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// TOML parse errors quote the offending line under the message; stderr gets one line.
fn one_line(text: &str) -> String {
    let is_snippet = |l: &str| {
        let t = l.trim_start();
        t.starts_with('|')
            || t.split_once(" |")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_snippet(l))
        .collect::<Vec<_>>()
        .join(": ")
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
