//! Built-in kinds for tests, demos and benchmarks. They are registered only by
//! [`crate::Registry::with_test_kinds`], never by a production registry.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::context::JobContext;
use crate::kind::{JobError, Kind};

/// The names of the test kinds, so that a production registry can say why it refuses them.
pub const TEST_KINDS: &[&str] = &["noop", "sleep", "demo"];

/// `noop`: completes at once. The throughput workload.
pub struct Noop;

#[async_trait]
impl Kind for Noop {
    fn name(&self) -> &'static str {
        "noop"
    }

    async fn run(&self, _ctx: JobContext) -> Result<Value, JobError> {
        Ok(json!({}))
    }
}

/// `sleep`: waits `config.ms` milliseconds (default 1000) at a safe point, so it can be
/// paused, cancelled or handed back while it waits. Used by crash and shutdown tests.
pub struct Sleep;

impl Sleep {
    /// What [`Sleep`]'s `validate` accepts, as a JSON Schema (other keys are ignored).
    pub fn config_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "ms": { "type": "integer", "minimum": 0, "maximum": 86_400_000,
                        "description": "How long to sleep (default 1000)" }
            }
        })
    }

    fn millis(config: &Value) -> Result<u64, String> {
        match config.get("ms") {
            None => Ok(1000),
            Some(v) => {
                let mut v = v.clone();
                drover_queue::job::whole_number(&mut v);
                v.as_u64()
            }
            .filter(|ms| *ms <= 86_400_000)
            .ok_or_else(|| {
                "config.ms: must be a whole number of milliseconds up to one day".into()
            }),
        }
    }
}

#[async_trait]
impl Kind for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }

    fn validate(&self, config: &Value) -> Result<(), String> {
        Self::millis(config).map(|_| ())
    }

    async fn run(&self, ctx: JobContext) -> Result<Value, JobError> {
        let ms = Self::millis(&ctx.job().config).map_err(JobError::Permanent)?;
        ctx.sleep(Duration::from_millis(ms)).await?;
        Ok(json!({ "slept_ms": ms }))
    }
}

pub mod demo;
pub use demo::demo;
