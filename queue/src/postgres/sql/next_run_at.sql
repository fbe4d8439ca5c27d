SELECT min(run_at) FROM jobs WHERE status = 'queued' AND run_at > drover_now()
