//! The ledger under a fuzzed sequence of blocks.
//!
//! The input is read (with `arbitrary`) as a list of actions: records signed by the
//! fixture's keys (4 delegates, 3 members, the coordinator, and 4 fresh keys that
//! admissions and key rotations can bring in) with fuzzed fields, replays and repeats of
//! earlier records, and "seal the block" at the right or a wrong height. Names, periods,
//! amounts and contribution ids are drawn mostly from small pools so that the auctions,
//! contributions, levies and quorum changes are actually reached.
//!
//! After every block:
//! - `apply` returned `Ok`: the accounts sum to 0, `check_invariants()` holds, the receipt
//!   has one outcome per record and the ledger's root and height are the receipt's;
//!   the first record's outcome is what `check` said of it before the block;
//! - `apply` returned `Err`: the ledger is exactly as before (state root, accounts,
//!   height, and its whole debug form).
//!
//! At the end the accepted blocks are replayed on a fresh ledger, which must reach the
//! same state root after every block.
#![no_main]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use peerhours_fuzz::fixture;
use protocol::codec;
use protocol::crypto::domain;
use protocol::ledger::{Ledger, Outcome};
use protocol::record::{Approval, DelegateInfo, QuorumProposal, RecordBody};
use protocol::{Hash, Keypair, PublicKey, SignedRecord, SignedVote, VerifiedRecord, Vote};

/// Most actions read from one input.
const ACTIONS_MAX: usize = 256;
/// Most records in one fuzzed block (the real bound is far larger; small blocks reach
/// more states per input).
const BLOCK_RECORDS: usize = 32;
/// Most earlier records kept for replays and contribution references.
const HISTORY_MAX: usize = 512;

/// Every key the actions can name: delegates, members, the coordinator, then fresh keys.
fn keys() -> &'static [Keypair] {
    static KEYS: OnceLock<Vec<Keypair>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let fx = fixture();
        let mut keys: Vec<Keypair> = Vec::new();
        for k in fx
            .delegates
            .iter()
            .chain(&fx.members)
            .chain([&fx.coordinator])
        {
            keys.push(Keypair::from_seed(&k.seed()));
        }
        for i in 0..4 {
            keys.push(Keypair::from_label(&format!("fuzz/fresh/{i}")));
        }
        keys
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct KeySel(u8);

impl KeySel {
    fn key(self) -> &'static Keypair {
        let keys = keys();
        &keys[usize::from(self.0) % keys.len()]
    }
}

/// A public key: one of the pool's, or any 32 bytes (often not a curve point).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum PubSel {
    Pool(KeySel),
    Raw([u8; 32]),
}

impl PubSel {
    fn public(self) -> PublicKey {
        match self {
            PubSel::Pool(k) => k.key().public(),
            PubSel::Raw(b) => PublicKey(b),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum NameSel {
    Pool(u8),
    Raw(String),
}

impl NameSel {
    fn name(&self, pool: &[&str]) -> String {
        match self {
            NameSel::Pool(i) => pool[usize::from(*i) % pool.len()].to_string(),
            NameSel::Raw(s) => s.clone(),
        }
    }
}

const ASSOCIATIONS: &[&str] = &["local", "elsewhere"];
const PROJECTS: &[&str] = &["commons", "garden"];
const TASKS: &[&str] = &["t0", "t1", "t2"];
const PRODUCTS: &[&str] = &["p0", "p1"];

/// A period relative to the ledger's: the current one, the next, or any number.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum PeriodSel {
    Current,
    Next,
    Raw(u64),
}

impl PeriodSel {
    fn period(self, ledger: &Ledger) -> u64 {
        match self {
            PeriodSel::Current => ledger.period(),
            PeriodSel::Next => ledger.period().saturating_add(1),
            PeriodSel::Raw(p) => p,
        }
    }
}

/// Milli-hours: a few hours in half-hour steps, or any i64 (overflow, negatives).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mh {
    Halves(u8),
    Raw(i64),
}

impl Mh {
    fn mh(self) -> i64 {
        match self {
            Mh::Halves(h) => i64::from(h) * 500,
            Mh::Raw(v) => v,
        }
    }
}

/// Basis points: tenths of 1.0, or any u32.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Bp {
    Tenths(u8),
    Raw(u32),
}

impl Bp {
    fn bp(self) -> u32 {
        match self {
            Bp::Tenths(t) => u32::from(t) * 1_000,
            Bp::Raw(v) => v,
        }
    }
}

/// An earlier record's id (most often a contribution), or any hash.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum RefSel {
    Back(u8),
    Raw([u8; 32]),
}

impl RefSel {
    fn id(self, history: &[VerifiedRecord]) -> Hash {
        match self {
            RefSel::Back(i) if !history.is_empty() => {
                let back = usize::from(i) % history.len();
                history[history.len() - 1 - back].id()
            }
            RefSel::Back(_) => Hash::ZERO,
            RefSel::Raw(b) => Hash(b),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum VoteSel {
    Notarize { view: u8, height: u8, block: u8 },
    Nullify { view: u8 },
    Finalize { view: u8, height: u8, block: u8 },
}

impl VoteSel {
    fn vote(self) -> Vote {
        match self {
            VoteSel::Notarize {
                view,
                height,
                block,
            } => Vote::Notarize {
                view: u64::from(view),
                height: u64::from(height),
                block: Hash([block; 32]),
            },
            VoteSel::Nullify { view } => Vote::Nullify {
                view: u64::from(view),
            },
            VoteSel::Finalize {
                view,
                height,
                block,
            } => Vote::Finalize {
                view: u64::from(view),
                height: u64::from(height),
                block: Hash([block; 32]),
            },
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
struct DelegateSel {
    key: PubSel,
    association: NameSel,
}

#[derive(Arbitrary, Debug, Clone)]
enum ProposalSel {
    ChangeDelegates {
        delegates: Vec<DelegateSel>,
        nonce: u8,
    },
    RebindKey {
        account: PubSel,
        new_key: PubSel,
        nonce: u8,
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum Body {
    AdmitMember {
        member: PubSel,
        association: NameSel,
        exempt: bool,
    },
    SetExempt {
        account: PubSel,
        exempt: bool,
    },
    RegisterProject {
        name: NameSel,
        association: NameSel,
        coordinators: Vec<PubSel>,
        flat_rate: bool,
    },
    OpenPeriod {
        period: PeriodSel,
    },
    CloseBidding {
        period: PeriodSel,
    },
    ClosePeriod {
        period: PeriodSel,
    },
    PostTask {
        period: PeriodSel,
        task: NameSel,
        project: NameSel,
        hours: Mh,
        slots: u8,
        min: Bp,
        max: Bp,
    },
    OfferProduct {
        period: PeriodSel,
        product: NameSel,
        project: NameSel,
        units: u8,
        cost: Mh,
    },
    BidTask {
        period: PeriodSel,
        task: NameSel,
        weight: Bp,
    },
    BidProduct {
        period: PeriodSel,
        product: NameSel,
        max: Mh,
    },
    Contribute {
        period: PeriodSel,
        task: NameSel,
        hours: Mh,
        note: String,
    },
    Retract {
        contribution: RefSel,
    },
    Attest {
        contribution: RefSel,
        hours: Option<Mh>,
    },
    Amend {
        contribution: RefSel,
        hours: Mh,
    },
    RotateKey {
        new_key: PubSel,
    },
    /// A quorum proposal with approvals by the chosen keys; `forge` breaks one signature.
    Quorum {
        proposal: ProposalSel,
        approvers: Vec<KeySel>,
        forge: bool,
    },
    /// Two votes signed by the chosen keys.
    Evidence {
        first: (KeySel, VoteSel),
        second: (KeySel, VoteSel),
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum Action {
    /// A new record, signed by `signer`.
    Record {
        signer: KeySel,
        nonce: u8,
        body: Body,
    },
    /// An earlier record again (already in the log, or earlier in this block).
    Replay(RefSel),
    /// Apply the pending records as the next block.
    Seal,
    /// Apply the pending records at a wrong height (the ledger must refuse it whole).
    SealAt(u8),
}

fn build_body(
    b: &Body,
    ledger: &Ledger,
    history: &[VerifiedRecord],
    chain_id: &Hash,
) -> RecordBody {
    match b {
        Body::AdmitMember {
            member,
            association,
            exempt,
        } => RecordBody::AdmitMember {
            member: member.public(),
            association: association.name(ASSOCIATIONS),
            exempt: *exempt,
        },
        Body::SetExempt { account, exempt } => RecordBody::SetExempt {
            account: account.public(),
            exempt: *exempt,
        },
        Body::RegisterProject {
            name,
            association,
            coordinators,
            flat_rate,
        } => RecordBody::RegisterProject {
            name: name.name(PROJECTS),
            association: association.name(ASSOCIATIONS),
            coordinators: coordinators.iter().take(20).map(|c| c.public()).collect(),
            flat_rate: *flat_rate,
        },
        Body::OpenPeriod { period } => RecordBody::OpenPeriod {
            period: period.period(ledger),
        },
        Body::CloseBidding { period } => RecordBody::CloseBidding {
            period: period.period(ledger),
        },
        Body::ClosePeriod { period } => RecordBody::ClosePeriod {
            period: period.period(ledger),
        },
        Body::PostTask {
            period,
            task,
            project,
            hours,
            slots,
            min,
            max,
        } => RecordBody::PostTask {
            period: period.period(ledger),
            task: task.name(TASKS),
            project: project.name(PROJECTS),
            hours_mh: hours.mh(),
            slots: u32::from(*slots),
            min_weight_bp: min.bp(),
            max_weight_bp: max.bp(),
        },
        Body::OfferProduct {
            period,
            product,
            project,
            units,
            cost,
        } => RecordBody::OfferProduct {
            period: period.period(ledger),
            product: product.name(PRODUCTS),
            project: project.name(PROJECTS),
            units: u32::from(*units),
            cost_mh: cost.mh(),
        },
        Body::BidTask {
            period,
            task,
            weight,
        } => RecordBody::BidTask {
            period: period.period(ledger),
            task: task.name(TASKS),
            weight_bp: weight.bp(),
        },
        Body::BidProduct {
            period,
            product,
            max,
        } => RecordBody::BidProduct {
            period: period.period(ledger),
            product: product.name(PRODUCTS),
            max_mh: max.mh(),
        },
        Body::Contribute {
            period,
            task,
            hours,
            note,
        } => RecordBody::Contribute {
            period: period.period(ledger),
            task: task.name(TASKS),
            hours_mh: hours.mh(),
            note: note.clone(),
        },
        Body::Retract { contribution } => RecordBody::Retract {
            contribution: contribution.id(history),
        },
        Body::Attest {
            contribution,
            hours,
        } => RecordBody::Attest {
            contribution: contribution.id(history),
            hours_mh: hours.map(Mh::mh),
        },
        Body::Amend {
            contribution,
            hours,
        } => RecordBody::Amend {
            contribution: contribution.id(history),
            hours_mh: hours.mh(),
        },
        Body::RotateKey { new_key } => RecordBody::RotateKey {
            new_key: new_key.public(),
        },
        Body::Quorum {
            proposal,
            approvers,
            forge,
        } => {
            let proposal = match proposal {
                ProposalSel::ChangeDelegates { delegates, nonce } => {
                    QuorumProposal::ChangeDelegates {
                        delegates: delegates
                            .iter()
                            .take(8)
                            .enumerate()
                            .map(|(i, d)| DelegateInfo {
                                key: d.key.public(),
                                association: d.association.name(ASSOCIATIONS),
                                addr: format!("/ip4/127.0.0.1/tcp/{}", 9000 + i),
                            })
                            .collect(),
                        nonce: u64::from(*nonce),
                    }
                }
                ProposalSel::RebindKey {
                    account,
                    new_key,
                    nonce,
                } => QuorumProposal::RebindKey {
                    account: account.public(),
                    new_key: new_key.public(),
                    nonce: u64::from(*nonce),
                },
            };
            let msg = codec::encode(&proposal);
            let mut approvals: Vec<Approval> = approvers
                .iter()
                .take(8)
                .map(|k| Approval {
                    delegate: k.key().public(),
                    signature: k.key().sign(domain::QUORUM, chain_id, &msg),
                })
                .collect();
            if *forge {
                if let Some(a) = approvals.first_mut() {
                    a.signature.0[0] ^= 1;
                }
            }
            RecordBody::Quorum {
                proposal,
                approvals,
            }
        }
        Body::Evidence { first, second } => RecordBody::Evidence {
            first: SignedVote::sign(first.0.key(), chain_id, first.1.vote()),
            second: SignedVote::sign(second.0.key(), chain_id, second.1.vote()),
        },
    }
}

/// Everything `apply` must leave alone when it refuses a block.
fn snapshot(l: &Ledger) -> (Hash, u64, String) {
    (l.state_root(), l.height(), format!("{:?}", l.accounts()))
}

fn run(data: &[u8]) -> arbitrary::Result<()> {
    let fx = fixture();
    let chain_id = fx.chain_id;
    let mut u = Unstructured::new(data);
    let mut ledger = Ledger::from_genesis(&fx.genesis);
    ledger
        .check_invariants()
        .expect("the fixture's genesis holds the invariants");
    let mut history: Vec<VerifiedRecord> = Vec::new();
    let mut pending: Vec<VerifiedRecord> = Vec::new();
    // The blocks that applied, for the replay at the end.
    let mut applied: Vec<(Vec<VerifiedRecord>, Hash)> = Vec::new();

    let mut actions = 0usize;
    while actions < ACTIONS_MAX {
        actions += 1;
        let action = if u.is_empty() {
            Action::Seal
        } else {
            Action::arbitrary(&mut u)?
        };
        let seal_at = match &action {
            Action::Record {
                signer,
                nonce,
                body,
            } => {
                let body = build_body(body, &ledger, &history, &chain_id);
                let rec = SignedRecord::sign(signer.key(), &chain_id, u64::from(*nonce), body);
                // A record of a bad shape never verifies, so it never reaches a block.
                if let Ok(v) = rec.verify(&chain_id) {
                    pending.push(v);
                }
                None
            }
            Action::Replay(r) => {
                if let RefSel::Back(i) = r {
                    let pool: Vec<&VerifiedRecord> = history.iter().chain(&pending).collect();
                    if !pool.is_empty() {
                        let back = usize::from(*i) % pool.len();
                        pending.push(pool[pool.len() - 1 - back].clone());
                    }
                }
                None
            }
            Action::Seal => Some(ledger.height() + 1),
            Action::SealAt(d) => Some(
                ledger
                    .height()
                    .wrapping_add(u64::from(*d))
                    .wrapping_sub(127),
            ),
        };
        let Some(height) =
            seal_at.or_else(|| (pending.len() >= BLOCK_RECORDS).then(|| ledger.height() + 1))
        else {
            continue;
        };
        let block = std::mem::take(&mut pending);
        apply_block(&mut ledger, height, &block, &mut applied);
        // A refused block's records may be proposed again later, so keep them all.
        for r in block {
            if history.len() < HISTORY_MAX {
                history.push(r);
            }
        }
        if u.is_empty() && pending.is_empty() {
            break;
        }
    }

    // Replay: the accepted blocks on a fresh ledger reach the same roots.
    let mut fresh = Ledger::from_genesis(&fx.genesis);
    for (i, (block, root)) in applied.iter().enumerate() {
        let height = u64::try_from(i).expect("few blocks") + 1;
        let receipt = fresh
            .apply(height, block)
            .expect("a block that applied once applies again on a replay");
        assert_eq!(
            &receipt.state_root, root,
            "replaying block {height} gives another state root"
        );
    }
    assert_eq!(fresh.state_root(), ledger.state_root());
    Ok(())
}

fn apply_block(
    ledger: &mut Ledger,
    height: u64,
    block: &[VerifiedRecord],
    applied: &mut Vec<(Vec<VerifiedRecord>, Hash)>,
) {
    let before = snapshot(ledger);
    let debug_before = format!("{ledger:?}");
    let first_check = block.first().map(|r| ledger.check(r));
    match ledger.apply(height, block) {
        Ok(receipt) => {
            assert_eq!(height, before.1 + 1, "a block at a wrong height applied");
            assert_eq!(
                receipt.outcomes.len(),
                block.len(),
                "one outcome per record"
            );
            assert_eq!(receipt.state_root, ledger.state_root());
            assert_eq!(ledger.height(), height);
            let sum: i128 = ledger.accounts().values().map(|b| i128::from(*b)).sum();
            assert_eq!(sum, 0, "the accounts sum to {sum} mh after block {height}");
            if let Err(e) = ledger.check_invariants() {
                panic!("invariant broken after block {height}: {e}");
            }
            if let (Some(check), Some(outcome)) = (first_check, receipt.outcomes.first()) {
                assert_eq!(
                    check.is_ok(),
                    *outcome == Outcome::Accepted,
                    "check said {check:?} of the block's first record, apply said {outcome:?}"
                );
            }
            applied.push((block.to_vec(), receipt.state_root));
        }
        Err(e) => {
            assert_eq!(
                snapshot(ledger),
                before,
                "a refused block ({e}) changed the ledger"
            );
            assert_eq!(
                format!("{ledger:?}"),
                debug_before,
                "a refused block ({e}) changed the ledger"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
