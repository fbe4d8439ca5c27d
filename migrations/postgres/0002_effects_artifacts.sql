-- The effect ledger: one row per completed external side effect of a job, keyed by the
-- job's own effect key. A resumed run returns the stored result instead of repeating it.
CREATE TABLE effects (
    job_id     uuid NOT NULL,
    key        text NOT NULL,
    result     jsonb NOT NULL,
    epoch      bigint NOT NULL,    -- the lease epoch that performed it
    created_at bigint NOT NULL,
    PRIMARY KEY (job_id, key)
);

-- Named blobs a job produced (reports, screenshots).
CREATE TABLE artifacts (
    job_id       uuid NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    created_at   bigint NOT NULL,
    PRIMARY KEY (job_id, name)
);
