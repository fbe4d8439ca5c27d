//! Running a graph: from the newest checkpoint (or the initial state), step by step, with
//! safe points at every boundary and checkpoints as the policy says.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::layers::{invoke, StepCall};
use super::progress::{Progress, Reporter};
use super::ranges::RangeSet;
use super::step::StepContext;
use super::{Body, CheckpointPolicy, Edge, Graph, GraphState, InitFn, MapStep, Next, Node};
use crate::context::{Interrupt, JobContext};
use crate::kind::JobError;

/// Where a run is: the next step to run, how many ran, and the items done of a map step
/// that is under way.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    /// `None` once the graph has finished.
    step: Option<String>,
    steps_done: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    map_done: Option<RangeSet>,
}

/// A checkpoint's content.
#[derive(Serialize)]
struct SavedRef<'a, S> {
    state: &'a S,
    cursor: &'a Cursor,
}

#[derive(Deserialize)]
#[serde(bound = "S: GraphState")]
struct Saved<S> {
    state: S,
    cursor: Cursor,
}

pub(crate) struct Execution<S> {
    ctx: JobContext,
    graph: Arc<Graph<S>>,
    policy: CheckpointPolicy,
    step_timeout: Option<Duration>,
    state: S,
    cursor: Cursor,
    ledger: Arc<Mutex<HashMap<String, Value>>>,
    reporter: Arc<Reporter>,
    /// Steps and map items since the last checkpoint, and when it was written.
    steps_since: u64,
    items_since: u64,
    checkpointed_at: Instant,
}

impl<S: GraphState> Execution<S> {
    /// Loads the newest checkpoint (or builds the initial state) and the effect ledger.
    pub async fn start(
        ctx: JobContext,
        graph: Arc<Graph<S>>,
        init: &InitFn<S>,
        mut policy: CheckpointPolicy,
    ) -> Result<Self, JobError> {
        let settings = ctx.settings().clone();
        policy.every = policy.every.or(settings.checkpoint_interval);
        let step_timeout = ctx
            .job()
            .timeouts
            .step_timeout
            .map(Duration::from_secs)
            .or(settings.step_timeout);
        let saved: Option<Saved<S>> = ctx.resume_state().await?;
        let resumed = saved.is_some();
        let (state, cursor) = match saved {
            Some(saved) => (saved.state, saved.cursor),
            None => (
                init(ctx.job())?,
                Cursor {
                    step: Some(graph.start().to_string()),
                    ..Cursor::default()
                },
            ),
        };
        let effects = ctx.effects().await?;
        let progress = Progress {
            total_steps: graph.nodes.len() as u64,
            steps_done: cursor.steps_done,
            items_processed: cursor.map_done.as_ref().map_or(0, |d| d.len() as u64),
            ..ctx
                .job()
                .progress
                .clone()
                .and_then(|p| serde_json::from_value(p).ok())
                .unwrap_or_default()
        };
        let execution = Execution {
            reporter: Arc::new(Reporter::new(settings.progress_interval, progress)),
            ledger: Arc::new(Mutex::new(effects)),
            ctx,
            graph,
            policy,
            step_timeout,
            state,
            cursor,
            steps_since: 0,
            items_since: 0,
            checkpointed_at: Instant::now(),
        };
        if resumed {
            let message = format!(
                "resumed from checkpoint: next step {}, {} steps done{}",
                execution.cursor.step.as_deref().unwrap_or("(end)"),
                execution.cursor.steps_done,
                execution
                    .cursor
                    .map_done
                    .as_ref()
                    .map(|d| format!(", {} items of it done", d.len()))
                    .unwrap_or_default()
            );
            execution
                .ctx
                .event("log", json!({ "message": message }))
                .await?;
        }
        Ok(execution)
    }

    /// Runs to the end; returns the final state.
    pub async fn run(mut self) -> Result<S, JobError> {
        while let Some(name) = self.cursor.step.clone() {
            // Safe point: a step boundary.
            if let Some(interrupt) = self.ctx.interrupted() {
                return Err(self.stop(JobError::Interrupted(interrupt)).await);
            }
            let index =
                *self.graph.index.get(name.as_str()).ok_or_else(|| {
                    JobError::Permanent(format!("the graph has no step `{name}`"))
                })?;
            let graph = self.graph.clone();
            let node = &graph.nodes[index];
            if node.risky && self.policy.before_risky && self.dirty() {
                self.checkpoint().await?;
            }
            self.reporter
                .update_now(&self.ctx, |p| {
                    p.step = Some(node.name.to_string());
                    p.steps_done = self.cursor.steps_done;
                })
                .await?;
            if let Err(err) = self.run_step(node).await {
                return Err(self.stop(err).await);
            }
            self.cursor.steps_done += 1;
            self.cursor.map_done = None;
            self.cursor.step = self.next(index)?;
            self.steps_since += 1;
            let policy = &self.policy;
            let due = policy.every_step
                || policy.every_n_steps.is_some_and(|n| self.steps_since >= n)
                || policy
                    .every
                    .is_some_and(|t| self.checkpointed_at.elapsed() >= t);
            if due && self.cursor.step.is_some() {
                self.checkpoint().await?;
            }
        }
        self.reporter
            .update(&self.ctx, |p| {
                p.step = None;
                p.steps_done = self.cursor.steps_done;
            })
            .await?;
        self.reporter.flush(&self.ctx).await?;
        Ok(self.state)
    }

    fn step_context(&self, step: &'static str) -> StepContext {
        StepContext {
            job: self.ctx.clone(),
            step,
            ledger: self.ledger.clone(),
            reporter: self.reporter.clone(),
        }
    }

    async fn run_step(&mut self, node: &Node<S>) -> Result<(), JobError> {
        let timeout = self.step_timeout;
        match &node.body {
            Body::Task(run) => {
                let call = StepCall {
                    step: node.name,
                    item: None,
                    work: run(self.step_context(node.name), self.state.clone()),
                };
                self.state = invoke(call, timeout).await?;
            }
            Body::Parallel { branches, join } => {
                let calls = branches.iter().map(|b| {
                    let call = StepCall {
                        step: b.name,
                        item: None,
                        work: (b.run)(self.step_context(b.name), self.state.clone()),
                    };
                    invoke(call, timeout)
                });
                let outputs = futures_util::future::join_all(calls)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()?;
                self.state = join(self.state.clone(), outputs)?;
            }
            Body::Map(map) => self.run_map(node.name, map).await?,
        }
        Ok(())
    }

    async fn run_map(&mut self, step: &'static str, map: &MapStep<S>) -> Result<(), JobError> {
        let items = (map.items)(&self.state);
        let total = items.len();
        let mut done = self.cursor.map_done.take().unwrap_or_default();
        let todo: Vec<usize> = (0..total).filter(|i| !done.contains(*i)).collect();
        self.cursor.map_done = Some(done.clone());
        self.reporter
            .update(&self.ctx, |p| {
                p.items_total = Some(total as u64);
                p.items_processed = done.len() as u64;
            })
            .await?;
        let mut todo = todo.into_iter();
        let mut in_flight = FuturesUnordered::new();
        let mut failure: Option<JobError> = None;
        loop {
            // Safe point between items: launch nothing new once an interrupt is pending.
            while failure.is_none()
                && in_flight.len() < map.concurrency
                && self.ctx.interrupted().is_none()
            {
                let Some(i) = todo.next() else { break };
                let call = StepCall {
                    step,
                    item: Some(i),
                    work: (map.each)(self.step_context(step), i, items[i].clone()),
                };
                let timeout = self.step_timeout;
                in_flight.push(async move { (i, invoke(call, timeout).await) });
            }
            let Some((i, result)) = in_flight.next().await else {
                break;
            };
            match result {
                Ok(output) => {
                    (map.fold)(&mut self.state, i, output);
                    done.insert(i);
                    self.items_since += 1;
                    self.cursor.map_done = Some(done.clone());
                    let processed = done.len() as u64;
                    if let Err(err) = self
                        .reporter
                        .update(&self.ctx, |p| {
                            p.items_processed = processed;
                            p.current_item = Some(i.to_string());
                        })
                        .await
                    {
                        failure.get_or_insert(err);
                        continue;
                    }
                    let due = self
                        .policy
                        .every_items
                        .is_some_and(|v| self.items_since >= v)
                        || self
                            .policy
                            .every
                            .is_some_and(|t| self.checkpointed_at.elapsed() >= t);
                    if due && failure.is_none() && !todo.as_slice().is_empty() {
                        if let Err(err) = self.checkpoint().await {
                            failure.get_or_insert(err);
                        }
                    }
                }
                // Keep the first failure; let the items in flight finish.
                Err(err) => {
                    failure.get_or_insert(err);
                }
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        if let Some(interrupt) = self.ctx.interrupted() {
            return Err(JobError::Interrupted(interrupt));
        }
        Ok(())
    }

    fn next(&self, index: usize) -> Result<Option<String>, JobError> {
        let node = &self.graph.nodes[index];
        let next = match &node.next {
            Edge::End => None,
            Edge::To(to) => Some(*to),
            Edge::Sequence => self.graph.nodes.get(index + 1).map(|n| n.name),
            Edge::When(choose) => match choose(&self.state) {
                Next::End => None,
                Next::Step(to) => Some(to),
            },
        };
        match next {
            Some(name) if !self.graph.index.contains_key(name) => Err(JobError::Permanent(
                format!("step `{}` leads to unknown step `{name}`", node.name),
            )),
            other => Ok(other.map(str::to_string)),
        }
    }

    /// True when the state moved since the last checkpoint.
    fn dirty(&self) -> bool {
        self.steps_since > 0 || self.items_since > 0
    }

    async fn checkpoint(&mut self) -> Result<(), JobError> {
        self.reporter.flush(&self.ctx).await?;
        let step = self.cursor.step.clone().unwrap_or_default();
        let saved = SavedRef {
            state: &self.state,
            cursor: &self.cursor,
        };
        self.ctx.checkpoint(&step, &saved).await?;
        self.steps_since = 0;
        self.items_since = 0;
        self.checkpointed_at = Instant::now();
        Ok(())
    }

    /// The run stops with `err`: pause and shutdown save where it is first; failures that
    /// will be retried save the progress made; everything but a lost lease is logged.
    async fn stop(&mut self, err: JobError) -> JobError {
        let save = match &err {
            JobError::Interrupted(Interrupt::Pause | Interrupt::Shutdown) => true,
            JobError::Transient(_) | JobError::Timeout(_) => self.dirty(),
            JobError::Interrupted(_) | JobError::Permanent(_) => false,
        };
        if save {
            if let Err(save_err) = self.checkpoint().await {
                return save_err;
            }
        } else {
            let _ = self.reporter.flush(&self.ctx).await;
        }
        let (kind, message) = match &err {
            JobError::Transient(m) => ("transient", m.as_str()),
            JobError::Permanent(m) => ("permanent", m.as_str()),
            JobError::Timeout(m) => ("timeout", m.as_str()),
            JobError::Interrupted(_) => return err,
        };
        let step = self.cursor.step.clone().unwrap_or_default();
        let data = json!({ "step": step, "kind": kind, "message": message, "attempt": self.ctx.job().attempt });
        let _ = self.ctx.event("error", data).await;
        err
    }
}
