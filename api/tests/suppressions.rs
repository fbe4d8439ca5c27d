//! `/v1/suppressions` and the open unsubscribe routes in-process (tower `oneshot`), on
//! every backend: paging, normalisation at the edge, each 4xx naming the field, the token
//! on `/v1` but not on `/u`, and the unsubscribe round trip (link → page → one-click POST →
//! suppressed), cross-site and form-encoded as a mail provider sends it.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::secret::SecretKey;
use drover_queue::suppress::unsubscribe_token;
use drover_queue::testing::Backend;
use drover_queue::{Store, SuppressionReason};
use drover_worker::Registry;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";
const KEY: [u8; 32] = [42; 32];

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn names_field(&self, field: &str) {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.text
        );
        let message = self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.starts_with(&format!("{field}:")),
            "should name {field}: {message}"
        );
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    Reply {
        status,
        content_type,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A `/v1` call with the token (and a JSON body when given).
async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    send(app, request.body(body).expect("request")).await
}

async fn app(store: std::sync::Arc<dyn Store>, key: Option<[u8; 32]>) -> Router {
    router(AppState::new(
        store,
        Registry::with_test_kinds(),
        ApiConfig {
            token: Some(TOKEN.into()),
            secret_key: key.map(SecretKey::new),
            ..ApiConfig::default()
        },
    ))
}

async fn suppressions_are_managed_through_the_api(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY)).await;

    let anonymous = Request::get("/v1/suppressions")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, anonymous).await.status, StatusCode::UNAUTHORIZED);

    let created = call(
        &app,
        Method::POST,
        "/v1/suppressions",
        Some(json!({"email": "  Ann@Example.COM "})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let entry = created.json();
    assert_eq!(entry["email"], "ann@example.com", "normalised at the edge");
    assert_eq!(entry["reason"], "manual", "the default reason");
    assert_eq!(entry["note"], Value::Null);

    let again = call(
        &app,
        Method::POST,
        "/v1/suppressions",
        Some(json!({"email": "ann@example.com", "reason": "bounced", "note": "later"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json(), entry, "the first entry is kept");

    for (body, field) in [
        (json!({"email": "not an address"}), "email"),
        (json!({"email": "a@b@c"}), "email"),
        (json!({"email": "ann\u{0}@example.com"}), "email"),
        (json!({"email": "a@b.c", "reason": "bored"}), "reason"),
        (
            json!({"email": "a@b.c", "note": "x".repeat(10_001)}),
            "note",
        ),
        (json!({"email": "a@b.c", "note": "a\u{0}b"}), "note"),
        (json!({"email": "a@b.c", "colour": "red"}), "colour"),
        (json!({"reason": "manual"}), "body"),
    ] {
        call(&app, Method::POST, "/v1/suppressions", Some(body))
            .await
            .names_field(field);
    }
    let form = Request::post("/v1/suppressions")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("email=a@b.c"))
        .expect("request");
    assert_eq!(
        send(&app, form).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    for (email, reason) in [
        ("dee@example.com", "unsubscribed"),
        ("bob@example.com", "bounced"),
        ("cat@example.com", "complained"),
    ] {
        let reply = call(
            &app,
            Method::POST,
            "/v1/suppressions",
            Some(json!({"email": email, "reason": reason, "note": "from the test"})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        assert_eq!(reply.json()["reason"], reason);
    }
    let first = call(&app, Method::GET, "/v1/suppressions?limit=2", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first = first.json();
    let emails = |page: &Value| -> Vec<String> {
        page["suppressions"]
            .as_array()
            .expect("suppressions")
            .iter()
            .map(|s| s["email"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(emails(&first), ["ann@example.com", "bob@example.com"]);
    assert_eq!(first["next_after"], "bob@example.com");
    let second = call(
        &app,
        Method::GET,
        "/v1/suppressions?limit=2&after=bob%40example.com",
        None,
    )
    .await
    .json();
    assert_eq!(emails(&second), ["cat@example.com", "dee@example.com"]);
    assert_eq!(second["next_after"], Value::Null, "the last page");
    for bad in ["/v1/suppressions?limit=0", "/v1/suppressions?cursor=x"] {
        assert_eq!(
            call(&app, Method::GET, bad, None).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }

    let lifted = call(
        &app,
        Method::DELETE,
        "/v1/suppressions/ANN@example.com",
        None,
    )
    .await;
    assert_eq!(lifted.status, StatusCode::NO_CONTENT, "{}", lifted.text);
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            "/v1/suppressions/ann@example.com",
            None
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, Method::DELETE, "/v1/suppressions/nobody", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert!(store
        .suppressed(&["ann@example.com".to_string()])
        .await
        .expect("lookup")
        .is_empty());
    drop(app);
    backend.cleanup().await;
}

/// What a mail provider sends for RFC 8058 one-click: a cross-site, form-encoded POST.
fn one_click(path: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "cross-site")
        .header(header::ORIGIN, "https://mail.provider.example")
        .body(Body::from("List-Unsubscribe=One-Click"))
        .expect("request")
}

fn open_get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

async fn an_unsubscribe_link_suppresses_its_address(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY)).await;
    let email = "<b>ann</b>@example.com";
    let path = format!("/u/{}", unsubscribe_token(&KEY, email));

    // The link's page names the address (escaped) and asks; it changes nothing.
    let page = send(&app, open_get(&path)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(
        page.text.contains("&lt;b&gt;ann&lt;/b&gt;@example.com") && !page.text.contains("<b>ann"),
        "the address is escaped: {}",
        page.text
    );
    assert!(
        page.text.contains("<form method=\"post\">"),
        "{}",
        page.text
    );
    assert!(store
        .suppressed(&[email.to_string()])
        .await
        .expect("lookup")
        .is_empty());

    // One-click: cross-site, form-encoded, no bearer token.
    let done = send(&app, one_click(&path)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("You are unsubscribed"), "{}", done.text);
    let kept = store
        .suppressed(&[email.to_string()])
        .await
        .expect("lookup");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].reason, SuppressionReason::Unsubscribed);
    // Again: still 200, the entry unchanged; the page now says so.
    assert_eq!(send(&app, one_click(&path)).await.status, StatusCode::OK);
    assert_eq!(
        store
            .suppressed(&[email.to_string()])
            .await
            .expect("lookup"),
        kept
    );
    let page = send(&app, open_get(&path)).await;
    assert!(page.text.contains("You are unsubscribed"), "{}", page.text);

    // Tokens that do not verify get the 404 of an unknown route, saying nothing of why.
    let unknown = send(&app, open_get("/no/such/route")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let forged = unsubscribe_token(&[7; 32], "bob@example.com");
    let (_, mac) = unsubscribe_token(&KEY, email)
        .split_once('.')
        .map(|(e, m)| (e.to_string(), m.to_string()))
        .expect("two parts");
    let swapped = format!("{}.{mac}", forged.split('.').next().expect("address part"));
    for token in [
        forged.as_str(),
        swapped.as_str(),
        "x",
        "a.b",
        &"A".repeat(600),
    ] {
        for request in [
            open_get(&format!("/u/{token}")),
            one_click(&format!("/u/{token}")),
        ] {
            let reply = send(&app, request).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{token}");
            assert_eq!(
                reply.text, unknown.text,
                "{token}: the same answer as no route"
            );
        }
    }
    assert!(store
        .suppressed(&["bob@example.com".to_string()])
        .await
        .expect("lookup")
        .is_empty());

    // Without a secrets key, no token is valid.
    let keyless = self::app(store.clone(), None).await;
    let other = format!("/u/{}", unsubscribe_token(&KEY, "cat@example.com"));
    for request in [open_get(&other), one_click(&other)] {
        let reply = send(&keyless, request).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.text, unknown.text);
    }
    // A cross-site POST elsewhere is still refused.
    let mut elsewhere = one_click("/v1/suppressions");
    elsewhere.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    assert_eq!(send(&app, elsewhere).await.status, StatusCode::FORBIDDEN);
    drop((app, keyless));
    backend.cleanup().await;
}

#[tokio::test]
async fn sqlite_suppressions_are_managed_through_the_api() {
    suppressions_are_managed_through_the_api(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_suppressions_are_managed_through_the_api() {
    suppressions_are_managed_through_the_api(Backend::postgres()).await;
}

#[tokio::test]
async fn redis_suppressions_are_managed_through_the_api() {
    suppressions_are_managed_through_the_api(Backend::redis()).await;
}

#[tokio::test]
async fn sqlite_an_unsubscribe_link_suppresses_its_address() {
    an_unsubscribe_link_suppresses_its_address(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_an_unsubscribe_link_suppresses_its_address() {
    an_unsubscribe_link_suppresses_its_address(Backend::postgres()).await;
}

#[tokio::test]
async fn redis_an_unsubscribe_link_suppresses_its_address() {
    an_unsubscribe_link_suppresses_its_address(Backend::redis()).await;
}
