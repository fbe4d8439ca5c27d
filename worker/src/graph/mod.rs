//! The agent-graph runtime: a kind written as named steps and the edges between them, run
//! with checkpoints so that a job survives crashes and can be paused, resumed and cancelled
//! while it runs.
//!
//! - Steps: a task (state in, state out), a parallel fan-out whose branches run
//!   concurrently on copies of the state and whose join sees all their outputs, and a map
//!   over a list of items with bounded concurrency that records which items are done, so a
//!   resumed run skips them.
//! - Edges: by default each step leads to the next one added; `edge` and `edge_when`
//!   (conditional on the state) override that; `Next::End` finishes.
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

pub use layers::StepCall;
pub use progress::Progress;
pub use ranges::RangeSet;
pub use step::StepContext;

/// The state a graph carries from step to step and persists in checkpoints.
pub trait GraphState: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> GraphState for T {}

/// A boxed step future.
pub type StepFuture<T> = Pin<Box<dyn Future<Output = Result<T, JobError>> + Send>>;

type TaskFn<S> = Arc<dyn Fn(StepContext, S) -> StepFuture<S> + Send + Sync>;
type BranchFn<S> = Arc<dyn Fn(StepContext, S) -> StepFuture<Value> + Send + Sync>;
type JoinFn<S> = Arc<dyn Fn(S, Vec<Value>) -> Result<S, JobError> + Send + Sync>;
type ItemsFn<S> = Arc<dyn Fn(&S) -> Vec<Value> + Send + Sync>;
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
    When(ChooseFn<S>),
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
/// `concurrency` at a time, and folds each item's output into the state as it completes.
pub struct MapStep<S> {
    items: ItemsFn<S>,
    each: EachFn,
    fold: FoldFn<S>,
    concurrency: usize,
}

impl<S: GraphState> MapStep<S> {
    pub fn new<I, F, Fut>(items: I, each: F) -> Self
    where
        I: Fn(&S) -> Vec<Value> + Send + Sync + 'static,
        F: Fn(StepContext, usize, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, JobError>> + Send + 'static,
    {
        MapStep {
            items: Arc::new(items),
            each: Arc::new(move |ctx, i, item| Box::pin(each(ctx, i, item))),
            fold: Arc::new(|_, _, _| {}),
            concurrency: 1,
        }
    }

    /// At most `n` items in flight (like the seeds' six parallel fetchers).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Folds an item's output into the state (called in completion order).
    pub fn fold(mut self, fold: impl Fn(&mut S, usize, Value) + Send + Sync + 'static) -> Self {
        self.fold = Arc::new(fold);
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
}

impl<S: GraphState> Default for Graph<S> {
    fn default() -> Self {
        Graph {
            nodes: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<S: GraphState> Graph<S> {
    pub fn new() -> Self {
        Self::default()
    }

    fn add(mut self, name: &'static str, body: Body<S>) -> Self {
        self.index.insert(name, self.nodes.len());
        self.nodes.push(Node {
            name,
            body,
            next: Edge::Sequence,
            risky: false,
        });
        self
    }

    fn node_mut(&mut self, name: &str) -> Option<&mut Node<S>> {
        self.index.get(name).map(|&i| &mut self.nodes[i])
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
    pub fn map(self, name: &'static str, step: MapStep<S>) -> Self {
        self.add(name, Body::Map(step))
    }

    /// A fixed edge.
    pub fn edge(mut self, from: &'static str, to: &'static str) -> Self {
        if let Some(node) = self.node_mut(from) {
            node.next = Edge::To(to);
        }
        self
    }

    /// A conditional edge, decided on the state after `from` ran.
    pub fn edge_when(
        mut self,
        from: &'static str,
        choose: impl Fn(&S) -> Next + Send + Sync + 'static,
    ) -> Self {
        if let Some(node) = self.node_mut(from) {
            node.next = Edge::When(Arc::new(choose));
        }
        self
    }

    /// `from` finishes the graph.
    pub fn end(mut self, from: &'static str) -> Self {
        if let Some(node) = self.node_mut(from) {
            node.next = Edge::End;
        }
        self
    }

    /// Marks a step risky: with `before_risky`, a checkpoint is written right before it.
    pub fn risky(mut self, name: &'static str) -> Self {
        if let Some(node) = self.node_mut(name) {
            node.risky = true;
        }
        self
    }

    /// Checks that the graph has steps and every fixed edge names one.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("a graph needs at least one step".into());
        }
        if self.index.len() != self.nodes.len() {
            return Err("step names must be unique".into());
        }
        for node in &self.nodes {
            if let Edge::To(to) = node.next {
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
type ResultFn<S> = Arc<dyn Fn(&S) -> Value + Send + Sync>;
type ValidateFn = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// A job kind made of a graph.
pub struct GraphKind<S> {
    name: &'static str,
    graph: Arc<Graph<S>>,
    init: InitFn<S>,
    policy: PolicyFn,
    result: ResultFn<S>,
    validate: Option<ValidateFn>,
    max_attempts: Option<u32>,
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
            result: Arc::new(|state| serde_json::to_value(state).unwrap_or_default()),
            validate: None,
            max_attempts: None,
        }
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
        self.result = Arc::new(result);
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

    fn validate(&self, config: &Value) -> Result<(), String> {
        match &self.validate {
            Some(validate) => validate(config),
            None => Ok(()),
        }
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let policy = (self.policy)(ctx.job());
        let state = exec::Execution::start(ctx, self.graph.clone(), &self.init, policy).await?;
        let state = state.run().await?;
        Ok((self.result)(&state))
    }
}
