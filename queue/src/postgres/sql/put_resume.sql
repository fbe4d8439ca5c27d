INSERT INTO profile_resumes (user_id, filename, content_type, data, uploaded_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (user_id) DO UPDATE SET filename = excluded.filename,
    content_type = excluded.content_type, data = excluded.data, uploaded_at = excluded.uploaded_at
