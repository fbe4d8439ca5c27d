-- Tell every listening process that a job's event log grew, from whichever process wrote
-- it: one NOTIFY per job per statement, carrying `job_id:newest seq`. API processes read
-- the new rows once and fan them out to their SSE clients.
CREATE FUNCTION drover_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('drover.' || TG_TABLE_SCHEMA || '.events', job_id::text || ':' || max(seq))
    FROM new_events GROUP BY job_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION drover_notify_events();
