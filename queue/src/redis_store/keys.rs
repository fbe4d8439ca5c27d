//! Key and channel names. Every key of a queue starts with its base, `<prefix>:{<prefix>:q:<queue>}`:
//! the hash tag puts all of a queue's keys in one Redis Cluster slot, so each script (which
//! touches one queue) stays in one slot. A few global keys live under `<prefix>:{<prefix>}`.
//!
//! Every key the store writes, with its type and who writes it (Rust code in *italics*):
//!
//! | key (after the queue's base) | type | holds | written by |
//! |---|---|---|---|
//! | `:job:<id>` | hash | the job's fields; also `ver` (bumped by every write that `apply.lua` checks), `cp_seq`, `events` (`list` for the list log) and `fingerprint`; fields at their default are absent | enqueue, claim, renew, apply, complete, checkpoint, artifact; deleted by prune |
//! | `:ready:<rank>` | zset, score `run_at` ms | queued jobs by priority rank 0–2 | enqueue, claim, apply |
//! | `:status:<status>` | zset, score 0 (read by lex: ids sort by time) | jobs by status | enqueue, claim, apply, complete, prune |
//! | `:all` | zset, score 0 | every job of the queue | enqueue, prune |
//! | `:finished:<status>` | zset, score `finished_at` ms | terminal jobs, for retention | apply, complete, prune |
//! | `:leases` | zset, score lease expiry ms | running jobs | claim, renew, apply, complete, *`expired_leases`* (drops stale entries) |
//! | `:paused` | string `1` | the queue is paused (claim takes nothing) | *`pause_queue`*, *`resume_queue`* |
//! | `:idem:<key>` | string | the job id an idempotency key names | enqueue, prune |
//! | `:eventlog:<id>` | list | event n at index n-1: `<seq>\n<at ms>\n<data>\n<kind>` | every script that appends an event (prelude `put_event`); prune |
//! | `:events:<id>` | stream, ids `0-<seq>` | the event log of jobs stored before the list layout | as `eventlog`, for those jobs; prune |
//! | `:cp:<id>` | hash seq → bytes | kept checkpoint states | checkpoint, prune |
//! | `:cpmeta:<id>` | hash seq → `<step>\n<compressed>\n<at ms>` | kept checkpoints' metadata | checkpoint, prune |
//! | `:items:<id>` | hash `<step>\n<index, 20 digits>` → `<visit>\n<output>` | map item outputs (a row per item) | checkpoint, prune |
//! | `:itemidx:<id>` | zset, score 0 (read by lex), the `items` fields | item outputs in step and index order | checkpoint, prune |
//! | `:effects:<id>` | hash key → JSON | recorded effects (first write wins) | effect, prune |
//! | `:effmeta:<id>` | hash key → `<epoch>:<at ms>` | when and under which lease each was recorded | effect, prune |
//! | `:art:<id>` | hash name → bytes | artifacts | artifact, prune |
//! | `:artmeta:<id>` | hash name → `<content type>\n<at ms>` | artifacts' metadata | artifact, prune |
//! | `:artlist:<id>` | list | artifact names in first-put order | artifact, prune |
//! | `:gates:<id>` | hash key → JSON | the job's gates (the `Gate` model) | apply, prune |
//! | `:gate_status:<status>` | zset, score opened at ms, member `<id>/<key>` | gates by status, for the inbox | apply, prune |
//! | `:gate_deadlines` | zset, score deadline ms, member `<id>/<key>` | open gates, for the deadline loop | apply, prune |
//!
//! | global key (after `<prefix>:{<prefix>}`) | type | holds | written by |
//! |---|---|---|---|
//! | `:queues` | set | every queue ever used | *enqueue*, *`pause_queue`* |
//! | `:jobq` | hash id → queue | where each job lives (`queue_index.rs`); written before the job, so a crash leaves at worst a harmless entry | *enqueue* (removed again when the script refuses), *prune* |
//! | `:workers` | hash id → JSON | the worker registry | *`heartbeat_worker`*, *`remove_worker`* |
//! | `:leader:<name>` | string, with a TTL | who holds a leadership | lead, *`resign`* |
//! | `:ratelimit:<resource>` | hash `limit`, `remaining`, `reset_at`, `blocked_until` (absent: unknown), `version`, `updated_at` | a shared rate limit | `rate_limit_put` (a compare-and-set on `version`) |
//! | `:ratelimits` | set | every resource with a rate limit | `rate_limit_put` |
//! | `:supp` | hash address → JSON | the suppression list | suppress, unsuppress |
//! | `:supp:idx` | zset, score 0 (read by lex) | suppressed addresses, for paging | suppress, unsuppress |
//! | `:contacts` | hash address → `<at ms>\n<job id>` | the last contact of each address | contact (keeps the latest) |
//! | `:profile:<user>` | hash `profile` (JSON), `created_at`, `updated_at` | a profile of the apply workload | *`put_profile`* (MULTI: `created_at` set once), *`delete_profile`* |
//! | `:resume:<user>` | hash `filename`, `content_type`, `data` (bytes), `uploaded_at` | the user's résumé | *`put_resume`* (one HSET), *`delete_profile`* |
//! | `:sess:<user>` | hash site → sealed blob | session cookies, sealed above the store (never plaintext) | *`put_session`*, *`delete_session`* (MULTI with `sessat`), *`delete_profile`* |
//! | `:sessat:<user>` | hash site → ms | when each session was stored | as `sess` |
//! | `:apps:<user>` | hash posting → `<outcome>\n<counted 1/0>\n<claimed ms>\n<settled ms or ''>\n<job id>` | the user's applications ledger | `application_insert` (a compare-and-set on `appsver`), `application_replace` and `application_remove` (on the outcome) |
//! | `:appsidx:<user>` | zset, score 0 (read by lex) | the ledger's postings, for paging | as `apps` |
//! | `:appscount:<user>` | zset, score claimed_at ms | counted postings: the caps' day and month counts (`ZCOUNT`) | as `apps` (a `manual` or `failed` settle removes the posting) |
//! | `:appsver:<user>` | string | the ledger's version, bumped by each claim | `application_insert` |
//!
//! On a Redis Cluster (`redis+cluster://`) the queue's base is `<prefix>:{<prefix>}:q:<queue>`
//! instead: every key of the store hashes to the one slot of `{<prefix>}`, so the pipelines
//! that read jobs of several queues, and every script, stay on one master. A store's load
//! then sits on one master; several stores (prefixes) spread over the cluster. A single
//! server keeps the per-queue tag (its data never moves to a cluster as is).
//!
//! Pub/sub channels are `<prefix>:<name>` (no hash tag: PUBLISH reaches the whole cluster):
//! `jobs` (a queue name: jobs are due there), `events` (`<id>:<seq>[,<id>:<seq>…]`, at most
//! 100 a message) and `control` (a job id: a pause or cancel was requested).

use super::RedisStore;

impl RedisStore {
    /// The base of every key of `queue`: `<prefix>:{<prefix>:q:<queue>}`, on a cluster
    /// `<prefix>:{<prefix>}:q:<queue>`.
    pub(super) fn base(&self, queue: &str) -> String {
        if self.cluster {
            format!("{}:{{{}}}:q:{queue}", self.prefix, self.prefix)
        } else {
            format!("{}:{{{}:q:{queue}}}", self.prefix, self.prefix)
        }
    }

    /// A global key: `<prefix>:{<prefix>}:<name>`.
    pub(super) fn global(&self, name: &str) -> String {
        format!("{}:{{{}}}:{name}", self.prefix, self.prefix)
    }

    /// A pub/sub channel: `<prefix>:<name>`.
    pub(super) fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }
}
