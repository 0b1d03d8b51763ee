//! The voter's rules, driven directly through its inputs.

use std::collections::BTreeMap;

use node::agreement::{leader, Config, Effect, Input, Schedule, Tip, Voter, TICKS_PER_TIMEOUT};
use protocol::{Block, Hash, Keypair, PublicKey, SignedVote, Vote};

use crate::sim::app::{next_root, SimApp};

const TIMEOUT_MS: u64 = 1_000;
/// The period of the view timer: a view times out on its `TICKS_PER_TIMEOUT`th tick.
const TICK_MS: u64 = TIMEOUT_MS / TICKS_PER_TIMEOUT;

struct Net {
    chain_id: Hash,
    keys: Vec<Keypair>,
    set: Vec<PublicKey>,
}

impl Net {
    fn new() -> Net {
        let keys: Vec<Keypair> = (0..4)
            .map(|i| Keypair::from_label(&format!("rules/delegate/{i}")))
            .collect();
        let set = keys.iter().map(Keypair::public).collect();
        Net {
            chain_id: Hash::of(b"rules chain"),
            keys,
            set,
        }
    }

    /// The index of the leader of `view` for height 1.
    fn leader_of(&self, view: u64) -> usize {
        let l = leader(&self.set, view).expect("non-empty set");
        self.set
            .iter()
            .position(|k| *k == l)
            .expect("leader is a delegate")
    }

    fn voter(&self, who: usize, own_votes: Vec<SignedVote>) -> Voter<SimApp> {
        let cfg = Config {
            chain_id: self.chain_id,
            key: self.keys[who].clone(),
            view_timeout_ms: TIMEOUT_MS,
        };
        let app = SimApp::new(self.chain_id, BTreeMap::new());
        let schedule = Schedule::new(self.set.clone()).expect("valid set");
        Voter::new(cfg, app, schedule, Tip::genesis(self.chain_id), own_votes).expect("voter")
    }

    /// A valid first block proposed in `view` by its leader, with its signature.
    fn block(&self, view: u64, timestamp_ms: u64) -> (Block, protocol::Signature) {
        let l = self.leader_of(view);
        let genesis_root = SimApp::new(self.chain_id, BTreeMap::new()).root();
        let block = Block {
            height: 1,
            view,
            parent: self.chain_id,
            proposer: self.set[l],
            timestamp_ms,
            records: Vec::new(),
            state_root: next_root(&genesis_root, 1),
        };
        let sig = block.sign(&self.keys[l], &self.chain_id);
        (block, sig)
    }

    fn vote(&self, who: usize, vote: Vote) -> SignedVote {
        SignedVote::sign(&self.keys[who], &self.chain_id, vote)
    }
}

/// Index of the first effect matching `pick`.
fn position(effects: &[Effect], pick: impl Fn(&Effect) -> bool) -> Option<usize> {
    effects.iter().position(pick)
}

#[test]
fn leader_persists_its_notarize_before_sending_proposal_or_vote() {
    let net = Net::new();
    let me = net.leader_of(1);
    let mut v = net.voter(me, Vec::new());
    let effects = v.handle(5_000, Input::Start);
    let persist = position(
        &effects,
        |e| matches!(e, Effect::PersistVote(sv) if matches!(sv.vote, Vote::Notarize { view: 1, .. })),
    );
    let proposal = position(&effects, |e| matches!(e, Effect::SendProposal { .. }));
    let send = position(
        &effects,
        |e| matches!(e, Effect::SendVote(sv) if matches!(sv.vote, Vote::Notarize { view: 1, .. })),
    );
    let (persist, proposal, send) = (
        persist.expect("persist"),
        proposal.expect("proposal"),
        send.expect("send"),
    );
    assert!(persist < proposal && persist < send, "{effects:?}");
    let Some(Effect::SendProposal { block, .. }) = effects.get(proposal) else {
        unreachable!()
    };
    assert_eq!(
        (block.height, block.view, block.parent, block.timestamp_ms),
        (1, 1, net.chain_id, 5_000)
    );
    assert!(effects.contains(&Effect::SetTimer {
        view: 1,
        after_ms: TICK_MS
    }));
}

#[test]
fn follower_notarizes_a_valid_proposal_after_persisting() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let mut v = net.voter(me, Vec::new());
    let _ = v.handle(0, Input::Start);
    let (block, signature) = net.block(1, 10);
    let hash = block.hash();
    let effects = v.handle(1, Input::Proposal { block, signature });
    let want = Vote::Notarize {
        view: 1,
        height: 1,
        block: hash,
    };
    let persist = position(
        &effects,
        |e| matches!(e, Effect::PersistVote(sv) if sv.vote == want),
    )
    .expect("persist");
    let send = position(
        &effects,
        |e| matches!(e, Effect::SendVote(sv) if sv.vote == want),
    )
    .expect("send");
    assert!(persist < send);
}

/// A notarize whose first send was lost must reach the others while they still wait for
/// the view: it is re-sent on the view's first tick, well before anyone times out, and the
/// tick does not nullify. (Re-sending only on the timeout, when everyone also nullifies,
/// left every view notarized and nullified, and nothing was ever final: issue 4/5.)
#[test]
fn a_notarize_is_resent_on_the_next_tick_not_only_when_the_view_times_out() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let mut v = net.voter(me, Vec::new());
    let _ = v.handle(0, Input::Start);
    let (block, signature) = net.block(1, 10);
    let hash = block.hash();
    let _ = v.handle(1, Input::Proposal { block, signature });
    let want = Vote::Notarize {
        view: 1,
        height: 1,
        block: hash,
    };
    let effects = v.handle(TICK_MS, Input::Timeout { view: 1 });
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::SendVote(sv) if sv.vote == want)),
        "{effects:?}"
    );
    assert!(
        !effects.iter().any(|e| matches!(
            e,
            Effect::PersistVote(_)
                | Effect::SendVote(SignedVote {
                    vote: Vote::Nullify { .. },
                    ..
                })
        )),
        "{effects:?}"
    );
    assert_eq!(v.stats().timeouts, 0);
    // When the view does time out, the notarize goes out again with the nullify.
    let mut last = Vec::new();
    for tick in 2..=TICKS_PER_TIMEOUT {
        last = v.handle(tick * TICK_MS, Input::Timeout { view: 1 });
    }
    let renotarize = position(
        &last,
        |e| matches!(e, Effect::SendVote(sv) if sv.vote == want),
    );
    let nullify = position(
        &last,
        |e| matches!(e, Effect::SendVote(sv) if sv.vote == Vote::Nullify { view: 1 }),
    );
    assert!(
        renotarize.is_some() && nullify.is_some() && renotarize < nullify,
        "{last:?}"
    );
}

#[test]
fn proposal_with_a_wrong_state_root_is_nullified_not_notarized() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let mut v = net.voter(me, Vec::new());
    let _ = v.handle(0, Input::Start);
    let (mut block, _) = net.block(1, 10);
    block.state_root = Hash::of(b"wrong");
    let signature = block.sign(&net.keys[net.leader_of(1)], &net.chain_id);
    let effects = v.handle(1, Input::Proposal { block, signature });
    assert!(!effects
        .iter()
        .any(|e| matches!(e, Effect::PersistVote(sv) if matches!(sv.vote, Vote::Notarize { .. }))));
    assert!(effects
        .iter()
        .any(|e| matches!(e, Effect::PersistVote(sv) if sv.vote == Vote::Nullify { view: 1 })));
    assert_eq!(v.stats().proposals_invalid, 1);
}

#[test]
fn proposal_from_a_non_leader_is_refused() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let mut v = net.voter(me, Vec::new());
    let _ = v.handle(0, Input::Start);
    let (mut block, _) = net.block(1, 10);
    let impostor = (net.leader_of(1) + 2) % 4;
    block.proposer = net.set[impostor];
    let signature = block.sign(&net.keys[impostor], &net.chain_id);
    let effects = v.handle(1, Input::Proposal { block, signature });
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(v.stats().proposals_rejected, 1);
}

#[test]
fn timeout_nullifies_after_persisting_and_rearms() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let mut v = net.voter(me, Vec::new());
    let _ = v.handle(0, Input::Start);
    for tick in 1..TICKS_PER_TIMEOUT {
        let effects = v.handle(tick * TICK_MS, Input::Timeout { view: 1 });
        assert!(
            !effects.iter().any(|e| matches!(e, Effect::PersistVote(_))),
            "tick {tick} of {TICKS_PER_TIMEOUT} voted: {effects:?}"
        );
        assert!(effects.contains(&Effect::SetTimer {
            view: 1,
            after_ms: TICK_MS
        }));
    }
    let effects = v.handle(TIMEOUT_MS, Input::Timeout { view: 1 });
    let null = Vote::Nullify { view: 1 };
    let persist = position(
        &effects,
        |e| matches!(e, Effect::PersistVote(sv) if sv.vote == null),
    )
    .expect("persist");
    let send = position(
        &effects,
        |e| matches!(e, Effect::SendVote(sv) if sv.vote == null),
    )
    .expect("send");
    assert!(persist < send);
    assert!(effects.contains(&Effect::SetTimer {
        view: 1,
        after_ms: TICK_MS
    }));
    assert_eq!(v.stats().timeouts, 1);
    // A stale timer does nothing.
    assert!(v.handle(1_001, Input::Timeout { view: 7 }).is_empty());
}

#[test]
fn restarted_voter_that_nullified_never_notarizes_that_view() {
    let net = Net::new();
    let me = (net.leader_of(1) + 1) % 4;
    let nullify = net.vote(me, Vote::Nullify { view: 1 });
    let mut v = net.voter(me, vec![nullify]);
    let _ = v.handle(0, Input::Start);
    let (block, signature) = net.block(1, 10);
    let effects = v.handle(1, Input::Proposal { block, signature });
    assert!(
        !effects.iter().any(|e| matches!(e, Effect::PersistVote(_))),
        "{effects:?}"
    );
}

#[test]
fn restarted_leader_does_not_propose_twice_in_a_view() {
    let net = Net::new();
    let me = net.leader_of(1);
    let (block, _) = net.block(1, 10);
    let notarize = net.vote(
        me,
        Vote::Notarize {
            view: 1,
            height: 1,
            block: block.hash(),
        },
    );
    let mut v = net.voter(me, vec![notarize]);
    let effects = v.handle(99_000, Input::Start);
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::SendProposal { .. })),
        "{effects:?}"
    );
    // It re-sends the vote it had persisted.
    assert!(effects.contains(&Effect::SendVote(notarize)));
}

#[test]
fn a_store_with_conflicting_own_votes_is_refused() {
    let net = Net::new();
    let me = 0;
    let a = net.vote(
        me,
        Vote::Finalize {
            view: 3,
            height: 1,
            block: Hash::of(b"a"),
        },
    );
    let b = net.vote(me, Vote::Nullify { view: 3 });
    let cfg = Config {
        chain_id: net.chain_id,
        key: net.keys[me].clone(),
        view_timeout_ms: TIMEOUT_MS,
    };
    let app = SimApp::new(net.chain_id, BTreeMap::new());
    let schedule = Schedule::new(net.set.clone()).expect("valid set");
    assert!(Voter::new(cfg, app, schedule, Tip::genesis(net.chain_id), vec![a, b]).is_err());
}

#[test]
fn conflicting_votes_give_evidence_once() {
    let net = Net::new();
    let mut v = net.voter(0, Vec::new());
    let _ = v.handle(0, Input::Start);
    let a = net.vote(
        2,
        Vote::Notarize {
            view: 1,
            height: 1,
            block: Hash::of(b"a"),
        },
    );
    let b = net.vote(
        2,
        Vote::Notarize {
            view: 1,
            height: 1,
            block: Hash::of(b"b"),
        },
    );
    let c = net.vote(2, Vote::Nullify { view: 1 });
    let _ = v.handle(1, Input::Vote(a));
    let effects = v.handle(2, Input::Vote(b));
    assert!(effects.contains(&Effect::Evidence(a, b)), "{effects:?}");
    assert!(a.conflicts_with(&b));
    let again = v.handle(3, Input::Vote(b));
    assert!(!again.iter().any(|e| matches!(e, Effect::Evidence(..))));
    // A notarize and a nullify in one view are allowed: no evidence.
    let effects = v.handle(4, Input::Vote(c));
    assert!(!effects.iter().any(|e| matches!(e, Effect::Evidence(..))));
}

#[test]
fn votes_with_bad_signatures_or_from_strangers_are_dropped() {
    let net = Net::new();
    let mut v = net.voter(0, Vec::new());
    let _ = v.handle(0, Input::Start);
    let stranger = Keypair::from_label("rules/stranger");
    let sv = SignedVote::sign(&stranger, &net.chain_id, Vote::Nullify { view: 1 });
    assert!(v.handle(1, Input::Vote(sv)).is_empty());
    let mut forged = net.vote(1, Vote::Nullify { view: 1 });
    forged.vote = Vote::Nullify { view: 2 };
    assert!(v.handle(2, Input::Vote(forged)).is_empty());
    assert_eq!(v.stats().votes_rejected, 2);
}

#[test]
fn quorum_of_nullifies_moves_to_the_next_view() {
    let net = Net::new();
    let mut v = net.voter(0, Vec::new());
    let _ = v.handle(0, Input::Start);
    for who in 1..4 {
        let _ = v.handle(
            who,
            Input::Vote(net.vote(who as usize, Vote::Nullify { view: 1 })),
        );
    }
    assert_eq!(v.view(), 2);
}

#[test]
fn four_voters_finalize_a_block_over_a_perfect_network() {
    // Deliver every message to everyone, in order, until height 3 is final everywhere.
    let net = Net::new();
    let mut voters: Vec<Voter<SimApp>> = (0..4).map(|i| net.voter(i, Vec::new())).collect();
    let mut queue: std::collections::VecDeque<(usize, Input)> =
        (0..4).map(|i| (i, Input::Start)).collect();
    let mut finalized: Vec<Vec<Hash>> = vec![Vec::new(); 4];
    let mut steps = 0;
    while let Some((i, input)) = queue.pop_front() {
        steps += 1;
        assert!(steps < 100_000, "no progress");
        for e in voters[i].handle(steps, input) {
            match e {
                Effect::SendVote(sv) => (0..4)
                    .filter(|j| *j != i)
                    .for_each(|j| queue.push_back((j, Input::Vote(sv)))),
                Effect::SendProposal { block, signature } => {
                    (0..4).filter(|j| *j != i).for_each(|j| {
                        queue.push_back((
                            j,
                            Input::Proposal {
                                block: block.clone(),
                                signature,
                            },
                        ))
                    })
                }
                Effect::Finalized(cb) => finalized[i].push(cb.block.hash()),
                _ => {}
            }
        }
        if finalized.iter().all(|f| f.len() >= 3) {
            break;
        }
    }
    assert!(finalized.iter().all(|f| f[..3] == finalized[0][..3]));
    assert!(voters.iter().all(|v| v.tip().height >= 3));
}
