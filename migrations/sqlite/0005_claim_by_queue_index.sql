-- A claim for one queue reads this index in claim order (priority, run_at, id) and stops at
-- its limit. The old (queue, status) index made it read and sort every queued job of the
-- queue on each claim: 20 ms per claim at 6,000 queued.
DROP INDEX jobs_by_queue;
CREATE INDEX jobs_by_queue ON jobs (queue, status, priority, run_at, id);
