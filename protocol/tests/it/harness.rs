//! A small driver of the ledger over the testkit fixture: signs, verifies and applies.

use protocol::ledger::{Ledger, Outcome, Receipt, Rejection};
use protocol::record::RecordBody;
use protocol::testkit::Fixture;
use protocol::{Keypair, SignedRecord, VerifiedRecord};

pub struct Net {
    pub fx: Fixture,
    pub ledger: Ledger,
    nonce: u64,
}

impl Net {
    pub fn new(label: &str, delegates: usize, members: usize) -> Net {
        let fx = Fixture::new(label, delegates, members);
        let ledger = Ledger::from_genesis(&fx.genesis);
        Net {
            fx,
            ledger,
            nonce: 0,
        }
    }

    pub fn rec(&mut self, key: &Keypair, body: RecordBody) -> VerifiedRecord {
        self.nonce += 1;
        SignedRecord::sign(key, &self.fx.chain_id, self.nonce, body)
            .verify(&self.fx.chain_id)
            .expect("test records verify")
    }

    /// Applies one valid block and checks the invariants after it.
    pub fn block(&mut self, recs: Vec<VerifiedRecord>) -> Receipt {
        let h = self.ledger.height() + 1;
        let r = self.ledger.apply(h, &recs).expect("block is valid");
        self.ledger.check_invariants().expect("invariants hold");
        assert_eq!(r.state_root, self.ledger.state_root());
        r
    }

    /// One record in its own block; its outcome.
    pub fn one(&mut self, key: &Keypair, body: RecordBody) -> Outcome {
        let r = self.rec(key, body);
        let check = self.ledger.check(&r);
        let out = self.block(vec![r]).outcomes.remove(0);
        // check() must agree with what apply does to a lone record.
        assert_eq!(
            check.is_ok(),
            out == Outcome::Accepted,
            "check {check:?} vs apply {out:?}"
        );
        out
    }

    /// One record in its own block that the ledger refuses: why. `check` and `apply`
    /// must agree, and the outcome kept in the log reads as the rejection's `Display`.
    pub fn refuse(&mut self, key: &Keypair, body: RecordBody) -> Rejection {
        let r = self.rec(key, body);
        self.refuse_rec(r)
    }

    /// `refuse` for a record already signed.
    pub fn refuse_rec(&mut self, r: VerifiedRecord) -> Rejection {
        let why = self
            .ledger
            .check(&r)
            .expect_err("the ledger refuses the record");
        let out = self.block(vec![r]).outcomes.remove(0);
        assert_eq!(
            out,
            Outcome::Rejected {
                reason: why.to_string()
            }
        );
        why
    }

    pub fn delegate(&self) -> Keypair {
        self.fx.delegates[0].clone()
    }
    pub fn coordinator(&self) -> Keypair {
        self.fx.coordinator.clone()
    }
    pub fn member(&self, i: usize) -> Keypair {
        self.fx.members[i].clone()
    }
}
