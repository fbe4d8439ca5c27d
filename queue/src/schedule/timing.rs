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
                    return invalid("cron", format!("`{expr}` has {fields} fields; give 5, or 6 with seconds first"));
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
        let zone: Tz = spec
            .timezone
            .parse()
            .or_else(|_| invalid("timezone", format!("`{}` is not an IANA time zone", spec.timezone)))?;
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
                let date = tick.with_timezone(&self.zone).format("%Y-%m-%d").to_string();
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
