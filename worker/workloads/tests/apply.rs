//! The apply kind end to end: the sandbox's Greenhouse and Lever boards and hosted forms,
//! real headless Chromium through a chromedriver the worker spawns, a real worker pool, on
//! SQLite and PostgreSQL.
//!
//! Seven postings are placed, one of them the same job on both boards: two in the apply
//! band, one more behind a CAPTCHA, two in the review band (one approved, one rejected in
//! the inbox) and one skipped. The sandbox must receive exactly one accepted submission per
//! applied posting and nothing else; a second job of the same user applies to nothing again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use drover_queue::profile::{Profile, Resume, ResumeInfo};
use drover_queue::testing::Backend;
use drover_queue::{Decision, JobId, JobStatus, NewJob, Store};
use drover_sandbox::boards::{Employment, QuestionKind, QuestionSpec, Salary, Workplace};
use drover_sandbox::{Ats, PostingSpec, Sandbox, SandboxConfig, Variant};
use drover_worker::{Registry, WorkerOptions};
use drover_workloads::services::browser::BrowserSettings;
use drover_workloads::Settings;
use serde_json::{json, Value};

const USER: &str = "asha";
const BOARD: &str = "acme";

fn options() -> WorkerOptions {
    WorkerOptions {
        slots: 4,
        lease_ttl: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(300),
        poll_interval: Duration::from_millis(100),
        graceful_shutdown: Duration::from_secs(5),
        retry_delay: Duration::from_millis(50),
        max_retry_delay: Duration::from_millis(200),
        ..WorkerOptions::default()
    }
}

pub fn settings(sandbox: &Sandbox) -> Settings {
    Settings {
        greenhouse_base_url: sandbox.base_url(),
        lever_base_url: sandbox.base_url(),
        ashby_base_url: sandbox.base_url(),
        browser: BrowserSettings {
            chromedriver: PathBuf::from("/usr/bin/chromedriver"),
            chromium: Some(PathBuf::from("/usr/bin/chromium")),
            max_sessions: 2,
            ..BrowserSettings::default()
        },
        api_timeout: Duration::from_secs(10),
        ..Settings::default()
    }
}

fn registry(settings: &Settings) -> Registry {
    let mut registry = Registry::production();
    drover_workloads::register(&mut registry, settings).expect("register");
    registry
}

pub fn profile() -> Profile {
    serde_json::from_value(json!({
        "name": "Asha Rao",
        "email": "asha@example.com",
        "phone": "+91 98450 00000",
        "location": "Bengaluru",
        "links": {"LinkedIn": "https://linkedin.example/in/asha", "GitHub": "https://github.example/asha"},
        "titles": ["Backend Engineer"],
        "companies": ["Acme"],
        "locations": ["Bengaluru"],
        "remote_ok": true,
        "job_types": ["fulltime"],
        "min_salary": 100000,
        "experience_years": 5,
        "answers": {"Are you authorized to work in India?": "Yes"},
    }))
    .expect("a profile")
}

pub fn resume() -> Resume {
    let data =
        b"%PDF-1.4\n% Asha Rao resume\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    Resume {
        info: ResumeInfo {
            filename: "asha-rao-resume.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: Utc::now(),
        },
        data,
    }
}

fn spec(ats: Ats, board: &str, title: &str, company: &str, location: &str) -> PostingSpec {
    PostingSpec {
        ats,
        board: board.into(),
        title: title.into(),
        company: Some(company.into()),
        job: None,
        location: Some(location.into()),
        workplace: None,
        employment: Some(Employment::FullTime),
        department: None,
        team: None,
        description: None,
        salary: None,
        salary_structured: None,
        salary_in_text: false,
        years: None,
        posted_at: None,
        listed: None,
        questions: Vec::new(),
        variant: Variant::Plain,
    }
}

/// The postings, by what the test expects of them.
pub struct Placed {
    /// Native ids per role.
    pub ids: HashMap<&'static str, (Ats, String)>,
}

pub fn place(sandbox: &Sandbox) -> Placed {
    let boards = &sandbox.boards;
    let mut ids = HashMap::new();
    let mut add = |role: &'static str, spec: PostingSpec| {
        let posting = boards.add(spec).expect("a fixture");
        ids.insert(role, (posting.ats, posting.id.clone()));
        posting
    };
    // 100: title, company, location, type, salary and years all match.
    let mut top = spec(
        Ats::Greenhouse,
        BOARD,
        "Senior Backend Engineer",
        "Acme",
        "Bengaluru, India",
    );
    top.workplace = Some(Workplace::OnSite);
    top.salary = Some(Salary {
        currency: "USD".into(),
        min: 150_000,
        max: 190_000,
    });
    top.years = Some(3);
    top.questions = vec![QuestionSpec {
        label: "Are you authorized to work in India?".into(),
        kind: QuestionKind::YesNo,
        required: true,
    }];
    let top = add("top", top);
    // The same job on Lever, spelled another way: deduplicated away.
    let mut twin = spec(
        Ats::Lever,
        BOARD,
        "Senior backend engineer",
        "Acme",
        "Bangalore, India",
    );
    twin.job = Some(top.job);
    twin.workplace = Some(Workplace::OnSite);
    twin.salary = top.salary.clone();
    twin.years = Some(3);
    twin.questions = vec![QuestionSpec {
        label: "Are you authorized to work in India?".into(),
        kind: QuestionKind::YesNo,
        required: true,
    }];
    add("twin", twin);
    // 88 on Lever (remote, no salary, no years stated).
    add(
        "remote",
        spec(Ats::Lever, BOARD, "Backend Engineer", "Acme", "Remote"),
    );
    // In the apply band, behind a CAPTCHA: tier 2, with a screenshot.
    let mut walled = spec(
        Ats::Greenhouse,
        BOARD,
        "Backend Engineer, Payments",
        "Acme",
        "Bengaluru, India",
    );
    walled.variant = Variant::Captcha;
    add("captcha", walled);
    // In the apply band too, behind a login wall, an e-mailed code, and a required question
    // the profile does not answer (no LLM configured here): tier 2 each.
    let mut login = spec(
        Ats::Greenhouse,
        BOARD,
        "Backend Engineer, Billing",
        "Acme",
        "Bengaluru, India",
    );
    login.variant = Variant::Login;
    add("login", login);
    let mut code = spec(
        Ats::Greenhouse,
        BOARD,
        "Backend Engineer, Search",
        "Acme",
        "Bengaluru, India",
    );
    code.variant = Variant::EmailCode;
    add("email_code", code);
    let mut essay = spec(
        Ats::Greenhouse,
        BOARD,
        "Backend Engineer, Growth",
        "Acme",
        "Bengaluru, India",
    );
    essay.questions = vec![QuestionSpec {
        label: "Why do you want to join us?".into(),
        kind: QuestionKind::Textarea,
        required: true,
    }];
    add("unanswered", essay);
    // 65 each: the review band.
    // (A Lever board is one company's: other companies are on their own boards.)
    add(
        "approve",
        spec(
            Ats::Lever,
            "globex",
            "Platform Engineer",
            "Globex",
            "Remote",
        ),
    );
    add(
        "reject",
        spec(
            Ats::Greenhouse,
            "initech",
            "Data Engineer",
            "Initech",
            "Remote",
        ),
    );
    // 30: skipped.
    let mut far = spec(
        Ats::Greenhouse,
        "umbrella",
        "Sales Manager",
        "Umbrella",
        "Paris, France",
    );
    far.workplace = Some(Workplace::OnSite);
    add("skip", far);
    Placed { ids }
}

async fn wait_for<T>(what: &str, within: Duration, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn dump(store: &Arc<dyn Store>, id: JobId) {
    let job = store.get(id).await.expect("get");
    let events = store.events(id, 0, 10_000).await.expect("events");
    let tail: Vec<_> = events
        .iter()
        .rev()
        .take(20)
        .map(|e| (&e.kind, &e.data))
        .collect();
    panic!("the apply job: {job:?}\nlast events: {tail:#?}");
}

async fn finished(store: &Arc<dyn Store>, id: JobId) -> drover_queue::Job {
    wait_for(
        "the apply job to finish",
        Duration::from_secs(180),
        async || {
            let job = store.get(id).await.expect("get");
            job.status.is_terminal().then_some(job)
        },
    )
    .await
}

pub async fn csv_rows(store: &Arc<dyn Store>, id: JobId) -> Vec<HashMap<String, String>> {
    let artifact = store
        .artifact(id, "applications.csv")
        .await
        .expect("artifact")
        .expect("applications.csv");
    let mut reader = csv::Reader::from_reader(artifact.data.as_slice());
    let headers = reader.headers().expect("headers").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

async fn submit(store: &Arc<dyn Store>, settings: &Settings, config: Value) -> JobId {
    let job = registry(settings)
        .prepare(NewJob::new("apply", "nightly applications for asha").config(config))
        .expect("a valid apply job");
    store.enqueue(job).await.expect("enqueue").job().id
}

fn sources() -> Value {
    json!([
        {"type": "greenhouse", "board": BOARD},
        {"type": "lever", "board": BOARD},
        {"type": "lever", "board": "globex"},
        {"type": "greenhouse", "board": "initech"},
        {"type": "greenhouse", "board": "umbrella"},
        // A board that does not exist: its failure is reported, the others go on.
        {"type": "ashby", "board": "ghost"},
    ])
}

async fn applies_once_per_posting_reviews_and_hands_walls_over(backend: Backend) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info,sqlx=warn,hyper=warn,reqwest=warn")
        .try_init();
    let sandbox = Sandbox::start(SandboxConfig {
        boards: drover_sandbox::BoardsConfig {
            companies: 1,
            jobs: 0,
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let placed = place(&sandbox);
    let settings = settings(&sandbox);
    let store = backend.open().await;
    store
        .put_profile(USER, &profile(), Utc::now())
        .await
        .expect("profile");
    store.put_resume(USER, &resume()).await.expect("résumé");
    let worker = drover_worker::start(store.clone(), registry(&settings), options());

    let id = submit(
        &store,
        &settings,
        json!({"user_id": USER, "sources": sources()}),
    )
    .await;

    // The two reviews wait in the inbox while the rest is applied to.
    let started = tokio::time::Instant::now();
    let gates = wait_for("two review gates", Duration::from_secs(60), async || {
        let gates = store.gates(id).await.expect("gates");
        if gates.len() == 2 {
            return Some(gates);
        }
        let job = store.get(id).await.expect("get");
        if job.status.is_terminal() || started.elapsed() > Duration::from_secs(55) {
            dump(&store, id).await;
        }
        None
    })
    .await;
    for gate in &gates {
        let posting = gate.context["posting"]["title"]
            .as_str()
            .unwrap_or_default();
        let decision = if posting == "Platform Engineer" {
            "approve"
        } else {
            "reject"
        };
        store
            .decide(
                id,
                Decision {
                    key: gate.key.clone(),
                    decision: json!(decision),
                    note: Some(format!("{decision} in the test")),
                },
            )
            .await
            .expect("decide");
    }

    let job = finished(&store, id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let result = job.result.clone().expect("a result");
    let reports = result["sources"].as_array().expect("sources");
    assert_eq!(reports.len(), 6, "{result}");
    let failed: Vec<&Value> = reports
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert_eq!(failed.len(), 1, "{result}");
    assert_eq!(failed[0]["source"]["board"], "ghost");
    assert!(
        sandbox.boards.max_in_flight() <= 4,
        "{} board requests at once",
        sandbox.boards.max_in_flight()
    );

    // What reached the boards: one accepted submission each for the top posting (on one of
    // its two boards), the remote one and the approved review; nothing else.
    // The form with an e-mailed code took its submit and asked for the code: the only
    // submission not accepted.
    let submissions = sandbox.boards.applications();
    let accepted: Vec<_> = submissions.iter().filter(|a| a.accepted).collect();
    assert_eq!(accepted.len(), 3, "{submissions:#?}");
    let refused: Vec<_> = submissions.iter().filter(|a| !a.accepted).collect();
    assert_eq!(refused.len(), 1, "{submissions:#?}");
    assert_eq!(refused[0].title, "Backend Engineer, Search");
    // (Which board's copy of the top job is kept is dedup's choice.)
    let mut titles: Vec<String> = accepted.iter().map(|a| a.title.to_lowercase()).collect();
    titles.sort();
    assert_eq!(
        titles,
        [
            "backend engineer",
            "platform engineer",
            "senior backend engineer"
        ]
    );
    let (_, top_id) = &placed.ids["top"];
    let (_, twin_id) = &placed.ids["twin"];
    let top_job: Vec<_> = accepted
        .iter()
        .filter(|a| &a.posting == top_id || &a.posting == twin_id)
        .collect();
    assert_eq!(top_job.len(), 1, "the job on two boards is applied to once");
    let resume = resume();
    for a in &accepted {
        assert_eq!(a.files.len(), 1, "{a:?}");
        assert_eq!(a.files[0].size, resume.data.len());
        let name = a
            .fields
            .get("name")
            .or_else(|| a.fields.get("job_application[first_name]"));
        assert!(
            name.is_some_and(|n| n.starts_with("Asha")),
            "{:?}",
            a.fields
        );
        assert_eq!(
            a.fields
                .get("email")
                .or_else(|| a.fields.get("job_application[email]"))
                .map(String::as_str),
            Some("asha@example.com")
        );
    }
    // The custom question (on both boards' forms) was answered from the profile.
    let answered = top_job[0].fields.iter().any(|(k, v)| {
        (k.starts_with("question_") || k.starts_with("cards[")) && (v == "1" || v == "Yes")
    });
    assert!(answered, "{:?}", top_job[0].fields);

    // The report: one row per posting after dedup, with the breakdown and the outcome.
    let rows = csv_rows(&store, id).await;
    assert_eq!(rows.len(), 9, "{rows:#?}");
    let by_title = |t: &str| {
        rows.iter()
            .find(|r| r["title"].eq_ignore_ascii_case(t))
            .unwrap_or_else(|| panic!("no row for {t}: {rows:#?}"))
    };
    let top = by_title("Senior Backend Engineer");
    assert_eq!(top["score"], "100");
    assert_eq!(top["band"], "apply");
    assert_eq!(top["outcome"], "applied");
    assert!(!top["duplicates"].is_empty(), "{top:?}");
    assert_eq!(by_title("Backend Engineer")["outcome"], "applied");
    let walled = by_title("Backend Engineer, Payments");
    assert_eq!(walled["outcome"], "manual", "{walled:?}");
    assert!(walled["reason"].contains("CAPTCHA"), "{walled:?}");
    assert!(!walled["screenshot"].is_empty(), "{walled:?}");
    let png = store
        .artifact(id, &walled["screenshot"])
        .await
        .expect("artifact")
        .expect("the screenshot");
    assert!(png.data.starts_with(b"\x89PNG"), "a PNG screenshot");
    assert!(!walled["cover_letter"].is_empty(), "{walled:?}");
    for (title, why) in [
        ("Backend Engineer, Billing", "login"),
        ("Backend Engineer, Search", "code"),
        ("Backend Engineer, Growth", "Why do you want to join us?"),
    ] {
        let row = by_title(title);
        assert_eq!(row["outcome"], "manual", "{row:?}");
        assert!(row["reason"].contains(why), "{row:?}");
        assert!(!row["cover_letter"].is_empty(), "{row:?}");
    }
    let approved = by_title("Platform Engineer");
    assert_eq!(
        (approved["band"].as_str(), approved["decision"].as_str()),
        ("review", "approve")
    );
    assert_eq!(approved["outcome"], "applied");
    let rejected = by_title("Data Engineer");
    assert_eq!(
        (rejected["decision"].as_str(), rejected["outcome"].as_str()),
        ("reject", "rejected")
    );
    let skipped = by_title("Sales Manager");
    assert_eq!(
        (skipped["band"].as_str(), skipped["outcome"].as_str()),
        ("skip", "skipped")
    );
    for column in [
        "title_points",
        "company_points",
        "location_points",
        "job_type_points",
        "salary_points",
        "experience_points",
    ] {
        assert!(
            rows.iter().all(|r| r[column].parse::<u32>().is_ok()),
            "{column}"
        );
    }

    // The ledger counts the three applications for today.
    let counts = store
        .application_counts(USER, Utc::now())
        .await
        .expect("counts");
    assert_eq!(counts.day, 3);

    // A second job of the same user applies to nothing again.
    let again = submit(
        &store,
        &settings,
        json!({"user_id": USER, "sources": sources(), "review": "skip"}),
    )
    .await;
    let job = finished(&store, again).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    // (The e-mailed-code posting is tier 2 in the ledger: not submitted again either.)
    assert_eq!(
        sandbox.boards.applications().len(),
        4,
        "nothing submitted twice"
    );
    let rows = csv_rows(&store, again).await;
    let top = rows
        .iter()
        .find(|r| r["title"].eq_ignore_ascii_case("Senior Backend Engineer"))
        .expect("row");
    assert_eq!(top["outcome"], "skipped");
    assert!(top["reason"].contains(&id.to_string()), "{top:?}");

    worker.shutdown();
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_applies_once_per_posting_reviews_and_hands_walls_over() {
    applies_once_per_posting_reviews_and_hands_walls_over(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_applies_once_per_posting_reviews_and_hands_walls_over() {
    applies_once_per_posting_reviews_and_hands_walls_over(Backend::postgres()).await;
}

/// Two jobs of one user at once, three apply-band postings each, under a daily cap of 2:
/// two submissions in all; both jobs wait for the next Asia/Kolkata day.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caps_hold_across_two_concurrent_jobs_of_one_user() {
    let sandbox = Sandbox::start(SandboxConfig {
        boards: drover_sandbox::BoardsConfig {
            companies: 1,
            jobs: 0,
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    for board in ["north", "south"] {
        for title in [
            "Backend Engineer",
            "Senior Backend Engineer",
            "Staff Backend Engineer",
        ] {
            sandbox
                .boards
                .add(spec(Ats::Lever, board, title, "Acme", "Remote"))
                .expect("a fixture");
        }
    }
    let settings = settings(&sandbox);
    let backend = Backend::sqlite();
    let store = backend.open().await;
    let mut capped = profile();
    capped.companies = vec!["north".into(), "south".into()];
    capped.caps.daily = 2;
    store
        .put_profile(USER, &capped, Utc::now())
        .await
        .expect("profile");
    store.put_resume(USER, &resume()).await.expect("résumé");
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let mut jobs = Vec::new();
    for board in ["north", "south"] {
        let config = json!({"user_id": USER, "sources": [{"type": "lever", "board": board}]});
        jobs.push(submit(&store, &settings, config).await);
    }

    let next_day = drover_queue::application::ist_day(Utc::now()).1;
    for id in &jobs {
        wait_for(
            "the job to snooze to the next day",
            Duration::from_secs(120),
            async || {
                let job = store.get(*id).await.expect("get");
                assert!(!job.status.is_terminal(), "{job:?}");
                (job.status == JobStatus::Queued && job.run_at >= next_day).then_some(())
            },
        )
        .await;
    }
    let submissions = sandbox.boards.applications();
    assert_eq!(submissions.len(), 2, "{submissions:#?}");
    let counts = store
        .application_counts(USER, Utc::now())
        .await
        .expect("counts");
    assert_eq!(counts.day, 2);
    worker.shutdown();
    backend.cleanup().await;
}

/// A review nobody decides is rejected at its deadline (24 h, here 2 s), and the job goes
/// on without applying to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecided_review_is_rejected_at_its_deadline() {
    let sandbox = Sandbox::start(SandboxConfig {
        boards: drover_sandbox::BoardsConfig {
            companies: 1,
            jobs: 0,
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    sandbox
        .boards
        .add(spec(
            Ats::Lever,
            "globex",
            "Platform Engineer",
            "Globex",
            "Remote",
        ))
        .expect("a fixture");
    let settings = settings(&sandbox);
    let backend = Backend::sqlite();
    let store = backend.open().await;
    store
        .put_profile(USER, &profile(), Utc::now())
        .await
        .expect("profile");
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let config = json!({
        "user_id": USER,
        "sources": [{"type": "lever", "board": "globex"}],
        "review_timeout": "2s",
    });
    let id = submit(&store, &settings, config).await;
    let job = finished(&store, id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let gates = store.gates(id).await.expect("gates");
    assert_eq!(gates.len(), 1);
    assert_eq!(gates[0].status, drover_queue::GateStatus::TimedOut);
    let rows = csv_rows(&store, id).await;
    assert_eq!(rows[0]["decision"], "reject (timed out)", "{rows:?}");
    assert_eq!(rows[0]["outcome"], "rejected");
    assert!(sandbox.boards.applications().is_empty());
    worker.shutdown();
    backend.cleanup().await;
}

/// With `llm.base_url` set, a required question the profile's `answers` do not cover is
/// answered by the LLM (the sandbox's chat API) and the posting is applied to in tier 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_llm_answers_what_the_profile_does_not() {
    let sandbox = Sandbox::start(SandboxConfig {
        boards: drover_sandbox::BoardsConfig {
            companies: 1,
            jobs: 0,
            ..Default::default()
        },
        ..SandboxConfig::default()
    })
    .await
    .expect("sandbox");
    let mut essay = spec(
        Ats::Greenhouse,
        BOARD,
        "Backend Engineer, Growth",
        "Acme",
        "Bengaluru, India",
    );
    essay.questions = vec![QuestionSpec {
        label: "Why do you want to join us?".into(),
        kind: QuestionKind::Textarea,
        required: true,
    }];
    sandbox.boards.add(essay).expect("a fixture");
    let settings = Settings {
        llm_base_url: Some(format!("{}/v1", sandbox.base_url())),
        llm_api_key: Some(drover_workloads::Secret::new("sk-apply-test")),
        ..settings(&sandbox)
    };
    let backend = Backend::sqlite();
    let store = backend.open().await;
    store
        .put_profile(USER, &profile(), Utc::now())
        .await
        .expect("profile");
    store.put_resume(USER, &resume()).await.expect("résumé");
    let worker = drover_worker::start(store.clone(), registry(&settings), options());
    let config = json!({"user_id": USER, "sources": [{"type": "greenhouse", "board": BOARD}]});
    let id = submit(&store, &settings, config).await;
    let job = finished(&store, id).await;
    assert_eq!(job.status, JobStatus::Completed, "{job:?}");
    let submissions = sandbox.boards.applications();
    assert_eq!(submissions.len(), 1, "{submissions:#?}");
    assert!(submissions[0].accepted, "{submissions:#?}");
    let answer = submissions[0]
        .fields
        .iter()
        .find(|(k, _)| k.starts_with("question_"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(
        answer.len() > 10,
        "the LLM's answer: {:?}",
        submissions[0].fields
    );
    let rows = csv_rows(&store, id).await;
    assert_eq!(rows[0]["outcome"], "applied", "{rows:?}");
    worker.shutdown();
    backend.cleanup().await;
}
