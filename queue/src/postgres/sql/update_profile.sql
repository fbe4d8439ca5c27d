UPDATE profiles SET profile = $2::jsonb, updated_at = $3 WHERE user_id = $1
