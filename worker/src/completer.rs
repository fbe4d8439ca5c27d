//! The completer: records successful runs in batches. A runner whose job succeeded hands
//! the result here and waits for the store's answer. Whatever arrives while one batch is
//! being written goes into the next, so under load one commit settles many jobs, and a lone
//! completion at rest is written at once (no timer holds it back).
//!
//! A batch the store refuses for a reason retrying cannot fix (one result it cannot store,
//! say) is split in halves until the refused completions stand alone: every other job of
//! the batch is settled, and only the offenders get the store's error.

use std::sync::Arc;

use drover_queue::{Completed, Completion, Fence, Store, StoreError, StoreResult};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};

use crate::context::Control;
use crate::retry::store_call;

/// Hands completions to the batching task; cheap to share between runners.
pub(crate) struct Completer {
    queue: mpsc::UnboundedSender<Pending>,
}

struct Pending {
    completion: Completion,
    /// Tells the batch when this job's lease is known lost (stop retrying for it).
    control: watch::Receiver<Control>,
    answer: oneshot::Sender<StoreResult<Completed>>,
}

impl Completer {
    /// Starts the batching task; it stops once every `Completer` clone is dropped.
    pub fn start(store: Arc<dyn Store>, max_batch: usize) -> Completer {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(store, pending, max_batch.max(1)));
        Completer { queue }
    }

    /// Records `result` as the job's outcome under `fence`; answers once it is durable.
    pub async fn complete(
        &self,
        fence: Fence,
        result: Value,
        control: watch::Receiver<Control>,
    ) -> StoreResult<Completed> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            completion: Completion { fence, result },
            control,
            answer,
        };
        let stopped = || StoreError::Unavailable("the completer has stopped".into());
        self.queue.send(pending).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn run(store: Arc<dyn Store>, mut pending: mpsc::UnboundedReceiver<Pending>, max: usize) {
    let mut completions = Vec::with_capacity(max);
    let mut waiting: Vec<(watch::Receiver<Control>, oneshot::Sender<_>)> = Vec::new();
    while let Some(first) = pending.recv().await {
        let mut next = Some(first);
        while let Some(p) = next {
            completions.push(p.completion);
            waiting.push((p.control, p.answer));
            next = if completions.len() < max {
                pending.try_recv().ok()
            } else {
                None
            };
        }
        metrics::histogram!("drover_completion_batch_size").record(completions.len() as f64);
        // Retried through an outage until the store answers, or every lease is lost (a
        // fenced write could not land anyway).
        let controls: Vec<_> = waiting.iter().map(|(control, _)| control.clone()).collect();
        let answers = settle(store.as_ref(), &completions, &controls).await;
        for ((_, answer), completed) in waiting.drain(..).zip(answers) {
            let _ = answer.send(completed);
        }
        completions.clear();
    }
}

/// One answer per completion, in order. Store outages are retried until the store answers
/// or every lease is lost; a refusal of the whole batch is narrowed down by halving it.
async fn settle(
    store: &dyn Store,
    completions: &[Completion],
    controls: &[watch::Receiver<Control>],
) -> Vec<StoreResult<Completed>> {
    let all_lost = || controls.iter().all(|control| control.borrow().lost);
    match store_call("complete", || store.complete_many(completions), all_lost).await {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) if err.is_transient() || completions.len() == 1 => {
            vec![Err(err); completions.len()]
        }
        Err(err) => {
            tracing::warn!(error = %err, batch = completions.len(),
                "the store refused a batch of completions; splitting it to find the refused ones");
            let half = completions.len() / 2;
            let (first, second) = completions.split_at(half);
            let (first_controls, second_controls) = controls.split_at(half);
            let mut answers = Box::pin(settle(store, first, first_controls)).await;
            answers.extend(Box::pin(settle(store, second, second_controls)).await);
            answers
        }
    }
}
