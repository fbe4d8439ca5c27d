AND queue = ANY($4)
