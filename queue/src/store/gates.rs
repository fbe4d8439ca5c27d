//! Gates: the questions a waiting job asks an operator, and their decisions. The writes
//! (open, park, decide, time out) are transitions written once in [`crate::transitions`];
//! a backend gives the reads.

use async_trait::async_trait;

use super::{Fence, StoreResult};
use crate::gate::{Decision, Gate, GateFilter, GatePage, GateStatus, NewGate};
use crate::job::{Job, JobId};
use crate::transitions::{self, Transact};

#[async_trait]
pub trait Gates: Transact {
    /// The job's gates, oldest opened first ([`crate::StoreError::NotFound`] for no job).
    async fn gates(&self, job: JobId) -> StoreResult<Vec<Gate>>;

    /// Gates across jobs that are not finished, oldest opened first: the operator's inbox.
    async fn gate_inbox(&self, filter: &GateFilter) -> StoreResult<GatePage>;

    /// How many gates are open on unfinished jobs: the size of the inbox, read page by page
    /// (its cost grows with the open gates, never with finished work).
    async fn open_gate_count(&self) -> StoreResult<u64> {
        let mut filter = GateFilter {
            status: Some(GateStatus::Open),
            after: None,
            limit: 1000,
        };
        let mut count = 0;
        loop {
            let page = self.gate_inbox(&filter).await?;
            count += page.gates.len() as u64;
            match page.next {
                Some(next) => filter.after = Some(next),
                None => return Ok(count),
            }
        }
    }

    /// Opens gates for a running job (fenced); answers them as stored, in the order asked
    /// (a key the job already has keeps its gate and decision). See
    /// [`transitions::open_gates`].
    async fn open_gates(&self, fence: Fence, gates: Vec<NewGate>) -> StoreResult<Vec<Gate>> {
        transitions::open_gates(self, fence, gates).await
    }

    /// Parks a running job on its open gates after its checkpoint (fenced): `waiting`, or
    /// `queued` at once when none is open any more. See [`transitions::park`].
    async fn park(&self, fence: Fence) -> StoreResult<Job> {
        transitions::park(self, fence).await
    }

    /// An operator's decision on one gate. See [`transitions::decide`].
    async fn decide(&self, job: JobId, decision: Decision) -> StoreResult<Gate> {
        transitions::decide(self, job, decision).await
    }

    /// Times out open gates past their deadline, for up to `limit` jobs; how many timed out.
    async fn time_out_gates(&self, limit: usize) -> StoreResult<usize> {
        transitions::time_out_gates(self, limit).await
    }
}
