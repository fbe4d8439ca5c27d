SELECT max(version) FROM drover_migrations
