DELETE FROM profiles WHERE user_id = $1
