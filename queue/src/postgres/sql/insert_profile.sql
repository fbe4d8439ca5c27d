INSERT INTO profiles (user_id, profile, created_at, updated_at) VALUES ($1, $2::jsonb, $3, $3)
ON CONFLICT (user_id) DO NOTHING
