-- The apply workload's users (SPEC §7.3): a profile (JSON) per user id, a résumé, and
-- session cookies per site, sealed above the store (AES-256-GCM): no cookie value is ever
-- written here. Times are epoch ms.
CREATE TABLE profiles (
    user_id    TEXT PRIMARY KEY,
    profile    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE profile_resumes (
    user_id      TEXT PRIMARY KEY,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    data         BLOB NOT NULL,
    uploaded_at  BIGINT NOT NULL
);
CREATE TABLE profile_sessions (
    user_id    TEXT NOT NULL,
    site       TEXT NOT NULL,
    blob       BLOB NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, site)
);

-- Each user's applications ledger: one row per posting ever claimed; `counted` rows count
-- against the caps in the IST day and month of `claimed_at`. A claim inserts only while
-- the user's `version` is the one it read (and bumps it).
CREATE TABLE application_users (
    user_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
CREATE TABLE applications (
    user_id     TEXT NOT NULL,
    posting_key TEXT NOT NULL,
    job_id      BLOB NOT NULL,
    outcome     TEXT NOT NULL,
    counted     INTEGER NOT NULL,
    claimed_at  BIGINT NOT NULL,
    settled_at  BIGINT,
    PRIMARY KEY (user_id, posting_key)
);
CREATE INDEX applications_counted ON applications (user_id, claimed_at) WHERE counted = 1;
