//! The board APIs as Greenhouse, Lever and Ashby answer them (shapes in the module doc of
//! [`super`]), each request logged under its service and subject to the board's [`Fault`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Value};

use super::postings::{Ats, Posting, QuestionKind, Salary, Workplace};
use super::{escape, Boards, Fault};
use crate::log::Request;

type Shared = Arc<Boards>;

/// `http://{Host}`: the base of the absolute URLs in the answers.
pub fn base(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Runs one board request: the in-flight count, the board's fault and latency, the log.
async fn serve(
    boards: &Boards,
    ats: Ats,
    board: &str,
    route: &str,
    path: String,
    answer: impl FnOnce() -> Response,
) -> Response {
    let _in_flight = boards.enter();
    let fault = boards.fault_for(ats, board).unwrap_or_default();
    if let Some(ms) = fault.latency_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let response = match fault.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) => failure(ats, status, &fault),
        None => answer(),
    };
    let request = Request {
        at: Utc::now(),
        service: ats.name(),
        method: "GET".into(),
        path,
        token: None,
        status: response.status().as_u16(),
    };
    boards.log.record(request, route);
    response
}

fn failure(ats: Ats, status: StatusCode, fault: &Fault) -> Response {
    let text = status.canonical_reason().unwrap_or("Error");
    let body = match ats {
        Ats::Greenhouse => json!({"status": status.as_u16(), "error": text}),
        Ats::Lever => json!({"ok": false, "error": text}),
        Ats::Ashby => json!({"success": false, "error": text}),
    };
    let mut response = json_response(status, &body);
    if let Some(after) = fault.retry_after_s {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(after));
    }
    response
}

fn not_found(ats: Ats, what: &str) -> Response {
    let body = match ats {
        Ats::Greenhouse => json!({"status": 404, "error": format!("{what} not found")}),
        Ats::Lever => json!({"ok": false, "error": "Document not found"}),
        Ats::Ashby => json!({"success": false, "error": format!("{what} not found")}),
    };
    json_response(StatusCode::NOT_FOUND, &body)
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true" || v == "1")
}

// ---------- Greenhouse ----------

/// Greenhouse writes times in the board's own offset (here US Eastern standard time).
fn greenhouse_time(t: DateTime<Utc>) -> String {
    const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%:z";
    match FixedOffset::west_opt(5 * 3600) {
        Some(offset) => t.with_timezone(&offset).format(FORMAT).to_string(),
        None => t.format(FORMAT).to_string(),
    }
}

fn office(p: &Posting) -> String {
    p.location
        .trim_end_matches(" (Remote)")
        .trim_end_matches(" (Hybrid)")
        .to_string()
}

fn small_id(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    10_000 + h % 90_000
}

fn greenhouse_job(p: &Posting, base: &str, content: bool) -> Value {
    let mut job = json!({
        "id": p.id.parse::<u64>().unwrap_or_default(),
        "internal_job_id": 3_000_000 + p.job,
        "title": p.title,
        "updated_at": greenhouse_time(p.posted_at),
        "first_published": greenhouse_time(p.posted_at),
        "requisition_id": format!("REQ-{}", p.job),
        "location": {"name": p.location},
        "absolute_url": format!("{base}{}", p.page_path()),
        "metadata": null,
        "company_name": p.company,
        "language": "en",
        "data_compliance": [{
            "type": "gdpr",
            "requires_consent": false,
            "requires_processing_consent": false,
            "requires_retention_consent": false,
            "retention_period": null,
        }],
    });
    if content {
        job["content"] = json!(escape(&p.description_html));
        job["departments"] = json!([{
            "id": small_id(&p.department),
            "name": p.department,
            "parent_id": null,
            "child_ids": [],
        }]);
        let office = office(p);
        job["offices"] = json!([{
            "id": small_id(&office),
            "name": office,
            "location": office,
            "parent_id": null,
            "child_ids": [],
        }]);
    }
    job
}

fn field(name: &str, kind: &str) -> Value {
    json!({"name": name, "type": kind, "values": []})
}

fn greenhouse_questions(p: &Posting) -> Value {
    let standard = |label: &str, required: bool, fields: Vec<Value>| json!({"required": required, "label": label, "description": null, "fields": fields});
    let mut questions = vec![
        standard("First Name", true, vec![field("first_name", "input_text")]),
        standard("Last Name", true, vec![field("last_name", "input_text")]),
        standard("Email", true, vec![field("email", "input_text")]),
        standard("Phone", true, vec![field("phone", "input_text")]),
        standard(
            "Resume/CV",
            true,
            vec![
                field("resume", "input_file"),
                field("resume_text", "textarea"),
            ],
        ),
        standard(
            "Cover Letter",
            false,
            vec![
                field("cover_letter", "input_file"),
                field("cover_letter_text", "textarea"),
            ],
        ),
    ];
    for q in &p.questions {
        let name = q.field(Ats::Greenhouse);
        let f = match q.kind {
            QuestionKind::Text => field(&name, "input_text"),
            QuestionKind::Textarea => field(&name, "textarea"),
            QuestionKind::YesNo => json!({
                "name": name,
                "type": "multi_value_single_select",
                "values": [{"value": 1, "label": "Yes"}, {"value": 0, "label": "No"}],
            }),
        };
        questions.push(standard(&q.label, q.required, vec![f]));
    }
    Value::Array(questions)
}

fn pay_ranges(p: &Posting) -> Value {
    match (&p.salary, p.salary_structured) {
        (Some(s), true) => json!([{
            "min_cents": s.min * 100,
            "max_cents": s.max * 100,
            "currency_type": s.currency,
            "title": "Base Salary",
            "blurb": "The range reflects the base salary; the final offer depends on experience and location.",
        }]),
        _ => json!([]),
    }
}

async fn greenhouse_board(State(b): State<Shared>, Path(token): Path<String>) -> Response {
    let path = format!("/v1/boards/{token}");
    serve(
        &b,
        Ats::Greenhouse,
        &token,
        "/v1/boards/{token}",
        path,
        || {
            if b.board(Ats::Greenhouse, &token).is_none() {
                return not_found(Ats::Greenhouse, "Board");
            }
            let name = b
                .read()
                .companies
                .get(&token)
                .map(|c| c.name.clone())
                .unwrap_or_else(|| token.clone());
            let content = escape(&format!("<p>Join {name}.</p>"));
            json_response(StatusCode::OK, &json!({"name": name, "content": content}))
        },
    )
    .await
}

async fn greenhouse_jobs(
    State(b): State<Shared>,
    Path(token): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/boards/{token}/jobs");
    let base = base(&headers);
    serve(
        &b,
        Ats::Greenhouse,
        &token,
        "/v1/boards/{token}/jobs",
        path,
        || {
            let Some(postings) = b.board(Ats::Greenhouse, &token) else {
                return not_found(Ats::Greenhouse, "Board");
            };
            let content = flag(&q, "content");
            let jobs: Vec<Value> = postings
                .iter()
                .map(|p| greenhouse_job(p, &base, content))
                .collect();
            let total = jobs.len();
            json_response(
                StatusCode::OK,
                &json!({"jobs": jobs, "meta": {"total": total}}),
            )
        },
    )
    .await
}

async fn greenhouse_job_route(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/boards/{token}/jobs/{id}");
    let base = base(&headers);
    let route = "/v1/boards/{token}/jobs/{id}";
    serve(&b, Ats::Greenhouse, &token, route, path, || {
        let posting = b.posting(Ats::Greenhouse, &id).filter(|p| p.board == token);
        let Some(p) = posting else {
            return not_found(Ats::Greenhouse, "Job");
        };
        let mut job = greenhouse_job(&p, &base, true);
        if flag(&q, "questions") {
            job["questions"] = greenhouse_questions(&p);
            job["location_questions"] = json!([]);
            job["compliance"] = json!([]);
            job["demographic_questions"] = Value::Null;
        }
        if flag(&q, "pay_transparency") {
            job["pay_input_ranges"] = pay_ranges(&p);
        }
        json_response(StatusCode::OK, &job)
    })
    .await
}

// ---------- Lever ----------

fn country(location: &str) -> &'static str {
    let l = location.to_lowercase();
    let has = |w: &[&str]| w.iter().any(|w| l.contains(w));
    if has(&["india"]) {
        "IN"
    } else if has(&["united kingdom", "uk"]) {
        "GB"
    } else if has(&["germany", ", de"]) {
        "DE"
    } else if has(&["netherlands", ", nl"]) {
        "NL"
    } else if has(&["ireland", ", ie"]) {
        "IE"
    } else if has(&["canada"]) {
        "CA"
    } else if has(&["europe", "(eu)"]) {
        "DE"
    } else {
        "US"
    }
}

/// Lever splits a description into its opening paragraphs and its lists.
fn lever_parts(p: &Posting) -> (String, String, Vec<Value>) {
    let (mut html, mut plain, mut items) = (String::new(), Vec::new(), Vec::new());
    let mut heading = "Requirements".to_string();
    for para in p.description_plain.split("\n\n") {
        match para.strip_prefix("- ") {
            Some(item) => items.push(format!("<li>{}</li>", escape(item))),
            None if para.ends_with(':') => heading = para.trim_end_matches(':').to_string(),
            None => {
                html.push_str(&format!("<div>{}</div>", escape(para)));
                plain.push(para.to_string());
            }
        }
    }
    let lists = if items.is_empty() {
        Vec::new()
    } else {
        vec![json!({"text": heading, "content": items.concat()})]
    };
    (html, plain.join("\n"), lists)
}

fn lever_posting(p: &Posting, base: &str) -> Value {
    let (description, plain, lists) = lever_parts(p);
    let opening_plain = plain.lines().next().unwrap_or_default().to_string();
    let workplace = match p.workplace {
        Workplace::OnSite => "on-site",
        Workplace::Hybrid => "hybrid",
        Workplace::Remote => "remote",
    };
    let mut v = json!({
        "id": p.id,
        "text": p.title,
        "categories": {
            "location": p.location,
            "commitment": p.employment.lever(),
            "team": p.team,
            "department": p.department,
            "allLocations": [p.location],
        },
        "country": country(&p.location),
        "workplaceType": workplace,
        "opening": format!("<div>{}</div>", escape(&opening_plain)),
        "openingPlain": opening_plain,
        "description": description,
        "descriptionPlain": plain,
        "descriptionBody": description,
        "descriptionBodyPlain": plain,
        "lists": lists,
        "additional": "<div>We are an equal opportunity employer.</div>",
        "additionalPlain": "We are an equal opportunity employer.",
        "hostedUrl": format!("{base}{}", p.page_path()),
        "applyUrl": format!("{base}{}", p.apply_path()),
        "createdAt": p.posted_at.timestamp_millis(),
    });
    if let (Some(s), true) = (&p.salary, p.salary_structured) {
        v["salaryRange"] = json!({
            "currency": s.currency,
            "interval": "per-year-salary",
            "min": s.min,
            "max": s.max,
        });
    }
    v
}

async fn lever_postings(
    State(b): State<Shared>,
    Path(site): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v0/postings/{site}");
    let base = base(&headers);
    serve(&b, Ats::Lever, &site, "/v0/postings/{site}", path, || {
        let Some(mut postings) = b.board(Ats::Lever, &site) else {
            return not_found(Ats::Lever, "Site");
        };
        let values = |name: &str| -> Vec<&str> {
            q.iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let number = |name: &str| values(name).first().map(|v| v.parse::<usize>());
        let skip = match number("skip") {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"ok": false, "error": "Invalid value for skip"}),
                )
            }
        };
        let limit = match number("limit") {
            None => usize::MAX,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"ok": false, "error": "Invalid value for limit"}),
                )
            }
        };
        postings.sort_by(|a, b| b.posted_at.cmp(&a.posted_at).then(a.id.cmp(&b.id)));
        for (name, get) in [
            ("location", (|p: &Posting| p.location.clone()) as fn(&Posting) -> String),
            ("commitment", |p| p.employment.lever().to_string()),
            ("team", |p| p.team.clone()),
            ("department", |p| p.department.clone()),
        ] {
            let wanted = values(name);
            if !wanted.is_empty() {
                postings.retain(|p| wanted.contains(&get(p).as_str()));
            }
        }
        let mode_json = values("mode").contains(&"json");
        let page: Vec<&Posting> = postings.iter().skip(skip).take(limit).collect();
        if !mode_json {
            let items: String = page
                .iter()
                .map(|p| {
                    format!(
                        "<div class=\"posting\"><a class=\"posting-title\" href=\"{}{}\"><h5>{}</h5></a></div>",
                        base,
                        p.page_path(),
                        escape(&p.title)
                    )
                })
                .collect();
            return Html(format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>Jobs</title></head><body>{items}</body></html>"
            ))
            .into_response();
        }
        let list: Vec<Value> = page.iter().map(|p| lever_posting(p, &base)).collect();
        json_response(StatusCode::OK, &Value::Array(list))
    })
    .await
}

async fn lever_one(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v0/postings/{site}/{id}");
    let base = base(&headers);
    serve(
        &b,
        Ats::Lever,
        &site,
        "/v0/postings/{site}/{id}",
        path,
        || match b.posting(Ats::Lever, &id).filter(|p| p.board == site) {
            Some(p) => json_response(StatusCode::OK, &lever_posting(&p, &base)),
            None => not_found(Ats::Lever, "Posting"),
        },
    )
    .await
}

// ---------- Ashby ----------

fn short(symbol: &str, n: u64) -> String {
    if n >= 1_000_000 {
        let tenths = (n + 50_000) / 100_000;
        if tenths % 10 == 0 {
            format!("{symbol}{}M", tenths / 10)
        } else {
            format!("{symbol}{}.{}M", tenths / 10, tenths % 10)
        }
    } else {
        format!("{symbol}{}K", n / 1_000)
    }
}

fn symbol(currency: &str) -> &str {
    match currency {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "INR" => "₹",
        "CAD" => "CA$",
        other => other,
    }
}

fn compensation(p: &Posting, posting_id: &str) -> Value {
    let Some(s) = p.salary.as_ref().filter(|_| p.salary_structured) else {
        return json!({
            "compensationTierSummary": null,
            "scrapeableCompensationSalarySummary": null,
            "compensationTiers": [],
            "summaryComponents": [],
        });
    };
    let Salary { currency, min, max } = s;
    let sym = symbol(currency);
    let summary = format!("{} – {}", short(sym, *min), short(sym, *max));
    let component = json!({
        "compensationType": "Salary",
        "interval": "1 YEAR",
        "currencyCode": currency,
        "minValue": min,
        "maxValue": max,
    });
    let mut tier_component = component.clone();
    tier_component["id"] = json!(format!("{posting_id}-salary"));
    tier_component["summary"] = json!(summary);
    json!({
        "compensationTierSummary": summary,
        "scrapeableCompensationSalarySummary": format!("{} - {}", short(sym, *min), short(sym, *max)),
        "compensationTiers": [{
            "id": format!("{posting_id}-tier"),
            "tierSummary": summary,
            "title": null,
            "additionalInformation": null,
            "components": [tier_component],
        }],
        "summaryComponents": [component],
    })
}

fn ashby_job(p: &Posting, base: &str, with_compensation: bool) -> Value {
    let workplace = match p.workplace {
        Workplace::OnSite => "OnSite",
        Workplace::Hybrid => "Hybrid",
        Workplace::Remote => "Remote",
    };
    let locality = p.location.split(',').next().unwrap_or_default().trim();
    let mut job = json!({
        "id": p.id,
        "title": p.title,
        "department": p.department,
        "team": p.team,
        "employmentType": p.employment.ashby(),
        "location": p.location,
        "secondaryLocations": [],
        "address": {"postalAddress": {
            "addressLocality": locality,
            "addressRegion": null,
            "addressCountry": country(&p.location),
        }},
        "isRemote": p.workplace == Workplace::Remote,
        "workplaceType": workplace,
        "publishedAt": p.posted_at.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
        "isListed": p.listed,
        "jobUrl": format!("{base}{}", p.page_path()),
        "applyUrl": format!("{base}{}", p.apply_path()),
        "descriptionHtml": p.description_html,
        "descriptionPlain": p.description_plain,
        "shouldDisplayCompensationOnJobPostings": p.salary_structured && p.salary.is_some(),
    });
    if with_compensation {
        job["compensation"] = compensation(p, &p.id);
    }
    job
}

async fn ashby_board(
    State(b): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/posting-api/job-board/{name}");
    let base = base(&headers);
    serve(
        &b,
        Ats::Ashby,
        &name,
        "/posting-api/job-board/{name}",
        path,
        || {
            let Some(postings) = b.board(Ats::Ashby, &name) else {
                return not_found(Ats::Ashby, "Job board");
            };
            let with = flag(&q, "includeCompensation");
            let jobs: Vec<Value> = postings.iter().map(|p| ashby_job(p, &base, with)).collect();
            json_response(StatusCode::OK, &json!({"apiVersion": "1", "jobs": jobs}))
        },
    )
    .await
}

pub fn routes(boards: Shared) -> Router {
    Router::new()
        .route("/v1/boards/{token}", get(greenhouse_board))
        .route("/v1/boards/{token}/jobs", get(greenhouse_jobs))
        .route("/v1/boards/{token}/jobs/{id}", get(greenhouse_job_route))
        .route("/v0/postings/{site}", get(lever_postings))
        .route("/v0/postings/{site}/{id}", get(lever_one))
        .route("/posting-api/job-board/{name}", get(ashby_board))
        .with_state(boards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ashby_writes_amounts_short() {
        assert_eq!(short("$", 150_000), "$150K");
        assert_eq!(short("₹", 2_800_000), "₹2.8M");
        assert_eq!(short("₹", 3_000_000), "₹3M");
    }
}
