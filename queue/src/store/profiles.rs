//! Profiles of the apply workload and each user's applications ledger (SPEC §7.3).
//!
//! [`Profiles`] keeps what a user gave: the profile (JSON), the résumé, and session cookies
//! per site, sealed above the store ([`crate::seal`]): the store never holds a cookie value.
//!
//! [`Applications`] is the ledger and its caps: backends implement a few primitives (a
//! read of the user's version and counts, an insert that is a compare-and-set on that
//! version, a compare-and-set on an entry's outcome); the claim, the settle and the release
//! are written once over them, with the decisions of [`crate::application`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{StoreError, StoreResult};
use crate::application::{self, Application, ApplicationCounts, Caps, Claim, Outcome, Tally};
use crate::job::{InvalidJob, JobId};
use crate::profile::{Profile, Resume, ResumeInfo, SealedSession, SessionInfo, StoredProfile};

/// The most entries one page of the ledger holds.
pub const MAX_APPLICATIONS_PAGE: usize = 1000;

/// Where profiles, résumés and sealed sessions are kept: per user id.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - `put_profile` replaces the profile and keeps its first `created_at`;
/// - a résumé and a session are replaced whole; `sessions` lists sites ascending, with
///   the time each was stored, and no blob;
/// - `delete_profile` removes the profile, its résumé and its sessions at once (the
///   applications ledger stays: it records what was submitted in the user's name, and keeps
///   a profile made again from applying twice);
/// - a résumé or a session may be stored for a user without a profile (the API refuses it:
///   `404`), and is removed with a later `delete_profile`.
#[async_trait]
pub trait Profiles: Send + Sync {
    /// Stores `profile` (validated) as `user_id`'s at `now`; `true` when it is new.
    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Profile,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    async fn profile(&self, user_id: &str) -> StoreResult<Option<StoredProfile>>;

    /// Removes the profile, its résumé and its sessions; `false` when there was no profile.
    async fn delete_profile(&self, user_id: &str) -> StoreResult<bool>;

    async fn put_resume(&self, user_id: &str, resume: &Resume) -> StoreResult<()>;

    async fn resume_file(&self, user_id: &str) -> StoreResult<Option<Resume>>;

    /// The résumé's metadata, without its bytes.
    async fn resume_info(&self, user_id: &str) -> StoreResult<Option<ResumeInfo>>;

    /// Stores (or replaces) a sealed session.
    async fn put_session(&self, session: &SealedSession) -> StoreResult<()>;

    async fn session(&self, user_id: &str, site: &str) -> StoreResult<Option<SealedSession>>;

    /// The user's sessions' sites and times, by site.
    async fn sessions(&self, user_id: &str) -> StoreResult<Vec<SessionInfo>>;

    /// `false` when there was none.
    async fn delete_session(&self, user_id: &str, site: &str) -> StoreResult<bool>;
}

/// What [`Applications::insert_application`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The entry is stored and the user's version is `expected + 1`.
    Inserted,
    /// The user's version is not the one expected: another claim came first.
    Moved,
    /// The posting is in the ledger already (nothing was written).
    Exists,
}

/// Compare-and-set rounds before a claim gives up as unavailable.
const CAS_TRIES: u32 = 200;

async fn back_off(lost: u32) {
    let cap = 1u64 << lost.min(4);
    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..=cap * 1000))).await;
}

fn refused(field: &'static str, message: String) -> StoreError {
    StoreError::Invalid(InvalidJob { field, message })
}

fn check_keys(user_id: &str, posting_key: &str) -> StoreResult<()> {
    crate::profile::check_user_id(user_id).map_err(|e| refused("user_id", e.message))?;
    application::check_posting_key(posting_key).map_err(|e| refused("posting_key", e.message))
}

/// The ledger of each user's applications, and the caps it enforces.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - one entry per (user, posting): a posting claimed once is [`Claim::Already`] to every
///   later claim, by any job, until released;
/// - however many claims of one user run at once, no IST day and no IST month ever counts
///   more entries than the caps of the claims that counted them: a claim reads the user's
///   version and counts, decides, and inserts only if the version is unchanged (each
///   insert bumps it), else reads again;
/// - the counts are of entries still `counted`, by the IST day and month of `claimed_at`:
///   settling as `manual` or `failed` gives the count back, `applied` and `unknown` keep it;
/// - `applications` pages by posting key, ascending, strictly after `after`.
#[async_trait]
pub trait Applications: Send + Sync {
    /// The entry of `posting_key` in `user_id`'s ledger.
    async fn application(
        &self,
        user_id: &str,
        posting_key: &str,
    ) -> StoreResult<Option<Application>>;

    /// The user's ledger version (0 before the first claim), then the counted entries
    /// claimed in `day` and in `month` (each `[start, end)`). The version is read first (or
    /// in the same snapshot), so an insert the counts miss moves the version.
    async fn application_tally(
        &self,
        user_id: &str,
        day: (DateTime<Utc>, DateTime<Utc>),
        month: (DateTime<Utc>, DateTime<Utc>),
    ) -> StoreResult<Tally>;

    /// Stores `entry` when the user's version is `expected` and its posting is not in the
    /// ledger, bumping the version, atomically.
    async fn insert_application(&self, entry: &Application, expected: i64)
        -> StoreResult<Inserted>;

    /// Writes `entry`'s outcome, `counted` and `settled_at` when the stored entry's outcome
    /// is `expected`; `false` otherwise (or when there is none).
    async fn replace_application(
        &self,
        entry: &Application,
        expected: Outcome,
    ) -> StoreResult<bool>;

    /// Removes the entry when its outcome is `expected`; `false` otherwise.
    async fn remove_application(
        &self,
        user_id: &str,
        posting_key: &str,
        expected: Outcome,
    ) -> StoreResult<bool>;

    /// Up to `limit` (at most [`MAX_APPLICATIONS_PAGE`]) entries of the user's ledger by
    /// posting key, ascending, after `after` when given.
    async fn applications(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Application>>;

    /// Claims `posting_key` for `job_id` under `caps` at `now`: [`Claim::Already`] when it
    /// is in the ledger, else [`Claim::Capped`] when the IST day's or month's count has
    /// reached its cap, else the entry is stored (`claimed`, counted) and [`Claim::Claimed`].
    async fn claim_application(
        &self,
        user_id: &str,
        posting_key: &str,
        job_id: JobId,
        caps: Caps,
        now: DateTime<Utc>,
    ) -> StoreResult<Claim> {
        check_keys(user_id, posting_key)?;
        let (day, month) = (application::ist_day(now), application::ist_month(now));
        let now = crate::job::from_millis(crate::job::to_millis(now));
        for lost in 0..CAS_TRIES {
            if let Some(entry) = self.application(user_id, posting_key).await? {
                return Ok(Claim::Already {
                    job_id: entry.job_id,
                    outcome: entry.outcome,
                    at: entry.claimed_at,
                });
            }
            let tally = self.application_tally(user_id, day, month).await?;
            if let Some((which, until)) = application::capped(tally.counts, caps, now) {
                return Ok(Claim::Capped { which, until });
            }
            let entry = Application {
                user_id: user_id.to_string(),
                posting_key: posting_key.to_string(),
                job_id,
                outcome: Outcome::Claimed,
                counted: true,
                claimed_at: now,
                settled_at: None,
            };
            match self.insert_application(&entry, tally.version).await? {
                Inserted::Inserted => return Ok(Claim::Claimed),
                // Read again: the entry is there now.
                Inserted::Exists => continue,
                Inserted::Moved => back_off(lost).await,
            }
        }
        Err(StoreError::Unavailable(format!(
            "applications of `{user_id}`: too many concurrent claims"
        )))
    }

    /// Settles an entry as `outcome` at `now` (see [`Outcome::can_settle`]); `manual` and
    /// `failed` give its count back. Answers the entry as stored now; `None` when the posting
    /// is not in the ledger. Settling again as the same outcome changes nothing.
    async fn settle_application(
        &self,
        user_id: &str,
        posting_key: &str,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Application>> {
        check_keys(user_id, posting_key)?;
        if outcome == Outcome::Claimed {
            return Err(refused(
                "outcome",
                "an entry is settled as applied, manual, failed or unknown, never claimed".into(),
            ));
        }
        for lost in 0..CAS_TRIES {
            let Some(stored) = self.application(user_id, posting_key).await? else {
                return Ok(None);
            };
            if stored.outcome == outcome {
                return Ok(Some(stored));
            }
            if !stored.outcome.can_settle(outcome) {
                return Err(refused(
                    "outcome",
                    format!(
                        "posting `{posting_key}` of `{user_id}` is {}: it cannot become {}",
                        stored.outcome.as_str(),
                        outcome.as_str()
                    ),
                ));
            }
            let next = Application {
                outcome,
                counted: stored.counted && outcome.counts(),
                settled_at: Some(crate::job::from_millis(crate::job::to_millis(now))),
                ..stored.clone()
            };
            if self.replace_application(&next, stored.outcome).await? {
                return Ok(Some(next));
            }
            back_off(lost).await;
        }
        Err(StoreError::Unavailable(format!(
            "applications of `{user_id}`: too many concurrent settles"
        )))
    }

    /// Removes an entry that was never submitted (`claimed` or `failed`), so a later job
    /// may claim the posting again; `false` when there is none, or it was (or may have been)
    /// submitted: `applied`, `manual` and `unknown` entries stay.
    async fn release_application(&self, user_id: &str, posting_key: &str) -> StoreResult<bool> {
        check_keys(user_id, posting_key)?;
        for lost in 0..CAS_TRIES {
            let Some(stored) = self.application(user_id, posting_key).await? else {
                return Ok(false);
            };
            if !stored.outcome.can_release() {
                return Ok(false);
            }
            if self
                .remove_application(user_id, posting_key, stored.outcome)
                .await?
            {
                return Ok(true);
            }
            back_off(lost).await;
        }
        Err(StoreError::Unavailable(format!(
            "applications of `{user_id}`: too many concurrent releases"
        )))
    }

    /// The user's counted applications in the IST day and month holding `now`.
    async fn application_counts(
        &self,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<ApplicationCounts> {
        let tally = self
            .application_tally(
                user_id,
                application::ist_day(now),
                application::ist_month(now),
            )
            .await?;
        Ok(tally.counts)
    }
}

/// A stored outcome back as the enum.
pub(crate) fn stored_outcome(outcome: &str) -> StoreResult<Outcome> {
    Outcome::parse(outcome)
        .ok_or_else(|| StoreError::Backend(format!("unknown application outcome `{outcome}`")))
}

/// A stored count back (counts never exceed `u32`).
pub(crate) fn stored_count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
