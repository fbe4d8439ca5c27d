SELECT *, drover_now() AS now FROM jobs WHERE id = $1 FOR UPDATE
