-- Map item outputs (issue 12 §3): one row per item, written with the checkpoint whose done
-- ranges include it, read back in index order when the map ends; deleted with the job.
CREATE TABLE item_outputs (
    job_id BLOB NOT NULL,
    step   TEXT NOT NULL,
    idx    INTEGER NOT NULL,
    visit  INTEGER NOT NULL,
    output BLOB NOT NULL,
    PRIMARY KEY (job_id, step, idx)
);
