//! The browser pool on real headless Chromium, through a chromedriver the pool spawns: a
//! Chromium is reused for the same user's applications, never handed to another user, and
//! no more sessions run at once than `max_sessions`.

use std::path::PathBuf;
use std::time::Duration;

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use drover_workloads::services::browser::{BrowserSettings, Browsers};
use fantoccini::cookies::Cookie;

async fn page_server() -> String {
    let app = Router::new().route(
        "/",
        get(|| async { Html("<html><body><p id=hi>hello</p></body></html>") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}/")
}

fn settings(max_sessions: usize) -> BrowserSettings {
    BrowserSettings {
        chromedriver: PathBuf::from("/usr/bin/chromedriver"),
        chromium: Some(PathBuf::from("/usr/bin/chromium")),
        max_sessions,
        ..BrowserSettings::default()
    }
}

async fn cookie_value(session: &drover_workloads::services::browser::Session) -> Option<String> {
    let cookies = session.client().get_all_cookies().await.expect("cookies");
    cookies
        .iter()
        .find(|c| c.name() == "sid")
        .map(|c| c.value().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_reused_per_user_and_bounded() {
    let url = page_server().await;
    let pool = Browsers::new(settings(2));

    // Ann's first application sets a cookie on the site.
    let ann = pool.session("ann").await.expect("a session for ann");
    ann.client().goto(&url).await.expect("goto");
    let mut cookie = Cookie::new("sid", "ann-secret");
    cookie.set_domain("127.0.0.1");
    cookie.set_path("/");
    cookie.set_same_site(cookie::SameSite::Lax);
    ann.client().add_cookie(cookie).await.expect("add cookie");
    assert_eq!(pool.available(), 1);
    ann.done().await;
    assert_eq!(pool.available(), 2);

    // Bob never sees it: his Chromium is another one.
    let bob = pool.session("bob").await.expect("a session for bob");
    bob.client().goto(&url).await.expect("goto");
    assert_eq!(cookie_value(&bob).await, None, "bob got ann's browser");

    // Ann's next application reuses her Chromium (her cookie is there), in a fresh tab.
    let ann = pool.session("ann").await.expect("ann again");
    ann.client().goto(&url).await.expect("goto");
    assert_eq!(cookie_value(&ann).await.as_deref(), Some("ann-secret"));
    let tabs = ann.client().windows().await.expect("windows").len();
    assert_eq!(tabs, 2, "the home tab and this application's tab");
    let text = ann
        .client()
        .find(fantoccini::Locator::Css("#hi"))
        .await
        .expect("find")
        .text()
        .await
        .expect("text");
    assert_eq!(text, "hello");

    // Both slots are taken: a third session waits for one to end.
    assert_eq!(pool.available(), 0);
    let third = tokio::time::timeout(Duration::from_millis(300), pool.session("cat")).await;
    assert!(
        third.is_err(),
        "a third session started past max_sessions = 2"
    );
    bob.done().await;
    let cat = tokio::time::timeout(Duration::from_secs(30), pool.session("cat"))
        .await
        .expect("a slot frees when bob is done")
        .expect("a session for cat");
    cat.client().goto(&url).await.expect("goto");
    assert_eq!(cookie_value(&cat).await, None);
    cat.discard().await;
    ann.done().await;
}

#[tokio::test]
async fn a_missing_chromedriver_is_a_clear_error() {
    let pool = Browsers::new(BrowserSettings {
        chromedriver: PathBuf::from("/nonexistent/chromedriver"),
        ..settings(1)
    });
    let err = match pool.session("ann").await {
        Ok(_) => panic!("a session without a chromedriver"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("browser.chromedriver"), "{err}");
    assert!(err.contains("/nonexistent/chromedriver"), "{err}");
}

/// An external WebDriver (`browser.webdriver_url`): the pool spawns nothing and uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_webdriver_is_used_as_it_is() {
    let url = page_server().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut driver = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver");
    let pool = Browsers::new(BrowserSettings {
        webdriver_url: Some(format!("http://127.0.0.1:{port}")),
        chromedriver: PathBuf::from("/nonexistent/chromedriver"),
        ..settings(1)
    });
    let session = pool
        .session("ann")
        .await
        .expect("a session through the external driver");
    session.client().goto(&url).await.expect("goto");
    let text = session
        .client()
        .find(fantoccini::Locator::Css("#hi"))
        .await
        .expect("find")
        .text()
        .await
        .expect("text");
    assert_eq!(text, "hello");
    session.discard().await;
    drop(pool);
    let _ = driver.kill();
    let _ = driver.wait();
}
