//! A posting's score against a profile, 0–100, with its breakdown (SPEC §7.3):
//!
//! | part | points |
//! |---|---|
//! | title | 30 when a profile title occurs in the posting's title (case-insensitive, on word boundaries: "Java" does not match "JavaScript"); else `floor(30 × the best share of one profile title's words found in it)`; a title with an `exclude_titles` entry (a word or phrase, on word boundaries) is **skipped** |
//! | company | 15 listed, 7 unlisted; an avoided company is **skipped** |
//! | location | 20 when a profile location occurs in the posting's location (case-insensitive, on word boundaries, whatever its workplace type), or the posting is remote and `remote_ok`; else 0 |
//! | job type | 10 when the posting's type is in `job_types`, or it is remote or hybrid and `remote_ok`; else 0 |
//! | salary | 15 when the stated maximum (else the stated minimum) ≥ `min_salary`; 8 when none is stated; 0 below |
//! | experience | 10 when the required years ("N+ years") ≤ `experience_years` + 1; 5 when none is stated; 0 more |
//!
//! Bands: apply ≥ 70, review 45–69, skip < 45 (and every skipped posting, whatever its
//! points).
//!
//! Decisions the spec leaves open:
//! - words are compared after the abbreviations of [`dedup::words`] (`sr` → `senior`,
//!   `jr` → `junior`, `mgr` → `manager`, `eng` → `engineer`, `swe` → `software engineer`)
//!   and location aliases (`bengaluru` ≡ `bangalore`, …); "C++", "C#" are words;
//! - companies are compared by [`dedup::company_key`] ("Vault-Tec, Inc." ≡ "vaulttec");
//! - an empty list gives no points (no title, no location, no job type listed: 0 for that
//!   part), as the rule reads; no `min_salary` means any stated salary earns 15; no
//!   `experience_years` counts as 0;
//! - a salary in a currency other than [`Criteria::salary_currency`] (when that is set) is
//!   not compared — there is no exchange rate here — and counts as none stated (8);
//! - required years: the largest N of "N+ years", "N-M years" (N), "N or more years",
//!   "at least/minimum (of) N years" and "N years of experience", with 1 ≤ N ≤ 30.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::dedup::{self, company_key, words};
use super::posting::{JobType, Posting, Workplace};

/// The part of a profile scoring reads. `job_types` are words such as `fulltime`,
/// `Full-time`, `contract` ([`JobType::parse`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Criteria {
    pub titles: Vec<String>,
    pub exclude_titles: Vec<String>,
    pub companies: Vec<String>,
    pub avoid_companies: Vec<String>,
    pub locations: Vec<String>,
    pub remote_ok: bool,
    pub job_types: Vec<String>,
    /// Annual, in `salary_currency` when that is set.
    pub min_salary: Option<f64>,
    /// ISO 4217; a posting paying in another currency counts as stating no salary.
    pub salary_currency: Option<String>,
    pub experience_years: Option<u32>,
}

/// A criterion that cannot be used, naming its field (`job_types[2]`, `min_salary`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidCriteria {
    pub field: String,
    pub message: String,
}

/// `apply ≥ 70`, `review 45–69`, `skip < 45`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Band {
    Apply,
    Review,
    Skip,
}

impl Band {
    pub const APPLY_FROM: u32 = 70;
    pub const REVIEW_FROM: u32 = 45;

    pub fn of(total: u32) -> Band {
        if total >= Band::APPLY_FROM {
            Band::Apply
        } else if total >= Band::REVIEW_FROM {
            Band::Review
        } else {
            Band::Skip
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Band::Apply => "apply",
            Band::Review => "review",
            Band::Skip => "skip",
        }
    }
}

/// Points per part (the columns `title_points` … `experience_points` of the report).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    pub title: u32,
    pub company: u32,
    pub location: u32,
    pub job_type: u32,
    pub salary: u32,
    pub experience: u32,
}

impl Breakdown {
    pub fn total(&self) -> u32 {
        self.title + self.company + self.location + self.job_type + self.salary + self.experience
    }
}

/// A posting's score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scored {
    /// 0–100, the sum of the breakdown.
    pub total: u32,
    pub breakdown: Breakdown,
    pub band: Band,
    /// Why the band is `skip`, for a person to read; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
}

/// [`Criteria`] compiled once for many postings: lowercased word sequences and sets.
#[derive(Debug, Clone)]
pub struct Scorer {
    titles: Vec<Title>,
    exclude_titles: Vec<(String, Vec<String>)>,
    companies: HashSet<String>,
    avoid_companies: HashSet<String>,
    locations: Vec<Vec<String>>,
    remote_ok: bool,
    job_types: Vec<JobType>,
    min_salary: f64,
    salary_currency: Option<String>,
    experience_years: u32,
}

#[derive(Debug, Clone)]
struct Title {
    words: Vec<String>,
    distinct: Vec<String>,
}

pub const TITLE_POINTS: u32 = 30;
pub const COMPANY_POINTS: u32 = 15;
pub const UNLISTED_COMPANY_POINTS: u32 = 7;
pub const LOCATION_POINTS: u32 = 20;
pub const JOB_TYPE_POINTS: u32 = 10;
pub const SALARY_POINTS: u32 = 15;
pub const NO_SALARY_POINTS: u32 = 8;
pub const EXPERIENCE_POINTS: u32 = 10;
pub const NO_EXPERIENCE_POINTS: u32 = 5;

impl Scorer {
    pub fn new(criteria: &Criteria) -> Result<Scorer, InvalidCriteria> {
        let invalid = |field: String, message: String| InvalidCriteria { field, message };
        let mut job_types = Vec::new();
        for (i, word) in criteria.job_types.iter().enumerate() {
            let kind = JobType::parse(word).ok_or_else(|| {
                invalid(
                    format!("job_types[{i}]"),
                    format!(
                        "unknown job type {word:?} (one of {})",
                        JobType::ALL.map(JobType::name).join(", ")
                    ),
                )
            })?;
            job_types.push(kind);
        }
        if let Some(min) = criteria.min_salary {
            if !min.is_finite() || min < 0.0 {
                return Err(invalid("min_salary".into(), "must be a number ≥ 0".into()));
            }
        }
        let titles = criteria
            .titles
            .iter()
            .map(|t| {
                let words = words(t);
                let mut distinct = words.clone();
                distinct.sort_unstable();
                distinct.dedup();
                Title { words, distinct }
            })
            .filter(|t| !t.words.is_empty())
            .collect();
        let phrases = |list: &[String]| -> Vec<Vec<String>> {
            list.iter()
                .map(|p| dedup::location_words(p))
                .filter(|w| !w.is_empty())
                .collect()
        };
        let keys = |list: &[String]| -> HashSet<String> {
            list.iter()
                .map(|c| company_key(c))
                .filter(|k| !k.is_empty())
                .collect()
        };
        Ok(Scorer {
            titles,
            exclude_titles: criteria
                .exclude_titles
                .iter()
                .map(|t| (t.trim().to_string(), words(t)))
                .filter(|(_, w)| !w.is_empty())
                .collect(),
            companies: keys(&criteria.companies),
            avoid_companies: keys(&criteria.avoid_companies),
            locations: phrases(&criteria.locations),
            remote_ok: criteria.remote_ok,
            job_types,
            min_salary: criteria.min_salary.unwrap_or(0.0),
            salary_currency: criteria
                .salary_currency
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_ascii_uppercase),
            experience_years: criteria.experience_years.unwrap_or(0),
        })
    }

    pub fn score(&self, posting: &Posting) -> Scored {
        let title_words = words(&posting.title);
        let mut skip_reason = None;

        if let Some((excluded, _)) = self
            .exclude_titles
            .iter()
            .find(|(_, phrase)| contains_phrase(&title_words, phrase))
        {
            skip_reason = Some(format!(
                "the title {:?} has the excluded {:?}",
                posting.title, excluded
            ));
        }
        let title = self.title_points(&title_words);

        let company = company_key(&posting.company);
        let company_points = if self.avoid_companies.contains(&company) {
            skip_reason
                .get_or_insert_with(|| format!("{:?} is an avoided company", posting.company));
            0
        } else if self.companies.contains(&company) {
            COMPANY_POINTS
        } else {
            UNLISTED_COMPANY_POINTS
        };

        let remote = posting.is_remote || posting.workplace == Workplace::Remote;
        let location_words = dedup::location_words(&posting.location);
        let location = if (remote && self.remote_ok)
            || self
                .locations
                .iter()
                .any(|l| contains_phrase(&location_words, l))
        {
            LOCATION_POINTS
        } else {
            0
        };

        let job_type = if posting
            .job_type
            .is_some_and(|t| self.job_types.contains(&t))
            || (self.remote_ok && (remote || posting.workplace == Workplace::Hybrid))
        {
            JOB_TYPE_POINTS
        } else {
            0
        };

        let salary = match self.stated_salary(posting) {
            None => NO_SALARY_POINTS,
            Some(top) if top >= self.min_salary => SALARY_POINTS,
            Some(_) => 0,
        };

        let experience = match required_years(&posting.description) {
            None => NO_EXPERIENCE_POINTS,
            Some(years) if years <= self.experience_years + 1 => EXPERIENCE_POINTS,
            Some(_) => 0,
        };

        let breakdown = Breakdown {
            title,
            company: company_points,
            location,
            job_type,
            salary,
            experience,
        };
        let total = breakdown.total();
        let band = if skip_reason.is_some() {
            Band::Skip
        } else {
            Band::of(total)
        };
        if band == Band::Skip && skip_reason.is_none() {
            skip_reason = Some(format!(
                "score {total} is below {}: {}",
                Band::REVIEW_FROM,
                shortfalls(&breakdown)
            ));
        }
        Scored {
            total,
            breakdown,
            band,
            skip_reason,
        }
    }

    fn title_points(&self, title_words: &[String]) -> u32 {
        let mut best = 0;
        for title in &self.titles {
            if contains_phrase(title_words, &title.words) {
                return TITLE_POINTS;
            }
            let found = title
                .distinct
                .iter()
                .filter(|w| title_words.contains(w))
                .count() as u32;
            best = best.max(TITLE_POINTS * found / title.distinct.len() as u32);
        }
        best
    }

    /// The stated maximum, else minimum, when it can be compared with `min_salary`.
    fn stated_salary(&self, posting: &Posting) -> Option<f64> {
        let top = posting.max_amount.or(posting.min_amount)?;
        match (&self.salary_currency, &posting.currency) {
            (Some(want), Some(have)) if !want.eq_ignore_ascii_case(have) => None,
            _ => Some(top),
        }
    }
}

/// The parts that lost points, as "title 10/30, location 0/20".
fn shortfalls(b: &Breakdown) -> String {
    let parts = [
        ("title", b.title, TITLE_POINTS),
        ("company", b.company, COMPANY_POINTS),
        ("location", b.location, LOCATION_POINTS),
        ("job type", b.job_type, JOB_TYPE_POINTS),
        ("salary", b.salary, SALARY_POINTS),
        ("experience", b.experience, EXPERIENCE_POINTS),
    ];
    parts
        .iter()
        .filter(|(_, got, max)| got < max)
        .map(|(name, got, max)| format!("{name} {got}/{max}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `needle` occurs in `haystack` as consecutive words.
fn contains_phrase(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The years of experience a description asks for (see the module's description).
pub fn required_years(description: &str) -> Option<u32> {
    let text = description.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut best: Option<u32> = None;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|b| bytes[b]);
        // The upper end of "3-5 years" / "3 to 5 years" is not what is required.
        let head = text[..start].trim_end();
        let upper_end = ["-", "–", "—", " to"].iter().any(|sep| {
            head.strip_suffix(sep)
                .is_some_and(|h| h.trim_end().ends_with(|c: char| c.is_ascii_digit()))
        });
        if upper_end {
            continue;
        }
        // "$5", "v2", "1.5": not a count of years.
        if i - start > 2
            || before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'$' || b == b'.')
        {
            continue;
        }
        let Ok(n) = text[start..i].parse::<u32>() else {
            continue;
        };
        if let Some(years) = years_after(&text, start, i, n) {
            best = Some(best.map_or(years, |b| b.max(years)));
        }
    }
    best
}

fn years_after(text: &str, start: usize, end: usize, n: u32) -> Option<u32> {
    if !(1..=30).contains(&n) {
        return None;
    }
    let mut rest = text[end..].trim_start();
    let mut open_ended = false;
    if let Some(r) = rest.strip_prefix('+') {
        open_ended = true;
        rest = r.trim_start();
    } else if let Some(r) = ["-", "–", "—", "to "]
        .iter()
        .find_map(|sep| rest.strip_prefix(sep))
    {
        // "3-5 years": the lower bound is what is required.
        let r = r.trim_start();
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        open_ended = true;
        rest = r[digits..].trim_start_matches('+').trim_start();
    }
    if let Some(r) = rest.strip_prefix("or more") {
        open_ended = true;
        rest = r.trim_start();
    }
    let after = ["years", "year", "yrs", "yr"]
        .iter()
        .find_map(|w| rest.strip_prefix(w))?;
    if after.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let head = text[..start].trim_end();
    let asked = open_ended
        || ["at least", "minimum of", "minimum", "min.", "min"]
            .iter()
            .any(|w| head.ends_with(w))
        || {
            let tail: String = after.chars().take(40).collect();
            tail.trim_start().starts_with("experience")
                || tail.trim_start().starts_with("of experience")
                || tail.trim_start().starts_with("of professional")
                || tail.trim_start().starts_with("of relevant")
                || tail.trim_start().starts_with("of industry")
                || tail.trim_start().starts_with("of hands-on")
                || tail.trim_start().starts_with("of work")
        };
    asked.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::posting::{Site, Workplace};

    fn posting(title: &str) -> Posting {
        Posting {
            id: "gh-acme-1".into(),
            site: Site::Greenhouse,
            board: "acme".into(),
            native_id: "1".into(),
            job_url: "https://boards.greenhouse.io/acme/jobs/1".into(),
            job_url_direct: None,
            apply_url: None,
            title: title.into(),
            company: "Acme".into(),
            location: "Bengaluru, India".into(),
            is_remote: false,
            workplace: Workplace::OnSite,
            job_type: Some(JobType::FullTime),
            min_amount: Some(3_000_000.0),
            max_amount: Some(4_500_000.0),
            currency: Some("INR".into()),
            interval: None,
            salary_source: None,
            description: "You have 4+ years of Rust.".into(),
            date_posted: None,
        }
    }

    fn criteria() -> Criteria {
        Criteria {
            titles: vec!["Backend Engineer".into(), "Rust Developer".into()],
            exclude_titles: vec!["Staff".into(), "Sales Manager".into()],
            companies: vec!["ACME Inc.".into()],
            avoid_companies: vec!["Initech".into()],
            locations: vec!["Bangalore".into()],
            remote_ok: true,
            job_types: vec!["Full-time".into()],
            min_salary: Some(2_500_000.0),
            salary_currency: None,
            experience_years: Some(3),
        }
    }

    fn score_with(c: &Criteria, p: &Posting) -> Scored {
        Scorer::new(c).unwrap().score(p)
    }

    #[test]
    fn a_matching_posting_scores_every_point() {
        let s = score_with(&criteria(), &posting("Senior Backend Engineer"));
        assert_eq!(
            s.breakdown,
            Breakdown {
                title: 30,
                company: 15,
                location: 20,
                job_type: 10,
                salary: 15,
                experience: 10
            }
        );
        assert_eq!((s.total, s.band, s.skip_reason), (100, Band::Apply, None));
    }

    #[test]
    fn title_points() {
        let c = criteria();
        for (title, want) in [
            ("Backend Engineer", 30),
            ("backend engineer II", 30),
            ("Sr. Backend-Engineer (Remote)", 30),
            // Word boundaries: "Java" is not in "JavaScript", "Engineer" not in "Engineering".
            ("Backend Engineering Lead", 15),
            ("Engineer, Backend", 30), // every word found: 30 × 2/2
            ("Rust Platform Developer", 30),
            ("Frontend Engineer", 15), // 30 × 1/2
            ("Data Scientist", 0),
        ] {
            assert_eq!(
                score_with(&c, &posting(title)).breakdown.title,
                want,
                "{title}"
            );
        }
        let java = Criteria {
            titles: vec!["Java Developer".into()],
            ..criteria()
        };
        assert_eq!(
            score_with(&java, &posting("JavaScript Developer"))
                .breakdown
                .title,
            15
        );
        assert_eq!(
            score_with(&java, &posting("Senior Java Developer"))
                .breakdown
                .title,
            30
        );
        let three = Criteria {
            titles: vec!["Site Reliability Engineer".into()],
            ..criteria()
        };
        // floor(30 × 2/3) = 20; floor(30 × 1/3) = 10.
        assert_eq!(
            score_with(&three, &posting("Reliability Engineer"))
                .breakdown
                .title,
            20
        );
        assert_eq!(
            score_with(&three, &posting("Site Lead")).breakdown.title,
            10
        );
        let cpp = Criteria {
            titles: vec!["C++ Engineer".into()],
            ..criteria()
        };
        assert_eq!(score_with(&cpp, &posting("C Engineer")).breakdown.title, 15);
        assert_eq!(
            score_with(&cpp, &posting("Senior C++ Engineer"))
                .breakdown
                .title,
            30
        );
    }

    #[test]
    fn excluded_titles_and_avoided_companies_are_skipped() {
        let c = criteria();
        let s = score_with(&c, &posting("Staff Backend Engineer"));
        assert_eq!(s.band, Band::Skip);
        assert_eq!(s.breakdown.title, 30, "the breakdown is kept");
        assert_eq!(
            s.skip_reason.as_deref(),
            Some(r#"the title "Staff Backend Engineer" has the excluded "Staff""#)
        );
        // A phrase is excluded as a phrase, on word boundaries.
        let manager = score_with(&c, &posting("Engineering Manager"));
        assert_eq!((manager.band, manager.skip_reason), (Band::Apply, None));
        assert!(score_with(&c, &posting("Sales Manager, EMEA"))
            .skip_reason
            .unwrap()
            .contains("excluded"));
        assert_ne!(
            score_with(&c, &posting("Backend Engineer, Staffing")).band,
            Band::Skip
        );
        let mut p = posting("Backend Engineer");
        p.company = "Initech, LLC".into();
        let s = score_with(&c, &p);
        assert_eq!((s.band, s.breakdown.company), (Band::Skip, 0));
        assert_eq!(
            s.skip_reason.as_deref(),
            Some(r#""Initech, LLC" is an avoided company"#)
        );
        p.company = "Globex".into();
        assert_eq!(score_with(&c, &p).breakdown.company, 7);
        p.company = "acme".into();
        assert_eq!(score_with(&c, &p).breakdown.company, 15);
    }

    #[test]
    fn location_and_job_type_points() {
        let c = criteria();
        let mut p = posting("Backend Engineer");
        // Bengaluru ≡ Bangalore, whatever the workplace.
        assert_eq!(score_with(&c, &p).breakdown.location, 20);
        p.location = "Mumbai, India".into();
        assert_eq!(score_with(&c, &p).breakdown.location, 0);
        // Remote and remote_ok.
        p.workplace = Workplace::Remote;
        p.is_remote = true;
        p.job_type = None;
        let s = score_with(&c, &p);
        assert_eq!((s.breakdown.location, s.breakdown.job_type), (20, 10));
        let strict = Criteria {
            remote_ok: false,
            ..criteria()
        };
        let s = score_with(&strict, &p);
        assert_eq!((s.breakdown.location, s.breakdown.job_type), (0, 0));
        // Hybrid elsewhere with remote_ok: no location points, job type points.
        p.workplace = Workplace::Hybrid;
        p.is_remote = false;
        let s = score_with(&c, &p);
        assert_eq!((s.breakdown.location, s.breakdown.job_type), (0, 10));
        // Job types by name, whatever the spelling.
        p.workplace = Workplace::OnSite;
        p.job_type = Some(JobType::FullTime);
        assert_eq!(score_with(&c, &p).breakdown.job_type, 10);
        p.job_type = Some(JobType::Contract);
        assert_eq!(score_with(&c, &p).breakdown.job_type, 0);
        // A location is matched on words: "Bangalore" is not in "Bangaloreans".
        p.location = "Bangaloreans Ltd office".into();
        assert_eq!(score_with(&c, &p).breakdown.location, 0);
        p.location = "Remote (India)".into();
        let india = Criteria {
            locations: vec!["India".into()],
            remote_ok: false,
            ..criteria()
        };
        assert_eq!(score_with(&india, &p).breakdown.location, 20);
    }

    #[test]
    fn salary_points() {
        let c = criteria();
        let mut p = posting("Backend Engineer");
        assert_eq!(score_with(&c, &p).breakdown.salary, 15);
        p.max_amount = Some(2_000_000.0);
        p.min_amount = Some(1_500_000.0);
        assert_eq!(score_with(&c, &p).breakdown.salary, 0);
        p.max_amount = Some(2_500_000.0);
        assert_eq!(score_with(&c, &p).breakdown.salary, 15, "equal is enough");
        p.max_amount = None;
        assert_eq!(
            score_with(&c, &p).breakdown.salary,
            0,
            "the minimum, when alone"
        );
        p.min_amount = None;
        assert_eq!(score_with(&c, &p).breakdown.salary, 8, "none stated");
        // Another currency than the profile's is not compared: none stated.
        let usd = Criteria {
            min_salary: Some(150_000.0),
            salary_currency: Some("usd".into()),
            ..criteria()
        };
        p.max_amount = Some(4_500_000.0);
        p.currency = Some("INR".into());
        assert_eq!(score_with(&usd, &p).breakdown.salary, 8);
        p.currency = Some("USD".into());
        p.max_amount = Some(140_000.0);
        assert_eq!(score_with(&usd, &p).breakdown.salary, 0);
        let any = Criteria {
            min_salary: None,
            ..criteria()
        };
        assert_eq!(score_with(&any, &p).breakdown.salary, 15);
    }

    #[test]
    fn experience_points_and_required_years() {
        for (text, want) in [
            ("5+ years of Go", Some(5)),
            ("5 + yrs", Some(5)),
            ("3-5 years of experience", Some(3)),
            ("3 to 5 years", Some(3)),
            ("at least 7 years in Rust", Some(7)),
            ("minimum of 2 years", Some(2)),
            ("8 or more years", Some(8)),
            ("4 years of professional experience", Some(4)),
            ("2+ years of Go, 6+ years of backend", Some(6)),
            ("We have been around for 20 years.", None),
            ("401(k), 5 days a week, $10 years", None),
            ("a 1.5 year contract", None),
            ("100+ years", None),
            ("", None),
        ] {
            assert_eq!(required_years(text), want, "{text}");
        }
        let c = criteria(); // experience_years 3
        let mut p = posting("Backend Engineer");
        for (text, want) in [
            ("4+ years", 10), // ≤ 3 + 1
            ("5+ years", 0),
            ("1+ years", 10),
            ("no stated requirement", 5),
        ] {
            p.description = text.into();
            assert_eq!(score_with(&c, &p).breakdown.experience, want, "{text}");
        }
        let none = Criteria {
            experience_years: None,
            ..criteria()
        };
        p.description = "1+ years".into();
        assert_eq!(score_with(&none, &p).breakdown.experience, 10);
        p.description = "2+ years".into();
        assert_eq!(score_with(&none, &p).breakdown.experience, 0);
    }

    #[test]
    fn bands_and_reasons() {
        assert_eq!(Band::of(100), Band::Apply);
        assert_eq!(Band::of(70), Band::Apply);
        assert_eq!(Band::of(69), Band::Review);
        assert_eq!(Band::of(45), Band::Review);
        assert_eq!(Band::of(44), Band::Skip);
        assert_eq!(Band::of(0), Band::Skip);
        let c = criteria();
        let mut p = posting("Data Scientist"); // title 0
        p.location = "Paris".into();
        p.job_type = Some(JobType::Contract);
        p.company = "Globex".into();
        let s = score_with(&c, &p);
        // 0 + 7 + 0 + 0 + 15 + 10
        assert_eq!((s.total, s.band), (32, Band::Skip));
        assert_eq!(
            s.skip_reason.as_deref(),
            Some("score 32 is below 45: title 0/30, company 7/15, location 0/20, job type 0/10")
        );
        p.title = "Backend Engineer".into(); // + 30 = 62
        let s = score_with(&c, &p);
        assert_eq!(
            (s.total, s.band, s.skip_reason.clone()),
            (62, Band::Review, None)
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["band"], "review");
        assert_eq!(json["breakdown"]["title"], 30);
        assert!(json.get("skip_reason").is_none());
    }

    #[test]
    fn bad_criteria_name_the_field() {
        let bad = Criteria {
            job_types: vec!["fulltime".into(), "gig".into()],
            ..criteria()
        };
        let err = Scorer::new(&bad).unwrap_err();
        assert_eq!(err.field, "job_types[1]");
        assert!(err
            .to_string()
            .starts_with("job_types[1]: unknown job type \"gig\""));
        let bad = Criteria {
            min_salary: Some(-1.0),
            ..criteria()
        };
        assert_eq!(Scorer::new(&bad).unwrap_err().field, "min_salary");
        // Empty lists give no points but are valid.
        let empty = Scorer::new(&Criteria::default()).unwrap();
        let s = empty.score(&posting("Backend Engineer"));
        assert_eq!(
            (
                s.breakdown.title,
                s.breakdown.company,
                s.breakdown.location,
                s.breakdown.job_type
            ),
            (0, 7, 0, 0)
        );
    }
}
