//! Job boards and the application forms behind them, for the apply workload: Greenhouse's Job
//! Board API, Lever's Postings API and Ashby's posting API, answering in the real services'
//! JSON shapes over [`postings`] generated from a seed (plus fixtures a test places), and the
//! hosted HTML forms a browser fills (Greenhouse- and Lever-like, with CAPTCHA, login-wall and
//! e-mailed-code variants). Everything submitted is recorded, so a test asserts on what reached
//! the board, not on what the client believes it sent.
//!
//! # Board APIs ([`api`])
//! | request | answer |
//! |---|---|
//! | `GET /v1/boards/{token}` | Greenhouse board: `{"name", "content"}` |
//! | `GET /v1/boards/{token}/jobs[?content=true]` | `{"jobs": [{id, internal_job_id, title, updated_at, requisition_id, location{name}, absolute_url, metadata, data_compliance, company_name, first_published, language` + with `content=true`: `content` (HTML entity-encoded), `departments[]{id,name,parent_id,child_ids}`, `offices[]{id,name,location,parent_id,child_ids}`}], "meta": {"total"}}`; the whole board, no paging |
//! | `GET /v1/boards/{token}/jobs/{id}[?questions=true][&pay_transparency=true]` | one job with `content`, departments, offices; `questions[]{required,label,description,fields[]{name,type,values[]{value,label}}}` (first_name, last_name, email, phone, resume/resume_text, cover_letter/cover_letter_text, then custom `question_<id>`), `location_questions`, `compliance`, `demographic_questions`; `pay_input_ranges[]{min_cents,max_cents,currency_type,title,blurb}` (empty when the salary is not structured) |
//! | `GET /v0/postings/{site}?mode=json[&skip=N&limit=N][&location=…&commitment=…&team=…&department=…]` | Lever: an array of `{id (UUID), text, categories{location,commitment,team,department,allLocations}, country, workplaceType (on-site, remote, hybrid), opening, openingPlain, description, descriptionPlain, lists[]{text,content}, additional, additionalPlain, hostedUrl, applyUrl, createdAt (ms)` + `salaryRange{currency,interval:"per-year-salary",min,max}` when structured}`, newest first; the requirements (with "N+ years") are in `lists`, as Lever shows them |
//! | `GET /v0/postings/{site}/{id}` | one Lever posting |
//! | `GET /posting-api/job-board/{name}[?includeCompensation=true]` | Ashby: `{"apiVersion": "1", "jobs": [{id, title, department, team, employmentType (FullTime, PartTime, Contract, Intern), location, secondaryLocations, address{postalAddress}, isRemote, workplaceType (OnSite, Remote, Hybrid), publishedAt, isListed, jobUrl, applyUrl, descriptionHtml, descriptionPlain, shouldDisplayCompensationOnJobPostings` + `compensation{compensationTierSummary, scrapeableCompensationSalarySummary, compensationTiers[]{…components[]}, summaryComponents[]{compensationType, interval:"1 YEAR", currencyCode, minValue, maxValue}}` with `includeCompensation=true`}]}`, unlisted jobs included (`isListed: false`) |
//!
//! Unknown boards and jobs answer 404 in each service's manner (Greenhouse
//! `{"status":404,"error":…}`, Lever `{"ok":false,"error":"Document not found"}`, Ashby
//! `{"success":false,"error":…}`). Salaries are yearly; a posting states its salary in the
//! structured fields, in the description as `$150,000 - $190,000` (`€`, `£`, `₹`, `CA$`), both
//! or not at all. Greenhouse has no workplace field: its location names a remote or hybrid
//! role as `Bengaluru, India (Remote)` / `(Hybrid)`, and every description says "This role is
//! fully remote." / "hybrid" / "based in our … office". The same job on two boards of one
//! company has the same description and salary, its title in sentence case on the second
//! board ("Senior backend engineer") and its location spelled another way ("Bangalore,
//! India", "Pune, Maharashtra, India", "Remote (India)"); [`postings::Posting::job`] tells
//! which postings are one job. Job 0 is always company 0's, on Greenhouse and Lever.
//!
//! # Forms ([`forms`]); URLs are absolute in the JSON, taken from the request's `Host`
//! - Greenhouse: `absolute_url` = `/gh/{token}/jobs/{id}` holds the description and
//!   `form#application_form` (POST, multipart) with `job_application[first_name]`,
//!   `[last_name]`, `[email]`, `[phone]` (all required), `job_application[resume]` (file;
//!   required unless `job_application[resume_text]` is given), `job_application[cover_letter]`,
//!   custom `question_<id>` (`input`, `textarea`, or `select` with values `1` Yes / `0` No) each
//!   with `<label for=…>` whose text is the API's `label`, submit `input#submit_app` "Submit
//!   Application". Success: 303 to `/gh/{token}/jobs/{id}/confirmation` ("Thank you for
//!   applying." / "Your application has been received.").
//! - Lever: `hostedUrl` = `/lever/{site}/{id}` (description and `a.postings-btn` "Apply for
//!   this job") → `applyUrl` = `/lever/{site}/{id}/apply`: `form#application-form` with
//!   `resume` (file, required), `name`, `email` (required), `phone`, `org`, `urls[LinkedIn]`,
//!   `urls[Twitter]`, `urls[GitHub]`, `urls[Portfolio]`, `urls[Other]`, custom cards
//!   `cards[<uuid>][field0]` (text input, textarea, or radios `Yes` / `No`) in
//!   `li.application-question.custom-question[data-question=<uuid>]` whose `.text` is the
//!   question, `textarea#additional-information[name=comments]`, submit
//!   `button[data-qa="btn-submit"]` "Submit application". Success: 303 to
//!   `/lever/{site}/{id}/thanks` ("Application submitted!" / "Thanks for applying").
//! - Ashby: `jobUrl` `/ashby/{name}/{id}`, `applyUrl` `/ashby/{name}/{id}/application` (a
//!   page that needs JavaScript, as Ashby's does: no form to fill here).
//! - Missing required fields re-render the form with 422 and `[role=alert]` (Greenhouse
//!   `#error_message`, Lever `.application-error`) naming them; text already typed is kept,
//!   files must be chosen again.
//! - Variants ([`postings::Variant`], drawn per posting from the seed, set for fixtures, or
//!   changed with `POST /_sandbox/boards/postings/{ats}/{id}/variant`): `captcha` — a
//!   `div.g-recaptcha` (Greenhouse) / `div.h-captcha` (Lever) with an iframe and a hidden
//!   `g-recaptcha-response` / `h-captcha-response`; every submit is refused with 422 "Please
//!   verify that you are not a robot"; `login` — the form's URL (GET and POST) answers 302 to
//!   `/login?return_to=…`, whose `form#login_form` never signs in; `email_code` — a valid
//!   submit answers 303 to `…/verify?application=<id>`, `form#security_code_form` with
//!   `input#security_code[name=security_code]` ("Enter the security code sent to your
//!   email"), and every code is wrong. No variant can be passed.
//!
//! # Control and inspection
//! | request | what |
//! |---|---|
//! | `GET /_sandbox/boards` | companies (`name`, `slug`, `boards`), postings per board, the most board-API requests seen in flight at once |
//! | `GET /_sandbox/boards/postings` | every posting ([`postings::Posting`], with `job`, `variant`, `salary`, …) |
//! | `POST /_sandbox/boards/postings` | place a fixture ([`postings::PostingSpec`]); answers the posting with `id`, `job`, `url`, `apply_url` |
//! | `POST /_sandbox/boards/postings/{ats}/{id}/variant` | `{"variant": "plain" \| "captcha" \| "login" \| "email_code"}` |
//! | `POST /_sandbox/boards/{board}/fail` | a [`Fault`]: `{"status": 500 \| 502 \| 503 \| 429, "retry_after_s", "times", "ats", "latency_ms"}` for that board's API (every ATS unless `ats`); `DELETE` clears it |
//! | `GET /_sandbox/applications` | every submission ([`forms::Application`]) |
//!
//! Submissions are counted by outcome in `GET /_sandbox/stats` (`applications`).

pub mod api;
pub mod forms;
pub mod postings;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::log::Log;
pub use forms::{Application, Outcome, Upload};
pub use postings::{
    Ats, BoardsConfig, Company, Employment, Posting, PostingSpec, Question, QuestionKind,
    QuestionSpec, Salary, Variant, Workplace,
};

/// How one board's API misbehaves from now on (`POST /_sandbox/boards/{board}/fail`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// 500, 502, 503 or 429; none: answer normally (after `latency_ms`).
    pub status: Option<u16>,
    /// The `retry-after` (seconds) sent with the failing answers.
    pub retry_after_s: Option<u64>,
    /// Fail this many requests, then answer normally again; none: until cleared.
    pub times: Option<u64>,
    /// Only this ATS's board of that name; none: all of them.
    pub ats: Option<Ats>,
    /// Each answer of the board takes this long.
    pub latency_ms: Option<u64>,
}

/// The postings by board and id.
struct Catalog {
    companies: BTreeMap<String, Company>,
    postings: Vec<Posting>,
    boards: HashMap<(Ats, String), Vec<usize>>,
    ids: HashMap<(Ats, String), usize>,
    next_job: u64,
    next_greenhouse_id: u64,
}

impl Catalog {
    fn insert(&mut self, posting: Posting) -> usize {
        let at = self.postings.len();
        self.boards
            .entry((posting.ats, posting.board.clone()))
            .or_default()
            .push(at);
        self.ids.insert((posting.ats, posting.id.clone()), at);
        self.postings.push(posting);
        at
    }
}

/// The boards' state: the catalogue, the faults injected, the submissions received.
pub struct Boards {
    pub config: BoardsConfig,
    catalog: RwLock<Catalog>,
    faults: Mutex<HashMap<String, Fault>>,
    applications: Mutex<Vec<Application>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    log: Arc<Log>,
    /// True while answers to form submissions are held back ([`Boards::hold_form_answers`]).
    held: tokio::sync::watch::Sender<bool>,
}

impl Boards {
    pub fn new(config: BoardsConfig, log: Arc<Log>) -> Boards {
        let companies = postings::companies(&config);
        let generated = postings::generate(&config, &companies);
        let mut catalog = Catalog {
            companies: companies.into_iter().map(|c| (c.slug.clone(), c)).collect(),
            postings: Vec::with_capacity(generated.len()),
            boards: HashMap::new(),
            ids: HashMap::new(),
            next_job: config.jobs,
            next_greenhouse_id: 7_000_000_000,
        };
        for posting in generated {
            catalog.insert(posting);
        }
        // An empty board still exists for each company's ATS.
        let empty: Vec<(Ats, String)> = catalog
            .companies
            .values()
            .flat_map(|c| c.boards.iter().map(|a| (*a, c.slug.clone())))
            .collect();
        for key in empty {
            catalog.boards.entry(key).or_default();
        }
        Boards {
            config,
            catalog: RwLock::new(catalog),
            faults: Mutex::new(HashMap::new()),
            applications: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            log,
            held: tokio::sync::watch::Sender::new(false),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn companies(&self) -> Vec<Company> {
        self.read().companies.values().cloned().collect()
    }

    /// Every posting, generated ones in job order, then fixtures in the order placed.
    pub fn postings(&self) -> Vec<Posting> {
        self.read().postings.clone()
    }

    /// The postings of one board (none when the board does not exist).
    pub fn board(&self, ats: Ats, board: &str) -> Option<Vec<Posting>> {
        let catalog = self.read();
        let at = catalog.boards.get(&(ats, board.to_string()))?;
        Some(at.iter().map(|&i| catalog.postings[i].clone()).collect())
    }

    pub fn posting(&self, ats: Ats, id: &str) -> Option<Posting> {
        let catalog = self.read();
        let at = catalog.ids.get(&(ats, id.to_string()))?;
        Some(catalog.postings[*at].clone())
    }

    /// Places a fixture posting on a board (creating the board and its company if needed).
    /// Errors name the field that is wrong.
    pub fn add(&self, spec: PostingSpec) -> Result<Posting, (&'static str, String)> {
        if spec.board.is_empty()
            || !spec
                .board
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(("board", "letters, digits, '-' and '_' only".into()));
        }
        if spec.title.trim().is_empty() {
            return Err(("title", "must not be empty".into()));
        }
        if let Some(s) = &spec.salary {
            if s.min > s.max || s.currency.len() != 3 {
                return Err((
                    "salary",
                    "min ≤ max and a three-letter currency code".into(),
                ));
            }
        }
        let mut catalog = self.write();
        let job = match spec.job {
            Some(job) => job,
            None => {
                catalog.next_job += 1;
                catalog.next_job - 1
            }
        };
        let id = match spec.ats {
            Ats::Greenhouse => {
                catalog.next_greenhouse_id += 1;
                catalog.next_greenhouse_id.to_string()
            }
            _ => postings::fixture_uuid(job * 1_000 + catalog.postings.len() as u64),
        };
        let company = match (&spec.company, catalog.companies.get(&spec.board)) {
            (Some(name), _) => name.clone(),
            (None, Some(c)) => c.name.clone(),
            (None, None) => crate::world::capital(&spec.board),
        };
        let entry = catalog
            .companies
            .entry(spec.board.clone())
            .or_insert_with(|| Company {
                name: company.clone(),
                slug: spec.board.clone(),
                boards: Vec::new(),
            });
        if !entry.boards.contains(&spec.ats) {
            entry.boards.push(spec.ats);
        }
        let posting = postings::from_spec(spec, id, job, company, self.config.now);
        catalog.insert(posting.clone());
        Ok(posting)
    }

    /// Changes the form variant of a posting; false when there is no such posting.
    pub fn set_variant(&self, ats: Ats, id: &str, variant: Variant) -> bool {
        let mut catalog = self.write();
        let Some(&at) = catalog.ids.get(&(ats, id.to_string())) else {
            return false;
        };
        catalog.postings[at].variant = variant;
        true
    }

    /// Makes a board's API misbehave ([`Fault`]); `None` clears it.
    pub fn fail(&self, board: &str, fault: Option<Fault>) {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        match fault {
            Some(f) => faults.insert(board.to_string(), f),
            None => faults.remove(board),
        };
    }

    /// The fault to apply to this request of `ats`'s board `board`, counting it down.
    fn fault_for(&self, ats: Ats, board: &str) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let fault = faults.get_mut(board)?;
        if fault.ats.is_some_and(|a| a != ats) {
            return None;
        }
        let now = fault.clone();
        if fault.status.is_some() {
            match &mut fault.times {
                Some(0) => {
                    fault.status = None;
                    return Some(Fault {
                        status: None,
                        ..now
                    });
                }
                Some(n) => *n -= 1,
                None => {}
            }
        }
        Some(now)
    }

    /// Every submission received, oldest first.
    pub fn applications(&self) -> Vec<Application> {
        self.applications
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Holds every answer to a form submission, after the submission is recorded, until
    /// called again with `false`: a submission that reached the board while the page never
    /// came back, as when the applicant's machine dies in the middle of a submit.
    pub fn hold_form_answers(&self, hold: bool) {
        self.held.send_replace(hold);
    }

    /// Returns once form answers are not held.
    pub(crate) async fn form_answers_released(&self) {
        let mut held = self.held.subscribe();
        let _ = held.wait_for(|held| !*held).await;
    }

    /// The most board-API requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }
}

struct InFlight<'a>(&'a Boards);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// HTML-escapes text (and entity-encodes HTML, as Greenhouse's `content` is).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn bad(field: &str, message: &str) -> Response {
    let body = json!({"error": {"code": "invalid_input", "field": field, "message": message}});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| Box::new(bad("body", &e.to_string())))
}

type Shared = Arc<Boards>;

async fn summary(State(b): State<Shared>) -> Response {
    let catalog = b.read();
    let mut boards: Vec<_> = catalog
        .boards
        .iter()
        .map(|((ats, board), at)| json!({"ats": ats, "board": board, "postings": at.len()}))
        .collect();
    boards.sort_by_key(|v| (v["ats"].to_string(), v["board"].to_string()));
    let companies: Vec<&Company> = catalog.companies.values().collect();
    Json(json!({
        "companies": companies,
        "boards": boards,
        "postings": catalog.postings.len(),
        "max_in_flight": b.max_in_flight(),
    }))
    .into_response()
}

async fn list_postings(State(b): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let base = api::base(&headers);
    let all: Vec<_> = b
        .read()
        .postings
        .iter()
        .map(|p| with_urls(p, &base))
        .collect();
    Json(all).into_response()
}

fn with_urls(p: &Posting, base: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["url"] = json!(format!("{base}{}", p.page_path()));
    v["apply_url"] = json!(format!("{base}{}", p.apply_path()));
    v
}

async fn add_posting(
    State(b): State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let spec: PostingSpec = match parse(&body) {
        Ok(s) => s,
        Err(e) => return *e,
    };
    match b.add(spec) {
        Ok(p) => (
            StatusCode::CREATED,
            Json(with_urls(&p, &api::base(&headers))),
        )
            .into_response(),
        Err((field, message)) => bad(field, &message),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantBody {
    variant: Variant,
}

async fn set_variant(
    State(b): State<Shared>,
    Path((ats, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let Some(ats) = ats_named(&ats) else {
        return bad("ats", "greenhouse, lever or ashby");
    };
    let v: VariantBody = match parse(&body) {
        Ok(v) => v,
        Err(e) => return *e,
    };
    if b.set_variant(ats, &id, v.variant) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        bad("id", "no such posting")
    }
}

fn ats_named(name: &str) -> Option<Ats> {
    match name {
        "greenhouse" => Some(Ats::Greenhouse),
        "lever" => Some(Ats::Lever),
        "ashby" => Some(Ats::Ashby),
        _ => None,
    }
}

async fn set_fault(
    State(b): State<Shared>,
    Path(board): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(e) => return *e,
    };
    if fault
        .status
        .is_some_and(|s| ![429, 500, 502, 503].contains(&s))
    {
        return bad("status", "429, 500, 502 or 503");
    }
    b.fail(&board, Some(fault));
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_fault(State(b): State<Shared>, Path(board): Path<String>) -> Response {
    b.fail(&board, None);
    StatusCode::NO_CONTENT.into_response()
}

/// The board APIs, the forms and the `/_sandbox/boards` and `/_sandbox/applications` routes.
pub fn routes(boards: Shared) -> Router {
    let control = Router::new()
        .route("/_sandbox/boards", get(summary))
        .route(
            "/_sandbox/boards/postings",
            get(list_postings).post(add_posting),
        )
        .route(
            "/_sandbox/boards/postings/{ats}/{id}/variant",
            post(set_variant),
        )
        .route(
            "/_sandbox/boards/{board}/fail",
            post(set_fault).delete(clear_fault),
        )
        .route(
            "/_sandbox/applications",
            get(|State(b): State<Shared>| async move { Json(b.applications()) }),
        )
        .with_state(boards.clone());
    Router::new()
        .merge(api::routes(boards.clone()))
        .merge(forms::routes(boards))
        .merge(control)
}
