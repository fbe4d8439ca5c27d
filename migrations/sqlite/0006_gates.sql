-- Gates: the questions a waiting job asks an operator. The gate itself is one JSON document
-- (`body`, the `Gate` model); the columns beside it are what the inbox and the deadline loop
-- search by.
CREATE TABLE gates (
    job_id    BLOB NOT NULL,
    key       TEXT NOT NULL,
    status    TEXT NOT NULL,      -- open | decided | timed_out
    opened_at INTEGER NOT NULL,
    deadline  INTEGER NOT NULL,
    body      TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
) WITHOUT ROWID;
CREATE INDEX gates_inbox ON gates (status, opened_at, job_id, key);
CREATE INDEX gates_deadlines ON gates (deadline) WHERE status = 'open';
