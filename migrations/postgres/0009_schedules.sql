-- Schedules (SPEC §8): the declaration (`spec`) and the evaluator's bookkeeping
-- (`state`) as JSON text, the compare-and-set `version`, and `due_at` (epoch ms; NULL
-- while paused), which the evaluator's one read of due schedules walks in order.
CREATE TABLE schedules (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    due_at BIGINT
);
CREATE INDEX schedules_due ON schedules (due_at) WHERE due_at IS NOT NULL;
