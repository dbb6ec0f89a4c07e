// GCBench (Ellis/Kovac/Boehm) as minigo's examples/src/workloads/gcbench.rs runs it, on one
// goroutine: a long-lived tree (top-down) and array of 500,000 doubles, then trees of
// depths 4..DEPTH step 2 built top-down and bottom-up, 2*TreeSize(DEPTH+2)/TreeSize(d) of
// each. Node: two pointers and two int32 (24 bytes).
package main

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

const (
	minTreeDepth = 4
	arraySize    = 500_000
)

type gcNode struct {
	left, right *gcNode
	i, j        int32
}

func treeSize(depth uint) uint64 { return 1<<(depth+1) - 1 }

func numIters(depth, stretch uint) uint64 { return 2 * treeSize(stretch) / treeSize(depth) }

// populate builds top-down: children are stored into node before they are populated.
func populate(depth uint, node *gcNode) {
	if depth == 0 {
		return
	}
	node.left = &gcNode{}
	node.right = &gcNode{}
	populate(depth-1, node.left)
	populate(depth-1, node.right)
}

func makeTree(depth uint) *gcNode {
	if depth == 0 {
		return &gcNode{}
	}
	left := makeTree(depth - 1)
	right := makeTree(depth - 1)
	return &gcNode{left: left, right: right}
}

func count(n *gcNode) uint64 {
	switch {
	case n.left != nil && n.right != nil:
		return 1 + count(n.left) + count(n.right)
	case n.left == nil && n.right == nil:
		return 1
	}
	return math.MaxUint64 / 2
}

func gcBench(args []string) error {
	if err := atMost("gcbench", args, 1); err != nil {
		return err
	}
	d, err := countArg(args, 0, "gcbench DEPTH", 16, minTreeDepth, 24)
	if err != nil {
		return err
	}
	longLivedDepth, maxDepth, stretch := uint(d), uint(d), uint(d)+2
	var failures []string

	fmt.Println("Garbage Collector Test")
	fmt.Printf(" Live storage will peak at %d bytes.\n\n",
		2*uint64(unsafe.Sizeof(gcNode{}))*treeSize(longLivedDepth)+8*arraySize)
	fmt.Printf(" Stretching memory with a binary tree of depth %d\n", stretch)
	start := time.Now()
	if n := count(makeTree(stretch)); n != treeSize(stretch) {
		failures = append(failures, fmt.Sprintf("stretch tree has %d nodes", n))
	}

	fmt.Printf(" Creating a long-lived binary tree of depth %d\n", longLivedDepth)
	longLived := &gcNode{}
	populate(longLivedDepth, longLived)

	fmt.Printf(" Creating a long-lived array of %d doubles\n", arraySize)
	array := make([]float64, arraySize)
	for i := 0; i < arraySize/2; i++ {
		array[i] = 1.0 / float64(i)
	}

	for depth := uint(minTreeDepth); depth <= maxDepth; depth += 2 {
		iters := numIters(depth, stretch)
		fmt.Printf("Creating %d trees of depth %d\n", iters, depth)
		t := time.Now()
		for i := uint64(0); i < iters; i++ {
			tree := &gcNode{}
			populate(depth, tree)
			if i == 0 && count(tree) != treeSize(depth) {
				failures = append(failures, fmt.Sprintf("a top-down tree of depth %d lost nodes", depth))
			}
		}
		fmt.Printf("\tTop down construction took %d msec\n", time.Since(t).Milliseconds())
		t = time.Now()
		for i := uint64(0); i < iters; i++ {
			tree := makeTree(depth)
			if i == 0 && count(tree) != treeSize(depth) {
				failures = append(failures, fmt.Sprintf("a bottom-up tree of depth %d lost nodes", depth))
			}
		}
		fmt.Printf("\tBottom up construction took %d msec\n", time.Since(t).Milliseconds())
	}

	if n := count(longLived); n != treeSize(longLivedDepth) {
		failures = append(failures, fmt.Sprintf("the long-lived tree has %d nodes, not %d", n, treeSize(longLivedDepth)))
	}
	if array[1000] != 1.0/1000.0 {
		failures = append(failures, "the long-lived array changed")
	}
	for i := 1; i < arraySize; i++ {
		want := 0.0
		if i < arraySize/2 {
			want = 1.0 / float64(i)
		}
		if array[i] != want {
			failures = append(failures, fmt.Sprintf("long-lived array[%d] is %v", i, array[i]))
			break
		}
	}
	fmt.Printf("Completed in %d msec.\n", time.Since(start).Milliseconds())
	if len(failures) > 0 {
		return fmt.Errorf("%s", strings.Join(failures, "; "))
	}
	return nil
}
