//! The job boards' public JSON APIs (protocols §2.1), read through the services layer
//! ([`Service`]: timeouts, classified retries, ETags, `drover_external_calls_total`):
//! - Greenhouse `GET {base}/v1/boards/{token}/jobs?content=true` (the whole board in one
//!   answer), and `GET …/jobs/{id}?questions=true&pay_transparency=true` for the form's
//!   questions and pay ranges ([`Boards::questions`]);
//! - Lever `GET {base}/v0/postings/{site}?mode=json&skip=…&limit=100`, page after page;
//! - Ashby `GET {base}/posting-api/job-board/{name}?includeCompensation=true`, unlisted jobs
//!   dropped.
//!
//! [`discover`] reads many sources at once, at most `max_in_flight` at a time; a source that
//! fails is reported as such and never fails the others. A posting that does not parse
//! (a job without a title) is dropped with a warning, not the board.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::posting::{ashby, greenhouse, lever, Posting, Salary, Site};
use crate::services::{Auth, CallError, Service};

pub const GREENHOUSE_BASE_URL: &str = "https://boards-api.greenhouse.io";
pub const LEVER_BASE_URL: &str = "https://api.lever.co";
pub const ASHBY_BASE_URL: &str = "https://api.ashbyhq.com";

/// SPEC §7.3: discovery reads at most four sources at a time.
pub const MAX_IN_FLIGHT: usize = 4;
/// Lever's page size.
const LEVER_PAGE: usize = 100;
/// A board that pages on and on (or ignores `skip`) stops here: 10,000 postings.
const LEVER_MAX_PAGES: usize = 100;

/// One board to read, from job config: `{"type": "greenhouse"|"lever"|"ashby", "board":
/// "…"}`, with an optional `"company"`: the name postings of this board carry (the boards'
/// JSON does not name the company reliably; without it the board's own name is used).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: Site,
    pub board: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
}

/// A source that cannot be read, naming its field (`sources[1].type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSource {
    pub field: String,
    pub message: String,
}

impl Source {
    /// `sources` from job config: an array of sources, each checked, the first bad one
    /// named (`sources[2].board: …`).
    pub fn parse_list(value: &Value) -> Result<Vec<Source>, InvalidSource> {
        let invalid = |field: String, message: String| InvalidSource { field, message };
        let items = value.as_array().ok_or_else(|| {
            invalid(
                "sources".into(),
                "must be an array of {\"type\", \"board\"}".into(),
            )
        })?;
        let mut sources = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let source: Source = serde_path_to_error::deserialize(item).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                // A missing or unknown field is reported at the object: name the field.
                let named = ["missing field `", "unknown field `"]
                    .iter()
                    .find_map(|p| message.strip_prefix(p))
                    .and_then(|rest| rest.split('`').next())
                    .map(str::to_string);
                let field = match (path.as_str(), named) {
                    (".", Some(name)) => format!("sources[{i}].{name}"),
                    (".", None) => format!("sources[{i}]"),
                    (path, _) => format!("sources[{i}].{path}"),
                };
                invalid(field, message)
            })?;
            source
                .check()
                .map_err(|(field, message)| invalid(format!("sources[{i}].{field}"), message))?;
            sources.push(source);
        }
        Ok(sources)
    }

    /// The board goes into a URL path: letters, digits, `-`, `_` and `.` only.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let board = &self.board;
        if board.is_empty() || board.len() > 100 {
            return Err(("board", "must be 1 to 100 characters".into()));
        }
        if !board
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || board.starts_with('.')
        {
            return Err((
                "board",
                format!("{board:?}: only letters, digits, '-', '_' and '.' (a board token)"),
            ));
        }
        if self.company.as_deref().is_some_and(|c| c.len() > 200) {
            return Err(("company", "must be at most 200 characters".into()));
        }
        Ok(())
    }
}

/// One source's outcome in [`discover`].
#[derive(Debug)]
pub struct Discovered {
    pub source: Source,
    pub result: Result<Vec<Posting>, CallError>,
}

/// Reads every source, at most `max_in_flight` at a time ([`MAX_IN_FLIGHT`] in the
/// workload); the outcomes come back in the order of `sources`, each failure its own.
pub async fn discover(
    boards: &Boards,
    sources: &[Source],
    max_in_flight: usize,
) -> Vec<Discovered> {
    // Owned sources: a future borrowing from the slice's items would not be `Send` for
    // every lifetime, which a graph step needs.
    stream::iter(sources.to_vec())
        .map(|source| async move {
            let result = boards.postings(&source).await;
            Discovered { source, result }
        })
        .buffered(max_in_flight.max(1))
        .collect()
        .await
}

/// The three boards' APIs, one [`Service`] each (tools `greenhouse`, `lever`, `ashby`).
#[derive(Debug, Clone)]
pub struct Boards {
    greenhouse: Service,
    lever: Service,
    ashby: Service,
}

/// The questions of a Greenhouse application form and its pay ranges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Form {
    pub questions: Vec<Question>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub location_questions: Vec<Question>,
    /// From `pay_input_ranges` (annual), for [`Posting::set_salary`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salary: Option<FormSalary>,
}

/// A salary as [`Form`] carries it (serialisable; [`Salary`] is not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormSalary {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub currency: Option<String>,
}

impl FormSalary {
    pub fn to_salary(&self) -> Option<Salary> {
        Salary::stated(
            self.min,
            self.max,
            self.currency.as_deref(),
            super::posting::Interval::Yearly,
            super::posting::SalarySource::DirectData,
        )
    }
}

/// One question: `{"required": true, "label": "Resume", "fields": [{"name": "resume",
/// "type": "input_file"}, …]}`; custom ones are named `question_<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    /// The choices of a select.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Choice>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    InputFile,
    InputText,
    InputHidden,
    Textarea,
    MultiValueSingleSelect,
    MultiValueMultiSelect,
    /// A type this client does not know: the filler leaves the posting to tier 2.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub label: String,
    /// Greenhouse sends numbers (`1`) or strings; kept as text.
    #[serde(deserialize_with = "text_or_number")]
    pub value: String,
}

fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

impl Boards {
    /// Base URLs from `boards.*_base_url` (errors name the key).
    pub fn new(
        greenhouse_base_url: &str,
        lever_base_url: &str,
        ashby_base_url: &str,
        timeout: Duration,
    ) -> Result<Boards, String> {
        let service = |tool: &'static str, key: &str, base: &str| {
            reqwest::Url::parse(base)
                .map_err(|e| format!("boards.{key}: {e}"))
                .and_then(|_| {
                    Service::new(tool, base, Auth::None, timeout)
                        .map_err(|e| format!("boards.{key}: {e}"))
                })
        };
        Ok(Boards {
            greenhouse: service("greenhouse", "greenhouse_base_url", greenhouse_base_url)?,
            lever: service("lever", "lever_base_url", lever_base_url)?,
            ashby: service("ashby", "ashby_base_url", ashby_base_url)?,
        })
    }

    /// Every posting of a source, normalised.
    pub async fn postings(&self, source: &Source) -> Result<Vec<Posting>, CallError> {
        let company = source.company.as_deref();
        match source.kind {
            Site::Greenhouse => self.greenhouse_jobs(&source.board, company).await,
            Site::Lever => self.lever_postings(&source.board, company).await,
            Site::Ashby => self.ashby_jobs(&source.board, company).await,
        }
    }

    pub async fn greenhouse_jobs(
        &self,
        token: &str,
        company: Option<&str>,
    ) -> Result<Vec<Posting>, CallError> {
        let reply = self
            .greenhouse
            .get(&format!("/v1/boards/{token}/jobs?content=true"))
            .await?;
        let answer: greenhouse::Jobs = reply.json("greenhouse")?;
        Ok(
            parse_each::<greenhouse::Job>("greenhouse", token, answer.jobs)
                .map(|job| job.into_posting(token, company))
                .collect(),
        )
    }

    pub async fn lever_postings(
        &self,
        site: &str,
        company: Option<&str>,
    ) -> Result<Vec<Posting>, CallError> {
        let mut postings = Vec::new();
        let mut seen = HashSet::new();
        for page in 0..LEVER_MAX_PAGES {
            let reply = self
                .lever
                .get(&format!(
                    "/v0/postings/{site}?mode=json&skip={}&limit={LEVER_PAGE}",
                    page * LEVER_PAGE
                ))
                .await?;
            let items: Vec<Value> = reply.json("lever")?;
            let count = items.len();
            let mut new = 0;
            for job in parse_each::<lever::Job>("lever", site, items) {
                if seen.insert(job.id.clone()) {
                    new += 1;
                    postings.push(job.into_posting(site, company));
                }
            }
            // A short page is the last; a page of nothing new means `skip` is ignored.
            if count < LEVER_PAGE || new == 0 {
                break;
            }
        }
        Ok(postings)
    }

    pub async fn ashby_jobs(
        &self,
        board: &str,
        company: Option<&str>,
    ) -> Result<Vec<Posting>, CallError> {
        let reply = self
            .ashby
            .get(&format!(
                "/posting-api/job-board/{board}?includeCompensation=true"
            ))
            .await?;
        let answer: ashby::Board = reply.json("ashby")?;
        Ok(parse_each::<ashby::Job>("ashby", board, answer.jobs)
            .filter(ashby::Job::listed)
            .map(|job| job.into_posting(board, company))
            .collect())
    }

    /// A Greenhouse job's application form: its questions and pay ranges.
    pub async fn questions(&self, token: &str, job_id: &str) -> Result<Form, CallError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            questions: Vec<Question>,
            #[serde(default)]
            location_questions: Vec<Question>,
            #[serde(default)]
            pay_input_ranges: Vec<greenhouse::PayRange>,
        }
        if !job_id.chars().all(|c| c.is_ascii_digit()) || job_id.is_empty() {
            return Err(CallError::Permanent {
                tool: "greenhouse",
                status: None,
                message: "a Greenhouse job id is a number".into(),
            });
        }
        let reply = self
            .greenhouse
            .get(&format!(
                "/v1/boards/{token}/jobs/{job_id}?questions=true&pay_transparency=true"
            ))
            .await?;
        let answer: Answer = reply.json("greenhouse")?;
        Ok(Form {
            questions: answer.questions,
            location_questions: answer.location_questions,
            salary: greenhouse::salary(&answer.pay_input_ranges).map(|s| FormSalary {
                min: s.min,
                max: s.max,
                currency: s.currency,
            }),
        })
    }
}

/// The items that parse as `T`; the others are logged (by position) and dropped.
fn parse_each<'a, T: serde::de::DeserializeOwned>(
    tool: &'static str,
    board: &'a str,
    items: Vec<Value>,
) -> impl Iterator<Item = T> + 'a {
    items
        .into_iter()
        .enumerate()
        .filter_map(move |(i, item)| match serde_json::from_value::<T>(item) {
            Ok(job) => Some(job),
            Err(e) => {
                tracing::warn!(tool, board, index = i, error = %e, "a posting that does not parse is dropped");
                None
            }
        })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::extract::{Path, Query, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::apply::posting::{JobType, Workplace};

    /// How many requests the server is answering at once, and the most it ever was.
    #[derive(Default)]
    struct Load {
        now: AtomicUsize,
        most: AtomicUsize,
        requests: AtomicUsize,
    }

    struct Busy<'a>(&'a Load);

    impl<'a> Busy<'a> {
        fn new(load: &'a Load) -> Self {
            load.requests.fetch_add(1, Ordering::SeqCst);
            let now = load.now.fetch_add(1, Ordering::SeqCst) + 1;
            load.most.fetch_max(now, Ordering::SeqCst);
            Busy(load)
        }
    }

    impl Drop for Busy<'_> {
        fn drop(&mut self) {
            self.0.now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    type Params = Query<HashMap<String, String>>;

    /// Boards named `slow-…` answer after 50 ms (an empty board): latency to overlap.
    async fn latency(board: &str) {
        if board.starts_with("slow") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn greenhouse_jobs(
        State(load): State<Arc<Load>>,
        Path(token): Path<String>,
        Query(q): Params,
    ) -> Response {
        let _busy = Busy::new(&load);
        latency(&token).await;
        if q.get("content").map(String::as_str) != Some("true") {
            return (StatusCode::BAD_REQUEST, "content=true expected").into_response();
        }
        match token.as_str() {
            "acme" => Json(json!({
                "jobs": [
                    {
                        "id": 127817, "internal_job_id": 144381, "title": "Backend Engineer",
                        "updated_at": "2026-11-14T10:55:28-05:00",
                        "location": { "name": "Bengaluru, India" },
                        "absolute_url": "https://boards.greenhouse.io/acme/jobs/127817",
                        "metadata": null,
                        "content": "&lt;p&gt;₹30,00,000 - ₹45,00,000. 3+ years.&lt;/p&gt;",
                        "departments": [], "offices": []
                    },
                    { "id": 2, "location": { "name": "no title" } }
                ],
                "meta": { "total": 2 }
            }))
            .into_response(),
            "broken" => (StatusCode::OK, "<html>not json</html>").into_response(),
            t if t.starts_with("slow") => Json(json!({ "jobs": [] })).into_response(),
            _ => (
                StatusCode::NOT_FOUND,
                Json(json!({ "status": 404, "error": "Job board not found" })),
            )
                .into_response(),
        }
    }

    async fn greenhouse_job(
        State(load): State<Arc<Load>>,
        Path((token, id)): Path<(String, String)>,
        Query(q): Params,
    ) -> Response {
        let _busy = Busy::new(&load);
        if token != "acme"
            || id != "127817"
            || q.get("questions").map(String::as_str) != Some("true")
        {
            return StatusCode::NOT_FOUND.into_response();
        }
        Json(json!({
            "id": 127817, "title": "Backend Engineer",
            "questions": [
                { "required": true, "label": "First Name", "fields": [{ "name": "first_name", "type": "input_text" }] },
                { "required": true, "label": "Resume/CV", "fields": [
                    { "name": "resume", "type": "input_file" }, { "name": "resume_text", "type": "textarea" } ] },
                { "required": false, "label": "Are you authorised to work in India?", "fields": [
                    { "name": "question_4001", "type": "multi_value_single_select",
                      "values": [{ "label": "Yes", "value": 1 }, { "label": "No", "value": 0 }] } ] },
                { "required": false, "label": "Signature", "fields": [{ "name": "question_4002", "type": "drawing_pad" }] }
            ],
            "location_questions": [],
            "pay_input_ranges": [{ "min_cents": 300000000, "max_cents": 450000000, "currency_type": "INR", "title": "India" }]
        }))
        .into_response()
    }

    async fn lever_postings(
        State(load): State<Arc<Load>>,
        Path(site): Path<String>,
        Query(q): Params,
    ) -> Response {
        let _busy = Busy::new(&load);
        latency(&site).await;
        if q.get("mode").map(String::as_str) != Some("json") {
            return (StatusCode::OK, "<html>the HTML board</html>").into_response();
        }
        let total = match site.as_str() {
            "leverdemo" => 230,
            "stuck" => 1_000_000, // ignores skip: always the first page
            s if s.starts_with("slow") => 0,
            _ => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({ "ok": false, "error": "Document not found" })),
                )
                    .into_response()
            }
        };
        let skip: usize = q.get("skip").and_then(|s| s.parse().ok()).unwrap_or(0);
        let limit: usize = q
            .get("limit")
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        let skip = if site == "stuck" { 0 } else { skip };
        let page: Vec<Value> = (skip..total.min(skip.saturating_add(limit)))
            .map(|i| {
                json!({
                    "id": format!("00000000-0000-4000-8000-{i:012}"),
                    "text": format!("Engineer {i}"),
                    "categories": { "location": "Remote", "commitment": "Full-time" },
                    "workplaceType": "remote",
                    "descriptionPlain": "Build things.",
                    "salaryRange": { "currency": "USD", "interval": "per-year-salary", "min": 150000, "max": 190000 },
                    "hostedUrl": format!("https://jobs.lever.co/{site}/00000000-0000-4000-8000-{i:012}"),
                    "createdAt": 1_763_000_000_000_i64
                })
            })
            .collect();
        Json(page).into_response()
    }

    async fn ashby_board(
        State(load): State<Arc<Load>>,
        Path(name): Path<String>,
        Query(q): Params,
    ) -> Response {
        let _busy = Busy::new(&load);
        latency(&name).await;
        if name.starts_with("slow") {
            return Json(json!({ "apiVersion": "1", "jobs": [] })).into_response();
        }
        if name != "openai" {
            return StatusCode::NOT_FOUND.into_response();
        }
        let compensation = q.get("includeCompensation").map(String::as_str) == Some("true");
        Json(json!({
            "apiVersion": "1",
            "jobs": [
                {
                    "id": "4f1c", "title": "Research Engineer", "employmentType": "FullTime",
                    "location": "San Francisco", "isRemote": false, "workplaceType": "OnSite",
                    "publishedAt": "2026-11-14T18:22:10.123+00:00", "isListed": true,
                    "jobUrl": "https://jobs.ashbyhq.com/openai/4f1c",
                    "applyUrl": "https://jobs.ashbyhq.com/openai/4f1c/application",
                    "descriptionPlain": "Research.",
                    "compensation": if compensation { json!({ "summaryComponents": [
                        { "compensationType": "Salary", "interval": "1 YEAR", "currencyCode": "USD", "minValue": 310000, "maxValue": 460000 } ] }) } else { Value::Null }
                },
                { "id": "hidden", "title": "Unlisted", "isListed": false }
            ]
        }))
        .into_response()
    }

    async fn server() -> (Boards, Arc<Load>) {
        let load = Arc::new(Load::default());
        let app = Router::new()
            .route("/v1/boards/{token}/jobs", get(greenhouse_jobs))
            .route("/v1/boards/{token}/jobs/{id}", get(greenhouse_job))
            .route("/v0/postings/{site}", get(lever_postings))
            .route("/posting-api/job-board/{name}", get(ashby_board))
            .with_state(load.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let boards = Boards::new(&base, &base, &base, Duration::from_secs(5)).unwrap();
        (boards, load)
    }

    fn source(kind: Site, board: &str) -> Source {
        Source {
            kind,
            board: board.into(),
            company: None,
        }
    }

    #[tokio::test]
    async fn each_board_is_read_and_normalised() {
        let (boards, _) = server().await;
        let gh = boards.greenhouse_jobs("acme", Some("Acme")).await.unwrap();
        assert_eq!(
            gh.len(),
            1,
            "the job without a title is dropped, not the board"
        );
        assert_eq!(gh[0].id, "gh-acme-127817");
        assert_eq!(gh[0].company, "Acme");
        assert_eq!(gh[0].description, "₹30,00,000 - ₹45,00,000. 3+ years.");
        assert_eq!(gh[0].currency.as_deref(), Some("INR"));
        assert_eq!(gh[0].max_amount, Some(4_500_000.0));

        let lv = boards.lever_postings("leverdemo", None).await.unwrap();
        assert_eq!(lv.len(), 230, "three pages of 100, 100 and 30");
        assert_eq!(lv[229].title, "Engineer 229");
        assert!(lv
            .iter()
            .all(|p| p.is_remote && p.job_type == Some(JobType::FullTime)));
        assert_eq!(lv[0].company, "leverdemo");
        let stuck = boards.lever_postings("stuck", None).await.unwrap();
        assert_eq!(stuck.len(), 100, "a board that ignores skip is read once");

        let ash = boards.ashby_jobs("openai", Some("OpenAI")).await.unwrap();
        assert_eq!(ash.len(), 1, "unlisted jobs are dropped");
        assert_eq!(ash[0].workplace, Workplace::OnSite);
        assert_eq!(
            ash[0].max_amount,
            Some(460_000.0),
            "includeCompensation=true was sent"
        );
    }

    #[tokio::test]
    async fn a_greenhouse_form_has_its_questions_and_pay() {
        let (boards, _) = server().await;
        let form = boards.questions("acme", "127817").await.unwrap();
        assert_eq!(form.questions.len(), 4);
        assert_eq!(form.questions[0].label, "First Name");
        assert!(form.questions[1].required);
        assert_eq!(form.questions[1].fields[0].kind, FieldKind::InputFile);
        let select = &form.questions[2].fields[0];
        assert_eq!(select.kind, FieldKind::MultiValueSingleSelect);
        assert_eq!(
            select.values[0],
            Choice {
                label: "Yes".into(),
                value: "1".into()
            }
        );
        assert_eq!(form.questions[3].fields[0].kind, FieldKind::Other);
        let salary = form.salary.as_ref().unwrap().to_salary().unwrap();
        assert_eq!(
            (salary.min, salary.max),
            (Some(3_000_000.0), Some(4_500_000.0))
        );
        assert!(matches!(
            boards.questions("acme", "1").await,
            Err(CallError::NotFound { tool: "greenhouse" })
        ));
        assert!(matches!(
            boards.questions("acme", "../x").await,
            Err(CallError::Permanent { .. })
        ));
        // A form round-trips (it goes into checkpoints).
        let back: Form = serde_json::from_value(serde_json::to_value(&form).unwrap()).unwrap();
        assert_eq!(back.questions[2], form.questions[2]);
    }

    #[tokio::test]
    async fn discovery_isolates_failures_and_keeps_four_in_flight() {
        let (boards, load) = server().await;
        let mut sources = vec![
            source(Site::Greenhouse, "acme"),
            source(Site::Greenhouse, "nope"),
            source(Site::Greenhouse, "broken"),
            source(Site::Lever, "leverdemo"),
            source(Site::Lever, "nope"),
            source(Site::Ashby, "openai"),
            source(Site::Ashby, "nope"),
        ];
        for i in 0..9 {
            let kind = [Site::Greenhouse, Site::Lever, Site::Ashby][i % 3];
            sources.push(source(kind, &format!("slow-{i}")));
        }
        let found = discover(&boards, &sources, MAX_IN_FLIGHT).await;
        assert_eq!(found.len(), sources.len());
        for (d, s) in found.iter().zip(&sources) {
            assert_eq!(&d.source, s, "in the order of the sources");
        }
        let counts: Vec<Result<usize, String>> = found
            .iter()
            .map(|d| d.result.as_ref().map(Vec::len).map_err(|e| e.to_string()))
            .collect();
        assert_eq!(counts[0], Ok(1));
        assert_eq!(counts[1], Err("greenhouse: not found".into()));
        assert!(
            counts[2].as_ref().unwrap_err().contains("does not parse"),
            "{:?}",
            counts[2]
        );
        assert_eq!(counts[3], Ok(230));
        assert_eq!(counts[4], Err("lever: not found".into()));
        assert_eq!(counts[5], Ok(1));
        assert_eq!(counts[6], Err("ashby: not found".into()));
        assert!(counts[7..].iter().all(|c| c == &Ok(0)));
        let most = load.most.load(Ordering::SeqCst);
        assert!(
            (2..=MAX_IN_FLIGHT).contains(&most),
            "at most 4 at once, and not one by one: {most}"
        );
    }

    #[test]
    fn sources_from_job_config_name_the_bad_field() {
        let ok = Source::parse_list(&json!([
            { "type": "greenhouse", "board": "acme" },
            { "type": "lever", "board": "leverdemo", "company": "Lever Demo" },
            { "type": "ashby", "board": "openai" }
        ]))
        .unwrap();
        assert_eq!(ok[1].kind, Site::Lever);
        assert_eq!(ok[1].company.as_deref(), Some("Lever Demo"));
        for (config, field) in [
            (json!({ "type": "lever" }), "sources"),
            (
                json!([{ "type": "indeed", "board": "x" }]),
                "sources[0].type",
            ),
            (
                json!([{ "type": "lever", "board": "ok" }, { "type": "lever" }]),
                "sources[1].board",
            ),
            (json!([{ "type": "lever", "bord": "x" }]), "sources[0].bord"),
            (
                json!([{ "type": "lever", "board": "a/b" }]),
                "sources[0].board",
            ),
            (
                json!([{ "type": "lever", "board": "" }]),
                "sources[0].board",
            ),
            (json!([{ "type": "lever", "board": 7 }]), "sources[0].board"),
            (json!(["acme"]), "sources[0]"),
        ] {
            let err = Source::parse_list(&config).unwrap_err();
            assert_eq!(err.field, field, "{config}: {err}");
        }
        let err = Source::parse_list(&json!([{ "type": "indeed", "board": "x" }])).unwrap_err();
        assert!(err.to_string().contains("greenhouse"), "{err}");
    }

    #[test]
    fn base_urls_are_checked() {
        let err = Boards::new(
            "not a url",
            LEVER_BASE_URL,
            ASHBY_BASE_URL,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(err.starts_with("boards.greenhouse_base_url: "), "{err}");
        Boards::new(
            GREENHOUSE_BASE_URL,
            LEVER_BASE_URL,
            ASHBY_BASE_URL,
            Duration::from_secs(1),
        )
        .unwrap();
    }
}
