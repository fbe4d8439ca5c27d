//! When a schedule's ticks fall and which of them are due.
//!
//! Cron expressions are read by croner in the schedule's zone (chrono-tz's compiled-in IANA
//! database), which follows the DST rules SPEC §8 asks for: a fixed time in the
//! spring-forward gap runs once, just after the gap; a fixed time in the repeated hour runs
//! once, at its first occurrence. (Wildcard and step fields run per real occurrence.)

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use sha2::{Digest, Sha256};

use super::{invalid, parse_duration, Catchup, InvalidSchedule, ScheduleSpec, CATCHUP_ALL_CAP};

/// How many ticks one evaluation walks at most while counting missed cron ticks (an
/// `every` schedule counts them by arithmetic).
const MAX_WALK: usize = 100_000;

/// A schedule's timing, parsed and checked.
#[derive(Debug, Clone)]
pub struct Timing {
    trigger: Trigger,
    zone: Tz,
    window: chrono::Duration,
    catchup: Catchup,
    spread: Option<(u64, String)>,
}

#[derive(Debug, Clone)]
enum Trigger {
    Cron(Box<Cron>),
    /// Milliseconds, a whole number of seconds.
    Every(i64),
}

/// The ticks due at one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The ticks to run, oldest first.
    pub fire: Vec<DateTime<Utc>>,
    /// Ticks that will never run: older than the window, or coalesced into a later one.
    pub missed: u64,
    /// The newest tick at or before now (the new cursor), when there was one.
    pub cursor: Option<DateTime<Utc>>,
}

impl Timing {
    /// Parses `spec`'s timing, naming the field at fault.
    pub fn of(spec: &ScheduleSpec) -> Result<Timing, InvalidSchedule> {
        let trigger = match (&spec.cron, &spec.every) {
            (Some(_), Some(_)) => return invalid("every", "give `cron` or `every`, not both"),
            (None, None) => return invalid("cron", "give `cron` or `every`"),
            (Some(expr), None) => {
                let fields = expr.split_whitespace().count();
                if !expr.trim_start().starts_with('@') && !(5..=6).contains(&fields) {
                    return invalid(
                        "cron",
                        format!("`{expr}` has {fields} fields; give 5, or 6 with seconds first"),
                    );
                }
                let cron = CronParser::builder()
                    .seconds(Seconds::Optional)
                    .build()
                    .parse(expr)
                    .or_else(|e| invalid("cron", format!("`{expr}`: {e}")))?;
                Trigger::Cron(Box::new(cron))
            }
            (None, Some(every)) => {
                let d = parse_duration("every", every)?;
                if d < Duration::from_secs(1) || d.subsec_nanos() != 0 {
                    return invalid("every", "must be a whole number of seconds, at least 1s");
                }
                if d > Duration::from_secs(366 * 86_400) {
                    return invalid("every", "must be at most a year");
                }
                Trigger::Every(d.as_millis() as i64)
            }
        };
        let zone: Tz = spec.timezone.parse().or_else(|_| {
            invalid(
                "timezone",
                format!("`{}` is not an IANA time zone", spec.timezone),
            )
        })?;
        let window = parse_duration("catchup_window", &spec.catchup_window)?;
        if window > Duration::from_secs(366 * 86_400) {
            return invalid("catchup_window", "must be at most a year");
        }
        let spread = match &spec.spread {
            None => None,
            Some(s) => {
                let w = parse_duration("spread.window", &s.window)?;
                let minutes = w.as_secs() / 60;
                if minutes == 0 || minutes > 7 * 24 * 60 {
                    return invalid("spread.window", "must be between 1 minute and 7 days");
                }
                if s.key.is_empty() || s.key.len() > 255 {
                    return invalid("spread.key", "must be 1 to 255 bytes");
                }
                Some((minutes, s.key.clone()))
            }
        };
        Ok(Timing {
            trigger,
            zone,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            catchup: spec.catchup,
            spread,
        })
    }

    /// The first tick strictly after `t`, if any ever comes.
    pub fn next_tick(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.trigger {
            Trigger::Every(ms) => {
                let at = t.timestamp_millis().div_euclid(*ms) * ms + ms;
                DateTime::from_timestamp_millis(at)
            }
            Trigger::Cron(cron) => cron
                .find_next_occurrence(&t.with_timezone(&self.zone), false)
                .ok()
                .map(|local| local.with_timezone(&Utc)),
        }
    }

    /// When the run of `tick` starts: the tick plus the spread's offset for its local date.
    pub fn start_of(&self, tick: DateTime<Utc>) -> DateTime<Utc> {
        match &self.spread {
            None => tick,
            Some((minutes, key)) => {
                let date = tick
                    .with_timezone(&self.zone)
                    .format("%Y-%m-%d")
                    .to_string();
                tick + chrono::Duration::minutes(spread_minutes(key, &date, *minutes) as i64)
            }
        }
    }

    /// The next `n` start times after `t` (spread applied), in tick order.
    pub fn next_runs(&self, t: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut at = t;
        while out.len() < n {
            match self.next_tick(at) {
                Some(tick) => {
                    out.push(self.start_of(tick));
                    at = tick;
                }
                None => break,
            }
        }
        out
    }

    /// The ticks in (`cursor`, `now`]: those inside the catch-up window run (the latest, or
    /// every one up to [`CATCHUP_ALL_CAP`]), the rest are missed.
    pub fn due(&self, cursor: DateTime<Utc>, now: DateTime<Utc>) -> Due {
        let oldest_allowed = now - self.window;
        let mut missed = 0u64;
        let mut from = cursor;
        // Ticks before the window are only counted: by arithmetic for `every`, by walking
        // (bounded) for cron.
        if from < oldest_allowed {
            match &self.trigger {
                Trigger::Every(ms) => {
                    let last_old = (oldest_allowed.timestamp_millis() - 1).div_euclid(*ms);
                    let first = cursor.timestamp_millis().div_euclid(*ms);
                    missed += (last_old - first).max(0) as u64;
                    let skip_to = last_old * ms;
                    if let Some(t) = DateTime::from_timestamp_millis(skip_to) {
                        from = from.max(t);
                    }
                }
                Trigger::Cron(_) => {
                    let mut walked = 0;
                    while let Some(t) = self.next_tick(from) {
                        if t >= oldest_allowed || walked >= MAX_WALK {
                            break;
                        }
                        missed += 1;
                        walked += 1;
                        from = t;
                    }
                    if walked >= MAX_WALK {
                        from = oldest_allowed - chrono::Duration::milliseconds(1);
                    }
                }
            }
        }
        let mut inside = Vec::new();
        while let Some(t) = self.next_tick(from) {
            if t > now {
                break;
            }
            inside.push(t);
            from = t;
            if inside.len() > MAX_WALK {
                break;
            }
        }
        let cursor = inside.last().copied();
        let keep = match self.catchup {
            Catchup::Latest => 1,
            Catchup::All => CATCHUP_ALL_CAP,
        };
        if inside.len() > keep {
            let drop = inside.len() - keep;
            missed += drop as u64;
            inside.drain(..drop);
        }
        Due {
            fire: inside,
            missed,
            cursor,
        }
    }
}

/// The spread's offset in minutes for `key` on local date `date` (`YYYY-MM-DD`):
/// `u64::from_be_bytes(sha256(key + date)[0..8]) % window_minutes`.
pub fn spread_minutes(key: &str, date: &str, window_minutes: u64) -> u64 {
    let digest = Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update(date.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % window_minutes.max(1)
}

/// `local` (a wall-clock time in `zone`) as UTC, for tests and tables: the first of two
/// readings in a repeated hour; `None` in a gap.
pub fn local_to_utc(zone: &str, local: &str) -> Option<DateTime<Utc>> {
    let zone: Tz = zone.parse().ok()?;
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").ok()?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{JobTemplate, Spread};

    fn spec(cron: Option<&str>, every: Option<&str>, zone: &str) -> ScheduleSpec {
        ScheduleSpec {
            id: "t".into(),
            cron: cron.map(Into::into),
            every: every.map(Into::into),
            timezone: zone.into(),
            job: JobTemplate {
                kind: "noop".into(),
                goal: String::new(),
                config: serde_json::json!({}),
                priority: Default::default(),
                queue: None,
                max_attempts: None,
            },
            overlap: Default::default(),
            catchup_window: "1h".into(),
            catchup: Catchup::Latest,
            spread: None,
            paused: false,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn ticks(timing: &Timing, after: &str, n: usize) -> Vec<String> {
        let mut at = utc(after);
        (0..n)
            .map(|_| {
                at = timing.next_tick(at).expect("tick");
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            })
            .collect()
    }

    /// (zone, cron, search after, the next ticks in UTC). Gap: a fixed local time inside it
    /// runs once, at the end of the gap; repeated hour: once, at its first reading.
    const DST_TABLE: &[(&str, &str, &str, &[&str])] = &[
        // No DST: 20:00 IST is always 14:30 UTC.
        (
            "Asia/Kolkata",
            "0 20 * * *",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T14:30:00Z",
                "2026-03-08T14:30:00Z",
                "2026-03-09T14:30:00Z",
            ],
        ),
        // New York springs forward 2026-03-08 02:00 → 03:00: 02:30 runs at 03:00 EDT.
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T00:00:00Z",
            &[
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
            ],
        ),
        // … and falls back 2026-11-01 02:00 → 01:00: 01:30 runs once, at 01:30 EDT.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T00:00:00Z",
            &[
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ],
        ),
        // Berlin springs forward 2026-03-29 02:00 → 03:00.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ],
        ),
        // … and falls back 2026-10-25 03:00 → 02:00: 02:30 runs once, at 02:30 CEST.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T00:00:00Z",
            &[
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ],
        ),
        // Lord Howe moves 30 minutes: 02:00 → 02:30 on 2026-10-04 (+10:30 → +11:00) …
        (
            "Australia/Lord_Howe",
            "15 2 * * *",
            "2026-10-02T00:00:00Z",
            &[
                "2026-10-02T15:45:00Z",
                "2026-10-03T15:30:00Z",
                "2026-10-04T15:15:00Z",
            ],
        ),
        // … and 02:00 → 01:30 on 2026-04-05: 01:45 runs once, at its +11:00 reading.
        (
            "Australia/Lord_Howe",
            "45 1 * * *",
            "2026-04-03T00:00:00Z",
            &[
                "2026-04-03T14:45:00Z",
                "2026-04-04T14:45:00Z",
                "2026-04-05T15:15:00Z",
            ],
        ),
        // Six fields: seconds first.
        (
            "UTC",
            "30 0 12 * * *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-01T12:00:30Z",
                "2026-01-02T12:00:30Z",
                "2026-01-03T12:00:30Z",
            ],
        ),
        // L: the last day of the month.
        (
            "UTC",
            "0 9 L * *",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-31T09:00:00Z",
                "2026-02-28T09:00:00Z",
                "2026-03-31T09:00:00Z",
            ],
        ),
        // #: the second Monday.
        (
            "UTC",
            "0 9 * * 1#2",
            "2026-01-01T00:00:00Z",
            &[
                "2026-01-12T09:00:00Z",
                "2026-02-09T09:00:00Z",
                "2026-03-09T09:00:00Z",
            ],
        ),
    ];

    #[test]
    fn dst_table() {
        for (zone, cron, after, want) in DST_TABLE {
            let timing = Timing::of(&spec(Some(cron), None, zone)).expect("timing");
            assert_eq!(
                ticks(&timing, after, want.len()),
                *want,
                "{zone} `{cron}` after {after}"
            );
        }
    }

    #[test]
    fn every_ticks_at_epoch_multiples() {
        let timing = Timing::of(&spec(None, Some("15m"), "Europe/Berlin")).expect("timing");
        assert_eq!(
            ticks(&timing, "2026-03-29T00:50:00Z", 3),
            [
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
                "2026-03-29T01:30:00Z"
            ]
        );
    }

    #[test]
    fn spread_matches_an_independent_sha256() {
        // Expected offsets computed outside Rust (Python's hashlib:
        // int.from_bytes(sha256((key + date).encode()).digest()[:8], "big") % window).
        for (key, date, window, want) in [
            ("user-42", "2026-03-08", 600, 78),
            ("alice@example.com", "2026-12-31", 600, 321),
            ("k", "2026-01-01", 7, 3),
        ] {
            assert_eq!(spread_minutes(key, date, window), want, "{key} {date}");
        }
        // The nightly slot: 20:00 Asia/Kolkata + the offset of the IST date.
        let mut s = spec(Some("0 20 * * *"), None, "Asia/Kolkata");
        s.spread = Some(Spread {
            window: "600m".into(),
            key: "user-42".into(),
        });
        let timing = Timing::of(&s).expect("timing");
        let tick = utc("2026-03-08T14:30:00Z");
        assert_eq!(timing.start_of(tick), tick + chrono::Duration::minutes(78));
        assert_eq!(
            timing.next_runs(utc("2026-03-08T00:00:00Z"), 1),
            [tick + chrono::Duration::minutes(78)]
        );
    }

    #[test]
    fn catch_up_runs_the_latest_or_all_inside_the_window() {
        let t0 = utc("2026-01-01T00:00:00Z");
        let now = utc("2026-01-01T03:00:00Z");
        let latest = Timing::of(&spec(None, Some("1m"), "UTC")).expect("timing");
        let due = latest.due(t0, now);
        assert_eq!(due.fire, [now]);
        assert_eq!(due.missed, 179);
        assert_eq!(due.cursor, Some(now));

        let mut all = spec(None, Some("1m"), "UTC");
        all.catchup = Catchup::All;
        let due = Timing::of(&all).expect("timing").due(t0, now);
        // 02:00 … 03:00 are inside the hour's window: 61 ticks, the 119 before are missed.
        assert_eq!(due.fire.len(), 61);
        assert_eq!(due.fire.first(), Some(&utc("2026-01-01T02:00:00Z")));
        assert_eq!(due.missed, 119);

        // `all` is capped at the newest 100.
        all.catchup_window = "3h".into();
        let due = Timing::of(&all).expect("timing").due(t0, now);
        assert_eq!((due.fire.len(), due.missed), (100, 80));

        // The same for cron, counted by walking.
        let cron = Timing::of(&spec(Some("* * * * *"), None, "UTC")).expect("timing");
        let due = cron.due(t0, now);
        assert_eq!((due.fire.clone(), due.missed), (vec![now], 179));

        // Nothing due before the next tick.
        assert!(latest
            .due(now, now + chrono::Duration::seconds(59))
            .fire
            .is_empty());
    }

    #[test]
    fn bad_declarations_name_the_field() {
        for (s, field) in [
            (spec(Some("61 * * * *"), None, "UTC"), "cron"),
            (spec(Some("* * *"), None, "UTC"), "cron"),
            (spec(None, None, "UTC"), "cron"),
            (spec(None, Some("soon"), "UTC"), "every"),
            (spec(None, Some("1500ms"), "UTC"), "every"),
            (spec(Some("* * * * *"), None, "Mars/Olympus"), "timezone"),
        ] {
            assert_eq!(s.validate().expect_err("invalid").field, field);
        }
        let mut s = spec(Some("* * * * *"), None, "UTC");
        s.job.kind = String::new();
        assert_eq!(s.validate().expect_err("invalid").field, "job.kind");
        s = spec(Some("* * * * *"), None, "UTC");
        s.id = "a b".into();
        assert_eq!(s.validate().expect_err("invalid").field, "id");
        s = spec(Some("* * * * *"), None, "UTC");
        s.spread = Some(Spread {
            window: "30s".into(),
            key: "k".into(),
        });
        assert_eq!(s.validate().expect_err("invalid").field, "spread.window");
    }
}
