//! The generated world the GitHub server answers from: repositories, users, contributors and
//! commits, all derived from a seed by hashing, so a run is reproducible and the world costs no
//! memory however large it is. Realistic in the ways a client must cope with: bots, noreply
//! commit addresses, users without a public e-mail, the same people across many repositories,
//! archived repositories and forks.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

/// How big the world is and when "now" is (pushed dates are spread over the year before it).
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub seed: u64,
    pub repos: u64,
    pub users: u64,
    pub now: DateTime<Utc>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        WorldConfig {
            seed: 1,
            repos: 5_000,
            users: 20_000,
            now: Utc::now(),
        }
    }
}

const LANGUAGES: [&str; 8] = [
    "Python",
    "Rust",
    "Go",
    "JavaScript",
    "TypeScript",
    "Java",
    "C++",
    "Ruby",
];
const ADJECTIVES: [&str; 16] = [
    "quiet", "brave", "rapid", "amber", "lucid", "mellow", "nimble", "proud", "silver", "sunny",
    "tidy", "vivid", "witty", "young", "zesty", "gentle",
];
const NOUNS: [&str; 16] = [
    "otter", "falcon", "maple", "comet", "harbor", "lantern", "meadow", "pepper", "quartz",
    "river", "saddle", "thistle", "walrus", "willow", "yarrow", "zephyr",
];
const THINGS: [&str; 12] = [
    "parser",
    "scheduler",
    "toolkit",
    "client",
    "server",
    "linter",
    "bundler",
    "orm",
    "cache",
    "router",
    "sdk",
    "cli",
];
const DOMAINS: [&str; 10] = [
    "fastmail.test",
    "proton.test",
    "mailbox.test",
    "posteo.test",
    "acme-corp.test",
    "initech.test",
    "hooli.test",
    "umbrella.test",
    "uni-example.test",
    "devmail.test",
];
const CITIES: [&str; 8] = [
    "Berlin",
    "Bengaluru",
    "São Paulo",
    "Toronto",
    "Lagos",
    "Kraków",
    "Osaka",
    "Austin",
];
/// Bots that show up among contributors, as GitHub names them.
pub const BOTS: [&str; 3] = ["dependabot[bot]", "github-actions[bot]", "renovate[bot]"];

/// splitmix64: a stable mix (never `DefaultHasher`, whose algorithm may change).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic draw for (`seed`, `what`, `a`, `b`).
pub(crate) fn draw(seed: u64, what: u64, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed ^ what.wrapping_mul(0x100_0000_01B3)) ^ a) ^ b)
}

pub(crate) fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

pub(crate) fn pick<T: Copy>(list: &[T], x: u64) -> T {
    list[(x % list.len() as u64) as usize]
}

/// A repository as search and the repo routes show it.
#[derive(Debug, Clone)]
pub struct Repo {
    pub index: u64,
    pub id: u64,
    pub owner: u64,
    pub name: String,
    pub language: &'static str,
    pub stars: u64,
    pub forks: u64,
    pub pushed_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub archived: bool,
    pub fork: bool,
    pub topics: Vec<&'static str>,
}

/// A user profile.
#[derive(Debug, Clone)]
pub struct User {
    pub index: u64,
    pub login: String,
    pub name: Option<String>,
    /// The public profile e-mail (`null` for most users on GitHub).
    pub email: Option<String>,
    /// The address the user commits with: a real one or a noreply one.
    pub commit_email: String,
    pub company: Option<String>,
    pub location: Option<&'static str>,
    pub followers: u64,
    pub created_at: DateTime<Utc>,
    /// Days before `now` of the user's latest commit.
    pub active_days_ago: u64,
}

/// A contributor row of `/repos/{o}/{r}/contributors`.
#[derive(Debug, Clone)]
pub enum Contributor {
    User {
        user: u64,
        contributions: u64,
    },
    Bot {
        login: &'static str,
        contributions: u64,
    },
    Anonymous {
        name: String,
        email: String,
        contributions: u64,
    },
}

pub struct World {
    pub config: WorldConfig,
}

impl World {
    pub fn new(config: WorldConfig) -> World {
        World { config }
    }

    fn d(&self, what: u64, a: u64, b: u64) -> u64 {
        draw(self.config.seed, what, a, b)
    }

    pub fn repo(&self, index: u64) -> Option<Repo> {
        if index >= self.config.repos {
            return None;
        }
        let d = |what| self.d(what, index, 0);
        let owner = d(1) % self.config.users.max(1);
        let name = format!(
            "{}-{}-{index}",
            pick(&ADJECTIVES, d(2)),
            pick(&THINGS, d(3))
        );
        // Heavy-tailed stars: most repositories have a few, some have thousands.
        let stars = (unit(d(4)).powi(6) * 60_000.0) as u64;
        let days_ago = (unit(d(5)).powi(2) * 400.0) as i64;
        let pushed_at =
            self.config.now - Duration::days(days_ago) - Duration::seconds((d(6) % 86_400) as i64);
        let created_at = pushed_at - Duration::days(30 + (d(7) % 3000) as i64);
        let topics = (0..d(8) % 3).map(|t| pick(&THINGS, d(9 + t))).collect();
        Some(Repo {
            index,
            id: 100_000 + index,
            owner,
            name,
            language: pick(&LANGUAGES, d(12)),
            stars,
            forks: stars / (3 + d(13) % 10),
            pushed_at,
            created_at,
            archived: d(14) % 100 < 5,
            fork: d(15) % 100 < 8,
            topics,
        })
    }

    /// The repository named `owner/name`, if it exists (the index is the name's last part).
    pub fn repo_named(&self, owner: &str, name: &str) -> Option<Repo> {
        let index: u64 = name.rsplit('-').next()?.parse().ok()?;
        let repo = self.repo(index)?;
        (repo.name == name && self.login(repo.owner) == owner).then_some(repo)
    }

    pub fn login(&self, user: u64) -> String {
        format!(
            "{}-{}-{user}",
            pick(&ADJECTIVES, self.d(20, user, 0)),
            pick(&NOUNS, self.d(21, user, 0))
        )
    }

    pub fn user(&self, index: u64) -> Option<User> {
        if index >= self.config.users {
            return None;
        }
        let d = |what| self.d(what, index, 0);
        let login = self.login(index);
        let first = pick(&NOUNS, d(22));
        let last = pick(&ADJECTIVES, d(23));
        let name = (d(24) % 100 < 80).then(|| format!("{} {}", capital(first), capital(last)));
        let domain = pick(&DOMAINS, d(25));
        // About 45% show a public e-mail; of the others, some commit with a real address
        // (found through their commits), the rest only with a noreply one.
        let email = (d(26) % 100 < 45).then(|| format!("{login}@{domain}"));
        let noreply = format!("{}+{login}@users.noreply.github.com", 1000 + index);
        let commit_email = match &email {
            Some(email) if d(27) % 2 == 0 => email.clone(),
            Some(_) => noreply,
            None if d(27) % 100 < 40 => format!("{login}@{domain}"),
            None => noreply,
        };
        Some(User {
            index,
            login,
            name,
            email,
            commit_email,
            company: (d(28) % 3 == 0).then(|| format!("@{}", pick(&NOUNS, d(29)))),
            location: (d(30) % 4 != 0).then(|| pick(&CITIES, d(31))),
            followers: (unit(d(32)).powi(4) * 5_000.0) as u64,
            created_at: self.config.now - Duration::days(200 + (d(33) % 4000) as i64),
            active_days_ago: (unit(d(34)).powi(2) * 365.0) as u64,
        })
    }

    /// The user whose login is `login`.
    pub fn user_named(&self, login: &str) -> Option<User> {
        let index: u64 = login.rsplit('-').next()?.parse().ok()?;
        let user = self.user(index)?;
        (user.login == login).then_some(user)
    }

    /// A repository's contributors, most contributions first: its owner, people drawn from
    /// the whole world (so the same person contributes to many repositories), now and then a
    /// bot, and anonymous rows (shown only with `anon=1`).
    pub fn contributors(&self, repo: &Repo) -> Vec<Contributor> {
        let d = |what, b| self.d(what, repo.index, b);
        let people = 1 + d(40, 0) % 12;
        let mut rows = vec![Contributor::User {
            user: repo.owner,
            contributions: 200 + d(41, 0) % 800,
        }];
        for k in 0..people {
            let user = d(42, k) % self.config.users.max(1);
            if rows
                .iter()
                .any(|r| matches!(r, Contributor::User { user: u, .. } if *u == user))
            {
                continue;
            }
            rows.push(Contributor::User {
                user,
                contributions: 1 + d(43, k) % 300,
            });
        }
        if d(44, 0) % 3 == 0 {
            rows.push(Contributor::Bot {
                login: pick(&BOTS, d(45, 0)),
                contributions: 5 + d(46, 0) % 80,
            });
        }
        if d(47, 0) % 4 == 0 {
            let name = capital(pick(&NOUNS, d(48, 0)));
            rows.push(Contributor::Anonymous {
                email: format!("{}@{}", name.to_lowercase(), pick(&DOMAINS, d(49, 0))),
                name,
                contributions: 1 + d(50, 0) % 5,
            });
        }
        rows.sort_by_key(|r| std::cmp::Reverse(contributions(r)));
        rows
    }

    /// `user`'s commits to `repo` (newest first), if the user contributes to it: one every
    /// few days back from their latest activity.
    pub fn commits(&self, repo: &Repo, user: &User) -> Vec<Value> {
        let contributes = self
            .contributors(repo)
            .iter()
            .any(|r| matches!(r, Contributor::User { user: u, .. } if *u == user.index));
        if !contributes {
            return Vec::new();
        }
        let n = 1 + self.d(60, repo.index, user.index) % 5;
        (0..n)
            .map(|k| {
                let days = user.active_days_ago + k * (1 + self.d(61, repo.index, k) % 9);
                let date = self.config.now - Duration::days(days as i64);
                let sha = format!(
                    "{:016x}{:016x}{:08x}",
                    self.d(62, repo.index, user.index),
                    self.d(63, k, user.index),
                    self.d(64, repo.index, k) as u32
                );
                let subject = format!(
                    "{} the {} {}",
                    pick(&["Fix", "Add", "Refactor", "Speed up", "Document"], self.d(65, k, user.index)),
                    pick(&ADJECTIVES, self.d(66, k, repo.index)),
                    pick(&THINGS, self.d(67, k, repo.index))
                );
                json!({
                    "sha": sha,
                    "html_url": format!("https://github.com/{}/{}/commit/{sha}", self.login(repo.owner), repo.name),
                    "commit": {
                        "author": {"name": user.name.clone().unwrap_or_else(|| user.login.clone()), "email": user.commit_email, "date": rfc3339(date)},
                        "committer": {"name": "GitHub", "email": "noreply@github.com", "date": rfc3339(date)},
                        "message": subject,
                    },
                    "author": {"login": user.login, "id": 1000 + user.index, "type": "User"},
                    "committer": {"login": "web-flow", "id": 19_864_447, "type": "User"},
                })
            })
            .collect()
    }
}

pub fn contributions(row: &Contributor) -> u64 {
    match row {
        Contributor::User { contributions, .. }
        | Contributor::Bot { contributions, .. }
        | Contributor::Anonymous { contributions, .. } => *contributions,
    }
}

pub(crate) fn capital(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(WorldConfig {
            seed: 7,
            repos: 500,
            users: 2_000,
            now: DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now()),
        })
    }

    #[test]
    fn the_same_seed_gives_the_same_world() {
        let (a, b) = (world(), world());
        for i in [0, 17, 499] {
            let (ra, rb) = (a.repo(i).map(|r| r.name), b.repo(i).map(|r| r.name));
            assert_eq!(ra, rb);
        }
        assert_eq!(a.user(5).map(|u| u.email), b.user(5).map(|u| u.email));
        assert!(a.repo(500).is_none(), "past the world's end");
    }

    #[test]
    fn names_resolve_back_to_what_they_name() {
        let w = world();
        let repo = w.repo(42).expect("repo 42");
        let owner = w.login(repo.owner);
        assert_eq!(w.repo_named(&owner, &repo.name).map(|r| r.index), Some(42));
        assert!(w.repo_named("someone-else-1", &repo.name).is_none());
        let user = w.user(9).expect("user 9");
        assert_eq!(w.user_named(&user.login).map(|u| u.index), Some(9));
        assert!(w.user_named("nobody").is_none());
    }

    #[test]
    fn the_world_has_what_a_client_must_filter() {
        let w = world();
        let users: Vec<User> = (0..2_000).filter_map(|i| w.user(i)).collect();
        let public = users.iter().filter(|u| u.email.is_some()).count();
        assert!(
            (700..1100).contains(&public),
            "about 45% public e-mails: {public}"
        );
        let noreply = users
            .iter()
            .filter(|u| u.commit_email.ends_with("@users.noreply.github.com"))
            .count();
        assert!(noreply > 300, "noreply commit addresses: {noreply}");
        let rows: Vec<Contributor> = (0..500)
            .filter_map(|i| w.repo(i))
            .flat_map(|r| w.contributors(&r))
            .collect();
        assert!(rows.iter().any(|r| matches!(r, Contributor::Bot { .. })));
        assert!(rows
            .iter()
            .any(|r| matches!(r, Contributor::Anonymous { .. })));
        let mut people: Vec<u64> = rows
            .iter()
            .filter_map(|r| match r {
                Contributor::User { user, .. } => Some(*user),
                _ => None,
            })
            .collect();
        let all = people.len();
        people.sort();
        people.dedup();
        assert!(
            people.len() < all,
            "people contribute to several repositories"
        );
    }
}
