//! The completer: records successful runs in batches. A runner whose job succeeded hands
//! the result here and waits for the store's answer. Whatever arrives while one batch is
//! being written goes into the next, so under load one commit settles many jobs, and a lone
//! completion at rest is written at once (no timer holds it back).

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
        let all_lost = || waiting.iter().all(|(control, _)| control.borrow().lost);
        let result = store_call("complete", || store.complete_many(&completions), all_lost).await;
        match result {
            Ok(answers) => {
                for ((_, answer), completed) in waiting.drain(..).zip(answers) {
                    let _ = answer.send(Ok(completed));
                }
            }
            Err(err) => {
                let message = err.to_string();
                for (_, answer) in waiting.drain(..) {
                    let _ = answer.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
        completions.clear();
    }
}
