-- Gates: the questions a waiting job asks an operator. The gate itself is one JSON document
-- (`body`, the `Gate` model); the columns beside it are what the inbox and the deadline loop
-- search by.
CREATE TABLE gates (
    job_id    uuid NOT NULL,
    key       text NOT NULL,
    status    text NOT NULL,      -- open | decided | timed_out
    opened_at bigint NOT NULL,
    deadline  bigint NOT NULL,
    body      jsonb NOT NULL,
    PRIMARY KEY (job_id, key)
);
-- The inbox: gates by status, oldest opened first.
CREATE INDEX gates_inbox ON gates (status, opened_at, job_id, key);
-- The deadline loop: open gates by deadline.
CREATE INDEX gates_deadlines ON gates (deadline) WHERE status = 'open';
