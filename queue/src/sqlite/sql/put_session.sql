INSERT INTO profile_sessions (user_id, site, blob, updated_at) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (user_id, site) DO UPDATE SET blob = excluded.blob, updated_at = excluded.updated_at
