//! Shared rate limits (SPEC §7.1): what drover knows of each limited resource (a GitHub
//! token, an LLM key, a mail domain) and the two decisions every worker of a fleet makes on
//! it: may I call now ([`take`]), and what did the answer's headers say ([`observe`]).
//!
//! Both are pure functions of the stored state, written once here; the store keeps the state
//! with a compare-and-set on its `version` ([`crate::store::RateLimits`]), so N workers on one
//! token share one budget and never exceed it together.
//!
//! The budget drover lets itself use in a window is `floor(limit × share)`, `share` being
//! `limits.rate_limit_buffer` (0.8): the rest is left to whatever else uses the resource, and
//! to requests in flight that the upstream has counted and drover has not yet heard of.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How long a window is taken to last when the budget is spent and no reset time was ever
/// observed: past it the window rolls, so a resource never stays closed for want of a header.
pub const UNKNOWN_WINDOW: Duration = Duration::seconds(60);

/// What drover knows of one limited resource, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// The resource's name, say `github:<token digest>` or `mail:example.com`.
    pub resource: String,
    /// Requests allowed per window (`x-ratelimit-limit`); `None` while unknown.
    pub limit: Option<u64>,
    /// Requests left in the current window: the upstream's count, lowered by every permit
    /// drover hands out (a permit is a reservation); `None` while unknown.
    pub remaining: Option<u64>,
    /// When the current window ends and `remaining` is `limit` again; `None` until a
    /// response says (and again after the window rolled, until the next one says).
    pub reset_at: Option<DateTime<Utc>>,
    /// No call before this time, whatever the budget (a secondary limit's `retry-after`).
    pub blocked_until: Option<DateTime<Utc>>,
    /// Bumped by every write: the compare-and-set token.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

/// What one response said about a resource's limit (from its headers). Every field is
/// optional: a response says what it says.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    pub reset_at: Option<DateTime<Utc>>,
    pub blocked_until: Option<DateTime<Utc>>,
}

/// Whether a call may be made now.
#[derive(Debug, Clone, PartialEq)]
pub enum Permit {
    /// Call now. `remaining` is what the resource has left after this permit, as far as
    /// drover knows (`None` when unknown).
    Granted { remaining: Option<u64> },
    /// Do not call before `until`: the resource is blocked or drover's budget for the
    /// window is spent.
    Wait { until: DateTime<Utc> },
}

/// The requests drover may use of a window of `limit`: `floor(limit × share)`, `share`
/// clamped to 0..=1 (a share that is not a number counts as 0: use nothing rather than
/// everything). A limit below `1 / share` leaves no budget at all.
pub fn budget(limit: u64, share: f64) -> u64 {
    let share = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    // f64 holds every limit an upstream states exactly; the product is floored once.
    ((limit as f64) * share).floor() as u64
}

/// The state with its window rolled when `now` is at or past `reset_at`: `remaining` is
/// `limit` again and the reset time unknown until a response says.
fn rolled(state: &RateLimit, now: DateTime<Utc>) -> RateLimit {
    let mut state = state.clone();
    if state.reset_at.is_some_and(|reset| now >= reset) {
        state.remaining = state.limit;
        state.reset_at = None;
    }
    state
}

/// Decides one call on `resource` at `now`, `share` of each window being drover's.
///
/// - No state (nothing observed yet): granted; nothing to write.
/// - A window whose `reset_at` has passed rolls first: `remaining` = `limit`, `reset_at`
///   unknown.
/// - While `blocked_until` is ahead: wait until it (or until the reset, when the budget is
///   spent too and the reset is later).
/// - Granted when the limit is unknown (unless `remaining` is known to be 0), or when the
///   window's use so far, `limit − remaining`, is below [`budget`]; the permit lowers
///   `remaining` by one.
/// - Otherwise wait until `reset_at`; when no reset time is known, the window is taken to
///   end [`UNKNOWN_WINDOW`] from now, and that is written too.
///
/// Answers the state to write (`None` when nothing changed: write nothing) with the
/// version it will have once written, and the permit.
pub fn take(
    state: Option<&RateLimit>,
    resource: &str,
    now: DateTime<Utc>,
    share: f64,
) -> (Option<RateLimit>, Permit) {
    let Some(stored) = state else {
        return (None, Permit::Granted { remaining: None });
    };
    let mut next = rolled(stored, now);
    next.resource = resource.to_string();
    let blocked = next.blocked_until.filter(|b| *b > now);
    let spent = match (next.limit, next.remaining) {
        (None, remaining) => remaining == Some(0),
        (Some(limit), remaining) => {
            let used = limit.saturating_sub(remaining.unwrap_or(limit));
            used >= budget(limit, share)
        }
    };
    let permit = if blocked.is_none() && !spent {
        // With the limit known, an unknown remaining is a full window.
        next.remaining = next.remaining.or(next.limit).map(|r| r.saturating_sub(1));
        Permit::Granted {
            remaining: next.remaining,
        }
    } else {
        let reset = if spent {
            Some(*next.reset_at.get_or_insert(now + UNKNOWN_WINDOW))
        } else {
            None
        };
        let until = match (blocked, reset) {
            (Some(b), Some(r)) => b.max(r),
            (Some(b), None) => b,
            (None, Some(r)) => r,
            (None, None) => now,
        };
        Permit::Wait { until }
    };
    if next == *stored {
        return (None, permit);
    }
    next.version = stored.version + 1;
    next.updated_at = now;
    (Some(next), permit)
}

/// Folds what a response said into the state of `resource` (none: a new one, version 1
/// once written).
///
/// - A window whose `reset_at` has passed rolls first (as in [`take`]).
/// - An observed `reset_at` later than the stored one (or the first one) starts a new
///   window: its `remaining` replaces the stored one (or, unsaid, `limit`).
/// - The same window (same or no `reset_at` observed) keeps the lower of the stored and the
///   observed `remaining`: answers to concurrent calls arrive in any order, and the lowest
///   count is the latest.
/// - A `reset_at` earlier than the stored one comes from a window already over: only its
///   `limit` and `blocked_until` are taken.
/// - `blocked_until` only ever moves later.
pub fn observe(
    state: Option<&RateLimit>,
    resource: &str,
    obs: &Observation,
    now: DateTime<Utc>,
) -> RateLimit {
    let mut next = match state {
        Some(stored) => rolled(stored, now),
        None => RateLimit {
            resource: resource.to_string(),
            limit: None,
            remaining: None,
            reset_at: None,
            blocked_until: None,
            version: 0,
            updated_at: now,
        },
    };
    next.resource = resource.to_string();
    next.limit = obs.limit.or(next.limit);
    match (next.reset_at, obs.reset_at) {
        (stored, Some(observed)) if stored.is_none_or(|s| observed > s) => {
            next.reset_at = Some(observed);
            next.remaining = obs.remaining.or(next.limit);
        }
        (Some(stored), Some(observed)) if observed < stored => {}
        _ => {
            next.remaining = match (next.remaining, obs.remaining) {
                (Some(s), Some(o)) => Some(s.min(o)),
                (s, o) => s.or(o),
            };
        }
    }
    next.blocked_until = next.blocked_until.max(obs.blocked_until);
    next.version = state.map_or(1, |s| s.version + 1);
    next.updated_at = now;
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_800_000_000 + secs)
    }

    fn state(
        limit: Option<u64>,
        remaining: Option<u64>,
        reset: Option<i64>,
        blocked: Option<i64>,
    ) -> RateLimit {
        RateLimit {
            resource: "r".into(),
            limit,
            remaining,
            reset_at: reset.map(t),
            blocked_until: blocked.map(t),
            version: 7,
            updated_at: t(-100),
        }
    }

    #[test]
    fn budgets_floor_the_share_of_the_limit() {
        for (limit, share, expected) in [
            (5000, 0.8, 4000),
            (100, 0.8, 80),
            (10, 0.85, 8),
            (1, 0.8, 0),
            (0, 0.8, 0),
            (60, 1.0, 60),
            (60, 1.5, 60),
            (60, -1.0, 0),
            (60, f64::NAN, 0),
        ] {
            assert_eq!(budget(limit, share), expected, "{limit} × {share}");
        }
    }

    #[test]
    fn take_decides_from_the_stored_state() {
        use Permit::*;
        // (name, state, now, expected permit, expected remaining written (None: no write))
        type Case = (
            &'static str,
            Option<RateLimit>,
            i64,
            Permit,
            Option<Option<u64>>,
        );
        let cases: Vec<Case> = vec![
            (
                "unknown: granted, nothing written",
                None,
                0,
                Granted { remaining: None },
                None,
            ),
            (
                "limit unknown: granted",
                Some(state(None, None, None, None)),
                0,
                Granted { remaining: None },
                None,
            ),
            (
                "limit unknown, remaining known: granted and reserved",
                Some(state(None, Some(3), Some(60), None)),
                0,
                Granted { remaining: Some(2) },
                Some(Some(2)),
            ),
            (
                "limit unknown, none left: wait for the reset",
                Some(state(None, Some(0), Some(60), None)),
                0,
                Wait { until: t(60) },
                None,
            ),
            (
                "inside the budget: granted, reserved",
                Some(state(Some(100), Some(21), Some(60), None)),
                0,
                Granted {
                    remaining: Some(20),
                },
                Some(Some(20)),
            ),
            (
                "remaining unknown counts as full",
                Some(state(Some(100), None, Some(60), None)),
                0,
                Granted {
                    remaining: Some(99),
                },
                Some(Some(99)),
            ),
            (
                "budget spent (80 of 100 used): wait for the reset",
                Some(state(Some(100), Some(20), Some(60), None)),
                0,
                Wait { until: t(60) },
                None,
            ),
            (
                "the window rolled: the full budget again",
                Some(state(Some(100), Some(0), Some(60), None)),
                60,
                Granted {
                    remaining: Some(99),
                },
                Some(Some(99)),
            ),
            (
                "blocked: wait until it lifts",
                Some(state(Some(100), Some(90), Some(600), Some(30))),
                0,
                Wait { until: t(30) },
                None,
            ),
            (
                "blocked and spent: the later of the two",
                Some(state(Some(100), Some(10), Some(60), Some(30))),
                0,
                Wait { until: t(60) },
                None,
            ),
            (
                "a block in the past is no block",
                Some(state(Some(100), Some(90), Some(600), Some(30))),
                30,
                Granted {
                    remaining: Some(89),
                },
                Some(Some(89)),
            ),
            (
                "no budget at all: limit 1 × 0.8",
                Some(state(Some(1), Some(1), Some(60), None)),
                0,
                Wait { until: t(60) },
                None,
            ),
        ];
        for (name, stored, now, permit, written) in cases {
            let (next, got) = take(stored.as_ref(), "r", t(now), 0.8);
            assert_eq!(got, permit, "{name}");
            assert_eq!(next.as_ref().map(|n| n.remaining), written, "{name}");
            if let Some(next) = next {
                assert_eq!(next.version, 8, "{name}: the version it will have");
                assert_eq!(next.updated_at, t(now), "{name}");
            }
        }
    }

    #[test]
    fn a_spent_window_without_a_reset_time_ends_after_the_unknown_window() {
        let stored = state(Some(10), Some(0), None, None);
        let (next, permit) = take(Some(&stored), "r", t(0), 0.8);
        let until = t(0) + UNKNOWN_WINDOW;
        assert_eq!(permit, Permit::Wait { until });
        let next = next.expect("the assumed reset is written");
        assert_eq!(next.reset_at, Some(until));
        // Once it passes, the window rolls.
        let (_, permit) = take(Some(&next), "r", until, 0.8);
        assert_eq!(permit, Permit::Granted { remaining: Some(9) });
    }

    #[test]
    fn a_rolled_window_is_written_even_when_blocked() {
        let stored = state(Some(100), Some(0), Some(60), Some(120));
        let (next, permit) = take(Some(&stored), "r", t(60), 0.8);
        assert_eq!(permit, Permit::Wait { until: t(120) });
        let next = next.expect("the roll is written");
        assert_eq!((next.remaining, next.reset_at), (Some(100), None));
    }

    #[test]
    fn observe_folds_headers_into_the_state() {
        let obs = |limit, remaining, reset: Option<i64>, blocked: Option<i64>| Observation {
            limit,
            remaining,
            reset_at: reset.map(t),
            blocked_until: blocked.map(t),
        };
        // (name, stored, observation, now, expected (limit, remaining, reset, blocked))
        type Expected = (Option<u64>, Option<u64>, Option<i64>, Option<i64>);
        let cases: Vec<(&str, Option<RateLimit>, Observation, i64, Expected)> = vec![
            (
                "first observation",
                None,
                obs(Some(5000), Some(4999), Some(3600), None),
                0,
                (Some(5000), Some(4999), Some(3600), None),
            ),
            (
                "same window: the lower remaining wins (a late answer)",
                Some(state(Some(5000), Some(4990), Some(3600), None)),
                obs(Some(5000), Some(4995), Some(3600), None),
                0,
                (Some(5000), Some(4990), Some(3600), None),
            ),
            (
                "same window: a lower count is taken",
                Some(state(Some(5000), Some(4990), Some(3600), None)),
                obs(Some(5000), Some(4000), Some(3600), None),
                0,
                (Some(5000), Some(4000), Some(3600), None),
            ),
            (
                "a newer reset replaces the window",
                Some(state(Some(5000), Some(3), Some(3600), None)),
                obs(Some(5000), Some(4999), Some(7200), None),
                10,
                (Some(5000), Some(4999), Some(7200), None),
            ),
            (
                "a newer reset without remaining: the full limit",
                Some(state(Some(60), Some(3), Some(60), None)),
                obs(None, None, Some(120), None),
                10,
                (Some(60), Some(60), Some(120), None),
            ),
            (
                "an older reset is an answer from a window already over",
                Some(state(Some(5000), Some(4999), Some(7200), None)),
                obs(Some(5000), Some(2), Some(3600), None),
                10,
                (Some(5000), Some(4999), Some(7200), None),
            ),
            (
                "no reset observed: the same window",
                Some(state(Some(60), Some(30), Some(60), None)),
                obs(None, Some(20), None, None),
                10,
                (Some(60), Some(20), Some(60), None),
            ),
            (
                "a stored window past its reset rolls first",
                Some(state(Some(60), Some(0), Some(60), None)),
                obs(None, Some(50), None, None),
                61,
                (Some(60), Some(50), None, None),
            ),
            (
                "blocked_until moves later",
                Some(state(None, None, None, Some(30))),
                obs(None, None, None, Some(90)),
                0,
                (None, None, None, Some(90)),
            ),
            (
                "blocked_until never moves earlier",
                Some(state(None, None, None, Some(90))),
                obs(None, None, None, Some(30)),
                0,
                (None, None, None, Some(90)),
            ),
        ];
        for (name, stored, obs, now, (limit, remaining, reset, blocked)) in cases {
            let next = observe(stored.as_ref(), "r", &obs, t(now));
            assert_eq!(next.limit, limit, "{name}: limit");
            assert_eq!(next.remaining, remaining, "{name}: remaining");
            assert_eq!(next.reset_at, reset.map(t), "{name}: reset_at");
            assert_eq!(next.blocked_until, blocked.map(t), "{name}: blocked_until");
            assert_eq!(next.version, stored.map_or(1, |s| s.version + 1), "{name}");
            assert_eq!(next.updated_at, t(now), "{name}");
        }
    }
}
