//! Answers to form questions the profile's `answers` do not cover, from the LLM when
//! `llm.base_url` is set (SPEC §7.3: "else from the LLM, else the posting goes to tier 2").
//! An answer that is empty, refused, or not one of a choice question's options is no answer:
//! the posting then goes to tier 2 rather than submitting a guess.

use serde::Deserialize;
use serde_json::json;

use super::posting::Posting;
use super::tier1::Answerer;
use crate::campaign::personalise::Llm;
use crate::services::Request;
use drover_queue::profile::Profile;

/// The LLM, asked on behalf of one applicant for one posting.
pub struct LlmAnswerer<'a> {
    pub llm: &'a Llm,
    pub profile: &'a Profile,
    pub posting: &'a Posting,
}

/// What the model is told about the applicant: the profile's search and its answers, never
/// its contact details.
fn about(profile: &Profile, posting: &Posting) -> String {
    let answers: Vec<String> = profile
        .answers
        .iter()
        .map(|(q, a)| format!("- {q}: {a}"))
        .collect();
    format!(
        "Applicant: looking for {} roles; {} years of experience; based in {}; remote {}.\n\
         Known answers:\n{}\nPosting: {} at {} ({}).",
        profile.titles.join(", "),
        profile
            .experience_years
            .map(|y| y.to_string())
            .unwrap_or_else(|| "unstated".into()),
        profile.location.as_deref().unwrap_or("an unstated place"),
        if profile.remote_ok {
            "welcome"
        } else {
            "not wanted"
        },
        answers.join("\n"),
        posting.title,
        posting.company,
        posting.location,
    )
}

#[async_trait::async_trait]
impl Answerer for LlmAnswerer<'_> {
    async fn answer(&self, question: &str, options: &[String]) -> Option<String> {
        let choices = if options.is_empty() {
            "Answer in one or two short sentences.".to_string()
        } else {
            format!("Answer with exactly one of: {}.", options.join(" | "))
        };
        let prompt = format!(
            "{}\n\nApplication form question: {question}\n{choices} If the facts above do not \
             answer it, reply UNKNOWN.",
            about(self.profile, self.posting)
        );
        let body = json!({
            "model": self.llm.model,
            "messages": [
                {"role": "system", "content": "You fill in job application forms truthfully from the applicant's facts, and never invent facts."},
                {"role": "user", "content": prompt},
            ],
            "temperature": 0,
            "max_tokens": 120,
            "n": 1,
            "stream": false,
        });
        let request = Request {
            body: Some(body),
            headers: Vec::new(),
        };
        let reply = self
            .llm
            .service
            .post("/chat/completions", request)
            .await
            .ok()?;
        #[derive(Deserialize)]
        struct Completion {
            choices: Vec<Choice>,
        }
        #[derive(Deserialize)]
        struct Choice {
            message: Message,
        }
        #[derive(Deserialize)]
        struct Message {
            content: Option<String>,
        }
        let completion: Completion = reply.json("llm").ok()?;
        let text = completion.choices.into_iter().next()?.message.content?;
        let text = text.trim().trim_matches('"').trim().to_string();
        if text.is_empty() || text.eq_ignore_ascii_case("unknown") {
            return None;
        }
        if options.is_empty() {
            return Some(text);
        }
        options
            .iter()
            .find(|o| o.eq_ignore_ascii_case(&text))
            .cloned()
    }
}
