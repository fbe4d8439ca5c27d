UPDATE application_users SET version = version + 1
WHERE user_id = $1 AND version = $2
