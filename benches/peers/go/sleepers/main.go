// The Go side of runtime/examples/sleepers.rs: N goroutines started at once, each
// sleeping a random 0-100 ms (the same xorshift sequence), report how late they woke.
// Run with GOMAXPROCS=2: `go run . 100000`.
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := 100000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	late := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	seed := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < n; i++ {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		d := time.Duration(seed%100000) * time.Microsecond
		wg.Add(1)
		go func() {
			t := time.Now()
			time.Sleep(d)
			l := time.Since(t) - d
			mu.Lock()
			late = append(late, l)
			mu.Unlock()
			wg.Done()
		}()
	}
	wg.Wait()
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	fmt.Printf("%d sleepers: lateness median %v, p99 %v, max %v\n", n, late[n/2], late[n*99/100], late[n-1])
}
