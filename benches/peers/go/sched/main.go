// The runtime benchmarks of minigo's benches/benches/runtime.rs, in Go: ns per operation.
// Run with GOMAXPROCS=1 and =2.
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

func measure(name string, n int, f func(n int)) {
	f(n / 10) // warm up
	best := time.Duration(1 << 62)
	for r := 0; r < 5; r++ {
		t := time.Now()
		f(n)
		if d := time.Since(t); d < best {
			best = d
		}
	}
	fmt.Printf("%-28s %10.1f ns/op\n", name, float64(best.Nanoseconds())/float64(n))
}

func main() {
	measure("spawn_exit", 1_000_000, func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() { wg.Done() }()
		}
		wg.Wait()
	})
	measure("context_switch", 2_000_000, func(n int) {
		done := make(chan bool)
		go func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			done <- true
		}()
		for i := 0; i < n; i++ {
			runtime.Gosched()
		}
		<-done
	})
	measure("ping_pong", 1_000_000, func(n int) {
		ping, pong := make(chan int), make(chan int)
		go func() {
			for i := 0; i < n; i++ {
				v := <-ping
				pong <- v + 1
			}
		}()
		for i := 0; i < n; i++ {
			ping <- i
			<-pong
		}
	})
	never := make(chan bool)
	for i := 0; i < 10_000; i++ {
		go func() { <-never }()
	}
	time.Sleep(10 * time.Millisecond)
	var ms runtime.MemStats
	measure("stop_the_world_10k", 20_000, func(n int) {
		for i := 0; i < n; i++ {
			runtime.ReadMemStats(&ms)
		}
	})
}
