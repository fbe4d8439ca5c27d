//! `/v1/schedules` in-process (tower `oneshot`), on every backend: the shape the issue
//! gives, next and last runs, the controls, and each 4xx naming the field.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::testing::Backend;
use drover_worker::Registry;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    let response = app
        .clone()
        .oneshot(request.body(body).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn names_field(reply: &(StatusCode, Value), field: &str) {
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);
    let message = reply.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("{field}:")),
        "should name {field}: {message}"
    );
}

async fn schedules_are_managed_at_run_time(backend: Backend) {
    let store = backend.open().await;
    let app = router(AppState::new(
        store.clone(),
        Registry::with_test_kinds(),
        ApiConfig::default(),
    ));
    let nightly = json!({
        "id": "nightly", "cron": "0 20 * * *", "timezone": "Asia/Kolkata",
        "job": {"kind": "demo", "goal": "nightly run", "config": {"items": 1}, "priority": "low", "queue": "default"},
        "overlap": "buffer_one", "catchup_window": "2h",
        "spread": {"window": "600m", "key": "user-42"}, "paused": false
    });
    let (status, created) = call(&app, Method::POST, "/v1/schedules", Some(nightly.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["cron"], "0 20 * * *");
    assert_eq!(created["job"]["priority"], "low");
    let next = created["next_runs"].as_array().expect("next_runs");
    assert_eq!(next.len(), 10);
    // Each start is 20:00 IST (14:30 UTC) plus a spread of under 600 minutes.
    for start in next {
        let t =
            chrono::DateTime::parse_from_rfc3339(start.as_str().expect("text")).expect("rfc3339");
        let minutes =
            (t.timestamp() - (t.timestamp() - 52_200).div_euclid(86_400) * 86_400 - 52_200) / 60;
        assert!(
            (0..600).contains(&minutes),
            "{start} is {minutes} minutes after a tick"
        );
    }
    assert_eq!(created["last_runs"], json!([]));
    assert_eq!(
        call(&app, Method::POST, "/v1/schedules", Some(nightly))
            .await
            .0,
        StatusCode::CONFLICT
    );

    // Bad cron, zone and template name their field.
    let bad = |patch: Value| {
        let mut body =
            json!({"id": "bad", "cron": "* * * * *", "job": {"kind": "demo", "goal": "g"}});
        for (k, v) in patch.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (patch, field) in [
        (json!({"cron": "99 * * * *"}), "cron"),
        (json!({"timezone": "Europe/Atlantis"}), "timezone"),
        (
            json!({"job": {"kind": "no-such-kind", "goal": "g"}}),
            "job.kind",
        ),
        (
            json!({"job": {"kind": "demo", "goal": "g", "priority": "urgent"}}),
            "job.priority",
        ),
        (json!({"overlap": "sometimes"}), "overlap"),
        (json!({"colour": "red"}), "colour"),
    ] {
        names_field(
            &call(&app, Method::POST, "/v1/schedules", Some(bad(patch))).await,
            field,
        );
    }

    // Trigger: one run now, shown in last_runs with its job's status.
    let (status, fired) = call(&app, Method::POST, "/v1/schedules/nightly/trigger", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{fired}");
    let job_id = fired["fired"][0]["job_id"].clone();
    let (_, shown) = call(&app, Method::GET, "/v1/schedules/nightly", None).await;
    assert_eq!(shown["last_runs"][0]["job_id"], job_id);
    assert_eq!(shown["last_runs"][0]["status"], "queued");
    assert_eq!(shown["runs"], 1);

    // Pause hides the next runs; resume brings them back.
    let (_, paused) = call(&app, Method::POST, "/v1/schedules/nightly/pause", None).await;
    assert_eq!(
        (paused["paused"].clone(), paused["next_runs"].clone()),
        (json!(true), json!([]))
    );
    let (_, resumed) = call(&app, Method::POST, "/v1/schedules/nightly/resume", None).await;
    assert_eq!(resumed["next_runs"].as_array().map(Vec::len), Some(10));

    // PUT replaces the declaration; the path's id wins over none, a different one is a 422.
    let every = json!({"every": "30s", "job": {"kind": "demo", "goal": "g"}});
    let (status, replaced) = call(&app, Method::PUT, "/v1/schedules/nightly", Some(every)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(
        (replaced["every"].clone(), replaced["runs"].clone()),
        (json!("30s"), json!(1))
    );
    let other = json!({"id": "other", "every": "30s", "job": {"kind": "demo", "goal": "g"}});
    names_field(
        &call(&app, Method::PUT, "/v1/schedules/nightly", Some(other)).await,
        "id",
    );

    let (_, list) = call(&app, Method::GET, "/v1/schedules", None).await;
    assert_eq!(list["schedules"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        call(&app, Method::DELETE, "/v1/schedules/nightly", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for (method, uri) in [
        (Method::GET, "/v1/schedules/nightly"),
        (Method::DELETE, "/v1/schedules/nightly"),
        (Method::POST, "/v1/schedules/nightly/pause"),
        (Method::POST, "/v1/schedules/nightly/trigger"),
    ] {
        assert_eq!(
            call(&app, method, uri, None).await.0,
            StatusCode::NOT_FOUND,
            "{uri}"
        );
    }

    // Behind a token, like every /v1 route.
    let locked = router(AppState::new(
        store,
        Registry::with_test_kinds(),
        ApiConfig {
            token: Some("s3cret".into()),
            ..ApiConfig::default()
        },
    ));
    assert_eq!(
        call(&locked, Method::GET, "/v1/schedules", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    backend.cleanup().await;
}

#[tokio::test]
async fn sqlite_schedules_are_managed_at_run_time() {
    schedules_are_managed_at_run_time(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_schedules_are_managed_at_run_time() {
    schedules_are_managed_at_run_time(Backend::postgres()).await;
}

#[tokio::test]
async fn redis_schedules_are_managed_at_run_time() {
    schedules_are_managed_at_run_time(Backend::redis()).await;
}
