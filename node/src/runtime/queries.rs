//! The API's commands other than submissions: the dispatch of a batch of commands, and
//! the read-only queries (status, balance, history, block, export) and record watches.

use protocol::ledger::Account;
use protocol::Hash;
use tokio::sync::watch;

use super::actor::Actor;
use super::ingress::{Balance, BlockInfo, Command, CommandError, Status, Submitted};
use super::{NodeError, WATCHERS_MAX};

impl Actor {
    /// Commands taken from the queue together: the submissions first, as one batch (one
    /// flush for all of them), then the rest in order.
    pub(super) async fn on_commands(&mut self, cmds: Vec<Command>) -> Result<(), NodeError> {
        let mut submits = Vec::new();
        let mut others = Vec::new();
        for c in cmds {
            match c {
                Command::Submit { bytes, reply } => submits.push((bytes, reply)),
                other => others.push(other),
            }
        }
        if !submits.is_empty() {
            self.submit_batch(submits).await;
        }
        for c in others {
            self.on_command(c).await?;
        }
        Ok(())
    }

    pub(super) async fn on_command(&mut self, cmd: Command) -> Result<(), NodeError> {
        match cmd {
            Command::Submit { bytes, reply } => self.submit_batch(vec![(bytes, reply)]).await,
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Balance { account, reply } => {
                let _ = reply.send(self.balance(&account));
            }
            Command::Watch { id, reply } => {
                let _ = reply.send(self.watch(&id));
            }
            Command::History { id, reply } => {
                let _ = reply.send(self.history(&id));
            }
            Command::Export { reply } => {
                let _ = reply.send(self.export());
            }
            Command::Block { height, reply } => {
                let _ = reply.send(self.block_info(height));
            }
            Command::Genesis { reply } => {
                let _ = reply.send(self.genesis_toml.clone());
            }
        }
        Ok(())
    }

    fn status(&self) -> Status {
        let l = self.ledger();
        let delegates = l.delegates_for(l.height() + 1);
        Status {
            chain_id: self.chain_id.to_hex(),
            height: l.height(),
            state_root: l.state_root().to_hex(),
            period: l.period(),
            phase: l.phase().as_str().into(),
            peers: self.peers.len(),
            delegates: delegates.len(),
            listen: self.listen.clone(),
            delegate: self
                .key
                .as_ref()
                .is_some_and(|k| delegates.contains(&k.public())),
            pending: self.engine.app().mempool.len(),
        }
    }

    fn balance(&self, account: &str) -> Result<Balance, CommandError> {
        let mut acc: Account = account.parse().map_err(|_| {
            CommandError::BadRequest(format!(
                "{account:?} is not an account: give a member's public key (64 hex), pool, surplus or social:<association>"
            ))
        })?;
        let l = self.ledger();
        if let Account::Member(pk) = &acc {
            if l.member(pk).is_none() {
                // A member who rotated its key names itself by its current key: the
                // account stays the one it was admitted with.
                match l.account_of(pk) {
                    Some(id) if l.member(&id).is_some() => acc = Account::Member(id),
                    _ => {
                        return Err(CommandError::NotFound(format!(
                            "{pk} is neither an admitted member's account id nor its current key"
                        )))
                    }
                }
            }
        }
        let proof = l.prove(&acc);
        Ok(Balance {
            member: acc.to_string(),
            balance_mh: l.balance(&acc),
            height: l.height(),
            state_root: l.state_root().to_hex(),
            proof: serde_json::to_value(&proof)
                .map_err(|e| CommandError::Internal(e.to_string()))?,
        })
    }

    fn watch(&mut self, id: &str) -> Result<watch::Receiver<Submitted>, CommandError> {
        let id = Hash::from_hex(id).map_err(|e| CommandError::BadRequest(e.to_string()))?;
        if let Some(s) = self.recent.get(&id) {
            return Ok(watch::channel(s.clone()).1);
        }
        if let Some(w) = self.watchers.get(&id) {
            return Ok(w.subscribe());
        }
        if let Ok(Some(e)) = self.store.record(&id) {
            let (status, reason) = if e.accepted {
                ("accepted", None)
            } else {
                ("rejected", e.reason)
            };
            let s = Submitted {
                id: id.to_hex(),
                height: Some(e.height),
                status: status.into(),
                reason,
            };
            return Ok(watch::channel(s).1);
        }
        if !self.engine.app().mempool.contains(&id) {
            return Err(CommandError::NotFound(format!(
                "record {id} is neither pending nor recently committed here"
            )));
        }
        if self.watchers.len() >= WATCHERS_MAX {
            return Err(CommandError::Busy(
                "too many clients are waiting; try again later".into(),
            ));
        }
        let (tx, rx) = watch::channel(Submitted {
            id: id.to_hex(),
            height: None,
            status: "pending".into(),
            reason: None,
        });
        self.watchers.insert(id, tx);
        Ok(rx)
    }

    fn history(&self, id: &str) -> Result<serde_json::Value, CommandError> {
        let id =
            Hash::from_hex(id).map_err(|e| CommandError::BadRequest(format!("record id: {e}")))?;
        let h = self
            .store
            .history(&id)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        if h.layers.is_empty() {
            return Err(CommandError::NotFound(format!(
                "record {id} is not in the log"
            )));
        }
        serde_json::to_value(&h).map_err(|e| CommandError::Internal(e.to_string()))
    }

    fn block_info(&self, height: u64) -> Result<BlockInfo, CommandError> {
        let tip = self.store.height();
        if height == 0 || height > tip {
            return Err(CommandError::NotFound(format!(
                "no certified block at height {height} (the tip is {tip})"
            )));
        }
        let cb = self
            .store
            .read(height..=height)
            .map_err(|e| CommandError::Internal(e.to_string()))?
            .pop()
            .ok_or_else(|| {
                CommandError::NotFound(format!("no certified block at height {height}"))
            })?;
        let b = &cb.block;
        Ok(BlockInfo {
            height: b.height,
            hash: b.hash().to_hex(),
            view: b.view,
            proposer: b.proposer.to_hex(),
            timestamp_ms: b.timestamp_ms,
            state_root: b.state_root.to_hex(),
            records: b.records.iter().map(|r| r.id().to_hex()).collect(),
            signers: cb
                .certificate
                .signatures
                .iter()
                .map(|(k, _)| k.to_hex())
                .collect(),
        })
    }

    fn export(&self) -> Result<Vec<u8>, CommandError> {
        let mut w = storage::export::ExportWriter::new(Vec::new(), &self.genesis)
            .map_err(|e| CommandError::Internal(e.to_string()))?;
        let height = self.store.height();
        let mut from = 1;
        while from <= height {
            let to = (from + 255).min(height);
            let blocks = self
                .store
                .read(from..=to)
                .map_err(|e| CommandError::Internal(e.to_string()))?;
            for b in &blocks {
                w.block(b)
                    .map_err(|e| CommandError::Internal(e.to_string()))?;
            }
            from = to + 1;
        }
        w.finish()
            .map_err(|e| CommandError::Internal(e.to_string()))
    }
}
