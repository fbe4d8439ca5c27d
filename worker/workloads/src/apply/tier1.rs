//! Tier 1: an application through the ATS's hosted form in a real browser (SPEC §7.3).
//!
//! [`fill`] opens the form, stops at anything that wants a person (a CAPTCHA, a login
//! wall, a question without an answer), and fills the rest: the applicant's name, e-mail,
//! phone and links, the résumé upload, and the custom questions answered from the
//! profile's `answers` (or by the caller's [`Answerer`]). [`submit`] clicks the form's
//! submit button and reads the page that follows: a confirmation is success; a CAPTCHA
//! challenge, an e-mailed verification code or a form error is not, and says which.
//! Nothing here gets past a site's protections: it recognises them and gives up, and the
//! posting goes to tier 2.
//!
//! The two are apart so that only [`submit`] needs the effect ledger: filling can be
//! repeated after a crash, a click on submit cannot.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::services::browser::BrowserError;

/// How long a page may take to show the outcome of a submit.
const OUTCOME_WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// Texts of a confirmation page, lowercased (the real ATSs' wording).
const SUCCESS: [&str; 7] = [
    "thank you for applying",
    "thanks for applying",
    "application submitted",
    "your application has been received",
    "we've received your application",
    "application received",
    "you've applied",
];
/// Texts that mean a person must prove they are one.
const CAPTCHA_TEXT: [&str; 3] = [
    "verify that you are not a robot",
    "verify you are human",
    "complete the captcha",
];
const CAPTCHA_SELECTOR: &str = ".h-captcha, .g-recaptcha, .cf-turnstile, [data-sitekey], \
     iframe[src*='captcha'], iframe[title*='captcha' i]";
const CODE_TEXT: [&str; 3] = ["security code", "verification code", "enter the code"];

/// Who applies, as the form wants it.
#[derive(Clone)]
pub struct Applicant<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub phone: &'a str,
    pub location: &'a str,
    /// Link name (LinkedIn, GitHub, Portfolio, …) → URL.
    pub links: &'a BTreeMap<String, String>,
    /// Question → answer, from the profile.
    pub answers: &'a BTreeMap<String, String>,
    /// The résumé on the WebDriver's host.
    pub resume: &'a Path,
}

impl std::fmt::Debug for Applicant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Personal data stays out of logs.
        f.write_str("Applicant(<redacted>)")
    }
}

/// What stops an application short of a submit and sends it to tier 2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "blocker", content = "detail", rename_all = "snake_case")]
pub enum Blocker {
    Captcha,
    LoginWall,
    VerificationCode,
    /// A required question nobody answered (its label).
    Unanswered(String),
    /// The page has no form this knows how to fill.
    NoForm,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocker::Captcha => f.write_str("the form asks for a CAPTCHA"),
            Blocker::LoginWall => f.write_str("the form is behind a login"),
            Blocker::VerificationCode => {
                f.write_str("the form asks for a code sent by e-mail or SMS")
            }
            Blocker::Unanswered(label) => {
                write!(f, "no answer for the required question `{label}`")
            }
            Blocker::NoForm => f.write_str("no application form on the page"),
        }
    }
}

/// Answers a question the profile's `answers` do not (the LLM, when configured).
#[async_trait::async_trait]
pub trait Answerer: Send + Sync {
    async fn answer(&self, question: &str, options: &[String]) -> Option<String>;
}

/// A form control as the page describes it.
#[derive(Debug, Clone, Deserialize)]
struct Control {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    tag: String,
    label: String,
    required: bool,
    #[serde(default)]
    options: Vec<String>,
}

/// A filled form, ready for [`submit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filled {
    /// The fields filled, by name, with what went in (the résumé as its file name). This is
    /// the evidence of what was submitted.
    pub fields: BTreeMap<String, String>,
    /// The form's submit control.
    submit: String,
}

/// How a submit ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Submitted {
    /// The confirmation page said so (its words).
    Applied { confirmation: String },
    /// The site stopped it (a CAPTCHA after submit, a code by e-mail).
    Blocked { blocker: Blocker },
    /// The form refused it (its message).
    Refused { message: String },
    /// The page showed neither a confirmation nor a refusal in time: the board may have the
    /// application. Never submitted again.
    Unconfirmed { message: String },
}

/// Opens `url` and fills its application form for `who`.
pub async fn fill(
    client: &Client,
    url: &str,
    who: &Applicant<'_>,
    answerer: Option<&dyn Answerer>,
) -> Result<Result<Filled, Blocker>, BrowserError> {
    client.goto(url).await?;
    if let Some(blocker) = blocked_before_form(client).await? {
        return Ok(Err(blocker));
    }
    // Lever's posting page links to its form.
    if !has_form(client).await? {
        if let Ok(link) = client
            .find(Locator::XPath(
                "//a[contains(translate(., 'APLY', 'aply'), 'apply')]",
            ))
            .await
        {
            link.click().await?;
            if let Some(blocker) = blocked_before_form(client).await? {
                return Ok(Err(blocker));
            }
        }
    }
    if !has_form(client).await? {
        return Ok(Err(Blocker::NoForm));
    }
    if client.find(Locator::Css(CAPTCHA_SELECTOR)).await.is_ok() {
        return Ok(Err(Blocker::Captcha));
    }

    let controls = controls(client).await?;
    let mut fields = BTreeMap::new();
    let mut submit = None;
    for control in &controls {
        if control.kind == "submit" {
            submit.get_or_insert_with(|| control.name.clone());
            continue;
        }
        if control.kind == "hidden" || control.name.is_empty() {
            continue;
        }
        if control.kind == "file" {
            if is_resume(control) {
                let path = who.resume.display().to_string();
                element(client, &control.name)
                    .await?
                    .send_keys(&path)
                    .await?;
                let file = who
                    .resume
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                fields.insert(control.name.clone(), file);
            } else if control.required {
                return Ok(Err(Blocker::Unanswered(control.label.clone())));
            }
            continue;
        }
        let value = match standard_value(control, who) {
            Some(value) => Some(value),
            None => match find_answer(who.answers, &control.label) {
                Some(answer) => Some(answer.to_string()),
                None if control.required || is_custom(control) => match answerer {
                    Some(a) => a.answer(&control.label, &control.options).await,
                    None => None,
                },
                None => None,
            },
        };
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            if control.required {
                return Ok(Err(Blocker::Unanswered(control.label.clone())));
            }
            continue;
        };
        set(client, control, &value).await?;
        fields.insert(control.name.clone(), value);
    }
    let Some(submit) = submit else {
        return Ok(Err(Blocker::NoForm));
    };
    Ok(Ok(Filled { fields, submit }))
}

/// Clicks submit on a [`fill`]ed form and reads the outcome from the page.
pub async fn submit(client: &Client, filled: &Filled) -> Result<Submitted, BrowserError> {
    let button = match client
        .find(Locator::Css(&format!(
            "[name=\"{}\"]",
            css_string(&filled.submit)
        )))
        .await
    {
        Ok(button) => button,
        Err(_) => {
            client
                .find(Locator::Css(
                    "#submit_app, button[data-qa='btn-submit'], [type=submit]",
                ))
                .await?
        }
    };
    let before = client.current_url().await?;
    // The form is submitted as a click on its button would (`requestSubmit(button)`: the
    // button is the submitter, the form's submit handlers and validation run), without the
    // hit-testing of a synthetic click, which a busy headless Chromium now and then lost
    // (no request left the page).
    let submitter = serde_json::to_value(&button)
        .map_err(|e| BrowserError::Command(format!("the submit button: {e}")))?;
    client
        .execute(
            "const b = arguments[0]; b.scrollIntoView(); \
             if (b.form && b.form.requestSubmit) { b.form.requestSubmit(b); } else { b.click(); }",
            vec![submitter],
        )
        .await?;
    let started = Instant::now();
    loop {
        let text = body_text(client).await.unwrap_or_default();
        if let Some(words) = SUCCESS.iter().find(|s| text.contains(*s)) {
            return Ok(Submitted::Applied {
                confirmation: words.to_string(),
            });
        }
        if CAPTCHA_TEXT.iter().any(|s| text.contains(s)) {
            return Ok(Submitted::Blocked {
                blocker: Blocker::Captcha,
            });
        }
        if CODE_TEXT.iter().any(|s| text.contains(s)) {
            return Ok(Submitted::Blocked {
                blocker: Blocker::VerificationCode,
            });
        }
        let moved = client
            .current_url()
            .await
            .map(|u| u != before)
            .unwrap_or(false);
        // An error shown by the page the submit led to (or, when the form re-renders in
        // place, by the form once it had time to answer).
        if moved || started.elapsed() > Duration::from_secs(10) {
            if let Some(message) = form_error(client).await {
                return Ok(Submitted::Refused { message });
            }
        }
        if started.elapsed() > OUTCOME_WAIT {
            return Ok(Submitted::Unconfirmed {
                message: format!(
                    "the page showed no confirmation and no error within {}s of the submit",
                    OUTCOME_WAIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A login wall or CAPTCHA page in front of the form.
async fn blocked_before_form(client: &Client) -> Result<Option<Blocker>, BrowserError> {
    let url = client.current_url().await?;
    let path = url.path().to_ascii_lowercase();
    let password = client
        .find(Locator::Css("input[type=password]"))
        .await
        .is_ok();
    if password || path.contains("/login") || path.contains("/signin") || path.contains("/sign_in")
    {
        return Ok(Some(Blocker::LoginWall));
    }
    let text = body_text(client).await.unwrap_or_default();
    if CAPTCHA_TEXT.iter().any(|s| text.contains(s)) {
        return Ok(Some(Blocker::Captcha));
    }
    Ok(None)
}

async fn has_form(client: &Client) -> Result<bool, BrowserError> {
    Ok(client
        .find(Locator::Css(
            "form#application_form, form#application-form, form[enctype='multipart/form-data']",
        ))
        .await
        .is_ok())
}

async fn body_text(client: &Client) -> Result<String, BrowserError> {
    let text = client
        .execute(
            "return document.body ? document.body.innerText : ''",
            Vec::new(),
        )
        .await?;
    Ok(text.as_str().unwrap_or_default().to_lowercase())
}

/// The text of an error the form shows, if any.
async fn form_error(client: &Client) -> Option<String> {
    let found = client
        .execute(
            "const e = document.querySelector('.error, .errors, [role=alert], .application-error, #error_explanation');\
             return e ? e.innerText.trim() : null;",
            Vec::new(),
        )
        .await
        .ok()?;
    found.as_str().map(str::to_string).filter(|s| !s.is_empty())
}

/// The form's controls with their labels: one script, not a WebDriver round trip per field.
async fn controls(client: &Client) -> Result<Vec<Control>, BrowserError> {
    const SCRIPT: &str = r#"
const form = document.querySelector('form#application_form, form#application-form, form[enctype="multipart/form-data"]');
if (!form) return [];
const seen = new Set();
const out = [];
for (const el of form.querySelectorAll('input, textarea, select, button')) {
  const name = el.getAttribute('name') || '';
  const type = (el.getAttribute('type') || (el.tagName === 'BUTTON' ? 'submit' : el.tagName.toLowerCase())).toLowerCase();
  if (type === 'radio' || type === 'checkbox') { if (seen.has(name)) continue; }
  seen.add(name);
  let label = '';
  if (el.id) { const l = form.querySelector('label[for="' + CSS.escape(el.id) + '"]'); if (l) label = l.innerText; }
  if (!label) { const l = el.closest('label'); if (l) label = l.innerText; }
  if (!label) { const q = el.closest('.field, .application-question, li, .question'); if (q) { const t = q.querySelector('label, .application-label, .text'); if (t) label = t.innerText; } }
  if (!label) label = el.getAttribute('aria-label') || el.getAttribute('placeholder') || '';
  let options = [];
  if (el.tagName === 'SELECT') options = Array.from(el.options).filter(o => o.value).map(o => o.text.trim());
  if (type === 'radio') options = Array.from(form.querySelectorAll('input[type=radio][name="' + CSS.escape(name) + '"]')).map(r => r.value);
  out.push({ name, type, tag: el.tagName.toLowerCase(), label: label.replace(/\s*\*\s*$/, '').trim(), required: el.required || el.getAttribute('aria-required') === 'true', options });
}
return out;
"#;
    let found: Value = client.execute(SCRIPT, Vec::new()).await?;
    serde_json::from_value(found).map_err(|e| BrowserError::Command(format!("form controls: {e}")))
}

async fn element(
    client: &Client,
    name: &str,
) -> Result<fantoccini::elements::Element, BrowserError> {
    Ok(client
        .find(Locator::Css(&format!("[name=\"{}\"]", css_string(name))))
        .await?)
}

/// Puts `value` into the control: typed into text fields, chosen in selects and radios.
async fn set(client: &Client, control: &Control, value: &str) -> Result<(), BrowserError> {
    match (control.tag.as_str(), control.kind.as_str()) {
        ("select", _) => {
            element(client, &control.name)
                .await?
                .select_by_label(value)
                .await?
        }
        (_, "radio") => {
            let css = format!(
                "input[type=radio][name=\"{}\"][value=\"{}\"]",
                css_string(&control.name),
                css_string(value)
            );
            client.find(Locator::Css(&css)).await?.click().await?
        }
        (_, "checkbox") => {
            if is_yes(value) {
                element(client, &control.name).await?.click().await?
            }
        }
        _ => {
            let field = element(client, &control.name).await?;
            field.clear().await?;
            field.send_keys(value).await?
        }
    }
    Ok(())
}

/// The applicant's own details, for the fields every ATS form has.
fn standard_value(control: &Control, who: &Applicant<'_>) -> Option<String> {
    let name = control.name.to_ascii_lowercase();
    let key = name
        .trim_start_matches("job_application[")
        .trim_end_matches(']')
        .to_string();
    let (first, last) = split_name(who.name);
    let link = |wanted: &str| {
        who.links
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.clone())
    };
    match key.as_str() {
        "first_name" => Some(first),
        "last_name" => Some(last),
        "name" | "full_name" => Some(who.name.to_string()),
        "email" => Some(who.email.to_string()),
        "phone" => Some(who.phone.to_string()),
        "location" => Some(who.location.to_string()),
        _ => {
            // Lever's `urls[LinkedIn]`.
            let inner = name.strip_prefix("urls[")?.strip_suffix(']')?;
            link(inner)
        }
    }
}

fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) => (first.trim().to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

fn is_resume(control: &Control) -> bool {
    let text = format!("{} {}", control.name, control.label).to_ascii_lowercase();
    text.contains("resume") || text.contains("résumé") || text.contains("cv")
}

/// A question the employer added (Greenhouse `question_…`/`answers_attributes`, Lever
/// `cards[…]`).
fn is_custom(control: &Control) -> bool {
    control.name.contains("question") || control.name.starts_with("cards[")
}

fn is_yes(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "1"
    )
}

/// The profile's answer to `label`: the same question after case, spacing and punctuation
/// are set aside, else the one whose words all occur in it.
pub fn find_answer<'a>(answers: &'a BTreeMap<String, String>, label: &str) -> Option<&'a str> {
    let wanted = question_key(label);
    if wanted.is_empty() {
        return None;
    }
    if let Some((_, a)) = answers.iter().find(|(q, _)| question_key(q) == wanted) {
        return Some(a);
    }
    let words: Vec<&str> = wanted.split(' ').collect();
    answers
        .iter()
        .filter(|(q, _)| {
            let key = question_key(q);
            !key.is_empty() && key.split(' ').all(|w| words.contains(&w))
        })
        .max_by_key(|(q, _)| q.len())
        .map(|(_, a)| a.as_str())
}

fn question_key(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` inside a double-quoted CSS string.
fn css_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_questions_whatever_their_punctuation() {
        let answers: BTreeMap<String, String> = [
            ("Are you authorized to work in India?", "Yes"),
            ("notice period", "30 days"),
            ("Years of Rust experience", "6"),
        ]
        .into_iter()
        .map(|(q, a)| (q.to_string(), a.to_string()))
        .collect();
        let find = |label| find_answer(&answers, label);
        assert_eq!(find("Are you authorized to work in India *"), Some("Yes"));
        assert_eq!(find("What is your notice period?"), Some("30 days"));
        assert_eq!(find("years of rust experience"), Some("6"));
        assert_eq!(find("Why do you want to work here?"), None);
        assert_eq!(find(""), None);
    }

    #[test]
    fn names_split_at_the_last_space() {
        assert_eq!(split_name("Asha Rao"), ("Asha".into(), "Rao".into()));
        assert_eq!(
            split_name(" Mary Ann  Smith "),
            ("Mary Ann".into(), "Smith".into())
        );
        assert_eq!(split_name("Prince"), ("Prince".into(), String::new()));
    }

    #[test]
    fn standard_fields_come_from_the_applicant() {
        let links: BTreeMap<String, String> = [(
            "LinkedIn".to_string(),
            "https://linkedin.example/in/asha".to_string(),
        )]
        .into();
        let answers = BTreeMap::new();
        let who = Applicant {
            name: "Asha Rao",
            email: "asha@example.com",
            phone: "+91 98450 00000",
            location: "Bengaluru",
            links: &links,
            answers: &answers,
            resume: Path::new("/tmp/resume.pdf"),
        };
        let control = |name: &str| Control {
            name: name.into(),
            kind: "text".into(),
            tag: "input".into(),
            label: String::new(),
            required: true,
            options: Vec::new(),
        };
        let value = |name| standard_value(&control(name), &who);
        assert_eq!(
            value("job_application[first_name]").as_deref(),
            Some("Asha")
        );
        assert_eq!(value("job_application[last_name]").as_deref(), Some("Rao"));
        assert_eq!(value("email").as_deref(), Some("asha@example.com"));
        assert_eq!(
            value("urls[LinkedIn]").as_deref(),
            Some("https://linkedin.example/in/asha")
        );
        assert_eq!(value("urls[GitHub]"), None);
        assert_eq!(value("cards[1234][field0]"), None);
        assert_eq!(format!("{who:?}"), "Applicant(<redacted>)");
    }
}
