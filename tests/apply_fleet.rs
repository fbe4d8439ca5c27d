//! The apply kind (SPEC §7.3) run by real `drover worker` processes against the sandbox's
//! boards and forms, which this test process starts in-process to see every submission:
//! a worker SIGKILLed while Chromium is submitting (the board has the submission, the page
//! never came back), and a successor. No posting receives a second submission: the one cut
//! off is `unknown` in the ledger and the report, never resubmitted blindly; and the
//! successor's browser pool ends the Chromiums the killed worker left behind.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use common::*;
use drover_queue::application::Outcome;
use drover_queue::profile::{Profile, Resume, ResumeInfo};
use drover_queue::testing::{eventually, Backend};
use drover_queue::{JobStatus, NewJob};
use drover_sandbox::boards::Employment;
use drover_sandbox::{Ats, PostingSpec, Sandbox, SandboxConfig, Variant};
use serde_json::json;

const USER: &str = "asha";

fn spec(ats: Ats, board: &str, title: &str) -> PostingSpec {
    PostingSpec {
        ats,
        board: board.into(),
        title: title.into(),
        company: Some("Acme".into()),
        job: None,
        location: Some("Remote".into()),
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

/// Processes whose command line holds `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == needle.as_bytes())
            {
                found.push(pid);
            }
        }
    }
    found
}

async fn a_worker_killed_mid_submit_never_submits_twice(backend: Backend) {
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
        .add(spec(Ats::Lever, "acme", "Backend Engineer"))
        .expect("a fixture");
    let url = backend.url();
    let store = backend.open().await;
    let profile: Profile = serde_json::from_value(json!({
        "name": "Asha Rao", "email": "asha@example.com", "titles": ["Backend Engineer"],
        "companies": ["acme"], "remote_ok": true, "job_types": ["fulltime"],
    }))
    .expect("a profile");
    store
        .put_profile(USER, &profile, Utc::now())
        .await
        .expect("profile");
    let data = b"%PDF-1.4\n%%EOF\n".to_vec();
    let resume = Resume {
        info: ResumeInfo {
            filename: "resume.pdf".into(),
            content_type: "application/pdf".into(),
            bytes: data.len() as u64,
            uploaded_at: Utc::now(),
        },
        data,
    };
    store.put_resume(USER, &resume).await.expect("résumé");

    let logs = tempfile::tempdir().expect("temp dir");
    let worker = |id: &str| {
        let mut command = worker_command(&url, id, 2, logs.path());
        for key in ["GREENHOUSE", "LEVER", "ASHBY"] {
            command.env(format!("DROVER_BOARDS__{key}_BASE_URL"), sandbox.base_url());
        }
        command
            .env("DROVER_BROWSER__CHROMEDRIVER", "/usr/bin/chromedriver")
            .env("DROVER_BROWSER__CHROMIUM", "/usr/bin/chromium");
        WorkerProcess::spawn(id, command)
    };
    // The board takes the submission, then its page hangs: the worker dies before it sees
    // whether the application went through.
    sandbox.boards.hold_form_answers(true);
    let mut victim = worker("victim");
    let job = NewJob::new("apply", "applications for asha").config(json!({
        "user_id": USER,
        "sources": [{"type": "lever", "board": "acme"}],
    }));
    let id = store.enqueue(job).await.expect("enqueue").job().id;
    eventually(
        Duration::from_secs(90),
        "the form to be submitted",
        || async { (!sandbox.boards.applications().is_empty()).then_some(()) },
    )
    .await;
    let victim_pid = victim.pid();
    victim.kill9();
    let owned = format!("--drover-owner-pid={victim_pid}");
    sandbox.boards.hold_form_answers(false);

    // The successor takes the job over after the lease expires and finishes it.
    let _successor = worker("successor");
    let done = eventually(Duration::from_secs(90), "the job to finish", || async {
        let job = store.get(id).await.ok()?;
        job.status.is_terminal().then_some(job)
    })
    .await;
    assert_eq!(done.status, JobStatus::Completed, "{done:?}");
    assert_eq!(
        sandbox.boards.applications().len(),
        1,
        "the posting received a second submission"
    );
    let entries = store.applications(USER, None, 100).await.expect("ledger");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].outcome, Outcome::Unknown, "{entries:?}");
    let csv = store
        .artifact(id, "applications.csv")
        .await
        .expect("artifact")
        .expect("applications.csv");
    let mut reader = csv::Reader::from_reader(csv.data.as_slice());
    let headers = reader.headers().expect("headers").clone();
    let rows: Vec<HashMap<String, String>> = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.into(), v.into()))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["outcome"], "unknown", "{rows:?}");

    // A Chromium the killed worker left is ended by the next browser pool on the machine.
    drover_workloads::services::browser::reap_orphans();
    eventually(
        Duration::from_secs(10),
        "the orphaned Chromium to end",
        || async { processes_with(&owned).is_empty().then_some(()) },
    )
    .await;
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_worker_killed_mid_submit_never_submits_twice() {
    a_worker_killed_mid_submit_never_submits_twice(Backend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_worker_killed_mid_submit_never_submits_twice() {
    a_worker_killed_mid_submit_never_submits_twice(Backend::sqlite()).await;
}
