//! The OpenAPI document covers the router: every path the router serves is in the
//! document with exactly the methods it answers, and the document names no route the router
//! lacks. A route added without its `#[utoipa::path]` (and its entry in `ops::ApiDoc`)
//! fails here. The document's claims about each route are checked against a live server by
//! `scripts/test-schemathesis`.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::testing::Backend;
use drover_worker::Registry;
use serde_json::Value;
use tower::ServiceExt;

/// The paths the router holds, read from its `Debug` text (axum lists every route's path
/// there, nested routers' with their prefix); axum's own fallback paths are left out.
fn router_paths(app: &Router) -> BTreeSet<String> {
    let text = format!("{app:?}");
    let mut paths = BTreeSet::new();
    for piece in text.split("RouteId(").skip(1) {
        let Some((_, rest)) = piece.split_once("): \"") else {
            continue;
        };
        let Some((path, _)) = rest.split_once('"') else {
            continue;
        };
        if !path.contains("__private__") {
            paths.insert(path.to_string());
        }
    }
    paths
}

/// The methods the router answers on `path`: what its 405 to a `TRACE` lists in `Allow`
/// (`HEAD` left out: it comes with `GET`).
async fn routed_methods(app: &Router, path: &str) -> BTreeSet<String> {
    let concrete: String = path
        .split('/')
        .map(|segment| match segment {
            "{id}" => "01900000-0000-7000-8000-000000000000",
            s if s.starts_with('{') => "x",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/");
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .method(Method::TRACE)
                .uri(&concrete)
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(
        response.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "TRACE {concrete} (route {path})"
    );
    let allow = response
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    allow
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty() && m != "head")
        .collect()
}

fn documented(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let methods = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let ops = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
                .cloned()
                .collect();
            (path.clone(), ops)
        })
        .collect()
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_with_its_methods() {
    let backend = Backend::sqlite();
    let registry = Registry::with_test_kinds();
    let app = router(AppState::new(
        backend.open().await,
        registry.clone(),
        ApiConfig::default(),
    ));
    let doc = drover_api::openapi_document(&registry);
    let documented = documented(&doc);

    let paths = router_paths(&app);
    assert!(
        paths.contains("/v1/jobs") && paths.contains("/healthz"),
        "the router's paths were not read from its Debug text (axum changed it?): {paths:?}"
    );
    let mut routed = BTreeMap::new();
    for path in &paths {
        routed.insert(path.clone(), routed_methods(&app, path).await);
    }
    assert_eq!(
        routed, documented,
        "left: the router's routes and methods; right: the OpenAPI document's"
    );
}

#[test]
fn the_document_declares_the_layers_answers_constraints_and_links() {
    let doc = drover_api::openapi_document(&Registry::with_test_kinds());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = &op["responses"];
            assert!(responses["403"].is_object(), "{method} {path}: no 403");
            if path.starts_with("/v1/") {
                assert!(responses["401"].is_object(), "{method} {path}: no 401");
            } else {
                assert_eq!(
                    op["security"],
                    serde_json::json!([{}]),
                    "{method} {path} is open"
                );
            }
            if op.get("requestBody").is_some() {
                // `/v1` bodies are JSON; the unsubscribe form's (`/u/{token}`) is not parsed.
                let statuses: &[&str] = if path.starts_with("/v1/") {
                    &["400", "413", "415", "422"]
                } else {
                    &["413"]
                };
                for status in statuses {
                    assert!(
                        responses[status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
        }
    }
    let list = &doc["paths"]["/v1/jobs"]["get"]["parameters"];
    let limit = list
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 1000);

    let new_job = &doc["components"]["schemas"]["NewJob"];
    let kinds: BTreeSet<&str> = new_job["oneOf"]
        .as_array()
        .expect("one variant per kind")
        .iter()
        .map(|v| v["properties"]["kind"]["const"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, BTreeSet::from(["demo", "noop", "sleep"]));
    let batch = &doc["paths"]["/v1/jobs/batch"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    assert_eq!(batch["minItems"], 1);

    let links = &doc["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"];
    for link in ["GetJob", "PauseJob", "ResumeJob", "CancelJob"] {
        assert_eq!(
            links[link]["parameters"]["id"], "$response.body#/id",
            "{link}"
        );
    }

    // A schedule's id is its name, not a UUID; its view is typed.
    let id = &doc["paths"]["/v1/schedules/{id}"]["get"]["parameters"][0];
    assert_eq!(id["name"], "id");
    assert!(id["schema"]["pattern"].is_string(), "{id}");
    assert!(id["schema"].get("format").is_none(), "{id}");
    let schemas = &doc["components"]["schemas"];
    for name in ["ScheduleSpec", "ScheduleView", "ScheduleList", "Triggered"] {
        assert!(schemas[name].is_object(), "no schema {name}");
    }
    let trigger = &doc["paths"]["/v1/schedules/{id}/trigger"]["post"]["responses"];
    assert!(trigger["202"].is_object() && trigger["404"].is_object());

    // Suppressions page by address; the unsubscribe routes are open and take a token.
    let after = doc["paths"]["/v1/suppressions"]["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "after")
        .expect("after");
    assert_eq!(after["schema"]["type"], "string", "{after}");
    assert!(schemas["NewSuppression"]["properties"]["email"]["pattern"].is_string());
    for method in ["get", "post"] {
        let op = &doc["paths"]["/u/{token}"][method];
        assert!(op["responses"]["404"].is_object(), "{method} /u/{{token}}");
        assert!(
            op["responses"]["415"].is_null(),
            "{method} /u/{{token}}: not JSON"
        );
        assert!(op["parameters"][0]["schema"]["pattern"].is_string());
    }

    // A process without kinds says that every kind is refused.
    let empty = drover_api::openapi_document(&Registry::production());
    assert!(empty["components"]["schemas"]["NewJob"]["properties"]["kind"]["not"].is_object());
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(Body::from(body.unwrap_or("").to_string()))
                .expect("request"),
        )
        .await
        .expect("router answers");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// What schemathesis found where the document and the validation disagreed.
#[tokio::test]
async fn the_validation_matches_the_document_where_schemathesis_found_gaps() {
    let backend = Backend::sqlite();
    let app = router(AppState::new(
        backend.open().await,
        Registry::with_test_kinds(),
        ApiConfig::default(),
    ));
    // A NUL in a list filter: 400 naming it (PostgreSQL cannot even be asked).
    let (status, body) = call(&app, Method::GET, "/v1/jobs?kind=a%00b", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("kind:"),
        "{body}"
    );
    // serde reads a struct from an array of its fields; the API does not.
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(r#"{"kind": "noop", "goal": "g", "timeouts": [null, null]}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("timeouts:"),
        "{body}"
    );
    let (status, body) = call(&app, Method::POST, "/v1/jobs", Some(r#"["noop", "g"]"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // A whole number written `60.0` is the integer 60.
    let (status, body) = call(
        &app,
        Method::POST,
        "/v1/jobs",
        Some(r#"{"kind": "sleep", "goal": "g", "max_attempts": 2.0, "timeouts": {"step_timeout": 60.0}, "config": {"ms": 5.0}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["timeouts"]["step_timeout"], 60);
    assert_eq!(body["max_attempts"], 2);
    // `after` is checked even when Last-Event-ID wins over it.
    let id = body["id"].as_str().expect("id");
    let response = app
        .clone()
        .oneshot(
            Request::builder()
                .uri(format!("/v1/jobs/{id}/events?after=null"))
                .header("last-event-id", "0")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("router answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // An idempotency key's limit counts characters, as the document's maxLength does.
    let key = "é".repeat(255);
    let job = serde_json::json!({ "kind": "noop", "goal": "g", "idempotency_key": key });
    let (status, body) = call(&app, Method::POST, "/v1/jobs", Some(&job.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
