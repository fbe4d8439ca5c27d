//! `drover sandbox` serves the sandbox's protocols on loopback until stopped, and refuses to
//! listen anywhere else.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    addr.expect("an ephemeral port").port()
}

#[tokio::test]
async fn drover_sandbox_answers_as_github_and_counts_what_it_saw() {
    let (http, smtp) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args([
            "sandbox",
            "--bind",
            &http,
            "--smtp-bind",
            &smtp,
            "--repos",
            "300",
            "--users",
            "900",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn drover sandbox");
    let client = reqwest::Client::builder()
        .user_agent("drover-test")
        .build()
        .expect("client");
    let url = format!("http://{http}/search/repositories?q=archived:false&per_page=5");
    let deadline = Instant::now() + Duration::from_secs(30);
    let res = loop {
        if let Ok(res) = client.get(&url).bearer_auth("t").send().await {
            break res;
        }
        assert!(
            Instant::now() < deadline,
            "drover sandbox never answered on {http}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()["x-ratelimit-limit"],
        "30",
        "the search budget"
    );
    let body: serde_json::Value = res.json().await.expect("json");
    assert!(
        body["total_count"].as_u64().is_some_and(|n| n > 5),
        "{body}"
    );
    assert_eq!(body["items"].as_array().map(Vec::len), Some(5));
    let stats: serde_json::Value = client
        .get(format!("http://{http}/_sandbox/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(
        stats["endpoints"]["github GET /search/repositories"], 1,
        "{stats}"
    );
    let greeting = tokio::net::TcpStream::connect(&smtp).await;
    assert!(greeting.is_ok(), "the SMTP sink listens on {smtp}");
    let _ = child.kill();
    let _ = child.wait();

    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["sandbox", "--bind", "0.0.0.0:0"])
        .output()
        .expect("run drover sandbox");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bind"));
}
