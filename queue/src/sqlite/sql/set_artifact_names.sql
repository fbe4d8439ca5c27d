UPDATE jobs SET artifacts = ?, updated_at = ? WHERE id = ?
