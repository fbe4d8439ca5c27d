//! Running a graph: from the newest checkpoint (or the initial state), step by step, with
//! safe points at every boundary and checkpoints as the policy says.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::layers::{invoke, StepCall};
use super::progress::{Progress, Reporter};
use super::ranges::RangeSet;
use super::step::StepContext;
use super::{
    Body, CheckpointPolicy, Edge, Graph, GraphState, InitFn, Items, MapStep, MigrateFn, Next, Node,
};
use crate::context::{Interrupt, JobContext};
use crate::kind::JobError;
use crate::retry::retry_delay;
use drover_queue::NewItemOutput;

type ItemResult = (usize, Result<Value, JobError>);

/// A map item running as a task: aborted when dropped (the map stops early), and a task that
/// ends without a result (it panicked past the catch-panic layer) is the item's failure.
struct ItemTask {
    handle: tokio::task::JoinHandle<ItemResult>,
    index: usize,
}

impl ItemTask {
    fn spawn(
        work: impl std::future::Future<Output = ItemResult> + Send + 'static,
        index: usize,
    ) -> Self {
        use tracing::Instrument as _;
        ItemTask {
            handle: tokio::spawn(work.instrument(tracing::Span::current())),
            index,
        }
    }
}

impl std::future::Future for ItemTask {
    type Output = ItemResult;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<ItemResult> {
        let index = self.index;
        std::pin::Pin::new(&mut self.handle).poll(cx).map(|joined| {
            joined.unwrap_or_else(|err| {
                (
                    index,
                    Err(JobError::Permanent(format!(
                        "map item {index} ended abnormally: {err}"
                    ))),
                )
            })
        })
    }
}

impl Drop for ItemTask {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Where a run is: the next step to run, how many ran, and the parts of the step under way
/// that are done (a map's items, a fan-out's branches).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    /// `None` once the graph has finished.
    step: Option<String>,
    steps_done: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    map_done: Option<RangeSet>,
    /// What the map under way runs over, so a resume never indexes other items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    map_items: Option<ItemsSnapshot>,
    /// The outputs of the fan-out's branches that finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branches_done: Option<BTreeMap<String, Value>>,
    /// Items skipped after failing (`MapStep::skip_failed_items`), every map so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    failed_items: Vec<FailedItem>,
}

/// A map's items as a count and a hash of their JSON (FNV-1a, stable across builds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ItemsSnapshot {
    count: usize,
    hash: u64,
}

impl ItemsSnapshot {
    fn of(items: &[Value]) -> Self {
        let text = Value::Array(items.to_vec()).to_string();
        ItemsSnapshot {
            count: items.len(),
            hash: drover_queue::job::fnv1a64(text.as_bytes()),
        }
    }
}

/// A map item that failed and was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedItem {
    pub step: String,
    pub item: usize,
    pub error: String,
}

/// A checkpoint's content.
#[derive(Serialize)]
struct SavedRef<'a, S> {
    version: u32,
    state: &'a S,
    cursor: &'a Cursor,
}

/// A checkpoint as read back: the state stays JSON until its version is checked.
#[derive(Deserialize)]
struct Saved {
    /// Checkpoints written before graphs had versions are version 1.
    #[serde(default = "first_version")]
    version: u32,
    state: Value,
    cursor: Cursor,
}

fn first_version() -> u32 {
    1
}

/// What a run starts from besides the job and the graph.
pub(crate) struct Start<'a, S> {
    pub init: &'a InitFn<S>,
    pub policy: CheckpointPolicy,
    pub migrations: &'a HashMap<u32, MigrateFn>,
}

/// The delay before in-run retry `n` (1-based) of a step: from 1 s, doubling, 30 s at most.
fn step_retry_delay(n: u32) -> Duration {
    retry_delay(n, Duration::from_secs(1), Duration::from_secs(30))
}

/// True for the failures an in-run retry may fix.
fn retryable(err: &JobError) -> bool {
    matches!(err, JobError::Transient(_) | JobError::Timeout(_))
}

/// Brings a checkpoint's state to the graph's version, or says why it cannot be resumed.
fn migrate_state(
    saved: Saved,
    version: u32,
    migrations: &HashMap<u32, MigrateFn>,
) -> Result<(Value, Cursor), JobError> {
    if saved.version == version {
        return Ok((saved.state, saved.cursor));
    }
    let migrate = migrations.get(&saved.version).ok_or_else(|| {
        JobError::Permanent(format!(
            "the checkpoint was written by graph version {}, this kind is at version {version} \
             and registers no migration from {}; cancel the job or deploy a migration",
            saved.version, saved.version
        ))
    })?;
    let state = migrate(saved.state).map_err(|e| {
        JobError::Permanent(format!(
            "migrating the checkpoint from graph version {} failed: {e}",
            saved.version
        ))
    })?;
    Ok((state, saved.cursor))
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
    /// Map item outputs since the last checkpoint, written with the next one.
    pending: Vec<NewItemOutput>,
}

/// Item outputs read from the store per page when a map's fold runs.
const OUTPUT_PAGE: usize = 500;

impl<S: GraphState> Execution<S> {
    /// Loads the newest checkpoint (or builds the initial state) and the effect ledger.
    pub async fn start(
        ctx: JobContext,
        graph: Arc<Graph<S>>,
        start: Start<'_, S>,
    ) -> Result<Self, JobError> {
        let Start {
            init,
            mut policy,
            migrations,
        } = start;
        let settings = ctx.settings().clone();
        policy.every = policy.every.or(settings.checkpoint_interval);
        let step_timeout = ctx
            .job()
            .timeouts
            .step_timeout
            .map(Duration::from_secs)
            .or(settings.step_timeout);
        let saved: Option<Saved> = ctx.resume_state().await?;
        let resumed = saved.is_some();
        let (state, cursor) = match saved {
            Some(saved) => {
                let (state, cursor) = migrate_state(saved, graph.version, migrations)?;
                let state = serde_json::from_value(state).map_err(|e| {
                    JobError::Permanent(format!("the checkpoint's state does not parse: {e}"))
                })?;
                (state, cursor)
            }
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
            pending: Vec::new(),
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

    /// Runs to the end; returns the final state and the map items skipped after failing.
    pub async fn run(mut self) -> Result<(S, Vec<FailedItem>), JobError> {
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
            if let Err(err) = self.run_step_with_retries(node).await {
                return Err(self.stop(err).await);
            }
            self.cursor.steps_done += 1;
            self.cursor.map_done = None;
            self.cursor.map_items = None;
            self.cursor.branches_done = None;
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
        let failed = std::mem::take(&mut self.cursor.failed_items);
        Ok((self.state, failed))
    }

    fn step_context(&self, step: &'static str) -> StepContext {
        StepContext {
            job: self.ctx.clone(),
            step,
            ledger: self.ledger.clone(),
            reporter: self.reporter.clone(),
        }
    }

    /// Runs a step, again up to its `Graph::retry` count when it fails transiently.
    async fn run_step_with_retries(&mut self, node: &Node<S>) -> Result<(), JobError> {
        let retries = self.graph.retries.get(node.name).copied().unwrap_or(0);
        let mut tries = 0;
        loop {
            match self.run_step(node).await {
                Err(err) if retryable(&err) && tries < retries => {
                    tries += 1;
                    let delay = step_retry_delay(tries);
                    let message = format!(
                        "step {} failed ({err}); retry {tries} of {retries} in {} ms",
                        node.name,
                        delay.as_millis()
                    );
                    self.ctx
                        .event("log", json!({ "step": node.name, "message": message }))
                        .await?;
                    self.ctx.sleep(delay).await?;
                }
                other => return other,
            }
        }
    }

    async fn run_step(&mut self, node: &Node<S>) -> Result<(), JobError> {
        let timeout = self
            .graph
            .timeouts
            .get(node.name)
            .copied()
            .or(self.step_timeout);
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
                let mut done = self.cursor.branches_done.take().unwrap_or_default();
                let mut running: FuturesUnordered<_> = branches
                    .iter()
                    .filter(|b| !done.contains_key(b.name))
                    .map(|b| {
                        let call = StepCall {
                            step: b.name,
                            item: None,
                            work: (b.run)(self.step_context(b.name), self.state.clone()),
                        };
                        async move { (b.name, invoke(call, timeout).await) }
                    })
                    .collect();
                // Every branch runs to its end; the finished ones are recorded so that a
                // resumed run does not repeat them, and the first failure is kept.
                let mut failure = None;
                while let Some((name, output)) = running.next().await {
                    match output {
                        Ok(output) => {
                            done.insert(name.to_string(), output);
                            self.items_since += 1;
                        }
                        Err(err) => {
                            failure.get_or_insert(err);
                        }
                    }
                }
                if let Some(err) = failure {
                    self.cursor.branches_done = Some(done);
                    return Err(err);
                }
                let outputs = branches
                    .iter()
                    .map(|b| done.remove(b.name).unwrap_or(Value::Null))
                    .collect();
                self.state = join(self.state.clone(), outputs)?;
            }
            Body::Map(map) => self.run_map(node.name, map, timeout).await?,
        }
        Ok(())
    }

    async fn run_map(
        &mut self,
        step: &'static str,
        map: &MapStep<S>,
        timeout: Option<Duration>,
    ) -> Result<(), JobError> {
        let items = Arc::new(match &map.items {
            Items::State(items) => items(&self.state),
            Items::Outputs(from, items) => {
                let outputs = self.stored_outputs(from).await?;
                items(&self.state, outputs)
            }
        });
        let total = items.len();
        let snapshot = ItemsSnapshot::of(&items);
        match self.cursor.map_items {
            Some(saved) if self.cursor.map_done.is_some() && saved != snapshot => {
                return Err(JobError::Permanent(format!(
                    "map step `{step}`: its items changed since the checkpoint ({} items, \
                     hash {:016x}; now {} items, hash {:016x}); refusing to resume into \
                     other items",
                    saved.count, saved.hash, snapshot.count, snapshot.hash
                )));
            }
            _ => self.cursor.map_items = Some(snapshot),
        }
        let concurrency = (map.concurrency)(self.ctx.job());
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
        // An item waits on a gate: the others go on, and the map parks once they ran.
        let mut waiting = false;
        loop {
            // Safe point between items: launch nothing new once an interrupt is pending.
            while failure.is_none()
                && in_flight.len() < concurrency
                && self.ctx.interrupted().is_none()
            {
                let Some(i) = todo.next() else { break };
                let (each, items, ctx) = (map.each.clone(), items.clone(), self.step_context(step));
                let (retries, backoff) = (map.item_retries, map.item_backoff);
                // Each item is a task of its own, so that it goes on while this loop
                // writes a checkpoint or an event: an item polled only from here would
                // stall mid-call meanwhile, holding whatever it holds (on SQLite, the
                // single writer connection the checkpoint then waits for).
                in_flight.push(ItemTask::spawn(
                    async move {
                        let mut tries = 0;
                        loop {
                            let call = StepCall {
                                step,
                                item: Some(i),
                                work: each(ctx.clone(), i, items[i].clone()),
                            };
                            match invoke(call, timeout).await {
                                Err(err) if retryable(&err) && tries < retries => {
                                    tries += 1;
                                    let delay = retry_delay(tries, backoff, backoff * 32);
                                    if let Err(stop) = ctx.sleep(delay).await {
                                        return (i, Err(stop));
                                    }
                                }
                                result => return (i, result),
                            }
                        }
                    },
                    i,
                ));
            }
            let Some((i, result)) = in_flight.next().await else {
                break;
            };
            match result {
                Ok(output) => {
                    if map.fold_as_completed {
                        (map.fold)(&mut self.state, i, output);
                    } else {
                        match serde_json::to_vec(&output) {
                            Ok(bytes) => self.pending.push(NewItemOutput {
                                step: step.to_string(),
                                index: i as u64,
                                visit: self.cursor.steps_done,
                                output: bytes,
                            }),
                            Err(err) => {
                                failure.get_or_insert(JobError::Permanent(format!(
                                    "map step `{step}`: item {i}'s output does not serialise: {err}"
                                )));
                                continue;
                            }
                        }
                    }
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
                Err(JobError::Wait) => waiting = true,
                Err(err) if map.skip_failed && !err.is_stop() => {
                    let error = err.to_string();
                    done.insert(i);
                    self.items_since += 1;
                    self.cursor.map_done = Some(done.clone());
                    self.cursor.failed_items.push(FailedItem {
                        step: step.to_string(),
                        item: i,
                        error: error.clone(),
                    });
                    let data =
                        json!({ "step": step, "item": i, "kind": "skipped", "message": error });
                    if let Err(err) = self.ctx.event("error", data).await {
                        failure.get_or_insert(err);
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
        if waiting {
            return Err(JobError::Wait);
        }
        if !map.fold_as_completed {
            self.fold_outputs(step, map, total).await?;
        }
        Ok(())
    }

    /// Every stored output of map step `from` (its latest run), in index order, parsed;
    /// outputs not yet checkpointed are written first.
    async fn stored_outputs(&mut self, from: &'static str) -> Result<Vec<Value>, JobError> {
        if self.pending.iter().any(|p| p.step == from) {
            self.checkpoint().await?;
        }
        let mut rows: Vec<NewItemOutput> = Vec::new();
        let mut next = 0;
        loop {
            let page = self.ctx.item_outputs(from, next, OUTPUT_PAGE).await?;
            let full = page.len() == OUTPUT_PAGE;
            let Some(last) = page.last().map(|r| r.index) else {
                break;
            };
            rows.extend(page);
            if !full {
                break;
            }
            next = last + 1;
        }
        // A step that ran more than once (a loop) left rows of each run: the latest wins.
        let latest = rows.iter().map(|r| r.visit).max().unwrap_or(0);
        rows.into_iter()
            .filter(|r| r.visit == latest)
            .map(|r| {
                serde_json::from_slice(&r.output).map_err(|e| {
                    JobError::Permanent(format!(
                        "map step `{from}`: item {}'s stored output does not parse: {e}",
                        r.index
                    ))
                })
            })
            .collect()
    }

    /// Folds the map's outputs in index order: the stored ones (this run of the step only)
    /// a page at a time, merged with those not yet checkpointed.
    async fn fold_outputs(
        &mut self,
        step: &'static str,
        map: &MapStep<S>,
        total: usize,
    ) -> Result<(), JobError> {
        let visit = self.cursor.steps_done;
        // The outputs not yet checkpointed stay pending: the next checkpoint (the step
        // boundary's) stores them, so a later step can read every output back.
        let mut pending: Vec<NewItemOutput> = self
            .pending
            .iter()
            .filter(|p| p.step == step && p.visit == visit)
            .cloned()
            .collect();
        pending.sort_by_key(|p| p.index);
        let mut pending = pending.into_iter().peekable();
        let decode = |row: NewItemOutput| -> Result<(usize, Value), JobError> {
            let value = serde_json::from_slice(&row.output).map_err(|e| {
                JobError::Permanent(format!(
                    "map step `{step}`: item {}'s stored output does not parse: {e}",
                    row.index
                ))
            })?;
            Ok((row.index as usize, value))
        };
        let mut from = 0;
        loop {
            let page = self.ctx.item_outputs(step, from, OUTPUT_PAGE).await?;
            let full = page.len() == OUTPUT_PAGE;
            let Some(last) = page.last().map(|r| r.index) else {
                break;
            };
            for row in page {
                if row.visit != visit || row.index >= total as u64 {
                    continue;
                }
                while let Some(p) = pending.next_if(|p| p.index < row.index) {
                    let (i, value) = decode(p)?;
                    (map.fold)(&mut self.state, i, value);
                }
                // An output not yet checkpointed is the newer one.
                if pending.peek().is_some_and(|p| p.index == row.index) {
                    continue;
                }
                let (i, value) = decode(row)?;
                (map.fold)(&mut self.state, i, value);
            }
            if !full {
                break;
            }
            from = last + 1;
        }
        for p in pending {
            let (i, value) = decode(p)?;
            (map.fold)(&mut self.state, i, value);
        }
        Ok(())
    }

    fn next(&self, index: usize) -> Result<Option<String>, JobError> {
        let node = &self.graph.nodes[index];
        let next = match &node.next {
            Edge::End => None,
            Edge::To(to) => Some(*to),
            Edge::Sequence => self.graph.nodes.get(index + 1).map(|n| n.name),
            Edge::When(targets, choose) => match choose(&self.state) {
                Next::End => None,
                Next::Step(to) if targets.contains(&to) => Some(to),
                Next::Step(to) => {
                    return Err(JobError::Permanent(format!(
                    "step `{}` chose `{to}`, which is not among its declared targets {targets:?}",
                    node.name
                )))
                }
            },
        };
        Ok(next.map(str::to_string))
    }

    /// True when the state moved since the last checkpoint.
    fn dirty(&self) -> bool {
        self.steps_since > 0 || self.items_since > 0
    }

    async fn checkpoint(&mut self) -> Result<(), JobError> {
        self.reporter.flush(&self.ctx).await?;
        let step = self.cursor.step.clone().unwrap_or_default();
        let saved = SavedRef {
            version: self.graph.version,
            state: &self.state,
            cursor: &self.cursor,
        };
        let items = std::mem::take(&mut self.pending);
        self.ctx.checkpoint_with_items(&step, &saved, items).await?;
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
            // Parking and snoozing hand the lease back: save where the run is first.
            JobError::Wait | JobError::Snooze { .. } => true,
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
            JobError::Interrupted(_) | JobError::Wait | JobError::Snooze { .. } => return err,
        };
        let step = self.cursor.step.clone().unwrap_or_default();
        let data = json!({ "step": step, "kind": kind, "message": message, "attempt": self.ctx.job().attempt });
        let _ = self.ctx.event("error", data).await;
        err
    }
}
