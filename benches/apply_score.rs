//! Issue 16's CPU measurement: the pure core of `apply` over 10,000 postings
//! (`DROVER_BENCH_POSTINGS`), generated deterministically as the three boards' JSON:
//! - **normalise**: each board item (a `serde_json::Value`, as the clients hold them) into
//!   its typed wire struct and then a `Posting` (HTML stripped, entities decoded, salary and
//!   job type read);
//! - **dedup**: the three rules over all of them (about one in eight is a copy of another:
//!   the same job on a second board, the same page behind another URL);
//! - **score**: every normalised posting against one profile, repeated until a second has
//!   passed (target ≥ 50,000 postings/s).
//!
//! ```sh
//! cargo bench --bench apply_score
//! DROVER_BENCH_POSTINGS=50000 cargo bench --bench apply_score
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use drover_workloads::apply::dedup::dedup;
use drover_workloads::apply::posting::{ashby, greenhouse, lever, Posting};
use drover_workloads::apply::score::{Band, Criteria, Scorer};
use serde_json::{json, Value};

const TITLES: [&str; 12] = [
    "Backend Engineer",
    "Software Engineer",
    "Site Reliability Engineer",
    "Data Engineer",
    "Frontend Engineer",
    "Machine Learning Engineer",
    "Product Manager",
    "Engineering Manager",
    "Rust Developer",
    "Platform Engineer",
    "Security Engineer",
    "Data Scientist",
];
const LEVELS: [&str; 6] = ["", "Senior ", "Sr. ", "Staff ", "Junior ", "Principal "];
const LOCATIONS: [&str; 8] = [
    "Bengaluru, India",
    "Bangalore, Karnataka, India",
    "Remote - India",
    "San Francisco, CA",
    "New York, NY",
    "London, UK",
    "Berlin, Germany",
    "Remote",
];
const FILLER: &str = "We are a fast-growing team building infrastructure that millions of people \
    rely on every day. You will design, build and operate services, work closely with product \
    and design, review code, mentor others and help us raise the bar for quality. We value \
    clear writing, ownership, and kindness. ";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A description of about 2 KB, with a salary and years of experience most of the time.
fn description(rng: &mut fastrand::Rng) -> String {
    let mut text = String::with_capacity(2_400);
    for _ in 0..rng.usize(4..9) {
        text.push_str(FILLER);
    }
    match rng.u8(0..4) {
        0 => text.push_str(&format!(
            "The base salary range is ${},000 - ${},000 per year. ",
            rng.u32(90..160),
            rng.u32(160..260)
        )),
        1 => text.push_str(&format!(
            "CTC ₹{},00,000 - ₹{},00,000. ",
            rng.u32(15..40),
            rng.u32(40..80)
        )),
        2 => text.push_str(&format!(
            "Pay: ${}k–${}k + equity. ",
            rng.u32(100..150),
            rng.u32(150..220)
        )),
        _ => {}
    }
    if rng.bool() {
        text.push_str(&format!(
            "You have {}+ years of experience with Rust or Go. ",
            rng.u32(1..9)
        ));
    }
    text
}

struct Job {
    company: usize,
    title: String,
    location: &'static str,
    description: String,
}

/// One board item of `site` (0 Greenhouse, 1 Lever, 2 Ashby) for a job.
fn board_item(site: usize, company: &str, n: usize, job: &Job, rng: &mut fastrand::Rng) -> Value {
    match site {
        0 => json!({
            "id": 4_000_000 + n,
            "internal_job_id": 9_000_000 + n,
            "title": job.title,
            "updated_at": "2026-11-14T10:55:28-05:00",
            "location": { "name": job.location },
            "absolute_url": format!("https://job-boards.greenhouse.io/{company}/jobs/{}", 4_000_000 + n),
            "metadata": [{ "id": 1, "name": "Employment Type", "value": "Full-time", "value_type": "single_select" }],
            "content": format!("&lt;p&gt;{}&lt;/p&gt;&lt;ul&gt;&lt;li&gt;Rust&lt;/li&gt;&lt;li&gt;Kafka &amp;amp; Postgres&lt;/li&gt;&lt;/ul&gt;",
                job.description.replace('&', "&amp;")),
            "departments": [{ "id": 1, "name": "Engineering", "parent_id": null, "child_ids": [] }],
            "offices": [{ "id": 2, "name": job.location, "location": job.location, "parent_id": null, "child_ids": [] }]
        }),
        1 => {
            let id = format!(
                "{:08x}-0000-4000-8000-{:012x}",
                n,
                rng.u64(..) & 0xffff_ffff_ffff
            );
            json!({
                "id": id,
                "text": job.title,
                "categories": { "location": job.location, "commitment": "Full-time", "team": "Engineering" },
                "workplaceType": if job.location.contains("Remote") { "remote" } else { "hybrid" },
                "descriptionPlain": job.description,
                "description": format!("<div>{}</div>", job.description),
                "lists": [{ "text": "Requirements", "content": "<li>Rust</li><li>Kafka</li>" }],
                "salaryRange": if rng.bool() { json!({ "currency": "USD", "interval": "per-year-salary", "min": 150000, "max": 190000 }) } else { Value::Null },
                "hostedUrl": format!("https://jobs.lever.co/{company}/{id}"),
                "applyUrl": format!("https://jobs.lever.co/{company}/{id}/apply"),
                "createdAt": 1_763_000_000_000_i64
            })
        }
        _ => {
            let id = format!(
                "{:08x}-aaaa-4000-8000-{:012x}",
                n,
                rng.u64(..) & 0xffff_ffff_ffff
            );
            json!({
                "id": id,
                "title": job.title,
                "employmentType": "FullTime",
                "location": job.location,
                "isRemote": job.location.contains("Remote"),
                "workplaceType": if job.location.contains("Remote") { "Remote" } else { "OnSite" },
                "publishedAt": "2026-11-14T18:22:10.123+00:00",
                "isListed": true,
                "jobUrl": format!("https://jobs.ashbyhq.com/{company}/{id}"),
                "applyUrl": format!("https://jobs.ashbyhq.com/{company}/{id}/application"),
                "descriptionHtml": format!("<p>{}</p>", job.description),
                "descriptionPlain": job.description,
                "compensation": { "summaryComponents": [
                    { "compensationType": "Salary", "interval": "1 YEAR", "currencyCode": "USD", "minValue": 140000, "maxValue": 210000 } ] }
            })
        }
    }
}

/// `count` board items, deterministic: (site, board, company display name, item).
fn generate(count: usize) -> Vec<(usize, String, String, Value)> {
    let mut rng = fastrand::Rng::with_seed(16);
    let companies = (count / 50).max(4);
    let mut items = Vec::with_capacity(count);
    let mut jobs: Vec<Job> = Vec::new();
    let mut n = 0;
    while items.len() < count {
        // One in eight is the same job again, on another board of the same company.
        let repost = !jobs.is_empty() && rng.u8(0..8) == 0;
        let job = if repost {
            let j = &jobs[rng.usize(..jobs.len())];
            Job {
                company: j.company,
                title: j.title.replace("Senior ", "Sr. "),
                location: j.location,
                description: j.description.clone(),
            }
        } else {
            Job {
                company: rng.usize(..companies),
                title: format!(
                    "{}{}",
                    LEVELS[rng.usize(..LEVELS.len())],
                    TITLES[rng.usize(..TITLES.len())]
                ),
                location: LOCATIONS[rng.usize(..LOCATIONS.len())],
                description: description(&mut rng),
            }
        };
        let site = rng.usize(0..3);
        let board = format!("company{}", job.company);
        let display = format!("Company {} Inc.", job.company);
        items.push((
            site,
            board.clone(),
            display,
            board_item(site, &board, n, &job, &mut rng),
        ));
        if !repost {
            jobs.push(job);
        }
        n += 1;
    }
    items
}

fn normalise(items: &[(usize, String, String, Value)]) -> Vec<Posting> {
    items
        .iter()
        .map(|(site, board, display, item)| match site {
            0 => serde_json::from_value::<greenhouse::Job>(item.clone())
                .expect("greenhouse item")
                .into_posting(board, Some(display)),
            1 => serde_json::from_value::<lever::Job>(item.clone())
                .expect("lever item")
                .into_posting(board, Some(display)),
            _ => serde_json::from_value::<ashby::Job>(item.clone())
                .expect("ashby item")
                .into_posting(board, Some(display)),
        })
        .collect()
}

fn per_second(count: usize, took: Duration) -> String {
    format!("{:.0}", count as f64 / took.as_secs_f64())
}

fn main() {
    let count = env_usize("DROVER_BENCH_POSTINGS", 10_000);
    let items = generate(count);

    let started = Instant::now();
    let mut postings = normalise(&items);
    let normalise_took = started.elapsed();
    // The two strong rules: one posting in 50 read twice (a board listed twice in the
    // sources), and one in 50 seen again through an aggregator that links the same page
    // with tracking parameters on a www. host.
    let mut rng = fastrand::Rng::with_seed(17);
    for n in 0..count / 50 {
        let again = postings[rng.usize(..count)].clone();
        postings.push(again);
        let mut copy = postings[rng.usize(..count)].clone();
        copy.board = "aggregator".into();
        copy.native_id = format!("agg{n}");
        copy.id = format!("{}-aggregator-agg{n}", copy.site.prefix());
        copy.job_url =
            copy.job_url.replacen("https://", "https://www.", 1) + "?utm_source=agg&ref=x";
        copy.title = format!("{} (m/f/d)", copy.title);
        copy.company = "Aggregated".into();
        postings.push(copy);
    }
    let total = postings.len();

    let started = Instant::now();
    let deduped = dedup(black_box(postings.clone()));
    let dedup_took = started.elapsed();
    // Which ones are kept does not depend on the order they came in.
    let mut shuffled = postings.clone();
    rng.shuffle(&mut shuffled);
    let again = dedup(shuffled);
    let ids = |d: &drover_workloads::apply::dedup::Deduped| {
        d.kept.iter().map(|p| p.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&deduped),
        ids(&again),
        "dedup depends on the input order"
    );

    let criteria = Criteria {
        titles: vec![
            "Backend Engineer".into(),
            "Rust Developer".into(),
            "Platform Engineer".into(),
        ],
        exclude_titles: vec!["Staff".into(), "Principal".into(), "Manager".into()],
        companies: (0..20).map(|i| format!("Company {i}")).collect(),
        avoid_companies: vec!["Company 21".into()],
        locations: vec!["Bangalore".into(), "India".into()],
        remote_ok: true,
        job_types: vec!["fulltime".into()],
        min_salary: Some(150_000.0),
        salary_currency: None,
        experience_years: Some(4),
    };
    let started = Instant::now();
    let scorer = Scorer::new(&criteria).expect("criteria");
    let compile_took = started.elapsed();
    let mut bands = [0usize; 3];
    for p in &deduped.kept {
        match scorer.score(p).band {
            Band::Apply => bands[0] += 1,
            Band::Review => bands[1] += 1,
            Band::Skip => bands[2] += 1,
        }
    }
    // Score every normalised posting, over and over, for at least a second.
    let mut scored = 0usize;
    let mut total_points = 0u64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        for p in &postings[..count] {
            total_points += u64::from(black_box(scorer.score(black_box(p))).total);
        }
        scored += count;
    }
    let score_took = started.elapsed();
    black_box(total_points);

    let by_rule = |rule| deduped.duplicates.iter().filter(|d| d.rule == rule).count();
    use drover_workloads::apply::dedup::Rule;
    println!(
        "apply core, {count} postings generated (one in eight a repost on another board) + {} copies for the strong rules, description ~{} B",
        total - count,
        postings.iter().map(|p| p.description.len()).sum::<usize>() / postings.len().max(1)
    );
    println!();
    println!("| phase | postings | ms | postings/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| normalise (JSON value → posting) | {count} | {:.1} | {} |",
        normalise_took.as_secs_f64() * 1e3,
        per_second(count, normalise_took)
    );
    println!(
        "| dedup | {total} | {:.1} | {} |",
        dedup_took.as_secs_f64() * 1e3,
        per_second(total, dedup_took)
    );
    println!(
        "| score (criteria compiled once: {:.3} ms) | {scored} | {:.1} | {} |",
        compile_took.as_secs_f64() * 1e3,
        score_took.as_secs_f64() * 1e3,
        per_second(scored, score_took)
    );
    println!();
    println!(
        "dedup: kept {}, duplicates {} (native id {}, canonical URL {}, company+title+location {})",
        deduped.kept.len(),
        deduped.duplicates.len(),
        by_rule(Rule::NativeId),
        by_rule(Rule::CanonicalUrl),
        by_rule(Rule::CompanyTitleLocation),
    );
    println!(
        "bands of the kept: apply {}, review {}, skip {}",
        bands[0], bands[1], bands[2]
    );
}
