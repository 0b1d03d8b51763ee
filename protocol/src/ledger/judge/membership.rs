//! Membership: admitting members, marking them exempt, registering projects, and a
//! member rotating its own key.

use std::collections::BTreeSet;

use crate::crypto::PublicKey;
use crate::ledger::change::Change;
use crate::ledger::state::ProjectState;
use crate::ledger::{Ledger, Rejection};
use crate::limits::{MEMBERS_MAX, PROJECTS_MAX};
use crate::record::RecordBody;

impl Ledger {
    pub(super) fn judge_membership(
        &self,
        height: u64,
        signer: &PublicKey,
        body: &RecordBody,
    ) -> Result<Change, Rejection> {
        match body {
            RecordBody::AdmitMember {
                member,
                association,
                exempt,
            } => self.judge_admit(height, signer, member, association, *exempt),
            RecordBody::SetExempt { account, exempt } => {
                let acc = if self.members.contains_key(account) {
                    *account
                } else {
                    self.member_account(account, "be marked exempt")?
                };
                let m = &self.members[&acc];
                self.delegate_of(signer, &m.association, height)?;
                Ok(Change::SetExempt {
                    account: acc,
                    exempt: *exempt,
                })
            }
            RecordBody::RegisterProject {
                name,
                association,
                coordinators,
                flat_rate,
            } => {
                self.judge_register(height, signer, name, association, coordinators)?;
                Ok(Change::Register {
                    name: name.clone(),
                    project: ProjectState {
                        association: association.clone(),
                        coordinators: coordinators.clone(),
                        flat_rate: *flat_rate,
                    },
                })
            }
            RecordBody::RotateKey { new_key } => {
                let account = self.member_account(signer, "rotate its key")?;
                self.fresh_key(new_key, Some(&account))?;
                Ok(Change::Rotate {
                    account,
                    old_key: *signer,
                    new_key: *new_key,
                })
            }
            other => unreachable!("judge sent a {} to membership", other.kind()),
        }
    }

    fn judge_admit(
        &self,
        height: u64,
        signer: &PublicKey,
        member: &PublicKey,
        association: &str,
        exempt: bool,
    ) -> Result<Change, Rejection> {
        if !self.associations.contains_key(association) {
            return Err(Rejection::AssociationUnknown {
                association: association.to_string(),
            });
        }
        self.delegate_of(signer, association, height)?;
        if self.members.len() >= MEMBERS_MAX {
            return Err(Rejection::TooManyMembers { max: MEMBERS_MAX });
        }
        if self.members.contains_key(member) {
            return Err(Rejection::AlreadyAMember { key: *member });
        }
        self.fresh_key(member, None)?;
        Ok(Change::Admit {
            account: *member,
            association: association.to_string(),
            exempt,
        })
    }

    /// Whether a delegate of `association` may register project `name`.
    fn judge_register(
        &self,
        height: u64,
        signer: &PublicKey,
        name: &str,
        association: &str,
        coordinators: &[PublicKey],
    ) -> Result<(), Rejection> {
        if !self.associations.contains_key(association) {
            return Err(Rejection::AssociationUnknown {
                association: association.to_string(),
            });
        }
        self.delegate_of(signer, association, height)?;
        if self.projects.contains_key(name) {
            return Err(Rejection::ProjectExists {
                project: name.to_string(),
            });
        }
        if self.projects.len() >= PROJECTS_MAX {
            return Err(Rejection::TooManyProjects { max: PROJECTS_MAX });
        }
        let mut distinct = BTreeSet::new();
        for c in coordinators {
            if let Err(e) = c.verifying_key() {
                return Err(Rejection::CoordinatorUnusable { key: *c, reason: e });
            }
            if !distinct.insert(c) {
                return Err(Rejection::CoordinatorTwice { key: *c });
            }
        }
        Ok(())
    }
}
