UPDATE jobs SET event_seq = event_seq + 1 WHERE id = ? RETURNING event_seq
