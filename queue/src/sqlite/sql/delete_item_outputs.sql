DELETE FROM item_outputs WHERE job_id = ?
