-- One NOTIFY per 100 jobs of a statement instead of one per job: a batch claim or completion
-- of hundreds of jobs queues a few notifications, not hundreds. The payload is a
-- comma-separated list of `job_id:newest seq` (at most ~5.7 kB, under NOTIFY's 8 kB limit).
CREATE OR REPLACE FUNCTION drover_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drover.' || TG_TABLE_SCHEMA || '.events', string_agg(entry, ','))
    FROM (SELECT job_id::text || ':' || max(seq) AS entry,
                 (row_number() OVER () - 1) / 100 AS chunk
          FROM new_events GROUP BY job_id) AS per_job
    GROUP BY chunk;
    RETURN NULL;
END
$$;
