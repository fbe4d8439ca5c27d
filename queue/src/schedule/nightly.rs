//! A profile's nightly applications (SPEC §7.3) as one schedule: the run for IST date D
//! starts at 20:00 Asia/Kolkata + `u64::from_be_bytes(sha256(user_id + D)[0..8]) % 600`
//! minutes, inside the 20:00–06:00 window — the schedules' own deterministic spread, keyed
//! by the user id. [`sync`] keeps the schedule in step with the profile: created or updated
//! while `nightly` is true (an operator's pause is kept), deleted when it turns false or the
//! profile goes.

use chrono::{DateTime, Utc};
use ring::digest;
use serde_json::json;

use super::fire::{save, Save, ScheduleError};
use super::{Catchup, JobTemplate, Overlap, ScheduleSpec, Spread};
use crate::job::Priority;
use crate::profile::Profile;
use crate::store::Store;

/// The apply kind's name (the workloads crate registers it; the queue only names it).
pub const APPLY_KIND: &str = "apply";

/// The nightly schedule's id for `user_id`: readable, and unique however the id is spelled
/// (`@` is not allowed in schedule ids, so a digest of the real id tells users apart).
pub fn schedule_id(user_id: &str) -> String {
    let readable: String = user_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let hash = digest::digest(&digest::SHA256, user_id.as_bytes());
    let tag: String = hash.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("nightly-{readable}-{tag}")
}

/// The schedule a nightly profile runs on.
pub fn spec(user_id: &str) -> ScheduleSpec {
    ScheduleSpec {
        id: schedule_id(user_id),
        cron: Some("0 20 * * *".into()),
        every: None,
        timezone: "Asia/Kolkata".into(),
        job: JobTemplate {
            kind: APPLY_KIND.into(),
            goal: format!("nightly applications for {user_id}"),
            config: json!({ "user_id": user_id }),
            priority: Priority::Normal,
            queue: None,
            max_attempts: None,
        },
        // One night's run at a time; a night whose run is still going is skipped.
        overlap: Overlap::Skip,
        // A fleet that was down at the slot still applies that night, until 06:00.
        catchup_window: "10h".into(),
        catchup: Catchup::Latest,
        spread: Some(Spread {
            window: "600m".into(),
            key: user_id.to_string(),
        }),
        paused: false,
    }
}

/// Makes the store's nightly schedule of `user_id` match `profile` (`None`: the profile is
/// gone). Answers the schedule's id when one exists afterwards.
pub async fn sync(
    store: &dyn Store,
    user_id: &str,
    profile: Option<&Profile>,
    now: DateTime<Utc>,
) -> Result<Option<String>, ScheduleError> {
    let id = schedule_id(user_id);
    if !profile.is_some_and(|p| p.nightly) {
        store.delete_schedule(&id).await?;
        return Ok(None);
    }
    let mut wanted = spec(user_id);
    if let Some(existing) = store.schedule(&id).await? {
        wanted.paused = existing.spec.paused;
        if existing.spec == wanted {
            return Ok(Some(id));
        }
    }
    save(store, wanted, Save::Upsert, now).await?;
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::timing::Timing;
    use chrono::{Duration, FixedOffset, NaiveDate, TimeZone};

    #[test]
    fn ids_are_valid_and_tell_users_apart() {
        let a = schedule_id("ann@example.com");
        let b = schedule_id("ann_example.com");
        assert_ne!(a, b);
        assert!(a.starts_with("nightly-ann_example.com-"), "{a}");
        assert!(spec("ann@example.com").validate().is_ok());
        assert!(spec(&"x".repeat(128)).validate().is_ok());
    }

    /// The slot against an independent computation of SPEC §7.3's formula.
    #[test]
    fn runs_start_at_the_users_slot_between_20_and_06_ist() {
        let ist = FixedOffset::east_opt(19_800).expect("offset");
        let user = "asha";
        let timing = Timing::of(&spec(user)).expect("timing");
        let from = Utc
            .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("date");
        let runs = timing.next_runs(from, 5);
        assert_eq!(runs.len(), 5);
        for (i, run) in runs.iter().enumerate() {
            let date =
                NaiveDate::from_ymd_opt(2026, 12, 1).expect("date") + Duration::days(i as i64);
            let key = format!("{user}{}", date.format("%Y-%m-%d"));
            let hash = digest::digest(&digest::SHA256, key.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&hash.as_ref()[..8]);
            let offset = u64::from_be_bytes(first) % 600;
            let expected = ist
                .from_local_datetime(&date.and_hms_opt(20, 0, 0).expect("time"))
                .single()
                .expect("no DST in IST")
                .with_timezone(&Utc)
                + Duration::minutes(offset as i64);
            assert_eq!(*run, expected, "run {i}");
        }
    }
}
