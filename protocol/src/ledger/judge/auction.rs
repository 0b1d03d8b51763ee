//! Auctions: coordinators post tasks and offer products, members bid on them, and
//! closing the bidding clears every auction of the period.

use std::collections::BTreeMap;

use crate::crypto::PublicKey;
use crate::ledger::change::Change;
use crate::ledger::rules::{self, Transfer};
use crate::ledger::state::{Phase, ProductState, TaskState};
use crate::ledger::{Account, Ledger, Rejection};
use crate::limits::{BIDS_PER_AUCTION_MAX, PRODUCTS_PER_PERIOD_MAX, TASKS_PER_PERIOD_MAX};
use crate::record::RecordBody;

impl Ledger {
    pub(super) fn judge_auction(
        &self,
        signer: &PublicKey,
        body: &RecordBody,
    ) -> Result<Change, Rejection> {
        match body {
            RecordBody::PostTask {
                period,
                task,
                project,
                hours_mh,
                slots,
                min_weight_bp,
                max_weight_bp,
            } => {
                self.coordinator_of(signer, project)?;
                self.in_period(*period, Phase::Bidding, "posting a task")?;
                if self.current.tasks.contains_key(task) {
                    return Err(Rejection::TaskExists {
                        task: task.clone(),
                        period: *period,
                    });
                }
                if self.current.tasks.len() >= TASKS_PER_PERIOD_MAX {
                    return Err(Rejection::TooManyTasks {
                        period: *period,
                        max: TASKS_PER_PERIOD_MAX,
                    });
                }
                Ok(Change::PostTask {
                    task: task.clone(),
                    state: TaskState {
                        project: project.clone(),
                        hours_mh: *hours_mh,
                        slots: *slots,
                        min_weight_bp: *min_weight_bp,
                        max_weight_bp: *max_weight_bp,
                        bids: BTreeMap::new(),
                        clearing: None,
                    },
                })
            }
            RecordBody::OfferProduct {
                period,
                product,
                project,
                units,
                cost_mh,
            } => self.judge_offer(signer, *period, product, project, *units, *cost_mh),
            RecordBody::BidTask {
                period,
                task,
                weight_bp,
            } => self.judge_task_bid(signer, *period, task, *weight_bp),
            RecordBody::BidProduct {
                period,
                product,
                max_mh,
            } => self.judge_product_bid(signer, *period, product, *max_mh),
            other => unreachable!("judge sent a {} to auction", other.kind()),
        }
    }

    fn judge_offer(
        &self,
        signer: &PublicKey,
        period: u64,
        product: &str,
        project: &str,
        units: u32,
        cost_mh: i64,
    ) -> Result<Change, Rejection> {
        let p = self.coordinator_of(signer, project)?;
        if p.flat_rate {
            return Err(Rejection::FlatRateProduct {
                project: project.to_string(),
            });
        }
        self.in_period(period, Phase::Bidding, "offering a product")?;
        if self.current.products.contains_key(product) {
            return Err(Rejection::ProductExists {
                product: product.to_string(),
                period,
            });
        }
        if self.current.products.len() >= PRODUCTS_PER_PERIOD_MAX {
            return Err(Rejection::TooManyProducts {
                period,
                max: PRODUCTS_PER_PERIOD_MAX,
            });
        }
        Ok(Change::Offer {
            product: product.to_string(),
            state: ProductState {
                project: project.to_string(),
                units,
                cost_mh,
                bids: BTreeMap::new(),
                clearing: None,
            },
        })
    }

    fn judge_task_bid(
        &self,
        signer: &PublicKey,
        period: u64,
        task: &str,
        weight_bp: u32,
    ) -> Result<Change, Rejection> {
        let account = self.member_account(signer, "bid on a task")?;
        self.in_period(period, Phase::Bidding, "a task bid")?;
        let Some(t) = self.current.tasks.get(task) else {
            return Err(Rejection::TaskUnknown {
                task: task.to_string(),
                period,
            });
        };
        if t.bids.contains_key(&account) {
            return Err(Rejection::TaskBidTwice {
                task: task.to_string(),
            });
        }
        if t.bids.len() >= BIDS_PER_AUCTION_MAX {
            return Err(Rejection::TooManyTaskBids {
                task: task.to_string(),
                max: BIDS_PER_AUCTION_MAX,
            });
        }
        Ok(Change::BidTask {
            task: task.to_string(),
            account,
            weight_bp,
        })
    }

    fn judge_product_bid(
        &self,
        signer: &PublicKey,
        period: u64,
        product: &str,
        max_mh: i64,
    ) -> Result<Change, Rejection> {
        let account = self.member_account(signer, "bid on a product")?;
        self.in_period(period, Phase::Bidding, "a product bid")?;
        let Some(p) = self.current.products.get(product) else {
            return Err(Rejection::ProductUnknown {
                product: product.to_string(),
                period,
            });
        };
        if max_mh < p.cost_mh {
            return Err(Rejection::BidBelowCost {
                product: product.to_string(),
                bid_mh: max_mh,
                cost_mh: p.cost_mh,
            });
        }
        if p.bids.contains_key(&account) {
            return Err(Rejection::ProductBidTwice {
                product: product.to_string(),
            });
        }
        if p.bids.len() >= BIDS_PER_AUCTION_MAX {
            return Err(Rejection::TooManyProductBids {
                product: product.to_string(),
                max: BIDS_PER_AUCTION_MAX,
            });
        }
        Ok(Change::BidProduct {
            product: product.to_string(),
            account,
            max_mh,
        })
    }

    /// Clears every task and product auction of the period (at `CloseBidding`).
    pub(super) fn clear_auctions(&self) -> Result<Change, Rejection> {
        let period = self.period;
        let mut tasks = Vec::new();
        for (name, t) in &self.current.tasks {
            let bids: Vec<_> = t.bids.iter().map(|(a, r)| (a.0, *r)).collect();
            tasks.push((
                name.clone(),
                rules::clear_task(
                    period,
                    name,
                    t.slots,
                    t.min_weight_bp,
                    t.max_weight_bp,
                    &bids,
                ),
            ));
        }
        // Balances are taken once, here, before any product clears.
        let mut products = Vec::new();
        let mut transfers = Vec::new();
        for (name, p) in &self.current.products {
            let bids: Vec<rules::ProductBid> = p
                .bids
                .iter()
                .map(|(a, max)| rules::ProductBid {
                    account: a.0,
                    max_mh: *max,
                    balance_mh: self.balance(&Account::Member(*a)),
                    credit_limit_mh: self
                        .members
                        .get(a)
                        .and_then(|m| self.associations.get(&m.association))
                        .map_or(0, |x| x.credit_limit_mh),
                })
                .collect();
            let c = rules::clear_product(period, name, p.units, p.cost_mh, &bids);
            let extra = c
                .price_mh
                .checked_sub(p.cost_mh)
                .ok_or(Rejection::PriceOverflow)?;
            for w in &c.winners {
                let m = Account::Member(PublicKey(*w));
                transfers.push(Transfer {
                    from: m.clone(),
                    to: Account::Pool,
                    amount_mh: p.cost_mh,
                });
                if extra > 0 {
                    transfers.push(Transfer {
                        from: m,
                        to: Account::Surplus,
                        amount_mh: extra,
                    });
                }
            }
            products.push((name.clone(), c));
        }
        self.check_transfers(&transfers)?;
        Ok(Change::CloseBidding {
            tasks,
            products,
            transfers,
        })
    }
}
