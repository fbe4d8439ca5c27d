-- Shared rate limits (SPEC §7.1): one row per limited resource, written by compare-and-set
-- on `version`. Counts are NULL while unknown; times are epoch ms.
CREATE TABLE rate_limits (
    resource      text COLLATE "C" PRIMARY KEY,
    rate_limit    bigint,
    remaining     bigint,
    reset_at      bigint,
    blocked_until bigint,
    version       bigint NOT NULL,
    updated_at    bigint NOT NULL
);

-- The global suppression list and the last contact of each address (SPEC §7.2), keyed by
-- the normalised address; the primary keys serve the batched lookups and the paging
-- (byte order, "C", as on SQLite and Redis, so pages split alike on every backend).
CREATE TABLE suppressions (
    email      text COLLATE "C" PRIMARY KEY,
    reason     text NOT NULL,
    note       text,
    created_at bigint NOT NULL
);
CREATE TABLE contacts (
    email  text COLLATE "C" PRIMARY KEY,
    job_id uuid NOT NULL,
    at     bigint NOT NULL
);
