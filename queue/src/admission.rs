//! The bookkeeping of a batch enqueue, written once for both SQL backends: which jobs are
//! answered by a stored job with the same idempotency key (or conflict with it), which repeat
//! a key earlier in the same batch (or conflict with it), which are new, how many jobs each
//! queue gains, and the answers in submission order once the new rows are stored.
//!
//! A backend only reads the stored jobs of the batch's keys, checks each queue's depth
//! ([`check_depth`]) and inserts [`Admission::rows`], each in its own way (PostgreSQL in one
//! `unnest` statement, SQLite in multi-row INSERTs), then asks for [`Admission::answers`]
//! before it commits, so that a batch that cannot be answered leaves nothing behind.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::job::{Job, JobId, NewJob};
use crate::store::{Enqueued, StoreError, StoreResult};

/// A stored job found under one of the batch's idempotency keys, with the fingerprint of the
/// body it was submitted with.
pub(crate) struct Stored {
    pub job: Job,
    pub fingerprint: Option<String>,
}

/// A job of the batch that must be inserted.
pub(crate) struct NewRow<'a> {
    pub id: JobId,
    pub job: &'a NewJob,
    pub fingerprint: String,
    pub max_attempts: u32,
}

/// How one submitted job will be answered.
enum Answer {
    /// By the stored job under this key.
    Stored(String),
    /// By the row at this index of `rows`, once inserted.
    Row(usize),
    /// By whatever answers the row at this index: an earlier job of the batch had the key.
    Repeat(usize),
}

/// A batch, sorted into stored answers, repeats and rows to insert. See the module docs.
pub(crate) struct Admission<'a> {
    answers: Vec<Answer>,
    rows: Vec<NewRow<'a>>,
    stored: HashMap<String, Stored>,
}

impl<'a> Admission<'a> {
    /// The batch's distinct idempotency keys, in submission order: what the backend looks up.
    pub(crate) fn keys(jobs: &[NewJob]) -> Vec<&str> {
        let mut seen = HashSet::new();
        jobs.iter()
            .filter_map(|j| j.idempotency_key.as_deref())
            .filter(|key| seen.insert(*key))
            .collect()
    }

    /// Sorts the batch, given the stored jobs found under its keys. A job whose key is taken
    /// by a different body, stored or earlier in the batch, is an
    /// [`StoreError::IdempotencyConflict`].
    pub(crate) fn plan(
        jobs: &'a [NewJob],
        stored: Vec<Stored>,
        default_max_attempts: u32,
    ) -> StoreResult<Self> {
        let stored: HashMap<String, Stored> = stored
            .into_iter()
            .filter_map(|s| Some((s.job.idempotency_key.clone()?, s)))
            .collect();
        let mut rows: Vec<NewRow<'a>> = Vec::with_capacity(jobs.len());
        let mut first_with_key: HashMap<&str, usize> = HashMap::new();
        let mut answers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let fingerprint = job.fingerprint();
            if let Some(key) = job.idempotency_key.as_deref() {
                if let Some(found) = stored.get(key) {
                    if found.fingerprint.as_deref() != Some(fingerprint.as_str()) {
                        return Err(conflict(key, found.job.id));
                    }
                    answers.push(Answer::Stored(key.to_string()));
                    continue;
                }
                if let Some(&first) = first_with_key.get(key) {
                    if rows[first].fingerprint != fingerprint {
                        return Err(conflict(key, rows[first].id));
                    }
                    answers.push(Answer::Repeat(first));
                    continue;
                }
                first_with_key.insert(key, rows.len());
            }
            answers.push(Answer::Row(rows.len()));
            rows.push(NewRow {
                id: uuid::Uuid::now_v7(),
                job,
                fingerprint,
                max_attempts: job.max_attempts.unwrap_or(default_max_attempts),
            });
        }
        Ok(Admission {
            answers,
            rows,
            stored,
        })
    }

    /// The jobs to insert, in submission order, each with its new id.
    pub(crate) fn rows(&self) -> &[NewRow<'a>] {
        &self.rows
    }

    /// How many jobs each queue gains, by queue name (the order in which to lock them).
    pub(crate) fn per_queue(&self) -> Vec<(&str, u64)> {
        let mut per_queue: BTreeMap<&str, u64> = BTreeMap::new();
        for row in &self.rows {
            *per_queue.entry(row.job.queue_name()).or_default() += 1;
        }
        per_queue.into_iter().collect()
    }

    /// The keys of rows that were not inserted: another transaction stored the key first
    /// (PostgreSQL's `ON CONFLICT DO NOTHING` skipped them). Look them up and pass them to
    /// [`Admission::found`].
    pub(crate) fn keys_taken_meanwhile(&self, inserted: &HashMap<JobId, Job>) -> Vec<String> {
        self.rows
            .iter()
            .filter(|row| !inserted.contains_key(&row.id))
            .filter_map(|row| row.job.idempotency_key.clone())
            .collect()
    }

    /// A stored job found after the insert, under a key taken meanwhile.
    pub(crate) fn found(&mut self, stored: Stored) {
        if let Some(key) = stored.job.idempotency_key.clone() {
            self.stored.insert(key, stored);
        }
    }

    /// The answers in submission order, given the rows as stored by id.
    pub(crate) fn answers(self, mut inserted: HashMap<JobId, Job>) -> StoreResult<Vec<Enqueued>> {
        // What answered each row, for the repeats of its key later in the batch.
        let mut answered: Vec<Option<Job>> = vec![None; self.rows.len()];
        let mut results = Vec::with_capacity(self.answers.len());
        for answer in &self.answers {
            results.push(match answer {
                Answer::Stored(key) => Enqueued::Existing(self.stored[key].job.clone()),
                Answer::Row(at) => {
                    let row = &self.rows[*at];
                    let enqueued = match inserted.remove(&row.id) {
                        Some(job) => Enqueued::Created(job),
                        None => Enqueued::Existing(self.taken_meanwhile(row)?.clone()),
                    };
                    answered[*at] = Some(enqueued.job().clone());
                    enqueued
                }
                Answer::Repeat(at) => {
                    Enqueued::Existing(answered[*at].clone().ok_or_else(|| {
                        StoreError::Backend("batch bookkeeping out of step".into())
                    })?)
                }
            });
        }
        Ok(results)
    }

    /// The stored job that took `row`'s key meanwhile, if it has the same body.
    fn taken_meanwhile(&self, row: &NewRow<'_>) -> StoreResult<&Job> {
        let not_stored = || StoreError::Backend(format!("job {} was not stored", row.id));
        let key = row.job.idempotency_key.as_deref().ok_or_else(not_stored)?;
        let found = self.stored.get(key).ok_or_else(not_stored)?;
        if found.fingerprint.as_deref() != Some(row.fingerprint.as_str()) {
            return Err(conflict(key, found.job.id));
        }
        Ok(&found.job)
    }
}

/// Refuses a queue that already holds `held` unfinished jobs of at most `max` when it would
/// gain `adding` more.
pub(crate) fn check_depth(queue: &str, held: u64, adding: u64, max: u64) -> StoreResult<()> {
    if held + adding > max {
        return Err(StoreError::QueueFull {
            queue: queue.to_string(),
            max,
        });
    }
    Ok(())
}

fn conflict(key: &str, existing: JobId) -> StoreError {
    StoreError::IdempotencyConflict {
        key: key.to_string(),
        existing,
    }
}
