-- The pruner finds finished jobs past their retention by status and finish time.
CREATE INDEX jobs_finished ON jobs (status, finished_at) WHERE finished_at IS NOT NULL;
