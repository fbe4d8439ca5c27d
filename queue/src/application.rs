//! The per-user applications ledger and its caps (SPEC §7.3), as data and pure decisions:
//! one entry per (user, posting) ever claimed, and the counts per Asia/Kolkata day and month
//! the caps are checked against. The store keeps them ([`crate::store::Applications`]);
//! what a claim decides is here, once.
//!
//! An entry's life: `claimed` (a job holds it; counted) → `applied` or `unknown` (a submit
//! happened or may have: counted, never claimed again) | `manual` (tier 2: the count is
//! given back) | `failed` (failed before submitting: the count is given back). A `failed` or
//! still-`claimed` entry can be released (removed), so a later job may try the posting again;
//! an `unknown` one is never released: whether it reached the employer is not known.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::job::JobId;
use crate::profile::{InvalidField, MAX_CAP};

/// The longest posting key.
pub const MAX_POSTING_KEY_LEN: usize = 512;

/// Applications allowed per Asia/Kolkata day and month. `0` allows none.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    pub daily: u32,
    pub monthly: u32,
}

impl Default for Caps {
    /// 10 a day, 200 a month.
    fn default() -> Self {
        Caps {
            daily: 10,
            monthly: 200,
        }
    }
}

impl Caps {
    /// Each at most [`MAX_CAP`], and `daily ≤ monthly`.
    pub fn validate(&self) -> Result<(), InvalidField> {
        for (field, value) in [("caps.daily", self.daily), ("caps.monthly", self.monthly)] {
            if value > MAX_CAP {
                return Err(InvalidField {
                    field: field.into(),
                    message: format!("at most {MAX_CAP}"),
                });
            }
        }
        if self.daily > self.monthly {
            return Err(InvalidField {
                field: "caps.daily".into(),
                message: "must not exceed caps.monthly".into(),
            });
        }
        Ok(())
    }
}

/// Where an entry of the ledger stands.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A job holds the posting and is applying.
    Claimed,
    /// Submitted and confirmed.
    Applied,
    /// Tier 2: left to the user (a link and a cover letter).
    Manual,
    /// Failed before anything was submitted.
    Failed,
    /// A submit may have happened (a crash or an unconfirmed page).
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Claimed,
        Outcome::Applied,
        Outcome::Manual,
        Outcome::Failed,
        Outcome::Unknown,
    ];

    /// The stored name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Claimed => "claimed",
            Outcome::Applied => "applied",
            Outcome::Manual => "manual",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }

    /// The outcome a stored name names.
    pub fn parse(name: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Whether an entry with this outcome counts against the caps.
    pub fn counts(self) -> bool {
        matches!(self, Outcome::Claimed | Outcome::Applied | Outcome::Unknown)
    }

    /// Whether an entry at `self` may be settled `to`: from `claimed` to any other outcome;
    /// from `unknown` to `applied`, `manual` or `failed` (once it is found out); to itself
    /// (a settle repeated after a crash). Nothing goes back to `claimed`.
    pub fn can_settle(self, to: Outcome) -> bool {
        to != Outcome::Claimed
            && (self == to
                || self == Outcome::Claimed
                || (self == Outcome::Unknown && to != Outcome::Unknown))
    }

    /// Whether an entry at this outcome may be released (removed): it was never submitted.
    pub fn can_release(self) -> bool {
        matches!(self, Outcome::Claimed | Outcome::Failed)
    }
}

/// One posting in one user's ledger.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Application {
    pub user_id: String,
    /// The posting's identity after dedup (the apply kind's key: native id or canonical URL).
    pub posting_key: String,
    /// The job that claimed it (a [`JobId`]; named `Uuid` for the OpenAPI schema).
    pub job_id: uuid::Uuid,
    pub outcome: Outcome,
    /// Whether it counts against the caps (in the day and month of `claimed_at`).
    pub counted: bool,
    pub claimed_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
}

/// Which cap was reached.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapKind {
    Daily,
    Monthly,
}

/// What a claim answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The posting is the caller's to apply to; it counts against the caps now.
    Claimed,
    /// The posting is in the ledger already (this job's claim, or an earlier job's):
    /// never apply again.
    Already {
        job_id: JobId,
        outcome: Outcome,
        /// When it was claimed.
        at: DateTime<Utc>,
    },
    /// A cap is reached: wait until `until` (the next IST midnight, or the first of the
    /// next IST month, as UTC). When both are reached, the monthly one is answered.
    Capped {
        which: CapKind,
        until: DateTime<Utc>,
    },
}

/// Applications counted against the caps in the current IST day and month.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ApplicationCounts {
    pub day: u32,
    pub month: u32,
}

/// What a claim reads before it decides: the user's ledger version (bumped by every
/// claim; 0 before the first) and the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub version: i64,
    pub counts: ApplicationCounts,
}

/// India Standard Time: UTC+05:30 all year (no daylight saving), so a fixed offset.
pub fn ist() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).expect("+05:30 is a valid offset")
}

fn ist_midnight(date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    ist()
        .from_local_datetime(&midnight)
        .single()
        .map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
}

/// The IST day holding `now`: [start, end) as UTC.
pub fn ist_day(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = now.with_timezone(&ist()).date_naive();
    let start = ist_midnight(date);
    (start, start + Duration::days(1))
}

/// The IST month holding `now`: [start, end) as UTC.
pub fn ist_month(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let date = now.with_timezone(&ist()).date_naive();
    let first = date.with_day(1).unwrap_or(date);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first);
    (ist_midnight(first), ist_midnight(next))
}

/// Whether one more application fits `caps` given `counts` at `now`: `None` when it does,
/// else the cap reached and when it reopens.
pub fn capped(
    counts: ApplicationCounts,
    caps: Caps,
    now: DateTime<Utc>,
) -> Option<(CapKind, DateTime<Utc>)> {
    if counts.month >= caps.monthly {
        return Some((CapKind::Monthly, ist_month(now).1));
    }
    if counts.day >= caps.daily {
        return Some((CapKind::Daily, ist_day(now).1));
    }
    None
}

/// Checks a posting key: 1 to [`MAX_POSTING_KEY_LEN`] bytes, no U+0000 and no newline
/// (the Redis store keeps entries as lines).
pub fn check_posting_key(key: &str) -> Result<(), InvalidField> {
    if key.is_empty() || key.len() > MAX_POSTING_KEY_LEN || key.contains(['\0', '\n']) {
        return Err(InvalidField {
            field: "posting_key".into(),
            message: format!(
                "must be 1 to {MAX_POSTING_KEY_LEN} bytes without U+0000 or a newline"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn ist_days_start_at_18_30_utc() {
        // 2026-03-10 20:00 UTC is 2026-03-11 01:30 IST.
        let (start, end) = ist_day(utc("2026-03-10T20:00:00Z"));
        assert_eq!(start, utc("2026-03-10T18:30:00Z"));
        assert_eq!(end, utc("2026-03-11T18:30:00Z"));
        let (start, _) = ist_day(utc("2026-03-10T18:29:59Z"));
        assert_eq!(start, utc("2026-03-09T18:30:00Z"));
    }

    #[test]
    fn ist_months_roll_over_the_year() {
        let (start, end) = ist_month(utc("2026-12-31T19:00:00Z"));
        assert_eq!(start, utc("2026-12-31T18:30:00Z"), "already January in IST");
        assert_eq!(end, utc("2027-01-31T18:30:00Z"));
        let (start, end) = ist_month(utc("2026-12-15T00:00:00Z"));
        assert_eq!(start, utc("2026-11-30T18:30:00Z"));
        assert_eq!(end, utc("2026-12-31T18:30:00Z"));
    }

    #[test]
    fn caps_answer_the_monthly_first() {
        let now = utc("2026-03-10T12:00:00Z");
        let caps = Caps {
            daily: 2,
            monthly: 5,
        };
        let c = |day, month| ApplicationCounts { day, month };
        assert_eq!(capped(c(1, 4), caps, now), None);
        assert_eq!(
            capped(c(2, 4), caps, now),
            Some((CapKind::Daily, utc("2026-03-10T18:30:00Z")))
        );
        assert_eq!(
            capped(c(2, 5), caps, now),
            Some((CapKind::Monthly, utc("2026-03-31T18:30:00Z")))
        );
        assert!(capped(
            c(0, 0),
            Caps {
                daily: 0,
                monthly: 0
            },
            now
        )
        .is_some());
    }

    #[test]
    fn settles_follow_the_entry_life() {
        use Outcome::*;
        assert!(Claimed.can_settle(Applied) && Claimed.can_settle(Manual));
        assert!(Unknown.can_settle(Applied) && Applied.can_settle(Applied));
        assert!(!Applied.can_settle(Failed) && !Manual.can_settle(Applied));
        assert!(!Claimed.can_settle(Claimed) && !Failed.can_settle(Claimed));
        assert!(Failed.can_release() && Claimed.can_release());
        assert!(!Unknown.can_release() && !Applied.can_release() && !Manual.can_release());
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
            assert_eq!(serde_json::to_value(o).expect("json"), o.as_str());
        }
    }

    #[test]
    fn caps_are_bounded_and_ordered() {
        assert!(Caps {
            daily: 0,
            monthly: 0
        }
        .validate()
        .is_ok());
        assert_eq!(
            Caps {
                daily: 1,
                monthly: MAX_CAP + 1
            }
            .validate()
            .expect_err("big")
            .field,
            "caps.monthly"
        );
    }
}
