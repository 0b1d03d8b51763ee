//! The pool-wide period: a delegate opens it, closes the bidding (clearing every
//! auction) and closes it (levies and surplus, by the social rules).

use std::collections::BTreeMap;

use crate::crypto::PublicKey;
use crate::genesis::SocialRule;
use crate::ledger::change::Change;
use crate::ledger::rules;
use crate::ledger::state::{ContributionStatus, Phase};
use crate::ledger::{Account, Ledger, Rejection};
use crate::record::RecordBody;

impl Ledger {
    pub(super) fn judge_period(
        &self,
        height: u64,
        signer: &PublicKey,
        body: &RecordBody,
    ) -> Result<Change, Rejection> {
        match body {
            RecordBody::OpenPeriod { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return Err(Rejection::DelegateOnly {
                        action: "open a period",
                        key: *signer,
                    });
                }
                if self.phase != Phase::Closed {
                    return Err(Rejection::PeriodStillOpen {
                        period: self.period,
                    });
                }
                let next = self.period.checked_add(1).ok_or(Rejection::NoNextPeriod)?;
                if *period != next {
                    return Err(Rejection::WrongNextPeriod {
                        expected: next,
                        found: *period,
                    });
                }
                Ok(Change::Open { period: *period })
            }
            RecordBody::CloseBidding { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return Err(Rejection::DelegateOnly {
                        action: "close bidding",
                        key: *signer,
                    });
                }
                self.in_period(*period, Phase::Bidding, "closing the bidding")?;
                self.clear_auctions()
            }
            RecordBody::ClosePeriod { period } => {
                if self.delegate_info(signer, height).is_none() {
                    return Err(Rejection::DelegateOnly {
                        action: "close a period",
                        key: *signer,
                    });
                }
                self.in_period(*period, Phase::Work, "closing the period")?;
                self.judge_close()
            }
            other => unreachable!("judge sent a {} to period", other.kind()),
        }
    }

    fn judge_close(&self) -> Result<Change, Rejection> {
        let overflow = || Rejection::CreditedOverflow;
        let mut credited: BTreeMap<PublicKey, i64> = BTreeMap::new();
        let mut flat: i64 = 0;
        for c in self.current.contributions.values() {
            if let ContributionStatus::Attested { credited_mh, .. } = c.status {
                let e = credited.entry(c.member).or_insert(0);
                *e = e.checked_add(credited_mh).ok_or_else(overflow)?;
                let project = &self.current.tasks[&c.task].project;
                if self.projects.get(project).is_some_and(|p| p.flat_rate) {
                    flat = flat.checked_add(credited_mh).ok_or_else(overflow)?;
                }
            }
        }
        let members: Vec<rules::CloseMember> = self
            .members
            .iter()
            .map(|(id, m)| rules::CloseMember {
                id: id.0,
                association: m.association.clone(),
                exempt: m.exempt,
                credited_mh: credited.get(id).copied().unwrap_or(0),
            })
            .collect();
        let rules_by_name: BTreeMap<String, SocialRule> = self
            .associations
            .iter()
            .map(|(n, a)| (n.clone(), a.social_rule.clone()))
            .collect();
        let input = rules::CloseInput {
            period: self.period,
            members: &members,
            associations: &rules_by_name,
            flat_mh: flat,
            surplus_mh: self.balance(&Account::Surplus),
        };
        let transfers = rules::close_transfers(&input).map_err(|_| overflow())?;
        self.check_transfers(&transfers)?;
        Ok(Change::Close { transfers })
    }
}
