-- Shared rate limits (SPEC §7.1): one row per limited resource, written by compare-and-set
-- on `version`. Counts are NULL while unknown; times are epoch ms.
CREATE TABLE rate_limits (
    resource      TEXT PRIMARY KEY,
    rate_limit    BIGINT,
    remaining     BIGINT,
    reset_at      BIGINT,
    blocked_until BIGINT,
    version       BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- The global suppression list and the last contact of each address (SPEC §7.2), keyed by
-- the normalised address; the primary keys serve the batched lookups and the paging.
CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    note       TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE contacts (
    email  TEXT PRIMARY KEY,
    job_id BLOB NOT NULL,
    at     BIGINT NOT NULL
);
