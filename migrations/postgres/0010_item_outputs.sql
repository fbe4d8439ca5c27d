-- Map item outputs (issue 12 §3): one row per item, written with the checkpoint whose done
-- ranges include it, read back in index order when the map ends; deleted with the job.
CREATE TABLE item_outputs (
    job_id uuid NOT NULL,
    step   text NOT NULL,
    idx    bigint NOT NULL,
    visit  bigint NOT NULL,
    output bytea NOT NULL,
    PRIMARY KEY (job_id, step, idx)
);
