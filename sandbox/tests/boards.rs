//! The job boards answer in the real services' shapes (Greenhouse Job Board API, Lever
//! Postings API, Ashby posting API), from the seed alone; one job sits on two boards; a board
//! fails alone when told to; the hosted forms record what was posted, confirm it, check the
//! required fields, and each wall (CAPTCHA, login, e-mailed code) stops a plain POST.

use drover_sandbox::boards::{Outcome, QuestionKind, QuestionSpec, Salary};
use drover_sandbox::{Ats, BoardsConfig, PostingSpec, Sandbox, SandboxConfig, Variant};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::Value;

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .expect("a date")
}

async fn sandbox_with(boards: BoardsConfig) -> Sandbox {
    let config = SandboxConfig {
        boards,
        ..SandboxConfig::default()
    };
    Sandbox::start(config).await.expect("start the sandbox")
}

async fn sandbox() -> Sandbox {
    sandbox_with(BoardsConfig {
        seed: 5,
        now: now(),
        ..BoardsConfig::default()
    })
    .await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

async fn json(url: &str) -> (StatusCode, Value) {
    let res = client().get(url).send().await.expect("GET");
    let status = res.status();
    (status, res.json().await.expect("a JSON body"))
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn has_keys(v: &Value, want: &[&str]) {
    let have = keys(v);
    for k in want {
        assert!(have.contains(k), "`{k}` missing from {have:?}");
    }
}

/// A multipart body as a browser sends it.
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----droverTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    for (name, filename, bytes) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn post_form(
    url: &str,
    fields: &[(&str, &str)],
    files: &[(&str, &str, &[u8])],
) -> reqwest::Response {
    let (content_type, body) = multipart(fields, files);
    client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("POST")
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

const RESUME: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn spec(ats: Ats, board: &str, title: &str) -> PostingSpec {
    PostingSpec {
        ats,
        board: board.into(),
        title: title.into(),
        company: None,
        job: None,
        location: None,
        workplace: None,
        employment: None,
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

#[tokio::test]
async fn greenhouse_answers_in_its_shape() {
    let s = sandbox().await;
    let base = s.base_url();
    let first = &s.boards.postings()[0];
    assert_eq!(first.ats, Ats::Greenhouse);
    let token = &first.board;

    let (status, board) = json(&format!("{base}/v1/boards/{token}/jobs?content=true")).await;
    assert_eq!(status, StatusCode::OK);
    let jobs = board["jobs"].as_array().expect("jobs");
    assert!(!jobs.is_empty());
    assert_eq!(board["meta"]["total"].as_u64(), Some(jobs.len() as u64));
    for job in jobs {
        has_keys(
            job,
            &[
                "id",
                "internal_job_id",
                "title",
                "updated_at",
                "requisition_id",
                "location",
                "absolute_url",
                "metadata",
                "content",
                "departments",
                "offices",
            ],
        );
        assert!(job["id"].is_u64(), "a numeric id: {}", job["id"]);
        assert!(job["location"]["name"].is_string());
        let content = job["content"].as_str().expect("content");
        assert!(
            content.starts_with("&lt;p&gt;"),
            "entity-encoded: {content}"
        );
        assert!(!content.contains('<'));
        assert!(job["departments"][0]["name"].is_string());
        has_keys(
            &job["offices"][0],
            &["id", "name", "location", "parent_id", "child_ids"],
        );
        let url = job["absolute_url"].as_str().expect("absolute_url");
        assert!(url.starts_with(&base) && url.contains("/gh/"), "{url}");
        chrono::DateTime::parse_from_rfc3339(job["updated_at"].as_str().expect("updated_at"))
            .expect("an RFC 3339 time with an offset");
    }
    let (_, plain) = json(&format!("{base}/v1/boards/{token}/jobs")).await;
    assert!(
        plain["jobs"][0].get("content").is_none(),
        "content only on request"
    );

    // One job with its questions and pay ranges.
    let id = &first.id;
    let url = format!("{base}/v1/boards/{token}/jobs/{id}?questions=true&pay_transparency=true");
    let (status, job) = json(&url).await;
    assert_eq!(status, StatusCode::OK);
    let questions = job["questions"].as_array().expect("questions");
    assert_eq!(questions[0]["label"], "First Name");
    assert_eq!(questions[0]["fields"][0]["name"], "first_name");
    assert_eq!(questions[0]["fields"][0]["type"], "input_text");
    let resume = questions
        .iter()
        .find(|q| q["label"] == "Resume/CV")
        .expect("a résumé question");
    assert_eq!(resume["fields"][0]["type"], "input_file");
    assert!(job["pay_input_ranges"].is_array());

    // A fixture with a structured salary and a custom question shows both.
    let mut fixture = spec(Ats::Greenhouse, token, "Senior Rust Engineer");
    fixture.salary = Some(Salary {
        currency: "USD".into(),
        min: 150_000,
        max: 190_000,
    });
    fixture.questions = vec![QuestionSpec {
        label: "Will you now or in the future require visa sponsorship?".into(),
        kind: QuestionKind::YesNo,
        required: true,
    }];
    let placed = s.boards.add(fixture).expect("a fixture");
    let url = format!(
        "{base}/v1/boards/{token}/jobs/{}?questions=true&pay_transparency=true",
        placed.id
    );
    let (_, job) = json(&url).await;
    let range = &job["pay_input_ranges"][0];
    assert_eq!(range["min_cents"], 15_000_000);
    assert_eq!(range["max_cents"], 19_000_000);
    assert_eq!(range["currency_type"], "USD");
    let custom = job["questions"]
        .as_array()
        .and_then(|q| q.last())
        .expect("the custom question");
    assert_eq!(custom["required"], true);
    let name = custom["fields"][0]["name"].as_str().expect("name");
    assert!(name.starts_with("question_"), "{name}");
    assert_eq!(custom["fields"][0]["type"], "multi_value_single_select");
    assert_eq!(custom["fields"][0]["values"][0]["label"], "Yes");

    let (status, body) = json(&format!("{base}/v1/boards/no-such-board/jobs")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], 404);
    let (status, _) = json(&format!("{base}/v1/boards/{token}/jobs/1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lever_answers_in_its_shape() {
    let s = sandbox().await;
    let base = s.base_url();
    let site = &s.boards.postings()[1].board;
    let (status, list) = json(&format!("{base}/v0/postings/{site}?mode=json")).await;
    assert_eq!(status, StatusCode::OK);
    let all = list.as_array().expect("an array");
    assert!(all.len() >= 2);
    for p in all {
        has_keys(
            p,
            &[
                "id",
                "text",
                "categories",
                "workplaceType",
                "descriptionPlain",
                "description",
                "lists",
                "hostedUrl",
                "applyUrl",
                "createdAt",
            ],
        );
        has_keys(
            &p["categories"],
            &["location", "commitment", "team", "department"],
        );
        let id = p["id"].as_str().expect("id");
        assert_eq!(id.len(), 36, "a UUID: {id}");
        assert!(p["createdAt"].is_i64());
        assert!(
            ["on-site", "remote", "hybrid"].contains(&p["workplaceType"].as_str().unwrap_or(""))
        );
        let apply = p["applyUrl"].as_str().expect("applyUrl");
        assert!(
            apply.ends_with("/apply") && apply.starts_with(&base),
            "{apply}"
        );
        if let Some(range) = p.get("salaryRange") {
            has_keys(range, &["currency", "interval", "min", "max"]);
        }
    }
    // skip/limit page through the same list.
    let (_, a) = json(&format!(
        "{base}/v0/postings/{site}?mode=json&skip=0&limit=1"
    ))
    .await;
    let (_, b) = json(&format!(
        "{base}/v0/postings/{site}?mode=json&skip=1&limit=100"
    ))
    .await;
    assert_eq!(a.as_array().map(Vec::len), Some(1));
    assert_eq!(a[0]["id"], all[0]["id"]);
    assert_eq!(b.as_array().map(Vec::len), Some(all.len() - 1));

    let id = all[0]["id"].as_str().expect("id");
    let (status, one) = json(&format!("{base}/v0/postings/{site}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], all[0]["id"]);

    let (status, body) = json(&format!("{base}/v0/postings/no-such-site?mode=json")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["ok"], false);

    // Across the whole world: some postings state a structured salary, some do not.
    let mut with = 0;
    let mut without = 0;
    for c in s
        .boards
        .companies()
        .iter()
        .filter(|c| c.boards.contains(&Ats::Lever))
    {
        let (_, list) = json(&format!("{base}/v0/postings/{}?mode=json", c.slug)).await;
        for p in list.as_array().expect("array") {
            if p.get("salaryRange").is_some() {
                with += 1;
            } else {
                without += 1;
            }
        }
    }
    assert!(with > 0 && without > 0, "{with} with, {without} without");
}

#[tokio::test]
async fn ashby_answers_in_its_shape() {
    let s = sandbox().await;
    let base = s.base_url();
    let boards: Vec<String> = s
        .boards
        .companies()
        .into_iter()
        .filter(|c| c.boards.contains(&Ats::Ashby))
        .map(|c| c.slug)
        .collect();
    assert!(!boards.is_empty());
    let mut unlisted = 0;
    let mut compensated = 0;
    for name in &boards {
        let url = format!("{base}/posting-api/job-board/{name}?includeCompensation=true");
        let (status, board) = json(&url).await;
        assert_eq!(status, StatusCode::OK);
        assert!(board["apiVersion"].is_string());
        for job in board["jobs"].as_array().expect("jobs") {
            has_keys(
                job,
                &[
                    "id",
                    "title",
                    "department",
                    "team",
                    "employmentType",
                    "location",
                    "secondaryLocations",
                    "isRemote",
                    "workplaceType",
                    "publishedAt",
                    "isListed",
                    "jobUrl",
                    "applyUrl",
                    "descriptionHtml",
                    "descriptionPlain",
                    "shouldDisplayCompensationOnJobPostings",
                    "compensation",
                ],
            );
            unlisted += usize::from(job["isListed"] == false);
            if job["shouldDisplayCompensationOnJobPostings"] == true {
                compensated += 1;
                let c = &job["compensation"]["summaryComponents"][0];
                assert_eq!(c["compensationType"], "Salary");
                assert!(c["minValue"].as_u64() <= c["maxValue"].as_u64());
            }
        }
        let (_, bare) = json(&format!("{base}/posting-api/job-board/{name}")).await;
        if let Some(job) = bare["jobs"].get(0) {
            assert!(
                job.get("compensation").is_none(),
                "compensation on request only"
            );
        }
    }
    assert!(compensated > 0, "some Ashby postings show a salary");
    assert!(unlisted > 0, "some Ashby postings are unlisted");
    let (status, _) = json(&format!("{base}/posting-api/job-board/no-such-board")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_seed_decides_the_postings() {
    let config = |seed| BoardsConfig {
        seed,
        now: now(),
        ..BoardsConfig::default()
    };
    let (a, b, c) = (
        sandbox_with(config(9)).await,
        sandbox_with(config(9)).await,
        sandbox_with(config(10)).await,
    );
    let summary = |s: &Sandbox| {
        s.boards
            .postings()
            .iter()
            .map(|p| {
                format!(
                    "{:?} {} {} {} {:?}",
                    p.ats, p.board, p.id, p.title, p.salary
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&a), summary(&b));
    assert_ne!(summary(&a), summary(&c));
    // And the answers on the wire, apart from the port in the URLs.
    let token = &a.boards.postings()[0].board;
    let body = |s: &Sandbox| {
        let url = format!("{}/v1/boards/{token}/jobs?content=true", s.base_url());
        let base = s.base_url();
        async move {
            let text = client()
                .get(url)
                .send()
                .await
                .expect("GET")
                .text()
                .await
                .expect("body");
            text.replace(&base, "BASE")
        }
    };
    assert_eq!(body(&a).await, body(&b).await);
}

#[tokio::test]
async fn one_job_sits_on_two_boards() {
    let s = sandbox().await;
    let base = s.base_url();
    let postings = s.boards.postings();
    let (gh, lever) = (&postings[0], &postings[1]);
    assert_eq!(gh.job, lever.job);
    let (_, job) = json(&format!("{base}/v1/boards/{}/jobs/{}", gh.board, gh.id)).await;
    let (_, posting) = json(&format!("{base}/v0/postings/{}/{}", lever.board, lever.id)).await;
    let (a, b) = (
        job["title"].as_str().expect("title"),
        posting["text"].as_str().expect("text"),
    );
    assert_ne!(a, b, "the title is cased differently");
    assert_eq!(a.to_lowercase(), b.to_lowercase());
    assert_ne!(
        job["location"]["name"], posting["categories"]["location"],
        "the location is spelled differently"
    );
    // Many more such pairs across the world.
    let pairs = postings.windows(2).filter(|w| w[0].job == w[1].job).count();
    assert!(pairs > 5, "{pairs} jobs on two boards");
}

#[tokio::test]
async fn a_failing_board_fails_alone() {
    let s = sandbox().await;
    let base = s.base_url();
    let postings = s.boards.postings();
    let slug = postings[0].board.clone();
    let other = postings
        .iter()
        .find(|p| p.ats == Ats::Greenhouse && p.board != slug)
        .expect("another Greenhouse board")
        .board
        .clone();
    let fail = client()
        .post(format!("{base}/_sandbox/boards/{slug}/fail"))
        .json(&serde_json::json!({"status": 429, "retry_after_s": 2, "times": 2, "ats": "lever"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(fail.status(), StatusCode::NO_CONTENT);
    let lever = format!("{base}/v0/postings/{slug}?mode=json");
    for _ in 0..2 {
        let res = client().get(&lever).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"2"[..])
        );
    }
    let (status, _) = json(&format!("{base}/v1/boards/{slug}/jobs")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same company's Greenhouse board is fine"
    );
    let (status, _) = json(&lever).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "after `times` failures it answers again"
    );

    // A 500 until cleared, on every ATS of that name; other boards unaffected.
    let fail = client()
        .post(format!("{base}/_sandbox/boards/{slug}/fail"))
        .json(&serde_json::json!({"status": 500}))
        .send()
        .await
        .expect("POST");
    assert_eq!(fail.status(), StatusCode::NO_CONTENT);
    for _ in 0..3 {
        let (status, body) = json(&format!("{base}/v1/boards/{slug}/jobs")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["status"], 500);
    }
    let (status, _) = json(&format!("{base}/v1/boards/{other}/jobs")).await;
    assert_eq!(status, StatusCode::OK);
    let clear = client()
        .delete(format!("{base}/_sandbox/boards/{slug}/fail"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(clear.status(), StatusCode::NO_CONTENT);
    let (status, _) = json(&format!("{base}/v1/boards/{slug}/jobs")).await;
    assert_eq!(status, StatusCode::OK);

    let bad = client()
        .post(format!("{base}/_sandbox/boards/{slug}/fail"))
        .json(&serde_json::json!({"status": 404}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["field"], "status");
}

#[tokio::test]
async fn fixtures_are_placed_over_http() {
    let s = sandbox().await;
    let base = s.base_url();
    let res = client()
        .post(format!("{base}/_sandbox/boards/postings"))
        .json(&serde_json::json!({
            "ats": "lever", "board": "fixturecorp", "title": "Staff Platform Engineer",
            "company": "Fixture Corp", "location": "Pune, India", "workplace": "hybrid",
            "salary": {"currency": "INR", "min": 4000000, "max": 5500000},
            "salary_in_text": true, "years": 7, "variant": "captcha",
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), StatusCode::CREATED);
    let placed: Value = res.json().await.expect("json");
    let id = placed["id"].as_str().expect("id");
    assert!(placed["apply_url"]
        .as_str()
        .unwrap_or("")
        .ends_with("/apply"));
    let (status, list) = json(&format!("{base}/v0/postings/fixturecorp?mode=json")).await;
    assert_eq!(status, StatusCode::OK);
    let p = &list[0];
    assert_eq!(p["id"], id);
    assert_eq!(p["workplaceType"], "hybrid");
    assert_eq!(p["salaryRange"]["max"], 5_500_000);
    assert!(p["descriptionPlain"]
        .as_str()
        .unwrap_or("")
        .contains("₹4,000,000 - ₹5,500,000"));
    assert!(p["lists"][0]["content"]
        .as_str()
        .unwrap_or("")
        .contains("7+ years"));
    assert_eq!(
        s.boards.posting(Ats::Lever, id).map(|p| p.variant),
        Some(Variant::Captcha)
    );
    let set = client()
        .post(format!(
            "{base}/_sandbox/boards/postings/lever/{id}/variant"
        ))
        .json(&serde_json::json!({"variant": "email_code"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        s.boards.posting(Ats::Lever, id).map(|p| p.variant),
        Some(Variant::EmailCode)
    );

    let bad = client()
        .post(format!("{base}/_sandbox/boards/postings"))
        .json(&serde_json::json!({"ats": "lever", "board": "has space", "title": "x"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["field"], "board");
}

#[tokio::test]
async fn a_greenhouse_form_post_is_recorded_and_confirmed() {
    let s = sandbox().await;
    let base = s.base_url();
    let mut fixture = spec(Ats::Greenhouse, "formco", "Backend Engineer");
    fixture.questions = vec![QuestionSpec {
        label: "Why do you want to work here?".into(),
        kind: QuestionKind::Textarea,
        required: true,
    }];
    let p = s.boards.add(fixture).expect("fixture");
    let question = p.questions[0].field(Ats::Greenhouse);
    let url = format!("{base}{}", p.page_path());

    let page = client().get(&url).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("html");
    for needle in [
        "id=\"application_form\"",
        "enctype=\"multipart/form-data\"",
        "name=\"job_application[first_name]\"",
        "name=\"job_application[last_name]\"",
        "name=\"job_application[email]\"",
        "name=\"job_application[phone]\"",
        "type=\"file\" id=\"resume\" name=\"job_application[resume]\"",
        "id=\"submit_app\" value=\"Submit Application\"",
        &format!("<label for=\"{question}\">Why do you want to work here?</label>"),
    ] {
        assert!(html.contains(needle), "{needle}");
    }

    // Missing fields come back with the errors; what was typed stays.
    let res = post_form(
        &url,
        &[
            ("job_application[first_name]", "Asha"),
            ("job_application[last_name]", "Rao"),
            ("job_application[email]", "not-an-address"),
        ],
        &[],
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains("id=\"error_message\""));
    for label in [
        "Email",
        "Phone",
        "Resume/CV",
        "Why do you want to work here?",
    ] {
        assert!(html.contains(label), "{label} named");
    }
    assert!(html.contains("value=\"Asha\""));

    let res = post_form(
        &url,
        &[
            ("job_application[first_name]", "Asha"),
            ("job_application[last_name]", "Rao"),
            ("job_application[email]", "asha@example.com"),
            ("job_application[phone]", "+91 98450 00000"),
            (&question, "I like durable queues."),
        ],
        &[("job_application[resume]", "asha-rao.pdf", RESUME)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.ends_with("/confirmation"), "{to}");
    let done = client()
        .get(format!("{base}{to}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(done.contains("Thank you for applying"));
    assert!(done.contains("Your application has been received"));

    let (_, list) = json(&format!("{base}/_sandbox/applications")).await;
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["outcome"], "invalid");
    let missing = list[0]["missing"].as_array().expect("missing");
    assert!(missing.iter().any(|m| m == "Email"));
    let ok = &list[1];
    assert_eq!(ok["outcome"], "accepted");
    assert_eq!(ok["accepted"], true);
    assert_eq!(ok["ats"], "greenhouse");
    assert_eq!(ok["posting"], p.id.as_str());
    assert_eq!(ok["fields"]["job_application[email]"], "asha@example.com");
    assert_eq!(ok["fields"][question.as_str()], "I like durable queues.");
    let file = &ok["files"][0];
    assert_eq!(file["field"], "job_application[resume]");
    assert_eq!(file["filename"], "asha-rao.pdf");
    assert_eq!(file["size"], RESUME.len());
    assert_eq!(file["sha256"], sha256_hex(RESUME).as_str());
    let (_, stats) = json(&format!("{base}/_sandbox/stats")).await;
    assert_eq!(stats["applications"]["accepted"], 1);
    assert_eq!(stats["applications"]["invalid"], 1);
    let apps = s.boards.applications();
    assert_eq!(apps[1].files[0].bytes, RESUME);
    assert_eq!(apps[1].outcome, Outcome::Accepted);
}

#[tokio::test]
async fn a_lever_form_post_is_recorded_and_confirmed() {
    let s = sandbox().await;
    let base = s.base_url();
    let mut fixture = spec(Ats::Lever, "leverco", "Data Engineer");
    fixture.questions = vec![QuestionSpec {
        label: "Are you legally authorized to work in India?".into(),
        kind: QuestionKind::YesNo,
        required: true,
    }];
    let p = s.boards.add(fixture).expect("fixture");
    let card = p.questions[0].field(Ats::Lever);
    assert!(
        card.starts_with("cards[") && card.ends_with("][field0]"),
        "{card}"
    );

    let hosted = client()
        .get(format!("{base}{}", p.page_path()))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(hosted.contains(&format!(
        "href=\"{}\">Apply for this job</a>",
        p.apply_path()
    )));
    let url = format!("{base}{}", p.apply_path());
    let html = client()
        .get(&url)
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    for needle in [
        "id=\"application-form\"",
        "name=\"resume\"",
        "name=\"name\"",
        "name=\"email\"",
        "name=\"phone\"",
        "name=\"org\"",
        "name=\"urls[LinkedIn]\"",
        "name=\"urls[GitHub]\"",
        "name=\"comments\"",
        &format!("name=\"{card}\" value=\"Yes\""),
        "<span class=\"text\">Are you legally authorized to work in India?</span>",
        "data-qa=\"btn-submit\">Submit application</button>",
    ] {
        assert!(html.contains(needle), "{needle}");
    }

    let res = post_form(&url, &[("name", "Asha Rao")], &[]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = res.text().await.expect("html");
    assert!(html.contains("class=\"application-error\""));
    assert!(html.contains("Resume/CV") && html.contains("Email"));

    let res = post_form(
        &url,
        &[
            ("name", "Asha Rao"),
            ("email", "asha@example.com"),
            ("phone", "+91 98450 00000"),
            ("urls[GitHub]", "https://github.com/asha"),
            (&card, "Yes"),
            ("comments", "Happy to talk."),
        ],
        &[("resume", "asha.pdf", RESUME)],
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.ends_with("/thanks"), "{to}");
    let done = client()
        .get(format!("{base}{to}"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(done.contains("Application submitted!") && done.contains("Thanks for applying"));
    let apps = s.boards.applications();
    let last = apps.last().expect("an application");
    assert_eq!(last.outcome, Outcome::Accepted);
    assert_eq!(
        last.fields.get("urls[GitHub]").map(String::as_str),
        Some("https://github.com/asha")
    );
    assert_eq!(last.fields.get(&card).map(String::as_str), Some("Yes"));
    assert_eq!(last.files[0].field, "resume");
}

#[tokio::test]
async fn every_wall_stops_a_plain_post() {
    let s = sandbox().await;
    let base = s.base_url();
    let gh_fields: &[(&str, &str)] = &[
        ("job_application[first_name]", "Asha"),
        ("job_application[last_name]", "Rao"),
        ("job_application[email]", "asha@example.com"),
        ("job_application[phone]", "+91 98450 00000"),
        ("g-recaptcha-response", "made-up-token"),
    ];
    let lever_fields: &[(&str, &str)] = &[
        ("name", "Asha Rao"),
        ("email", "asha@example.com"),
        ("h-captcha-response", ""),
    ];
    for ats in [Ats::Greenhouse, Ats::Lever] {
        let (fields, resume) = match ats {
            Ats::Greenhouse => (gh_fields, "job_application[resume]"),
            _ => (lever_fields, "resume"),
        };
        let files: &[(&str, &str, &[u8])] = &[(resume, "cv.pdf", RESUME)];

        let mut captcha = spec(ats, "wallco", "Captcha Engineer");
        captcha.variant = Variant::Captcha;
        let p = s.boards.add(captcha).expect("fixture");
        let url = format!("{base}{}", p.apply_path());
        let html = client()
            .get(&url)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("html");
        assert!(
            html.contains("g-recaptcha") || html.contains("h-captcha"),
            "a widget"
        );
        let res = post_form(&url, fields, files).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.expect("html");
        assert!(
            html.contains("Please verify that you are not a robot"),
            "{ats:?}"
        );

        let mut login = spec(ats, "wallco", "Login Engineer");
        login.variant = Variant::Login;
        let p = s.boards.add(login).expect("fixture");
        let url = format!("{base}{}", p.apply_path());
        let res = client().get(&url).send().await.expect("GET");
        assert_eq!(res.status(), StatusCode::FOUND);
        let to = location(&res);
        assert!(to.starts_with("/login?return_to="), "{to}");
        let wall = client()
            .get(format!("{base}{to}"))
            .send()
            .await
            .expect("GET");
        assert!(wall
            .text()
            .await
            .expect("html")
            .contains("id=\"login_form\""));
        let res = post_form(&url, fields, files).await;
        assert_eq!(res.status(), StatusCode::FOUND);
        let signed = client()
            .post(format!("{base}/login"))
            .form(&[("email", "asha@example.com"), ("password", "hunter2")])
            .send()
            .await
            .expect("POST");
        assert_eq!(signed.status(), StatusCode::UNAUTHORIZED);

        let mut code = spec(ats, "wallco", "Code Engineer");
        code.variant = Variant::EmailCode;
        let p = s.boards.add(code).expect("fixture");
        let url = format!("{base}{}", p.apply_path());
        let res = post_form(&url, fields, files).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let to = location(&res);
        assert!(to.contains("/verify?application=app_"), "{to}");
        let html = client()
            .get(format!("{base}{to}"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("html");
        assert!(html.contains("Enter the security code sent to your email"));
        assert!(html.contains("a***@example.com"));
        let res = client()
            .post(format!("{base}{to}"))
            .form(&[("security_code", "12345678")])
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(res.text().await.expect("html").contains("incorrect"));
    }
    let apps = s.boards.applications();
    assert_eq!(apps.len(), 6);
    assert!(apps.iter().all(|a| !a.accepted));
    let outcomes: Vec<Outcome> = apps.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Captcha,
            Outcome::LoginRequired,
            Outcome::VerificationRequired,
            Outcome::Captcha,
            Outcome::LoginRequired,
            Outcome::VerificationRequired,
        ]
    );
    assert_eq!(apps[2].security_codes, ["12345678"]);
    let (_, stats) = json(&format!("{base}/_sandbox/stats")).await;
    assert_eq!(stats["applications"]["captcha"], 2);
    assert!(stats["applications"].get("accepted").is_none());
}

#[tokio::test]
async fn ten_thousand_postings_are_served() {
    let s = sandbox_with(BoardsConfig {
        seed: 2,
        jobs: 10_000,
        companies: 40,
        now: now(),
        ..BoardsConfig::default()
    })
    .await;
    let base = s.base_url();
    let mut seen = 0;
    for c in s.boards.companies() {
        for ats in &c.boards {
            let url = match ats {
                Ats::Greenhouse => format!("{base}/v1/boards/{}/jobs", c.slug),
                Ats::Lever => format!("{base}/v0/postings/{}?mode=json", c.slug),
                Ats::Ashby => format!("{base}/posting-api/job-board/{}", c.slug),
            };
            let (status, body) = json(&url).await;
            assert_eq!(status, StatusCode::OK);
            seen += match ats {
                Ats::Greenhouse => body["jobs"].as_array().map(Vec::len),
                Ats::Lever => body.as_array().map(Vec::len),
                Ats::Ashby => body["jobs"].as_array().map(Vec::len),
            }
            .unwrap_or(0);
        }
    }
    assert_eq!(seen, s.boards.postings().len());
    assert!(seen > 10_000);
}

#[tokio::test]
async fn the_boards_count_requests_in_flight() {
    let s = sandbox().await;
    let base = s.base_url();
    let slug = s.boards.postings()[0].board.clone();
    // Slow answers (no failure), so that requests sent together overlap on the server.
    let slow = client()
        .post(format!("{base}/_sandbox/boards/{slug}/fail"))
        .json(&serde_json::json!({"latency_ms": 1500}))
        .send()
        .await
        .expect("POST");
    assert_eq!(slow.status(), StatusCode::NO_CONTENT);
    let url = format!("{base}/v1/boards/{slug}/jobs");
    let (a, b, c) = tokio::join!(json(&url), json(&url), json(&url));
    assert!([a.0, b.0, c.0].iter().all(|s| *s == StatusCode::OK));
    assert_eq!(s.boards.max_in_flight(), 3);
    let (_, summary) = json(&format!("{base}/_sandbox/boards")).await;
    assert_eq!(summary["max_in_flight"], 3);
    let (_, stats) = json(&format!("{base}/_sandbox/stats")).await;
    assert_eq!(
        stats["endpoints"]["greenhouse GET /v1/boards/{token}/jobs"],
        3
    );
}
