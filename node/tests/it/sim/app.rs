//! A small deterministic application for the simulation: the state is a hash chain, each
//! block's batch is derived from its height and parent state, and some heights install a
//! new delegate set (a stand-in for a certified `ChangeDelegates`).

use std::collections::BTreeMap;

use node::agreement::{AppError, Application, Payload, Verdict};
use protocol::{Block, CertifiedBlock, Hash, PublicKey};

/// The state root after the block at `height` on a state with root `parent_root`.
pub fn next_root(parent_root: &Hash, height: u64) -> Hash {
    // The "records" of the block: a batch derived from the height and the parent state.
    let batch = Hash::of_parts(&[
        b"peerhours/sim/batch",
        &height.to_le_bytes(),
        &parent_root.0,
    ]);
    Hash::of_parts(&[b"peerhours/sim/state", &parent_root.0, &batch.0])
}

#[derive(Debug, Clone)]
pub struct SimApp {
    /// Hash and state root of the finalized tip.
    committed: (Hash, Hash),
    /// Committed state roots by height (index 0 = genesis), to compare nodes.
    pub roots: Vec<Hash>,
    /// Speculative states of verified blocks: hash -> (height, root).
    states: BTreeMap<Hash, (u64, Hash)>,
    /// Delegate sets installed by the block at a height.
    changes: BTreeMap<u64, Vec<PublicKey>>,
    /// Like the ledger's idle policy: with nothing to propose, `build` declines until this
    /// long after the parent's timestamp (0: always builds at once).
    idle_ms: u64,
    /// Proposer timestamps of the committed tip and of verified blocks, for the idle policy.
    timestamps: BTreeMap<Hash, u64>,
    /// Builds declined so far (the idle policy at work).
    pub declined: u64,
}

impl SimApp {
    pub fn new(chain_id: Hash, changes: BTreeMap<u64, Vec<PublicKey>>) -> SimApp {
        let genesis_root = Hash::of_parts(&[b"peerhours/sim/genesis", &chain_id.0]);
        SimApp {
            committed: (chain_id, genesis_root),
            roots: vec![genesis_root],
            states: BTreeMap::new(),
            changes,
            idle_ms: 0,
            timestamps: BTreeMap::from([(chain_id, 0)]),
            declined: 0,
        }
    }

    /// Declines to build until `idle_ms` after the parent block (the ledger's heartbeat
    /// policy for an idle network: `Application::build` returns `Ok(None)`).
    pub fn with_idle(mut self, idle_ms: u64) -> SimApp {
        self.idle_ms = idle_ms;
        self
    }

    /// Rebuilds the committed state by replaying a log (what a restarted node does).
    pub fn replay(
        chain_id: Hash,
        changes: BTreeMap<u64, Vec<PublicKey>>,
        log: &[CertifiedBlock],
    ) -> SimApp {
        let mut app = SimApp::new(chain_id, changes);
        for cb in log {
            let root = next_root(&app.committed.1, cb.block.height);
            assert_eq!(
                root, cb.block.state_root,
                "replayed log does not give its state roots"
            );
            app.committed = (cb.block.hash(), root);
            app.roots.push(root);
            app.timestamps = BTreeMap::from([(cb.block.hash(), cb.block.timestamp_ms)]);
        }
        app
    }

    pub fn root(&self) -> Hash {
        self.committed.1
    }

    fn parent_root(&self, parent: &Hash) -> Option<Hash> {
        if *parent == self.committed.0 {
            return Some(self.committed.1);
        }
        self.states.get(parent).map(|s| s.1)
    }
}

impl Application for SimApp {
    fn build(
        &mut self,
        parent: &Hash,
        height: u64,
        timestamp_ms: u64,
    ) -> Result<Option<Payload>, AppError> {
        let root = self
            .parent_root(parent)
            .ok_or_else(|| AppError(format!("unknown parent {parent}")))?;
        let parent_ts = self.timestamps.get(parent).copied().unwrap_or(0);
        if self.idle_ms > 0 && timestamp_ms < parent_ts.saturating_add(self.idle_ms) {
            // An idle network: no block before the heartbeat is due (a later poke asks again).
            self.declined += 1;
            return Ok(None);
        }
        Ok(Some(Payload {
            records: Vec::new(),
            state_root: next_root(&root, height),
        }))
    }

    fn verify(&mut self, block: &Block) -> Result<Verdict, AppError> {
        let root = self
            .parent_root(&block.parent)
            .ok_or_else(|| AppError(format!("unknown parent {}", block.parent)))?;
        let expected = next_root(&root, block.height);
        if expected != block.state_root {
            return Err(AppError(format!(
                "state root {} expected, block says {}",
                expected, block.state_root
            )));
        }
        self.states.insert(block.hash(), (block.height, expected));
        self.timestamps.insert(block.hash(), block.timestamp_ms);
        Ok(Verdict {
            delegates: self.changes.get(&block.height).cloned(),
        })
    }

    fn finalized(&mut self, cb: &CertifiedBlock) {
        let hash = cb.block.hash();
        let root = match self.states.get(&hash) {
            Some((_, root)) => *root,
            None => panic!("finalized block {hash} was never verified"),
        };
        self.committed = (hash, root);
        self.roots.push(root);
        let height = cb.block.height;
        self.states.retain(|_, (h, _)| *h > height);
        let states = &self.states;
        self.timestamps
            .retain(|h, _| *h == hash || states.contains_key(h));
    }
}
