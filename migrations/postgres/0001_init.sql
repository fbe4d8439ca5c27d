-- drover schema v1 (PostgreSQL). Times are milliseconds since the Unix epoch, taken from
-- the database server's clock so that workers on many machines agree on lease expiry.
CREATE FUNCTION drover_now() RETURNS bigint LANGUAGE sql STABLE AS
$$ SELECT (extract(epoch FROM statement_timestamp()) * 1000)::bigint $$;

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,          -- UUIDv7: sorts by creation time
    queue            text NOT NULL,
    kind             text NOT NULL,
    goal             text NOT NULL,
    config           jsonb NOT NULL,
    priority         integer NOT NULL,          -- 0 high, 1 normal, 2 low
    created_by       text,
    idempotency_key  text UNIQUE,
    fingerprint      text,                      -- of the submitted body, for idempotency
    run_at           bigint NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    job_timeout      bigint,
    step_timeout     bigint,
    api_timeout      bigint,
    status           text NOT NULL,
    progress         jsonb,
    result           jsonb,
    error            jsonb,
    artifacts        jsonb NOT NULL DEFAULT '[]',
    lease_epoch      bigint NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at bigint,
    pause_requested  boolean NOT NULL DEFAULT false,
    cancel_requested boolean NOT NULL DEFAULT false,
    event_seq        bigint NOT NULL DEFAULT 0,
    created_at       bigint NOT NULL,
    started_at       bigint,
    updated_at       bigint NOT NULL,
    finished_at      bigint
);
-- The claim walks this index in order: priority, then run_at, then id.
CREATE INDEX jobs_ready ON jobs (priority, run_at, id) WHERE status = 'queued';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_by_status ON jobs (status, id);
CREATE INDEX jobs_by_queue ON jobs (queue, status);

CREATE TABLE job_events (
    job_id     uuid NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    data       jsonb NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE checkpoints (
    job_id     uuid NOT NULL,
    seq        bigint NOT NULL,
    step       text NOT NULL,
    state      bytea NOT NULL,
    compressed boolean NOT NULL,
    created_at bigint NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE queues (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    updated_at bigint NOT NULL
);

CREATE TABLE workers (
    id             text PRIMARY KEY,
    host           text NOT NULL,
    pid            bigint NOT NULL,
    slots          integer NOT NULL,
    busy           integer NOT NULL,
    started_at     bigint NOT NULL,
    last_heartbeat bigint NOT NULL
);

CREATE TABLE leaders (
    name       text PRIMARY KEY,
    holder     text NOT NULL,
    expires_at bigint NOT NULL
);
