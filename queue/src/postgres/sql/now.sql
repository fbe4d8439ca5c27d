SELECT drover_now()
