SELECT * FROM jobs WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2)
  AND (?3 IS NULL OR created_by = ?3) AND (?4 IS NULL OR id < ?4)
ORDER BY id DESC LIMIT ?5
