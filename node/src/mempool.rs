//! The bounded pool of verified records waiting for a block, deduplicated by record id
//! and kept in arrival order (so proposals are deterministic given the same arrivals).

use std::collections::BTreeMap;

use protocol::{RecordBody, RecordId, VerifiedRecord};

/// Why a record was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("the node holds {0} pending records already; try again when a block has taken some")]
    Full(usize),
}

/// A held record and its encoded size (computed once, on arrival, not at every proposal).
#[derive(Debug)]
struct Held {
    rec: VerifiedRecord,
    bytes: usize,
}

/// Pending records.
#[derive(Debug, Default)]
pub struct Mempool {
    /// Arrival sequence → record.
    by_seq: BTreeMap<u64, Held>,
    /// Record id → arrival sequence (dedup).
    by_id: BTreeMap<RecordId, u64>,
    /// The sequence number the next arrival gets.
    next_seq: u64,
    /// Most records held.
    max: usize,
}

impl Mempool {
    pub fn new(max: usize) -> Mempool {
        Mempool {
            max,
            ..Mempool::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_seq.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_seq.is_empty()
    }

    pub fn contains(&self, id: &RecordId) -> bool {
        self.by_id.contains_key(id)
    }

    /// The pending record `id`, already verified when it arrived.
    pub fn get(&self, id: &RecordId) -> Option<&VerifiedRecord> {
        self.by_id
            .get(id)
            .and_then(|seq| self.by_seq.get(seq))
            .map(|h| &h.rec)
    }

    /// Adds a record; `Ok(false)` if it was already there.
    pub fn insert(&mut self, rec: VerifiedRecord) -> Result<bool, MempoolError> {
        if self.by_id.contains_key(&rec.id()) {
            return Ok(false);
        }
        if self.by_seq.len() >= self.max {
            return Err(MempoolError::Full(self.max));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_id.insert(rec.id(), seq);
        let bytes = rec.signed().to_bytes().len();
        self.by_seq.insert(seq, Held { rec, bytes });
        Ok(true)
    }

    /// The oldest records, at most `count` of them and `bytes` encoded bytes, skipping
    /// those `skip` says are already taken (e.g. in a notarized ancestor).
    pub fn select(
        &self,
        count: usize,
        bytes: usize,
        skip: impl Fn(&RecordId) -> bool,
    ) -> Vec<VerifiedRecord> {
        let mut out = Vec::new();
        let mut used = 0usize;
        for held in self.by_seq.values() {
            if out.len() >= count {
                break;
            }
            if skip(&held.rec.id()) {
                continue;
            }
            if used + held.bytes > bytes {
                break;
            }
            used += held.bytes;
            out.push(held.rec.clone());
        }
        out
    }

    /// Removes records (committed in a block).
    pub fn remove<'a>(&mut self, ids: impl IntoIterator<Item = &'a RecordId>) {
        for id in ids {
            if let Some(seq) = self.by_id.remove(id) {
                self.by_seq.remove(&seq);
            }
        }
    }

    /// Drops records bound to a period before `period` (they lapse when it closes).
    /// Returns the ids dropped.
    pub fn lapse_before(&mut self, period: u64) -> Vec<RecordId> {
        let stale: Vec<RecordId> = self
            .by_seq
            .values()
            .filter(|h| record_period(&h.rec.record().body).is_some_and(|p| p < period))
            .map(|h| h.rec.id())
            .collect();
        self.remove(stale.iter());
        stale
    }
}

/// The period a phase-bound record names.
pub fn record_period(body: &RecordBody) -> Option<u64> {
    match body {
        RecordBody::OpenPeriod { period }
        | RecordBody::CloseBidding { period }
        | RecordBody::ClosePeriod { period }
        | RecordBody::PostTask { period, .. }
        | RecordBody::OfferProduct { period, .. }
        | RecordBody::BidTask { period, .. }
        | RecordBody::BidProduct { period, .. }
        | RecordBody::Contribute { period, .. } => Some(*period),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Keypair, SignedRecord};

    fn rec(n: u64, period: u64) -> VerifiedRecord {
        let k = Keypair::from_label("mempool");
        let chain = protocol::Hash::of(b"chain");
        SignedRecord::sign(
            &k,
            &chain,
            n,
            RecordBody::BidTask {
                period,
                task: "t".into(),
                weight_bp: 10_000,
            },
        )
        .verify(&chain)
        .expect("a freshly signed record verifies")
    }

    #[test]
    fn dedups_bounds_and_keeps_arrival_order() {
        let mut m = Mempool::new(3);
        assert_eq!(m.insert(rec(2, 1)), Ok(true));
        assert_eq!(m.insert(rec(2, 1)), Ok(false));
        assert_eq!(m.insert(rec(1, 1)), Ok(true));
        assert_eq!(m.insert(rec(3, 2)), Ok(true));
        assert_eq!(m.insert(rec(4, 2)), Err(MempoolError::Full(3)));
        let sel = m.select(2, usize::MAX, |_| false);
        assert_eq!(
            sel.iter().map(|r| r.record().nonce).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let first = sel[0].id();
        let sel = m.select(10, usize::MAX, |id| *id == first);
        assert_eq!(
            sel.iter().map(|r| r.record().nonce).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(m.lapse_before(2).len(), 2);
        assert_eq!(m.len(), 1);
        let one = m.select(10, 1, |_| false);
        assert!(one.is_empty(), "the byte bound holds");
    }
}
