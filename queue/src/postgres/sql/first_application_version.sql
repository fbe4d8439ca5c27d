INSERT INTO application_users (user_id, version) VALUES ($1, 1)
ON CONFLICT (user_id) DO NOTHING
