module minigo/peers/sched

go 1.23.5
