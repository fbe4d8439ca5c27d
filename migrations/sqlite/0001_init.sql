-- drover schema v1 (SQLite). Times are milliseconds since the Unix epoch.
CREATE TABLE jobs (
    id               BLOB PRIMARY KEY,          -- UUIDv7: sorts by creation time
    queue            TEXT NOT NULL,
    kind             TEXT NOT NULL,
    goal             TEXT NOT NULL,
    config           TEXT NOT NULL,             -- JSON object
    priority         INTEGER NOT NULL,          -- 0 high, 1 normal, 2 low
    created_by       TEXT,
    idempotency_key  TEXT UNIQUE,
    fingerprint      TEXT,                      -- of the submitted body, for idempotency
    run_at           INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    job_timeout      INTEGER,
    step_timeout     INTEGER,
    api_timeout      INTEGER,
    status           TEXT NOT NULL,
    progress         TEXT,
    result           TEXT,
    error            TEXT,
    artifacts        TEXT NOT NULL DEFAULT '[]',
    lease_epoch      INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    pause_requested  INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    event_seq        INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);
-- The claim walks this index in order: priority, then run_at, then id.
CREATE INDEX jobs_ready ON jobs (priority, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, status);

CREATE TABLE job_events (
    job_id     BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    job_id     BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    step       TEXT NOT NULL,
    state      BLOB NOT NULL,
    compressed INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    slots          INTEGER NOT NULL,
    busy           INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL
);

CREATE TABLE leaders (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
