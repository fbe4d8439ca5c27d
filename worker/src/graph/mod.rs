//! The agent-graph runtime: a kind written as named steps and the edges between them, run
//! with checkpoints so that a job survives crashes and can be paused, resumed and cancelled
//! while it runs.
//!
//! - Steps: a task (state in, state out), a parallel fan-out whose branches run
//!   concurrently on copies of the state and whose join sees all their outputs, and a map
//!   over a list of items with bounded concurrency that records which items are done, so a
//!   resumed run skips them.
//! - Edges: by default each step leads to the next one added; `edge` and `edge_when`
//!   (conditional on the state, among targets declared up front) override that;
//!   `Next::End` finishes. Every name an edge, `end`, `risky`, `timeout` or `retry` gives is
//!   checked when the kind is built ([`Graph::validate`]), never hours into a run.
//! - Per step: a timeout (`Graph::timeout`) and in-run retries of transient failures
//!   (`Graph::retry`); per map: items' concurrency by job (`MapStep::concurrency_from`),
//!   item retries (`MapStep::retry_items`) and skipping of items that still fail
//!   (`MapStep::skip_failed_items`, listed under `failed_items` in the result).
//! - Parallel branches that finished are recorded in the cursor: a resumed job runs only
//!   the branches that had not.
//! - A graph has a version (`Graph::version`), stored in each checkpoint: a checkpoint of
//!   another version is refused unless the kind registers a migration
//!   (`GraphKind::migrate`).
//! - Checkpoints (see [`CheckpointPolicy`]) hold the state and the cursor (next step, items
//!   done); the job's next lease continues from the newest one.
//! - Safe points: every step boundary and between map items (plus the step's own
//!   `ctx.safe_point()` and `ctx.sleep()`). Pause and shutdown write a checkpoint there and
//!   hand the lease back; cancel and a lost lease stop at once.

mod exec;
mod layers;
mod progress;
mod ranges;
mod step;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_queue::Job;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::context::JobContext;
use crate::kind::{JobError, Kind};

pub use exec::FailedItem;
pub use layers::StepCall;
pub use progress::Progress;
pub use ranges::RangeSet;
pub use step::{Once, StepContext, INTENT_PREFIX};

/// The state a graph carries from step to step and persists in checkpoints.
pub trait GraphState: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> GraphState for T {}

/// A boxed step future.
pub type StepFuture<T> = Pin<Box<dyn Future<Output = Result<T, JobError>> + Send>>;

type TaskFn<S> = Arc<dyn Fn(StepContext, S) -> StepFuture<S> + Send + Sync>;
type BranchFn<S> = Arc<dyn Fn(StepContext, S) -> StepFuture<Value> + Send + Sync>;
type JoinFn<S> = Arc<dyn Fn(S, Vec<Value>) -> Result<S, JobError> + Send + Sync>;
type ItemsFn<S> = Arc<dyn Fn(&S) -> Vec<Value> + Send + Sync>;
type FromOutputsFn<S> = Arc<dyn Fn(&S, Vec<Value>) -> Vec<Value> + Send + Sync>;

/// Where a map's items come from.
#[derive(Clone)]
pub(crate) enum Items<S> {
    /// Computed from the state.
    State(ItemsFn<S>),
    /// The stored outputs of an earlier map step of the job, in index order, through a
    /// function of the state.
    Outputs(&'static str, FromOutputsFn<S>),
}
type ConcurrencyFn = Arc<dyn Fn(&Job) -> usize + Send + Sync>;
type MigrateFn = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;
type EachFn = Arc<dyn Fn(StepContext, usize, Value) -> StepFuture<Value> + Send + Sync>;
type FoldFn<S> = Arc<dyn Fn(&mut S, usize, Value) + Send + Sync>;
type ChooseFn<S> = Arc<dyn Fn(&S) -> Next + Send + Sync>;

/// Where a conditional edge leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Step(&'static str),
    End,
}

enum Edge<S> {
    /// The next step added (or the end, after the last one).
    Sequence,
    To(&'static str),
    /// Decided on the state, among the declared targets.
    When(Vec<&'static str>, ChooseFn<S>),
    End,
}

enum Body<S> {
    Task(TaskFn<S>),
    Parallel {
        branches: Vec<Branch<S>>,
        join: JoinFn<S>,
    },
    Map(MapStep<S>),
}

struct Node<S> {
    name: &'static str,
    body: Body<S>,
    next: Edge<S>,
    risky: bool,
}

/// One branch of a parallel step.
pub struct Branch<S> {
    name: &'static str,
    run: BranchFn<S>,
}

/// A branch of a parallel step: gets a copy of the state, returns an output for the join.
pub fn branch<S, F, Fut>(name: &'static str, run: F) -> Branch<S>
where
    S: GraphState,
    F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
{
    Branch {
        name,
        run: Arc::new(move |ctx, state| Box::pin(run(ctx, state))),
    }
}

/// A map step: runs `each` over the items `items` derives from the state, at most
/// `concurrency` at a time, and folds the items' outputs into the state once every item ran.
///
/// Outputs are not part of the checkpoints: those written during the map carry the outputs
/// of the items done since the one before as rows of their own (a row per item, in the same
/// transaction as the checkpoint's done ranges), and when the map ends the fold is given
/// every output in index order, read back from the store a page at a time, so a 10,000-item
/// map writes each output once and never holds all of them in memory.
/// `MapStep::fold_as_completed` keeps the older way (fold in completion order, outputs in
/// every checkpoint of the state) for small maps that want it.
pub struct MapStep<S> {
    items: Items<S>,
    each: EachFn,
    fold: FoldFn<S>,
    concurrency: ConcurrencyFn,
    item_retries: u32,
    item_backoff: Duration,
    skip_failed: bool,
    fold_as_completed: bool,
}

impl<S: GraphState> MapStep<S> {
    pub fn new<I, F, Fut>(items: I, each: F) -> Self
    where
        I: Fn(&S) -> Vec<Value> + Send + Sync + 'static,
        F: Fn(StepContext, usize, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        MapStep {
            items: Items::State(Arc::new(items)),
            each: Arc::new(move |ctx, i, item| Box::pin(each(ctx, i, item))),
            fold: Arc::new(|_, _, _| {}),
            concurrency: Arc::new(|_| 1),
            item_retries: 0,
            item_backoff: Duration::from_secs(1),
            skip_failed: false,
            fold_as_completed: false,
        }
    }

    /// A map over what an earlier map step (`step`) of the job returned: its stored outputs,
    /// read back in index order when this map starts, become the items through `items`
    /// (which may filter, deduplicate or join them with the state). The state never carries
    /// them, so a pipeline of maps over 10,000 leads checkpoints a small state: each output
    /// is written once, as a row. `step` must be a map step that runs before this one (and
    /// not `fold_as_completed`, which stores no outputs).
    pub fn over_outputs<I, F, Fut>(step: &'static str, items: I, each: F) -> Self
    where
        I: Fn(&S, Vec<Value>) -> Vec<Value> + Send + Sync + 'static,
        F: Fn(StepContext, usize, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        let mut map = MapStep::new(|_: &S| Vec::new(), each);
        map.items = Items::Outputs(step, Arc::new(items));
        map
    }

    /// At most `n` items in flight (like the seeds' six parallel fetchers).
    pub fn concurrency(mut self, n: usize) -> Self {
        let n = n.max(1);
        self.concurrency = Arc::new(move |_| n);
        self
    }

    /// At most as many items in flight as `n` says for the job (from its config, say).
    pub fn concurrency_from(mut self, n: impl Fn(&Job) -> usize + Send + Sync + 'static) -> Self {
        self.concurrency = Arc::new(move |job| n(job).max(1));
        self
    }

    /// Retries an item whose run failed transiently (or timed out) up to `times` times,
    /// waiting `backoff` doubled each time (with jitter; the wait is a safe point), before
    /// the item counts as failed.
    pub fn retry_items(mut self, times: u32, backoff: Duration) -> Self {
        self.item_retries = times;
        self.item_backoff = backoff;
        self
    }

    /// An item that still fails is recorded (step, item, error) and skipped; the map goes
    /// on. Without this, the first failed item fails the job (after the items in flight).
    pub fn skip_failed_items(mut self) -> Self {
        self.skip_failed = true;
        self
    }

    /// Folds an item's output into the state. Called once every item ran, in index order
    /// (items skipped after failing have no output), with the outputs read back from the
    /// store page by page; with `fold_as_completed`, as each item completes.
    pub fn fold(mut self, fold: impl Fn(&mut S, usize, Value) + Send + Sync + 'static) -> Self {
        self.fold = Arc::new(fold);
        self
    }

    /// Folds each output into the state as its item completes (completion order), and
    /// writes no output rows: every checkpoint during the map carries whatever the fold kept
    /// in the state, as before outputs were stored per item. Right for a fold that keeps
    /// little (a count, as `demo`'s) or a small map; a fold that keeps every output makes
    /// the bytes written grow with the square of the items.
    pub fn fold_as_completed(mut self) -> Self {
        self.fold_as_completed = true;
        self
    }
}

/// When checkpoints are written. Triggers combine: any one that fires writes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After every step (the default).
    pub every_step: bool,
    /// After every N steps.
    pub every_n_steps: Option<u64>,
    /// At the first step boundary or map item after this much time since the last one.
    pub every: Option<Duration>,
    /// Every V items of a map step.
    pub every_items: Option<u64>,
    /// Before a step marked risky (`Graph::risky`).
    pub before_risky: bool,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            every_step: true,
            every_n_steps: None,
            every: None,
            every_items: None,
            before_risky: true,
        }
    }
}

/// A graph of named steps over state `S`.
pub struct Graph<S> {
    nodes: Vec<Node<S>>,
    index: HashMap<&'static str, usize>,
    /// What the builder found wrong, reported by [`Graph::validate`].
    problems: Vec<String>,
    version: u32,
    timeouts: HashMap<&'static str, Duration>,
    retries: HashMap<&'static str, u32>,
}

impl<S: GraphState> Default for Graph<S> {
    fn default() -> Self {
        Graph {
            nodes: Vec::new(),
            index: HashMap::new(),
            problems: Vec::new(),
            version: 1,
            timeouts: HashMap::new(),
            retries: HashMap::new(),
        }
    }
}

impl<S: GraphState> Graph<S> {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, name: &'static str, body: Body<S>) -> Self {
        if self.index.insert(name, self.nodes.len()).is_some() {
            self.problems.push(format!(
                "step names must be unique: `{name}` is added twice"
            ));
        }
        self.nodes.push(Node {
            name,
            body,
            next: Edge::Sequence,
            risky: false,
        });
        self
    }

    /// The step `name` that `what` applies to; a problem when there is none yet.
    fn node_mut(&mut self, name: &str, what: &str) -> Option<&mut Node<S>> {
        match self.index.get(name) {
            Some(&i) => Some(&mut self.nodes[i]),
            None => {
                self.problems.push(format!(
                    "{what} names unknown step `{name}` (add the step before its {what})"
                ));
                None
            }
        }
    }

    /// A step that takes the state and returns the new state.
    pub fn task<F, Fut>(self, name: &'static str, run: F) -> Self
    where
        F: Fn(StepContext, S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<S, JobError>> + Send + 'static,
    {
        self.add(
            name,
            Body::Task(Arc::new(move |ctx, state| Box::pin(run(ctx, state)))),
        )
    }

    /// A fan-out: the branches run concurrently; `join` gets the state and every branch's
    /// output, in branch order.
    pub fn parallel<J>(self, name: &'static str, branches: Vec<Branch<S>>, join: J) -> Self
    where
        J: Fn(S, Vec<Value>) -> Result<S, JobError> + Send + Sync + 'static,
    {
        self.add(
            name,
            Body::Parallel {
                branches,
                join: Arc::new(join),
            },
        )
    }

    /// A map over items with bounded concurrency.
    pub fn map(mut self, name: &'static str, step: MapStep<S>) -> Self {
        if let Items::Outputs(from, _) = &step.items {
            let earlier_map = self.index.get(from).is_some_and(
                |&i| matches!(&self.nodes[i].body, Body::Map(m) if !m.fold_as_completed),
            );
            if !earlier_map {
                self.problems.push(format!(
                    "map `{name}` reads the outputs of `{from}`, which is not a map step added \
                     before it (that stores its outputs)"
                ));
            }
        }
        self.add(name, Body::Map(step))
    }

    /// A fixed edge.
    pub fn edge(mut self, from: &'static str, to: &'static str) -> Self {
        if let Some(node) = self.node_mut(from, "edge") {
            node.next = Edge::To(to);
        }
        self
    }

    /// A conditional edge, decided on the state after `from` ran, to one of `targets`
    /// (checked when the kind is built; a choice outside them fails the job).
    pub fn edge_when(
        mut self,
        from: &'static str,
        targets: impl IntoIterator<Item = &'static str>,
        choose: impl Fn(&S) -> Next + Send + Sync + 'static,
    ) -> Self {
        let targets = targets.into_iter().collect();
        if let Some(node) = self.node_mut(from, "edge") {
            node.next = Edge::When(targets, Arc::new(choose));
        }
        self
    }

    /// `from` finishes the graph.
    pub fn end(mut self, from: &'static str) -> Self {
        if let Some(node) = self.node_mut(from, "end") {
            node.next = Edge::End;
        }
        self
    }

    /// Marks a step risky: with `before_risky`, a checkpoint is written right before it.
    pub fn risky(mut self, name: &'static str) -> Self {
        if let Some(node) = self.node_mut(name, "risky") {
            node.risky = true;
        }
        self
    }

    /// The step's own timeout, instead of the job's `step_timeout` (a map applies it to
    /// each item).
    pub fn timeout(mut self, step: &'static str, timeout: Duration) -> Self {
        if self.node_mut(step, "timeout").is_some() {
            self.timeouts.insert(step, timeout);
        }
        self
    }

    /// Runs the step again, up to `times` more times within the run, when it fails
    /// transiently or times out (a map re-runs only the items not done). Backoff doubles
    /// from 1 s, capped at 30 s; the waits are safe points.
    pub fn retry(mut self, step: &'static str, times: u32) -> Self {
        if self.node_mut(step, "retry").is_some() {
            self.retries.insert(step, times);
        }
        self
    }

    /// The graph's version, stored in every checkpoint (default 1). Raise it when a change
    /// makes old checkpoints' state or steps mean something else.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Checks the graph: it has steps, names are unique, and every name an edge, a
    /// conditional edge's targets, `end`, `risky`, `timeout` or `retry` gives is a step.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a graph needs at least one step".into());
        }
        if let Some(problem) = self.problems.first() {
            return Err(problem.clone());
        }
        for node in &self.nodes {
            let targets = match &node.next {
                Edge::To(to) => vec![*to],
                Edge::When(targets, _) => targets.clone(),
                Edge::Sequence | Edge::End => Vec::new(),
            };
            for to in targets {
                if !self.index.contains_key(to) {
                    return Err(format!("step `{}` leads to unknown step `{to}`", node.name));
                }
            }
        }
        Ok(())
    }

    fn start(&self) -> &'static str {
        self.nodes[0].name
    }
}

type InitFn<S> = Arc<dyn Fn(&Job) -> Result<S, JobError> + Send + Sync>;
type PolicyFn = Arc<dyn Fn(&Job) -> CheckpointPolicy + Send + Sync>;
type ResultFn<S> = Arc<dyn Fn(&S) -> Result<Value, JobError> + Send + Sync>;
type ValidateFn = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;
type ValidateJobFn =
    Arc<dyn Fn(&str, &Value) -> Result<(), drover_queue::job::InvalidJob> + Send + Sync>;

/// A job kind made of a graph.
pub struct GraphKind<S> {
    name: &'static str,
    graph: Arc<Graph<S>>,
    init: InitFn<S>,
    policy: PolicyFn,
    result: ResultFn<S>,
    validate: Option<ValidateFn>,
    validate_job: Option<ValidateJobFn>,
    max_attempts: Option<u32>,
    migrations: HashMap<u32, MigrateFn>,
}

impl<S: GraphState> GraphKind<S> {
    /// A kind named `name` running `graph` from the state `init` builds from the job.
    /// Panics if the graph is malformed (a programming error, caught by the kind's tests).
    pub fn new(
        name: &'static str,
        graph: Graph<S>,
        init: impl Fn(&Job) -> Result<S, JobError> + Send + Sync + 'static,
    ) -> Self {
        if let Err(problem) = graph.validate() {
            panic!("graph of kind `{name}`: {problem}");
        }
        GraphKind {
            name,
            graph: Arc::new(graph),
            init: Arc::new(init),
            policy: Arc::new(|_| CheckpointPolicy::default()),
            result: Arc::new(|state| {
                serde_json::to_value(state).map_err(|e| {
                    JobError::Permanent(format!("the final state does not serialize: {e}"))
                })
            }),
            validate: None,
            validate_job: None,
            max_attempts: None,
            migrations: HashMap::new(),
        }
    }

    /// Lets a checkpoint written by graph version `from` resume: `migrate` turns its state
    /// (as JSON) into the current version's. Without a migration such a checkpoint fails the
    /// job with a clear error rather than resuming into steps that mean something else.
    pub fn migrate(
        mut self,
        from: u32,
        migrate: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.migrations.insert(from, Arc::new(migrate));
        self
    }

    /// The checkpoint policy for a job (it may depend on the job's config).
    pub fn policy(
        mut self,
        policy: impl Fn(&Job) -> CheckpointPolicy + Send + Sync + 'static,
    ) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// The job's result, from the final state (default: the state itself).
    pub fn result(mut self, result: impl Fn(&S) -> Value + Send + Sync + 'static) -> Self {
        self.result = Arc::new(move |state| Ok(result(state)));
        self
    }

    /// Checks a job's config at submission.
    pub fn validate(
        mut self,
        validate: impl Fn(&Value) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validate = Some(Arc::new(validate));
        self
    }

    /// Checks a job's goal and config together at submission (see `Kind::validate_job`);
    /// replaces [`GraphKind::validate`] when both are given.
    pub fn validate_job(
        mut self,
        validate: impl Fn(&str, &Value) -> Result<(), drover_queue::job::InvalidJob>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.validate_job = Some(Arc::new(validate));
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
}

#[async_trait]
impl<S: GraphState> Kind for GraphKind<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn max_attempts(&self) -> Option<u32> {
        self.max_attempts
    }

    fn validate_job(
        &self,
        goal: &str,
        config: &Value,
    ) -> Result<(), drover_queue::job::InvalidJob> {
        match &self.validate_job {
            Some(validate) => validate(goal, config),
            None => self
                .validate(config)
                .map_err(|message| drover_queue::job::InvalidJob {
                    field: "config",
                    message,
                }),
        }
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        match &self.validate {
            Some(validate) => validate(config),
            None => Ok(()),
        }
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let policy = (self.policy)(ctx.job());
        let start = exec::Start {
            init: &self.init,
            policy,
            migrations: &self.migrations,
        };
        let execution = exec::Execution::start(ctx, self.graph.clone(), start).await?;
        let (state, failed_items) = execution.run().await?;
        let mut result = (self.result)(&state)?;
        if !failed_items.is_empty() {
            if let Value::Object(fields) = &mut result {
                fields.insert(
                    "failed_items".into(),
                    serde_json::to_value(&failed_items)
                        .map_err(|e| JobError::Permanent(format!("failed items: {e}")))?,
                );
            }
        }
        Ok(result)
    }
}
