SELECT site, updated_at FROM profile_sessions WHERE user_id = $1 ORDER BY site
