SELECT filename, content_type, data, uploaded_at FROM profile_resumes WHERE user_id = $1
