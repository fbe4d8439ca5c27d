UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?
