INSERT INTO drover_migrations (version, name, applied_at) VALUES (?, ?, ?)
