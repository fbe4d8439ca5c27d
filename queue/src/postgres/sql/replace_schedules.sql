UPDATE schedules AS s
SET spec = w.spec, state = w.state, version = s.version + 1, due_at = w.due_at
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
    AS w(id, spec, state, due_at, expected)
WHERE s.id = w.id AND s.version = w.expected
RETURNING s.id
