AND queue = $4
