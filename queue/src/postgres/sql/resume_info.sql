SELECT filename, content_type, length(data)::bigint AS bytes, uploaded_at FROM profile_resumes
WHERE user_id = $1
