//! The submitting commands: each signs one record locally with `--key` and posts it to
//! `--node`.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use protocol::amount::{parse_hours, parse_weight};
use protocol::{Hash, RecordBody};

use crate::client::{submit_with, Api, KeyArg, NodeArgs, SubmitOpts};

#[derive(Args, Clone)]
pub struct Common {
    #[command(flatten)]
    pub key: KeyArg,
    #[command(flatten)]
    pub node: NodeArgs,
    #[command(flatten)]
    pub submit: SubmitOpts,
}

#[derive(Subcommand)]
pub enum MemberCommand {
    /// (Delegates) admit a member to your association.
    Admit {
        /// The member's public key (hex) or key file.
        #[arg(long)]
        member: String,
        /// Admit as exempt (children, elderly, sick, trainees): never charged a levy.
        #[arg(long)]
        exempt: bool,
        /// The association (defaults to your own as a delegate).
        #[arg(long)]
        association: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// (Delegates) mark a member of your association exempt or contributing.
    SetExempt {
        /// The member's public key (hex) or key file.
        #[arg(long)]
        member: String,
        #[arg(
            long,
            conflicts_with = "contributing",
            required_unless_present = "contributing"
        )]
        exempt: bool,
        #[arg(long)]
        contributing: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// (Delegates) register a project of your association with its coordinator.
    Register {
        #[arg(long)]
        name: String,
        /// The coordinator's public key (hex) or key file; repeat for several.
        #[arg(long, required = true)]
        coordinator: Vec<String>,
        /// A flat-rate project: its goods are free to take; its work is levied on everyone.
        #[arg(long)]
        flat_rate: bool,
        /// The association (defaults to your own as a delegate).
        #[arg(long)]
        association: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum PeriodCommand {
    /// (Delegates) open the next period: the bidding phase starts.
    Open(Common),
    /// (Delegates) end bidding: every task and product auction clears; the work phase starts.
    CloseBidding(Common),
    /// (Delegates) close the period: levies, social allotment and surplus are booked.
    Close(Common),
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// (Coordinators) post a task for this period's auction.
    Post {
        #[arg(long)]
        id: String,
        #[arg(long)]
        project: String,
        /// Estimated hours (shown to bidders), e.g. 2.5.
        #[arg(long, allow_negative_numbers = true)]
        hours: String,
        /// How many people are needed.
        #[arg(long)]
        slots: u32,
        /// Lowest weight the auction may reach (at most 1.0).
        #[arg(long, allow_negative_numbers = true, default_value = "0.5")]
        min_weight: String,
        /// Highest weight the auction may reach (at least 1.0).
        #[arg(long, allow_negative_numbers = true, default_value = "5.0")]
        max_weight: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum ProductCommand {
    /// (Coordinators) offer units of a rival good for this period's auction.
    Offer {
        #[arg(long)]
        id: String,
        #[arg(long)]
        project: String,
        #[arg(long)]
        units: u32,
        /// Cost per unit in hours (its share of the weighted production effort).
        #[arg(long, allow_negative_numbers = true)]
        cost: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub enum BidCommand {
    /// Offer to do a task if its weight reaches at least W.
    Task {
        #[arg(long)]
        task: String,
        /// Your reserve weight, e.g. 1.5 (above 0; above the task's maximum cannot win).
        #[arg(long, allow_negative_numbers = true)]
        weight: String,
        #[command(flatten)]
        common: Common,
    },
    /// Bid for one unit of a product: the most hours you are willing to contribute for it.
    Product {
        #[arg(long)]
        product: String,
        /// Your maximum in hours (not below the product's cost).
        #[arg(long, allow_negative_numbers = true)]
        max: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
pub struct ContributeArgs {
    /// The task you won.
    #[arg(long)]
    pub task: String,
    /// Hours worked, e.g. 2.5 (at most 3 decimals).
    #[arg(long, allow_negative_numbers = true)]
    pub hours: String,
    /// A short note for the coordinator.
    #[arg(long, default_value = "")]
    pub note: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct AttestArgs {
    /// The contribution's record id (hex).
    #[arg(long)]
    pub contribution: String,
    /// The hours that count, if not the claimed ones.
    #[arg(long, allow_negative_numbers = true)]
    pub hours: Option<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct AmendArgs {
    /// The attested contribution's record id (hex).
    #[arg(long)]
    pub contribution: String,
    /// The hours that count from now on.
    #[arg(long, allow_negative_numbers = true)]
    pub hours: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Args)]
pub struct RetractArgs {
    /// Your unattested contribution's record id (hex).
    #[arg(long)]
    pub contribution: String,
    #[command(flatten)]
    pub common: Common,
}

fn record_id(s: &str) -> anyhow::Result<Hash> {
    Hash::from_hex(s).with_context(|| {
        format!("--contribution {s:?} is not a record id (64 lowercase hex characters)")
    })
}

/// Signs and submits `make(period, delegate association)`.
fn send(
    common: &Common,
    make: impl FnOnce(&node::api_types::Status) -> anyhow::Result<RecordBody>,
) -> anyhow::Result<()> {
    let key = common.key.load()?;
    let api = Api::new(&common.node)?;
    let status = api.status()?;
    let body = make(&status)?;
    submit_with(&api, &status, &common.submit, &key, body)
}

/// The phase-bound records carry the current period; refuse early when there is none.
fn open_period(s: &node::api_types::Status) -> anyhow::Result<u64> {
    if s.period == 0 || s.phase == "closed" {
        bail!(
            "no period is open (period {} is {}); a delegate runs `peerhours period open` first",
            s.period,
            s.phase
        );
    }
    Ok(s.period)
}

/// The association a delegate acts for: `--association`, else the one the genesis gives
/// the signing key.
fn association_of(common: &Common, given: Option<String>) -> anyhow::Result<String> {
    if let Some(a) = given {
        return Ok(a);
    }
    let key = common.key.load()?;
    let api = Api::new(&common.node)?;
    let text = String::from_utf8(api.get_bytes("/v1/genesis", std::time::Duration::from_secs(10))?)
        .context("the node's genesis is not text")?;
    let genesis = protocol::Genesis::from_toml(&text).context("reading the node's genesis")?;
    genesis
        .delegates
        .iter()
        .find(|d| d.key == key.public())
        .map(|d| d.association.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} is not a delegate in the genesis; sign with a delegate's key or pass --association",
                common.key.key.display()
            )
        })
}

pub fn run_member(c: MemberCommand) -> anyhow::Result<()> {
    match c {
        MemberCommand::Admit {
            member,
            exempt,
            association,
            common,
        } => {
            let member = node::keyfile::resolve_public(&member)?;
            let association = association_of(&common, association)?;
            send(&common, |_| {
                Ok(RecordBody::AdmitMember {
                    member,
                    association,
                    exempt,
                })
            })
        }
        MemberCommand::SetExempt {
            member,
            exempt,
            contributing: _,
            common,
        } => {
            let account = node::keyfile::resolve_public(&member)?;
            send(&common, |_| Ok(RecordBody::SetExempt { account, exempt }))
        }
    }
}

pub fn run_project(c: ProjectCommand) -> anyhow::Result<()> {
    match c {
        ProjectCommand::Register {
            name,
            coordinator,
            flat_rate,
            association,
            common,
        } => {
            let coordinators = coordinator
                .iter()
                .map(|c| node::keyfile::resolve_public(c))
                .collect::<Result<Vec<_>, _>>()?;
            let association = association_of(&common, association)?;
            send(&common, |_| {
                Ok(RecordBody::RegisterProject {
                    name,
                    association,
                    coordinators,
                    flat_rate,
                })
            })
        }
    }
}

pub fn run_period(c: PeriodCommand) -> anyhow::Result<()> {
    match c {
        PeriodCommand::Open(common) => send(&common, |s| {
            if s.phase != "closed" {
                bail!(
                    "period {} is still open ({} phase); close it before opening the next",
                    s.period,
                    s.phase
                );
            }
            Ok(RecordBody::OpenPeriod {
                period: s.period + 1,
            })
        }),
        PeriodCommand::CloseBidding(common) => send(&common, |s| {
            let period = open_period(s)?;
            if s.phase != "bidding" {
                bail!("period {period} is in its {} phase; bidding can only be closed in the bidding phase", s.phase);
            }
            Ok(RecordBody::CloseBidding { period })
        }),
        PeriodCommand::Close(common) => send(&common, |s| {
            Ok(RecordBody::ClosePeriod {
                period: open_period(s)?,
            })
        }),
    }
}

pub fn run_task(c: TaskCommand) -> anyhow::Result<()> {
    match c {
        TaskCommand::Post {
            id,
            project,
            hours,
            slots,
            min_weight,
            max_weight,
            common,
        } => {
            let hours_mh = parse_hours(&hours).context("--hours")?;
            let min_weight_bp = parse_weight(&min_weight).context("--min-weight")?;
            let max_weight_bp = parse_weight(&max_weight).context("--max-weight")?;
            if slots == 0 {
                bail!("--slots must be at least 1");
            }
            if min_weight_bp > 10_000 || max_weight_bp < 10_000 {
                bail!("the weight bounds must satisfy --min-weight <= 1.0 <= --max-weight");
            }
            send(&common, |s| {
                Ok(RecordBody::PostTask {
                    period: open_period(s)?,
                    task: id,
                    project,
                    hours_mh,
                    slots,
                    min_weight_bp,
                    max_weight_bp,
                })
            })
        }
    }
}

pub fn run_product(c: ProductCommand) -> anyhow::Result<()> {
    match c {
        ProductCommand::Offer {
            id,
            project,
            units,
            cost,
            common,
        } => {
            let cost_mh = parse_hours(&cost).context("--cost")?;
            if units == 0 {
                bail!("--units must be at least 1");
            }
            send(&common, |s| {
                Ok(RecordBody::OfferProduct {
                    period: open_period(s)?,
                    product: id,
                    project,
                    units,
                    cost_mh,
                })
            })
        }
    }
}

pub fn run_bid(c: BidCommand) -> anyhow::Result<()> {
    match c {
        BidCommand::Task {
            task,
            weight,
            common,
        } => {
            let weight_bp = parse_weight(&weight).context("--weight")?;
            send(&common, |s| {
                Ok(RecordBody::BidTask {
                    period: open_period(s)?,
                    task,
                    weight_bp,
                })
            })
        }
        BidCommand::Product {
            product,
            max,
            common,
        } => {
            let max_mh = parse_hours(&max).context("--max")?;
            send(&common, |s| {
                Ok(RecordBody::BidProduct {
                    period: open_period(s)?,
                    product,
                    max_mh,
                })
            })
        }
    }
}

pub fn run_contribute(a: ContributeArgs) -> anyhow::Result<()> {
    let hours_mh = parse_hours(&a.hours).context("--hours")?;
    send(&a.common, |s| {
        Ok(RecordBody::Contribute {
            period: open_period(s)?,
            task: a.task,
            hours_mh,
            note: a.note,
        })
    })
}

pub fn run_attest(a: AttestArgs) -> anyhow::Result<()> {
    let contribution = record_id(&a.contribution)?;
    let hours_mh = a
        .hours
        .as_deref()
        .map(parse_hours)
        .transpose()
        .context("--hours")?;
    send(&a.common, |_| {
        Ok(RecordBody::Attest {
            contribution,
            hours_mh,
        })
    })
}

pub fn run_amend(a: AmendArgs) -> anyhow::Result<()> {
    let contribution = record_id(&a.contribution)?;
    let hours_mh = parse_hours(&a.hours).context("--hours")?;
    send(&a.common, |_| {
        Ok(RecordBody::Amend {
            contribution,
            hours_mh,
        })
    })
}

pub fn run_retract(a: RetractArgs) -> anyhow::Result<()> {
    let contribution = record_id(&a.contribution)?;
    send(&a.common, |_| Ok(RecordBody::Retract { contribution }))
}
