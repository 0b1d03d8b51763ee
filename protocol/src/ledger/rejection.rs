//! Why the ledger refuses a record. A refused record stays in the log and changes
//! nothing; the reason's `Display` text is kept in the storage index and shown by the
//! API and the CLI, so changing a sentence changes what nodes store and print.

use super::account::Account;
use super::state::Phase;
use crate::amount::format_mh;
use crate::crypto::{PublicKey, SignatureError};
use crate::record::RecordId;

/// A key's first 16 hex digits, as rejections name it.
fn short(k: &PublicKey) -> String {
    k.to_hex()[..16].to_string()
}

/// Why a record breaks a rule; `Display` is one clear sentence. Grouped by where the
/// rule lives: the log and signers, checks shared by several families, then one group
/// per `judge` family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    // The log and its signers.
    #[error("record {id} is already in the log")]
    AlreadyInLog { id: RecordId },
    #[error("the signer {signer} is not a delegate, member or coordinator of this network")]
    UnknownSigner { signer: PublicKey },
    #[error("nonce {nonce} was already used by this signer")]
    NonceUsed { nonce: u64 },

    // Shared checks.
    #[error(
        "{what} belongs to the {} phase of period {period}, but the ledger is in the {} phase of period {ledger_period}",
        .phase.as_str(),
        .ledger_phase.as_str()
    )]
    WrongPhase {
        what: &'static str,
        period: u64,
        phase: Phase,
        ledger_period: u64,
        ledger_phase: Phase,
    },
    #[error("only a member may {what}, and {} is not a member's current key", short(.key))]
    NotAMember { what: &'static str, key: PublicKey },
    #[error("project {project:?} is not registered")]
    ProjectUnknown { project: String },
    #[error("{} is not a coordinator of project {project:?}", short(.key))]
    NotACoordinator { key: PublicKey, project: String },
    #[error("{} is a delegate, but not of association {association:?}", short(.key))]
    DelegateOfOtherAssociation { key: PublicKey, association: String },
    #[error("{} is not a delegate", short(.key))]
    NotADelegate { key: PublicKey },
    #[error("only a delegate may {action}, and {} is not one", short(.key))]
    DelegateOnly {
        action: &'static str,
        key: PublicKey,
    },
    #[error("key {key} cannot be used: {reason}")]
    KeyUnusable {
        key: PublicKey,
        reason: SignatureError,
    },
    #[error("key {} is already a member's key", short(.key))]
    KeyInUse { key: PublicKey },
    #[error("key {} is another member's account id", short(.key))]
    KeyIsAnotherAccount { key: PublicKey },
    #[error("association {association:?} does not exist")]
    AssociationUnknown { association: String },
    #[error("an amount would be negative")]
    NegativeAmount,
    #[error("moving {amount_mh} mh from {from} to {to} would overflow a balance")]
    BalanceOverflow {
        amount_mh: i64,
        from: Account,
        to: Account,
    },

    // Membership.
    #[error("the ledger already has the most members allowed ({max})")]
    TooManyMembers { max: usize },
    #[error("{} is already a member", short(.key))]
    AlreadyAMember { key: PublicKey },
    #[error("project {project:?} is already registered")]
    ProjectExists { project: String },
    #[error("the ledger already has the most projects allowed ({max})")]
    TooManyProjects { max: usize },
    #[error("coordinator {key} cannot be used: {reason}")]
    CoordinatorUnusable {
        key: PublicKey,
        reason: SignatureError,
    },
    #[error("coordinator {} is listed twice", short(.key))]
    CoordinatorTwice { key: PublicKey },

    // Period.
    #[error("period {period} is still open")]
    PeriodStillOpen { period: u64 },
    #[error("no period follows")]
    NoNextPeriod,
    #[error("the next period is {expected}, not {found}")]
    WrongNextPeriod { expected: u64, found: u64 },
    #[error("the period's credited effort overflows")]
    CreditedOverflow,

    // Auction.
    #[error("task {task:?} was already posted in period {period}")]
    TaskExists { task: String, period: u64 },
    #[error("period {period} already has the most tasks allowed ({max})")]
    TooManyTasks { period: u64, max: usize },
    #[error("project {project:?} is flat-rate: its goods are free and offer no products")]
    FlatRateProduct { project: String },
    #[error("product {product:?} was already offered in period {period}")]
    ProductExists { product: String, period: u64 },
    #[error("period {period} already has the most products allowed ({max})")]
    TooManyProducts { period: u64, max: usize },
    #[error("task {task:?} is not posted in period {period}")]
    TaskUnknown { task: String, period: u64 },
    #[error("a member bids once per task, and this member already bid on {task:?}")]
    TaskBidTwice { task: String },
    #[error("task {task:?} already has the most bids allowed ({max})")]
    TooManyTaskBids { task: String, max: usize },
    #[error("product {product:?} is not offered in period {period}")]
    ProductUnknown { product: String, period: u64 },
    #[error(
        "a bid of {} h on {product:?} is below its cost of {} h",
        format_mh(*.bid_mh),
        format_mh(*.cost_mh)
    )]
    BidBelowCost {
        product: String,
        bid_mh: i64,
        cost_mh: i64,
    },
    #[error("a member bids once per product, and this member already bid on {product:?}")]
    ProductBidTwice { product: String },
    #[error("product {product:?} already has the most bids allowed ({max})")]
    TooManyProductBids { product: String, max: usize },
    #[error("a price overflows")]
    PriceOverflow,

    // Work.
    #[error("member {} did not win task {task:?}", short(.member))]
    DidNotWin { member: PublicKey, task: String },
    #[error("period {period} already has the most contributions allowed")]
    TooManyContributions { period: u64 },
    #[error("{id} is not a contribution of the current period")]
    ContributionUnknown { id: RecordId },
    #[error("task {task:?} has not cleared")]
    TaskNotCleared { task: String },
    #[error("only the contributor may retract its contribution")]
    NotTheContributor,
    #[error("the contribution was already retracted")]
    AlreadyRetracted,
    #[error("an attested contribution cannot be retracted")]
    RetractAttested,
    #[error("the contribution was retracted")]
    AttestRetracted,
    #[error("the contribution is already attested: amend it instead")]
    AlreadyAttested,
    #[error("only an attested contribution can be amended")]
    AmendUnattested,
    #[error("the weighted hours overflow")]
    WeightedOverflow,
    #[error("the amended hours overflow")]
    AmendOverflow,

    // Quorum and evidence.
    #[error("{} is not a member's account id", short(.account))]
    NotAnAccount { account: PublicKey },
    #[error("delegate {key} cannot be used: {reason}")]
    DelegateUnusable {
        key: PublicKey,
        reason: SignatureError,
    },
    #[error("delegate {} is listed twice", short(.key))]
    DelegateTwice { key: PublicKey },
    #[error("approval by {}, who is not a current delegate", short(.delegate))]
    ApprovalByNonDelegate { delegate: PublicKey },
    #[error("the approval of delegate {} does not verify", short(.delegate))]
    ApprovalInvalid { delegate: PublicKey },
    #[error("the proposal has {found} distinct delegate approvals, {needed} needed")]
    TooFewApprovals { found: usize, needed: usize },
    #[error("this quorum proposal was already applied")]
    ProposalReplayed,
    #[error("the two votes do not conflict")]
    VotesDoNotConflict,
    #[error("a vote of the evidence does not verify")]
    EvidenceVoteInvalid,
    #[error("{} was never a delegate", short(.key))]
    NeverADelegate { key: PublicKey },
    #[error("evidence against {} in view {view} is already recorded", short(.delegate))]
    EvidenceRecorded { delegate: PublicKey, view: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::Hash;

    /// Every sentence as the ledger wrote it when rejections were strings: the storage
    /// index, the API and the CLI show these, so they must not drift.
    #[test]
    fn display_is_the_sentence_kept_in_the_log() {
        let k = Keypair::from_label("rejection/display").public();
        let s = short(&k);
        let id: RecordId = Hash::of_parts(&[b"rejection/display"]);
        let e = SignatureError::WeakKey;
        let (task, product, project, assoc) = ("t", "p", "commons", "local");
        let key = k;
        let cases: Vec<(Rejection, String)> = vec![
            (Rejection::AlreadyInLog { id }, format!("record {id} is already in the log")),
            (
                Rejection::UnknownSigner { signer: k },
                format!("the signer {k} is not a delegate, member or coordinator of this network"),
            ),
            (Rejection::NonceUsed { nonce: 7 }, "nonce 7 was already used by this signer".into()),
            (
                Rejection::WrongPhase {
                    what: "a task bid",
                    period: 2,
                    phase: Phase::Bidding,
                    ledger_period: 1,
                    ledger_phase: Phase::Work,
                },
                "a task bid belongs to the bidding phase of period 2, but the ledger is in the work phase of period 1".into(),
            ),
            (
                Rejection::NotAMember { what: "contribute", key },
                format!("only a member may contribute, and {s} is not a member's current key"),
            ),
            (
                Rejection::ProjectUnknown { project: project.into() },
                format!("project {project:?} is not registered"),
            ),
            (
                Rejection::NotACoordinator { key, project: project.into() },
                format!("{s} is not a coordinator of project {project:?}"),
            ),
            (
                Rejection::DelegateOfOtherAssociation { key, association: assoc.into() },
                format!("{s} is a delegate, but not of association {assoc:?}"),
            ),
            (Rejection::NotADelegate { key }, format!("{s} is not a delegate")),
            (
                Rejection::DelegateOnly { action: "open a period", key },
                format!("only a delegate may open a period, and {s} is not one"),
            ),
            (Rejection::KeyUnusable { key, reason: e }, format!("key {key} cannot be used: {e}")),
            (Rejection::KeyInUse { key }, format!("key {s} is already a member's key")),
            (Rejection::KeyIsAnotherAccount { key }, format!("key {s} is another member's account id")),
            (
                Rejection::AssociationUnknown { association: assoc.into() },
                format!("association {assoc:?} does not exist"),
            ),
            (Rejection::NegativeAmount, "an amount would be negative".into()),
            (
                Rejection::BalanceOverflow { amount_mh: 5, from: Account::Pool, to: Account::Member(k) },
                format!("moving 5 mh from {} to {} would overflow a balance", Account::Pool, Account::Member(k)),
            ),
            (
                Rejection::TooManyMembers { max: 1_000_000 },
                "the ledger already has the most members allowed (1000000)".into(),
            ),
            (Rejection::AlreadyAMember { key }, format!("{s} is already a member")),
            (
                Rejection::ProjectExists { project: project.into() },
                format!("project {project:?} is already registered"),
            ),
            (
                Rejection::TooManyProjects { max: 10_000 },
                "the ledger already has the most projects allowed (10000)".into(),
            ),
            (
                Rejection::CoordinatorUnusable { key, reason: e },
                format!("coordinator {key} cannot be used: {e}"),
            ),
            (Rejection::CoordinatorTwice { key }, format!("coordinator {s} is listed twice")),
            (Rejection::PeriodStillOpen { period: 3 }, "period 3 is still open".into()),
            (Rejection::NoNextPeriod, "no period follows".into()),
            (Rejection::WrongNextPeriod { expected: 2, found: 5 }, "the next period is 2, not 5".into()),
            (Rejection::CreditedOverflow, "the period's credited effort overflows".into()),
            (
                Rejection::TaskExists { task: task.into(), period: 1 },
                format!("task {task:?} was already posted in period 1"),
            ),
            (
                Rejection::TooManyTasks { period: 1, max: 10_000 },
                "period 1 already has the most tasks allowed (10000)".into(),
            ),
            (
                Rejection::FlatRateProduct { project: project.into() },
                format!("project {project:?} is flat-rate: its goods are free and offer no products"),
            ),
            (
                Rejection::ProductExists { product: product.into(), period: 1 },
                format!("product {product:?} was already offered in period 1"),
            ),
            (
                Rejection::TooManyProducts { period: 1, max: 10_000 },
                "period 1 already has the most products allowed (10000)".into(),
            ),
            (
                Rejection::TaskUnknown { task: task.into(), period: 1 },
                format!("task {task:?} is not posted in period 1"),
            ),
            (
                Rejection::TaskBidTwice { task: task.into() },
                format!("a member bids once per task, and this member already bid on {task:?}"),
            ),
            (
                Rejection::TooManyTaskBids { task: task.into(), max: 100_000 },
                format!("task {task:?} already has the most bids allowed (100000)"),
            ),
            (
                Rejection::ProductUnknown { product: product.into(), period: 1 },
                format!("product {product:?} is not offered in period 1"),
            ),
            (
                Rejection::BidBelowCost { product: product.into(), bid_mh: 9_999, cost_mh: 10_000 },
                format!(
                    "a bid of {} h on {product:?} is below its cost of {} h",
                    format_mh(9_999),
                    format_mh(10_000)
                ),
            ),
            (
                Rejection::ProductBidTwice { product: product.into() },
                format!("a member bids once per product, and this member already bid on {product:?}"),
            ),
            (
                Rejection::TooManyProductBids { product: product.into(), max: 100_000 },
                format!("product {product:?} already has the most bids allowed (100000)"),
            ),
            (Rejection::PriceOverflow, "a price overflows".into()),
            (
                Rejection::DidNotWin { member: k, task: task.into() },
                format!("member {s} did not win task {task:?}"),
            ),
            (
                Rejection::TooManyContributions { period: 1 },
                "period 1 already has the most contributions allowed".into(),
            ),
            (
                Rejection::ContributionUnknown { id },
                format!("{id} is not a contribution of the current period"),
            ),
            (Rejection::TaskNotCleared { task: task.into() }, format!("task {task:?} has not cleared")),
            (Rejection::NotTheContributor, "only the contributor may retract its contribution".into()),
            (Rejection::AlreadyRetracted, "the contribution was already retracted".into()),
            (Rejection::RetractAttested, "an attested contribution cannot be retracted".into()),
            (Rejection::AttestRetracted, "the contribution was retracted".into()),
            (Rejection::AlreadyAttested, "the contribution is already attested: amend it instead".into()),
            (Rejection::AmendUnattested, "only an attested contribution can be amended".into()),
            (Rejection::WeightedOverflow, "the weighted hours overflow".into()),
            (Rejection::AmendOverflow, "the amended hours overflow".into()),
            (Rejection::NotAnAccount { account: k }, format!("{s} is not a member's account id")),
            (
                Rejection::DelegateUnusable { key, reason: e },
                format!("delegate {key} cannot be used: {e}"),
            ),
            (Rejection::DelegateTwice { key }, format!("delegate {s} is listed twice")),
            (
                Rejection::ApprovalByNonDelegate { delegate: k },
                format!("approval by {s}, who is not a current delegate"),
            ),
            (
                Rejection::ApprovalInvalid { delegate: k },
                format!("the approval of delegate {s} does not verify"),
            ),
            (
                Rejection::TooFewApprovals { found: 2, needed: 3 },
                "the proposal has 2 distinct delegate approvals, 3 needed".into(),
            ),
            (Rejection::ProposalReplayed, "this quorum proposal was already applied".into()),
            (Rejection::VotesDoNotConflict, "the two votes do not conflict".into()),
            (Rejection::EvidenceVoteInvalid, "a vote of the evidence does not verify".into()),
            (Rejection::NeverADelegate { key }, format!("{s} was never a delegate")),
            (
                Rejection::EvidenceRecorded { delegate: k, view: 4 },
                format!("evidence against {s} in view 4 is already recorded"),
            ),
        ];
        assert_eq!(s.len(), 16);
        for (rejection, sentence) in cases {
            assert_eq!(rejection.to_string(), sentence, "{rejection:?}");
        }
    }
}
