//! Schedules across real `drover worker` processes (issue 15): every tick of 50 per-second
//! schedules is enqueued exactly once while three processes evaluate them and one is
//! SIGKILLed and restarted; and after every process was down for longer than the catch-up
//! window, only the latest missed tick runs, the older ones are counted as missed.
//!
//! Each runs on PostgreSQL, Redis and a shared SQLite file (the README's SQLite topology: one
//! machine, processes sharing the file). The schedules use `overlap: allow_all` and
//! `catchup: all`, so that every tick runs whatever the workers and the evaluator's
//! takeover do, and each can be accounted for.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::*;
use drover_queue::schedule::{self, Catchup, JobTemplate, Overlap, Save, Schedule, ScheduleSpec};
use drover_queue::testing::Backend;
use drover_queue::{Job, JobFilter, Priority, Store};

const SCHEDULES: usize = 50;

fn per_second(id: &str, catchup: Catchup, window: &str) -> ScheduleSpec {
    ScheduleSpec {
        id: id.into(),
        cron: None,
        every: Some("1s".into()),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: "noop".into(),
            goal: format!("tick of {id}"),
            config: serde_json::json!({}),
            priority: Priority::Normal,
            queue: None,
            max_attempts: None,
        },
        overlap: Overlap::AllowAll,
        catchup_window: window.into(),
        catchup,
        spread: None,
        paused: false,
    }
}

async fn stored(store: &dyn Store, id: &str) -> Schedule {
    store
        .schedule(id)
        .await
        .expect("read schedule")
        .unwrap_or_else(|| panic!("schedule {id} is gone"))
}

/// Every job a schedule enqueued, read page by page.
async fn jobs_of(store: &dyn Store, id: &str) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                created_by: Some(format!("schedule:{id}")),
                before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list jobs");
        jobs.extend(page.jobs);
        match page.next {
            Some(next) => before = Some(next),
            None => return jobs,
        }
    }
}

/// The tick a schedule's job was enqueued for, read back from its idempotency key.
fn tick_of(id: &str, job: &Job) -> DateTime<Utc> {
    let key = job
        .idempotency_key
        .as_deref()
        .expect("a schedule's job has a key");
    let tick = key
        .strip_prefix(&format!("schedule:{id}:"))
        .unwrap_or_else(|| panic!("key {key} is not schedule {id}'s"));
    DateTime::parse_from_rfc3339(tick)
        .expect("the key ends in an RFC 3339 tick")
        .with_timezone(&Utc)
}

/// Whole seconds `t` with `after < t <= upto`.
fn seconds_between(after: DateTime<Utc>, upto: DateTime<Utc>) -> BTreeSet<DateTime<Utc>> {
    let first = after.timestamp() + 1;
    (first..=upto.timestamp())
        .filter_map(|s| DateTime::from_timestamp(s, 0))
        .collect()
}

/// Waits until every schedule in `ids` has handled its ticks up to `at`.
async fn cursors_reach(store: &Arc<dyn Store>, ids: &[String], at: DateTime<Utc>, what: &str) {
    eventually(Duration::from_secs(60), what, || async {
        for id in ids {
            if stored(store.as_ref(), id).await.state.cursor < at {
                return None;
            }
        }
        Some(())
    })
    .await;
}

/// The worker that logged taking the `schedules` leadership last, if any did.
fn schedules_leader(logs: &std::path::Path, ids: &[&str]) -> Option<usize> {
    let mut latest: Option<(String, usize)> = None;
    for (i, id) in ids.iter().enumerate() {
        let log = std::fs::read_to_string(logs.join(format!("{id}.log"))).unwrap_or_default();
        let Some(line) = log
            .lines()
            .rfind(|l| l.contains("leadership changed") && l.contains("schedules"))
        else {
            continue;
        };
        if line.contains("leading=true") {
            // Text logs start with an RFC 3339 timestamp, so lines compare by time.
            if latest.as_ref().is_none_or(|(at, _)| line > at.as_str()) {
                latest = Some((line.to_string(), i));
            }
        }
    }
    latest.map(|(_, i)| i)
}

async fn stop_gracefully(worker: &mut WorkerProcess) {
    worker.signal(libc::SIGTERM);
    assert!(
        worker.exited(Duration::from_secs(30)).await.is_some(),
        "worker {} did not stop on SIGTERM",
        worker.id
    );
}

async fn every_tick_is_enqueued_once_across_three_processes(backend: Backend) {
    let url = backend.url();
    let store = backend.open().await;
    let logs = tempfile::tempdir().expect("temp dir");
    let tag = backend.name();
    let created = Utc::now();
    let ids: Vec<String> = (0..SCHEDULES).map(|i| format!("fleet-{i:02}")).collect();
    for id in &ids {
        schedule::save(
            store.as_ref(),
            per_second(id, Catchup::All, "1h"),
            Save::Create,
            created,
        )
        .await
        .expect("create schedule");
    }
    let names: Vec<String> = (0..3).map(|k| format!("{tag}-sched-{k}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut workers: Vec<WorkerProcess> = names
        .iter()
        .map(|name| spawn_worker(&url, name, 4, logs.path()))
        .collect();

    cursors_reach(
        &store,
        &ids,
        created + chrono::Duration::seconds(20),
        "20 s of ticks with three processes",
    )
    .await;
    // SIGKILL the one evaluating (it may be between a tick's enqueue and its
    // compare-and-set); another takes over within the leadership's 750 ms.
    let victim = schedules_leader(logs.path(), &name_refs).unwrap_or(0);
    workers[victim].kill9();
    let killed = Utc::now();
    cursors_reach(
        &store,
        &ids,
        killed + chrono::Duration::seconds(10),
        "10 s of ticks after the SIGKILL",
    )
    .await;
    workers[victim] = spawn_worker(&url, &names[victim], 4, logs.path());
    let restarted = Utc::now();
    cursors_reach(
        &store,
        &ids,
        restarted + chrono::Duration::seconds(20),
        "20 s of ticks after the restart",
    )
    .await;
    for worker in &mut workers {
        stop_gracefully(worker).await;
    }

    // Every second from the creation to each schedule's cursor: one job, under its key,
    // starting at its tick; nothing counted missed or skipped.
    for id in &ids {
        let schedule = stored(store.as_ref(), id).await;
        let expected = seconds_between(created, schedule.state.cursor);
        assert!(
            expected.len() >= 50,
            "{tag} {id}: only {} ticks",
            expected.len()
        );
        let jobs = jobs_of(store.as_ref(), id).await;
        let ticks: Vec<DateTime<Utc>> = jobs.iter().map(|j| tick_of(id, j)).collect();
        let distinct: BTreeSet<DateTime<Utc>> = ticks.iter().copied().collect();
        assert_eq!(
            ticks.len(),
            distinct.len(),
            "{tag} {id}: a tick enqueued twice"
        );
        let absent: Vec<String> = expected
            .difference(&distinct)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .collect();
        assert!(absent.is_empty(), "{tag} {id}: ticks missed: {absent:?}");
        assert_eq!(
            distinct, expected,
            "{tag} {id}: a job for a tick not yet handled"
        );
        // A job starts at its tick (later only when it came back from the SIGKILLed
        // worker, whose retry moved it).
        for job in &jobs {
            assert!(job.run_at >= tick_of(id, job), "{tag} {id}: run_at");
        }
        let s = &schedule.state;
        assert_eq!(
            (s.runs, s.missed, s.skipped),
            (expected.len() as u64, 0, 0),
            "{tag} {id}: counters"
        );
    }
    backend.cleanup().await;
}

async fn after_downtime_only_the_latest_missed_tick_runs(backend: Backend) {
    let url = backend.url();
    let store = backend.open().await;
    let logs = tempfile::tempdir().expect("temp dir");
    let tag = backend.name();
    let id = "catchup";
    let window = chrono::Duration::seconds(3);
    schedule::save(
        store.as_ref(),
        per_second(id, Catchup::Latest, "3s"),
        Save::Create,
        Utc::now(),
    )
    .await
    .expect("create schedule");
    let mut workers: Vec<WorkerProcess> = (0..2)
        .map(|k| spawn_worker(&url, &format!("{tag}-catchup-{k}"), 2, logs.path()))
        .collect();
    eventually(Duration::from_secs(60), "three ticks", || async {
        (stored(store.as_ref(), id).await.state.runs >= 3).then_some(())
    })
    .await;
    // Every process down (gracefully: a crash between a tick's enqueue and its
    // compare-and-set would leave that one tick's job behind, counted missed).
    for worker in &mut workers {
        stop_gracefully(worker).await;
    }
    let before = stored(store.as_ref(), id).await;
    let jobs_before: BTreeSet<DateTime<Utc>> = jobs_of(store.as_ref(), id)
        .await
        .iter()
        .map(|j| tick_of(id, j))
        .collect();
    let down_until = before.state.cursor + window + chrono::Duration::seconds(3);
    let wait = (down_until - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;

    let restarted = Utc::now();
    let mut worker = spawn_worker(&url, &format!("{tag}-catchup-back"), 2, logs.path());
    eventually(
        Duration::from_secs(60),
        "ticks after the restart",
        || async {
            (stored(store.as_ref(), id).await.state.runs >= before.state.runs + 3).then_some(())
        },
    )
    .await;
    stop_gracefully(&mut worker).await;

    let after = stored(store.as_ref(), id).await;
    let jobs_after: BTreeSet<DateTime<Utc>> = jobs_of(store.as_ref(), id)
        .await
        .iter()
        .map(|j| tick_of(id, j))
        .collect();
    assert!(jobs_after.is_superset(&jobs_before));
    let new: Vec<DateTime<Utc>> = jobs_after.difference(&jobs_before).copied().collect();
    let first = *new.first().expect("a tick ran after the restart");
    // The first run after the downtime is the latest tick when the process came back: every
    // tick of the downtime, those past the window included, was counted, none ran.
    assert!(
        first >= restarted - chrono::Duration::seconds(1),
        "{tag}: an old tick ran: {first} (restarted {restarted})"
    );
    assert!(
        first - before.state.cursor > window,
        "{tag}: the downtime was not longer than the window"
    );
    let handled = seconds_between(before.state.cursor, after.state.cursor);
    assert!(new.iter().all(|t| handled.contains(t)));
    assert_eq!(
        new.len() as u64 + (after.state.missed - before.state.missed),
        handled.len() as u64,
        "{tag}: each tick of the downtime and after is either run or counted missed"
    );
    assert!(
        after.state.missed - before.state.missed
            >= (first - before.state.cursor).num_seconds() as u64 - 1
    );
    assert_eq!(after.state.runs - before.state.runs, new.len() as u64);
    backend.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_tick_is_enqueued_once_across_three_processes() {
    every_tick_is_enqueued_once_across_three_processes(Backend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_every_tick_is_enqueued_once_across_three_processes() {
    every_tick_is_enqueued_once_across_three_processes(Backend::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_tick_is_enqueued_once_across_three_processes_sharing_the_file() {
    every_tick_is_enqueued_once_across_three_processes(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_after_downtime_only_the_latest_missed_tick_runs() {
    after_downtime_only_the_latest_missed_tick_runs(Backend::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_after_downtime_only_the_latest_missed_tick_runs() {
    after_downtime_only_the_latest_missed_tick_runs(Backend::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_after_downtime_only_the_latest_missed_tick_runs() {
    after_downtime_only_the_latest_missed_tick_runs(Backend::sqlite()).await;
}
