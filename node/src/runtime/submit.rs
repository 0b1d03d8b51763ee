//! Records into the mempool: submissions from the API (checked, made durable, then
//! acknowledged and gossiped) and records from peers.

use protocol::{RecordId, SignedRecord};
use tokio::sync::oneshot;

use super::actor::{Actor, Engine};
use super::ingress::{CommandError, Submitted};
use crate::network::{Topic, Validation};
use crate::sync::SyncRequest;

/// The reply channel of one submission.
pub(super) type SubmitReply = oneshot::Sender<Result<Submitted, CommandError>>;

impl Actor {
    /// A record from a peer: verified, then kept for a block. One that our committed state
    /// refuses is not forwarded (Ignore), but is kept all the same: we may simply be a block
    /// behind the node that accepted it, and a leader that includes a record the state then
    /// refuses only marks it rejected in the log.
    pub(super) fn take_record(&mut self, data: &[u8]) -> Validation {
        let rec = match SignedRecord::verify_bytes(data, &self.chain_id) {
            Ok(rec) => rec,
            Err(_) => return Validation::Reject,
        };
        let id = rec.id();
        let app = self.engine.app_mut();
        if app.mempool.contains(&id) || app.ledger().contains_record(&id) {
            return Validation::Ignore;
        }
        let valid_now = app.ledger().check(&rec).is_ok();
        match app.mempool.insert(rec) {
            Ok(_) if valid_now => Validation::Accept,
            _ => Validation::Ignore,
        }
    }

    /// Sends record bytes straight to every peer (see `SyncRequest::Records`).
    pub(super) fn push_records(&self, records: Vec<Vec<u8>>) {
        for chunk in records.chunks(crate::sync::VOTES_PER_PUSH_MAX) {
            self.push_to_peers(SyncRequest::Records(chunk.to_vec()));
        }
    }

    /// Takes submissions: each is checked and kept (unflushed), then one flush makes them
    /// all durable, and only then is each gossiped and acknowledged. A submission refused
    /// on its own merits is answered at once; if the flush fails, none is acknowledged.
    pub(super) async fn submit_batch(&mut self, items: Vec<(Vec<u8>, SubmitReply)>) {
        let mut kept = Vec::new();
        for (bytes, reply) in items {
            match self.admit(&bytes) {
                Ok(id) => kept.push((id, bytes, reply)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            }
        }
        if kept.is_empty() {
            return;
        }
        if let Err(e) = self.store.flush() {
            let ids: Vec<RecordId> = kept.iter().map(|(id, _, _)| *id).collect();
            self.engine.app_mut().mempool.remove(ids.iter());
            for (_, _, reply) in kept {
                let _ = reply.send(Err(CommandError::Internal(format!(
                    "could not store the record: {e}"
                ))));
            }
            return;
        }
        let delegate = matches!(self.engine, Engine::Delegate(_));
        if !delegate {
            // A node that does not vote cannot propose what it accepted: it also hands the
            // records to its peers directly, so they do not depend on gossip alone.
            self.push_records(kept.iter().map(|(_, b, _)| b.clone()).collect());
        }
        for (id, bytes, reply) in kept {
            self.publish(Topic::Records, bytes).await;
            let _ = reply.send(Ok(Submitted {
                id: id.to_hex(),
                height: None,
                status: "pending".into(),
                reason: None,
            }));
        }
        if let Err(e) = self.poke().await {
            tracing::warn!(error = %e, "could not hand the new records to the voter");
        }
    }

    /// Checks one submission and keeps it in the mempool and (unflushed) in the store.
    pub(super) fn admit(&mut self, bytes: &[u8]) -> Result<RecordId, CommandError> {
        let rec = SignedRecord::verify_bytes(bytes, &self.chain_id).map_err(|e| {
            CommandError::BadRequest(format!(
                "{e}; was it signed for this network (chain {})?",
                &self.chain_id.to_hex()[..16]
            ))
        })?;
        let id = rec.id();
        let app = self.engine.app_mut();
        if app.ledger().contains_record(&id) {
            return Err(CommandError::Refused(format!(
                "record {id} is already in the log"
            )));
        }
        if app.mempool.contains(&id) {
            return Err(CommandError::Refused(format!(
                "record {id} was already submitted and is pending"
            )));
        }
        app.ledger()
            .check(&rec)
            .map_err(|r| CommandError::Refused(r.to_string()))?;
        app.mempool
            .insert(rec)
            .map_err(|e| CommandError::Busy(e.to_string()))?;
        if let Err(e) = self.store.add_pending_unflushed(id, bytes) {
            self.engine.app_mut().mempool.remove([id].iter());
            return Err(CommandError::Internal(format!(
                "could not store the record: {e}"
            )));
        }
        Ok(id)
    }
}
