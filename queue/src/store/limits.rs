//! Shared rate limits as data: two primitives every backend implements (a read, and a write
//! that is a compare-and-set on the row's `version`), and the two operations workers use,
//! written once over them and the pure decisions of [`crate::limits`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreError, StoreResult};
use crate::limits::{self, Observation, Permit, RateLimit};

/// Compare-and-set rounds before a take or an observation gives up as unavailable.
const CAS_TRIES: u32 = 200;

/// A short random pause after a lost compare-and-set, growing with the losses (at most
/// 16 ms), so that racing writers spread out instead of colliding again.
async fn back_off(lost: u32) {
    let cap = 1u64 << lost.min(4);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=cap * 1000))).await;
}

/// Where the fleet's rate limits are kept: one row (or key) per resource.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - `put_rate_limit` writes only when the stored version is `expected` (`None`: no row
///   yet), and the stored version becomes `expected + 1` (or 1), so of two writers that
///   read the same version exactly one wins;
/// - hence [`RateLimits::take_permit`], however many workers call it at once on one
///   resource, grants at most `floor(limit × share)` permits per window (see
///   [`limits::take`]): each grant is a reservation written before the call is made;
/// - [`RateLimits::observe_rate_limit`] folds a response's headers in (see
///   [`limits::observe`]): a later reset starts a new window, the same window keeps the
///   lowest `remaining`, `blocked_until` only moves later;
/// - resources are independent of one another.
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// The stored state of `resource`, if any was ever observed.
    async fn rate_limit(&self, resource: &str) -> StoreResult<Option<RateLimit>>;

    /// Writes `limit` (its `resource`) when the stored version is `expected` (`None`: no
    /// row yet); the stored version becomes `expected + 1` (or 1), whatever
    /// `limit.version` says. `false` when another write came first.
    async fn put_rate_limit(&self, limit: &RateLimit, expected: Option<i64>) -> StoreResult<bool>;

    /// Every stored resource, by name.
    async fn rate_limits(&self) -> StoreResult<Vec<RateLimit>>;

    /// Whether a call on `resource` may be made at `now`, `share` of each window being
    /// drover's (`limits.rate_limit_buffer`); a grant is reserved in the store before it
    /// is answered. A resource never observed is granted.
    async fn take_permit(
        &self,
        resource: &str,
        now: DateTime<Utc>,
        share: f64,
    ) -> StoreResult<Permit> {
        for lost in 0..CAS_TRIES {
            let stored = self.rate_limit(resource).await?;
            let (next, permit) = limits::take(stored.as_ref(), resource, now, share);
            let Some(next) = next else {
                return Ok(permit);
            };
            if self
                .put_rate_limit(&next, stored.as_ref().map(|s| s.version))
                .await?
            {
                return Ok(permit);
            }
            back_off(lost).await;
        }
        Err(contended(resource))
    }

    /// Folds what a response on `resource` said into its stored state; answers the state
    /// written.
    async fn observe_rate_limit(
        &self,
        resource: &str,
        obs: Observation,
        now: DateTime<Utc>,
    ) -> StoreResult<RateLimit> {
        for lost in 0..CAS_TRIES {
            let stored = self.rate_limit(resource).await?;
            let next = limits::observe(stored.as_ref(), resource, &obs, now);
            if self
                .put_rate_limit(&next, stored.as_ref().map(|s| s.version))
                .await?
            {
                return Ok(next);
            }
            back_off(lost).await;
        }
        Err(contended(resource))
    }
}

fn contended(resource: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "rate limit `{resource}`: too many concurrent writes"
    ))
}

/// A count as stored: counts beyond `i64` (never seen upstream) saturate.
pub(crate) fn count_to_db(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// A stored count back; a negative one (never written) reads as 0.
pub(crate) fn count_from_db(n: Option<i64>) -> Option<u64> {
    n.map(|n| u64::try_from(n).unwrap_or(0))
}
