// goroutines as minigo's examples/src/workloads/goroutines.rs runs it: a spinner that
// never reaches a safepoint (Go preempts it asynchronously), N goroutines parked on one
// channel at once (resident bytes per parked goroutine, StackInuse), then released to
// build and check a 255-node tree each and exit, joined by a WaitGroup; a collection;
// StackInuse again.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type gnode struct {
	left, right *gnode
	id          uint64
}

const gDepth = 8

func gtree(depth uint32, id uint64) *gnode {
	if depth == 1 {
		return &gnode{id: id}
	}
	return &gnode{gtree(depth-1, 2*id), gtree(depth-1, 2*id+1), id}
}

func gcheck(n *gnode, id uint64) uint64 {
	var kids uint64
	if n.left != nil && n.right != nil {
		kids = gcheck(n.left, 2*id) + gcheck(n.right, 2*id+1)
	}
	if n.id == id {
		kids++
	}
	return kids
}

//go:noinline
func spin(stop *atomic.Bool, rounds *atomic.Uint64) {
	var n uint64
	for !stop.Load() {
		n++
		if n%65536 == 0 {
			rounds.Store(n)
		}
	}
}

// resident returns VmRSS and VmPTE in bytes.
func resident() (uint64, uint64) {
	b, _ := os.ReadFile("/proc/self/status")
	field := func(name string) uint64 {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, name) {
				f := strings.Fields(strings.TrimPrefix(l, name))
				if len(f) > 0 {
					v, _ := strconv.ParseUint(f[0], 10, 64)
					return v << 10
				}
			}
		}
		return 0
	}
	return field("VmRSS:"), field("VmPTE:")
}

func goroutines(args []string) error {
	n := 100000
	if len(args) > 1 {
		return usagef("goroutines: unexpected argument %q", args[1])
	}
	if len(args) == 1 {
		v, err := strconv.Atoi(args[0])
		if err != nil || v < 1 {
			return usagef("goroutines N: expected a whole number, got %q", args[0])
		}
		n = v
	}
	var stop atomic.Bool
	var rounds atomic.Uint64
	spinnerDone := make(chan struct{}, 1)
	go func() { spin(&stop, &rounds); spinnerDone <- struct{}{} }()
	for rounds.Load() == 0 {
		runtime.Gosched()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cycles0 := ms.NumGC

	runtime.GC()
	rss0, pte0 := resident()
	runtime.ReadMemStats(&ms)
	stack0 := ms.StackInuse
	release := make(chan struct{})
	var up, done sync.WaitGroup
	var finished atomic.Uint64
	t0 := time.Now()
	up.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func(i uint64) {
			up.Done()
			<-release
			id := 1 + i<<gDepth
			t := gtree(gDepth, id)
			if gcheck(t, id) == 1<<gDepth-1 {
				finished.Add(1)
			}
			done.Done()
		}(uint64(i))
	}
	up.Wait()
	parkedIn := time.Since(t0)
	rss1, pte1 := resident()
	runtime.ReadMemStats(&ms)
	peak := ms.StackInuse
	t1 := time.Now()
	close(release)
	done.Wait()
	joinedIn := time.Since(t1)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	after := ms.StackInuse
	stop.Store(true)
	<-spinnerDone
	cycles := ms.NumGC - cycles0

	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(n) }
	sub := func(a, b uint64) uint64 {
		if a > b {
			return a - b
		}
		return 0
	}
	fmt.Printf("goroutines: %d parked at once: %.0f ns each to start and park, %.0f ns each to wake, allocate %d KiB and exit\n",
		n, per(parkedIn), per(joinedIn), ((1<<gDepth)-1)*32>>10)
	fmt.Printf("goroutines: %d bytes resident and %d bytes of page tables per parked goroutine; StackInuse %d KiB above the start while parked, %d KiB after a collection\n",
		sub(rss1, rss0)/uint64(n), sub(pte1, pte0)/uint64(n), sub(peak, stack0)>>10, sub(after, stack0)>>10)
	fmt.Printf("goroutines: a spinner without safepoints ran throughout: %d collections\n", cycles)
	if f := finished.Load(); f != uint64(n) {
		return fmt.Errorf("only %d of %d goroutines ran to the end with their tree intact", f, n)
	}
	return nil
}
