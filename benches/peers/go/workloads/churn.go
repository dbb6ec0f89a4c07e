// churn as minigo's examples/src/workloads/churn.rs runs it: COUNT pointer-free 32-byte
// objects, the last WINDOW kept alive in a ring (a slice of pointers); each evicted
// object must be the one allocated WINDOW allocations earlier, intact.
package main

import (
	"fmt"
	"math/bits"
	"time"
	"unsafe"
)

type obj struct{ id, a, b, c uint64 }

func words(id uint64) (uint64, uint64, uint64) {
	a := id * 0x9e3779b97f4a7c15
	return a, bits.RotateLeft64(a, 21) ^ id, ^id
}

func intact(o *obj, id uint64) bool {
	a, b, c := words(id)
	return o != nil && o.id == id && o.a == a && o.b == b && o.c == c
}

func churn(args []string) error {
	if err := atMost("churn", args, 2); err != nil {
		return err
	}
	count, err := countArg(args, 0, "churn COUNT", 100_000_000, 1, 1<<40)
	if err != nil {
		return err
	}
	w, err := countArg(args, 1, "churn WINDOW", 10_000, 1, 1<<26)
	if err != nil {
		return err
	}
	window := make([]*obj, w)
	bad, badID := false, uint64(0)
	start := time.Now()
	slot, evicted := uint64(0), uint64(0)
	for id := uint64(0); id < count; id++ {
		a, b, c := words(id)
		o := &obj{id, a, b, c}
		if id >= w {
			if !intact(window[slot], evicted) && !bad {
				bad, badID = true, evicted
			}
			evicted++
		}
		window[slot] = o
		slot++
		if slot == w {
			slot = 0
		}
	}
	elapsed := time.Since(start)
	survivors := uint64(0)
	for i := uint64(0); i < min(w, count); i++ {
		id := count - 1 - i
		if intact(window[id%w], id) {
			survivors++
		} else if !bad {
			bad, badID = true, id
		}
	}
	fmt.Printf("churn: %d allocations of %d bytes, the last %d alive: %.2f ns/allocation (%.3f s)\n",
		count, unsafe.Sizeof(obj{}), w, float64(elapsed.Nanoseconds())/float64(count), elapsed.Seconds())
	switch {
	case bad:
		return fmt.Errorf("allocation %d was lost or overwritten while alive", badID)
	case survivors != min(w, count):
		return fmt.Errorf("only %d of the window's objects survived", survivors)
	}
	return nil
}
