//! The hosted application forms: Greenhouse-like (the form on the job's page) and Lever-like
//! (a job page, then `/apply`), plain HTML with no scripts or external assets, validated on the
//! server, with the CAPTCHA, login-wall and e-mailed-code variants; and every submission
//! recorded as an [`Application`]. Selectors and URLs are in the module doc of [`super`].

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::postings::{Ats, Posting, Question, QuestionKind, Variant};
use super::{escape, Boards};
use crate::log::Request as Logged;

type Shared = Arc<Boards>;

/// What became of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The form was complete and the board took it (the confirmation page followed).
    Accepted,
    /// Required fields were missing or wrong; the form came back with the errors.
    Invalid,
    /// The CAPTCHA refused it.
    Captcha,
    /// The form sits behind a login; the POST was redirected to `/login`.
    LoginRequired,
    /// The form was complete but the board wants the code it e-mailed; never accepted.
    VerificationRequired,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Invalid => "invalid",
            Outcome::Captcha => "captcha",
            Outcome::LoginRequired => "login_required",
            Outcome::VerificationRequired => "verification_required",
        }
    }
}

/// A file that came with a submission.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    /// The form field (`job_application[resume]`, `resume`, …).
    pub field: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub size: usize,
    /// Lowercase hex.
    pub sha256: String,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

/// One POST of an application form, whatever became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Application {
    /// `app_000001`, …
    pub id: String,
    pub at: DateTime<Utc>,
    pub ats: Ats,
    pub board: String,
    pub posting: String,
    /// The job behind the posting (equal for the same job on two boards).
    pub job: u64,
    pub title: String,
    pub company: String,
    pub variant: Variant,
    pub outcome: Outcome,
    /// `outcome == accepted`.
    pub accepted: bool,
    /// Every text field as sent (a name sent more than once: its values joined by ", ").
    pub fields: BTreeMap<String, String>,
    pub files: Vec<Upload>,
    /// The labels of the required fields that were missing or invalid.
    pub missing: Vec<String>,
    /// The codes typed on the verification page (all refused).
    pub security_codes: Vec<String>,
}

/// A posted form: its text fields and files.
#[derive(Default)]
struct Posted {
    fields: BTreeMap<String, String>,
    files: Vec<Upload>,
}

impl Posted {
    fn text(&self, name: &str) -> &str {
        self.fields.get(name).map(|s| s.trim()).unwrap_or("")
    }

    fn file(&self, name: &str) -> Option<&Upload> {
        self.files.iter().find(|f| f.field == name && f.size > 0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a multipart or url-encoded form. A browser sends an empty part for a file input
/// left empty; it is dropped.
async fn read_form(request: Request) -> Result<Posted, Response> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let mut posted = Posted::default();
    let add = |fields: &mut BTreeMap<String, String>, name: String, value: String| {
        fields
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value)
            })
            .or_insert(value);
    };
    if multipart {
        let refused =
            |e: String| (StatusCode::BAD_REQUEST, format!("bad form: {e}")).into_response();
        let mut form = Multipart::from_request(request, &())
            .await
            .map_err(|e| refused(e.body_text()))?;
        while let Some(part) = form
            .next_field()
            .await
            .map_err(|e| refused(e.body_text()))?
        {
            let name = part.name().unwrap_or_default().to_string();
            let filename = part.file_name().map(str::to_string);
            let content_type = part.content_type().map(str::to_string);
            let bytes = part.bytes().await.map_err(|e| refused(e.body_text()))?;
            match filename {
                Some(filename) => {
                    if filename.is_empty() && bytes.is_empty() {
                        continue;
                    }
                    posted.files.push(Upload {
                        field: name,
                        filename,
                        content_type,
                        size: bytes.len(),
                        sha256: hex(&Sha256::digest(&bytes)),
                        bytes: bytes.to_vec(),
                    });
                }
                None => add(
                    &mut posted.fields,
                    name,
                    String::from_utf8_lossy(&bytes).into_owned(),
                ),
            }
        }
    } else {
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(request, &())
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()).into_response())?;
        for (name, value) in pairs {
            add(&mut posted.fields, name, value);
        }
    }
    Ok(posted)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<style>body{{font-family:sans-serif;max-width:760px;margin:2em auto;line-height:1.45}}\
label{{display:block;margin-top:.8em;font-weight:600}}input[type=text],input[type=email],input[type=tel],input[type=password],textarea,select{{width:100%;padding:.4em}}\
[role=alert]{{color:#b00;border:1px solid #b00;padding:.6em}}.required,.asterisk{{color:#b00}}</style></head>\
<body>{body}</body></html>",
        escape(title)
    )
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    (status, Html(page(title, body))).into_response()
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn to_login(from: &str) -> Response {
    let to = format!("/login?return_to={}", percent(from));
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn missing_page() -> Response {
    html(
        StatusCode::NOT_FOUND,
        "Job not found",
        "<h1>Sorry, this job is no longer available</h1><p>The job you are looking for may have been filled or closed.</p>",
    )
}

impl Boards {
    fn log_form(&self, method: &str, path: &str, route: &str, status: StatusCode) {
        let request = Logged {
            at: Utc::now(),
            service: "forms",
            method: method.into(),
            path: path.into(),
            token: None,
            status: status.as_u16(),
        };
        self.log.record(request, route);
    }

    fn record(
        &self,
        p: &Posting,
        posted: Posted,
        outcome: Outcome,
        missing: Vec<String>,
    ) -> String {
        let mut all = self.applications.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("app_{:06}", all.len() + 1);
        all.push(Application {
            id: id.clone(),
            at: Utc::now(),
            ats: p.ats,
            board: p.board.clone(),
            posting: p.id.clone(),
            job: p.job,
            title: p.title.clone(),
            company: p.company.clone(),
            variant: p.variant,
            outcome,
            accepted: outcome == Outcome::Accepted,
            fields: posted.fields,
            files: posted.files,
            missing,
            security_codes: Vec::new(),
        });
        self.log.count_application(outcome.name());
        id
    }

    /// The application `id` of posting `p`, if it waits for a code.
    fn awaiting_code(&self, p: &Posting, id: &str) -> Option<String> {
        let all = self.applications.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .find(|a| {
                a.id == id
                    && a.ats == p.ats
                    && a.posting == p.id
                    && a.outcome == Outcome::VerificationRequired
            })
            .map(|a| {
                let email = a
                    .fields
                    .iter()
                    .find(|(k, _)| k.ends_with("email") || k.ends_with("[email]"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                mask(&email)
            })
    }

    fn add_code(&self, id: &str, code: String) {
        let mut all = self.applications.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = all.iter_mut().find(|a| a.id == id) {
            a.security_codes.push(code);
        }
    }

    fn find(&self, ats: Ats, board: &str, id: &str) -> Option<Posting> {
        self.posting(ats, id).filter(|p| p.board == board)
    }
}

fn mask(email: &str) -> String {
    match email.split_once('@') {
        Some((user, domain)) => {
            let first: String = user.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "your email address".into(),
    }
}

fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((user, domain)) => !user.is_empty() && domain.contains('.') && !s.contains(' '),
        None => false,
    }
}

// ---------- Greenhouse ----------

const GREENHOUSE_FIELDS: [(&str, &str, &str); 4] = [
    ("first_name", "First Name", "text"),
    ("last_name", "Last Name", "text"),
    ("email", "Email", "email"),
    ("phone", "Phone", "tel"),
];

fn captcha_block(ats: Ats) -> &'static str {
    match ats {
        Ats::Lever => "<div class=\"h-captcha\" data-sitekey=\"10000000-sandbox-0000-0000-000000000001\" data-size=\"invisible\">\
<iframe title=\"Widget containing checkbox for hCaptcha security challenge\" src=\"/captcha/hcaptcha\" width=\"303\" height=\"78\" frameborder=\"0\"></iframe></div>\
<textarea id=\"h-captcha-response\" name=\"h-captcha-response\" style=\"display:none\"></textarea>",
        _ => "<div id=\"recaptcha\" class=\"g-recaptcha\" data-sitekey=\"6LeSandboxSiteKey000000000000000000000\">\
<iframe title=\"reCAPTCHA\" src=\"/captcha/recaptcha\" width=\"304\" height=\"78\" frameborder=\"0\"></iframe></div>\
<textarea id=\"g-recaptcha-response\" name=\"g-recaptcha-response\" class=\"g-recaptcha-response\" style=\"display:none\"></textarea>",
    }
}

fn value_of<'a>(values: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    values.get(name).map(String::as_str).unwrap_or("")
}

fn greenhouse_question(q: &Question, values: &BTreeMap<String, String>) -> String {
    let name = q.field(Ats::Greenhouse);
    let star = if q.required {
        "<span class=\"asterisk\">*</span>"
    } else {
        ""
    };
    let aria = if q.required {
        " aria-required=\"true\""
    } else {
        ""
    };
    let current = value_of(values, &name);
    let input = match q.kind {
        QuestionKind::Text => format!(
            "<input type=\"text\" id=\"{name}\" name=\"{name}\" value=\"{}\"{aria}>",
            escape(current)
        ),
        QuestionKind::Textarea => format!(
            "<textarea id=\"{name}\" name=\"{name}\" rows=\"4\"{aria}>{}</textarea>",
            escape(current)
        ),
        QuestionKind::YesNo => {
            let option = |value: &str, label: &str| {
                let selected = if current == value { " selected" } else { "" };
                format!("<option value=\"{value}\"{selected}>{label}</option>")
            };
            format!(
                "<select id=\"{name}\" name=\"{name}\"{aria}><option value=\"\">Please select</option>{}{}</select>",
                option("1", "Yes"),
                option("0", "No")
            )
        }
    };
    format!(
        "<div class=\"field\"><label for=\"{name}\">{}</label>{star}{input}</div>",
        escape(&q.label)
    )
}

fn greenhouse_page(p: &Posting, values: &BTreeMap<String, String>, error: Option<&str>) -> String {
    let mut form = String::new();
    if let Some(error) = error {
        form.push_str(&format!(
            "<div id=\"error_message\" class=\"error\" role=\"alert\">{}</div>",
            escape(error)
        ));
    }
    for (name, label, kind) in GREENHOUSE_FIELDS {
        let field = format!("job_application[{name}]");
        form.push_str(&format!(
            "<div class=\"field\"><label for=\"{name}\">{label}</label><span class=\"asterisk\">*</span>\
<input type=\"{kind}\" id=\"{name}\" name=\"{field}\" value=\"{}\" aria-required=\"true\" autocomplete=\"off\"></div>",
            escape(value_of(values, &field))
        ));
    }
    form.push_str(&format!(
        "<div class=\"field\" id=\"resume_fieldset\"><label for=\"resume\">Resume/CV</label><span class=\"asterisk\">*</span>\
<input type=\"file\" id=\"resume\" name=\"job_application[resume]\" accept=\".pdf,.doc,.docx,.txt,.rtf\">\
<label for=\"resume_text\" class=\"secondary\">or paste your resume</label>\
<textarea id=\"resume_text\" name=\"job_application[resume_text]\" rows=\"3\">{}</textarea></div>\
<div class=\"field\" id=\"cover_letter_fieldset\"><label for=\"cover_letter\">Cover Letter</label>\
<input type=\"file\" id=\"cover_letter\" name=\"job_application[cover_letter]\" accept=\".pdf,.doc,.docx,.txt,.rtf\">\
<label for=\"cover_letter_text\" class=\"secondary\">or paste your cover letter</label>\
<textarea id=\"cover_letter_text\" name=\"job_application[cover_letter_text]\" rows=\"3\">{}</textarea></div>",
        escape(value_of(values, "job_application[resume_text]")),
        escape(value_of(values, "job_application[cover_letter_text]")),
    ));
    if !p.questions.is_empty() {
        form.push_str("<div id=\"custom_fields\">");
        for q in &p.questions {
            form.push_str(&greenhouse_question(q, values));
        }
        form.push_str("</div>");
    }
    if p.variant == Variant::Captcha {
        form.push_str(captcha_block(Ats::Greenhouse));
    }
    form.push_str("<div id=\"submit_buttons\"><input type=\"submit\" id=\"submit_app\" value=\"Submit Application\"></div>");
    let path = p.page_path();
    let body = format!(
        "<div id=\"app_body\"><div id=\"header\"><h1 class=\"app-title\">{}</h1>\
<span class=\"company-name\">at {}</span><div class=\"location\">{}</div></div>\
<div id=\"content\">{}</div>\
<div id=\"application\"><h2>Apply for this Job</h2>\
<form id=\"application_form\" method=\"post\" action=\"{path}\" enctype=\"multipart/form-data\" accept-charset=\"UTF-8\">{form}</form></div></div>",
        escape(&p.title),
        escape(&p.company),
        escape(&p.location),
        p.description_html
    );
    page(
        &format!("Job Application for {} at {}", p.title, p.company),
        &body,
    )
}

/// The labels of the required Greenhouse fields missing from `posted`.
fn greenhouse_missing(p: &Posting, posted: &Posted) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, label, _) in GREENHOUSE_FIELDS {
        let value = posted.text(&format!("job_application[{name}]"));
        if value.is_empty() || (name == "email" && !valid_email(value)) {
            missing.push(label.to_string());
        }
    }
    if posted.file("job_application[resume]").is_none()
        && posted.text("job_application[resume_text]").is_empty()
    {
        missing.push("Resume/CV".to_string());
    }
    for q in p.questions.iter().filter(|q| q.required) {
        let answer = posted.text(&q.field(Ats::Greenhouse));
        let ok = match q.kind {
            QuestionKind::YesNo => answer == "1" || answer == "0",
            _ => !answer.is_empty(),
        };
        if !ok {
            missing.push(q.label.clone());
        }
    }
    missing
}

async fn greenhouse_get(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/gh/{token}/jobs/{id}");
    let route = "/gh/{token}/jobs/{id}";
    let response = match b.find(Ats::Greenhouse, &token, &id) {
        None => missing_page(),
        Some(p) if p.variant == Variant::Login => to_login(&path),
        Some(p) => Html(greenhouse_page(&p, &BTreeMap::new(), None)).into_response(),
    };
    b.log_form("GET", &path, route, response.status());
    response
}

async fn greenhouse_post(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let path = format!("/gh/{token}/jobs/{id}");
    let route = "/gh/{token}/jobs/{id}";
    let response = match b.find(Ats::Greenhouse, &token, &id) {
        None => missing_page(),
        Some(p) => match read_form(request).await {
            Err(response) => response,
            Ok(posted) => submit(&b, &p, posted, greenhouse_missing, |values, error| {
                greenhouse_page(&p, values, Some(error))
            }),
        },
    };
    b.log_form("POST", &path, route, response.status());
    b.form_answers_released().await;
    response
}

/// The walls, the validation and the record, in the order a board applies them.
fn submit(
    b: &Boards,
    p: &Posting,
    posted: Posted,
    missing: fn(&Posting, &Posted) -> Vec<String>,
    render: impl Fn(&BTreeMap<String, String>, &str) -> String,
) -> Response {
    let base = p.page_path();
    if p.variant == Variant::Login {
        b.record(p, posted, Outcome::LoginRequired, Vec::new());
        return to_login(&p.apply_path());
    }
    let lacking = missing(p, &posted);
    if p.variant == Variant::Captcha {
        let values = posted.fields.clone();
        b.record(p, posted, Outcome::Captcha, lacking);
        let text = match p.ats {
            Ats::Lever => "✱ Please verify that you are not a robot, and reupload any files.",
            _ => "Please verify that you are not a robot.",
        };
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(render(&values, text)),
        )
            .into_response();
    }
    if !lacking.is_empty() {
        let values = posted.fields.clone();
        let text = match p.ats {
            Ats::Lever => format!(
                "✱ Please fill out the required fields: {}. Reupload any files.",
                lacking.join(", ")
            ),
            _ => format!(
                "There were errors with your application. Please complete the required fields: {}.",
                lacking.join(", ")
            ),
        };
        b.record(p, posted, Outcome::Invalid, lacking);
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Html(render(&values, &text)),
        )
            .into_response();
    }
    let done = match p.ats {
        Ats::Lever => "thanks",
        _ => "confirmation",
    };
    if p.variant == Variant::EmailCode {
        let id = b.record(p, posted, Outcome::VerificationRequired, Vec::new());
        return see_other(&format!("{base}/verify?application={id}"));
    }
    b.record(p, posted, Outcome::Accepted, Vec::new());
    see_other(&format!("{base}/{done}"))
}

async fn greenhouse_confirmation(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/gh/{token}/jobs/{id}/confirmation");
    let response = match b.find(Ats::Greenhouse, &token, &id) {
        None => missing_page(),
        Some(p) => html(
            StatusCode::OK,
            "Application submitted",
            &format!(
                "<div id=\"application_confirmation\"><h1>Thank you for applying.</h1>\
<p>Your application has been received. We will review your application shortly and get in touch with you if your qualifications match the role of {} at {}.</p></div>",
                escape(&p.title),
                escape(&p.company)
            ),
        ),
    };
    b.log_form(
        "GET",
        &path,
        "/gh/{token}/jobs/{id}/confirmation",
        response.status(),
    );
    response
}

// ---------- the e-mailed code (both boards) ----------

fn verify_page(p: &Posting, application: &str, masked: &str, error: Option<&str>) -> String {
    let alert = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    page(
        "Verify your email",
        &format!(
            "<h1>Check your email</h1>{alert}\
<form id=\"security_code_form\" method=\"post\" action=\"{}/verify?application={}\">\
<p class=\"verification-message\">We sent an 8-character security code to {}. Enter the security code sent to your email to submit your application for {}.</p>\
<label for=\"security_code\">Security code</label>\
<input type=\"text\" id=\"security_code\" name=\"security_code\" maxlength=\"8\" autocomplete=\"one-time-code\">\
<button type=\"submit\" id=\"submit_code\">Submit</button></form>",
            p.page_path(),
            escape(application),
            escape(masked),
            escape(&p.title)
        ),
    )
}

async fn verify(
    b: &Boards,
    ats: Ats,
    board: &str,
    id: &str,
    q: &std::collections::HashMap<String, String>,
    code: Option<String>,
) -> Response {
    let Some(p) = b.find(ats, board, id) else {
        return missing_page();
    };
    let application = q.get("application").cloned().unwrap_or_default();
    let Some(masked) = b.awaiting_code(&p, &application) else {
        return html(
            StatusCode::NOT_FOUND,
            "Not found",
            "<h1>This verification link is no longer valid.</h1>",
        );
    };
    match code {
        None => Html(verify_page(&p, &application, &masked, None)).into_response(),
        Some(code) => {
            b.add_code(&application, code);
            let page = verify_page(
                &p,
                &application,
                &masked,
                Some("The security code you entered is incorrect. Please check your email and try again."),
            );
            (StatusCode::UNPROCESSABLE_ENTITY, Html(page)).into_response()
        }
    }
}

type Q = Query<std::collections::HashMap<String, String>>;

async fn greenhouse_verify_get(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let response = verify(&b, Ats::Greenhouse, &token, &id, &q, None).await;
    let path = format!("/gh/{token}/jobs/{id}/verify");
    b.log_form(
        "GET",
        &path,
        "/gh/{token}/jobs/{id}/verify",
        response.status(),
    );
    response
}

async fn greenhouse_verify_post(
    State(b): State<Shared>,
    Path((token, id)): Path<(String, String)>,
    Query(q): Q,
    request: Request,
) -> Response {
    let code = match read_form(request).await {
        Ok(posted) => posted.text("security_code").to_string(),
        Err(response) => return response,
    };
    let response = verify(&b, Ats::Greenhouse, &token, &id, &q, Some(code)).await;
    let path = format!("/gh/{token}/jobs/{id}/verify");
    b.log_form(
        "POST",
        &path,
        "/gh/{token}/jobs/{id}/verify",
        response.status(),
    );
    response
}

// ---------- Lever ----------

const LEVER_FIELDS: [(&str, &str, &str, bool); 4] = [
    ("name", "Full name", "text", true),
    ("email", "Email", "email", true),
    ("phone", "Phone", "tel", false),
    ("org", "Current company", "text", false),
];
const LEVER_LINKS: [(&str, &str); 5] = [
    ("LinkedIn", "LinkedIn URL"),
    ("Twitter", "Twitter URL"),
    ("GitHub", "GitHub URL"),
    ("Portfolio", "Portfolio URL"),
    ("Other", "Other website"),
];

fn lever_header(p: &Posting) -> String {
    let workplace = match p.workplace {
        super::Workplace::OnSite => "On-site",
        super::Workplace::Hybrid => "Hybrid",
        super::Workplace::Remote => "Remote",
    };
    format!(
        "<div class=\"posting-headline\"><h2>{}</h2><div class=\"posting-categories\">\
<div class=\"sort-by-time posting-category location\">{}</div>\
<div class=\"sort-by-team posting-category department\">{} – {}</div>\
<div class=\"sort-by-commitment posting-category commitment\">{}</div>\
<div class=\"posting-category workplaceTypes\">{workplace}</div></div></div>",
        escape(&p.title),
        escape(&p.location),
        escape(&p.department),
        escape(&p.team),
        p.employment.lever()
    )
}

fn lever_card(q: &Question, values: &BTreeMap<String, String>) -> String {
    let name = q.field(Ats::Lever);
    let id = format!("card_{}", q.uuid);
    let star = if q.required {
        "<span class=\"required\">✱</span>"
    } else {
        ""
    };
    let current = value_of(values, &name);
    let input = match q.kind {
        QuestionKind::Text => format!(
            "<input type=\"text\" id=\"{id}\" name=\"{name}\" value=\"{}\">",
            escape(current)
        ),
        QuestionKind::Textarea => format!(
            "<textarea id=\"{id}\" name=\"{name}\" rows=\"4\">{}</textarea>",
            escape(current)
        ),
        QuestionKind::YesNo => ["Yes", "No"]
            .iter()
            .map(|v| {
                let checked = if current == *v { " checked" } else { "" };
                format!(
                    "<li><label><input type=\"radio\" id=\"{id}_{}\" name=\"{name}\" value=\"{v}\"{checked}>\
<span class=\"application-answer-alternative\">{v}</span></label></li>",
                    v.to_lowercase()
                )
            })
            .collect::<Vec<_>>()
            .join(""),
    };
    let input = if q.kind == QuestionKind::YesNo {
        format!("<ul data-qa=\"multiple-choice\">{input}</ul>")
    } else {
        input
    };
    let label_for = if q.kind == QuestionKind::YesNo {
        format!("{id}_yes")
    } else {
        id.clone()
    };
    let template = escape(&format!(
        "{{\"text\":{},\"fields\":[{{\"type\":\"{}\",\"required\":{}}}]}}",
        serde_json::Value::String(q.label.clone()),
        match q.kind {
            QuestionKind::Text => "text",
            QuestionKind::Textarea => "textarea",
            QuestionKind::YesNo => "multiple-choice",
        },
        q.required
    ));
    format!(
        "<li class=\"application-question custom-question\" data-question=\"{}\">\
<label class=\"application-label full-width\" for=\"{label_for}\"><span class=\"text\">{}</span>{star}</label>\
<div class=\"application-field full-width\">{input}</div>\
<input type=\"hidden\" name=\"cards[{}][baseTemplate]\" value=\"{template}\"></li>",
        q.uuid,
        escape(&q.label),
        q.uuid
    )
}

fn lever_apply_page(p: &Posting, values: &BTreeMap<String, String>, error: Option<&str>) -> String {
    let mut form = String::new();
    if let Some(error) = error {
        form.push_str(&format!(
            "<div class=\"application-error\" role=\"alert\" data-qa=\"error-message\">{}</div>",
            escape(error)
        ));
    }
    form.push_str("<h4>Submit your application</h4><ul>");
    form.push_str(
        "<li class=\"application-question resume\"><label class=\"application-label\" for=\"resume-upload-input\">Resume/CV</label>\
<span class=\"required\">✱</span><div class=\"application-field\">\
<input type=\"file\" id=\"resume-upload-input\" name=\"resume\" data-qa=\"input-resume\"></div></li>",
    );
    for (name, label, kind, required) in LEVER_FIELDS {
        let star = if required {
            "<span class=\"required\">✱</span>"
        } else {
            ""
        };
        form.push_str(&format!(
            "<li class=\"application-question\"><label class=\"application-label\" for=\"{name}\">{label}</label>{star}\
<div class=\"application-field\"><input type=\"{kind}\" id=\"{name}\" name=\"{name}\" value=\"{}\" data-qa=\"{name}-input\"></div></li>",
            escape(value_of(values, name))
        ));
    }
    form.push_str("</ul><h4>Links</h4><ul>");
    for (site, label) in LEVER_LINKS {
        let name = format!("urls[{site}]");
        form.push_str(&format!(
            "<li class=\"application-question\"><label class=\"application-label\" for=\"urls-{}\">{label}</label>\
<div class=\"application-field\"><input type=\"text\" id=\"urls-{}\" name=\"{name}\" value=\"{}\"></div></li>",
            site.to_lowercase(),
            site.to_lowercase(),
            escape(value_of(values, &name))
        ));
    }
    form.push_str("</ul>");
    if !p.questions.is_empty() {
        form.push_str("<div class=\"application-additional-questions\"><ul>");
        for q in &p.questions {
            form.push_str(&lever_card(q, values));
        }
        form.push_str("</ul></div>");
    }
    form.push_str(&format!(
        "<h4>Additional information</h4><div class=\"application-additional\">\
<textarea id=\"additional-information\" name=\"comments\" rows=\"5\" placeholder=\"Add a cover letter or anything else you want to share.\">{}</textarea></div>",
        escape(value_of(values, "comments"))
    ));
    if p.variant == Variant::Captcha {
        form.push_str(captcha_block(Ats::Lever));
    }
    form.push_str(
        "<div class=\"application-submit\"><button type=\"submit\" id=\"btn-submit\" class=\"postings-btn template-btn-submit\" data-qa=\"btn-submit\">Submit application</button></div>",
    );
    let body = format!(
        "<div class=\"application-page\">{}<form id=\"application-form\" method=\"POST\" action=\"{}\" enctype=\"multipart/form-data\">{form}</form></div>",
        lever_header(p),
        p.apply_path()
    );
    page(&format!("{} - {}", p.company, p.title), &body)
}

fn lever_missing(p: &Posting, posted: &Posted) -> Vec<String> {
    let mut missing = Vec::new();
    if posted.file("resume").is_none() {
        missing.push("Resume/CV".to_string());
    }
    for (name, label, _, required) in LEVER_FIELDS {
        let value = posted.text(name);
        if required && (value.is_empty() || (name == "email" && !valid_email(value))) {
            missing.push(label.to_string());
        }
    }
    for q in p.questions.iter().filter(|q| q.required) {
        let answer = posted.text(&q.field(Ats::Lever));
        let ok = match q.kind {
            QuestionKind::YesNo => answer == "Yes" || answer == "No",
            _ => !answer.is_empty(),
        };
        if !ok {
            missing.push(q.label.clone());
        }
    }
    missing
}

async fn lever_page(State(b): State<Shared>, Path((site, id)): Path<(String, String)>) -> Response {
    let path = format!("/lever/{site}/{id}");
    let response = match b.find(Ats::Lever, &site, &id) {
        None => missing_page(),
        Some(p) => {
            let lists = p
                .description_plain
                .split("\n\n")
                .map(|para| match para.strip_prefix("- ") {
                    Some(item) => format!("<li>{}</li>", escape(item)),
                    None => format!("<p>{}</p>", escape(para)),
                })
                .collect::<String>();
            let body = format!(
                "{}<div class=\"section-wrapper page-full-width\"><div class=\"section\">{lists}</div></div>\
<div class=\"postings-btn-wrapper\"><a class=\"postings-btn template-btn-submit\" data-qa=\"btn-apply-bottom\" href=\"{}\">Apply for this job</a></div>",
                lever_header(&p),
                p.apply_path()
            );
            html(
                StatusCode::OK,
                &format!("{} - {}", p.company, p.title),
                &body,
            )
        }
    };
    b.log_form("GET", &path, "/lever/{site}/{id}", response.status());
    response
}

async fn lever_apply_get(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/lever/{site}/{id}/apply");
    let response = match b.find(Ats::Lever, &site, &id) {
        None => missing_page(),
        Some(p) if p.variant == Variant::Login => to_login(&path),
        Some(p) => Html(lever_apply_page(&p, &BTreeMap::new(), None)).into_response(),
    };
    b.log_form("GET", &path, "/lever/{site}/{id}/apply", response.status());
    response
}

async fn lever_apply_post(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let path = format!("/lever/{site}/{id}/apply");
    let response = match b.find(Ats::Lever, &site, &id) {
        None => missing_page(),
        Some(p) => match read_form(request).await {
            Err(response) => response,
            Ok(posted) => submit(&b, &p, posted, lever_missing, |values, error| {
                lever_apply_page(&p, values, Some(error))
            }),
        },
    };
    b.log_form("POST", &path, "/lever/{site}/{id}/apply", response.status());
    b.form_answers_released().await;
    response
}

async fn lever_thanks(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/lever/{site}/{id}/thanks");
    let response = match b.find(Ats::Lever, &site, &id) {
        None => missing_page(),
        Some(p) => html(
            StatusCode::OK,
            "Application submitted",
            &format!(
                "<div class=\"application-confirmation\"><div class=\"section\">\
<h3 data-qa=\"msg-submit-success\">Application submitted!</h3>\
<p>Thanks for applying to {} at {}. We've received your application and will be in touch.</p></div></div>",
                escape(&p.title),
                escape(&p.company)
            ),
        ),
    };
    b.log_form("GET", &path, "/lever/{site}/{id}/thanks", response.status());
    response
}

async fn lever_verify_get(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    let response = verify(&b, Ats::Lever, &site, &id, &q, None).await;
    let path = format!("/lever/{site}/{id}/verify");
    b.log_form("GET", &path, "/lever/{site}/{id}/verify", response.status());
    response
}

async fn lever_verify_post(
    State(b): State<Shared>,
    Path((site, id)): Path<(String, String)>,
    Query(q): Q,
    request: Request,
) -> Response {
    let code = match read_form(request).await {
        Ok(posted) => posted.text("security_code").to_string(),
        Err(response) => return response,
    };
    let response = verify(&b, Ats::Lever, &site, &id, &q, Some(code)).await;
    let path = format!("/lever/{site}/{id}/verify");
    b.log_form(
        "POST",
        &path,
        "/lever/{site}/{id}/verify",
        response.status(),
    );
    response
}

// ---------- Ashby, the login wall, the CAPTCHA frames ----------

async fn ashby_page(State(b): State<Shared>, Path((name, id)): Path<(String, String)>) -> Response {
    let path = format!("/ashby/{name}/{id}");
    let response = match b.find(Ats::Ashby, &name, &id) {
        None => missing_page(),
        Some(p) => html(
            StatusCode::OK,
            &format!("{} @ {}", p.title, p.company),
            &format!(
                "<h1 class=\"ashby-job-posting-heading\">{}</h1><p>{} · {}</p>{}<p><a href=\"{}\">Apply for this Job</a></p>",
                escape(&p.title),
                escape(&p.company),
                escape(&p.location),
                p.description_html,
                p.apply_path()
            ),
        ),
    };
    b.log_form("GET", &path, "/ashby/{name}/{id}", response.status());
    response
}

async fn ashby_application(
    State(b): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let path = format!("/ashby/{name}/{id}/application");
    let response = match b.find(Ats::Ashby, &name, &id) {
        None => missing_page(),
        Some(p) => html(
            StatusCode::OK,
            &format!("{} @ {}", p.title, p.company),
            "<noscript>You need to enable JavaScript to run this app.</noscript><div id=\"root\"></div>",
        ),
    };
    b.log_form(
        "GET",
        &path,
        "/ashby/{name}/{id}/application",
        response.status(),
    );
    response
}

fn login_page(return_to: &str, error: Option<&str>) -> String {
    let alert = error
        .map(|e| format!("<div class=\"error\" role=\"alert\">{}</div>", escape(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to continue</h1>{alert}<p>You need to sign in to apply for this job.</p>\
<form id=\"login_form\" method=\"post\" action=\"/login\">\
<label for=\"login_email\">Email</label><input type=\"email\" id=\"login_email\" name=\"email\">\
<label for=\"login_password\">Password</label><input type=\"password\" id=\"login_password\" name=\"password\">\
<input type=\"hidden\" name=\"return_to\" value=\"{}\">\
<button type=\"submit\" id=\"sign_in\">Sign in</button></form>",
            escape(return_to)
        ),
    )
}

async fn login_get(State(b): State<Shared>, Query(q): Q) -> Response {
    let return_to = q.get("return_to").cloned().unwrap_or_default();
    let response = Html(login_page(&return_to, None)).into_response();
    b.log_form("GET", "/login", "/login", response.status());
    response
}

async fn login_post(State(b): State<Shared>, request: Request) -> Response {
    let response = match read_form(request).await {
        Err(response) => response,
        Ok(posted) => {
            let page = login_page(posted.text("return_to"), Some("Invalid email or password."));
            (StatusCode::UNAUTHORIZED, Html(page)).into_response()
        }
    };
    b.log_form("POST", "/login", "/login", response.status());
    response
}

async fn captcha_frame(Path(kind): Path<String>) -> Response {
    let label = match kind.as_str() {
        "hcaptcha" => "I am human",
        _ => "I'm not a robot",
    };
    html(
        StatusCode::OK,
        "challenge",
        &format!(
            "<div class=\"challenge\"><label><input type=\"checkbox\" id=\"checkbox\" aria-checked=\"false\"> {label}</label></div>"
        ),
    )
}

pub fn routes(boards: Shared) -> Router {
    Router::new()
        .route(
            "/gh/{token}/jobs/{id}",
            get(greenhouse_get).post(greenhouse_post),
        )
        .route(
            "/gh/{token}/jobs/{id}/confirmation",
            get(greenhouse_confirmation),
        )
        .route(
            "/gh/{token}/jobs/{id}/verify",
            get(greenhouse_verify_get).post(greenhouse_verify_post),
        )
        .route("/lever/{site}/{id}", get(lever_page))
        .route(
            "/lever/{site}/{id}/apply",
            get(lever_apply_get).post(lever_apply_post),
        )
        .route("/lever/{site}/{id}/thanks", get(lever_thanks))
        .route(
            "/lever/{site}/{id}/verify",
            get(lever_verify_get).post(lever_verify_post),
        )
        .route("/ashby/{name}/{id}", get(ashby_page))
        .route("/ashby/{name}/{id}/application", get(ashby_application))
        .route("/login", get(login_get).post(login_post))
        .route("/captcha/{kind}", get(captcha_frame))
        // Résumés are a few hundred kilobytes; axum's default limit is 2 MB.
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(boards)
}
