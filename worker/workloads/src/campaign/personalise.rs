//! A subject and body per lead: from the LLM (an OpenAI-compatible chat completion) when
//! `llm.base_url` is set, else from the campaign's templates.

use drover_worker::JobError;
use serde::Deserialize;
use serde_json::json;

use super::target::{render, Target};
use super::Lead;
use crate::services::{CallError, Request, Service};

/// The LLM, as configured.
#[derive(Clone, Debug)]
pub struct Llm {
    pub service: Service,
    pub model: String,
}

impl Llm {
    /// The LLM of `llm.base_url` (with `llm.api_key` and `llm.model`); `None` without one.
    pub fn from_settings(settings: &crate::Settings) -> Result<Option<Llm>, String> {
        let Some(base) = &settings.llm_base_url else {
            return Ok(None);
        };
        let auth = settings
            .llm_api_key
            .clone()
            .map(crate::services::Auth::Bearer)
            .unwrap_or(crate::services::Auth::None);
        Ok(Some(Llm {
            service: Service::new("llm", base, auth, settings.api_timeout)
                .map_err(|e| format!("llm.base_url: {e}"))?,
            model: settings.llm_model.clone(),
        }))
    }
}

/// A lead's message.
pub struct Written {
    pub subject: String,
    pub body: String,
    /// `llm` or `template`.
    pub source: &'static str,
}

fn first_name(lead: &Lead) -> String {
    lead.name
        .as_deref()
        .and_then(|n| n.split_whitespace().next())
        .unwrap_or(&lead.login)
        .to_string()
}

/// The templates, filled for `lead`.
pub fn from_templates(target: &Target, lead: &Lead) -> Written {
    let stars = lead.stars.to_string();
    let first = first_name(lead);
    let name = lead.name.clone().unwrap_or_else(|| lead.login.clone());
    let language = lead
        .language
        .clone()
        .unwrap_or_else(|| "open-source".into());
    let values = [
        ("name", name.as_str()),
        ("first_name", first.as_str()),
        ("login", lead.login.as_str()),
        ("repo", lead.repo.as_str()),
        ("language", language.as_str()),
        ("stars", stars.as_str()),
    ];
    Written {
        subject: render(&target.subject, &values),
        body: render(&target.body, &values),
        source: "template",
    }
}

impl Llm {
    /// Asks the model for the body; the subject stays the template's (one line, checked).
    /// 429 `rate_limit_exceeded` and 5xx are retried by the client with the server's wait;
    /// `insufficient_quota` and other 4xx are permanent for this lead.
    pub async fn write(&self, target: &Target, lead: &Lead) -> Result<Written, JobError> {
        let template = from_templates(target, lead);
        let prompt = format!(
            "Maintainer: {} (login {}), {} followers{}.\nRepository: {} ({} stars, {}).\n\
             Write a short, specific, friendly note (under 120 words) thanking them for their \
             work on the repository. Plain text, no subject line.",
            lead.name.as_deref().unwrap_or(&lead.login),
            lead.login,
            lead.followers,
            lead.company
                .as_deref()
                .map(|c| format!(", works at {c}"))
                .unwrap_or_default(),
            lead.repo,
            lead.stars,
            lead.language.as_deref().unwrap_or("unknown language"),
        );
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You write short, specific notes to open-source maintainers."},
                {"role": "user", "content": prompt},
            ],
            "temperature": 0.7,
            "max_tokens": 300,
            "n": 1,
            "stream": false,
        });
        let request = Request {
            body: Some(body),
            headers: Vec::new(),
        };
        let reply = match self.service.post("/chat/completions", request).await {
            Ok(reply) => reply,
            Err(err @ CallError::Transient { .. }) | Err(err @ CallError::RateLimited { .. }) => {
                return Err(JobError::Transient(err.to_string()))
            }
            Err(err) => return Err(JobError::Permanent(err.to_string())),
        };
        #[derive(Deserialize)]
        struct Completion {
            choices: Vec<Choice>,
        }
        #[derive(Deserialize)]
        struct Choice {
            message: ChoiceMessage,
            finish_reason: Option<String>,
        }
        #[derive(Deserialize)]
        struct ChoiceMessage {
            content: Option<String>,
        }
        let completion: Completion = reply
            .json("llm")
            .map_err(|e| JobError::Permanent(e.to_string()))?;
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| JobError::Permanent("llm: the answer has no choices".into()))?;
        let text = choice.message.content.unwrap_or_default();
        if text.trim().is_empty() || choice.finish_reason.as_deref() == Some("content_filter") {
            return Err(JobError::Permanent(
                "llm: the answer is empty or filtered".into(),
            ));
        }
        Ok(Written {
            subject: template.subject,
            body: text.trim().to_string(),
            source: "llm",
        })
    }
}
