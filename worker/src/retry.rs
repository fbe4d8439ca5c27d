//! Backoff: for failed jobs (exponential with jitter, per attempt) and for store calls that
//! hit an outage (retried until the store answers; an outage never kills a worker).

use std::future::Future;
use std::time::Duration;

use drover_queue::StoreError;

/// The delay before retry number `attempt` (1-based): `base * 2^(attempt-1)`, capped at
/// `max`, with "equal jitter" (half fixed, half random) so that jobs failing together do
/// not retry together.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u32 << exp.min(31)).min(max);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// The longest pause between two tries of a store call during an outage.
const MAX_OUTAGE_BACKOFF: Duration = Duration::from_secs(5);

/// Runs `call` until it succeeds, fails for a reason retrying cannot fix, or `give_up`
/// says to stop. Transient errors (connection lost, database restarting, busy) are logged
/// and retried with exponential backoff from 50 ms up to 5 s.
pub async fn store_call<T, F, Fut>(
    what: &str,
    mut call: F,
    give_up: impl Fn() -> bool,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(50);
    loop {
        match call().await {
            Err(err) if err.is_transient() && !give_up() => {
                tracing::warn!(error = %err, retry_in = ?backoff, "{what}: store unavailable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_OUTAGE_BACKOFF);
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let base = Duration::from_secs(1);
        let max = Duration::from_secs(60);
        for attempt in 1..=10u32 {
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = retry_delay(attempt, base, max);
                assert!(
                    d >= full / 2 && d <= full,
                    "attempt {attempt}: {d:?} vs {full:?}"
                );
            }
        }
        assert!(retry_delay(1000, base, max) <= max);
    }

    #[test]
    fn jitter_spreads_retries() {
        let delays: std::collections::HashSet<_> = (0..20)
            .map(|_| retry_delay(3, Duration::from_secs(1), Duration::from_secs(60)))
            .collect();
        assert!(delays.len() > 10);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_and_others_are_not() {
        let mut calls = 0;
        let result = store_call(
            "test",
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(StoreError::Unavailable("down".into()))
                    } else {
                        Ok(n)
                    }
                }
            },
            || false,
        )
        .await;
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let result: Result<(), _> = store_call(
            "test",
            || {
                calls += 1;
                async { Err(StoreError::Backend("syntax".into())) }
            },
            || false,
        )
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);

        let result: Result<(), _> = store_call(
            "test",
            || async { Err(StoreError::Unavailable("down".into())) },
            || true,
        )
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
    }
}
