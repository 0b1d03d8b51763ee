//! The economic rules of `economics.md` as pure functions: tie-break order, equal split,
//! task and product clearing, and the transfers of a period close. The ledger and
//! `simulate` both call these; nothing else computes a price, a weight or a levy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::amount::{self, AmountError, WEIGHT_ONE_BP};
use crate::crypto::Hash;
use crate::genesis::SocialRule;

use super::Account;

/// A member's 32-byte account id as the tie-break sees it.
pub type AccountId = [u8; 32];

/// `blake3("peerhours/tiebreak/v1" || period be64 || len(subject) be32 || subject || id)`.
pub fn tiebreak(period: u64, subject: &str, id: &AccountId) -> Hash {
    let len = u32::try_from(subject.len()).unwrap_or(u32::MAX);
    Hash::of_parts(&[
        b"peerhours/tiebreak/v1",
        &period.to_be_bytes(),
        &len.to_be_bytes(),
        subject.as_bytes(),
        id,
    ])
}

/// `ids` sorted by ascending tie-break for (`period`, `subject`); duplicates kept.
pub fn tiebreak_order(period: u64, subject: &str, ids: &[AccountId]) -> Vec<AccountId> {
    let mut keyed: Vec<(Hash, AccountId)> = ids
        .iter()
        .map(|id| (tiebreak(period, subject, id), *id))
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// Equal split of `total_mh >= 0` among `ids`: each gets `total / N`, the `total mod N`
/// left-over milli-hours go one each to the first ids in tie-break order. Empty `ids`
/// (or a total of 0) splits nothing. The result is in tie-break order, zero shares
/// omitted.
pub fn equal_split(
    total_mh: i64,
    period: u64,
    subject: &str,
    ids: &[AccountId],
) -> Vec<(AccountId, i64)> {
    if ids.is_empty() || total_mh <= 0 {
        return Vec::new();
    }
    let n = ids.len() as i64;
    let each = total_mh / n;
    let rest = total_mh % n;
    tiebreak_order(period, subject, ids)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, each + i64::from((i as i64) < rest)))
        .filter(|(_, v)| *v != 0)
        .collect()
}

/// The outcome of one task auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClearing {
    /// The clearing weight `L` every winner's hours are multiplied by.
    pub weight_bp: u32,
    /// The winners in sort order (reserve ascending, then tie-break).
    pub winners: Vec<AccountId>,
    /// Slots left empty (`k - winners` when unfilled, else 0).
    pub shortfall: u32,
}

/// Clears a task auction: `bids` are (account, reserve weight) in any order.
pub fn clear_task(
    period: u64,
    task: &str,
    slots: u32,
    min_weight_bp: u32,
    max_weight_bp: u32,
    bids: &[(AccountId, u32)],
) -> TaskClearing {
    let mut sorted: Vec<(u32, Hash, AccountId)> = bids
        .iter()
        .map(|(id, r)| (*r, tiebreak(period, task, id), *id))
        .collect();
    sorted.sort();
    let k = slots as usize;
    let eligible = sorted
        .iter()
        .filter(|(r, _, _)| *r <= max_weight_bp)
        .count();
    if k > 0 && eligible >= k {
        let r_k = sorted[k - 1].0;
        // r(k+1) = +infinity where there is no such bid: min(1.0, +inf) = 1.0.
        let upper = sorted
            .get(k)
            .map_or(WEIGHT_ONE_BP, |b| b.0.min(WEIGHT_ONE_BP));
        let weight_bp = r_k
            .max(upper)
            .clamp(min_weight_bp, max_weight_bp.max(min_weight_bp));
        TaskClearing {
            weight_bp,
            winners: sorted[..k].iter().map(|b| b.2).collect(),
            shortfall: 0,
        }
    } else {
        let winners: Vec<AccountId> = sorted
            .iter()
            .filter(|(r, _, _)| *r <= max_weight_bp)
            .map(|b| b.2)
            .collect();
        let shortfall = slots.saturating_sub(u32::try_from(winners.len()).unwrap_or(u32::MAX));
        TaskClearing {
            weight_bp: max_weight_bp,
            winners,
            shortfall,
        }
    }
}

/// One product bid as the clearing sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductBid {
    pub account: AccountId,
    /// The most the bidder contributes for one unit.
    pub max_mh: i64,
    /// The bidder's balance at `CloseBidding`, before any product cleared.
    pub balance_mh: i64,
    /// Its association's credit limit.
    pub credit_limit_mh: i64,
}

/// The outcome of one product auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductClearing {
    /// What each winner pays.
    pub price_mh: i64,
    /// The winners in sort order (max descending, then tie-break).
    pub winners: Vec<AccountId>,
    /// Bidders dropped because balance plus credit limit was below their max.
    pub dropped: Vec<AccountId>,
}

impl ProductClearing {
    /// What the surplus account receives: `(price - cost) * winners`.
    pub fn surplus_mh(&self, cost_mh: i64) -> Result<i64, AmountError> {
        let n = i64::try_from(self.winners.len()).map_err(|_| AmountError::Overflow)?;
        self.price_mh
            .checked_sub(cost_mh)
            .and_then(|d| d.checked_mul(n))
            .ok_or(AmountError::Overflow)
    }
}

/// Clears a product auction. Eligibility (balance + credit limit >= max) is judged on
/// the balances given, which the caller takes once before any product clears.
pub fn clear_product(
    period: u64,
    product: &str,
    units: u32,
    cost_mh: i64,
    bids: &[ProductBid],
) -> ProductClearing {
    let mut dropped = Vec::new();
    let mut sorted: Vec<(std::cmp::Reverse<i64>, Hash, AccountId)> = Vec::new();
    for b in bids {
        let funds = i128::from(b.balance_mh) + i128::from(b.credit_limit_mh);
        if funds < i128::from(b.max_mh) {
            dropped.push(b.account);
        } else {
            sorted.push((
                std::cmp::Reverse(b.max_mh),
                tiebreak(period, product, &b.account),
                b.account,
            ));
        }
    }
    dropped.sort();
    sorted.sort();
    let units = units as usize;
    if sorted.len() <= units {
        ProductClearing {
            price_mh: cost_mh,
            winners: sorted.iter().map(|b| b.2).collect(),
            dropped,
        }
    } else {
        let highest_losing = sorted[units].0 .0;
        ProductClearing {
            price_mh: cost_mh.max(highest_losing),
            winners: sorted[..units].iter().map(|b| b.2).collect(),
            dropped,
        }
    }
}

/// One movement of double entry: `from` is debited, `to` credited, by `amount_mh >= 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub from: Account,
    pub to: Account,
    pub amount_mh: i64,
}

/// A member as the close sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseMember {
    pub id: AccountId,
    pub association: String,
    pub exempt: bool,
    /// Weighted effort credited this period (newest layer of attested contributions,
    /// all projects, before levies).
    pub credited_mh: i64,
}

/// Everything a period close needs, taken as it stands when `ClosePeriod` is applied.
#[derive(Debug, Clone)]
pub struct CloseInput<'a> {
    pub period: u64,
    pub members: &'a [CloseMember],
    /// Every association and its rule, by name.
    pub associations: &'a BTreeMap<String, SocialRule>,
    /// `F`: weighted effort credited this period for tasks of flat-rate projects.
    pub flat_mh: i64,
    /// The period's product-auction surplus.
    pub surplus_mh: i64,
}

fn member(id: &AccountId) -> Account {
    Account::Member(crate::crypto::PublicKey(*id))
}

/// The transfers of a close, in order: flat-rate levy, social allotments (associations
/// in name order), surplus. An association without contributing members gives no
/// allotment (nobody could carry it, and `social:a` must end at 0).
pub fn close_transfers(input: &CloseInput<'_>) -> Result<Vec<Transfer>, AmountError> {
    let mut out = Vec::new();
    let contributing: Vec<AccountId> = input
        .members
        .iter()
        .filter(|m| !m.exempt)
        .map(|m| m.id)
        .collect();
    for (id, share) in equal_split(input.flat_mh, input.period, "levy/flat", &contributing) {
        out.push(Transfer {
            from: member(&id),
            to: Account::Pool,
            amount_mh: share,
        });
    }
    for (name, rule) in input.associations {
        let c_a: Vec<&CloseMember> = input
            .members
            .iter()
            .filter(|m| &m.association == name && !m.exempt)
            .collect();
        let e_a: Vec<&CloseMember> = input
            .members
            .iter()
            .filter(|m| &m.association == name && m.exempt)
            .collect();
        if c_a.is_empty() || e_a.is_empty() {
            continue;
        }
        let allotment = match rule {
            SocialRule::Average => {
                let mut sum: i64 = 0;
                for m in &c_a {
                    sum = sum
                        .checked_add(m.credited_mh)
                        .ok_or(AmountError::Overflow)?;
                }
                // A negative sum (amended down below zero cannot happen: hours >= 0) is
                // treated as no allotment.
                (sum / c_a.len() as i64).max(0)
            }
            SocialRule::Fixed { per_member_mh } => *per_member_mh,
        };
        if allotment == 0 {
            continue;
        }
        let social = Account::Social(name.clone());
        let total = allotment
            .checked_mul(e_a.len() as i64)
            .ok_or(AmountError::Overflow)?;
        let ids: Vec<AccountId> = c_a.iter().map(|m| m.id).collect();
        for (id, share) in equal_split(total, input.period, &format!("levy/social/{name}"), &ids) {
            out.push(Transfer {
                from: member(&id),
                to: social.clone(),
                amount_mh: share,
            });
        }
        for m in &e_a {
            out.push(Transfer {
                from: social.clone(),
                to: member(&m.id),
                amount_mh: allotment,
            });
        }
    }
    let all: Vec<AccountId> = input.members.iter().map(|m| m.id).collect();
    for (id, share) in equal_split(input.surplus_mh, input.period, "surplus", &all) {
        out.push(Transfer {
            from: Account::Surplus,
            to: member(&id),
            amount_mh: share,
        });
    }
    Ok(out)
}

/// Weighted effort of attested hours (re-exported so callers need one import).
pub fn weighted(hours_mh: i64, weight_bp: u32) -> Result<i64, AmountError> {
    amount::weighted(hours_mh, weight_bp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> AccountId {
        Hash::of(c.to_string().as_bytes()).0
    }

    #[test]
    fn equal_split_hands_out_the_remainder_in_tiebreak_order() {
        let ids = [id('a'), id('b'), id('c')];
        let s = equal_split(10, 1, "levy/flat", &ids);
        assert_eq!(s.iter().map(|x| x.1).sum::<i64>(), 10);
        assert_eq!(s[0].1, 4);
        assert_eq!(s[0].0, tiebreak_order(1, "levy/flat", &ids)[0]);
        assert!(equal_split(10, 1, "x", &[]).is_empty());
        assert!(equal_split(0, 1, "x", &ids).is_empty());
        assert_eq!(equal_split(2, 1, "x", &ids).len(), 2);
    }

    #[test]
    fn tiebreak_frames_the_subject_length() {
        // "ab" + id vs "a" + "b"-prefixed id must differ: the length is framed.
        let a = tiebreak(1, "ab", &[0u8; 32]);
        let b = tiebreak(1, "a", &[b'b'; 32]);
        assert_ne!(a, b);
        assert_ne!(tiebreak(1, "t", &[0; 32]), tiebreak(2, "t", &[0; 32]));
    }
}
