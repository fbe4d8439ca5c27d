INSERT INTO artifacts (job_id, name, content_type, data, created_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, name) DO UPDATE SET
  content_type = excluded.content_type, data = excluded.data,
  created_at = excluded.created_at
