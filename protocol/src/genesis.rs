//! The genesis: read once from TOML, turned into a canonical postcard value whose hash
//! is the chain id. Nothing signed for one network is valid on another.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::amount::{self, AmountError};
use crate::codec::{self, CodecError};
use crate::crypto::{domain, Hash, HexError, PublicKey};
use crate::limits::{BLOCK_RECORDS_MAX, DELEGATES_MAX, GENESIS_BYTES_MAX, NAME_BYTES_MAX};
use crate::record::DelegateInfo;

/// How an association computes the allotment of each exempt member at a close.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SocialRule {
    /// The average weighted effort credited this period to its contributing members.
    Average,
    /// A configured amount per exempt member.
    Fixed { per_member_mh: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Association {
    pub name: String,
    pub social_rule: SocialRule,
    /// How far below zero a member's balance may go and still bid on products.
    pub credit_limit_mh: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisMember {
    pub key: PublicKey,
    pub association: String,
    pub exempt: bool,
    /// Opening balance, booked against `pool`.
    pub opening_mh: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisProject {
    pub name: String,
    pub association: String,
    pub coordinators: Vec<PublicKey>,
    pub flat_rate: bool,
}

/// Protocol parameters every node must share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Most records a leader puts in one block (at most `BLOCK_RECORDS_MAX`).
    pub block_records_max: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            block_records_max: 1_024,
        }
    }
}

/// The canonical genesis value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// Format version of this value.
    pub version: u32,
    pub pool: String,
    pub associations: Vec<Association>,
    pub delegates: Vec<DelegateInfo>,
    pub members: Vec<GenesisMember>,
    pub projects: Vec<GenesisProject>,
    pub params: Params,
}

/// Why a genesis is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("genesis TOML: {0}")]
    Toml(String),
    #[error("genesis: {0}")]
    Invalid(String),
    #[error("genesis: {0}")]
    Amount(#[from] AmountError),
    #[error("genesis: {0}")]
    Hex(#[from] HexError),
    #[error("genesis encoding: {0}")]
    Codec(#[from] CodecError),
}

impl Genesis {
    pub const VERSION: u32 = 1;

    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Genesis, GenesisError> {
        let g: Genesis = codec::decode(bytes, GENESIS_BYTES_MAX)?;
        g.validate()?;
        Ok(g)
    }

    /// The chain id: `blake3(GENESIS tag || postcard(genesis))`.
    pub fn chain_id(&self) -> Hash {
        Hash::of_parts(&[domain::GENESIS, &self.to_bytes()])
    }

    /// The delegates' keys, in genesis order.
    pub fn delegate_keys(&self) -> Vec<PublicKey> {
        self.delegates.iter().map(|d| d.key).collect()
    }

    /// Checks the rules a genesis must satisfy.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |m: String| Err(GenesisError::Invalid(m));
        if self.version != Self::VERSION {
            return bad(format!(
                "version {} is not supported (expected {})",
                self.version,
                Self::VERSION
            ));
        }
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= NAME_BYTES_MAX && !s.chars().any(char::is_control)
        };
        if !name_ok(&self.pool) {
            return bad("the pool needs a name of 1 to 64 bytes".into());
        }
        let mut assocs = BTreeSet::new();
        for a in &self.associations {
            if !name_ok(&a.name) {
                return bad(format!(
                    "association name {:?} must be 1 to {NAME_BYTES_MAX} bytes",
                    a.name
                ));
            }
            if !assocs.insert(a.name.as_str()) {
                return bad(format!("association {:?} is listed twice", a.name));
            }
            if a.credit_limit_mh < 0 {
                return bad(format!(
                    "association {:?}: the credit limit must not be negative",
                    a.name
                ));
            }
            if let SocialRule::Fixed { per_member_mh } = a.social_rule {
                if per_member_mh < 0 {
                    return bad(format!(
                        "association {:?}: the fixed allotment must not be negative",
                        a.name
                    ));
                }
            }
        }
        if assocs.is_empty() {
            return bad("at least one association is needed".into());
        }
        if self.delegates.is_empty() || self.delegates.len() > DELEGATES_MAX {
            return bad(format!("1 to {DELEGATES_MAX} delegates are needed"));
        }
        let mut keys = BTreeSet::new();
        for d in &self.delegates {
            d.key
                .verifying_key()
                .map_err(|e| GenesisError::Invalid(format!("delegate {}: {e}", d.key)))?;
            if !assocs.contains(d.association.as_str()) {
                return bad(format!(
                    "delegate {} names unknown association {:?}",
                    d.key, d.association
                ));
            }
            if !keys.insert(d.key) {
                return bad(format!("delegate {} is listed twice", d.key));
            }
        }
        let mut members = BTreeSet::new();
        for m in &self.members {
            m.key
                .verifying_key()
                .map_err(|e| GenesisError::Invalid(format!("member {}: {e}", m.key)))?;
            if !assocs.contains(m.association.as_str()) {
                return bad(format!(
                    "member {} names unknown association {:?}",
                    m.key, m.association
                ));
            }
            if !members.insert(m.key) {
                return bad(format!("member {} is listed twice", m.key));
            }
        }
        // Openings are booked against pool, which starts at minus their sum: that sum and
        // its negation must fit a balance, or the accounts could not sum to 0.
        let opening_total = self
            .members
            .iter()
            .try_fold(0i128, |sum, m| sum.checked_add(i128::from(m.opening_mh)));
        match opening_total {
            Some(t) if i64::try_from(t).is_ok() && i64::try_from(-t).is_ok() => {}
            _ => {
                return bad("the members' opening balances sum beyond what pool can balance".into())
            }
        }
        let mut projects = BTreeSet::new();
        for p in &self.projects {
            if !name_ok(&p.name) {
                return bad(format!(
                    "project name {:?} must be 1 to {NAME_BYTES_MAX} bytes",
                    p.name
                ));
            }
            if !projects.insert(p.name.as_str()) {
                return bad(format!("project {:?} is listed twice", p.name));
            }
            if !assocs.contains(p.association.as_str()) {
                return bad(format!(
                    "project {:?} names unknown association {:?}",
                    p.name, p.association
                ));
            }
            if p.coordinators.is_empty() || p.coordinators.len() > crate::limits::COORDINATORS_MAX {
                return bad(format!("project {:?} needs 1 to 16 coordinators", p.name));
            }
            for c in &p.coordinators {
                c.verifying_key()
                    .map_err(|e| GenesisError::Invalid(format!("coordinator {c}: {e}")))?;
            }
        }
        let max = self.params.block_records_max as usize;
        if max == 0 || max > BLOCK_RECORDS_MAX {
            return bad(format!(
                "params.block_records_max must be 1 to {BLOCK_RECORDS_MAX}"
            ));
        }
        Ok(())
    }

    /// Reads the genesis TOML (see `GenesisToml`) and validates it.
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        let t: GenesisToml = toml::from_str(text).map_err(|e| GenesisError::Toml(e.to_string()))?;
        let g = t.into_genesis()?;
        g.validate()?;
        Ok(g)
    }

    /// Writes the genesis as TOML that `from_toml` reads back to the same value.
    pub fn to_toml(&self) -> String {
        let t = GenesisToml {
            pool: self.pool.clone(),
            params: Some(ParamsToml {
                block_records_max: Some(self.params.block_records_max),
            }),
            association: self
                .associations
                .iter()
                .map(|a| AssociationToml {
                    name: a.name.clone(),
                    social_rule: match a.social_rule {
                        SocialRule::Average => "average".into(),
                        SocialRule::Fixed { .. } => "fixed".into(),
                    },
                    social_fixed_hours: match a.social_rule {
                        SocialRule::Average => None,
                        SocialRule::Fixed { per_member_mh } => {
                            Some(Decimal(amount::format_mh(per_member_mh)))
                        }
                    },
                    credit_limit_hours: Decimal(amount::format_mh(a.credit_limit_mh)),
                })
                .collect(),
            delegate: self
                .delegates
                .iter()
                .map(|d| DelegateToml {
                    key: d.key.to_hex(),
                    association: d.association.clone(),
                    addr: d.addr.clone(),
                })
                .collect(),
            member: self
                .members
                .iter()
                .map(|m| MemberToml {
                    key: m.key.to_hex(),
                    association: m.association.clone(),
                    exempt: m.exempt,
                    opening_hours: (m.opening_mh != 0)
                        .then(|| Decimal(amount::format_mh(m.opening_mh))),
                })
                .collect(),
            project: self
                .projects
                .iter()
                .map(|p| ProjectToml {
                    name: p.name.clone(),
                    association: p.association.clone(),
                    coordinators: p.coordinators.iter().map(PublicKey::to_hex).collect(),
                    flat_rate: p.flat_rate,
                })
                .collect(),
        };
        toml::to_string_pretty(&t).expect("genesis TOML serialisation cannot fail")
    }
}

/// A decimal number in TOML: a string ("2.5"), an integer or a float. A float is read by
/// its shortest decimal representation (Rust's `Display` of the parsed value), never
/// used as a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub String);

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        decimal_text(&v)
            .map(Decimal)
            .ok_or_else(|| serde::de::Error::custom("expected a decimal number"))
    }
}

/// The decimal text of a TOML number or string, if it is one.
pub fn decimal_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(x) if x.is_finite() => Some(x.to_string()),
        _ => None,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisToml {
    pool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<ParamsToml>,
    #[serde(default)]
    association: Vec<AssociationToml>,
    #[serde(default)]
    delegate: Vec<DelegateToml>,
    #[serde(default)]
    member: Vec<MemberToml>,
    #[serde(default)]
    project: Vec<ProjectToml>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParamsToml {
    block_records_max: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssociationToml {
    name: String,
    social_rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    social_fixed_hours: Option<Decimal>,
    credit_limit_hours: Decimal,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DelegateToml {
    key: String,
    association: String,
    addr: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberToml {
    key: String,
    association: String,
    #[serde(default)]
    exempt: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    opening_hours: Option<Decimal>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectToml {
    name: String,
    association: String,
    coordinators: Vec<String>,
    #[serde(default)]
    flat_rate: bool,
}

impl GenesisToml {
    fn into_genesis(self) -> Result<Genesis, GenesisError> {
        let mut associations = Vec::new();
        for a in self.association {
            let social_rule = match a.social_rule.as_str() {
                "average" => SocialRule::Average,
                "fixed" => {
                    let h = a.social_fixed_hours.ok_or_else(|| {
                        GenesisError::Invalid(format!(
                            "association {:?}: rule \"fixed\" needs social_fixed_hours",
                            a.name
                        ))
                    })?;
                    SocialRule::Fixed {
                        per_member_mh: amount::parse_hours(&h.0)?,
                    }
                }
                other => {
                    return Err(GenesisError::Invalid(format!(
                    "association {:?}: social_rule {other:?} is neither \"average\" nor \"fixed\"",
                    a.name
                )))
                }
            };
            associations.push(Association {
                name: a.name,
                social_rule,
                credit_limit_mh: amount::parse_hours(&a.credit_limit_hours.0)?,
            });
        }
        let delegates = self
            .delegate
            .into_iter()
            .map(|d| {
                Ok(DelegateInfo {
                    key: PublicKey::from_hex(&d.key)?,
                    association: d.association,
                    addr: d.addr,
                })
            })
            .collect::<Result<Vec<_>, GenesisError>>()?;
        let members = self
            .member
            .into_iter()
            .map(|m| {
                Ok(GenesisMember {
                    key: PublicKey::from_hex(&m.key)?,
                    association: m.association,
                    exempt: m.exempt,
                    opening_mh: match m.opening_hours {
                        Some(d) => amount::parse_signed_hours(&d.0)?,
                        None => 0,
                    },
                })
            })
            .collect::<Result<Vec<_>, GenesisError>>()?;
        let projects = self
            .project
            .into_iter()
            .map(|p| {
                Ok(GenesisProject {
                    name: p.name,
                    association: p.association,
                    coordinators: p
                        .coordinators
                        .iter()
                        .map(|c| PublicKey::from_hex(c))
                        .collect::<Result<Vec<_>, HexError>>()?,
                    flat_rate: p.flat_rate,
                })
            })
            .collect::<Result<Vec<_>, GenesisError>>()?;
        let params = Params {
            block_records_max: self
                .params
                .and_then(|p| p.block_records_max)
                .unwrap_or(Params::default().block_records_max),
        };
        Ok(Genesis {
            version: Genesis::VERSION,
            pool: self.pool,
            associations,
            delegates,
            members,
            projects,
            params,
        })
    }
}
