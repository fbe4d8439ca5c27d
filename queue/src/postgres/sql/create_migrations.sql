CREATE TABLE IF NOT EXISTS drover_migrations (version bigint PRIMARY KEY,
  name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
