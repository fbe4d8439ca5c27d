INSERT INTO drover_migrations (version, name) VALUES ($1, $2)
