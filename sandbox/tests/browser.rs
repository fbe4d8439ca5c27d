//! The hosted forms in a real browser: headless Debian Chromium through ChromeDriver fills
//! the Greenhouse-like and the Lever-like form (text, a select, radios, a résumé upload),
//! submits, and lands on the confirmation page; the sandbox recorded the upload byte for byte.
//! A CAPTCHA form refuses the same browser. Skipped when /usr/bin/chromedriver is absent.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drover_sandbox::boards::{Outcome, QuestionKind, QuestionSpec};
use drover_sandbox::{Ats, PostingSpec, Sandbox, SandboxConfig, Variant};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tokio::time::{sleep, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-background-networking --disable-component-update --disable-sync --no-first-run";
const DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    addr.expect("an ephemeral port").port()
}

/// ChromeDriver in its own process group (so the Chromium it starts goes down with it),
/// killed on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group led by our own, not yet reaped, child.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

async fn chromium(profile: &Path) -> (Driver, Client) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn chromedriver");
    let mut driver = Driver(child);
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(Some(status)) = driver.0.try_wait() {
            panic!("chromedriver exited: {status}");
        }
        if http
            .get(format!("{url}/status"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(Instant::now() < deadline, "chromedriver not ready");
        sleep(Duration::from_millis(100)).await;
    }
    let mut args: Vec<String> = CHROMIUM_ARGS.split_whitespace().map(String::from).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium", "args": args}),
    );
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("a Chromium session");
    (driver, client)
}

async fn fill(c: &Client, selector: &str, text: &str) {
    let el = c
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    el.send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
}

async fn click(c: &Client, selector: &str) {
    let el = c
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
    el.click()
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"));
}

/// Waits for `selector` to appear (a page load after a submit) and returns its text.
async fn text_of(c: &Client, selector: &str) -> String {
    let el = c
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("waiting for {selector}: {e}"));
    el.text().await.unwrap_or_default()
}

fn spec(ats: Ats, board: &str, title: &str, variant: Variant) -> PostingSpec {
    PostingSpec {
        ats,
        board: board.into(),
        title: title.into(),
        company: Some("Browser Test Co".into()),
        job: None,
        location: Some("Bengaluru, India".into()),
        workplace: None,
        employment: None,
        department: None,
        team: None,
        description: None,
        salary: None,
        salary_structured: None,
        salary_in_text: false,
        years: Some(4),
        posted_at: None,
        listed: None,
        questions: vec![
            QuestionSpec {
                label: "Are you legally authorized to work in India?".into(),
                kind: QuestionKind::YesNo,
                required: true,
            },
            QuestionSpec {
                label: "What is your notice period?".into(),
                kind: QuestionKind::Text,
                required: true,
            },
        ],
        variant,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_fills_both_forms_and_is_stopped_by_a_captcha() {
    if !Path::new(CHROMEDRIVER).exists() {
        eprintln!("skipped: no {CHROMEDRIVER}");
        return;
    }
    let s = Sandbox::start(SandboxConfig::default())
        .await
        .expect("sandbox");
    let base = s.base_url();
    let dir = std::env::temp_dir().join(format!("drover-boards-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let resume = dir.join("asha-rao.pdf");
    let bytes = b"%PDF-1.4\n% a resume\n%%EOF\n".to_vec();
    std::fs::write(&resume, &bytes).expect("write the resume");
    let resume_path = resume.to_str().expect("a UTF-8 path").to_string();
    let (_driver, c) = chromium(&dir.join("profile")).await;

    // Greenhouse: the form is on the job's page.
    let gh = s
        .boards
        .add(spec(
            Ats::Greenhouse,
            "browserco",
            "Backend Engineer",
            Variant::Plain,
        ))
        .expect("fixture");
    c.goto(&format!("{base}{}", gh.page_path()))
        .await
        .expect("open");
    fill(&c, "input[name='job_application[first_name]']", "Asha").await;
    fill(&c, "input[name='job_application[last_name]']", "Rao").await;
    fill(
        &c,
        "input[name='job_application[email]']",
        "asha@example.com",
    )
    .await;
    fill(
        &c,
        "input[name='job_application[phone]']",
        "+91 98450 00000",
    )
    .await;
    fill(
        &c,
        "input[type=file][name='job_application[resume]']",
        &resume_path,
    )
    .await;
    let authorized = gh.questions[0].field(Ats::Greenhouse);
    let notice = gh.questions[1].field(Ats::Greenhouse);
    c.find(Locator::Css(&format!("select[name='{authorized}']")))
        .await
        .expect("the select")
        .select_by_value("1")
        .await
        .expect("select Yes");
    fill(&c, &format!("input[name='{notice}']"), "30 days").await;
    click(&c, "input[type=submit]#submit_app").await;
    let done = text_of(&c, "#application_confirmation").await;
    assert!(done.contains("Thank you for applying"), "{done}");

    // Lever: the job's page links to the form.
    let lever = s
        .boards
        .add(spec(
            Ats::Lever,
            "browserco",
            "Data Engineer",
            Variant::Plain,
        ))
        .expect("fixture");
    c.goto(&format!("{base}{}", lever.page_path()))
        .await
        .expect("open");
    c.find(Locator::LinkText("Apply for this job"))
        .await
        .expect("the apply link")
        .click()
        .await
        .expect("click");
    fill(&c, "#application-form input[name=resume]", &resume_path).await;
    fill(&c, "input[name=name]", "Asha Rao").await;
    fill(&c, "input[name=email]", "asha@example.com").await;
    fill(&c, "input[name='urls[GitHub]']", "https://github.com/asha").await;
    let card = lever.questions[0].field(Ats::Lever);
    click(&c, &format!("input[name='{card}'][value=Yes]")).await;
    let notice = lever.questions[1].field(Ats::Lever);
    fill(&c, &format!("input[name='{notice}']"), "30 days").await;
    fill(&c, "textarea[name=comments]", "Happy to talk.").await;
    click(&c, "button[data-qa='btn-submit']").await;
    let done = text_of(&c, "[data-qa='msg-submit-success']").await;
    assert_eq!(done, "Application submitted!");

    // A CAPTCHA form: everything filled, still refused.
    let walled = s
        .boards
        .add(spec(
            Ats::Greenhouse,
            "browserco",
            "Platform Engineer",
            Variant::Captcha,
        ))
        .expect("fixture");
    c.goto(&format!("{base}{}", walled.page_path()))
        .await
        .expect("open");
    assert!(c.find(Locator::Css(".g-recaptcha iframe")).await.is_ok());
    fill(&c, "input[name='job_application[first_name]']", "Asha").await;
    fill(&c, "input[name='job_application[last_name]']", "Rao").await;
    fill(
        &c,
        "input[name='job_application[email]']",
        "asha@example.com",
    )
    .await;
    fill(
        &c,
        "input[name='job_application[phone]']",
        "+91 98450 00000",
    )
    .await;
    fill(
        &c,
        "input[type=file][name='job_application[resume]']",
        &resume_path,
    )
    .await;
    click(&c, "#submit_app").await;
    let alert = text_of(&c, "#error_message").await;
    assert!(
        alert.contains("Please verify that you are not a robot"),
        "{alert}"
    );

    let shot = c.screenshot().await.expect("a screenshot");
    assert!(shot.starts_with(b"\x89PNG"));
    c.close().await.expect("close the session");

    let apps = s.boards.applications();
    let outcomes: Vec<Outcome> = apps.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Accepted, Outcome::Accepted, Outcome::Captcha]
    );
    for a in &apps {
        let file = a.files.first().expect("the résumé arrived");
        assert_eq!(file.filename, "asha-rao.pdf");
        assert_eq!(file.bytes, bytes, "byte for byte");
    }
    assert_eq!(
        apps[0].fields.get(&authorized).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        apps[1].fields.get("urls[GitHub]").map(String::as_str),
        Some("https://github.com/asha")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
