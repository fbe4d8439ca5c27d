SELECT * FROM jobs WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR created_by = $3)
  AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5
