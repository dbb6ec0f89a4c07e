module minigo/peers/workloads

go 1.23.5
