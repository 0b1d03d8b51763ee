//! Work: winners contribute hours, may retract them, and coordinators attest (or
//! amend) them, crediting the weighted hours from the pool.

use crate::crypto::PublicKey;
use crate::ledger::change::Change;
use crate::ledger::rules::{self, Transfer};
use crate::ledger::state::{ContributionState, ContributionStatus, Phase};
use crate::ledger::{Account, Ledger, Rejection};
use crate::limits::CONTRIBUTIONS_PER_PERIOD_MAX;
use crate::record::{RecordBody, RecordId};

impl Ledger {
    pub(super) fn judge_work(
        &self,
        id: &RecordId,
        signer: &PublicKey,
        body: &RecordBody,
    ) -> Result<Change, Rejection> {
        match body {
            RecordBody::Contribute {
                period,
                task,
                hours_mh,
                ..
            } => self.judge_contribute(id, signer, *period, task, *hours_mh),
            RecordBody::Retract { contribution } => {
                let account = self.member_account(signer, "retract a contribution")?;
                self.in_period(self.period, Phase::Work, "a retraction")?;
                let c = self.contribution(contribution)?;
                if c.member != account {
                    return Err(Rejection::NotTheContributor);
                }
                match c.status {
                    ContributionStatus::Pending => Ok(Change::Retract { id: *contribution }),
                    ContributionStatus::Retracted => Err(Rejection::AlreadyRetracted),
                    ContributionStatus::Attested { .. } => Err(Rejection::RetractAttested),
                }
            }
            RecordBody::Attest {
                contribution,
                hours_mh,
            } => self.judge_attest(signer, contribution, *hours_mh),
            RecordBody::Amend {
                contribution,
                hours_mh,
            } => self.judge_amend(signer, contribution, *hours_mh),
            other => unreachable!("judge sent a {} to work", other.kind()),
        }
    }

    fn judge_contribute(
        &self,
        id: &RecordId,
        signer: &PublicKey,
        period: u64,
        task: &str,
        hours_mh: i64,
    ) -> Result<Change, Rejection> {
        let account = self.member_account(signer, "contribute")?;
        self.in_period(period, Phase::Work, "a contribution")?;
        let Some(t) = self.current.tasks.get(task) else {
            return Err(Rejection::TaskUnknown {
                task: task.to_string(),
                period,
            });
        };
        let won = t
            .clearing
            .as_ref()
            .is_some_and(|c| c.winners.contains(&account.0));
        if !won {
            return Err(Rejection::DidNotWin {
                member: account,
                task: task.to_string(),
            });
        }
        if self.current.contributions.len() >= CONTRIBUTIONS_PER_PERIOD_MAX {
            return Err(Rejection::TooManyContributions { period });
        }
        Ok(Change::Contribute {
            id: *id,
            state: ContributionState {
                task: task.to_string(),
                member: account,
                claimed_mh: hours_mh,
                status: ContributionStatus::Pending,
            },
        })
    }

    fn judge_attest(
        &self,
        signer: &PublicKey,
        contribution: &RecordId,
        hours_mh: Option<i64>,
    ) -> Result<Change, Rejection> {
        self.in_period(self.period, Phase::Work, "an attestation")?;
        let c = self.contribution(contribution)?;
        let t = &self.current.tasks[&c.task];
        self.coordinator_of(signer, &t.project)?;
        match c.status {
            ContributionStatus::Pending => {}
            ContributionStatus::Retracted => return Err(Rejection::AttestRetracted),
            ContributionStatus::Attested { .. } => return Err(Rejection::AlreadyAttested),
        }
        let hours = hours_mh.unwrap_or(c.claimed_mh);
        let credited = rules::weighted(hours, self.task_weight(&c.task)?)
            .map_err(|_| Rejection::WeightedOverflow)?;
        let transfers = vec![Transfer {
            from: Account::Pool,
            to: Account::Member(c.member),
            amount_mh: credited,
        }];
        self.check_transfers(&transfers)?;
        Ok(Change::Attest {
            id: *contribution,
            hours_mh: hours,
            credited_mh: credited,
            transfers,
        })
    }

    fn judge_amend(
        &self,
        signer: &PublicKey,
        contribution: &RecordId,
        hours_mh: i64,
    ) -> Result<Change, Rejection> {
        self.in_period(self.period, Phase::Work, "an amendment")?;
        let c = self.contribution(contribution)?;
        let t = &self.current.tasks[&c.task];
        self.coordinator_of(signer, &t.project)?;
        let ContributionStatus::Attested {
            credited_mh: old, ..
        } = c.status
        else {
            return Err(Rejection::AmendUnattested);
        };
        let credited = rules::weighted(hours_mh, self.task_weight(&c.task)?)
            .map_err(|_| Rejection::WeightedOverflow)?;
        let member = Account::Member(c.member);
        let transfers = match credited.checked_sub(old) {
            Some(d) if d >= 0 => vec![Transfer {
                from: Account::Pool,
                to: member,
                amount_mh: d,
            }],
            Some(d) => vec![Transfer {
                from: member,
                to: Account::Pool,
                amount_mh: d.checked_neg().unwrap_or(i64::MAX),
            }],
            None => return Err(Rejection::AmendOverflow),
        };
        self.check_transfers(&transfers)?;
        Ok(Change::Attest {
            id: *contribution,
            hours_mh,
            credited_mh: credited,
            transfers,
        })
    }

    fn contribution(&self, id: &RecordId) -> Result<&ContributionState, Rejection> {
        match self.current.contributions.get(id) {
            Some(c) => Ok(c),
            None => Err(Rejection::ContributionUnknown { id: *id }),
        }
    }

    fn task_weight(&self, task: &str) -> Result<u32, Rejection> {
        match self
            .current
            .tasks
            .get(task)
            .and_then(|t| t.clearing.as_ref())
        {
            Some(c) => Ok(c.weight_bp),
            None => Err(Rejection::TaskNotCleared {
                task: task.to_string(),
            }),
        }
    }
}
