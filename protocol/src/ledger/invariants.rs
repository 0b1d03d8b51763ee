//! The invariants of `economics.md` that hold after every block.

use std::collections::BTreeSet;

use super::state::Phase;
use super::{Account, Ledger};

impl Ledger {
    /// The invariants of `economics.md` that hold after every block.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_accounts()?;
        self.check_members()?;
        self.check_clearings()?;
        if self.epochs.is_empty() {
            return Err("no delegate set".into());
        }
        Ok(())
    }

    /// The accounts sum to zero; pool, surplus and every social account exist; social
    /// and surplus are empty after a close.
    fn check_accounts(&self) -> Result<(), String> {
        let sum: i128 = self.balances.values().map(|b| i128::from(*b)).sum();
        if sum != 0 {
            return Err(format!("the accounts sum to {sum} mh, not 0"));
        }
        for k in [Account::Pool, Account::Surplus] {
            if !self.balances.contains_key(&k) {
                return Err(format!("account {k} is missing"));
            }
        }
        for a in self.associations.keys() {
            let s = Account::Social(a.clone());
            match self.balances.get(&s) {
                None => return Err(format!("account {s} is missing")),
                Some(b) if *b != 0 && self.phase == Phase::Closed => {
                    return Err(format!("account {s} holds {b} mh after a close"))
                }
                _ => {}
            }
        }
        if self.phase == Phase::Closed && self.balance(&Account::Surplus) != 0 {
            return Err(format!(
                "surplus holds {} mh after a close",
                self.balance(&Account::Surplus)
            ));
        }
        Ok(())
    }

    /// Every member has an account, and its key maps back to it, one key per member.
    fn check_members(&self) -> Result<(), String> {
        for (id, m) in &self.members {
            if !self.balances.contains_key(&Account::Member(*id)) {
                return Err(format!("member {id} has no account"));
            }
            if self.keys.get(&m.key) != Some(id) {
                return Err(format!(
                    "member {id}'s key {} does not map back to it",
                    m.key
                ));
            }
        }
        if self.keys.len() != self.members.len() {
            return Err(format!(
                "{} keys for {} members",
                self.keys.len(),
                self.members.len()
            ));
        }
        Ok(())
    }

    /// No auction has more winners than slots or units, nor a task winner twice.
    fn check_clearings(&self) -> Result<(), String> {
        for (name, t) in &self.current.tasks {
            if let Some(c) = &t.clearing {
                let distinct: BTreeSet<_> = c.winners.iter().collect();
                if c.winners.len() > t.slots as usize || distinct.len() != c.winners.len() {
                    return Err(format!(
                        "task {name:?} has {} winners for {} slots",
                        c.winners.len(),
                        t.slots
                    ));
                }
            }
        }
        for (name, p) in &self.current.products {
            if let Some(c) = &p.clearing {
                if c.winners.len() > p.units as usize {
                    return Err(format!(
                        "product {name:?} has {} winners for {} units",
                        c.winners.len(),
                        p.units
                    ));
                }
            }
        }
        Ok(())
    }
}
