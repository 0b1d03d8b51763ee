//! proptest invariants: conservation, closes that empty surplus and social accounts,
//! replay determinism, untouched state on invalid blocks, order-independent clearing and
//! auction monotonicity.

use proptest::prelude::*;

use protocol::genesis::{Association, GenesisMember, GenesisProject, SocialRule};
use protocol::ledger::rules::{clear_product, clear_task, ProductBid};
use protocol::ledger::{ApplyError, Ledger, Outcome, Phase};
use protocol::record::RecordBody;
use protocol::testkit::Fixture;
use protocol::{Hash, Keypair, RecordId, SignedRecord, VerifiedRecord};

/// A fixture with two associations (average and fixed), exempt members and a
/// flat-rate project, so every levy runs.
fn rich_fixture() -> Fixture {
    let mut fx = Fixture::new("props", 4, 6);
    fx.genesis.associations.push(Association {
        name: "south".into(),
        social_rule: SocialRule::Fixed {
            per_member_mh: 1_500,
        },
        credit_limit_mh: 5_000,
    });
    for (i, m) in fx.genesis.members.iter_mut().enumerate() {
        m.exempt = i % 3 == 2;
        if i >= 3 {
            m.association = "south".into();
        }
        m.opening_mh = [0, 2_000, -1_000, 0, 7_000, 0][i];
    }
    fx.genesis.members.push(GenesisMember {
        key: Keypair::from_label("props/extra").public(),
        association: "local".into(),
        exempt: false,
        opening_mh: 0,
    });
    fx.members.push(Keypair::from_label("props/extra"));
    fx.genesis.projects.push(GenesisProject {
        name: "canteen".into(),
        association: "south".into(),
        coordinators: vec![fx.coordinator.public()],
        flat_rate: true,
    });
    fx.genesis.validate().expect("valid genesis");
    fx.chain_id = fx.genesis.chain_id();
    fx
}

#[derive(Debug, Clone)]
enum Op {
    Open,
    CloseBidding,
    Close,
    Post {
        task: u8,
        slots: u32,
        flat: bool,
        max_bp: u32,
    },
    Offer {
        product: u8,
        units: u32,
        cost_mh: i64,
    },
    BidTask {
        m: usize,
        task: u8,
        weight_bp: u32,
    },
    BidProduct {
        m: usize,
        product: u8,
        max_mh: i64,
    },
    Contribute {
        m: usize,
        task: u8,
        hours_mh: i64,
    },
    Attest {
        nth: usize,
        hours_mh: Option<i64>,
    },
    Amend {
        nth: usize,
        hours_mh: i64,
    },
    Retract {
        m: usize,
        nth: usize,
    },
    SetExempt {
        m: usize,
        exempt: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Open),
        1 => Just(Op::CloseBidding),
        1 => Just(Op::Close),
        2 => (0u8..3, 1u32..4, any::<bool>(), 10_000u32..40_000).prop_map(|(task, slots, flat, max_bp)| Op::Post { task, slots, flat, max_bp }),
        2 => (0u8..2, 1u32..3, 0i64..20_000).prop_map(|(product, units, cost_mh)| Op::Offer { product, units, cost_mh }),
        4 => (0usize..7, 0u8..3, 1u32..45_000).prop_map(|(m, task, weight_bp)| Op::BidTask { m, task, weight_bp }),
        3 => (0usize..7, 0u8..2, 0i64..60_000).prop_map(|(m, product, max_mh)| Op::BidProduct { m, product, max_mh }),
        4 => (0usize..7, 0u8..3, 0i64..8_000).prop_map(|(m, task, hours_mh)| Op::Contribute { m, task, hours_mh }),
        3 => (0usize..8, proptest::option::of(0i64..8_000)).prop_map(|(nth, hours_mh)| Op::Attest { nth, hours_mh }),
        1 => (0usize..8, 0i64..8_000).prop_map(|(nth, hours_mh)| Op::Amend { nth, hours_mh }),
        1 => (0usize..7, 0usize..8).prop_map(|(m, nth)| Op::Retract { m, nth }),
        1 => (0usize..7, any::<bool>()).prop_map(|(m, exempt)| Op::SetExempt { m, exempt }),
    ]
}

/// Turns ops into signed records against the ledger's period as it will be (records
/// name the period they are meant for; many are rejected, which is part of the test).
struct Driver {
    fx: Fixture,
    nonce: u64,
    contributions: Vec<RecordId>,
}

impl Driver {
    fn record(&mut self, ledger: &Ledger, op: &Op) -> VerifiedRecord {
        let fx = &self.fx;
        let d = &fx.delegates[(self.nonce % 4) as usize];
        let c = &fx.coordinator;
        let period = ledger.period();
        let next = period + 1;
        let nth = |n: usize| {
            self.contributions
                .get(n % self.contributions.len().max(1))
                .copied()
                .unwrap_or(Hash::ZERO)
        };
        let (key, body) = match op.clone() {
            Op::Open => (d, RecordBody::OpenPeriod { period: next }),
            Op::CloseBidding => (d, RecordBody::CloseBidding { period }),
            Op::Close => (d, RecordBody::ClosePeriod { period }),
            Op::Post {
                task,
                slots,
                flat,
                max_bp,
            } => (
                c,
                RecordBody::PostTask {
                    period,
                    task: format!("t{task}"),
                    project: if flat { "canteen" } else { "commons" }.into(),
                    hours_mh: 1_000,
                    slots,
                    min_weight_bp: 5_000,
                    max_weight_bp: max_bp,
                },
            ),
            Op::Offer {
                product,
                units,
                cost_mh,
            } => (
                c,
                RecordBody::OfferProduct {
                    period,
                    product: format!("p{product}"),
                    project: "commons".into(),
                    units,
                    cost_mh,
                },
            ),
            Op::BidTask { m, task, weight_bp } => (
                &fx.members[m],
                RecordBody::BidTask {
                    period,
                    task: format!("t{task}"),
                    weight_bp,
                },
            ),
            Op::BidProduct { m, product, max_mh } => (
                &fx.members[m],
                RecordBody::BidProduct {
                    period,
                    product: format!("p{product}"),
                    max_mh,
                },
            ),
            Op::Contribute { m, task, hours_mh } => (
                &fx.members[m],
                RecordBody::Contribute {
                    period,
                    task: format!("t{task}"),
                    hours_mh,
                    note: String::new(),
                },
            ),
            Op::Attest { nth: n, hours_mh } => (
                c,
                RecordBody::Attest {
                    contribution: nth(n),
                    hours_mh,
                },
            ),
            Op::Amend { nth: n, hours_mh } => (
                c,
                RecordBody::Amend {
                    contribution: nth(n),
                    hours_mh,
                },
            ),
            Op::Retract { m, nth: n } => (
                &fx.members[m],
                RecordBody::Retract {
                    contribution: nth(n),
                },
            ),
            Op::SetExempt { m, exempt } => (
                &fx.delegates[0],
                RecordBody::SetExempt {
                    account: fx.members[m].public(),
                    exempt,
                },
            ),
        };
        self.nonce += 1;
        let is_contribution = matches!(body, RecordBody::Contribute { .. });
        let r = SignedRecord::sign(key, &fx.chain_id, self.nonce, body)
            .verify(&fx.chain_id)
            .expect("verifies");
        if is_contribution {
            self.contributions.push(r.id());
        }
        r
    }
}

/// Runs ops in blocks of `sizes`, checking invariants after each block; returns the
/// blocks and the root after each.
fn run_ops(ops: &[Op], block_size: usize) -> (Vec<Vec<VerifiedRecord>>, Vec<Hash>, Ledger) {
    let fx = rich_fixture();
    let mut ledger = Ledger::from_genesis(&fx.genesis);
    let mut driver = Driver {
        fx,
        nonce: 0,
        contributions: Vec::new(),
    };
    let mut blocks = Vec::new();
    let mut roots = Vec::new();
    for chunk in ops.chunks(block_size.max(1)) {
        // Records are built one at a time against the state the block will have
        // reached, as a proposer that checks each record would.
        let mut scratch = ledger.clone();
        let mut recs = Vec::new();
        for op in chunk {
            let r = driver.record(&scratch, op);
            let before = (scratch.accounts(), scratch.period(), scratch.phase());
            let h = scratch.height() + 1;
            let out = scratch
                .apply(h, std::slice::from_ref(&r))
                .expect("valid one-record block");
            if let Outcome::Rejected { .. } = out.outcomes[0] {
                // A rejected record changes no balance and no period.
                assert_eq!(
                    before,
                    (scratch.accounts(), scratch.period(), scratch.phase())
                );
            }
            recs.push(r);
        }
        let h = ledger.height() + 1;
        let receipt = ledger.apply(h, &recs).expect("valid block");
        ledger
            .check_invariants()
            .unwrap_or_else(|e| panic!("after block {h}: {e}"));
        let sum: i128 = ledger.accounts().values().map(|v| i128::from(*v)).sum();
        assert_eq!(sum, 0);
        if ledger.phase() == Phase::Closed {
            for (a, v) in ledger.accounts() {
                if matches!(
                    a,
                    protocol::ledger::Account::Surplus | protocol::ledger::Account::Social(_)
                ) {
                    assert_eq!(v, 0, "{a} after a close");
                }
            }
        }
        roots.push(receipt.state_root);
        blocks.push(recs);
    }
    (blocks, roots, ledger)
}

/// A prefix that walks through whole periods, so closes happen often.
fn with_periods(ops: Vec<Op>) -> Vec<Op> {
    let mut out = Vec::new();
    for (i, chunk) in ops.chunks(12).enumerate() {
        out.push(Op::Open);
        let (bid, work) = chunk.split_at(chunk.len() / 2);
        out.extend_from_slice(bid);
        out.push(Op::CloseBidding);
        out.extend_from_slice(work);
        if i % 4 != 3 {
            out.push(Op::Close);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn conservation_closes_and_replay_determinism(ops in proptest::collection::vec(op(), 0..80), size in 1usize..6) {
        let ops = with_periods(ops);
        let (blocks, roots, ledger) = run_ops(&ops, size);
        // Replaying the same log on a fresh ledger gives the same roots and balances.
        let fx = rich_fixture();
        let mut replay = Ledger::from_genesis(&fx.genesis);
        for (i, recs) in blocks.iter().enumerate() {
            let h = replay.height() + 1;
            let r = replay.apply(h, recs).expect("replays");
            prop_assert_eq!(r.state_root, roots[i]);
        }
        prop_assert_eq!(replay.accounts(), ledger.accounts());
        prop_assert_eq!(replay.state_root(), ledger.state_root());
    }

    #[test]
    fn an_invalid_block_leaves_the_state_untouched(
        ops in proptest::collection::vec(op(), 0..30),
        bad in 0u8..4,
        at in 0usize..4,
    ) {
        let ops = with_periods(ops);
        let (blocks, _, mut ledger) = run_ops(&ops, 3);
        let before = (ledger.state_root(), ledger.accounts(), ledger.height());
        let fx = rich_fixture();
        let stranger = Keypair::from_label("stranger");
        let good = SignedRecord::sign(&fx.delegates[1], &fx.chain_id, u64::MAX, RecordBody::OpenPeriod { period: ledger.period() + 1 })
            .verify(&fx.chain_id).expect("verifies");
        let mut recs = vec![good.clone(); 1];
        let (height, expect_err) = match bad {
            0 => (ledger.height() + 2, true),
            1 => { recs.insert(at.min(recs.len()), good.clone()); (ledger.height() + 1, true) }
            2 => {
                let s = SignedRecord::sign(&stranger, &fx.chain_id, 1, RecordBody::OpenPeriod { period: 1 })
                    .verify(&fx.chain_id).expect("verifies");
                recs.insert(at.min(recs.len()), s);
                (ledger.height() + 1, true)
            }
            _ => match blocks.iter().flatten().next() {
                Some(old) => { recs.insert(at.min(recs.len()), old.clone()); (ledger.height() + 1, true) }
                None => (ledger.height() + 1, false),
            },
        };
        let res = ledger.apply(height, &recs);
        if expect_err {
            prop_assert!(res.is_err());
            let known = matches!(res, Err(ApplyError::WrongHeight { .. } | ApplyError::DuplicateInBlock { .. }
                | ApplyError::UnknownSigner { .. } | ApplyError::AlreadyInLog { .. }));
            prop_assert!(known, "unexpected {:?}", res);
            prop_assert_eq!((ledger.state_root(), ledger.accounts(), ledger.height()), before);
        } else {
            prop_assert!(res.is_ok());
        }
    }

    #[test]
    fn task_clearing_does_not_depend_on_bid_order(
        bids in proptest::collection::btree_map(any::<[u8; 32]>(), 1u32..60_000, 0..12)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>())
            .prop_shuffle(),
        slots in 1u32..6,
        max_bp in 10_000u32..50_000,
    ) {
        let mut sorted = bids.clone();
        sorted.sort();
        let a = clear_task(3, "task", slots, 5_000, max_bp, &bids);
        let b = clear_task(3, "task", slots, 5_000, max_bp, &sorted);
        prop_assert_eq!(&a, &b);
        prop_assert!(a.winners.len() <= slots as usize);
        prop_assert!(a.weight_bp >= 5_000 && a.weight_bp <= max_bp);
    }

    #[test]
    fn product_clearing_does_not_depend_on_bid_order(
        bids in proptest::collection::btree_map(any::<[u8; 32]>(), (10_000i64..60_000, -20_000i64..20_000), 0..12)
            .prop_map(|m| m.into_iter().map(|(account, (max_mh, balance_mh))| ProductBid { account, max_mh, balance_mh, credit_limit_mh: 40_000 }).collect::<Vec<_>>())
            .prop_shuffle(),
        units in 1u32..5,
    ) {
        let mut sorted = bids.clone();
        sorted.sort_by_key(|b| b.account);
        let a = clear_product(2, "p", units, 10_000, &bids);
        let b = clear_product(2, "p", units, 10_000, &sorted);
        prop_assert_eq!(&a, &b);
        prop_assert!(a.winners.len() <= units as usize);
        prop_assert!(a.price_mh >= 10_000);
    }

    #[test]
    fn product_auction_is_monotone(
        bids in proptest::collection::btree_map(any::<[u8; 32]>(), 10_000i64..60_000, 2..10)
            .prop_map(|m| m.into_iter().map(|(account, max_mh)| ProductBid { account, max_mh, balance_mh: 0, credit_limit_mh: 1_000_000 }).collect::<Vec<_>>()),
        units in 1u32..4,
        pick in any::<prop::sample::Index>(),
    ) {
        let c = clear_product(1, "p", units, 10_000, &bids);
        let i = pick.index(bids.len());
        let me = bids[i].account;
        let mut changed = bids.clone();
        if c.winners.contains(&me) {
            // A winning bid lowered below the price (and still at or above cost) loses.
            if c.price_mh > 10_000 {
                changed[i].max_mh = c.price_mh - 1;
                let c2 = clear_product(1, "p", units, 10_000, &changed);
                prop_assert!(!c2.winners.contains(&me));
            }
        } else {
            // A losing bid raised above the lowest winning bid (still eligible) wins.
            let lowest = c.winners.iter().map(|w| bids.iter().find(|b| b.account == *w).map(|b| b.max_mh).unwrap_or(0)).min().unwrap_or(0);
            changed[i].max_mh = lowest + 1;
            let c2 = clear_product(1, "p", units, 10_000, &changed);
            prop_assert!(c2.winners.contains(&me));
        }
    }

    #[test]
    fn task_auction_is_monotone(
        bids in proptest::collection::btree_map(any::<[u8; 32]>(), 2u32..60_000, 2..10)
            .prop_map(|m| m.into_iter().collect::<Vec<_>>()),
        slots in 1u32..4,
        max_bp in 10_000u32..50_000,
        pick in any::<prop::sample::Index>(),
    ) {
        let c = clear_task(1, "t", slots, 5_000, max_bp, &bids);
        let i = pick.index(bids.len());
        let me = bids[i].0;
        if !c.winners.contains(&me) {
            if let Some(highest) = c.winners.iter().filter_map(|w| bids.iter().find(|b| b.0 == *w).map(|b| b.1)).max() {
                // A losing reserve lowered below the highest winning reserve wins.
                let mut changed = bids.clone();
                changed[i].1 = highest - 1;
                if changed[i].1 > 0 {
                    let c2 = clear_task(1, "t", slots, 5_000, max_bp, &changed);
                    prop_assert!(c2.winners.contains(&me));
                }
            }
        } else {
            // A winning reserve raised above the maximum loses.
            let mut changed = bids.clone();
            changed[i].1 = max_bp + 1;
            let c2 = clear_task(1, "t", slots, 5_000, max_bp, &changed);
            prop_assert!(!c2.winners.contains(&me));
        }
    }
}

/// The driver is not vacuous: a hand-picked op list gets contributions attested,
/// products sold and every levy run, and the balances show it.
#[test]
fn the_driver_reaches_auctions_and_levies() {
    let ops = vec![
        Op::Open,
        Op::Post {
            task: 0,
            slots: 2,
            flat: true,
            max_bp: 20_000,
        },
        Op::Post {
            task: 1,
            slots: 1,
            flat: false,
            max_bp: 20_000,
        },
        Op::Offer {
            product: 0,
            units: 1,
            cost_mh: 5_000,
        },
        Op::BidTask {
            m: 0,
            task: 0,
            weight_bp: 10_000,
        },
        Op::BidTask {
            m: 3,
            task: 0,
            weight_bp: 12_000,
        },
        Op::BidTask {
            m: 1,
            task: 1,
            weight_bp: 15_000,
        },
        Op::BidProduct {
            m: 4,
            product: 0,
            max_mh: 9_000,
        },
        Op::BidProduct {
            m: 1,
            product: 0,
            max_mh: 7_000,
        },
        Op::CloseBidding,
        Op::Contribute {
            m: 0,
            task: 0,
            hours_mh: 2_000,
        },
        Op::Contribute {
            m: 3,
            task: 0,
            hours_mh: 1_000,
        },
        Op::Contribute {
            m: 1,
            task: 1,
            hours_mh: 1_000,
        },
        Op::Attest {
            nth: 0,
            hours_mh: None,
        },
        Op::Attest {
            nth: 1,
            hours_mh: Some(3_000),
        },
        Op::Attest {
            nth: 2,
            hours_mh: None,
        },
    ];
    let (_, _, before_close) = run_ops(&ops, 4);
    let surplus = before_close.balance(&protocol::ledger::Account::Surplus);
    assert_eq!(surplus, 2_000, "m4 pays m1's 7 h for a 5 h unit");
    let mut all = ops.clone();
    all.push(Op::Close);
    let (_, _, ledger) = run_ops(&all, 4);
    let nonzero = ledger.accounts().values().filter(|v| **v != 0).count();
    assert!(nonzero >= 6, "{:?}", ledger.accounts());
    assert_eq!(ledger.phase(), Phase::Closed);
}
