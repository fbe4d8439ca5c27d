//! Postings deduplicated across boards (SPEC §7.3, protocols §2.5), three rules in turn:
//! 1. **native id** — the same site, board and board id;
//! 2. **canonical URL** — any of `job_url`, `job_url_direct`, `apply_url` the same after
//!    [`canonical_url`];
//! 3. **company + title + location** — the same [`company_key`] (the block: only postings of
//!    one company are compared, so 10,000 postings are not compared pairwise), titles with a
//!    Jaro-Winkler similarity ≥ [`TITLE_SIMILARITY`] after [`title_key`] (and so are the
//!    words only one of them has, joined; the level words — senior, staff, II, 2 — must be
//!    the same), and the same
//!    location: equal [`location_key`]s, one's words a subset of the other's ("Bangalore,
//!    India" ⊂ "Bengaluru, Karnataka, India"), both remote, or a similarity ≥ 0.93.
//!
//! Which one is kept does not depend on the input's order: postings are taken in the order
//! (a structured salary first, then one read from the text, then none; then the smallest
//! id), and each is a duplicate of the first kept one it matches. `kept` is in id order.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::posting::{Posting, SalarySource, Site, Workplace};

/// The least Jaro-Winkler similarity of two titles (and locations) of one company that
/// makes them one job.
pub const TITLE_SIMILARITY: f64 = 0.93;

/// Which rule found a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    NativeId,
    CanonicalUrl,
    CompanyTitleLocation,
}

/// A posting dropped as a duplicate of a kept one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub id: String,
    pub kept_id: String,
    pub rule: Rule,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deduped {
    /// In id order.
    pub kept: Vec<Posting>,
    pub duplicates: Vec<Duplicate>,
}

/// One kept posting as the fuzzy rule compares it.
struct Kept {
    index: usize,
    title: String,
    title_chars: usize,
    level: Vec<String>,
    location: String,
    location_words: Vec<String>,
    /// The place's first part ("San Francisco" of "San Francisco, CA (Hybrid)").
    city: Vec<String>,
    remote: bool,
}

/// Words of a location that say how, not where.
const WORKPLACE_WORDS: [&str; 5] = ["hybrid", "onsite", "office", "wfh", "remote"];

/// The words of a location's first part (before a comma, a parenthesis or " - "), without
/// workplace words: boards spell the rest (state, country) each their own way ("CA" or
/// "California", "IE" or "Ireland").
fn city_words(location: &str) -> Vec<String> {
    let first = location
        .split([',', '(', '/'])
        .next()
        .unwrap_or_default()
        .split(" - ")
        .next()
        .unwrap_or_default();
    location_words(first)
        .into_iter()
        .filter(|w| !WORKPLACE_WORDS.contains(&w.as_str()))
        .collect()
}

pub fn dedup(mut postings: Vec<Posting>) -> Deduped {
    postings.sort_by(|a, b| {
        preference(a)
            .cmp(&preference(b))
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.job_url.cmp(&b.job_url))
            .then_with(|| a.title.cmp(&b.title))
    });
    let mut native: HashMap<(Site, String, String), usize> = HashMap::new();
    let mut urls: HashMap<String, usize> = HashMap::new();
    let mut blocks: HashMap<String, Vec<Kept>> = HashMap::new();
    let mut keep = vec![false; postings.len()];
    let mut duplicates = Vec::new();

    for (index, posting) in postings.iter().enumerate() {
        let native_key = (
            posting.site,
            posting.board.to_ascii_lowercase(),
            posting.native_id.clone(),
        );
        let url_keys: Vec<String> = [
            Some(&posting.job_url),
            posting.job_url_direct.as_ref(),
            posting.apply_url.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|u| canonical_url(u))
        .collect();
        let company = company_key(&posting.company);
        let title = title_key(&posting.title);
        let level = level_words(&title);
        let location_words = location_key_words(&posting.location);
        let location = location_words.join(" ");
        let city = city_words(&posting.location);
        let remote = posting.is_remote || posting.workplace == Workplace::Remote;

        let found = native
            .get(&native_key)
            .map(|&k| (k, Rule::NativeId))
            .or_else(|| {
                url_keys
                    .iter()
                    .find_map(|u| urls.get(u))
                    .map(|&k| (k, Rule::CanonicalUrl))
            })
            .or_else(|| {
                blocks
                    .get(&company)
                    .filter(|_| !company.is_empty() && !title.is_empty())?
                    .iter()
                    .find(|k| {
                        same_job(
                            k,
                            &title,
                            &level,
                            (&location, &location_words, &city),
                            remote,
                        )
                    })
                    .map(|k| (k.index, Rule::CompanyTitleLocation))
            });
        if let Some((kept, rule)) = found {
            duplicates.push(Duplicate {
                id: posting.id.clone(),
                kept_id: postings[kept].id.clone(),
                rule,
            });
            continue;
        }
        keep[index] = true;
        native.insert(native_key, index);
        for url in url_keys {
            urls.entry(url).or_insert(index);
        }
        if !company.is_empty() && !title.is_empty() {
            blocks.entry(company).or_default().push(Kept {
                index,
                title_chars: title.chars().count(),
                title,
                level,
                location,
                location_words,
                city,
                remote,
            });
        }
    }
    let mut kept: Vec<Posting> = postings
        .into_iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(p))
        .collect();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    Deduped { kept, duplicates }
}

/// Lower is kept first: a structured salary, then one from the text, then none.
fn preference(posting: &Posting) -> u8 {
    match posting.salary_source {
        Some(SalarySource::DirectData) => 0,
        Some(SalarySource::Description) => 1,
        None => 2,
    }
}

fn same_job(
    kept: &Kept,
    title: &str,
    level: &[String],
    (location, location_words, city): (&str, &[String], &[String]),
    remote: bool,
) -> bool {
    let same_location = (remote && kept.remote)
        || (!city.is_empty() && city == kept.city.as_slice())
        || kept.location == location
        || subset(location_words, &kept.location_words)
        || subset(&kept.location_words, location_words)
        || (!location.is_empty()
            && !kept.location.is_empty()
            && strsim::jaro_winkler(location, &kept.location) >= TITLE_SIMILARITY);
    if !same_location {
        return false;
    }
    if kept.title == title {
        return true;
    }
    // "Engineer II" and "Engineer III", "Senior" and "Staff" are near as strings but other
    // jobs: the levels must be the same.
    if kept.level != level {
        return false;
    }
    // Jaro-Winkler ≥ 0.93 needs a Jaro ≥ 0.883, which two strings whose lengths differ by
    // more than a third cannot reach: skip the computation.
    let chars = title.chars().count();
    let (short, long) = (chars.min(kept.title_chars), chars.max(kept.title_chars));
    if (short as f64) < 0.65 * long as f64 {
        return false;
    }
    if strsim::jaro_winkler(title, &kept.title) < TITLE_SIMILARITY {
        return false;
    }
    // Near as wholes, the words that differ must be near too: "back end" ≡ "backend",
    // "engineers" ≡ "engineer", but "product manager" is not "project manager".
    let ours: Vec<&str> = title.split(' ').collect();
    let theirs: Vec<&str> = kept.title.split(' ').collect();
    let only_ours: String = ours
        .iter()
        .filter(|w| !theirs.contains(w))
        .copied()
        .collect();
    let only_theirs: String = theirs
        .iter()
        .filter(|w| !ours.contains(w))
        .copied()
        .collect();
    only_ours.is_empty()
        || only_theirs.is_empty()
        || strsim::jaro_winkler(&only_ours, &only_theirs) >= TITLE_SIMILARITY
}

/// The words of a title key that say its level: seniority words, numbers and roman
/// numerals, sorted.
fn level_words(title_key: &str) -> Vec<String> {
    let mut level: Vec<String> = title_key
        .split(' ')
        .filter(|w| {
            matches!(
                *w,
                "senior"
                    | "junior"
                    | "staff"
                    | "principal"
                    | "lead"
                    | "head"
                    | "intern"
                    | "associate"
                    | "i"
                    | "ii"
                    | "iii"
                    | "iv"
                    | "v"
            ) || (!w.is_empty() && w.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect();
    level.sort_unstable();
    level
}

/// A non-empty `a` whose words are all in `b`.
fn subset(a: &[String], b: &[String]) -> bool {
    !a.is_empty() && a.iter().all(|w| b.contains(w))
}

/// Query parameters that track where a visitor came from, not what they look at.
fn tracking(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("utm_")
        || matches!(
            name.as_str(),
            "gh_src"
                | "lever-source"
                | "lever-origin"
                | "src"
                | "ref"
                | "trk"
                | "refid"
                | "gclid"
                | "fbclid"
        )
}

/// One posting's URL, whichever way it was written (protocols §2.5): scheme dropped, host
/// lowercased without `www.`, `job-boards.greenhouse.io` ≡ `boards.greenhouse.io`,
/// `jobs.eu.lever.co` ≡ `jobs.lever.co`, no fragment, no tracking parameters (`utm_*`,
/// `gh_src`, `lever-source`, `src`, `ref`, `trk`, `refId`; id-bearing ones such as `gh_jid`
/// and `jk` stay, sorted), no trailing `/`, `/apply` or `/application`, and the path
/// lowercased on the three boards' hosts (their tokens and ids are case-insensitive).
/// `None` for what is not an http(s) URL.
pub fn canonical_url(raw: &str) -> Option<String> {
    let url = reqwest::Url::parse(raw.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    let host = match host {
        "job-boards.greenhouse.io" | "job-boards.eu.greenhouse.io" | "boards.eu.greenhouse.io" => {
            "boards.greenhouse.io"
        }
        "jobs.eu.lever.co" => "jobs.lever.co",
        other => other,
    };
    let board_host = matches!(
        host,
        "boards.greenhouse.io" | "jobs.lever.co" | "jobs.ashbyhq.com"
    );
    let mut path = if board_host {
        url.path().to_ascii_lowercase()
    } else {
        url.path().to_string()
    };
    loop {
        let before = path.len();
        path.truncate(path.trim_end_matches('/').len());
        for suffix in ["/apply", "/application"] {
            if path.ends_with(suffix) {
                path.truncate(path.len() - suffix.len());
            }
        }
        if path.len() == before {
            break;
        }
    }
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !tracking(k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    let mut out = host.to_string();
    if let Some(port) = url.port() {
        out.push(':');
        out.push_str(&port.to_string());
    }
    out.push_str(&path);
    if !params.is_empty() {
        let query: String = reqwest::Url::parse_with_params("http://q/", &params)
            .ok()?
            .query()?
            .to_string();
        out.push('?');
        out.push_str(&query);
    }
    Some(out)
}

/// Lowercased words: letters and digits, with a trailing `+` or `#` kept ("c++", "c#");
/// the abbreviations job titles use expanded (`sr` → `senior`, `jr` → `junior`,
/// `mgr` → `manager`, `eng` → `engineer`, `swe` → `software engineer`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text.split(|c: char| !(c.is_alphanumeric() || c == '+' || c == '#')) {
        let piece = piece.trim_start_matches(['+', '#']);
        if piece.is_empty() {
            continue;
        }
        let core = piece.trim_end_matches(['+', '#']);
        if core.contains(['+', '#']) {
            // "backend+frontend": two words.
            for part in core.split(['+', '#']).filter(|p| !p.is_empty()) {
                push_word(&mut out, part.to_lowercase());
            }
        } else {
            push_word(&mut out, piece.to_lowercase());
        }
    }
    out
}

fn push_word(out: &mut Vec<String>, word: String) {
    match word.as_str() {
        "sr" => out.push("senior".into()),
        "jr" => out.push("junior".into()),
        "mgr" => out.push("manager".into()),
        "eng" => out.push("engineer".into()),
        "swe" => {
            out.push("software".into());
            out.push("engineer".into());
        }
        _ => out.push(word),
    }
}

/// A location's words, in order, with one name per city (`bengaluru` → `bangalore`,
/// `bombay` → `mumbai`, `gurugram` → `gurgaon`, `nyc` → `new york`, …).
pub fn location_words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for piece in text.split(|c: char| !c.is_alphanumeric()) {
        if piece.is_empty() {
            continue;
        }
        let word = piece.to_lowercase();
        match word.as_str() {
            "bengaluru" => out.push("bangalore".into()),
            "bombay" => out.push("mumbai".into()),
            "gurugram" => out.push("gurgaon".into()),
            "madras" => out.push("chennai".into()),
            "calcutta" => out.push("kolkata".into()),
            "nyc" => {
                out.push("new".into());
                out.push("york".into());
            }
            "sf" => {
                out.push("san".into());
                out.push("francisco".into());
            }
            _ => out.push(word),
        }
    }
    out
}

/// Legal forms dropped from a company's name.
const LEGAL_SUFFIXES: [&str; 17] = [
    "inc",
    "incorporated",
    "llc",
    "llp",
    "ltd",
    "limited",
    "pvt",
    "private",
    "gmbh",
    "corp",
    "corporation",
    "co",
    "plc",
    "sa",
    "bv",
    "ag",
    "pte",
];

/// A company's name as a key: lowercase letters and digits only, legal forms dropped
/// ("Vault-Tec, Inc." → `vaulttec`, "Acme Private Limited" → `acme`).
pub fn company_key(name: &str) -> String {
    let words: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'' && c != '&')
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let keep = words.len()
        - words
            .iter()
            .rev()
            .take_while(|w| LEGAL_SUFFIXES.contains(&w.as_str()))
            .count();
    // A name that is only a legal form ("Co") stays what it is.
    let keep = if keep == 0 { words.len() } else { keep };
    words[..keep].concat()
}

/// A title as the fuzzy rule compares it: [`words`] without parentheticals ("(Remote)",
/// "[Req 123]"), requisition ids (a word with both letters and digits, or `#…`), and the
/// words `remote` and `hybrid`.
pub fn title_key(title: &str) -> String {
    let mut plain = String::with_capacity(title.len());
    let mut depth = 0u32;
    for c in title.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '#' if depth == 0 => plain.push(' '),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    words(&plain)
        .into_iter()
        .filter(|w| {
            let letters = w.chars().any(char::is_alphabetic);
            let digits = w.chars().any(|c| c.is_ascii_digit());
            let requisition = (letters && digits) || digits_only_id(w);
            !requisition && w != "remote" && w != "hybrid"
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A long number in a title is a requisition id ("Engineer 104233"), a short one is part of
/// the title ("Engineer 2").
fn digits_only_id(word: &str) -> bool {
    word.len() >= 4 && word.chars().all(|c| c.is_ascii_digit())
}

/// A location as the fuzzy rule compares it: [`location_words`], sorted and distinct, so
/// "Remote (India)" ≡ "India, remote".
pub fn location_key(location: &str) -> String {
    location_key_words(location).join(" ")
}

fn location_key_words(location: &str) -> Vec<String> {
    let mut words: Vec<String> = location_words(location)
        .into_iter()
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    words.sort_unstable();
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::posting::JobType;

    fn posting(site: Site, board: &str, native: &str, title: &str, company: &str) -> Posting {
        let job_url = match site {
            Site::Greenhouse => format!("https://boards.greenhouse.io/{board}/jobs/{native}"),
            Site::Lever => format!("https://jobs.lever.co/{board}/{native}"),
            Site::Ashby => format!("https://jobs.ashbyhq.com/{board}/{native}"),
        };
        Posting {
            id: Posting::make_id(site, board, native),
            site,
            board: board.into(),
            native_id: native.into(),
            job_url,
            job_url_direct: None,
            apply_url: None,
            title: title.into(),
            company: company.into(),
            location: "Bengaluru, India".into(),
            is_remote: false,
            workplace: Workplace::OnSite,
            job_type: Some(JobType::FullTime),
            min_amount: None,
            max_amount: None,
            currency: None,
            interval: None,
            salary_source: None,
            description: String::new(),
            date_posted: None,
        }
    }

    /// The same job as two boards spell its place (the second board's title in sentence
    /// case): one posting; the same title in another city stays apart.
    #[test]
    fn places_spelled_two_ways_are_one_place() {
        for (a, b) in [
            ("San Francisco, CA (Hybrid)", "San Francisco, California"),
            ("Dublin, IE", "Dublin, Ireland"),
            ("Bengaluru, India (Hybrid)", "Bangalore, Karnataka, India"),
        ] {
            let mut first = posting(
                Site::Greenhouse,
                "acme",
                "1",
                "Senior Backend Engineer",
                "Acme",
            );
            first.location = a.into();
            let mut second = posting(
                Site::Lever,
                "acme",
                "x-1",
                "Senior backend engineer",
                "Acme",
            );
            second.location = b.into();
            let deduped = dedup(vec![first, second]);
            assert_eq!(deduped.kept.len(), 1, "{a} ≡ {b}");
        }
        let mut sf = posting(Site::Greenhouse, "acme", "1", "Backend Engineer", "Acme");
        sf.location = "San Francisco, CA".into();
        let mut dublin = posting(Site::Lever, "acme", "x-1", "Backend Engineer", "Acme");
        dublin.location = "Dublin, Ireland".into();
        assert_eq!(dedup(vec![sf, dublin]).kept.len(), 2);
    }

    #[test]
    fn urls_are_canonical() {
        for (a, b) in [
            (
                "https://job-boards.greenhouse.io/Acme/jobs/127817?gh_src=abc&utm_source=x#app",
                "https://boards.greenhouse.io/acme/jobs/127817",
            ),
            (
                "https://jobs.eu.lever.co/acme/5ac2/apply?lever-source=LinkedIn",
                "https://jobs.lever.co/acme/5ac2/",
            ),
            (
                "http://WWW.Acme.com/careers/?gh_jid=123&ref=hn&trk=1&refId=9",
                "https://acme.com/careers?gh_jid=123",
            ),
            (
                "https://jobs.ashbyhq.com/acme/4F1C/application",
                "https://jobs.ashbyhq.com/acme/4f1c",
            ),
        ] {
            assert_eq!(canonical_url(a), canonical_url(b), "{a} ≡ {b}");
            assert!(canonical_url(a).is_some());
        }
        assert_eq!(
            canonical_url("https://acme.com/careers?gh_jid=123&src=x").as_deref(),
            Some("acme.com/careers?gh_jid=123")
        );
        // Paths off the boards keep their case; id-bearing params stay.
        assert_ne!(
            canonical_url("https://acme.com/Jobs/A"),
            canonical_url("https://acme.com/jobs/a")
        );
        assert_ne!(
            canonical_url("https://acme.com/careers?gh_jid=1"),
            canonical_url("https://acme.com/careers?gh_jid=2")
        );
        assert_eq!(canonical_url("mailto:jobs@acme.com"), None);
        assert_eq!(canonical_url("not a url"), None);
    }

    #[test]
    fn names_are_normalised() {
        assert_eq!(company_key("Vault-Tec, Inc."), "vaulttec");
        assert_eq!(company_key("Acme Private Limited"), "acme");
        assert_eq!(company_key("ACME Pvt. Ltd."), "acme");
        assert_eq!(company_key("Stripe"), "stripe");
        assert_eq!(company_key("Co"), "co");
        assert_eq!(company_key("AT&T"), "att");
        assert_eq!(
            title_key("Sr. Software Eng (Remote) - Req 12345"),
            "senior software engineer req"
        );
        assert_eq!(title_key("SWE II [R-104233] #4411"), "software engineer ii");
        assert_eq!(title_key("Backend Engineer 2"), "backend engineer 2");
        assert_eq!(
            location_key("Remote (India)"),
            location_key("India, remote")
        );
        assert_eq!(location_key("Bengaluru"), location_key("Bangalore"));
        assert_eq!(
            words("C++ / C# dev, Node.js"),
            ["c++", "c#", "dev", "node", "js"]
        );
        assert_eq!(words("backend+frontend"), ["backend", "frontend"]);
    }

    #[test]
    fn the_three_rules_in_turn() {
        let a = posting(Site::Greenhouse, "acme", "1", "Backend Engineer", "Acme");
        // Rule 1: the same posting twice.
        let a_again = a.clone();
        // Rule 2: another board's copy pointing at the same Greenhouse page.
        let mut b = posting(Site::Lever, "acme", "u-1", "Platform", "Other name");
        b.job_url_direct = Some("https://job-boards.greenhouse.io/acme/jobs/1?gh_src=lever".into());
        // Rule 3: same company (another legal form), a near title, the same city.
        let c = posting(
            Site::Ashby,
            "acme",
            "x-9",
            "Sr Backend Engineer",
            "ACME Inc.",
        );
        let d = posting(
            Site::Ashby,
            "acme",
            "x-10",
            "Senior Backend Engineer",
            "Acme, Inc",
        );
        // Not duplicates: another city; another company; another job.
        let mut e = posting(
            Site::Ashby,
            "acme",
            "x-11",
            "Senior Backend Engineer",
            "Acme",
        );
        e.location = "Berlin, Germany".into();
        let f = posting(
            Site::Lever,
            "globex",
            "g-1",
            "Senior Backend Engineer",
            "Globex",
        );
        let g = posting(Site::Lever, "acme", "g-2", "Data Scientist", "Acme");
        let out = dedup(vec![
            a.clone(),
            a_again,
            b.clone(),
            c.clone(),
            d.clone(),
            e.clone(),
            f.clone(),
            g.clone(),
        ]);
        let kept: Vec<&str> = out.kept.iter().map(|p| p.id.as_str()).collect();
        // "as-acme-x-10" sorts before "as-acme-x-9": d is kept, c is its duplicate.
        assert_eq!(kept, [&d.id, &e.id, &a.id, &g.id, &f.id]);
        let dups: Vec<(&str, &str, Rule)> = out
            .duplicates
            .iter()
            .map(|d| (d.id.as_str(), d.kept_id.as_str(), d.rule))
            .collect();
        assert!(
            dups.contains(&(a.id.as_str(), a.id.as_str(), Rule::NativeId)),
            "{dups:?}"
        );
        assert!(
            dups.contains(&(b.id.as_str(), a.id.as_str(), Rule::CanonicalUrl)),
            "{dups:?}"
        );
        assert!(
            dups.contains(&(c.id.as_str(), d.id.as_str(), Rule::CompanyTitleLocation)),
            "{dups:?}"
        );
        assert_eq!(dups.len(), 3);
    }

    #[test]
    fn the_kept_one_does_not_depend_on_the_order() {
        let mut gh = posting(Site::Greenhouse, "acme", "77", "Backend Engineer", "Acme");
        gh.salary_source = Some(SalarySource::Description);
        let mut lv = posting(Site::Lever, "acme", "zz", "Backend Engineer", "Acme");
        lv.salary_source = Some(SalarySource::DirectData);
        lv.location = "Bangalore".into();
        let ash = posting(Site::Ashby, "acme", "aa", "Backend Engineer", "Acme");
        let inputs = [gh.clone(), lv.clone(), ash.clone()];
        let mut seen = HashSet::new();
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
            let out = dedup(order.iter().map(|&i| inputs[i].clone()).collect());
            assert_eq!(out.kept.len(), 1);
            seen.insert(out.kept[0].id.clone());
            assert!(out
                .duplicates
                .iter()
                .all(|d| d.kept_id == lv.id && d.rule == Rule::CompanyTitleLocation));
        }
        // The structured salary wins, whatever came first.
        assert_eq!(seen, HashSet::from([lv.id.clone()]));
        // Without salaries the smallest id is kept.
        let out = dedup(vec![
            posting(Site::Lever, "acme", "b", "Backend Engineer", "Acme"),
            posting(Site::Ashby, "acme", "c", "Backend Engineer", "Acme"),
        ]);
        assert_eq!(out.kept[0].id, "as-acme-c");
    }

    #[test]
    fn near_titles_of_other_jobs_are_kept_apart() {
        let pairs = [
            ("Software Engineer II", "Software Engineer III"),
            ("Software Engineer 1", "Software Engineer 2"),
            ("Senior Software Engineer", "Staff Software Engineer"),
            ("Backend Engineer", "Frontend Engineer"),
            ("Data Engineer", "Data Scientist"),
            ("Product Manager", "Project Manager"),
        ];
        for (a, b) in pairs {
            let out = dedup(vec![
                posting(Site::Lever, "acme", "1", a, "Acme"),
                posting(Site::Ashby, "acme", "2", b, "Acme"),
            ]);
            assert_eq!(out.kept.len(), 2, "{a} / {b}: {:?}", out.duplicates);
        }
        // A near spelling of the same job is one job.
        let out = dedup(vec![
            posting(
                Site::Lever,
                "acme",
                "1",
                "Sr. Software Engineer, Backend",
                "Acme",
            ),
            posting(
                Site::Ashby,
                "acme",
                "2",
                "Senior Software Engineer - Backend",
                "Acme",
            ),
            posting(
                Site::Ashby,
                "acme",
                "3",
                "Senior Software Engineer, Back-end",
                "Acme",
            ),
        ]);
        assert_eq!(out.kept.len(), 1, "{:?}", out.duplicates);
    }

    #[test]
    fn remote_copies_and_similar_titles() {
        let mut a = posting(
            Site::Lever,
            "acme",
            "1",
            "Site Reliability Engineer",
            "Acme",
        );
        a.is_remote = true;
        a.location = "Remote - US".into();
        let mut b = posting(
            Site::Ashby,
            "acme",
            "2",
            "Site Reliability Engineer (Remote)",
            "Acme",
        );
        b.is_remote = true;
        b.location = "Anywhere".into();
        let c = posting(
            Site::Ashby,
            "acme",
            "3",
            "Site Reliability Engineering Manager",
            "Acme",
        );
        let out = dedup(vec![a, b, c]);
        assert_eq!(out.kept.len(), 2, "{:?}", out.duplicates);
        assert_eq!(out.duplicates[0].rule, Rule::CompanyTitleLocation);
    }
}
