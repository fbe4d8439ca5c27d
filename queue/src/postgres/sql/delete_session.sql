DELETE FROM profile_sessions WHERE user_id = $1 AND site = $2
