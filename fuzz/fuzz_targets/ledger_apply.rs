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
#[derive(Debug, Clone, Copy)]
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

#[derive(Debug, Clone)]
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

/// A period relative to the ledger's: the usual one (the next for `OpenPeriod`, the
/// current one otherwise), the other of those two, or any number.
#[derive(Debug, Clone, Copy)]
enum PeriodSel {
    Usual,
    Other,
    Raw(u64),
}

impl PeriodSel {
    fn period(self, ledger: &Ledger, opens: bool) -> u64 {
        let (current, next) = (ledger.period(), ledger.period().saturating_add(1));
        match (self, opens) {
            (PeriodSel::Usual, false) | (PeriodSel::Other, true) => current,
            (PeriodSel::Usual, true) | (PeriodSel::Other, false) => next,
            (PeriodSel::Raw(p), _) => p,
        }
    }
}

/// Milli-hours: a few hours in half-hour steps, or any i64 (overflow, negatives).
#[derive(Debug, Clone, Copy)]
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

/// Basis points: a multiple of 0.1 in a usual range, or any u32.
#[derive(Debug, Clone, Copy)]
enum Bp {
    Tenths(u8),
    Raw(u32),
}

impl Bp {
    /// Usually a multiple of 0.1 from `lo` to `hi` tenths; a raw value as it is.
    fn bp(self, lo: u8, hi: u8) -> u32 {
        match self {
            Bp::Tenths(t) => u32::from(lo + t % (hi - lo + 1)) * 1_000,
            Bp::Raw(v) => v,
        }
    }
}

/// An earlier contribution, an earlier record of any kind, or any hash.
#[derive(Debug, Clone, Copy)]
enum RefSel {
    Contribution(u8),
    Back(u8),
    Raw([u8; 32]),
}

impl RefSel {
    /// Chooses among `earlier`: the records of the log so far, then the pending block's.
    fn id(self, earlier: &[&VerifiedRecord]) -> Hash {
        let pick = |candidates: Vec<Hash>, i: u8| match candidates.len() {
            0 => Hash::ZERO,
            n => candidates[n - 1 - usize::from(i) % n],
        };
        match self {
            RefSel::Contribution(i) => pick(
                earlier
                    .iter()
                    .filter(|r| matches!(r.record().body, RecordBody::Contribute { .. }))
                    .map(|r| r.id())
                    .collect(),
                i,
            ),
            RefSel::Back(i) => pick(earlier.iter().map(|r| r.id()).collect(), i),
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

#[derive(Debug, Clone)]
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

impl<'a> Arbitrary<'a> for Body {
    /// Weighted kinds: the period's steps (open, close bidding, close) are rarer than the
    /// records that fill a period, so periods hold tasks, bids and contributions.
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=9 => Body::AdmitMember {
                member: u.arbitrary()?,
                association: u.arbitrary()?,
                exempt: u.arbitrary()?,
            },
            10..=14 => Body::SetExempt {
                account: u.arbitrary()?,
                exempt: u.arbitrary()?,
            },
            15..=19 => Body::RegisterProject {
                name: u.arbitrary()?,
                association: u.arbitrary()?,
                coordinators: u.arbitrary()?,
                flat_rate: u.arbitrary()?,
            },
            20..=27 => Body::OpenPeriod {
                period: u.arbitrary()?,
            },
            28..=35 => Body::CloseBidding {
                period: u.arbitrary()?,
            },
            36..=43 => Body::ClosePeriod {
                period: u.arbitrary()?,
            },
            44..=79 => Body::PostTask {
                period: u.arbitrary()?,
                task: u.arbitrary()?,
                project: u.arbitrary()?,
                hours: u.arbitrary()?,
                slots: u.arbitrary()?,
                min: u.arbitrary()?,
                max: u.arbitrary()?,
            },
            80..=99 => Body::OfferProduct {
                period: u.arbitrary()?,
                product: u.arbitrary()?,
                project: u.arbitrary()?,
                units: u.arbitrary()?,
                cost: u.arbitrary()?,
            },
            100..=139 => Body::BidTask {
                period: u.arbitrary()?,
                task: u.arbitrary()?,
                weight: u.arbitrary()?,
            },
            140..=159 => Body::BidProduct {
                period: u.arbitrary()?,
                product: u.arbitrary()?,
                max: u.arbitrary()?,
            },
            160..=189 => Body::Contribute {
                period: u.arbitrary()?,
                task: u.arbitrary()?,
                hours: u.arbitrary()?,
                note: if u.ratio(1u8, 8u8)? {
                    u.arbitrary()?
                } else {
                    String::new()
                },
            },
            190..=194 => Body::Retract {
                contribution: u.arbitrary()?,
            },
            195..=219 => Body::Attest {
                contribution: u.arbitrary()?,
                hours: u.arbitrary()?,
            },
            220..=229 => Body::Amend {
                contribution: u.arbitrary()?,
                hours: u.arbitrary()?,
            },
            230..=239 => Body::RotateKey {
                new_key: u.arbitrary()?,
            },
            240..=247 => Body::Quorum {
                proposal: u.arbitrary()?,
                approvers: u.arbitrary()?,
                forge: u.arbitrary()?,
            },
            _ => Body::Evidence {
                first: u.arbitrary()?,
                second: u.arbitrary()?,
            },
        })
    }
}

/// Who signs a record: the kind of key that may sign it (a delegate for delegate
/// records, the coordinator for task and product records, a member's current key for a
/// member's records), or any key of the pool.
#[derive(Debug, Clone, Copy)]
enum Signer {
    Natural(u8),
    Any(KeySel),
}

impl Signer {
    fn key(self, body: &Body, ledger: &Ledger) -> &'static Keypair {
        let i = match self {
            Signer::Any(k) => return k.key(),
            Signer::Natural(i) => usize::from(i),
        };
        let fx = fixture();
        let keys = keys();
        let delegates = 0..fx.delegates.len();
        let coordinator = fx.delegates.len() + fx.members.len();
        let members: Vec<usize> = (delegates.end..coordinator)
            .chain(coordinator + 1..keys.len())
            .collect();
        match body {
            Body::AdmitMember { .. }
            | Body::SetExempt { .. }
            | Body::RegisterProject { .. }
            | Body::OpenPeriod { .. }
            | Body::CloseBidding { .. }
            | Body::ClosePeriod { .. }
            | Body::Quorum { .. } => &keys[i % delegates.end],
            Body::PostTask { .. }
            | Body::OfferProduct { .. }
            | Body::Attest { .. }
            | Body::Amend { .. } => &keys[coordinator],
            Body::BidTask { .. }
            | Body::BidProduct { .. }
            | Body::Contribute { .. }
            | Body::Retract { .. }
            | Body::RotateKey { .. }
            | Body::Evidence { .. } => {
                // A key that is some member's current key now (rotations move them), so
                // that a block is not refused whole for an unknown signer by chance.
                let current: Vec<&'static Keypair> = keys
                    .iter()
                    .filter(|k| ledger.account_of(&k.public()).is_some())
                    .collect();
                match current.len() {
                    0 => &keys[members[i % members.len()]],
                    n => current[i % n],
                }
            }
        }
    }
}

/// A nonce: the next unused one of this run, or a small number (reuse is rejected).
#[derive(Debug, Clone, Copy)]
enum Nonce {
    Next,
    Raw(u8),
}

#[derive(Debug, Clone)]
enum Action {
    /// A new record.
    Record {
        signer: Signer,
        nonce: Nonce,
        body: Body,
    },
    /// An earlier record again (already in the log, or earlier in this block).
    Replay(RefSel),
    /// Apply the pending records as the next block.
    Seal,
    /// Apply the pending records at a wrong height (the ledger must refuse it whole).
    SealAt(u8),
}

/// The leaf choices are biased: most bytes pick a value that can be valid (a pool key, a
/// pool name, the current period, a small amount), a few pick anything at all, so that
/// short inputs reach deep states and long ones still try every edge.
fn biased<'a, T>(
    u: &mut Unstructured<'a>,
    common: u8,
    usual: impl FnOnce(u8) -> T,
    rare: impl FnOnce(&mut Unstructured<'a>) -> arbitrary::Result<T>,
) -> arbitrary::Result<T> {
    let b = u8::arbitrary(u)?;
    if b < common {
        Ok(usual(b))
    } else {
        rare(u)
    }
}

impl<'a> Arbitrary<'a> for PubSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(
            u,
            240,
            |b| PubSel::Pool(KeySel(b)),
            |u| Ok(PubSel::Raw(u.arbitrary()?)),
        )
    }
}

impl<'a> Arbitrary<'a> for NameSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(u, 240, NameSel::Pool, |u| Ok(NameSel::Raw(u.arbitrary()?)))
    }
}

impl<'a> Arbitrary<'a> for PeriodSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(
            u,
            240,
            |b| {
                if b < 220 {
                    PeriodSel::Usual
                } else {
                    PeriodSel::Other
                }
            },
            |u| Ok(PeriodSel::Raw(u.arbitrary()?)),
        )
    }
}

impl<'a> Arbitrary<'a> for Mh {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(u, 240, Mh::Halves, |u| Ok(Mh::Raw(u.arbitrary()?)))
    }
}

impl<'a> Arbitrary<'a> for Bp {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(u, 240, Bp::Tenths, |u| Ok(Bp::Raw(u.arbitrary()?)))
    }
}

impl<'a> Arbitrary<'a> for RefSel {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(
            u,
            240,
            |b| {
                if b < 180 {
                    RefSel::Contribution(b)
                } else {
                    RefSel::Back(b)
                }
            },
            |u| Ok(RefSel::Raw(u.arbitrary()?)),
        )
    }
}

impl<'a> Arbitrary<'a> for Signer {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(u, 224, Signer::Natural, |u| Ok(Signer::Any(u.arbitrary()?)))
    }
}

impl<'a> Arbitrary<'a> for Nonce {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        biased(u, 224, |_| Nonce::Next, |u| Ok(Nonce::Raw(u.arbitrary()?)))
    }
}

impl<'a> Arbitrary<'a> for Action {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? {
            0..=199 => Action::Record {
                signer: u.arbitrary()?,
                nonce: u.arbitrary()?,
                body: u.arbitrary()?,
            },
            200..=203 => Action::Replay(u.arbitrary()?),
            204..=249 => Action::Seal,
            _ => Action::SealAt(u.arbitrary()?),
        })
    }
}

fn build_body(
    b: &Body,
    ledger: &Ledger,
    earlier: &[&VerifiedRecord],
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
            period: period.period(ledger, true),
        },
        Body::CloseBidding { period } => RecordBody::CloseBidding {
            period: period.period(ledger, false),
        },
        Body::ClosePeriod { period } => RecordBody::ClosePeriod {
            period: period.period(ledger, false),
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
            period: period.period(ledger, false),
            task: task.name(TASKS),
            project: project.name(PROJECTS),
            hours_mh: hours.mh(),
            // 1 to 4 slots, and now and then none (a shape error).
            slots: if *slots == u8::MAX {
                0
            } else {
                u32::from(slots % 4 + 1)
            },
            min_weight_bp: min.bp(1, 10),
            max_weight_bp: max.bp(10, 30),
        },
        Body::OfferProduct {
            period,
            product,
            project,
            units,
            cost,
        } => RecordBody::OfferProduct {
            period: period.period(ledger, false),
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
            period: period.period(ledger, false),
            task: task.name(TASKS),
            weight_bp: weight.bp(1, 30),
        },
        Body::BidProduct {
            period,
            product,
            max,
        } => RecordBody::BidProduct {
            period: period.period(ledger, false),
            product: product.name(PRODUCTS),
            max_mh: max.mh(),
        },
        Body::Contribute {
            period,
            task,
            hours,
            note,
        } => RecordBody::Contribute {
            period: period.period(ledger, false),
            task: task.name(TASKS),
            hours_mh: hours.mh(),
            note: note.clone(),
        },
        Body::Retract { contribution } => RecordBody::Retract {
            contribution: contribution.id(earlier),
        },
        Body::Attest {
            contribution,
            hours,
        } => RecordBody::Attest {
            contribution: contribution.id(earlier),
            hours_mh: hours.map(Mh::mh),
        },
        Body::Amend {
            contribution,
            hours,
        } => RecordBody::Amend {
            contribution: contribution.id(earlier),
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

    let mut next_nonce = 1_000u64;
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
                let key = signer.key(body, &ledger);
                let nonce = match nonce {
                    Nonce::Next => {
                        next_nonce += 1;
                        next_nonce
                    }
                    Nonce::Raw(n) => u64::from(*n),
                };
                let earlier: Vec<&VerifiedRecord> = history.iter().chain(&pending).collect();
                let body = build_body(body, &ledger, &earlier, &chain_id);
                let rec = SignedRecord::sign(key, &chain_id, nonce, body);
                // A record of a bad shape never verifies, so it never reaches a block.
                if let Ok(v) = rec.verify(&chain_id) {
                    pending.push(v);
                }
                None
            }
            Action::Replay(r) => {
                let earlier: Vec<&VerifiedRecord> = history.iter().chain(&pending).collect();
                let id = r.id(&earlier);
                if let Some(rec) = earlier.iter().find(|e| e.id() == id) {
                    let rec = (*rec).clone();
                    pending.push(rec);
                }
                None
            }
            Action::Seal => Some(ledger.height() + 1),
            Action::SealAt(d) => {
                let height = ledger
                    .height()
                    .wrapping_add(u64::from(*d))
                    .wrapping_sub(127);
                if height == ledger.height() + 1 {
                    Some(height)
                } else {
                    // The ledger must refuse the block whole; its records stay pending
                    // for the next block at the right height.
                    apply_block(&mut ledger, height, &pending, &mut applied);
                    None
                }
            }
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
