DELETE FROM profile_resumes WHERE user_id = $1
