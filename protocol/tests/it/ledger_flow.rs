//! The ledger driven through whole periods with signed records: phases, authorisation,
//! the palimpsest (attest, amend, retract), keys, quorum records, evidence and proofs.

use protocol::codec;
use protocol::crypto::domain;
use protocol::ledger::{Account, ApplyError, Ledger, Outcome, Phase, Rejection};
use protocol::record::{Approval, DelegateInfo, QuorumProposal, RecordBody};
use protocol::vote::{SignedVote, Vote};
use protocol::Keypair;

use crate::harness::Net;

fn open(net: &mut Net, period: u64) {
    let d = net.delegate();
    assert_eq!(
        net.one(&d, RecordBody::OpenPeriod { period }),
        Outcome::Accepted
    );
}

fn post(task: &str, slots: u32) -> RecordBody {
    RecordBody::PostTask {
        period: 1,
        task: task.into(),
        project: "commons".into(),
        hours_mh: 2_000,
        slots,
        min_weight_bp: 5_000,
        max_weight_bp: 50_000,
    }
}

#[test]
fn a_whole_period_with_attest_amend_and_retract() {
    let mut net = Net::new("flow", 4, 3);
    let (d, c) = (net.delegate(), net.coordinator());
    let (m0, m1, m2) = (net.member(0), net.member(1), net.member(2));
    assert_eq!(net.ledger.phase(), Phase::Closed);
    // Bidding before any period is open is outside its phase.
    let out = net.refuse(
        &m0,
        RecordBody::BidTask {
            period: 1,
            task: "t".into(),
            weight_bp: 10_000,
        },
    );
    assert!(
        matches!(
            out,
            Rejection::WrongPhase {
                phase: Phase::Bidding,
                ledger_phase: Phase::Closed,
                ..
            }
        ),
        "{out:?}"
    );

    open(&mut net, 1);
    assert_eq!(
        (net.ledger.period(), net.ledger.phase()),
        (1, Phase::Bidding)
    );
    assert_eq!(net.one(&c, post("t", 1)), Outcome::Accepted);
    // Only a coordinator posts; task ids are unique in a period.
    assert!(matches!(
        net.refuse(&m0, post("u", 1)),
        Rejection::NotACoordinator { .. }
    ));
    assert!(matches!(
        net.refuse(&c, post("t", 1)),
        Rejection::TaskExists { period: 1, .. }
    ));
    assert_eq!(
        net.one(
            &m0,
            RecordBody::BidTask {
                period: 1,
                task: "t".into(),
                weight_bp: 12_000
            }
        ),
        Outcome::Accepted
    );
    assert_eq!(
        net.one(
            &m1,
            RecordBody::BidTask {
                period: 1,
                task: "t".into(),
                weight_bp: 15_000
            }
        ),
        Outcome::Accepted
    );
    let again = net.refuse(
        &m1,
        RecordBody::BidTask {
            period: 1,
            task: "t".into(),
            weight_bp: 11_000,
        },
    );
    assert!(matches!(again, Rejection::TaskBidTwice { .. }), "{again:?}");
    // A delegate that is not a member cannot bid.
    assert!(matches!(
        net.refuse(
            &d,
            RecordBody::BidTask {
                period: 1,
                task: "t".into(),
                weight_bp: 1
            }
        ),
        Rejection::NotAMember { .. }
    ));
    // Contributing in the bidding phase is outside its phase.
    let early = net.refuse(
        &m0,
        RecordBody::Contribute {
            period: 1,
            task: "t".into(),
            hours_mh: 1,
            note: String::new(),
        },
    );
    assert!(
        matches!(
            early,
            Rejection::WrongPhase {
                phase: Phase::Work,
                ledger_phase: Phase::Bidding,
                ..
            }
        ),
        "{early:?}"
    );

    assert_eq!(
        net.one(&d, RecordBody::CloseBidding { period: 1 }),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.phase(), Phase::Work);
    let cl = net.ledger.task_clearing("t").expect("cleared").clone();
    // k = 1: L = max(r1 = 1.2, min(1.0, r2 = 1.5)) = 1.2; m0 wins.
    assert_eq!(cl.weight_bp, 12_000);
    assert_eq!(cl.winners, vec![m0.public().0]);

    let loser = net.refuse(
        &m1,
        RecordBody::Contribute {
            period: 1,
            task: "t".into(),
            hours_mh: 1_000,
            note: String::new(),
        },
    );
    assert!(matches!(loser, Rejection::DidNotWin { .. }), "{loser:?}");
    let c1 = net.rec(
        &m0,
        RecordBody::Contribute {
            period: 1,
            task: "t".into(),
            hours_mh: 2_000,
            note: "mop".into(),
        },
    );
    let c2 = net.rec(
        &m0,
        RecordBody::Contribute {
            period: 1,
            task: "t".into(),
            hours_mh: 1_000,
            note: String::new(),
        },
    );
    let (id1, id2) = (c1.id(), c2.id());
    net.block(vec![c1, c2]);
    // Only the contributor retracts; a coordinator attests, a member cannot.
    assert!(matches!(
        net.refuse(&m2, RecordBody::Retract { contribution: id2 }),
        Rejection::NotTheContributor
    ));
    assert_eq!(
        net.one(&m0, RecordBody::Retract { contribution: id2 }),
        Outcome::Accepted
    );
    assert!(matches!(
        net.refuse(
            &c,
            RecordBody::Attest {
                contribution: id2,
                hours_mh: None
            }
        ),
        Rejection::AttestRetracted
    ));
    assert!(matches!(
        net.refuse(
            &m0,
            RecordBody::Attest {
                contribution: id1,
                hours_mh: None
            }
        ),
        Rejection::NotACoordinator { .. }
    ));
    assert!(matches!(
        net.refuse(
            &c,
            RecordBody::Amend {
                contribution: id1,
                hours_mh: 1
            }
        ),
        Rejection::AmendUnattested
    ));
    assert_eq!(
        net.one(
            &c,
            RecordBody::Attest {
                contribution: id1,
                hours_mh: None
            }
        ),
        Outcome::Accepted
    );
    let acc0 = Account::Member(m0.public());
    assert_eq!(net.ledger.balance(&acc0), 2_400);
    assert_eq!(net.ledger.balance(&Account::Pool), -2_400);
    assert!(matches!(
        net.refuse(&m0, RecordBody::Retract { contribution: id1 }),
        Rejection::RetractAttested
    ));
    // Amend down to 1.5 h: 1 800 credited in all.
    assert_eq!(
        net.one(
            &c,
            RecordBody::Amend {
                contribution: id1,
                hours_mh: 1_500
            }
        ),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.balance(&acc0), 1_800);
    assert_eq!(
        net.one(
            &c,
            RecordBody::Amend {
                contribution: id1,
                hours_mh: 3_000
            }
        ),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.balance(&acc0), 3_600);

    assert!(matches!(
        net.refuse(&d, RecordBody::ClosePeriod { period: 2 }),
        Rejection::WrongPhase { period: 2, .. }
    ));
    assert_eq!(
        net.one(&d, RecordBody::ClosePeriod { period: 1 }),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.phase(), Phase::Closed);
    // No flat-rate project, nobody exempt, no surplus: the close moves nothing.
    assert_eq!(net.ledger.balance(&acc0), 3_600);
    // After the close, the contribution lapsed with its period.
    assert!(matches!(
        net.refuse(
            &c,
            RecordBody::Amend {
                contribution: id1,
                hours_mh: 1
            }
        ),
        Rejection::WrongPhase {
            ledger_phase: Phase::Closed,
            ..
        }
    ));
    // The next period reuses a task id.
    open(&mut net, 2);
    let mut p2 = post("t", 1);
    if let RecordBody::PostTask { period, .. } = &mut p2 {
        *period = 2;
    }
    assert_eq!(net.one(&c, p2), Outcome::Accepted);
}

#[test]
fn invalid_blocks_leave_the_state_untouched() {
    let mut net = Net::new("invalid", 4, 2);
    let d = net.delegate();
    let r = net.rec(&d, RecordBody::OpenPeriod { period: 1 });
    let before = (net.ledger.state_root(), net.ledger.accounts());
    assert!(matches!(
        net.ledger.apply(2, std::slice::from_ref(&r)),
        Err(ApplyError::WrongHeight {
            expected: 1,
            found: 2
        })
    ));
    assert!(matches!(
        net.ledger.apply(1, &[r.clone(), r.clone()]),
        Err(ApplyError::DuplicateInBlock { index: 1, .. })
    ));
    let stranger = Keypair::from_label("stranger");
    let s = net.rec(&stranger, RecordBody::OpenPeriod { period: 1 });
    assert!(matches!(
        net.ledger.apply(1, &[r.clone(), s]),
        Err(ApplyError::UnknownSigner { index: 1, .. })
    ));
    assert_eq!((net.ledger.state_root(), net.ledger.accounts()), before);
    assert_eq!(net.ledger.height(), 0);
    net.block(vec![r.clone()]);
    assert!(net.ledger.contains_record(&r.id()));
    let root = net.ledger.state_root();
    assert!(matches!(
        net.ledger.apply(2, std::slice::from_ref(&r)),
        Err(ApplyError::AlreadyInLog { index: 0, .. })
    ));
    assert_eq!(net.ledger.state_root(), root);
    assert!(net.ledger.check(&r).is_err());
}

#[test]
fn a_member_admitted_earlier_in_a_block_may_sign_later_in_it() {
    let mut net = Net::new("admit", 4, 0);
    let d = net.delegate();
    let newbie = Keypair::from_label("newbie");
    let admit = net.rec(
        &d,
        RecordBody::AdmitMember {
            member: newbie.public(),
            association: "local".into(),
            exempt: false,
        },
    );
    let open = net.rec(&d, RecordBody::OpenPeriod { period: 1 });
    let rotate_to = Keypair::from_label("newbie-2");
    let rot = net.rec(
        &newbie,
        RecordBody::RotateKey {
            new_key: rotate_to.public(),
        },
    );
    // Before the admission is applied, check() refuses the newcomer's record.
    assert!(net.ledger.check(&rot).is_err());
    let rec = net.block(vec![admit, open, rot]);
    assert!(
        rec.outcomes.iter().all(|o| *o == Outcome::Accepted),
        "{:?}",
        rec.outcomes
    );
    assert_eq!(
        net.ledger.account_of(&rotate_to.public()),
        Some(newbie.public())
    );
    assert_eq!(net.ledger.account_of(&newbie.public()), None);
    // The old key is now unknown: a block with it is invalid.
    let stale = net.rec(
        &newbie,
        RecordBody::BidTask {
            period: 1,
            task: "x".into(),
            weight_bp: 1,
        },
    );
    assert!(matches!(
        net.ledger.apply(2, &[stale]),
        Err(ApplyError::UnknownSigner { .. })
    ));
    // Admitting the same key twice, or a weak key, is refused.
    let again = net.refuse(
        &d,
        RecordBody::AdmitMember {
            member: newbie.public(),
            association: "local".into(),
            exempt: false,
        },
    );
    assert!(
        matches!(again, Rejection::AlreadyAMember { .. }),
        "{again:?}"
    );
    let weak = protocol::PublicKey([0; 32]);
    let w = net.refuse(
        &d,
        RecordBody::AdmitMember {
            member: weak,
            association: "local".into(),
            exempt: false,
        },
    );
    assert!(matches!(w, Rejection::KeyUnusable { .. }), "{w:?}");
    let nowhere = net.refuse(
        &d,
        RecordBody::AdmitMember {
            member: Keypair::from_label("x").public(),
            association: "south".into(),
            exempt: false,
        },
    );
    assert!(
        matches!(nowhere, Rejection::AssociationUnknown { .. }),
        "{nowhere:?}"
    );
}

#[test]
fn a_nonce_is_used_once_per_account_across_key_rotation() {
    let mut net = Net::new("nonce", 4, 1);
    let m = net.member(0);
    let chain = net.fx.chain_id;
    let new = Keypair::from_label("rotated");
    let a = protocol::SignedRecord::sign(
        &m,
        &chain,
        7,
        RecordBody::RotateKey {
            new_key: new.public(),
        },
    )
    .verify(&chain)
    .expect("verifies");
    net.block(vec![a]);
    let b = protocol::SignedRecord::sign(
        &new,
        &chain,
        7,
        RecordBody::RotateKey {
            new_key: m.public(),
        },
    )
    .verify(&chain)
    .expect("verifies");
    assert_eq!(net.refuse_rec(b), Rejection::NonceUsed { nonce: 7 });
}

fn approvals(net: &Net, proposal: &QuorumProposal, signers: &[usize]) -> Vec<Approval> {
    let msg = codec::encode(proposal);
    signers
        .iter()
        .map(|&i| Approval {
            delegate: net.fx.delegates[i].public(),
            signature: net.fx.delegates[i].sign(domain::QUORUM, &net.fx.chain_id, &msg),
        })
        .collect()
}

#[test]
fn a_quorum_changes_the_delegates_from_the_second_block_after() {
    let mut net = Net::new("quorum", 4, 1);
    let d = net.delegate();
    let newcomer = Keypair::from_label("new-delegate");
    let mut delegates: Vec<DelegateInfo> = net.fx.genesis.delegates[1..].to_vec();
    delegates.push(DelegateInfo {
        key: newcomer.public(),
        association: "local".into(),
        addr: "/ip4/127.0.0.1/tcp/9".into(),
    });
    let proposal = QuorumProposal::ChangeDelegates {
        delegates,
        nonce: 1,
    };
    // Two approvals are not a quorum of 4 (q = 3); a repeated one does not count twice.
    let few = approvals(&net, &proposal, &[0, 1, 1]);
    let out = net.refuse(
        &d,
        RecordBody::Quorum {
            proposal: proposal.clone(),
            approvals: few,
        },
    );
    assert!(
        matches!(out, Rejection::TooFewApprovals { needed: 3, .. }),
        "{out:?}"
    );
    let ok = approvals(&net, &proposal, &[0, 1, 2]);
    assert_eq!(
        net.one(
            &d,
            RecordBody::Quorum {
                proposal: proposal.clone(),
                approvals: ok.clone()
            }
        ),
        Outcome::Accepted
    );
    let h = net.ledger.height();
    assert!(net.ledger.delegates_for(h + 1).contains(&d.public()));
    assert!(!net.ledger.delegates_for(h + 2).contains(&d.public()));
    assert!(net.ledger.delegates_for(h + 2).contains(&newcomer.public()));
    assert!(net.ledger.delegates_for(1).contains(&d.public()));
    // Replaying the same approved proposal is refused.
    let replay = net.refuse(
        &net.member(0),
        RecordBody::Quorum {
            proposal,
            approvals: ok,
        },
    );
    assert!(matches!(replay, Rejection::ProposalReplayed), "{replay:?}");
    // Block h + 1 is still certified by the old set; from h + 2 on the removed delegate
    // is a key unknown to the ledger, and a block holding its record is invalid.
    net.block(vec![]);
    let late = net.rec(&d, RecordBody::OpenPeriod { period: 1 });
    assert!(net.ledger.check(&late).is_err());
    let next = net.ledger.height() + 1;
    assert!(matches!(
        net.ledger.apply(next, &[late]),
        Err(ApplyError::UnknownSigner { .. })
    ));
    assert!(!net.ledger.is_delegate(&d.public()));
    assert!(net.ledger.is_delegate(&newcomer.public()));
}

#[test]
fn a_quorum_rebinds_a_lost_key_to_the_same_account() {
    let mut net = Net::new("rebind", 4, 1);
    let lost = net.member(0);
    let fresh = Keypair::from_label("fresh");
    let proposal = QuorumProposal::RebindKey {
        account: lost.public(),
        new_key: fresh.public(),
        nonce: 1,
    };
    let ok = approvals(&net, &proposal, &[1, 2, 3]);
    let d = net.delegate();
    assert_eq!(
        net.one(
            &d,
            RecordBody::Quorum {
                proposal,
                approvals: ok
            }
        ),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.account_of(&fresh.public()), Some(lost.public()));
    assert_eq!(net.ledger.account_of(&lost.public()), None);
    assert!(net
        .ledger
        .accounts()
        .contains_key(&Account::Member(lost.public())));
}

#[test]
fn evidence_proves_itself_whoever_reports_it() {
    let mut net = Net::new("evidence", 4, 0);
    let chain = net.fx.chain_id;
    let bad = &net.fx.delegates[2];
    let a = SignedVote::sign(
        bad,
        &chain,
        Vote::Notarize {
            view: 5,
            height: 3,
            block: protocol::Hash([1; 32]),
        },
    );
    let b = SignedVote::sign(
        bad,
        &chain,
        Vote::Notarize {
            view: 5,
            height: 3,
            block: protocol::Hash([2; 32]),
        },
    );
    let n = SignedVote::sign(bad, &chain, Vote::Nullify { view: 5 });
    let reporter = Keypair::from_label("anyone");
    // A notarize and a nullify in one view are allowed: no evidence.
    let r = net.rec(
        &reporter,
        RecordBody::Evidence {
            first: a,
            second: n,
        },
    );
    assert!(matches!(net.refuse_rec(r), Rejection::VotesDoNotConflict));
    let r = net.rec(
        &reporter,
        RecordBody::Evidence {
            first: a,
            second: b,
        },
    );
    assert!(net.ledger.check(&r).is_ok());
    assert_eq!(net.block(vec![r]).outcomes[0], Outcome::Accepted);
    assert_eq!(net.ledger.evidence().len(), 1);
    let r = net.rec(
        &reporter,
        RecordBody::Evidence {
            first: b,
            second: a,
        },
    );
    assert!(matches!(
        net.refuse_rec(r),
        Rejection::EvidenceRecorded { .. }
    ));
}

#[test]
fn balance_proofs_check_against_the_state_root() {
    let mut net = Net::new("proof", 4, 5);
    let d = net.delegate();
    open(&mut net, 1);
    let root = net.ledger.state_root();
    for (account, balance) in net.ledger.accounts() {
        let p = net.ledger.prove(&account);
        assert_eq!(
            (p.account.clone(), p.balance_mh),
            (account.clone(), balance)
        );
        assert!(p.verify(&root), "{account}");
        let mut forged = p.clone();
        forged.balance_mh += 1;
        assert!(!forged.verify(&root));
        let json = serde_json::to_string(&p).expect("serialises");
        let back: protocol::ledger::BalanceProof = serde_json::from_str(&json).expect("parses");
        assert!(back.verify(&root));
    }
    let unknown = net.ledger.prove(&Account::Social("nowhere".into()));
    assert!(!unknown.verify(&root));
    // Any state change moves the root, and old proofs no longer verify.
    net.one(&d, RecordBody::CloseBidding { period: 1 });
    assert_ne!(net.ledger.state_root(), root);
}

#[test]
fn flat_rate_projects_offer_no_products_and_bids_below_cost_are_refused() {
    let mut net = Net::new("products", 4, 2);
    let (d, c) = (net.delegate(), net.coordinator());
    let flat = net.rec(
        &d,
        RecordBody::RegisterProject {
            name: "canteen".into(),
            association: "local".into(),
            coordinators: vec![c.public()],
            flat_rate: true,
        },
    );
    net.block(vec![flat]);
    open(&mut net, 1);
    let offer = |project: &str| RecordBody::OfferProduct {
        period: 1,
        product: "p".into(),
        project: project.into(),
        units: 1,
        cost_mh: 10_000,
    };
    assert!(matches!(
        net.refuse(&c, offer("canteen")),
        Rejection::FlatRateProduct { .. }
    ));
    assert_eq!(net.one(&c, offer("commons")), Outcome::Accepted);
    let m = net.member(0);
    let low = net.refuse(
        &m,
        RecordBody::BidProduct {
            period: 1,
            product: "p".into(),
            max_mh: 9_999,
        },
    );
    assert!(
        matches!(
            low,
            Rejection::BidBelowCost {
                bid_mh: 9_999,
                cost_mh: 10_000,
                ..
            }
        ),
        "{low:?}"
    );
    assert_eq!(
        net.one(
            &m,
            RecordBody::BidProduct {
                period: 1,
                product: "p".into(),
                max_mh: 10_000
            }
        ),
        Outcome::Accepted
    );
    assert_eq!(
        net.one(&d, RecordBody::CloseBidding { period: 1 }),
        Outcome::Accepted
    );
    assert_eq!(net.ledger.balance(&Account::Member(m.public())), -10_000);
    assert_eq!(net.ledger.balance(&Account::Pool), 10_000);
    assert_eq!(Ledger::from_genesis(&net.fx.genesis).height(), 0);
}
