UPDATE applications SET outcome = ?3, counted = ?4, settled_at = ?5
WHERE user_id = ?1 AND posting_key = ?2 AND outcome = ?6
