//! A user of the apply workload (SPEC §7.3): who they are, what they look for, how many
//! applications a day and a month they allow, and what a nightly run searches. Also the
//! shapes the store keeps beside a profile: the résumé, and sealed session cookies per site
//! (sealed by [`crate::seal`], above the store: the store never sees a cookie value).
//!
//! Everything a client sends is checked here, once, and every refusal names the field
//! (`titles[2]`, `answers.<question>`, `caps.daily`): the API answers it as a 422.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::application::Caps;
use crate::suppress::normalise_email;

/// The longest user id (and site name).
pub const MAX_USER_ID_LEN: usize = 128;
/// The longest name, location, title, company or job type.
pub const MAX_TEXT_LEN: usize = 200;
/// The most entries of a list (titles, companies, …) or of `links`.
pub const MAX_LIST_LEN: usize = 100;
/// The longest URL in `links`.
pub const MAX_URL_LEN: usize = 2048;
/// The most `answers`.
pub const MAX_ANSWERS: usize = 500;
/// The longest question of `answers`.
pub const MAX_QUESTION_LEN: usize = 1000;
/// The longest answer.
pub const MAX_ANSWER_LEN: usize = 10_000;
/// The most `sources`.
pub const MAX_SOURCES: usize = 50;
/// The largest cap (per day or month).
pub const MAX_CAP: u32 = 100_000;
/// The most years of experience a profile states.
pub const MAX_EXPERIENCE_YEARS: u32 = 80;
/// The largest `min_salary` (a yearly amount in any currency; 10^12 is past every salary).
pub const MAX_SALARY: u64 = 1_000_000_000_000;
/// The largest résumé, in bytes.
pub const MAX_RESUME_BYTES: usize = 5 * 1024 * 1024;

/// A field a client sent that is not acceptable: the field (dotted, with indexes) and why.
/// The message never repeats the value (it may be personal, or a cookie).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        message: message.into(),
    }
}

/// `[A-Za-z0-9._@-]`, 1 to [`MAX_USER_ID_LEN`] characters.
fn is_name(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= MAX_USER_ID_LEN
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') || extra.contains(&b)
        })
}

/// Checks a user id: 1 to 128 of `[A-Za-z0-9._@-]` (an e-mail address is one). It becomes
/// part of URLs, store keys, schedule ids and the sealed cookies' associated data.
pub fn check_user_id(user_id: &str) -> Result<(), InvalidField> {
    if is_name(user_id, b"@") {
        Ok(())
    } else {
        Err(invalid(
            "user_id",
            format!("must be 1 to {MAX_USER_ID_LEN} of [A-Za-z0-9._@-]"),
        ))
    }
}

/// Checks a session's site name (`greenhouse`, `lever`, `linkedin.com`): 1 to 128 of
/// `[A-Za-z0-9._-]`.
pub fn check_site(site: &str) -> Result<(), InvalidField> {
    if is_name(site, b"") {
        Ok(())
    } else {
        Err(invalid(
            "site",
            format!("must be 1 to {MAX_USER_ID_LEN} of [A-Za-z0-9._-]"),
        ))
    }
}

/// A job board a nightly run searches.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    Greenhouse,
    Lever,
    Ashby,
}

/// One board of one ATS: `{"type": "greenhouse", "board": "acme"}`, as the apply job's
/// config names its sources.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// The board's token in the ATS's URLs: 1 to 128 of `[A-Za-z0-9._-]`.
    pub board: String,
}

/// What one user looks for and allows (SPEC §7.3). Only `name` and `email` are required.
///
/// Decisions: `caps` default to 10 a day and 200 a month (10/day is what the tools users
/// trust settle on; see reference/protocols.md §2.4); `sources` are what a nightly run
/// searches, so `nightly: true` needs at least one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Kept normalised (trimmed, lowercased).
    pub email: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// Name → URL (`LinkedIn`, `GitHub`, `Portfolio`): http(s) only.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// Titles looked for; a posting title containing one scores 30.
    #[serde(default)]
    pub titles: Vec<String>,
    /// A posting title with any of these words is skipped.
    #[serde(default)]
    pub exclude_titles: Vec<String>,
    #[serde(default)]
    pub companies: Vec<String>,
    #[serde(default)]
    pub avoid_companies: Vec<String>,
    #[serde(default)]
    pub locations: Vec<String>,
    #[serde(default)]
    pub remote_ok: bool,
    /// `fulltime`, `parttime`, `contract`, `internship` (JobSpy's names), or any other.
    #[serde(default)]
    pub job_types: Vec<String>,
    #[serde(default)]
    pub min_salary: Option<u64>,
    #[serde(default)]
    pub experience_years: Option<u32>,
    /// Question (as an application form asks it) → answer.
    #[serde(default)]
    pub answers: BTreeMap<String, String>,
    #[serde(default)]
    pub caps: Caps,
    /// Whether a schedule applies for this user every night (id [`Profile::nightly_schedule_id`]).
    #[serde(default)]
    pub nightly: bool,
    /// What a nightly run searches; at least one when `nightly`.
    #[serde(default)]
    pub sources: Vec<Source>,
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<(), InvalidField> {
    if value.contains('\0') {
        return Err(invalid(field, crate::job::NUL_MESSAGE));
    }
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(())
}

fn check_list(field: &str, values: &[String]) -> Result<(), InvalidField> {
    if values.len() > MAX_LIST_LEN {
        return Err(invalid(field, format!("at most {MAX_LIST_LEN} entries")));
    }
    for (i, value) in values.iter().enumerate() {
        check_text(&format!("{field}[{i}]"), value, MAX_TEXT_LEN, true)?;
    }
    Ok(())
}

/// A map key as a field path: `answers.<key>` when the key is short and printable, else
/// by position (a key holding U+0000 or a control character is not repeated).
fn key_field(field: &str, i: usize, key: &str) -> String {
    if key.len() <= 64 && !key.chars().any(char::is_control) && !key.is_empty() {
        format!("{field}.{key}")
    } else {
        format!("{field}[{i}]")
    }
}

impl Profile {
    /// Checks every field and normalises `email`. The first fault found is answered, naming
    /// its field.
    pub fn validate(&mut self) -> Result<(), InvalidField> {
        check_text("name", &self.name, MAX_TEXT_LEN, true)?;
        self.email = normalise_email(&self.email).ok_or_else(|| {
            invalid(
                "email",
                format!(
                    "not an e-mail address (one `@` between a local part and a domain, no \
                     spaces or control characters, at most {} bytes)",
                    crate::suppress::MAX_EMAIL_LEN
                ),
            )
        })?;
        if let Some(phone) = &self.phone {
            check_text("phone", phone, 64, false)?;
        }
        if let Some(location) = &self.location {
            check_text("location", location, MAX_TEXT_LEN, false)?;
        }
        if self.links.len() > MAX_LIST_LEN {
            return Err(invalid("links", format!("at most {MAX_LIST_LEN} entries")));
        }
        for (i, (name, url)) in self.links.iter().enumerate() {
            let field = key_field("links", i, name);
            check_text(&field, name, 64, true)?;
            check_text(&field, url, MAX_URL_LEN, true)?;
            let lower = url.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.chars().any(char::is_whitespace)) {
                return Err(invalid(
                    field,
                    "must be an http:// or https:// URL without spaces",
                ));
            }
        }
        check_list("titles", &self.titles)?;
        check_list("exclude_titles", &self.exclude_titles)?;
        check_list("companies", &self.companies)?;
        check_list("avoid_companies", &self.avoid_companies)?;
        check_list("locations", &self.locations)?;
        check_list("job_types", &self.job_types)?;
        if self.min_salary.is_some_and(|s| s > MAX_SALARY) {
            return Err(invalid("min_salary", format!("at most {MAX_SALARY}")));
        }
        if let Some(years) = self.experience_years {
            if years > MAX_EXPERIENCE_YEARS {
                return Err(invalid(
                    "experience_years",
                    format!("at most {MAX_EXPERIENCE_YEARS}"),
                ));
            }
        }
        if self.answers.len() > MAX_ANSWERS {
            return Err(invalid("answers", format!("at most {MAX_ANSWERS} entries")));
        }
        for (i, (question, answer)) in self.answers.iter().enumerate() {
            let field = key_field("answers", i, question);
            check_text(&field, question, MAX_QUESTION_LEN, true)?;
            check_text(&field, answer, MAX_ANSWER_LEN, false)?;
        }
        self.caps.validate()?;
        if self.sources.len() > MAX_SOURCES {
            return Err(invalid("sources", format!("at most {MAX_SOURCES} entries")));
        }
        for (i, source) in self.sources.iter().enumerate() {
            if !is_name(&source.board, b"") {
                return Err(invalid(
                    format!("sources[{i}].board"),
                    format!("must be 1 to {MAX_USER_ID_LEN} of [A-Za-z0-9._-]"),
                ));
            }
        }
        if self.nightly && self.sources.is_empty() {
            return Err(invalid(
                "sources",
                "a nightly profile needs at least one source to search",
            ));
        }
        Ok(())
    }

    /// The id of the schedule that applies for `user_id` every night: `nightly:<user_id>`.
    pub fn nightly_schedule_id(user_id: &str) -> String {
        crate::schedule::nightly::schedule_id(user_id)
    }
}

/// A profile as the store keeps it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProfile {
    pub user_id: String,
    pub profile: Profile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A résumé's metadata: what `GET /v1/profiles/{user_id}` shows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeInfo {
    /// The name a form upload gives it (`resume.pdf` unless the client named it).
    pub filename: String,
    pub content_type: String,
    pub bytes: u64,
    pub uploaded_at: DateTime<Utc>,
}

/// A résumé: its metadata and its bytes (a PDF).
#[derive(Clone, PartialEq, Eq)]
pub struct Resume {
    pub info: ResumeInfo,
    pub data: Vec<u8>,
}

impl fmt::Debug for Resume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resume")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Checks a résumé's file name: 1 to 255 characters, no path separators, control
/// characters or quotes (it goes into a form upload and a `Content-Disposition`).
pub fn check_resume_filename(name: &str) -> Result<(), InvalidField> {
    // Something besides dots and spaces (`.`, `..`, `...` name no file).
    let ok = name.chars().any(|c| c != '.' && !c.is_whitespace())
        && name.chars().count() <= 255
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '/' | '\\' | '"'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "filename",
            "must be 1 to 255 characters without /, \\, \" or control characters, and more \
             than dots and spaces",
        ))
    }
}

/// Session cookies for one site, sealed ([`crate::seal`]): the store keeps only this.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSession {
    pub user_id: String,
    pub site: String,
    /// `key id ‖ nonce ‖ ciphertext ‖ tag`.
    pub blob: Vec<u8>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for SealedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSession")
            .field("user_id", &self.user_id)
            .field("site", &self.site)
            .field("bytes", &self.blob.len())
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What is shown of a stored session: its site and when it was stored, never a cookie.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub site: String,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Profile {
        serde_json::from_value(serde_json::json!({"name": "Ann Lee", "email": " Ann@Example.COM "}))
            .expect("parses")
    }

    fn refusal(mut p: Profile) -> String {
        p.validate().expect_err("refused").field
    }

    #[test]
    fn a_minimal_profile_takes_the_defaults_and_normalises_its_email() {
        let mut p = minimal();
        p.validate().expect("valid");
        assert_eq!(p.email, "ann@example.com");
        assert_eq!(
            p.caps,
            Caps {
                daily: 10,
                monthly: 200
            }
        );
        assert!(!p.nightly && p.sources.is_empty() && !p.remote_ok);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<Profile>(
            serde_json::json!({"name": "a", "email": "a@b.c", "salary": 1}),
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("salary"), "{err}");
    }

    #[test]
    fn every_fault_names_its_field() {
        let with = |f: fn(&mut Profile)| {
            let mut p = minimal();
            f(&mut p);
            refusal(p)
        };
        assert_eq!(with(|p| p.name = " ".into()), "name");
        assert_eq!(with(|p| p.email = "nope".into()), "email");
        assert_eq!(with(|p| p.phone = Some("1\0".into())), "phone");
        assert_eq!(
            with(|p| p.titles = vec!["ok".into(), "x".repeat(201)]),
            "titles[1]"
        );
        assert_eq!(with(|p| p.locations = vec!["".into()]), "locations[0]");
        assert_eq!(
            with(|p| {
                p.links.insert("GitHub".into(), "ftp://x".into());
            }),
            "links.GitHub"
        );
        assert_eq!(
            with(|p| {
                p.answers.insert("Why\0?".into(), "x".into());
            }),
            "answers[0]"
        );
        assert_eq!(
            with(|p| p.caps = Caps {
                daily: 5,
                monthly: 4
            }),
            "caps.daily"
        );
        assert_eq!(with(|p| p.experience_years = Some(81)), "experience_years");
        assert_eq!(with(|p| p.min_salary = Some(u64::MAX)), "min_salary");
        assert_eq!(with(|p| p.nightly = true), "sources");
        assert_eq!(
            with(|p| p.sources = vec![Source {
                kind: SourceType::Lever,
                board: "a b".into()
            }]),
            "sources[0].board"
        );
    }

    #[test]
    fn user_ids_and_sites_are_names() {
        for ok in ["ann", "ann@example.com", "a.b-c_d", &"a".repeat(128)] {
            assert!(check_user_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "ä", &"a".repeat(129), "a\0"] {
            assert_eq!(check_user_id(bad).expect_err(bad).field, "user_id");
        }
        assert!(check_site("linkedin.com").is_ok());
        assert_eq!(check_site("a@b").expect_err("@").field, "site");
        assert!(Profile::nightly_schedule_id("ann").starts_with("nightly-ann-"));
    }

    #[test]
    fn debug_never_shows_a_blob_or_a_resume() {
        let s = SealedSession {
            user_id: "u".into(),
            site: "s".into(),
            blob: b"SECRETBLOB".to_vec(),
            updated_at: Utc::now(),
        };
        assert!(!format!("{s:?}").contains("SECRET"));
        let r = Resume {
            info: ResumeInfo {
                filename: "cv.pdf".into(),
                content_type: "application/pdf".into(),
                bytes: 3,
                uploaded_at: Utc::now(),
            },
            data: b"%PDF-SECRET".to_vec(),
        };
        assert!(!format!("{r:?}").contains("SECRET"));
    }
}
