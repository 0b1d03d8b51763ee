//! Catch-up: which peer to ask for which certified blocks, when to give up on a request,
//! and which answers to take. Pure: time comes in as `now_ms`, peers as a sorted set, and
//! answers as the decoded responses; the actor sends the requests and applies the blocks.
//!
//! One `Blocks` request is in flight at a time. The peers are asked in turn (round-robin
//! over the sorted connected peers), so one silent or lying peer only costs one request.
//! A request unanswered for `timeout_ms` is abandoned at the next tick and the next peer is
//! asked; its late answer is then stale and dropped.

use std::collections::BTreeSet;

use protocol::CertifiedBlock;

use crate::sync::{SyncResponse, BLOCKS_PER_RESPONSE_MAX};

/// A `Blocks` request to send: `peer`, give me the certified blocks from height `from` on,
/// at most `max`. `id` names it when its answer comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ask<P> {
    pub(super) id: u64,
    pub(super) peer: P,
    pub(super) from: u64,
    pub(super) max: u32,
}

/// What to do with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Not the answer to the request in flight (it came after its deadline): dropped.
    Stale,
    /// The request failed or was not served (network error, undecodable, refused).
    Failed(String),
    /// The answer does not fit the request: the peer is faulty.
    Bad(BadAnswer),
    /// Certified blocks in height order from the height asked for, and the peer's tip.
    /// Their certificates are not checked yet.
    Blocks {
        tip: u64,
        blocks: Vec<CertifiedBlock>,
    },
}

/// Why an answer does not fit the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadAnswer {
    #[error("{count} blocks where at most {max} were asked for")]
    TooMany { count: usize, max: u32 },
    #[error("block at height {found} where height {expected} was due")]
    OutOfOrder { expected: u64, found: u64 },
    #[error("the tip {tip} is below the last block sent ({last})")]
    TipBelowBlocks { tip: u64, last: u64 },
}

/// The request in flight.
#[derive(Debug, Clone, Copy)]
struct InFlight<P> {
    ask: Ask<P>,
    /// When it is abandoned (ms, the clock of `now_ms`).
    deadline_ms: u64,
}

/// The catch-up state machine. `P` is a peer's name (`network::Peer` in the node).
#[derive(Debug)]
pub(super) struct CatchUp<P> {
    /// How long a request may go unanswered before the next peer is asked.
    timeout_ms: u64,
    /// The one request in flight.
    in_flight: Option<InFlight<P>>,
    /// Round-robin index into the sorted peers.
    next_peer: usize,
    /// Ask again right after the current answer: the voter told us we are behind.
    again: bool,
    /// The id of the next request.
    next_id: u64,
}

impl<P: Copy + Ord> CatchUp<P> {
    pub(super) fn new(timeout_ms: u64) -> CatchUp<P> {
        CatchUp {
            timeout_ms,
            in_flight: None,
            next_peer: 0,
            again: false,
            next_id: 0,
        }
    }

    /// The periodic tick: abandons a request past its deadline, then asks the next peer
    /// for the blocks after `height` unless a request is still in flight.
    pub(super) fn tick(&mut self, now_ms: u64, height: u64, peers: &BTreeSet<P>) -> Option<Ask<P>> {
        if let Some(f) = &self.in_flight {
            if now_ms < f.deadline_ms {
                return None;
            }
            self.in_flight = None;
        }
        self.ask(now_ms, height, peers)
    }

    /// The voter says we are behind: ask now, or right after the answer in flight.
    pub(super) fn behind(
        &mut self,
        now_ms: u64,
        height: u64,
        peers: &BTreeSet<P>,
    ) -> Option<Ask<P>> {
        self.again = true;
        if self.in_flight.is_some() {
            return None;
        }
        self.ask(now_ms, height, peers)
    }

    /// The answer to request `id` sent to `peer`: the request is no longer in flight, and
    /// the blocks are checked against what was asked.
    pub(super) fn answer(
        &mut self,
        id: u64,
        peer: P,
        response: Result<SyncResponse, String>,
    ) -> Answer {
        let ask = match self.in_flight {
            Some(f) if f.ask.id == id && f.ask.peer == peer => f.ask,
            _ => return Answer::Stale,
        };
        self.in_flight = None;
        match response {
            Ok(SyncResponse::Blocks { tip, blocks }) => match check(&ask, tip, &blocks) {
                Ok(()) => Answer::Blocks { tip, blocks },
                Err(bad) => Answer::Bad(bad),
            },
            Ok(SyncResponse::Refused(reason)) => Answer::Failed(format!("refused: {reason}")),
            Ok(other) => Answer::Failed(format!("not a Blocks answer: {other:?}")),
            Err(e) => Answer::Failed(e),
        }
    }

    /// The blocks of an answer were taken and our height is now `height`: ask again at
    /// once if the peer's `tip` is further, or if the voter said we are behind.
    pub(super) fn taken(
        &mut self,
        now_ms: u64,
        height: u64,
        tip: u64,
        peers: &BTreeSet<P>,
    ) -> Option<Ask<P>> {
        if self.in_flight.is_some() || (tip <= height && !self.again) {
            return None;
        }
        self.ask(now_ms, height, peers)
    }

    /// Asks the next peer in turn, if there is one.
    fn ask(&mut self, now_ms: u64, height: u64, peers: &BTreeSet<P>) -> Option<Ask<P>> {
        debug_assert!(self.in_flight.is_none(), "one catch-up request at a time");
        if peers.is_empty() {
            return None;
        }
        let peer = *peers.iter().nth(self.next_peer % peers.len())?;
        self.next_peer = self.next_peer.wrapping_add(1);
        self.again = false;
        let ask = Ask {
            id: self.next_id,
            peer,
            from: height + 1,
            max: BLOCKS_PER_RESPONSE_MAX,
        };
        self.next_id = self.next_id.wrapping_add(1);
        self.in_flight = Some(InFlight {
            ask,
            deadline_ms: now_ms.saturating_add(self.timeout_ms),
        });
        Some(ask)
    }
}

/// An answer fits its request when it holds at most `max` blocks, at the heights from
/// `from` on without a gap, and its tip is not below them.
fn check<P>(ask: &Ask<P>, tip: u64, blocks: &[CertifiedBlock]) -> Result<(), BadAnswer> {
    if blocks.len() > ask.max as usize {
        return Err(BadAnswer::TooMany {
            count: blocks.len(),
            max: ask.max,
        });
    }
    for (expected, cb) in (ask.from..).zip(blocks) {
        if cb.block.height != expected {
            return Err(BadAnswer::OutOfOrder {
                expected,
                found: cb.block.height,
            });
        }
    }
    match blocks.last() {
        Some(last) if tip < last.block.height => Err(BadAnswer::TipBelowBlocks {
            tip,
            last: last.block.height,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Block, Certificate, Hash, PublicKey, Signature};

    const TIMEOUT_MS: u64 = 5_000;

    fn peers(names: &[u8]) -> BTreeSet<u8> {
        names.iter().copied().collect()
    }

    fn block(height: u64) -> CertifiedBlock {
        CertifiedBlock {
            block: Block {
                height,
                view: height,
                parent: Hash([0; 32]),
                proposer: PublicKey([1; 32]),
                timestamp_ms: height,
                records: Vec::new(),
                state_root: Hash([2; 32]),
            },
            proposer_signature: Signature([3; 64]),
            certificate: Certificate {
                view: height,
                height,
                block: Hash([4; 32]),
                signatures: Vec::new(),
            },
        }
    }

    fn blocks(heights: impl IntoIterator<Item = u64>) -> Vec<CertifiedBlock> {
        heights.into_iter().map(block).collect()
    }

    #[test]
    fn no_peers_no_request() {
        let mut c = CatchUp::<u8>::new(TIMEOUT_MS);
        assert_eq!(c.tick(0, 7, &peers(&[])), None);
        assert_eq!(c.behind(0, 7, &peers(&[])), None);
    }

    #[test]
    fn asks_for_the_blocks_after_our_height_one_request_at_a_time() {
        let mut c = CatchUp::new(TIMEOUT_MS);
        let ask = c.tick(0, 7, &peers(&[1, 2])).expect("a request");
        assert_eq!(
            (ask.peer, ask.from, ask.max),
            (1, 8, BLOCKS_PER_RESPONSE_MAX)
        );
        assert_eq!(c.tick(100, 7, &peers(&[1, 2])), None, "one in flight");
        assert_eq!(c.behind(100, 7, &peers(&[1, 2])), None, "one in flight");
    }

    #[test]
    fn peers_are_asked_in_turn() {
        let mut c = CatchUp::new(TIMEOUT_MS);
        let all = peers(&[3, 1, 2]);
        let mut asked = Vec::new();
        for i in 0..6 {
            let ask = c.tick(i * 10, 0, &all).expect("a request");
            asked.push(ask.peer);
            let answer = c.answer(ask.id, ask.peer, Err("gone".into()));
            assert_eq!(answer, Answer::Failed("gone".into()));
        }
        assert_eq!(asked, [1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn a_silent_peer_is_abandoned_at_its_deadline_and_its_late_answer_is_stale() {
        let mut c = CatchUp::new(TIMEOUT_MS);
        let all = peers(&[1, 2]);
        let first = c.tick(1_000, 4, &all).expect("a request");
        assert_eq!(c.tick(1_000 + TIMEOUT_MS - 1, 4, &all), None);
        let second = c.tick(1_000 + TIMEOUT_MS, 4, &all).expect("the next peer");
        assert_eq!(second.peer, 2);
        assert_ne!(second.id, first.id);
        let late = c.answer(
            first.id,
            first.peer,
            Ok(SyncResponse::Blocks {
                tip: 5,
                blocks: blocks([5]),
            }),
        );
        assert_eq!(late, Answer::Stale);
        // The late answer did not end the request in flight.
        assert_eq!(c.tick(1_000 + TIMEOUT_MS + 1, 4, &all), None);
        let on_time = c.answer(
            second.id,
            second.peer,
            Ok(SyncResponse::Blocks {
                tip: 5,
                blocks: blocks([5]),
            }),
        );
        assert_eq!(
            on_time,
            Answer::Blocks {
                tip: 5,
                blocks: blocks([5])
            }
        );
    }

    #[test]
    fn an_answer_from_another_peer_than_asked_is_stale() {
        let mut c = CatchUp::new(TIMEOUT_MS);
        let ask = c.tick(0, 0, &peers(&[1, 2])).expect("a request");
        let answer = c.answer(
            ask.id,
            2,
            Ok(SyncResponse::Blocks {
                tip: 0,
                blocks: Vec::new(),
            }),
        );
        assert_eq!(answer, Answer::Stale);
    }

    #[test]
    fn answers_that_do_not_fit_the_request_are_bad() {
        let cases: Vec<(&str, u64, Vec<CertifiedBlock>, Option<BadAnswer>)> = vec![
            ("in order from the height asked", 10, blocks(8..=10), None),
            ("nothing, peer not ahead", 7, Vec::new(), None),
            ("nothing, peer ahead", 9, Vec::new(), None),
            (
                "a gap",
                10,
                blocks([8, 10]),
                Some(BadAnswer::OutOfOrder {
                    expected: 9,
                    found: 10,
                }),
            ),
            (
                "not from the height asked",
                10,
                blocks([9, 10]),
                Some(BadAnswer::OutOfOrder {
                    expected: 8,
                    found: 9,
                }),
            ),
            (
                "repeated",
                10,
                blocks([8, 8]),
                Some(BadAnswer::OutOfOrder {
                    expected: 9,
                    found: 8,
                }),
            ),
            (
                "tip below the blocks",
                8,
                blocks(8..=9),
                Some(BadAnswer::TipBelowBlocks { tip: 8, last: 9 }),
            ),
            (
                "too many",
                u64::MAX,
                blocks(8..8 + u64::from(BLOCKS_PER_RESPONSE_MAX) + 1),
                Some(BadAnswer::TooMany {
                    count: BLOCKS_PER_RESPONSE_MAX as usize + 1,
                    max: BLOCKS_PER_RESPONSE_MAX,
                }),
            ),
        ];
        for (name, tip, sent, bad) in cases {
            let mut c = CatchUp::new(TIMEOUT_MS);
            let ask = c.tick(0, 7, &peers(&[1])).expect("a request");
            let got = c.answer(
                ask.id,
                ask.peer,
                Ok(SyncResponse::Blocks {
                    tip,
                    blocks: sent.clone(),
                }),
            );
            let want = match bad {
                None => Answer::Blocks { tip, blocks: sent },
                Some(b) => Answer::Bad(b),
            };
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn refusals_and_other_answers_fail_the_request() {
        let mut c = CatchUp::new(TIMEOUT_MS);
        let all = peers(&[1]);
        let ask = c.tick(0, 0, &all).expect("a request");
        let got = c.answer(ask.id, ask.peer, Ok(SyncResponse::Refused("no".into())));
        assert!(matches!(got, Answer::Failed(_)), "{got:?}");
        let ask = c.tick(10, 0, &all).expect("free again");
        let got = c.answer(ask.id, ask.peer, Ok(SyncResponse::Ack));
        assert!(matches!(got, Answer::Failed(_)), "{got:?}");
    }

    #[test]
    fn asks_again_after_taking_blocks_only_while_the_peer_is_ahead_or_we_are_told_we_are_behind() {
        let all = peers(&[1, 2]);
        let mut c = CatchUp::new(TIMEOUT_MS);
        let ask = c.tick(0, 0, &all).expect("a request");
        let _ = c.answer(
            ask.id,
            ask.peer,
            Ok(SyncResponse::Blocks {
                tip: 300,
                blocks: blocks(1..=256),
            }),
        );
        let next = c.taken(10, 256, 300, &all).expect("the peer is ahead");
        assert_eq!((next.peer, next.from), (2, 257));
        let _ = c.answer(
            next.id,
            next.peer,
            Ok(SyncResponse::Blocks {
                tip: 300,
                blocks: blocks(257..=300),
            }),
        );
        assert_eq!(c.taken(20, 300, 300, &all), None, "caught up");

        // Told we are behind while a request is in flight: ask again after its answer even
        // though that peer is not ahead.
        let ask = c.tick(30, 300, &all).expect("a request");
        assert_eq!(c.behind(40, 300, &all), None);
        let _ = c.answer(
            ask.id,
            ask.peer,
            Ok(SyncResponse::Blocks {
                tip: 300,
                blocks: Vec::new(),
            }),
        );
        let again = c.taken(50, 300, 300, &all).expect("asked again");
        let _ = c.answer(
            again.id,
            again.peer,
            Ok(SyncResponse::Blocks {
                tip: 300,
                blocks: Vec::new(),
            }),
        );
        assert_eq!(c.taken(60, 300, 300, &all), None, "once is enough");
    }

    #[test]
    fn a_failed_request_frees_the_next_tick() {
        let all = peers(&[1]);
        let mut c = CatchUp::new(TIMEOUT_MS);
        let ask = c.tick(0, 0, &all).expect("a request");
        assert_eq!(c.tick(1, 0, &all), None);
        let _ = c.answer(ask.id, ask.peer, Err("reset".into()));
        assert!(c.tick(2, 0, &all).is_some());
    }
}
