//! The postings the job boards answer from: companies, each on one or more boards, and their
//! jobs, generated from a seed (the same seed, the same postings), plus the fixtures a test
//! places. Realistic in what a client must cope with: the same job on two boards with its
//! title cased and its location spelled differently, salaries stated in structured fields, in
//! the description's text, both or not at all, "N+ years" in some descriptions, remote,
//! hybrid and on-site roles in Indian, US and European cities.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::world::{capital, draw, pick};

/// How many companies and jobs the boards hold, which share of them is posted twice, and how
/// often an application form puts a wall in front of the applicant.
#[derive(Debug, Clone)]
pub struct BoardsConfig {
    pub seed: u64,
    pub companies: u64,
    /// Jobs in the world; a job posted on two boards counts once here (so the boards hold a
    /// few more postings than this).
    pub jobs: u64,
    /// Share (percent) of the jobs of a company on several boards that appear on a second one.
    pub duplicate_percent: u64,
    /// Shares (percent) of Greenhouse and Lever forms with a CAPTCHA, a login wall and an
    /// e-mailed verification code; the rest are plain.
    pub captcha_percent: u64,
    pub login_percent: u64,
    pub email_code_percent: u64,
    /// Share (percent) of Ashby postings with `isListed: false`.
    pub unlisted_percent: u64,
    /// Posting dates are spread over the 60 days before it.
    pub now: DateTime<Utc>,
}

impl Default for BoardsConfig {
    fn default() -> Self {
        BoardsConfig {
            seed: 1,
            companies: 12,
            jobs: 200,
            duplicate_percent: 25,
            captcha_percent: 10,
            login_percent: 5,
            email_code_percent: 5,
            unlisted_percent: 8,
            now: Utc::now(),
        }
    }
}

/// An applicant tracking system whose public board API and hosted form the sandbox speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ats {
    Greenhouse,
    Lever,
    Ashby,
}

impl Ats {
    pub fn name(self) -> &'static str {
        match self {
            Ats::Greenhouse => "greenhouse",
            Ats::Lever => "lever",
            Ats::Ashby => "ashby",
        }
    }
}

/// What stands between an applicant and a submitted form. The sandbox never offers a way
/// past a wall: a client must see it and stop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The form submits.
    #[default]
    Plain,
    /// A reCAPTCHA (Greenhouse) or hCaptcha (Lever) widget; every submit is refused with
    /// "Please verify that you are not a robot".
    Captcha,
    /// The form's URL redirects to `/login`, where no credentials work.
    Login,
    /// A valid submit leads to a page asking for the security code sent by e-mail; no code
    /// is ever right.
    EmailCode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workplace {
    OnSite,
    Hybrid,
    Remote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Employment {
    FullTime,
    PartTime,
    Contract,
    Intern,
}

impl Employment {
    /// Lever's `categories.commitment`.
    pub fn lever(self) -> &'static str {
        match self {
            Employment::FullTime => "Full-time",
            Employment::PartTime => "Part-time",
            Employment::Contract => "Contract",
            Employment::Intern => "Internship",
        }
    }

    /// Ashby's `employmentType`.
    pub fn ashby(self) -> &'static str {
        match self {
            Employment::FullTime => "FullTime",
            Employment::PartTime => "PartTime",
            Employment::Contract => "Contract",
            Employment::Intern => "Intern",
        }
    }
}

/// A yearly base salary range in whole units of `currency` (ISO 4217).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Salary {
    pub currency: String,
    pub min: u64,
    pub max: u64,
}

impl Salary {
    /// As descriptions write it: `$150,000 - $190,000` (`€`, `£`, `₹`, `CA$` for the others).
    pub fn text(&self) -> String {
        let symbol = match self.currency.as_str() {
            "USD" => "$",
            "EUR" => "€",
            "GBP" => "£",
            "INR" => "₹",
            "CAD" => "CA$",
            other => return format!("{} {} - {}", other, grouped(self.min), grouped(self.max)),
        };
        format!(
            "{symbol}{} - {symbol}{}",
            grouped(self.min),
            grouped(self.max)
        )
    }
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// One line of text.
    Text,
    /// Several lines.
    Textarea,
    /// Yes or No (Greenhouse `multi_value_single_select` with values 1 / 0, Lever radio
    /// buttons "Yes" / "No").
    YesNo,
}

/// A custom question of a posting's form: Greenhouse shows it as `question_<id>`, Lever as a
/// card `cards[<uuid>][field0]`; both label it with `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    pub id: u64,
    pub uuid: String,
    pub label: String,
    pub kind: QuestionKind,
    pub required: bool,
}

impl Question {
    /// The form field that answers it.
    pub fn field(&self, ats: Ats) -> String {
        match ats {
            Ats::Lever => format!("cards[{}][field0]", self.uuid),
            _ => format!("question_{}", self.id),
        }
    }
}

/// One posting on one board. A job posted on two boards is two postings with the same `job`.
#[derive(Debug, Clone, Serialize)]
pub struct Posting {
    pub ats: Ats,
    /// The board token (Greenhouse), site (Lever) or job board name (Ashby).
    pub board: String,
    /// The board's id: a number for Greenhouse, a UUID for Lever and Ashby.
    pub id: String,
    /// The job behind the posting; equal for the same job on two boards.
    pub job: u64,
    pub company: String,
    pub title: String,
    /// The location as this board spells it (Greenhouse adds " (Remote)" / " (Hybrid)").
    pub location: String,
    pub workplace: Workplace,
    pub employment: Employment,
    pub department: String,
    pub team: String,
    pub description_html: String,
    pub description_plain: String,
    pub salary: Option<Salary>,
    /// The salary is in the board's structured fields (Greenhouse `pay_input_ranges`, Lever
    /// `salaryRange`, Ashby `compensation`).
    pub salary_structured: bool,
    /// The salary is written in the description ([`Salary::text`]).
    pub salary_in_text: bool,
    /// The "N+ years" the description asks for.
    pub years: Option<u32>,
    pub posted_at: DateTime<Utc>,
    /// Ashby's `isListed`.
    pub listed: bool,
    pub questions: Vec<Question>,
    pub variant: Variant,
    /// Placed by a test rather than generated.
    pub fixture: bool,
}

impl Posting {
    /// The posting's page: Greenhouse's `absolute_url` (the page holds the form), Lever's
    /// `hostedUrl`, Ashby's `jobUrl`.
    pub fn page_path(&self) -> String {
        match self.ats {
            Ats::Greenhouse => format!("/gh/{}/jobs/{}", self.board, self.id),
            Ats::Lever => format!("/lever/{}/{}", self.board, self.id),
            Ats::Ashby => format!("/ashby/{}/{}", self.board, self.id),
        }
    }

    /// Where the application form is (Lever's `applyUrl`, Ashby's `applyUrl`).
    pub fn apply_path(&self) -> String {
        match self.ats {
            Ats::Greenhouse => self.page_path(),
            Ats::Lever => format!("/lever/{}/{}/apply", self.board, self.id),
            Ats::Ashby => format!("/ashby/{}/{}/application", self.board, self.id),
        }
    }
}

/// A company and the boards it posts on (the same slug on each).
#[derive(Debug, Clone, Serialize)]
pub struct Company {
    pub name: String,
    pub slug: String,
    pub boards: Vec<Ats>,
}

/// A posting a test places (`POST /_sandbox/boards/postings` or [`super::Boards::add`]).
/// Only `ats`, `board` and `title` are needed; the rest has plain defaults (remote, full
/// time, no salary, no years, no questions, the plain form).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostingSpec {
    pub ats: Ats,
    pub board: String,
    pub title: String,
    /// Default: the board's company, else the board's name capitalised.
    pub company: Option<String>,
    /// Default: a new job; give the `job` of another posting to post the same job twice.
    pub job: Option<u64>,
    /// Default: "Remote".
    pub location: Option<String>,
    /// Default: remote when the location says so, else on-site.
    pub workplace: Option<Workplace>,
    pub employment: Option<Employment>,
    pub department: Option<String>,
    pub team: Option<String>,
    /// Plain text (paragraphs split on blank lines), used as it is; without it the
    /// description is written from the fields (the salary sentence when `salary_in_text`, the
    /// "N+ years" one when `years`).
    pub description: Option<String>,
    pub salary: Option<Salary>,
    /// Default: true when there is a salary.
    pub salary_structured: Option<bool>,
    #[serde(default)]
    pub salary_in_text: bool,
    pub years: Option<u32>,
    pub posted_at: Option<DateTime<Utc>>,
    pub listed: Option<bool>,
    #[serde(default)]
    pub questions: Vec<QuestionSpec>,
    #[serde(default)]
    pub variant: Variant,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionSpec {
    pub label: String,
    pub kind: QuestionKind,
    #[serde(default)]
    pub required: bool,
}

const PREFIXES: [&str; 16] = [
    "Acme",
    "Initech",
    "Hooli",
    "Globex",
    "Umbrella",
    "Vandelay",
    "Tyrell",
    "Wonka",
    "Aperture",
    "Soylent",
    "Nakatomi",
    "Cyberdyne",
    "Oscorp",
    "Monarch",
    "Gringotts",
    "Massive",
];
const SUFFIXES: [&str; 8] = [
    "Labs",
    "Systems",
    "Robotics",
    "Analytics",
    "Cloud",
    "Health",
    "Pay",
    "Logistics",
];
const LEGAL: [&str; 6] = ["Inc.", "", "Ltd", "GmbH", "Pvt Ltd", "LLC"];

/// (role, department).
const ROLES: [(&str, &str); 20] = [
    ("Backend Engineer", "Engineering"),
    ("Software Engineer", "Engineering"),
    ("Frontend Engineer", "Engineering"),
    ("Full Stack Engineer", "Engineering"),
    ("Data Engineer", "Data"),
    ("Machine Learning Engineer", "Data"),
    ("Site Reliability Engineer", "Engineering"),
    ("Platform Engineer", "Engineering"),
    ("Rust Engineer", "Engineering"),
    ("Python Developer", "Engineering"),
    ("DevOps Engineer", "Engineering"),
    ("Security Engineer", "Security"),
    ("Mobile Engineer (iOS)", "Engineering"),
    ("Data Scientist", "Data"),
    ("Product Manager", "Product"),
    ("Product Designer", "Design"),
    ("Engineering Manager", "Engineering"),
    ("Technical Writer", "Product"),
    ("Sales Engineer", "Sales"),
    ("Recruiter", "People"),
];
/// (level, years asked for: low, high, salary factor ×100).
const LEVELS: [(&str, u32, u32, u64); 6] = [
    ("", 2, 5, 100),
    ("Senior ", 5, 8, 130),
    ("Staff ", 8, 10, 165),
    ("Principal ", 10, 12, 200),
    ("Junior ", 1, 2, 70),
    ("Lead ", 6, 9, 145),
];
const TEAMS: [&str; 7] = [
    "Platform",
    "Payments",
    "Growth",
    "Infrastructure",
    "Core",
    "Search",
    "Developer Experience",
];
/// (location, its spelling on a second board, currency, yearly base for the plain level).
const LOCATIONS: [(&str, &str, &str, u64); 16] = [
    ("Bengaluru, India", "Bangalore, India", "INR", 2_800_000),
    ("Pune, India", "Pune, Maharashtra, India", "INR", 2_400_000),
    (
        "Hyderabad, India",
        "Hyderabad, Telangana, India",
        "INR",
        2_500_000,
    ),
    ("Remote - India", "Remote (India)", "INR", 2_600_000),
    ("New York, NY", "New York, New York", "USD", 160_000),
    (
        "San Francisco, CA",
        "San Francisco, California",
        "USD",
        170_000,
    ),
    ("Austin, TX", "Austin, Texas", "USD", 140_000),
    ("Seattle, WA", "Seattle, Washington", "USD", 155_000),
    ("Remote - US", "Remote (US)", "USD", 145_000),
    ("London, United Kingdom", "London, UK", "GBP", 85_000),
    ("Berlin, Germany", "Berlin, DE", "EUR", 80_000),
    ("Amsterdam, Netherlands", "Amsterdam, NL", "EUR", 78_000),
    ("Dublin, Ireland", "Dublin, IE", "EUR", 82_000),
    ("Toronto, Canada", "Toronto, ON, Canada", "CAD", 130_000),
    ("Remote", "Remote", "USD", 130_000),
    ("Remote (EU)", "Remote - Europe", "EUR", 75_000),
];
const QUESTIONS: [(&str, QuestionKind, bool); 8] = [
    ("LinkedIn Profile", QuestionKind::Text, false),
    ("Website", QuestionKind::Text, false),
    (
        "Are you legally authorized to work in the country where this job is located?",
        QuestionKind::YesNo,
        true,
    ),
    (
        "Will you now or in the future require visa sponsorship?",
        QuestionKind::YesNo,
        true,
    ),
    (
        "How did you hear about this job?",
        QuestionKind::Text,
        false,
    ),
    (
        "Why do you want to work here?",
        QuestionKind::Textarea,
        true,
    ),
    ("What is your notice period?", QuestionKind::Text, false),
    (
        "What are your salary expectations?",
        QuestionKind::Text,
        false,
    ),
];
const SKILLS: [&str; 10] = [
    "distributed systems",
    "PostgreSQL",
    "Kubernetes",
    "Rust or Go",
    "Python",
    "TypeScript and React",
    "data pipelines",
    "observability",
    "API design",
    "cloud infrastructure (AWS or GCP)",
];

fn uuid(seed: u64, what: u64, a: u64, b: u64) -> String {
    let hi = draw(seed, what, a, b);
    let lo = draw(seed, what + 1, a, b);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        0x8000 | ((lo >> 48) & 0x3fff),
        lo & 0xffff_ffff_ffff
    )
}

pub fn lever_uuid(seed: u64, listing: u64) -> String {
    uuid(seed, 300, listing, 0)
}

/// The companies of the world. The first four are fixed in shape so that even a small world
/// has a company on Greenhouse and Lever (whose jobs are posted twice), one on Ashby, one on
/// Lever alone and one on Greenhouse alone.
pub fn companies(config: &BoardsConfig) -> Vec<Company> {
    let seed = config.seed;
    (0..config.companies.max(1))
        .map(|i| {
            let prefix = PREFIXES[(i % 16) as usize];
            // (i mod 16, (i + i/16 + c) mod 8) differs for every i below 128.
            let suffix = SUFFIXES[((i + i / 16 + draw(seed, 100, 0, 0)) % 8) as usize];
            let legal = pick(&LEGAL, draw(seed, 101, i, 0));
            let name = [prefix, suffix, legal]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            let mut slug = format!("{prefix}{suffix}").to_lowercase();
            if i >= 128 {
                slug.push_str(&i.to_string());
            }
            let boards = match i {
                0 => vec![Ats::Greenhouse, Ats::Lever],
                1 => vec![Ats::Ashby],
                2 => vec![Ats::Lever],
                3 => vec![Ats::Greenhouse],
                _ => match draw(seed, 102, i, 0) % 100 {
                    0..40 => vec![Ats::Greenhouse],
                    40..62 => vec![Ats::Lever],
                    62..77 => vec![Ats::Ashby],
                    77..92 => vec![Ats::Greenhouse, Ats::Lever],
                    _ => vec![Ats::Lever, Ats::Ashby],
                },
            };
            Company { name, slug, boards }
        })
        .collect()
}

/// The generated postings, in job order (a duplicated job's second posting right after its
/// first). Job 0 is always company 0's, posted on Greenhouse and on Lever.
pub fn generate(config: &BoardsConfig, companies: &[Company]) -> Vec<Posting> {
    let seed = config.seed;
    let mut out = Vec::with_capacity(config.jobs as usize + config.jobs as usize / 8);
    for job in 0..config.jobs {
        let d = |what: u64| draw(seed, what, job, 0);
        let c = if job < 4 {
            job as usize % companies.len()
        } else {
            (d(1) % companies.len() as u64) as usize
        };
        let company = &companies[c];
        let first = (d(2) % company.boards.len() as u64) as usize;
        let twice = company.boards.len() > 1 && (job == 0 || d(3) % 100 < config.duplicate_percent);
        let base = job_base(config, job, company);
        let mut boards = vec![(company.boards[first], false)];
        if twice {
            let other = company.boards[(first + 1) % company.boards.len()];
            boards.push((other, true));
        }
        if job == 0 {
            boards = vec![(Ats::Greenhouse, false), (Ats::Lever, true)];
        }
        for (ats, second) in boards {
            let listing = out.len() as u64;
            out.push(listing_of(config, &base, ats, second, listing));
        }
    }
    out
}

/// A job before it is put on a board.
struct Job {
    job: u64,
    company: String,
    board: String,
    title: String,
    location: usize,
    workplace: Workplace,
    employment: Employment,
    department: String,
    team: String,
    salary: Option<Salary>,
    salary_structured: bool,
    salary_in_text: bool,
    years: Option<u32>,
    posted_at: DateTime<Utc>,
    questions: Vec<usize>,
    skills: [usize; 3],
}

fn job_base(config: &BoardsConfig, job: u64, company: &Company) -> Job {
    let seed = config.seed;
    let d = |what: u64| draw(seed, what, job, 0);
    let (role, department) = pick(&ROLES, d(10));
    let employment = match d(11) % 100 {
        0..85 => Employment::FullTime,
        85..90 => Employment::PartTime,
        90..96 => Employment::Contract,
        _ => Employment::Intern,
    };
    let (level, low, high, factor) = if employment == Employment::Intern {
        ("", 0, 0, 40)
    } else {
        pick(&LEVELS, d(12))
    };
    let mut title = match employment {
        Employment::Intern => format!("{} Intern", role.trim_end_matches(" (iOS)")),
        _ => format!("{level}{role}"),
    };
    if d(13) % 10 == 0 {
        title.push_str(&format!(", {}", pick(&TEAMS, d(14))));
    }
    let location = (d(15) % LOCATIONS.len() as u64) as usize;
    let (name, _, currency, yearly) = LOCATIONS[location];
    let workplace = if name.starts_with("Remote") {
        Workplace::Remote
    } else {
        match d(16) % 100 {
            0..60 => Workplace::OnSite,
            60..85 => Workplace::Hybrid,
            _ => Workplace::Remote,
        }
    };
    let mid = yearly * factor / 100;
    let round = if currency == "INR" { 100_000 } else { 5_000 };
    let min = (mid * 85 / 100) / round * round;
    let max = (mid * 115 / 100).div_ceil(round) * round;
    let (structured, in_text) = match d(17) % 100 {
        0..40 => (true, false),
        40..60 => (false, true),
        60..75 => (true, true),
        _ => (false, false),
    };
    let salary = (structured || in_text).then(|| Salary {
        currency: currency.to_string(),
        min,
        max,
    });
    let years = (employment != Employment::Intern && d(18) % 100 < 70)
        .then(|| low + (d(19) % u64::from(high - low + 1)) as u32);
    let posted_at = config.now
        - Duration::minutes((d(20) % (60 * 24 * 60)) as i64)
        - Duration::seconds((d(21) % 60) as i64);
    let mut questions: Vec<usize> = (0..d(22) % 4)
        .map(|k| (draw(seed, 23, job, k) % QUESTIONS.len() as u64) as usize)
        .collect();
    questions.sort();
    questions.dedup();
    Job {
        job,
        company: company.name.clone(),
        board: company.slug.clone(),
        title,
        location,
        workplace,
        employment,
        department: department.to_string(),
        team: pick(&TEAMS, d(24)).to_string(),
        salary,
        salary_structured: structured,
        salary_in_text: in_text,
        years,
        posted_at,
        questions,
        skills: {
            // Three different skills: each step moves 1 to 4 places on (of 10).
            let first = d(25) % 10;
            let second = (first + 1 + d(26) % 4) % 10;
            let third = (second + 1 + d(27) % 4) % 10;
            [first as usize, second as usize, third as usize]
        },
    }
}

fn listing_of(config: &BoardsConfig, job: &Job, ats: Ats, second: bool, listing: u64) -> Posting {
    let seed = config.seed;
    let d = |what: u64| draw(seed, what, listing, 1);
    let (first_spelling, second_spelling, _, _) = LOCATIONS[job.location];
    let city = if second {
        second_spelling
    } else {
        first_spelling
    };
    // The second board writes the title in sentence case ("Senior backend engineer").
    let title = if second {
        sentence_case(&job.title)
    } else {
        job.title.clone()
    };
    let location = match (ats, job.workplace) {
        (Ats::Greenhouse, Workplace::Remote) if !city.starts_with("Remote") => {
            format!("{city} (Remote)")
        }
        (Ats::Greenhouse, Workplace::Hybrid) => format!("{city} (Hybrid)"),
        _ => city.to_string(),
    };
    let id = match ats {
        Ats::Greenhouse => (4_000_000_000 + listing * 1_000 + d(30) % 1_000).to_string(),
        Ats::Lever => lever_uuid(seed, listing),
        Ats::Ashby => uuid(seed, 310, listing, 0),
    };
    let variant = if ats == Ats::Ashby || listing == 0 {
        // Ashby's form is a script the sandbox does not serve; the first posting stays plain
        // so that a small world always has a form that submits.
        Variant::Plain
    } else {
        let roll = d(31) % 100;
        let (c, l, e) = (
            config.captcha_percent,
            config.login_percent,
            config.email_code_percent,
        );
        if roll < c {
            Variant::Captcha
        } else if roll < c + l {
            Variant::Login
        } else if roll < c + l + e {
            Variant::EmailCode
        } else {
            Variant::Plain
        }
    };
    let questions = job
        .questions
        .iter()
        .map(|&q| {
            let (label, kind, required) = QUESTIONS[q];
            Question {
                id: 20_000_000 + listing * 10 + q as u64,
                uuid: uuid(seed, 320, listing, q as u64),
                label: label.to_string(),
                kind,
                required,
            }
        })
        .collect();
    let paragraphs = describe(job, city);
    Posting {
        ats,
        board: job.board.clone(),
        id,
        job: job.job,
        company: job.company.clone(),
        title,
        location,
        workplace: job.workplace,
        employment: job.employment,
        department: job.department.clone(),
        team: job.team.clone(),
        description_html: html(&paragraphs),
        description_plain: paragraphs.join("\n\n"),
        salary: job.salary.clone(),
        salary_structured: job.salary_structured,
        salary_in_text: job.salary_in_text,
        years: job.years,
        posted_at: job.posted_at + Duration::hours(if second { 20 } else { 0 }),
        listed: ats != Ats::Ashby || d(32) % 100 >= config.unlisted_percent || listing == 0,
        questions,
        variant,
        fixture: false,
    }
}

fn sentence_case(title: &str) -> String {
    let lower = title.to_lowercase();
    let lower = lower.replace("(ios)", "(iOS)");
    capital(&lower)
}

/// The description's paragraphs (a paragraph starting with "- " is a list item).
fn describe(job: &Job, city: &str) -> Vec<String> {
    let mut p = vec![format!(
        "{} is hiring a {} to join the {} team. You will design, build and run the systems our customers rely on every day.",
        job.company, job.title, job.team
    )];
    p.push(match job.workplace {
        Workplace::Remote => "This role is fully remote.".to_string(),
        Workplace::Hybrid => {
            format!("This role is hybrid: three days a week in our {city} office.")
        }
        Workplace::OnSite => format!("This role is based in our {city} office."),
    });
    p.push("What you bring:".to_string());
    if let Some(years) = job.years {
        p.push(format!("- {years}+ years of professional experience"));
    }
    for &s in &job.skills {
        p.push(format!("- Hands-on experience with {}", SKILLS[s]));
    }
    if job.salary_in_text {
        if let Some(salary) = &job.salary {
            p.push(format!(
                "The base salary range for this role is {} per year, plus equity and benefits.",
                salary.text()
            ));
        }
    }
    p
}

fn html(paragraphs: &[String]) -> String {
    let mut out = String::new();
    let mut in_list = false;
    for p in paragraphs {
        match p.strip_prefix("- ") {
            Some(item) => {
                if !in_list {
                    out.push_str("<ul>");
                    in_list = true;
                }
                out.push_str(&format!("<li>{}</li>", super::escape(item)));
            }
            None => {
                if in_list {
                    out.push_str("</ul>");
                    in_list = false;
                }
                out.push_str(&format!("<p>{}</p>", super::escape(p)));
            }
        }
    }
    if in_list {
        out.push_str("</ul>");
    }
    out
}

/// The posting a [`PostingSpec`] describes; `id` and `job` come from the catalogue.
pub fn from_spec(
    spec: PostingSpec,
    id: String,
    job: u64,
    company: String,
    now: DateTime<Utc>,
) -> Posting {
    let location = spec.location.unwrap_or_else(|| "Remote".to_string());
    let workplace = spec
        .workplace
        .unwrap_or(if location.to_lowercase().contains("remote") {
            Workplace::Remote
        } else {
            Workplace::OnSite
        });
    let salary_structured = spec.salary_structured.unwrap_or(spec.salary.is_some());
    let mut paragraphs: Vec<String> = match &spec.description {
        Some(text) => text
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        None => {
            let mut p = vec![format!("{company} is hiring a {}.", spec.title)];
            if let Some(years) = spec.years {
                p.push(format!("- {years}+ years of professional experience"));
            }
            if spec.salary_in_text {
                if let Some(salary) = &spec.salary {
                    p.push(format!(
                        "The base salary range for this role is {} per year.",
                        salary.text()
                    ));
                }
            }
            p
        }
    };
    if paragraphs.is_empty() {
        paragraphs.push(spec.title.clone());
    }
    let questions = spec
        .questions
        .iter()
        .enumerate()
        .map(|(k, q)| Question {
            id: 90_000_000 + job * 10 + k as u64,
            uuid: uuid(job, 330, k as u64, 7),
            label: q.label.clone(),
            kind: q.kind,
            required: q.required,
        })
        .collect();
    Posting {
        ats: spec.ats,
        board: spec.board,
        id,
        job,
        company,
        title: spec.title,
        location,
        workplace,
        employment: spec.employment.unwrap_or(Employment::FullTime),
        department: spec.department.unwrap_or_else(|| "Engineering".to_string()),
        team: spec.team.unwrap_or_else(|| "Core".to_string()),
        description_html: html(&paragraphs),
        description_plain: paragraphs.join("\n\n"),
        salary: spec.salary,
        salary_structured,
        salary_in_text: spec.salary_in_text,
        years: spec.years,
        posted_at: spec.posted_at.unwrap_or(now),
        listed: spec.listed.unwrap_or(true),
        questions,
        variant: spec.variant,
        fixture: true,
    }
}

pub fn fixture_uuid(job: u64) -> String {
    uuid(job, 340, 0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BoardsConfig {
        BoardsConfig {
            now: DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now()),
            ..BoardsConfig::default()
        }
    }

    #[test]
    fn salaries_read_as_descriptions_write_them() {
        let s = Salary {
            currency: "USD".into(),
            min: 150_000,
            max: 190_000,
        };
        assert_eq!(s.text(), "$150,000 - $190,000");
        let s = Salary {
            currency: "INR".into(),
            min: 2_500_000,
            max: 3_500_000,
        };
        assert_eq!(s.text(), "₹2,500,000 - ₹3,500,000");
    }

    #[test]
    fn the_world_has_what_a_client_must_cope_with() {
        let c = config();
        let companies = companies(&c);
        let postings = generate(&c, &companies);
        assert!(postings.len() > 200, "jobs plus their second postings");
        let ids: std::collections::HashSet<_> = postings.iter().map(|p| (p.ats, &p.id)).collect();
        assert_eq!(ids.len(), postings.len(), "ids are unique per board kind");
        let twice = postings.windows(2).filter(|w| w[0].job == w[1].job).count();
        assert!(twice >= 5, "jobs on two boards: {twice}");
        let (a, b) = (&postings[0], &postings[1]);
        assert_eq!((a.ats, b.ats), (Ats::Greenhouse, Ats::Lever));
        assert_ne!(a.title, b.title);
        assert_eq!(a.title.to_lowercase(), b.title.to_lowercase());
        for want in ["Bengaluru", "Pune", "Remote", "Berlin", "New York"] {
            assert!(postings.iter().any(|p| p.location.contains(want)), "{want}");
        }
        assert!(postings.iter().any(|p| p.salary.is_none()));
        assert!(postings
            .iter()
            .any(|p| p.salary_in_text && !p.salary_structured));
        assert!(postings
            .iter()
            .any(|p| p.description_plain.contains("+ years")));
        for v in [Variant::Captcha, Variant::Login, Variant::EmailCode] {
            assert!(postings.iter().any(|p| p.variant == v), "{v:?}");
        }
        assert!(postings.iter().any(|p| !p.listed));
        assert!(companies.iter().all(|c| !c.boards.is_empty()));
    }

    #[test]
    fn ten_thousand_jobs_are_quick_to_make() {
        let c = BoardsConfig {
            jobs: 10_000,
            companies: 60,
            ..config()
        };
        let started = std::time::Instant::now();
        let postings = generate(&c, &companies(&c));
        assert!(postings.len() >= 10_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
