//! Shared rate limits: compare-and-set writes, one budget per window however many workers
//! take at once, waits until the reset or the block, observations folded in any order, and
//! resources independent of one another.

use chrono::{DateTime, Duration, Utc};
use drover_queue::limits::{Observation, Permit, RateLimit};
use drover_queue::testing::Backend;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn window(limit: u64, remaining: u64, reset: DateTime<Utc>) -> Observation {
    Observation {
        limit: Some(limit),
        remaining: Some(remaining),
        reset_at: Some(reset),
        blocked_until: None,
    }
}

pub async fn rate_limits_are_written_by_compare_and_set(b: &Backend) {
    let store = b.open().await;
    assert_eq!(store.rate_limit("github:a").await.expect("read"), None);
    let mut limit = RateLimit {
        resource: "github:a".into(),
        limit: Some(5000),
        remaining: Some(4999),
        reset_at: Some(t0() + Duration::hours(1)),
        blocked_until: None,
        version: 1,
        updated_at: t0(),
    };
    assert!(store.put_rate_limit(&limit, None).await.expect("insert"));
    assert!(
        !store.put_rate_limit(&limit, None).await.expect("insert"),
        "a second insert finds the row"
    );
    assert_eq!(
        store.rate_limit("github:a").await.expect("read"),
        Some(limit.clone())
    );

    limit.remaining = None;
    limit.reset_at = None;
    limit.blocked_until = Some(t0() + Duration::seconds(30));
    limit.updated_at = t0() + Duration::seconds(1);
    assert!(store
        .put_rate_limit(&limit, Some(1))
        .await
        .expect("replace"));
    assert!(
        !store
            .put_rate_limit(&limit, Some(1))
            .await
            .expect("replace"),
        "the version moved on: the same expected version loses"
    );
    assert!(
        !store.put_rate_limit(&limit, None).await.expect("insert"),
        "no insert over a stored row"
    );
    let stored = store
        .rate_limit("github:a")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.version, 2, "the store bumps the version");
    assert_eq!(
        (stored.remaining, stored.reset_at, stored.blocked_until),
        (None, None, limit.blocked_until),
        "unknown fields are stored as unknown"
    );
    assert_eq!(stored.updated_at, limit.updated_at);

    let other = RateLimit {
        resource: "apply:b".into(),
        version: 1,
        ..limit.clone()
    };
    assert!(!store
        .put_rate_limit(&other, Some(1))
        .await
        .expect("replace"));
    assert!(store.put_rate_limit(&other, None).await.expect("insert"));
    let all: Vec<String> = store
        .rate_limits()
        .await
        .expect("list")
        .into_iter()
        .map(|l| l.resource)
        .collect();
    assert_eq!(all, ["apply:b", "github:a"], "by resource");
}

/// Grants of `tasks` stores (separate pools, as separate processes) taking `each` permits
/// at once at `now`; answers the grants and the waits.
async fn take_concurrently(
    b: &Backend,
    resource: &str,
    now: DateTime<Utc>,
    tasks: usize,
    each: usize,
) -> (usize, Vec<DateTime<Utc>>) {
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let store = b.open().await;
        let resource = resource.to_string();
        handles.push(tokio::spawn(async move {
            let mut permits = Vec::new();
            for _ in 0..each {
                permits.push(store.take_permit(&resource, now, 0.8).await.expect("take"));
            }
            permits
        }));
    }
    let mut granted = 0;
    let mut waits = Vec::new();
    for handle in handles {
        for permit in handle.await.expect("join") {
            match permit {
                Permit::Granted { .. } => granted += 1,
                Permit::Wait { until } => waits.push(until),
            }
        }
    }
    (granted, waits)
}

pub async fn concurrent_takers_share_one_budget_per_window(b: &Backend) {
    let store = b.open().await;
    let reset = t0() + Duration::hours(1);
    store
        .observe_rate_limit("github:shared", window(100, 100, reset), t0())
        .await
        .expect("observe");
    // 3 takers × 40 = 120 asks against a budget of floor(100 × 0.8) = 80.
    let (granted, waits) = take_concurrently(b, "github:shared", t0(), 3, 40).await;
    assert_eq!(granted, 80, "exactly the budget is granted, never more");
    assert_eq!(waits.len(), 40);
    assert!(waits.iter().all(|until| *until == reset), "{waits:?}");
    let stored = store
        .rate_limit("github:shared")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored.remaining, Some(20), "every grant was reserved");

    // The window rolls at its reset: a full budget again, and no more.
    let (granted, waits) = take_concurrently(b, "github:shared", reset, 3, 40).await;
    assert_eq!(granted, 80, "the next window's budget");
    assert!(
        waits.iter().all(|until| *until > reset),
        "the spent window waits for a reset after it: {waits:?}"
    );
}

pub async fn a_spent_budget_waits_until_the_reset(b: &Backend) {
    let store = b.open().await;
    let reset = t0() + Duration::minutes(1);
    store
        .observe_rate_limit("llm:key", window(10, 2, reset), t0())
        .await
        .expect("observe");
    // Budget 8 of 10; 8 already used upstream (2 remaining): nothing left.
    assert_eq!(
        store.take_permit("llm:key", t0(), 0.8).await.expect("take"),
        Permit::Wait { until: reset }
    );
    // With the whole limit as the share, the last 2.
    for left in [1, 0] {
        assert_eq!(
            store.take_permit("llm:key", t0(), 1.0).await.expect("take"),
            Permit::Granted {
                remaining: Some(left)
            }
        );
    }
    assert_eq!(
        store.take_permit("llm:key", t0(), 1.0).await.expect("take"),
        Permit::Wait { until: reset }
    );
    // At the reset the window rolls.
    assert_eq!(
        store
            .take_permit("llm:key", reset, 0.8)
            .await
            .expect("take"),
        Permit::Granted { remaining: Some(9) }
    );
    // A resource never observed is granted.
    assert_eq!(
        store
            .take_permit("llm:unknown", t0(), 0.8)
            .await
            .expect("take"),
        Permit::Granted { remaining: None }
    );
}

pub async fn observations_fold_in_any_order(b: &Backend) {
    let store = b.open().await;
    let r1 = t0() + Duration::hours(1);
    let r2 = t0() + Duration::hours(2);
    let at = |s: i64| t0() + Duration::seconds(s);
    let observe = |obs: Observation, now: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .observe_rate_limit("github:o", obs, now)
                .await
                .expect("observe")
        }
    };
    let first = observe(window(5000, 4990, r1), at(1)).await;
    assert_eq!(first.version, 1);
    // A late answer from earlier in the same window does not raise the count.
    let late = observe(window(5000, 4995, r1), at(2)).await;
    assert_eq!(late.remaining, Some(4990));
    assert_eq!(late.version, 2);
    assert_eq!(
        observe(window(5000, 4980, r1), at(3)).await.remaining,
        Some(4980)
    );
    // A newer reset is a new window.
    let next = observe(window(5000, 4999, r2), at(4)).await;
    assert_eq!((next.remaining, next.reset_at), (Some(4999), Some(r2)));
    // An answer from the window before changes nothing of the count.
    let stale = observe(window(5000, 10, r1), at(5)).await;
    assert_eq!((stale.remaining, stale.reset_at), (Some(4999), Some(r2)));
    let stored = store
        .rate_limit("github:o")
        .await
        .expect("read")
        .expect("row");
    assert_eq!(stored, stale, "what observe answers is what is stored");

    // blocked_until only moves later, and holds every taker until it passes.
    let block = |until| Observation {
        blocked_until: Some(until),
        ..Default::default()
    };
    observe(block(at(60)), at(6)).await;
    let earlier = observe(block(at(30)), at(7)).await;
    assert_eq!(earlier.blocked_until, Some(at(60)));
    assert_eq!(
        store
            .take_permit("github:o", at(8), 0.8)
            .await
            .expect("take"),
        Permit::Wait { until: at(60) }
    );
    assert_eq!(
        store
            .take_permit("github:o", at(60), 0.8)
            .await
            .expect("take"),
        Permit::Granted {
            remaining: Some(4998)
        }
    );
}

pub async fn rate_limits_of_resources_are_independent(b: &Backend) {
    let store = b.open().await;
    let reset = t0() + Duration::hours(1);
    for resource in ["mail:a.example", "mail:b.example"] {
        store
            .observe_rate_limit(resource, window(5, 5, reset), t0())
            .await
            .expect("observe");
    }
    for _ in 0..4 {
        assert!(matches!(
            store
                .take_permit("mail:a.example", t0(), 0.8)
                .await
                .expect("take"),
            Permit::Granted { .. }
        ));
    }
    assert_eq!(
        store
            .take_permit("mail:a.example", t0(), 0.8)
            .await
            .expect("take"),
        Permit::Wait { until: reset }
    );
    assert_eq!(
        store
            .take_permit("mail:b.example", t0(), 0.8)
            .await
            .expect("take"),
        Permit::Granted { remaining: Some(4) },
        "another resource keeps its own budget"
    );
    let remaining: Vec<(String, Option<u64>)> = store
        .rate_limits()
        .await
        .expect("list")
        .into_iter()
        .map(|l| (l.resource, l.remaining))
        .collect();
    assert_eq!(
        remaining,
        [
            ("mail:a.example".to_string(), Some(1)),
            ("mail:b.example".to_string(), Some(4))
        ]
    );
}
