-- The apply workload's users (SPEC §7.3): a profile (JSON) per user id, a résumé, and
-- session cookies per site, sealed above the store (AES-256-GCM): no cookie value is ever
-- written here. Times are epoch ms; names in byte order ("C"), as on SQLite and Redis.
CREATE TABLE profiles (
    user_id    text COLLATE "C" PRIMARY KEY,
    profile    jsonb NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE TABLE profile_resumes (
    user_id      text COLLATE "C" PRIMARY KEY,
    filename     text NOT NULL,
    content_type text NOT NULL,
    data         bytea NOT NULL,
    uploaded_at  bigint NOT NULL
);
CREATE TABLE profile_sessions (
    user_id    text COLLATE "C" NOT NULL,
    site       text COLLATE "C" NOT NULL,
    blob       bytea NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (user_id, site)
);

-- Each user's applications ledger: one row per posting ever claimed; `counted` rows count
-- against the caps in the IST day and month of `claimed_at`. A claim inserts only while
-- the user's `version` is the one it read (and bumps it), so concurrent claims never
-- overshoot a cap.
CREATE TABLE application_users (
    user_id text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE applications (
    user_id     text COLLATE "C" NOT NULL,
    posting_key text COLLATE "C" NOT NULL,
    job_id      uuid NOT NULL,
    outcome     text NOT NULL,
    counted     boolean NOT NULL,
    claimed_at  bigint NOT NULL,
    settled_at  bigint,
    PRIMARY KEY (user_id, posting_key)
);
CREATE INDEX applications_counted ON applications (user_id, claimed_at) WHERE counted;
