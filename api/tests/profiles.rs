//! `/v1/profiles` in-process (tower `oneshot`), on every backend: a profile put, shown,
//! replaced and deleted; each 4xx naming its field; the résumé's checks (PDF, 5 MiB,
//! content type); sessions sealed with the `secrets` key (409 without one), listed by site
//! and time and never answered; the applications ledger with its counts; and no cookie
//! value in any answer or log line.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use drover_api::{router, ApiConfig, AppState};
use drover_queue::seal::Keyring;
use drover_queue::secret::SecretKey;
use drover_queue::testing::Backend;
use drover_queue::{Caps, Claim, JobId, Outcome, Store};
use drover_worker::Registry;
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "s3cret";
const KEY: [u8; 32] = [42; 32];
const COOKIE_VALUE: &str = "c00kie-VALUE-never-shown-71e2";

struct Reply {
    status: StatusCode,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn error(&self, status: StatusCode, starts: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        let message = self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.starts_with(starts),
            "should start {starts:?}: {message}"
        );
    }

    fn names_field(&self, field: &str) {
        self.error(StatusCode::UNPROCESSABLE_ENTITY, &format!("{field}:"));
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    Reply {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Reply {
    let mut r = request(method, uri);
    if body.is_some() {
        r = r.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body
        .map(|b| Body::from(b.to_string()))
        .unwrap_or_else(Body::empty);
    send(app, r.body(body).expect("request")).await
}

async fn upload(app: &Router, uri: &str, content_type: &str, data: Vec<u8>) -> Reply {
    let r = request(Method::PUT, uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(data))
        .expect("request");
    send(app, r).await
}

fn app(store: Arc<dyn Store>, key: Option<[u8; 32]>) -> Router {
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

fn ann() -> Value {
    json!({
        "name": "Ann Lee",
        "email": " Ann@Example.COM ",
        "phone": "+91 98765 43210",
        "location": "Bengaluru",
        "links": {"LinkedIn": "https://www.linkedin.com/in/ann", "GitHub": "https://github.com/ann"},
        "titles": ["Backend Engineer", "Platform Engineer"],
        "exclude_titles": ["Manager"],
        "companies": ["Acme"],
        "avoid_companies": ["Initech"],
        "locations": ["Bengaluru", "Remote"],
        "remote_ok": true,
        "job_types": ["fulltime"],
        "min_salary": 3000000,
        "experience_years": 6,
        "answers": {"Notice period?": "30 days"},
        "caps": {"daily": 2, "monthly": 40},
        "nightly": true,
        "sources": [{"type": "greenhouse", "board": "acme"}, {"type": "lever", "board": "initech"}],
    })
}

async fn profiles_are_put_shown_and_deleted(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY));
    let anonymous = Request::get("/v1/profiles/ann")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&app, anonymous).await.status, StatusCode::UNAUTHORIZED);
    call(&app, Method::GET, "/v1/profiles/ann", None)
        .await
        .error(StatusCode::NOT_FOUND, "no profile");

    let created = call(&app, Method::PUT, "/v1/profiles/ann", Some(ann())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let view = created.json();
    assert_eq!(view["user_id"], "ann");
    assert_eq!(view["profile"]["email"], "ann@example.com", "normalised");
    assert_eq!(view["profile"]["caps"], json!({"daily": 2, "monthly": 40}));
    assert_eq!(view["resume"], Value::Null);
    assert_eq!(view["sessions"], json!([]));
    let mut changed = ann();
    changed["name"] = json!("Ann L.");
    let replaced = call(&app, Method::PUT, "/v1/profiles/ann", Some(changed)).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json()["created_at"], view["created_at"]);
    let shown = call(&app, Method::GET, "/v1/profiles/ann", None).await;
    assert_eq!(shown.json()["profile"]["name"], "Ann L.");
    let minimal = call(
        &app,
        Method::PUT,
        "/v1/profiles/bob@example.com",
        Some(json!({"name": "Bob", "email": "bob@example.com"})),
    )
    .await;
    assert_eq!(minimal.status, StatusCode::CREATED, "{}", minimal.text);
    assert_eq!(
        minimal.json()["profile"]["caps"],
        json!({"daily": 10, "monthly": 200})
    );

    // Each fault names its field.
    let with = |f: fn(&mut Value)| {
        let mut body = ann();
        f(&mut body);
        body
    };
    for (body, field) in [
        (with(|b| b["email"] = json!("nope")), "email"),
        (with(|b| b["salary"] = json!(1)), "salary"),
        (
            with(|b| b["caps"] = json!({"daily": 5, "monthly": 4})),
            "caps.daily",
        ),
        (
            with(|b| b["caps"] = json!({"daily": -1, "monthly": 4})),
            "caps.daily",
        ),
        (with(|b| b["titles"] = json!(["ok", ""])), "titles[1]"),
        (
            with(|b| b["links"] = json!({"GitHub": "javascript:alert(1)"})),
            "links.GitHub",
        ),
        (with(|b| b["name"] = json!("a\u{0}b")), "name"),
        (with(|b| b["sources"] = json!([])), "sources"),
        (
            with(|b| b["sources"] = json!([{"type": "workday", "board": "x"}])),
            "sources[0].type",
        ),
        (with(|b| b["remote_ok"] = json!("yes")), "remote_ok"),
        (json!([1, 2]), "body"),
    ] {
        call(&app, Method::PUT, "/v1/profiles/ann", Some(body))
            .await
            .names_field(field);
    }
    call(&app, Method::PUT, "/v1/profiles/a%20b", Some(ann()))
        .await
        .names_field("user_id");
    call(&app, Method::GET, "/v1/profiles/a%2Fb", None)
        .await
        .names_field("user_id");
    let not_json = request(Method::PUT, "/v1/profiles/ann")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("x"))
        .expect("request");
    assert_eq!(
        send(&app, not_json).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    assert_eq!(
        call(&app, Method::DELETE, "/v1/profiles/ann", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    call(&app, Method::DELETE, "/v1/profiles/ann", None)
        .await
        .error(StatusCode::NOT_FOUND, "no profile");
    backend.cleanup().await;
}

async fn resumes_are_checked_and_stored(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY));
    let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n".to_vec();
    upload(
        &app,
        "/v1/profiles/ann/resume",
        "application/pdf",
        pdf.clone(),
    )
    .await
    .error(StatusCode::NOT_FOUND, "no profile");
    call(&app, Method::PUT, "/v1/profiles/ann", Some(ann())).await;
    let stored = upload(
        &app,
        "/v1/profiles/ann/resume?filename=Ann%20Lee.pdf",
        "application/pdf",
        pdf.clone(),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_eq!(stored.json()["filename"], "Ann Lee.pdf");
    assert_eq!(stored.json()["bytes"], pdf.len());
    let kept = store
        .resume_file("ann")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(kept.data, pdf);
    let shown = call(&app, Method::GET, "/v1/profiles/ann", None)
        .await
        .json();
    assert_eq!(shown["resume"]["filename"], "Ann Lee.pdf");
    assert_eq!(shown["resume"]["content_type"], "application/pdf");

    upload(
        &app,
        "/v1/profiles/ann/resume",
        "application/pdf",
        b"GIF89a".to_vec(),
    )
    .await
    .names_field("body");
    upload(&app, "/v1/profiles/ann/resume", "text/plain", pdf.clone())
        .await
        .error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type");
    let generic = upload(
        &app,
        "/v1/profiles/ann/resume?filename=cv.pdf",
        "application/octet-stream",
        pdf.clone(),
    )
    .await;
    assert_eq!(generic.status, StatusCode::OK, "{}", generic.text);
    assert_eq!(
        generic.json()["content_type"],
        "application/pdf",
        "kept as what it is"
    );
    for name in ["...", " ", "a\\b"] {
        let uri = format!(
            "/v1/profiles/ann/resume?filename={}",
            name.replace(' ', "%20")
        );
        upload(&app, &uri, "application/pdf", pdf.clone())
            .await
            .names_field("filename");
    }
    upload(
        &app,
        "/v1/profiles/ann/resume?filename=..%2Fx.pdf",
        "application/pdf",
        pdf.clone(),
    )
    .await
    .names_field("filename");
    // Larger than the API's JSON body limit is fine up to 5 MiB; past it, 413 in JSON.
    let mut big = b"%PDF-".to_vec();
    big.resize(2 * 1024 * 1024, b'x');
    assert_eq!(
        upload(&app, "/v1/profiles/ann/resume", "application/pdf", big)
            .await
            .status,
        StatusCode::OK
    );
    let mut huge = b"%PDF-".to_vec();
    huge.resize(5 * 1024 * 1024 + 1, b'x');
    upload(&app, "/v1/profiles/ann/resume", "application/pdf", huge)
        .await
        .error(StatusCode::PAYLOAD_TOO_LARGE, "body:");
    backend.cleanup().await;
}

/// A `tracing` writer that keeps what it is given.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

async fn sessions_are_sealed_listed_and_never_answered(backend: Backend) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY));
    let cookies = json!([
        {"name": "sid", "value": COOKIE_VALUE, "domain": ".lever.co", "path": "/", "httpOnly": true, "secure": true},
        {"name": "csrf", "value": "x"},
    ]);
    call(
        &app,
        Method::PUT,
        "/v1/profiles/ann/sessions/lever",
        Some(cookies.clone()),
    )
    .await
    .error(StatusCode::NOT_FOUND, "no profile");
    call(&app, Method::PUT, "/v1/profiles/ann", Some(ann())).await;
    let mut answers = Vec::new();
    let stored = call(
        &app,
        Method::PUT,
        "/v1/profiles/ann/sessions/lever",
        Some(cookies.clone()),
    )
    .await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_eq!(stored.json()["site"], "lever");
    answers.push(stored.text.clone());
    call(
        &app,
        Method::PUT,
        "/v1/profiles/ann/sessions/greenhouse",
        Some(cookies.clone()),
    )
    .await;

    // The store holds a blob that opens under the key, for this user and site only.
    let sealed = store
        .session("ann", "lever")
        .await
        .expect("read")
        .expect("stored");
    let ring = Keyring::new(&SecretKey::new(KEY), &[]);
    assert_eq!(
        ring.open_cookies("ann", "lever", &sealed.blob)
            .expect("open")
            .into_json(),
        cookies
    );
    assert!(ring
        .open_cookies("ann", "greenhouse", &sealed.blob)
        .is_err());

    let listed = call(&app, Method::GET, "/v1/profiles/ann/sessions", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let sites: Vec<String> = listed.json()["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .map(|s| s["site"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(sites, ["greenhouse", "lever"]);
    answers.push(listed.text.clone());
    answers.push(call(&app, Method::GET, "/v1/profiles/ann", None).await.text);

    // Faults name the field and never repeat a value.
    for (body, field) in [
        (json!({"sid": COOKIE_VALUE}), "cookies"),
        (json!([{"name": "sid", "value": 7}]), "cookies[0].value"),
        (
            json!([{"name": "sid", "value": COOKIE_VALUE, "comment": COOKIE_VALUE}]),
            "cookies[0]",
        ),
        (json!([{"value": COOKIE_VALUE}]), "cookies[0].name"),
    ] {
        let reply = call(
            &app,
            Method::PUT,
            "/v1/profiles/ann/sessions/lever",
            Some(body),
        )
        .await;
        reply.names_field(field);
        answers.push(reply.text);
    }
    call(
        &app,
        Method::PUT,
        "/v1/profiles/ann/sessions/a%40b",
        Some(cookies.clone()),
    )
    .await
    .names_field("site");

    // Without a key: 409 naming the configuration.
    let keyless = self::app(store.clone(), None);
    let refused = call(
        &keyless,
        Method::PUT,
        "/v1/profiles/ann/sessions/lever",
        Some(cookies.clone()),
    )
    .await;
    refused.error(StatusCode::CONFLICT, "sessions are stored encrypted");
    assert!(
        refused.text.contains("secrets.key_file"),
        "{}",
        refused.text
    );

    assert_eq!(
        call(
            &app,
            Method::DELETE,
            "/v1/profiles/ann/sessions/lever",
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    call(
        &app,
        Method::DELETE,
        "/v1/profiles/ann/sessions/lever",
        None,
    )
    .await
    .error(StatusCode::NOT_FOUND, "no session");

    let log = String::from_utf8(captured.0.lock().expect("log").clone()).expect("UTF-8 log");
    assert!(log.contains("session stored"), "{log}");
    for text in answers.iter().chain(std::iter::once(&log)) {
        assert!(
            !text.contains(COOKIE_VALUE),
            "a cookie value leaked: {text}"
        );
    }
    backend.cleanup().await;
}

async fn the_ledger_is_listed_with_its_counts(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), Some(KEY));
    call(&app, Method::PUT, "/v1/profiles/ann", Some(ann())).await;
    let caps = Caps {
        daily: 2,
        monthly: 40,
    };
    let job = JobId::now_v7();
    let roomy = Caps { daily: 3, ..caps };
    for posting in ["gh:acme:1", "gh:acme:2", "lever:initech:3"] {
        store
            .claim_application("ann", posting, job, roomy, Utc::now())
            .await
            .expect("claim");
    }
    store
        .settle_application("ann", "gh:acme:1", Outcome::Manual, Utc::now())
        .await
        .expect("settle");
    assert!(matches!(
        store
            .claim_application("ann", "gh:acme:9", job, caps, Utc::now())
            .await
            .expect("claim"),
        Claim::Capped { .. }
    ));
    let page = call(
        &app,
        Method::GET,
        "/v1/profiles/ann/applications?limit=2",
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let body = page.json();
    assert_eq!(
        body["counts"],
        json!({"day": 2, "month": 2}),
        "manual gives its count back"
    );
    assert_eq!(body["caps"], json!({"daily": 2, "monthly": 40}));
    assert_eq!(body["applications"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["applications"][0]["posting_key"], "gh:acme:1");
    assert_eq!(body["applications"][0]["outcome"], "manual");
    assert_eq!(body["next_after"], "gh:acme:2");
    let rest = call(
        &app,
        Method::GET,
        "/v1/profiles/ann/applications?after=gh:acme:2",
        None,
    )
    .await
    .json();
    assert_eq!(rest["applications"][0]["posting_key"], "lever:initech:3");
    assert_eq!(rest["next_after"], Value::Null);
    let nobody = call(&app, Method::GET, "/v1/profiles/nobody/applications", None)
        .await
        .json();
    assert_eq!(nobody["applications"], json!([]));
    assert_eq!(nobody["caps"], Value::Null);
    let bad = call(
        &app,
        Method::GET,
        "/v1/profiles/ann/applications?limit=0",
        None,
    )
    .await;
    bad.error(StatusCode::BAD_REQUEST, "limit:");
    let unknown = call(
        &app,
        Method::GET,
        "/v1/profiles/ann/applications?page=2",
        None,
    )
    .await;
    unknown.error(StatusCode::BAD_REQUEST, "page:");
    backend.cleanup().await;
}

/// `nightly: true` is one schedule (SPEC §7.3): 20:00 Asia/Kolkata with the 600-minute
/// spread keyed by the user id; an operator's pause outlives a profile update; `nightly:
/// false` and deleting the profile remove it.
async fn a_nightly_profile_is_a_schedule(backend: Backend) {
    let store = backend.open().await;
    let app = app(store.clone(), None);
    let id = drover_queue::schedule::nightly::schedule_id("ann@example.com");
    let uri = "/v1/profiles/ann@example.com";
    let mut body = ann();
    body["nightly"] = json!(true);
    body["sources"] = json!([{"type": "greenhouse", "board": "acme"}]);
    let put = call(&app, Method::PUT, uri, Some(body.clone())).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text);
    let shown = call(&app, Method::GET, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    let schedule = shown.json();
    assert_eq!(schedule["cron"], "0 20 * * *");
    assert_eq!(schedule["timezone"], "Asia/Kolkata");
    assert_eq!(schedule["spread"]["key"], "ann@example.com");
    assert_eq!(schedule["spread"]["window"], "600m");
    assert_eq!(schedule["job"]["kind"], "apply");
    assert_eq!(schedule["job"]["config"]["user_id"], "ann@example.com");
    let runs = schedule["next_runs"].as_array().expect("next_runs");
    assert_eq!(runs.len(), 10);
    let ist = chrono::FixedOffset::east_opt(19_800).expect("offset");
    for run in runs {
        let at = chrono::DateTime::parse_from_rfc3339(run.as_str().expect("a time"))
            .expect("RFC 3339")
            .with_timezone(&ist);
        let minutes = chrono::Timelike::hour(&at) * 60 + chrono::Timelike::minute(&at);
        assert!(
            !(6 * 60..20 * 60).contains(&minutes),
            "{at} is outside 20:00–06:00 IST"
        );
    }

    // Paused by an operator, it stays paused when the profile changes.
    let paused = call(
        &app,
        Method::POST,
        &format!("/v1/schedules/{id}/pause"),
        None,
    )
    .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    body["titles"] = json!(["Staff Engineer"]);
    let put = call(&app, Method::PUT, uri, Some(body.clone())).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let shown = call(&app, Method::GET, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(shown.json()["paused"], true, "{}", shown.text);

    body["nightly"] = json!(false);
    let put = call(&app, Method::PUT, uri, Some(body.clone())).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let gone = call(&app, Method::GET, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);

    body["nightly"] = json!(true);
    call(&app, Method::PUT, uri, Some(body)).await;
    let deleted = call(&app, Method::DELETE, uri, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let gone = call(&app, Method::GET, &format!("/v1/schedules/{id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{}", gone.text);
    backend.cleanup().await;
}

macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(drover_queue::testing::Backend::sqlite()).await; } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(drover_queue::testing::Backend::postgres()).await; } )*
        }
        mod redis {
            $( #[tokio::test] async fn $test() { super::$test(drover_queue::testing::Backend::redis()).await; } )*
        }
    };
}

on_every_backend!(
    a_nightly_profile_is_a_schedule,
    profiles_are_put_shown_and_deleted,
    resumes_are_checked_and_stored,
    sessions_are_sealed_listed_and_never_answered,
    the_ledger_is_listed_with_its_counts,
);
