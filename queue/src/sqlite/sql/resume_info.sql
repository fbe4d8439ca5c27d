SELECT filename, content_type, length(data) AS bytes, uploaded_at FROM profile_resumes
WHERE user_id = ?1
