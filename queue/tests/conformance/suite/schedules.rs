//! Schedules as data: writes by compare-and-set, the due read, exactly one job per tick
//! across racing evaluators, catch-up, overlap policies and changed templates.

use chrono::{DateTime, Duration, Utc};
use drover_queue::schedule::{self, JobTemplate, Overlap, Save, ScheduleError, ScheduleSpec};
use drover_queue::*;

use drover_queue::testing::Backend;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn every(id: &str, interval: &str, overlap: Overlap) -> ScheduleSpec {
    ScheduleSpec {
        id: id.into(),
        cron: None,
        every: Some(interval.into()),
        timezone: "UTC".into(),
        job: JobTemplate {
            kind: "noop".into(),
            goal: format!("tick of {id}"),
            config: serde_json::json!({"n": 1}),
            priority: Priority::Normal,
            queue: None,
            max_attempts: None,
        },
        overlap,
        catchup_window: "1h".into(),
        catchup: Default::default(),
        spread: None,
        paused: false,
    }
}

async fn jobs_of(store: &Arc<dyn Store>, id: &str) -> Vec<Job> {
    let page = store
        .list(&JobFilter {
            created_by: Some(format!("schedule:{id}")),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    page.jobs
}

pub async fn schedules_are_created_replaced_and_deleted(b: &Backend) {
    let store = b.open().await;
    let s = store.as_ref();
    let spec = every("nightly", "1m", Overlap::Skip);
    let created = schedule::save(s, spec.clone(), Save::Create, t0())
        .await
        .expect("create");
    assert_eq!(created.state.due_at, Some(t0() + Duration::minutes(1)));
    assert!(matches!(
        schedule::save(s, spec.clone(), Save::Create, t0()).await,
        Err(ScheduleError::Exists(_))
    ));
    assert!(matches!(
        schedule::save(s, every("other", "1m", Overlap::Skip), Save::Replace, t0()).await,
        Err(ScheduleError::NotFound(_))
    ));
    let stored = store
        .schedule("nightly")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(stored, created);

    let mut changed = spec.clone();
    changed.job.goal = "new goal".into();
    let replaced = schedule::save(s, changed, Save::Upsert, t0())
        .await
        .expect("replace");
    assert_eq!(replaced.state.version, created.state.version + 1);
    // A stale writer loses the compare-and-set.
    assert!(!store
        .replace_schedule(&created, created.state.version)
        .await
        .expect("cas"));

    let paused = schedule::pause(s, "nightly", t0()).await.expect("pause");
    assert_eq!(paused.state.due_at, None);
    let far = t0() + Duration::days(1);
    assert!(store.due_schedules(far, 10).await.expect("due").is_empty());
    schedule::resume(s, "nightly", far).await.expect("resume");
    let due = store
        .due_schedules(far + Duration::minutes(1), 10)
        .await
        .expect("due");
    assert_eq!(due.len(), 1);

    schedule::save(s, every("a-first", "1m", Overlap::Skip), Save::Create, t0())
        .await
        .expect("create");
    let ids: Vec<_> = store
        .schedules()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.spec.id)
        .collect();
    assert_eq!(ids, ["a-first", "nightly"]);
    assert!(store.delete_schedule("nightly").await.expect("delete"));
    assert!(!store
        .delete_schedule("nightly")
        .await
        .expect("delete again"));
    assert!(store.schedule("nightly").await.expect("get").is_none());
}

pub async fn each_tick_enqueues_one_job_across_racing_evaluators(b: &Backend) {
    let store = b.open().await;
    let mut spec = every("racy", "1s", Overlap::AllowAll);
    spec.catchup = schedule::Catchup::All;
    schedule::save(store.as_ref(), spec, Save::Create, t0())
        .await
        .expect("create");
    // Four evaluators at each of 20 seconds, all at once.
    for second in 1..=20 {
        let now = t0() + Duration::seconds(second);
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { schedule::evaluate_due(store.as_ref(), now, 100).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("evaluate");
        }
    }
    let jobs = jobs_of(&store, "racy").await;
    let mut keys: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.idempotency_key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(jobs.len(), 20);
    assert_eq!(keys.len(), 20);
    assert_eq!(keys[0], "schedule:racy:2026-01-01T00:00:01Z");
    let stored = store.schedule("racy").await.expect("get").expect("stored");
    assert_eq!(stored.state.runs, 20);
    assert_eq!(stored.state.recent.len(), schedule::RECENT_RUNS);
    assert_eq!(stored.state.recent[0].tick, t0() + Duration::seconds(20));
    // The job starts at its tick, not when it was enqueued.
    let first = jobs
        .iter()
        .find(|j| j.idempotency_key.as_deref() == Some(keys[0].as_str()))
        .expect("first");
    assert_eq!(first.run_at, t0() + Duration::seconds(1));
}

pub async fn missed_ticks_catch_up_inside_the_window_only(b: &Backend) {
    let store = b.open().await;
    let s = store.as_ref();
    schedule::save(
        s,
        every("latest", "1m", Overlap::AllowAll),
        Save::Create,
        t0(),
    )
    .await
    .expect("create");
    let mut all = every("all", "1m", Overlap::AllowAll);
    all.catchup = schedule::Catchup::All;
    schedule::save(s, all, Save::Create, t0())
        .await
        .expect("create");
    // Everything was down for three hours.
    let now = t0() + Duration::hours(3);
    schedule::evaluate_due(s, now, 100).await.expect("evaluate");
    let latest = store
        .schedule("latest")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!((latest.state.runs, latest.state.missed), (1, 179));
    assert_eq!(jobs_of(&store, "latest").await.len(), 1);
    let all = store.schedule("all").await.expect("get").expect("stored");
    assert_eq!((all.state.runs, all.state.missed), (61, 119));
    assert_eq!(jobs_of(&store, "all").await.len(), 61);
    // Nothing more until the next tick.
    schedule::evaluate_due(s, now + Duration::seconds(30), 100)
        .await
        .expect("evaluate");
    assert_eq!(jobs_of(&store, "latest").await.len(), 1);
}

pub async fn overlap_policies_hold_back_skip_or_cancel(b: &Backend) {
    let store = b.open().await;
    let s = store.as_ref();
    for (id, overlap) in [
        ("skip", Overlap::Skip),
        ("buffer", Overlap::BufferOne),
        ("cancel", Overlap::CancelOther),
        ("allow", Overlap::AllowAll),
    ] {
        schedule::save(s, every(id, "1m", overlap), Save::Create, t0())
            .await
            .expect("create");
    }
    // Tick 1 enqueues everywhere; its jobs outlive the interval (nobody runs them).
    for minutes in 1..=3 {
        schedule::evaluate_due(s, t0() + Duration::minutes(minutes), 100)
            .await
            .expect("evaluate");
    }
    let state = |id: &'static str| {
        let store = store.clone();
        async move {
            store
                .schedule(id)
                .await
                .expect("get")
                .expect("stored")
                .state
        }
    };
    assert_eq!(jobs_of(&store, "skip").await.len(), 1);
    assert_eq!(
        (state("skip").await.runs, state("skip").await.skipped),
        (1, 2)
    );
    assert_eq!(jobs_of(&store, "allow").await.len(), 3);
    // buffer_one: tick 2 waited, tick 3 replaced it (tick 2 counted skipped).
    let buffer = state("buffer").await;
    assert_eq!((buffer.runs, buffer.skipped), (1, 1));
    assert_eq!(buffer.buffered, Some(t0() + Duration::minutes(3)));
    // cancel_other: each tick cancelled the run before it.
    let cancel = jobs_of(&store, "cancel").await;
    assert_eq!(cancel.len(), 3);
    assert_eq!(
        cancel
            .iter()
            .filter(|j| j.status == JobStatus::Cancelled)
            .count(),
        2
    );

    // The buffered tick runs once the earlier run has finished.
    let first = jobs_of(&store, "buffer").await.remove(0);
    store.cancel(first.id).await.expect("finish the first run");
    let now = t0() + Duration::minutes(3) + Duration::seconds(2);
    schedule::evaluate_due(s, now, 100).await.expect("evaluate");
    let buffer = state("buffer").await;
    assert_eq!((buffer.runs, buffer.buffered), (2, None));
    let keys: Vec<_> = jobs_of(&store, "buffer")
        .await
        .into_iter()
        .filter_map(|j| j.idempotency_key)
        .collect();
    assert!(
        keys.contains(&"schedule:buffer:2026-01-01T00:03:00Z".to_string()),
        "{keys:?}"
    );

    // A manual trigger goes through the policy: skipped while a run is pending.
    let skipped = schedule::trigger(s, "skip", now).await.expect("trigger");
    assert!(skipped.fired.is_empty());
    let allowed = schedule::trigger(s, "allow", now).await.expect("trigger");
    assert_eq!(allowed.fired.len(), 1);
}

pub async fn a_changed_template_does_not_conflict_with_a_fired_tick(b: &Backend) {
    let store = b.open().await;
    let s = store.as_ref();
    let old = schedule::save(
        s,
        every("deploy", "1m", Overlap::AllowAll),
        Save::Create,
        t0(),
    )
    .await
    .expect("create");
    let now = t0() + Duration::minutes(1);
    let fired = schedule::evaluate(s, old.clone(), now)
        .await
        .expect("evaluate");
    assert_eq!(fired.fired.len(), 1);
    // A process of the next deploy evaluates the same tick from a stale read, with another
    // template: it finds the tick's job, loses the compare-and-set, and errs nothing.
    let mut stale = old.clone();
    stale.spec.job.goal = "the new deploy's goal".into();
    let again = schedule::evaluate(s, stale, now)
        .await
        .expect("no conflict");
    assert!(again.lost_race);
    assert_eq!(again.fired, fired.fired);
    assert_eq!(jobs_of(&store, "deploy").await.len(), 1);
    assert_eq!(
        store
            .schedule("deploy")
            .await
            .expect("get")
            .expect("stored")
            .state
            .runs,
        1
    );
}

pub async fn config_schedules_are_declared_once_and_owned(b: &Backend) {
    use schedule::{Declared, Source};
    let store = b.open().await;
    let s = store.as_ref();
    let entry = every("from-file", "1m", Overlap::Skip);
    // Three processes starting at once: one creates, the others find it applied.
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let (store, entry) = (store.clone(), entry.clone());
            tokio::spawn(async move { schedule::declare(store.as_ref(), entry, t0()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("join").expect("declare"));
    }
    outcomes.sort_by_key(|o| *o != Declared::Created);
    assert_eq!(
        outcomes,
        [Declared::Created, Declared::Unchanged, Declared::Unchanged]
    );
    let created = store
        .schedule("from-file")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(created.state.source, Source::Config);
    assert_eq!(created.state.version, 1);

    // A pause made at run time outlives a restart with the same file.
    schedule::pause(s, "from-file", t0()).await.expect("pause");
    assert_eq!(
        schedule::declare(s, entry.clone(), t0())
            .await
            .expect("again"),
        Declared::Unchanged
    );
    let paused = store
        .schedule("from-file")
        .await
        .expect("get")
        .expect("stored");
    assert!(paused.spec.paused);
    assert_eq!(paused.state.source, Source::Config);

    // A changed entry wins, counters kept.
    let mut changed = entry.clone();
    changed.job.goal = "new goal".into();
    assert_eq!(
        schedule::declare(s, changed.clone(), t0())
            .await
            .expect("changed"),
        Declared::Updated
    );
    let updated = store
        .schedule("from-file")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(updated.spec, changed);
    assert_eq!(updated.state.declared.as_ref(), Some(&changed));

    // A schedule created at run time under a declared id passes to the file.
    let api = every("made-at-run-time", "1h", Overlap::Skip);
    schedule::save(s, api.clone(), Save::Create, t0())
        .await
        .expect("create");
    assert_eq!(
        store
            .schedule("made-at-run-time")
            .await
            .expect("get")
            .expect("stored")
            .state
            .source,
        Source::Api
    );
    let mut declared = api.clone();
    declared.every = Some("2h".into());
    assert_eq!(
        schedule::declare(s, declared, t0())
            .await
            .expect("take over"),
        Declared::TakenOver
    );
    let taken = store
        .schedule("made-at-run-time")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(taken.state.source, Source::Config);
    assert_eq!(taken.spec.every.as_deref(), Some("2h"));

    // A bad entry names its field.
    let mut bad = entry;
    bad.timezone = "Mars/Olympus".into();
    match schedule::declare(s, bad, t0()).await {
        Err(ScheduleError::Invalid(e)) => assert_eq!(e.field, "timezone"),
        other => panic!("expected an invalid timezone, got {other:?}"),
    }
}

pub async fn schedules_are_replaced_in_batches_by_compare_and_set(b: &Backend) {
    let store = b.open().await;
    let s = store.as_ref();
    let mut current = Vec::new();
    for i in 0..5 {
        let spec = every(&format!("batch-{i}"), "1m", Overlap::Skip);
        current.push(
            schedule::save(s, spec, Save::Create, t0())
                .await
                .expect("create"),
        );
    }
    assert!(store
        .replace_schedules(&[])
        .await
        .expect("empty")
        .is_empty());
    // Writes 1 and 3 carry a stale version: they lose, the others win.
    let writes: Vec<(schedule::Schedule, i64)> = current
        .iter()
        .enumerate()
        .map(|(i, old)| {
            let mut new = old.clone();
            new.state.runs = 7;
            new.state.version = old.state.version + 1;
            let expected = if i % 2 == 1 {
                old.state.version + 5
            } else {
                old.state.version
            };
            (new, expected)
        })
        .collect();
    assert_eq!(
        store.replace_schedules(&writes).await.expect("batch"),
        [true, false, true, false, true]
    );
    for (i, old) in current.iter().enumerate() {
        let now = store
            .schedule(&old.spec.id)
            .await
            .expect("get")
            .expect("stored");
        if i % 2 == 1 {
            assert_eq!(&now, old);
        } else {
            assert_eq!(now.state.runs, 7);
            assert_eq!(now.state.version, old.state.version + 1);
        }
    }
    // A second batch at the old versions loses everywhere.
    assert_eq!(
        store.replace_schedules(&writes).await.expect("again"),
        [false, false, false, false, false]
    );
}

pub async fn many_due_schedules_fire_once_each_in_chunks(b: &Backend) {
    let store = b.open().await;
    let n = 1_100; // more than two chunks
    for i in 0..n {
        let spec = every(&format!("many-{i:04}"), "1m", Overlap::AllowAll);
        schedule::save(store.as_ref(), spec, Save::Create, t0())
            .await
            .expect("create");
    }
    let now = t0() + Duration::minutes(1);
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { schedule::evaluate_due(store.as_ref(), now, 10_000).await })
        })
        .collect();
    let mut counted = 0;
    for task in tasks {
        let done = task.await.expect("join").expect("evaluate");
        counted += done.iter().filter(|(_, e)| !e.lost_race).count();
    }
    assert_eq!(
        counted, n,
        "each schedule advanced by exactly one evaluator"
    );
    let mut keys = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(&JobFilter {
                kind: Some("noop".into()),
                before,
                limit: 1000,
                ..Default::default()
            })
            .await
            .expect("list");
        keys.extend(page.jobs.into_iter().filter_map(|j| j.idempotency_key));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(keys.len(), n);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert_eq!(keys[0], "schedule:many-0000:2026-01-01T00:01:00Z");
    let all = store.schedules().await.expect("schedules");
    assert!(all
        .iter()
        .all(|s| s.state.runs == 1 && s.state.cursor == now));
    assert!(schedule::evaluate_due(store.as_ref(), now, 10_000)
        .await
        .expect("nothing due")
        .is_empty());
}
