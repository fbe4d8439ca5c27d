//! The one posting schema every board is normalised into (JobSpy's columns, SPEC §7.3), and
//! the normalisers from each board's JSON.
//!
//! - Ids are site-prefixed and unique: `gh-{board}-{id}`, `lv-{site}-{uuid}`,
//!   `as-{board}-{id}` (the board lowercased).
//! - Amounts are **annual** (JobSpy's `enforce_annual_salary`: hourly × 2080, daily × 260,
//!   weekly × 52, monthly × 12); `interval` says what the board stated.
//! - Salary and job type come from the board's structured fields when it has them (Lever
//!   `salaryRange`, `categories.commitment`, `workplaceType`; Ashby `compensation`,
//!   `employmentType`, `isRemote`; Greenhouse `pay_input_ranges`), else from the text.
//! - `description` is plain text: tags stripped, entities decoded (Greenhouse's `content` is
//!   entity-*encoded* HTML, so it is decoded twice).
//! - The company: none of the three boards' job JSON carries it reliably, so it is the
//!   caller's display name for the source ([`super::boards::Source::company`]), else a name
//!   the board gives (Greenhouse's `company_name`), else the board token.
//!
//! The wire types ([`greenhouse`], [`lever`], [`ashby`]) hold only the fields used; every
//! optional field may be missing and unknown fields are ignored.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use super::text::{
    decode_entities, html_to_text, job_type_from_text, salary_from_text, workplace_from_text,
};

/// A job board drover reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Site {
    Greenhouse,
    Lever,
    Ashby,
}

impl Site {
    /// The id prefix (`gh`, `lv`, `as`).
    pub fn prefix(self) -> &'static str {
        match self {
            Site::Greenhouse => "gh",
            Site::Lever => "lv",
            Site::Ashby => "as",
        }
    }

    /// The name in job config and reports (`greenhouse`, `lever`, `ashby`).
    pub fn name(self) -> &'static str {
        match self {
            Site::Greenhouse => "greenhouse",
            Site::Lever => "lever",
            Site::Ashby => "ashby",
        }
    }
}

/// Where the work is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workplace {
    Remote,
    Hybrid,
    OnSite,
    #[default]
    Unknown,
}

impl Workplace {
    fn is_unknown(&self) -> bool {
        *self == Workplace::Unknown
    }

    /// A board's workplace word (`remote`, `hybrid`, `on-site`, `OnSite`, …).
    pub fn parse(value: &str) -> Workplace {
        match compact(value).as_str() {
            "remote" => Workplace::Remote,
            "hybrid" => Workplace::Hybrid,
            "onsite" | "inoffice" | "office" | "inperson" => Workplace::OnSite,
            _ => Workplace::Unknown,
        }
    }
}

/// JobSpy's job types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    FullTime,
    PartTime,
    Contract,
    Temporary,
    Internship,
}

impl JobType {
    pub const ALL: [JobType; 5] = [
        JobType::FullTime,
        JobType::PartTime,
        JobType::Contract,
        JobType::Temporary,
        JobType::Internship,
    ];

    /// JobSpy's name: `fulltime`, `parttime`, `contract`, `temporary`, `internship`.
    pub fn name(self) -> &'static str {
        match self {
            JobType::FullTime => "fulltime",
            JobType::PartTime => "parttime",
            JobType::Contract => "contract",
            JobType::Temporary => "temporary",
            JobType::Internship => "internship",
        }
    }

    /// A board's or a profile's word for it, whatever its case and punctuation:
    /// `Full-time`, `FullTime`, `full time`, `Permanent`, `Intern`, `Contractor`, ….
    pub fn parse(value: &str) -> Option<JobType> {
        Some(match compact(value).as_str() {
            "fulltime" | "full" | "permanent" | "regular" | "fulltimeemployee" => JobType::FullTime,
            "parttime" | "part" => JobType::PartTime,
            "contract" | "contractor" | "freelance" | "contracttohire" => JobType::Contract,
            "temporary" | "temp" | "fixedterm" | "seasonal" => JobType::Temporary,
            "intern" | "internship" | "apprentice" | "apprenticeship" => JobType::Internship,
            _ => return None,
        })
    }
}

/// The period a salary was stated for; amounts in a [`Posting`] are annualised from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Yearly,
    Monthly,
    Weekly,
    Daily,
    Hourly,
}

impl Interval {
    /// JobSpy's `enforce_annual_salary` factors.
    pub fn per_year(self) -> f64 {
        match self {
            Interval::Yearly => 1.0,
            Interval::Monthly => 12.0,
            Interval::Weekly => 52.0,
            Interval::Daily => 260.0,
            Interval::Hourly => 2080.0,
        }
    }

    /// Lever's `per-year-salary`, `per-hour-wage`, …; Ashby's `1 YEAR`, `1 HOUR`, ….
    pub fn parse(value: &str) -> Option<Interval> {
        let v = value.to_ascii_lowercase();
        let has = |w: &str| v.contains(w);
        Some(if has("year") || has("annual") || has("annum") {
            Interval::Yearly
        } else if has("month") {
            Interval::Monthly
        } else if has("week") {
            Interval::Weekly
        } else if has("day") || has("daily") {
            Interval::Daily
        } else if has("hour") {
            Interval::Hourly
        } else {
            return None;
        })
    }
}

/// Where a salary was read (JobSpy's `salary_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalarySource {
    /// A structured field of the board.
    DirectData,
    /// Parsed from the description text.
    Description,
}

/// A salary as read, before it goes into a [`Posting`]: amounts annualised, at least one set.
#[derive(Debug, Clone, PartialEq)]
pub struct Salary {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// ISO 4217 (`USD`, `INR`, …) when known.
    pub currency: Option<String>,
    pub interval: Interval,
    pub source: SalarySource,
}

impl Salary {
    /// A stated range (either end may be missing), annualised; `None` when nothing usable
    /// (no amount, a negative or non-finite one).
    pub fn stated(
        min: Option<f64>,
        max: Option<f64>,
        currency: Option<&str>,
        interval: Interval,
        source: SalarySource,
    ) -> Option<Salary> {
        let usable = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0);
        let (mut min, mut max) = (usable(min), usable(max));
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                (min, max) = (Some(hi), Some(lo));
            }
        }
        if min.is_none() && max.is_none() {
            return None;
        }
        let annual = |v: f64| (v * interval.per_year()).round();
        Some(Salary {
            min: min.map(annual),
            max: max.map(annual),
            currency: currency
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_ascii_uppercase),
            interval,
            source,
        })
    }
}

/// One job posting, whatever board it came from. Serialised compactly (missing values are
/// left out): postings go into checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Posting {
    /// `gh-{board}-{id}`, `lv-{site}-{uuid}`, `as-{board}-{id}`.
    pub id: String,
    pub site: Site,
    /// The board token (Greenhouse), site name (Lever) or job board name (Ashby).
    pub board: String,
    /// The board's own id of the posting.
    pub native_id: String,
    /// The posting's public page.
    pub job_url: String,
    /// The employer's own page for it, when the board names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_url_direct: Option<String>,
    /// The hosted application form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_url: Option<String>,
    pub title: String,
    pub company: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    #[serde(default)]
    pub is_remote: bool,
    #[serde(default, skip_serializing_if = "Workplace::is_unknown")]
    pub workplace: Workplace,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<JobType>,
    /// Annual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_amount: Option<f64>,
    /// Annual.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The period the salary was stated for (the amounts are annualised from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salary_source: Option<SalarySource>,
    /// Plain text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_posted: Option<NaiveDate>,
}

impl Posting {
    /// The site-prefixed id.
    pub fn make_id(site: Site, board: &str, native_id: &str) -> String {
        format!(
            "{}-{}-{}",
            site.prefix(),
            board.to_ascii_lowercase(),
            native_id
        )
    }

    /// Sets the salary (replacing any), e.g. from Greenhouse's `pay_input_ranges` read with
    /// the form.
    pub fn set_salary(&mut self, salary: Salary) {
        self.min_amount = salary.min;
        self.max_amount = salary.max;
        self.currency = salary.currency;
        self.interval = Some(salary.interval);
        self.salary_source = Some(salary.source);
    }

    /// The salary from structured data, else from the text; job type and workplace from the
    /// text when the board gave none. Every normaliser ends here.
    fn complete(&mut self, structured: Option<Salary>) {
        if let Some(salary) = structured.or_else(|| salary_from_text(&self.description)) {
            self.set_salary(salary);
        }
        if self.job_type.is_none() {
            self.job_type = job_type_from_text(&self.title, &self.description);
        }
        if self.workplace == Workplace::Unknown {
            self.workplace = workplace_from_text(&self.location, &self.title);
        }
        if self.workplace == Workplace::Remote {
            self.is_remote = true;
        }
    }
}

/// Greenhouse Job Board API (`GET /v1/boards/{token}/jobs?content=true`).
pub mod greenhouse {
    use super::*;

    #[derive(Debug, Deserialize)]
    pub struct Jobs {
        #[serde(default)]
        pub jobs: Vec<serde_json::Value>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Job {
        pub id: u64,
        pub title: String,
        #[serde(default)]
        pub absolute_url: Option<String>,
        #[serde(default)]
        pub location: Option<Location>,
        /// Entity-encoded HTML.
        #[serde(default)]
        pub content: Option<String>,
        #[serde(default)]
        pub updated_at: Option<String>,
        #[serde(default)]
        pub first_published: Option<String>,
        #[serde(default)]
        pub company_name: Option<String>,
        /// Custom fields; an "Employment Type" one is common.
        #[serde(default)]
        pub metadata: Option<Vec<Metadata>>,
        /// Present with `pay_transparency=true`.
        #[serde(default)]
        pub pay_input_ranges: Option<Vec<PayRange>>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Location {
        #[serde(default)]
        pub name: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Metadata {
        #[serde(default)]
        pub name: Option<String>,
        #[serde(default)]
        pub value: Option<serde_json::Value>,
    }

    #[derive(Debug, Clone, Deserialize)]
    pub struct PayRange {
        #[serde(default)]
        pub min_cents: Option<f64>,
        #[serde(default)]
        pub max_cents: Option<f64>,
        #[serde(default)]
        pub currency_type: Option<String>,
        #[serde(default)]
        pub title: Option<String>,
    }

    /// The first range (Greenhouse's are annual; `title` names a zone, not a period).
    pub fn salary(ranges: &[PayRange]) -> Option<Salary> {
        ranges.iter().find_map(|r| {
            Salary::stated(
                r.min_cents.map(|c| c / 100.0),
                r.max_cents.map(|c| c / 100.0),
                r.currency_type.as_deref(),
                Interval::Yearly,
                SalarySource::DirectData,
            )
        })
    }

    impl Job {
        /// `company`: the caller's display name for the board, if it has one.
        pub fn into_posting(self, board: &str, company: Option<&str>) -> Posting {
            let native_id = self.id.to_string();
            let description = self
                .content
                .as_deref()
                .map(|c| html_to_text(&decode_entities(c)))
                .unwrap_or_default();
            let job_type = self.metadata.as_deref().and_then(|fields| {
                fields.iter().find_map(|m| {
                    let name = m.name.as_deref()?.to_ascii_lowercase();
                    if !(name.contains("employment") || name.contains("job type")) {
                        return None;
                    }
                    JobType::parse(m.value.as_ref()?.as_str()?)
                })
            });
            let date_posted = self
                .first_published
                .as_deref()
                .or(self.updated_at.as_deref())
                .and_then(date_of);
            let job_url = self.absolute_url.unwrap_or_else(|| {
                format!("https://boards.greenhouse.io/{board}/jobs/{native_id}")
            });
            let mut posting = Posting {
                id: Posting::make_id(Site::Greenhouse, board, &native_id),
                site: Site::Greenhouse,
                board: board.to_string(),
                native_id,
                apply_url: Some(job_url.clone()),
                job_url,
                job_url_direct: None,
                title: self.title.trim().to_string(),
                company: company_name(company, self.company_name.as_deref(), board),
                location: self
                    .location
                    .and_then(|l| l.name)
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default(),
                is_remote: false,
                workplace: Workplace::Unknown,
                job_type,
                min_amount: None,
                max_amount: None,
                currency: None,
                interval: None,
                salary_source: None,
                description,
                date_posted,
            };
            let structured = self.pay_input_ranges.as_deref().and_then(salary);
            posting.complete(structured);
            posting
        }
    }
}

/// Lever Postings API (`GET /v0/postings/{site}?mode=json`).
pub mod lever {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Job {
        pub id: String,
        pub text: String,
        #[serde(default)]
        pub categories: Categories,
        #[serde(default)]
        pub workplace_type: Option<String>,
        #[serde(default)]
        pub description_plain: Option<String>,
        #[serde(default)]
        pub description: Option<String>,
        #[serde(default)]
        pub lists: Vec<List>,
        #[serde(default)]
        pub additional_plain: Option<String>,
        #[serde(default)]
        pub salary_range: Option<SalaryRange>,
        #[serde(default)]
        pub hosted_url: Option<String>,
        #[serde(default)]
        pub apply_url: Option<String>,
        /// Milliseconds since the epoch.
        #[serde(default)]
        pub created_at: Option<i64>,
    }

    #[derive(Debug, Default, Deserialize)]
    pub struct Categories {
        #[serde(default)]
        pub location: Option<String>,
        #[serde(default)]
        pub commitment: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct List {
        #[serde(default)]
        pub text: Option<String>,
        /// HTML (`<li>…</li>`).
        #[serde(default)]
        pub content: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct SalaryRange {
        #[serde(default)]
        pub currency: Option<String>,
        #[serde(default)]
        pub interval: Option<String>,
        #[serde(default)]
        pub min: Option<f64>,
        #[serde(default)]
        pub max: Option<f64>,
    }

    impl Job {
        pub fn into_posting(self, site: &str, company: Option<&str>) -> Posting {
            let mut description = match (self.description_plain, self.description) {
                (Some(plain), _) if !plain.trim().is_empty() => plain.trim().to_string(),
                (_, Some(html)) => html_to_text(&html),
                _ => String::new(),
            };
            for list in &self.lists {
                let heading = list.text.as_deref().unwrap_or("").trim();
                let body = list
                    .content
                    .as_deref()
                    .map(html_to_text)
                    .unwrap_or_default();
                for part in [heading, body.as_str()] {
                    if !part.is_empty() {
                        if !description.is_empty() {
                            description.push('\n');
                        }
                        description.push_str(part);
                    }
                }
            }
            if let Some(more) = self.additional_plain.as_deref().map(str::trim) {
                if !more.is_empty() {
                    description.push('\n');
                    description.push_str(more);
                }
            }
            let structured = self.salary_range.and_then(|r| {
                // "one-time" and unknown intervals are not a salary to compare.
                let interval = Interval::parse(r.interval.as_deref().unwrap_or("per-year"))?;
                Salary::stated(
                    r.min,
                    r.max,
                    r.currency.as_deref(),
                    interval,
                    SalarySource::DirectData,
                )
            });
            let job_url = self
                .hosted_url
                .unwrap_or_else(|| format!("https://jobs.lever.co/{site}/{}", self.id));
            let mut posting = Posting {
                id: Posting::make_id(Site::Lever, site, &self.id),
                site: Site::Lever,
                board: site.to_string(),
                apply_url: Some(self.apply_url.unwrap_or_else(|| format!("{job_url}/apply"))),
                job_url,
                native_id: self.id,
                job_url_direct: None,
                title: self.text.trim().to_string(),
                company: company_name(company, None, site),
                location: self
                    .categories
                    .location
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default(),
                is_remote: false,
                workplace: self
                    .workplace_type
                    .as_deref()
                    .map_or(Workplace::Unknown, Workplace::parse),
                job_type: self
                    .categories
                    .commitment
                    .as_deref()
                    .and_then(JobType::parse),
                min_amount: None,
                max_amount: None,
                currency: None,
                interval: None,
                salary_source: None,
                description,
                date_posted: self
                    .created_at
                    .and_then(DateTime::from_timestamp_millis)
                    .map(|t| t.date_naive()),
            };
            posting.complete(structured);
            posting
        }
    }
}

/// Ashby posting API (`GET /posting-api/job-board/{name}?includeCompensation=true`).
pub mod ashby {
    use super::*;

    #[derive(Debug, Deserialize)]
    pub struct Board {
        #[serde(default)]
        pub jobs: Vec<serde_json::Value>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Job {
        pub id: String,
        pub title: String,
        #[serde(default)]
        pub location: Option<String>,
        #[serde(default)]
        pub employment_type: Option<String>,
        #[serde(default)]
        pub is_remote: Option<bool>,
        #[serde(default)]
        pub workplace_type: Option<String>,
        #[serde(default)]
        pub published_at: Option<String>,
        /// Missing means listed.
        #[serde(default)]
        pub is_listed: Option<bool>,
        #[serde(default)]
        pub job_url: Option<String>,
        #[serde(default)]
        pub apply_url: Option<String>,
        #[serde(default)]
        pub description_plain: Option<String>,
        #[serde(default)]
        pub description_html: Option<String>,
        #[serde(default)]
        pub compensation: Option<Compensation>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Compensation {
        #[serde(default)]
        pub summary_components: Vec<Component>,
        #[serde(default)]
        pub compensation_tiers: Vec<Tier>,
        /// "$150K – $190K • Offers Equity".
        #[serde(default)]
        pub compensation_tier_summary: Option<String>,
        #[serde(default)]
        pub scrapeable_compensation_salary_summary: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Tier {
        #[serde(default)]
        pub components: Vec<Component>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Component {
        #[serde(default)]
        pub compensation_type: Option<String>,
        /// `1 YEAR`, `1 HOUR`, ….
        #[serde(default)]
        pub interval: Option<String>,
        #[serde(default)]
        pub currency_code: Option<String>,
        #[serde(default)]
        pub min_value: Option<f64>,
        #[serde(default)]
        pub max_value: Option<f64>,
    }

    impl Compensation {
        /// The salary component (summary first, then the tiers), else the summary text.
        pub fn salary(&self) -> Option<Salary> {
            let components = self
                .summary_components
                .iter()
                .chain(self.compensation_tiers.iter().flat_map(|t| &t.components));
            let direct = components
                .filter(|c| {
                    c.compensation_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("salary"))
                })
                .find_map(|c| {
                    let interval = Interval::parse(c.interval.as_deref().unwrap_or("1 YEAR"))?;
                    Salary::stated(
                        c.min_value,
                        c.max_value,
                        c.currency_code.as_deref(),
                        interval,
                        SalarySource::DirectData,
                    )
                });
            direct.or_else(|| {
                [
                    &self.scrapeable_compensation_salary_summary,
                    &self.compensation_tier_summary,
                ]
                .into_iter()
                .flatten()
                .find_map(|s| salary_from_text(s))
                .map(|s| Salary {
                    source: SalarySource::DirectData,
                    ..s
                })
            })
        }
    }

    impl Job {
        /// Ashby's own flag: unlisted jobs are not offered to applicants.
        pub fn listed(&self) -> bool {
            self.is_listed.unwrap_or(true)
        }

        pub fn into_posting(self, board: &str, company: Option<&str>) -> Posting {
            let description = match (self.description_plain, self.description_html) {
                (Some(plain), _) if !plain.trim().is_empty() => plain.trim().to_string(),
                (_, Some(html)) => html_to_text(&html),
                _ => String::new(),
            };
            let mut workplace = self
                .workplace_type
                .as_deref()
                .map_or(Workplace::Unknown, Workplace::parse);
            if workplace == Workplace::Unknown && self.is_remote == Some(true) {
                workplace = Workplace::Remote;
            }
            let job_url = self
                .job_url
                .unwrap_or_else(|| format!("https://jobs.ashbyhq.com/{board}/{}", self.id));
            let mut posting = Posting {
                id: Posting::make_id(Site::Ashby, board, &self.id),
                site: Site::Ashby,
                board: board.to_string(),
                apply_url: Some(
                    self.apply_url
                        .unwrap_or_else(|| format!("{job_url}/application")),
                ),
                job_url,
                native_id: self.id,
                job_url_direct: None,
                title: self.title.trim().to_string(),
                company: company_name(company, None, board),
                location: self
                    .location
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default(),
                is_remote: self.is_remote.unwrap_or(false),
                workplace,
                job_type: self.employment_type.as_deref().and_then(JobType::parse),
                min_amount: None,
                max_amount: None,
                currency: None,
                interval: None,
                salary_source: None,
                description,
                date_posted: self.published_at.as_deref().and_then(date_of),
            };
            let structured = self.compensation.as_ref().and_then(Compensation::salary);
            posting.complete(structured);
            posting
        }
    }
}

/// The caller's display name, else the board's, else the token.
fn company_name(display: Option<&str>, from_board: Option<&str>, board: &str) -> String {
    [display, from_board]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .unwrap_or(board)
        .to_string()
}

/// An RFC 3339 time's calendar date (in its own offset), or a bare `YYYY-MM-DD`.
fn date_of(value: &str) -> Option<NaiveDate> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.date_naive())
        .ok()
        .or_else(|| NaiveDate::parse_from_str(value.get(..10)?, "%Y-%m-%d").ok())
}

/// Lowercase ASCII letters and digits only: `Full-Time` → `fulltime`.
pub(crate) fn compact(value: &str) -> String {
    value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greenhouse_jobs_are_normalised() {
        let job: greenhouse::Job = serde_json::from_value(json!({
            "id": 127817, "internal_job_id": 144381, "title": " Vault Designer ",
            "updated_at": "2016-01-14T10:55:28-05:00",
            "location": { "name": "Remote - NYC" },
            "absolute_url": "https://boards.greenhouse.io/vaulttec/jobs/127817",
            "metadata": [{ "id": 1, "name": "Employment Type", "value": "Full-time", "value_type": "single_select" }],
            "content": "&lt;p&gt;Pay $150,000 - $190,000. 5+ years.&lt;/p&gt;",
            "departments": [], "offices": [], "something_new": true
        }))
        .unwrap();
        let p = job.into_posting("VaultTec", None);
        assert_eq!(p.id, "gh-vaulttec-127817");
        assert_eq!((p.site, p.native_id.as_str()), (Site::Greenhouse, "127817"));
        assert_eq!(p.title, "Vault Designer");
        assert_eq!(p.company, "VaultTec");
        assert_eq!(p.description, "Pay $150,000 - $190,000. 5+ years.");
        assert_eq!(p.job_type, Some(JobType::FullTime));
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(150_000.0), Some(190_000.0))
        );
        assert_eq!(p.salary_source, Some(SalarySource::Description));
        assert!(p.is_remote);
        assert_eq!(p.workplace, Workplace::Remote);
        assert_eq!(p.date_posted, NaiveDate::from_ymd_opt(2016, 1, 14));

        // Structured pay wins over the text; a minimal job is fine; the display name wins.
        let job: greenhouse::Job = serde_json::from_value(json!({
            "id": 5, "title": "Designer", "company_name": "Vault-Tec Inc.",
            "content": "$10k",
            "pay_input_ranges": [{ "min_cents": 12000000, "max_cents": 15000000, "currency_type": "usd", "title": "NYC" }]
        }))
        .unwrap();
        let p = job.into_posting("vaulttec", None);
        assert_eq!(p.company, "Vault-Tec Inc.");
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(120_000.0), Some(150_000.0))
        );
        assert_eq!(p.currency.as_deref(), Some("USD"));
        assert_eq!(p.salary_source, Some(SalarySource::DirectData));
        assert_eq!(p.job_url, "https://boards.greenhouse.io/vaulttec/jobs/5");
        let job: greenhouse::Job =
            serde_json::from_value(json!({ "id": 5, "title": "Designer", "company_name": "X" }))
                .unwrap();
        assert_eq!(
            job.into_posting("vaulttec", Some("Vault-Tec")).company,
            "Vault-Tec"
        );
    }

    #[test]
    fn lever_postings_are_normalised() {
        let job: lever::Job = serde_json::from_value(json!({
            "id": "5ac21346-8e0c-4494-8e7a-3eb92ff77902", "text": "Senior Backend Engineer",
            "categories": { "location": "San Francisco", "commitment": "Full-time", "team": "Engineering" },
            "country": "US", "workplaceType": "hybrid",
            "descriptionPlain": "We build things.", "description": "<div>We build things.</div>",
            "lists": [{ "text": "Requirements", "content": "<li>5+ years of Go</li><li>Kafka</li>" }],
            "additionalPlain": "Benefits.",
            "salaryRange": { "currency": "USD", "interval": "per-year-salary", "min": 150000, "max": 190000 },
            "hostedUrl": "https://jobs.lever.co/leverdemo/5ac21346-8e0c-4494-8e7a-3eb92ff77902",
            "applyUrl": "https://jobs.lever.co/leverdemo/5ac21346-8e0c-4494-8e7a-3eb92ff77902/apply",
            "createdAt": 1_700_000_000_000_i64
        }))
        .unwrap();
        let p = job.into_posting("leverdemo", Some("Lever Demo"));
        assert_eq!(p.id, "lv-leverdemo-5ac21346-8e0c-4494-8e7a-3eb92ff77902");
        assert_eq!(p.company, "Lever Demo");
        assert_eq!(p.workplace, Workplace::Hybrid);
        assert!(!p.is_remote);
        assert_eq!(p.job_type, Some(JobType::FullTime));
        assert_eq!(
            p.description,
            "We build things.\nRequirements\n5+ years of Go\nKafka\nBenefits."
        );
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(150_000.0), Some(190_000.0))
        );
        assert_eq!(p.salary_source, Some(SalarySource::DirectData));
        assert_eq!(p.date_posted, NaiveDate::from_ymd_opt(2023, 11, 14));

        let job: lever::Job = serde_json::from_value(json!({
            "id": "abc", "text": "Support",
            "workplaceType": "remote",
            "salaryRange": { "currency": "USD", "interval": "per-hour-wage", "min": 30, "max": 40 }
        }))
        .unwrap();
        let p = job.into_posting("leverdemo", None);
        assert_eq!(p.company, "leverdemo");
        assert!(p.is_remote);
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(62_400.0), Some(83_200.0))
        );
        assert_eq!(p.interval, Some(Interval::Hourly));
        assert_eq!(p.job_url, "https://jobs.lever.co/leverdemo/abc");
        assert_eq!(
            p.apply_url.as_deref(),
            Some("https://jobs.lever.co/leverdemo/abc/apply")
        );
    }

    #[test]
    fn ashby_jobs_are_normalised() {
        let job: ashby::Job = serde_json::from_value(json!({
            "id": "4f1c", "title": "Research Engineer", "department": "Research",
            "employmentType": "FullTime", "location": "San Francisco", "isRemote": false,
            "workplaceType": "OnSite", "publishedAt": "2026-11-14T18:22:10.123+00:00",
            "isListed": true, "jobUrl": "https://jobs.ashbyhq.com/openai/4f1c",
            "applyUrl": "https://jobs.ashbyhq.com/openai/4f1c/application",
            "descriptionHtml": "<p>Hello &amp; welcome</p>", "descriptionPlain": "",
            "compensation": {
                "compensationTierSummary": "$310K – $460K • Offers Equity",
                "summaryComponents": [
                    { "compensationType": "EquityCashValue", "interval": "1 YEAR", "currencyCode": "USD", "minValue": 1, "maxValue": 2 },
                    { "compensationType": "Salary", "interval": "1 YEAR", "currencyCode": "USD", "minValue": 310000, "maxValue": 460000 }
                ]
            }
        }))
        .unwrap();
        assert!(job.listed());
        let p = job.into_posting("openai", Some("OpenAI"));
        assert_eq!(p.id, "as-openai-4f1c");
        assert_eq!(p.description, "Hello & welcome");
        assert_eq!(p.workplace, Workplace::OnSite);
        assert_eq!(p.job_type, Some(JobType::FullTime));
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(310_000.0), Some(460_000.0))
        );
        assert_eq!(p.date_posted, NaiveDate::from_ymd_opt(2026, 11, 14));

        // Only a summary: read as text, still the board's data.
        let job: ashby::Job = serde_json::from_value(json!({
            "id": "x", "title": "SRE", "isRemote": true, "isListed": false,
            "compensation": { "compensationTierSummary": "£91K – £115K + Equity" }
        }))
        .unwrap();
        assert!(!job.listed());
        let p = job.into_posting("acme", None);
        assert!(p.is_remote);
        assert_eq!(p.workplace, Workplace::Remote);
        assert_eq!(p.currency.as_deref(), Some("GBP"));
        assert_eq!(
            (p.min_amount, p.max_amount),
            (Some(91_000.0), Some(115_000.0))
        );
        assert_eq!(p.salary_source, Some(SalarySource::DirectData));
    }

    #[test]
    fn postings_serialise_compactly_and_round_trip() {
        let job: lever::Job =
            serde_json::from_value(json!({ "id": "abc", "text": "Support" })).unwrap();
        let p = job.into_posting("acme", None);
        let value = serde_json::to_value(&p).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "apply_url",
                "board",
                "company",
                "id",
                "is_remote",
                "job_url",
                "native_id",
                "site",
                "title"
            ]
        );
        let back: Posting = serde_json::from_value(value).unwrap();
        assert_eq!(back, p);
    }
}
