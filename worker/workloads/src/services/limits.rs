//! Fleet-wide rate limits, as a step uses them: take a permit from the store before each
//! call, feed the answer's headers back, and when the resource is blocked for longer than a
//! short wait, snooze the job (its slot is freed) until it reopens.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_queue::{Observation, Permit, Store};
use drover_worker::graph::StepContext;
use drover_worker::JobError;

/// A blocked resource is waited for in the step up to this long; past it the job snoozes.
pub const SNOOZE_AFTER: Duration = Duration::from_secs(5);

/// The rate limits of one job's calls.
#[derive(Clone)]
pub struct Limiter {
    store: Arc<dyn Store>,
    /// The share of each limit drover lets itself use (`limits.rate_limit_buffer`).
    share: f64,
}

impl Limiter {
    pub fn new(store: Arc<dyn Store>, share: f64) -> Self {
        Limiter { store, share }
    }

    /// Takes a permit for one call on `resource`: waits in the step when the resource
    /// reopens within [`SNOOZE_AFTER`], else returns the snooze that frees the slot.
    pub async fn acquire(&self, ctx: &StepContext, resource: &str) -> Result<(), JobError> {
        self.acquire_share(ctx, resource, self.share).await
    }

    /// As [`Limiter::acquire`] for a budget drover declared itself ([`Limiter::declare`]),
    /// of which it uses all.
    pub async fn acquire_declared(
        &self,
        ctx: &StepContext,
        resource: &str,
    ) -> Result<(), JobError> {
        self.acquire_share(ctx, resource, 1.0).await
    }

    async fn acquire_share(
        &self,
        ctx: &StepContext,
        resource: &str,
        share: f64,
    ) -> Result<(), JobError> {
        loop {
            let now = Utc::now();
            let permit = self
                .store
                .take_permit(resource, now, share)
                .await
                .map_err(|e| JobError::Transient(format!("rate limit `{resource}`: {e}")))?;
            match permit {
                Permit::Granted { .. } => return Ok(()),
                Permit::Wait { until } => {
                    let wait = (until - now).to_std().unwrap_or_default();
                    if wait > SNOOZE_AFTER {
                        return Err(ctx.snooze_until(
                            until,
                            format!("rate limit of {resource} is used up until {until}"),
                        ));
                    }
                    // A little past the reset, so the next take sees the new window.
                    ctx.sleep(wait + Duration::from_millis(20)).await?;
                }
            }
        }
    }

    /// Records what an answer said about `resource`'s budget. Most answers say nothing new
    /// (the stored remaining already counts the calls in flight): those are not written, so
    /// a call costs the store one write (its permit), not two.
    pub async fn observe(&self, resource: &str, observation: Observation) -> Result<(), JobError> {
        let now = Utc::now();
        let error = |e: drover_queue::StoreError| {
            JobError::Transient(format!("rate limit `{resource}`: {e}"))
        };
        let stored = self.store.rate_limit(resource).await.map_err(error)?;
        let next = drover_queue::limits::observe(stored.as_ref(), resource, &observation, now);
        if let Some(stored) = &stored {
            let same = next.limit == stored.limit
                && next.remaining == stored.remaining
                && next.reset_at == stored.reset_at
                && next.blocked_until == stored.blocked_until;
            if same {
                return Ok(());
            }
        }
        // The row just read is the one to replace; only a lost race reads it again.
        let expected = stored.as_ref().map(|s| s.version);
        if self
            .store
            .put_rate_limit(&next, expected)
            .await
            .map_err(error)?
        {
            return Ok(());
        }
        self.store
            .observe_rate_limit(resource, observation, now)
            .await
            .map(|_| ())
            .map_err(error)
    }

    /// Records that `resource` refuses calls until `until` (a 403/429 rate-limit answer).
    pub async fn block(&self, resource: &str, until: DateTime<Utc>) -> Result<(), JobError> {
        self.observe(
            resource,
            Observation {
                blocked_until: Some(until),
                ..Observation::default()
            },
        )
        .await
    }

    /// The stored remaining budget of `resource`, for progress metrics.
    pub async fn remaining(&self, resource: &str) -> Option<u64> {
        self.store
            .rate_limit(resource)
            .await
            .ok()
            .flatten()
            .and_then(|l| l.remaining)
    }

    /// A budget drover sets itself (a mail domain's pace, the daily cap): `limit` calls per
    /// window ending at `reset_at`. Declared before each take, so the window rolls on.
    pub async fn declare(
        &self,
        resource: &str,
        limit: u64,
        reset_at: DateTime<Utc>,
    ) -> Result<(), JobError> {
        let now = Utc::now();
        let stored = self
            .store
            .rate_limit(resource)
            .await
            .map_err(|e| JobError::Transient(format!("rate limit `{resource}`: {e}")))?;
        let current = stored
            .as_ref()
            .is_some_and(|l| l.limit == Some(limit) && l.reset_at.is_some_and(|r| r > now));
        if current {
            return Ok(());
        }
        self.observe(
            resource,
            Observation {
                limit: Some(limit),
                remaining: Some(limit),
                reset_at: Some(reset_at),
                blocked_until: None,
            },
        )
        .await
    }
}
