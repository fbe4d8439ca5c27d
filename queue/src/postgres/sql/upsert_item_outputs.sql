INSERT INTO item_outputs (job_id, step, idx, visit, output)
SELECT $1, s, i, v, o FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bytea[]) AS t(s, i, v, o)
ON CONFLICT (job_id, step, idx) DO UPDATE SET visit = excluded.visit, output = excluded.output
