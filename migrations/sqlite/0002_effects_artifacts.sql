-- The effect ledger: one row per completed external side effect of a job, keyed by the
-- job's own effect key. A resumed run returns the stored result instead of repeating it.
CREATE TABLE effects (
    job_id     BLOB NOT NULL,
    key        TEXT NOT NULL,
    result     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,   -- the lease epoch that performed it
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;

-- Named blobs a job produced (reports, screenshots).
CREATE TABLE artifacts (
    job_id       BLOB NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (job_id, name)
);
