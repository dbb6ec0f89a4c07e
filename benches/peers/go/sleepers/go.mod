module sleepers

go 1.23
