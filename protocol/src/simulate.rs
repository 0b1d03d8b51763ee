//! `peerhours simulate`: one period of the economic rules on a TOML scenario (the format
//! of `cli.md`), without keys, network or disk.
//!
//! The scenario is turned into a genesis and records and run through the real
//! [`Ledger`](crate::ledger::Ledger): the same clearing and levy code as the network, no
//! copy of the rules. Members' account ids are
//! `blake3("peerhours/simulate/member/v1" || name)`, so tie-breaks are reproducible by
//! hand; records are not signed (there are no keys), everything else is checked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::amount::{self, AmountError};
use crate::codec;
use crate::crypto::{Hash, PublicKey, Signature};
use crate::genesis::{
    Association, Decimal, Genesis, GenesisMember, GenesisProject, Params, SocialRule,
};
use crate::ledger::{Account, Ledger, Outcome};
use crate::record::{DelegateInfo, Record, RecordBody, RecordId, SignedRecord};

/// Why a scenario cannot run: the rule broken and the entry that broke it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("scenario TOML: {0}")]
    Toml(String),
    #[error("{entry}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("scenario: {0}")]
    Invalid(String),
}

/// A task's outcome, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReport {
    pub weight_bp: u32,
    /// Member names in sort order.
    pub winners: Vec<String>,
    pub shortfall: u32,
}

/// A product's outcome, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductReport {
    pub price_mh: i64,
    /// Member names in sort order.
    pub winners: Vec<String>,
    pub surplus_mh: i64,
}

/// The outcome of a scenario: the JSON document of `peerhours simulate --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimReport {
    pub tasks: BTreeMap<String, TaskReport>,
    pub products: BTreeMap<String, ProductReport>,
    /// Member balances by name.
    pub balances_mh: BTreeMap<String, i64>,
    /// `pool`, `surplus` and every `social:<association>`.
    pub accounts_mh: BTreeMap<String, i64>,
    /// Sum of every balance and account (0).
    pub sum_mh: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    #[serde(default)]
    association: Vec<AssociationToml>,
    #[serde(default)]
    member: Vec<MemberToml>,
    #[serde(default)]
    project: Vec<ProjectToml>,
    #[serde(default)]
    task: Vec<TaskToml>,
    #[serde(default)]
    task_bid: Vec<TaskBidToml>,
    #[serde(default)]
    contribution: Vec<ContributionToml>,
    #[serde(default)]
    product: Vec<ProductToml>,
    #[serde(default)]
    product_bid: Vec<ProductBidToml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssociationToml {
    name: String,
    social_rule: String,
    social_fixed_hours: Option<Decimal>,
    credit_limit_hours: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberToml {
    name: String,
    association: String,
    #[serde(default)]
    exempt: bool,
    opening_hours: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectToml {
    name: String,
    #[serde(default)]
    flat_rate: bool,
    /// Optional; the first association by default.
    association: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskToml {
    id: String,
    project: String,
    hours: Option<Decimal>,
    slots: u32,
    min_weight: Option<Decimal>,
    max_weight: Option<Decimal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskBidToml {
    task: String,
    member: String,
    weight: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContributionToml {
    task: String,
    member: String,
    hours: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductToml {
    id: String,
    project: String,
    units: u32,
    cost_hours: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductBidToml {
    product: String,
    member: String,
    max_hours: Decimal,
}

/// A member's account id in a simulation: `blake3("peerhours/simulate/member/v1" || name)`.
pub fn member_id(name: &str) -> PublicKey {
    PublicKey(Hash::of_parts(&[b"peerhours/simulate/member/v1", name.as_bytes()]).0)
}

fn coordinator_id(project: &str) -> PublicKey {
    PublicKey(Hash::of_parts(&[b"peerhours/simulate/coordinator/v1", project.as_bytes()]).0)
}

fn delegate_id() -> PublicKey {
    PublicKey(Hash::of_parts(&[b"peerhours/simulate/delegate/v1"]).0)
}

fn entry_err(entry: &str, reason: impl std::fmt::Display) -> SimError {
    SimError::Entry {
        entry: entry.to_string(),
        reason: reason.to_string(),
    }
}

fn amount_err(entry: &str, e: AmountError) -> SimError {
    entry_err(entry, e)
}

/// One record of the simulation and the scenario entry it stands for.
struct Step {
    entry: String,
    record: Record,
}

impl Step {
    fn id(&self) -> RecordId {
        // Unsigned: the id is the hash of the record with an all-zero signature.
        Hash::of(&codec::encode(&SignedRecord {
            record: self.record.clone(),
            signature: Signature([0; 64]),
        }))
    }
}

struct Builder {
    nonce: u64,
    steps: Vec<Step>,
}

impl Builder {
    fn push(
        &mut self,
        entry: String,
        signer: PublicKey,
        body: RecordBody,
    ) -> Result<RecordId, SimError> {
        body.check_shape().map_err(|e| entry_err(&entry, e))?;
        self.nonce += 1;
        let step = Step {
            entry,
            record: Record {
                signer,
                nonce: self.nonce,
                body,
            },
        };
        let id = step.id();
        self.steps.push(step);
        Ok(id)
    }

    /// Applies the steps as one block; the first rejected record is the error.
    fn run(&mut self, ledger: &mut Ledger) -> Result<(), SimError> {
        let steps = std::mem::take(&mut self.steps);
        let ids: Vec<RecordId> = steps.iter().map(Step::id).collect();
        let items: Vec<(RecordId, &Record)> = ids
            .iter()
            .copied()
            .zip(steps.iter().map(|s| &s.record))
            .collect();
        let height = ledger.height() + 1;
        let receipt = ledger
            .apply_records(height, &items)
            .map_err(|e| SimError::Invalid(e.to_string()))?;
        for (step, outcome) in steps.iter().zip(&receipt.outcomes) {
            if let Outcome::Rejected { reason } = outcome {
                return Err(entry_err(&step.entry, reason));
            }
        }
        Ok(())
    }
}

fn lookup<'a, T>(
    map: &'a BTreeMap<String, T>,
    name: &str,
    what: &str,
    entry: &str,
) -> Result<&'a T, SimError> {
    map.get(name).ok_or_else(|| {
        entry_err(
            entry,
            format!("{what} {name:?} is not defined in the scenario"),
        )
    })
}

/// Runs a scenario and reports the outcome (see `cli.md`, "Trying the rules without a
/// network").
pub fn run(toml_text: &str) -> Result<SimReport, SimError> {
    let sc: Scenario = toml::from_str(toml_text).map_err(|e| SimError::Toml(e.to_string()))?;
    let period = 1u64;

    // Associations.
    let mut associations = Vec::new();
    for (i, a) in sc.association.iter().enumerate() {
        let entry = format!("association #{} ({:?})", i + 1, a.name);
        if associations.iter().any(|x: &Association| x.name == a.name) {
            return Err(entry_err(&entry, "the name is used twice"));
        }
        let social_rule = match a.social_rule.as_str() {
            "average" => SocialRule::Average,
            "fixed" => {
                let h = a
                    .social_fixed_hours
                    .as_ref()
                    .ok_or_else(|| entry_err(&entry, "rule \"fixed\" needs social_fixed_hours"))?;
                SocialRule::Fixed {
                    per_member_mh: amount::parse_hours(&h.0).map_err(|e| amount_err(&entry, e))?,
                }
            }
            other => {
                return Err(entry_err(
                    &entry,
                    format!("social_rule {other:?} is neither \"average\" nor \"fixed\""),
                ))
            }
        };
        let credit_limit_mh =
            amount::parse_hours(&a.credit_limit_hours.0).map_err(|e| amount_err(&entry, e))?;
        associations.push(Association {
            name: a.name.clone(),
            social_rule,
            credit_limit_mh,
        });
    }
    let Some(first_association) = associations.first().map(|a| a.name.clone()) else {
        return Err(SimError::Invalid(
            "a scenario needs at least one [[association]]".into(),
        ));
    };
    let assoc_names: BTreeMap<String, ()> =
        associations.iter().map(|a| (a.name.clone(), ())).collect();

    // Members.
    let mut members: BTreeMap<String, PublicKey> = BTreeMap::new();
    let mut genesis_members = Vec::new();
    for (i, m) in sc.member.iter().enumerate() {
        let entry = format!("member #{} ({:?})", i + 1, m.name);
        lookup(&assoc_names, &m.association, "association", &entry)?;
        if members.insert(m.name.clone(), member_id(&m.name)).is_some() {
            return Err(entry_err(&entry, "the name is used twice"));
        }
        let opening_mh = match &m.opening_hours {
            Some(d) => amount::parse_signed_hours(&d.0).map_err(|e| amount_err(&entry, e))?,
            None => 0,
        };
        genesis_members.push(GenesisMember {
            key: member_id(&m.name),
            association: m.association.clone(),
            exempt: m.exempt,
            opening_mh,
        });
    }
    let names: BTreeMap<PublicKey, String> = members.iter().map(|(n, k)| (*k, n.clone())).collect();

    // Projects.
    let mut projects: BTreeMap<String, ()> = BTreeMap::new();
    let mut genesis_projects = Vec::new();
    for (i, p) in sc.project.iter().enumerate() {
        let entry = format!("project #{} ({:?})", i + 1, p.name);
        let association = p
            .association
            .clone()
            .unwrap_or_else(|| first_association.clone());
        lookup(&assoc_names, &association, "association", &entry)?;
        if projects.insert(p.name.clone(), ()).is_some() {
            return Err(entry_err(&entry, "the name is used twice"));
        }
        genesis_projects.push(GenesisProject {
            name: p.name.clone(),
            association,
            coordinators: vec![coordinator_id(&p.name)],
            flat_rate: p.flat_rate,
        });
    }

    let genesis = Genesis {
        version: Genesis::VERSION,
        pool: "simulate".into(),
        associations: associations.clone(),
        delegates: vec![DelegateInfo {
            key: delegate_id(),
            association: first_association,
            addr: String::new(),
        }],
        members: genesis_members,
        projects: genesis_projects,
        params: Params::default(),
    };
    let mut ledger = Ledger::from_genesis(&genesis);
    let delegate = delegate_id();
    let mut b = Builder {
        nonce: 0,
        steps: Vec::new(),
    };

    // Bidding phase.
    b.push(
        "opening the period".into(),
        delegate,
        RecordBody::OpenPeriod { period },
    )?;
    let mut tasks: BTreeMap<String, ()> = BTreeMap::new();
    for (i, t) in sc.task.iter().enumerate() {
        let entry = format!("task #{} ({:?})", i + 1, t.id);
        lookup(&projects, &t.project, "project", &entry)?;
        if tasks.insert(t.id.clone(), ()).is_some() {
            return Err(entry_err(&entry, "task ids are unique within a period"));
        }
        let weight = |d: &Option<Decimal>, default: u32| match d {
            Some(d) => amount::parse_weight(&d.0).map_err(|e| amount_err(&entry, e)),
            None => Ok(default),
        };
        let hours_mh = match &t.hours {
            Some(d) => amount::parse_hours(&d.0).map_err(|e| amount_err(&entry, e))?,
            None => 0,
        };
        let body = RecordBody::PostTask {
            period,
            task: t.id.clone(),
            project: t.project.clone(),
            hours_mh,
            slots: t.slots,
            min_weight_bp: weight(&t.min_weight, 5_000)?,
            max_weight_bp: weight(&t.max_weight, 50_000)?,
        };
        b.push(entry.clone(), coordinator_id(&t.project), body)?;
    }
    let mut products: BTreeMap<String, ()> = BTreeMap::new();
    for (i, p) in sc.product.iter().enumerate() {
        let entry = format!("product #{} ({:?})", i + 1, p.id);
        lookup(&projects, &p.project, "project", &entry)?;
        if products.insert(p.id.clone(), ()).is_some() {
            return Err(entry_err(&entry, "product ids are unique within a period"));
        }
        let cost_mh = amount::parse_hours(&p.cost_hours.0).map_err(|e| amount_err(&entry, e))?;
        let body = RecordBody::OfferProduct {
            period,
            product: p.id.clone(),
            project: p.project.clone(),
            units: p.units,
            cost_mh,
        };
        b.push(entry.clone(), coordinator_id(&p.project), body)?;
    }
    for (i, bid) in sc.task_bid.iter().enumerate() {
        let entry = format!(
            "task_bid #{} (task {:?}, member {:?})",
            i + 1,
            bid.task,
            bid.member
        );
        let who = *lookup(&members, &bid.member, "member", &entry)?;
        lookup(&tasks, &bid.task, "task", &entry)?;
        let weight_bp = amount::parse_weight(&bid.weight.0).map_err(|e| amount_err(&entry, e))?;
        b.push(
            entry.clone(),
            who,
            RecordBody::BidTask {
                period,
                task: bid.task.clone(),
                weight_bp,
            },
        )?;
    }
    for (i, bid) in sc.product_bid.iter().enumerate() {
        let entry = format!(
            "product_bid #{} (product {:?}, member {:?})",
            i + 1,
            bid.product,
            bid.member
        );
        let who = *lookup(&members, &bid.member, "member", &entry)?;
        lookup(&products, &bid.product, "product", &entry)?;
        let max_mh = amount::parse_hours(&bid.max_hours.0).map_err(|e| amount_err(&entry, e))?;
        b.push(
            entry.clone(),
            who,
            RecordBody::BidProduct {
                period,
                product: bid.product.clone(),
                max_mh,
            },
        )?;
    }
    b.push(
        "closing the bidding".into(),
        delegate,
        RecordBody::CloseBidding { period },
    )?;
    b.run(&mut ledger)?;

    // Work phase: each contribution is recorded and attested at its hours.
    for (i, c) in sc.contribution.iter().enumerate() {
        let entry = format!(
            "contribution #{} (task {:?}, member {:?})",
            i + 1,
            c.task,
            c.member
        );
        let who = *lookup(&members, &c.member, "member", &entry)?;
        lookup(&tasks, &c.task, "task", &entry)?;
        let won = ledger
            .task_clearing(&c.task)
            .is_some_and(|cl| cl.winners.contains(&who.0));
        if !won {
            return Err(entry_err(
                &entry,
                format!("{} did not win task {}", c.member, c.task),
            ));
        }
        let hours_mh = amount::parse_hours(&c.hours.0).map_err(|e| amount_err(&entry, e))?;
        let project = sc
            .task
            .iter()
            .find(|t| t.id == c.task)
            .map(|t| t.project.clone())
            .unwrap_or_default();
        let id = b.push(
            entry.clone(),
            who,
            RecordBody::Contribute {
                period,
                task: c.task.clone(),
                hours_mh,
                note: String::new(),
            },
        )?;
        b.push(
            entry.clone(),
            coordinator_id(&project),
            RecordBody::Attest {
                contribution: id,
                hours_mh: None,
            },
        )?;
    }
    b.push(
        "closing the period".into(),
        delegate,
        RecordBody::ClosePeriod { period },
    )?;
    b.run(&mut ledger)?;
    ledger
        .check_invariants()
        .map_err(|e| SimError::Invalid(format!("an invariant broke: {e}")))?;

    report(&ledger, &sc, &names)
}

fn report(
    ledger: &Ledger,
    sc: &Scenario,
    names: &BTreeMap<PublicKey, String>,
) -> Result<SimReport, SimError> {
    let name_of = |id: &[u8; 32]| {
        names
            .get(&PublicKey(*id))
            .cloned()
            .unwrap_or_else(|| hex::encode(id))
    };
    let mut tasks = BTreeMap::new();
    for t in &sc.task {
        if let Some(c) = ledger.task_clearing(&t.id) {
            tasks.insert(
                t.id.clone(),
                TaskReport {
                    weight_bp: c.weight_bp,
                    winners: c.winners.iter().map(name_of).collect(),
                    shortfall: c.shortfall,
                },
            );
        }
    }
    let mut products = BTreeMap::new();
    for p in &sc.product {
        if let Some((c, cost)) = ledger.product_clearing(&p.id) {
            let surplus_mh = c
                .surplus_mh(cost)
                .map_err(|e| SimError::Invalid(e.to_string()))?;
            products.insert(
                p.id.clone(),
                ProductReport {
                    price_mh: c.price_mh,
                    winners: c.winners.iter().map(name_of).collect(),
                    surplus_mh,
                },
            );
        }
    }
    let mut balances_mh = BTreeMap::new();
    let mut accounts_mh = BTreeMap::new();
    let mut sum: i128 = 0;
    for (account, balance) in ledger.accounts() {
        sum += i128::from(balance);
        match &account {
            Account::Member(k) => {
                balances_mh.insert(names.get(k).cloned().unwrap_or_else(|| k.to_hex()), balance);
            }
            other => {
                accounts_mh.insert(other.to_string(), balance);
            }
        }
    }
    let sum_mh = i64::try_from(sum)
        .map_err(|_| SimError::Invalid("the sum of accounts overflows".into()))?;
    Ok(SimReport {
        tasks,
        products,
        balances_mh,
        accounts_mh,
        sum_mh,
    })
}
