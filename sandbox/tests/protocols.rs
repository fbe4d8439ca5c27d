//! The sandbox's servers speak their protocols as the real services do: what a client sees of
//! GitHub's search, pagination, rate limits and ETags; the chat endpoint's errors; the mail
//! API's idempotency; the SMTP sink's replies and its dropped connection.

use std::time::Duration;

use drover_sandbox::{GithubConfig, Rule, Sandbox, SandboxConfig, WorldConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

async fn sandbox(github: GithubConfig) -> Sandbox {
    let world = WorldConfig {
        seed: 3,
        repos: 5_000,
        users: 20_000,
        ..WorldConfig::default()
    };
    let config = SandboxConfig {
        world,
        github,
        ..SandboxConfig::default()
    };
    Sandbox::start(config).await.expect("start the sandbox")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent("drover-test")
        .build()
        .expect("client")
}

async fn get(url: &str, token: &str) -> reqwest::Response {
    let req = client()
        .get(url)
        .bearer_auth(token)
        .header("accept", "application/vnd.github+json");
    req.send().await.expect("GET")
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn search_caps_at_1000_and_date_slices_add_up() {
    let s = sandbox(GithubConfig::default()).await;
    let base = s.base_url();
    let url =
        |q: &str, page: u32| format!("{base}/search/repositories?q={q}&per_page=100&page={page}");
    let res = get(&url("archived:false", 1), "t1").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-ratelimit-resource"), "search");
    assert!(
        header(&res, "link").contains("rel=\"next\""),
        "{}",
        header(&res, "link")
    );
    let body: Value = res.json().await.expect("json");
    let total = body["total_count"].as_u64().expect("total_count");
    assert!(total > 1000, "a search past the cap: {total}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(100));
    assert!(body["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|r| r["archived"] == false && r["fork"] == false));

    let last = get(&url("archived:false", 10), "t1").await;
    assert_eq!(last.status(), StatusCode::OK);
    assert!(
        !header(&last, "link").contains("rel=\"next\""),
        "page 10 is the last one given"
    );
    let past = get(&url("archived:false", 11), "t1").await;
    assert_eq!(past.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Slicing by pushed date: the slices partition the whole, so their counts add up.
    let mut sum = 0;
    for range in ["<2026-01-01", "2026-01-01..2026-06-30", ">2026-06-30"] {
        let res = get(&url(&format!("archived:false+pushed:{range}"), 1), "t2").await;
        let body: Value = res.json().await.expect("json");
        sum += body["total_count"].as_u64().expect("total_count");
    }
    // Against the default "now" the ranges cover every date.
    assert_eq!(sum, total);

    let bad = get(&url("stars:>=lots", 1), "t3").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["message"], "Validation Failed");
}

#[tokio::test]
async fn budgets_are_per_token_and_304s_are_free() {
    let config = GithubConfig {
        core_limit: 3,
        ..GithubConfig::default()
    };
    let s = sandbox(config).await;
    let repo = s.github.world.repo(1).expect("repo 1");
    let owner = s.github.world.login(repo.owner);
    let url = format!("{}/users/{owner}", s.base_url());

    let first = get(&url, "alpha").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(&first, "x-ratelimit-limit"), "3");
    assert_eq!(header(&first, "x-ratelimit-remaining"), "2");
    let etag = header(&first, "etag");
    assert!(etag.starts_with("W/\""), "an ETag: {etag}");
    let cached = client()
        .get(&url)
        .bearer_auth("alpha")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        header(&cached, "x-ratelimit-remaining"),
        "2",
        "a 304 is not counted"
    );
    for _ in 0..2 {
        assert_eq!(get(&url, "alpha").await.status(), StatusCode::OK);
    }
    let spent = get(&url, "alpha").await;
    assert_eq!(spent.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&spent, "x-ratelimit-remaining"), "0");
    assert!(header(&spent, "x-ratelimit-reset").parse::<i64>().is_ok());
    let body: Value = spent.json().await.expect("json");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("rate limit"));
    // Another token has its own budget.
    assert_eq!(get(&url, "beta").await.status(), StatusCode::OK);
    let stats = s.stats();
    assert_eq!(stats.over_budget, 1);
    assert_eq!(stats.not_modified, 1);
    assert_eq!(stats.tokens.values().sum::<u64>(), 4, "{:?}", stats.tokens);
    // No User-Agent: refused, as GitHub does.
    let bare = reqwest::Client::new().get(&url).send().await.expect("GET");
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_budget_window_is_recorded_with_what_it_counted_and_refused() {
    let config = GithubConfig {
        core_limit: 2,
        core_window: Duration::from_secs(1),
        ..GithubConfig::default()
    };
    let s = sandbox(config).await;
    let repo = s.github.world.repo(1).expect("repo 1");
    let owner = s.github.world.login(repo.owner);
    let url = format!("{}/users/{owner}", s.base_url());
    let before = chrono::Utc::now();
    for expected in [StatusCode::OK, StatusCode::OK, StatusCode::FORBIDDEN] {
        assert_eq!(get(&url, "alpha").await.status(), expected);
    }
    let windows = s.github.windows();
    assert_eq!(windows.len(), 1, "{windows:?}");
    let first = windows[0].clone();
    assert_eq!((first.counted, first.refused), (2, 1), "{first:?}");
    assert_eq!(first.resource, "core");
    assert!(first.start >= before, "{first:?}");
    assert_eq!(first.end - first.start, chrono::Duration::seconds(1));
    // Past its end, the next request starts the next window; the first is kept as it was.
    let wait = (first.end - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(10)).await;
    let next = get(&url, "alpha").await;
    assert_eq!(next.status(), StatusCode::OK);
    let windows = s.github.windows();
    assert_eq!(windows.len(), 2, "{windows:?}");
    assert_eq!(windows[0], first);
    assert_eq!((windows[1].counted, windows[1].refused), (1, 0));
    assert!(windows[1].start >= first.end, "{windows:?}");
    assert_eq!(
        header(&next, "x-ratelimit-reset"),
        windows[1].end.timestamp().to_string(),
        "the reset names the window's end, to the second"
    );
}

#[tokio::test]
async fn the_secondary_limit_answers_with_retry_after() {
    let config = GithubConfig {
        max_concurrent: Some(1),
        latency: Duration::from_millis(300),
        limited_status: 429,
        ..GithubConfig::default()
    };
    let s = sandbox(config).await;
    let url = format!("{}/users/{}", s.base_url(), s.github.world.login(2));
    let (a, b) = tokio::join!(get(&url, "gamma"), get(&url, "gamma"));
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    let limited = if a.status() == StatusCode::OK { b } else { a };
    assert_eq!(header(&limited, "retry-after"), "60");
    let body: Value = limited.json().await.expect("json");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .contains("secondary rate limit"));
}

#[tokio::test]
async fn contributors_commits_and_users_look_like_githubs() {
    let s = sandbox(GithubConfig::default()).await;
    let w = &s.github.world;
    // A repository with a bot and an anonymous contributor.
    let repo = (0..5_000)
        .filter_map(|i| w.repo(i))
        .find(|r| {
            let rows = w.contributors(r);
            rows.iter()
                .any(|c| matches!(c, drover_sandbox::world::Contributor::Bot { .. }))
                && rows
                    .iter()
                    .any(|c| matches!(c, drover_sandbox::world::Contributor::Anonymous { .. }))
        })
        .expect("a repository with a bot and an anonymous contributor");
    let full = format!("{}/{}", w.login(repo.owner), repo.name);
    let url = format!("{}/repos/{full}/contributors?per_page=100", s.base_url());
    let rows: Value = get(&url, "t").await.json().await.expect("json");
    let rows = rows.as_array().expect("a list");
    assert!(rows
        .iter()
        .any(|r| r["type"] == "Bot" && r["login"].as_str().is_some_and(|l| l.ends_with("[bot]"))));
    assert!(
        !rows.iter().any(|r| r["type"] == "Anonymous"),
        "anonymous rows only with anon=1"
    );
    let with_anon: Value = get(&format!("{url}&anon=1"), "t")
        .await
        .json()
        .await
        .expect("json");
    assert!(with_anon
        .as_array()
        .expect("list")
        .iter()
        .any(|r| r["type"] == "Anonymous" && r["email"].is_string()));
    let counts: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["contributions"].as_u64())
        .collect();
    assert!(
        counts.windows(2).all(|p| p[0] >= p[1]),
        "most contributions first"
    );

    let login = rows
        .iter()
        .find(|r| r["type"] == "User")
        .and_then(|r| r["login"].as_str())
        .expect("a user");
    let commits_url = format!(
        "{}/repos/{full}/commits?author={login}&per_page=1",
        s.base_url()
    );
    let commits: Value = get(&commits_url, "t").await.json().await.expect("json");
    let commit = &commits[0];
    assert_eq!(commit["author"]["login"], login);
    assert!(commit["commit"]["author"]["email"]
        .as_str()
        .is_some_and(|e| e.contains('@')));
    let future = format!(
        "{}/repos/{full}/commits?author={login}&since=2999-01-01T00:00:00Z",
        s.base_url()
    );
    let none: Value = get(&future, "t").await.json().await.expect("json");
    assert_eq!(none, json!([]));

    let profile: Value = get(&format!("{}/users/{login}", s.base_url()), "t")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(profile["login"], login);
    assert!(profile["email"].is_null() || profile["email"].is_string());
    let missing = get(&format!("{}/users/nobody-here", s.base_url()), "t").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing = get(&format!("{}/repos/a/b/contributors", s.base_url()), "t").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn chat_completions_answer_and_fail_as_openai_does() {
    let s = sandbox(GithubConfig::default()).await;
    let url = format!("{}/v1/chat/completions", s.base_url());
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Maintainer: Jane. Repo: quiet-parser-1"}]});
    let anonymous = client().post(&url).json(&body).send().await.expect("POST");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let ok = client()
        .post(&url)
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(ok.status(), StatusCode::OK);
    let answer: Value = ok.json().await.expect("json");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert!(answer["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| c.contains("quiet-parser-1")));

    s.llm
        .rate_limit_every
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let limited = client()
        .post(&url)
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&limited, "retry-after-ms"), "50");
    let e: Value = limited.json().await.expect("json");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");

    let off = client()
        .post(format!("{}/_sandbox/llm", s.base_url()))
        .json(&json!({"rate_limit_every": 0, "out_of_quota": true}))
        .send()
        .await
        .expect("POST");
    assert_eq!(off.status(), StatusCode::NO_CONTENT);
    let quota = client()
        .post(&url)
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .expect("POST");
    assert_eq!(quota.status(), StatusCode::TOO_MANY_REQUESTS);
    let e: Value = quota.json().await.expect("json");
    assert_eq!(e["error"]["code"], "insufficient_quota");
    let bad = client()
        .post(format!("{}/_sandbox/llm", s.base_url()))
        .json(&json!({"nonsense": 1}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_mail_api_honours_idempotency_keys() {
    let s = sandbox(GithubConfig::default()).await;
    let url = format!("{}/emails", s.base_url());
    let body = json!({"from": "Drover <d@sender.test>", "to": ["jane@fastmail.test"], "subject": "Hello", "text": "Hi"});
    let send = |body: Value| {
        client()
            .post(&url)
            .bearer_auth("re_test")
            .header("idempotency-key", "lead-1")
            .json(&body)
            .send()
    };
    let first: Value = send(body.clone())
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let again: Value = send(body.clone())
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(first["id"], again["id"], "the same key answers the same id");
    assert_eq!(s.mail.sent().len(), 1, "and sends once");
    let other = send(json!({"from": "d@sender.test", "to": "x@y.test", "subject": "Other"}))
        .await
        .expect("POST");
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(s.stats().recipients.get("jane@fastmail.test"), Some(&1));
    let unauth = client().post(&url).json(&body).send().await.expect("POST");
    assert_eq!(unauth.status(), StatusCode::UNAUTHORIZED);
}

/// One SMTP exchange line by line; answers the reply lines read after each command.
async fn smtp(addr: std::net::SocketAddr, script: &[&str]) -> Vec<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut replies = vec![lines
        .next_line()
        .await
        .expect("greeting")
        .unwrap_or_default()];
    let mut in_data = false;
    for command in script {
        write
            .write_all(format!("{command}\r\n").as_bytes())
            .await
            .expect("write");
        // Lines of the message get no reply until the one holding a single dot.
        match (in_data, *command) {
            (false, "DATA") => in_data = true,
            (true, ".") => in_data = false,
            (true, _) => continue,
            _ => {}
        }
        loop {
            let Ok(Some(line)) = lines.next_line().await else {
                replies.push("(closed)".into());
                return replies;
            };
            let more = line.as_bytes().get(3) == Some(&b'-');
            replies.push(line);
            if !more {
                break;
            }
        }
    }
    replies
}

#[tokio::test]
async fn the_smtp_sink_keeps_messages_and_can_refuse_or_drop() {
    let s = sandbox(GithubConfig::default()).await;
    let message = [
        "EHLO client.test",
        "MAIL FROM:<d@sender.test>",
        "RCPT TO:<jane@fastmail.test>",
        "DATA",
        "Message-ID: <k1@sender.test>",
        "Subject: Hi",
        "",
        "..a stuffed line",
        ".",
        "QUIT",
    ];
    let replies = smtp(s.smtp, &message).await;
    assert!(replies[0].starts_with("220"));
    assert!(replies.iter().any(|r| r.starts_with("354")));
    assert!(
        replies
            .iter()
            .any(|r| r.starts_with("250 2.0.0 OK: queued")),
        "{replies:?}"
    );
    let kept = s.sink.messages();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].message_id.as_deref(), Some("<k1@sender.test>"));
    assert!(
        kept[0].data.contains("\r\n.a stuffed line\r\n"),
        "dot-unstuffed: {:?}",
        kept[0].data
    );

    s.sink.set_rule("gone@fastmail.test", Some(Rule::Reject));
    let refused = smtp(
        s.smtp,
        &[
            "HELO c",
            "MAIL FROM:<d@sender.test>",
            "RCPT TO:<gone@fastmail.test>",
            "QUIT",
        ],
    )
    .await;
    assert!(refused.iter().any(|r| r.starts_with("550")), "{refused:?}");

    s.sink
        .set_rule("flaky@fastmail.test", Some(Rule::DropAfterData));
    let dropped = smtp(
        s.smtp,
        &[
            "HELO c",
            "MAIL FROM:<d@sender.test>",
            "RCPT TO:<flaky@fastmail.test>",
            "DATA",
            "Subject: x",
            ".",
            "QUIT",
        ],
    )
    .await;
    assert_eq!(
        dropped.last().map(String::as_str),
        Some("(closed)"),
        "{dropped:?}"
    );
    let kept = s.sink.messages();
    assert_eq!(kept.len(), 2, "the dropped message was still taken");
    assert!(kept[1].unanswered);
}
