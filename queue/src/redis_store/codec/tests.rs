//! The codec, without Redis: what a job's hash holds, what decisions write.

use super::*;
use serde_json::json;

const AT: i64 = 1_700_000_000_000;

fn new_job() -> NewJob {
    let mut job = NewJob::new("email", "send the digest");
    job.config = json!({"to": "a@example.com"});
    job.priority = Priority::High;
    job.created_by = Some("ops".into());
    job.idempotency_key = Some("digest-1".into());
    job.timeouts.job_timeout = Some(60);
    job.timeouts.api_timeout = Some(5);
    job
}

/// The job `enqueue.lua` stores for `job`, as `enqueue_batch` builds it from its args.
fn stored(job: &NewJob) -> Job {
    let mut fields = Vec::new();
    push_new_job_fields(&mut fields, job, 4);
    let id = uuid::Uuid::now_v7().to_string();
    created_job(&id, "mail", "", &fields, &AT.to_string()).expect("created job")
}

#[test]
fn a_new_job_round_trips_through_its_fields() {
    let new = new_job();
    let job = stored(&new);
    assert_eq!(
        (
            job.kind.as_str(),
            job.goal.as_str(),
            &job.config,
            job.priority
        ),
        ("email", "send the digest", &new.config, Priority::High)
    );
    assert_eq!(job.queue, "mail");
    assert_eq!(job.created_by.as_deref(), Some("ops"));
    assert_eq!(job.idempotency_key.as_deref(), Some("digest-1"));
    assert_eq!(job.timeouts, new.timeouts);
    assert_eq!((job.max_attempts, job.attempt, job.lease_epoch), (4, 0, 0));
    assert_eq!((job.status, job.event_seq), (JobStatus::Queued, 1));
    assert_eq!(job.run_at, from_millis(AT), "no run_at: due at creation");
    assert_eq!((job.created_at, job.updated_at), (job.run_at, job.run_at));
    assert!(job.artifacts.is_empty() && !job.pause_requested && !job.cancel_requested);

    // The hash enqueue.lua writes, plus what later scripts add, reads back the same.
    let mut fields = Vec::new();
    push_new_job_fields(&mut fields, &new, 4);
    let mut hash: HashMap<String, String> = fields
        .chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    for (name, value) in [
        ("id", job.id.to_string()),
        ("queue", "mail".into()),
        ("status", "queued".into()),
        ("run_at", AT.to_string()),
        ("created_at", AT.to_string()),
        ("event_seq", "1".into()),
        ("ver", "1".into()),
        ("events", "list".into()),
    ] {
        hash.insert(name.into(), value);
    }
    assert_eq!(job_from_hash(&hash).expect("read"), job);
}

#[test]
fn fields_at_their_default_are_not_sent() {
    let mut fields = Vec::new();
    push_new_job_fields(&mut fields, &NewJob::new("noop", "x"), 3);
    assert_eq!(fields, ["kind", "noop", "goal", "x", "max_attempts", "3"]);
}

#[test]
fn an_unchanged_job_writes_only_updated_at() {
    let job = stored(&new_job());
    let now = from_millis(AT + 1_000);
    assert_eq!(
        changed_fields(&job, &job, now),
        [("updated_at", "@now".into())]
    );
    assert!(index_moves(&job, &job, now).is_empty());
}

/// Checks the index moves from `old` to `new`, each written `op key score` (the member
/// is always the job).
fn assert_moves(old: &Job, new: &Job, now: DateTime<Utc>, expected: &[&str]) {
    let moves: Vec<String> = index_moves(old, new, now)
        .iter()
        .map(|op| op.join(" "))
        .collect();
    let expected: Vec<String> = expected.iter().map(|m| format!("{m} {}", old.id)).collect();
    assert_eq!(moves, expected);
}

#[test]
fn a_queued_job_that_runs_leaves_ready_and_queued_for_running() {
    let old = stored(&new_job());
    let mut new = old.clone();
    new.status = JobStatus::Running;
    let moves = [
        "zrem ready:0 0",
        "zrem status:queued 0",
        "zadd status:running 0",
    ];
    assert_moves(&old, &new, from_millis(AT), &moves);
}

#[test]
fn a_retry_is_queued_by_the_server_clock_after_its_delay() {
    let queued = stored(&new_job());
    let mut old = queued.clone();
    old.status = JobStatus::Running;
    old.attempt = 1;
    old.lease_owner = Some("w-1".into());
    let now = from_millis(AT + 10_000);
    let mut new = old.clone();
    new.status = JobStatus::Queued;
    new.run_at = now + chrono::Duration::seconds(5);
    new.lease_owner = None;
    new.error = Some(JobFailure::transient("timeout"));
    let fields = changed_fields(&old, &new, now);
    assert_eq!(
        fields.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        ["updated_at", "status", "run_at", "error", "lease_owner"]
    );
    assert_eq!(fields[2].1, "@now+5000");
    assert_eq!(fields[4].1, "@nil", "a cleared field is deleted");
    assert_moves(
        &old,
        &new,
        now,
        &[
            "zadd ready:0 @now+5000",
            "zrem leases 0",
            "zrem status:running 0",
            "zadd status:queued 0",
        ],
    );
}

#[test]
fn a_job_that_ends_is_indexed_for_retention() {
    let mut old = stored(&new_job());
    old.status = JobStatus::Running;
    let mut new = old.clone();
    new.status = JobStatus::Failed;
    let now = from_millis(AT);
    assert!(changed_fields(&old, &new, now).contains(&("finished_at", "@now".into())));
    assert_moves(
        &old,
        &new,
        now,
        &[
            "zrem leases 0",
            "zrem status:running 0",
            "zadd status:failed 0",
            "zadd finished:failed @now",
        ],
    );
}

#[test]
fn events_read_from_both_logs() {
    let id = uuid::Uuid::now_v7();
    let event = event_from_entry(id, &format!("3\n{AT}\n{{\"done\":1}}\nprogress")).unwrap();
    assert_eq!(
        (event.seq, event.kind.as_str(), event.data, event.created_at),
        (3, "progress", json!({"done": 1}), from_millis(AT))
    );
    assert!(event_from_entry(id, "x\n0\nnull\nlog").is_err());

    let fields: HashMap<String, String> = [
        ("kind", "status"),
        ("data", r#"{"status":"queued"}"#),
        ("at", "1700000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let event = event_from_stream(id, "0-1", &fields).unwrap();
    assert_eq!((event.seq, event.kind.as_str()), (1, "status"));
    assert_eq!(event.data["status"], "queued");
    assert_eq!(event.created_at, from_millis(AT));
}

#[test]
fn run_log_entries_read_from_their_metadata() {
    let id = uuid::Uuid::now_v7();
    let cp = checkpoint_from(id, "2", &format!("fetch\n1\n{AT}"), vec![1, 2, 3]);
    assert_eq!(
        (
            cp.seq,
            cp.step.as_str(),
            cp.compressed,
            cp.size,
            cp.created_at
        ),
        (2, "fetch", true, 3, from_millis(AT))
    );
    let effect = effect_from("send".into(), r#"{"id":7}"#, Some(&format!("3:{AT}"))).unwrap();
    assert_eq!(
        (
            effect.key.as_str(),
            effect.result,
            effect.epoch,
            effect.created_at
        ),
        ("send", json!({"id": 7}), 3, from_millis(AT))
    );
    let unknown = effect_from("send".into(), "1", None).unwrap();
    assert_eq!((unknown.epoch, unknown.created_at), (0, from_millis(0)));
    let meta = artifact_meta("a.csv".into(), &format!("text/csv\n{AT}"), 10);
    assert_eq!(
        (meta.content_type.as_str(), meta.size, meta.created_at),
        ("text/csv", 10, from_millis(AT))
    );
}
