// latency as minigo's examples/src/workloads/latency.rs runs it: SIZE bytes of 32-byte
// nodes (one pointer, three integers) in lists of 64 whose heads sit in one slice, then
// 4 x lists whole-list replacements chosen by minigo's xorshift64*, timed in batches of
// 16 lists; the collector's pauses during the churn come from MemStats.PauseNs.
package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"
	"unsafe"
)

const (
	listLen = 64
	batch   = 16
)

type latNode struct {
	next                  *latNode
	list, generation, seq uint64
}

func buildList(list, generation uint64) *latNode {
	var head *latNode
	for seq := uint64(listLen); seq > 0; seq-- {
		head = &latNode{head, list, generation, seq - 1}
	}
	return head
}

// checkList returns the list's generation if it is whole and consistent.
func checkList(head *latNode, list uint64) (uint64, bool) {
	if head == nil {
		return 0, false
	}
	generation, n := head.generation, head
	for seq := uint64(0); seq < listLen; seq++ {
		if n == nil || n.list != list || n.generation != generation || n.seq != seq {
			return 0, false
		}
		n = n.next
	}
	return generation, n == nil
}

func msLabel(ns uint64) string { return fmt.Sprintf("%.3f ms", float64(ns)/1e6) }

// quantile: nearest-rank, as minigo's.
func quantile(sorted []uint64, q float64) uint64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := min(max(int(math.Ceil(q*float64(len(sorted)))), 1), len(sorted))
	return sorted[rank-1]
}

func latency(args []string) error {
	if err := atMost("latency", args, 1); err != nil {
		return err
	}
	size := uint64(1 << 30)
	if len(args) > 0 {
		var err error
		if size, err = parseSize("latency SIZE", args[0]); err != nil {
			return err
		}
	}
	nodeBytes := uint64(unsafe.Sizeof(latNode{}))
	if minSize := listLen * nodeBytes; size < minSize {
		return usagef("latency SIZE: at least %d bytes (one list)", minSize)
	}
	if size > 1<<40 {
		return usagef("latency SIZE: at most 1TiB")
	}
	lists := max(size/(listLen*nodeBytes), 1)
	heads := make([]*latNode, lists)

	t := time.Now()
	for i := range heads {
		heads[i] = buildList(uint64(i), 0)
	}
	fmt.Printf("latency: built %s live in %d lists of %d nodes of %d bytes in %.3f s\n",
		sizeLabel(lists*listLen*nodeBytes), lists, listLen, nodeBytes, time.Since(t).Seconds())

	generations := make([]uint64, lists)
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	before := stats.NumGC
	replacements := 4 * lists
	r := newRng(0x006c_6174_656e_6379)
	t = time.Now()
	last := time.Now()
	var stalls []uint64
	made := uint64(0)
	for made < replacements {
		for k := uint64(0); k < min(batch, replacements-made); k++ {
			i := r.below(lists)
			generations[i]++
			heads[i] = buildList(i, generations[i])
			made++
		}
		now := time.Now()
		stalls = append(stalls, uint64(now.Sub(last).Nanoseconds()))
		last = now
	}
	churnTime := time.Since(t)
	runtime.ReadMemStats(&stats)
	cycles := stats.NumGC - before
	var pauses []uint64
	for n := stats.NumGC; n > before && len(pauses) < 256; n-- {
		pauses = append(pauses, stats.PauseNs[(n+255)%256])
	}
	slices.Sort(pauses)
	maxPause := uint64(0)
	if len(pauses) > 0 {
		maxPause = pauses[len(pauses)-1]
	}
	fmt.Printf("churn: replaced %d lists (%s allocated) in %.3f s, %d collections\n",
		made, sizeLabel(made*listLen*nodeBytes), churnTime.Seconds(), cycles)
	// Go's PauseNs entry is a cycle's stops added up (both of them).
	fmt.Printf("stop-the-world pauses during churn: max %s, p99 %s, median %s\n",
		msLabel(maxPause), msLabel(quantile(pauses, 0.99)), msLabel(quantile(pauses, 0.5)))
	slices.Sort(stalls)
	fmt.Printf("mutator stalls (every %d allocations): max %s, p99 %s, median %s\n",
		batch*listLen, msLabel(stalls[len(stalls)-1]), msLabel(quantile(stalls, 0.99)),
		msLabel(quantile(stalls, 0.5)))

	total := uint64(0)
	for i, want := range generations {
		g, ok := checkList(heads[i], uint64(i))
		if !ok {
			return fmt.Errorf("list %d is broken", i)
		}
		if g != want {
			return fmt.Errorf("list %d is of generation %d, not %d", i, g, want)
		}
		total += g
	}
	if total != made {
		return fmt.Errorf("the lists' generations add up to %d, not the %d replacements made", total, made)
	}
	return nil
}
