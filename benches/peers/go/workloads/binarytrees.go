// binary-trees as minigo's examples/src/workloads/binary_trees.rs runs it: the main
// goroutine builds the stretch tree and the long-lived tree; one goroutine per depth
// (4, 6, .., N) builds its trees bottom-up and checks them, leaving its line in a slot;
// main prints the lines in depth order. Nodes are two pointers (16 bytes).
package main

import (
	"fmt"
	"strings"
	"sync"
)

const minDepth = 4

type node struct{ left, right *node }

func bottomUpTree(depth uint) *node {
	if depth == 0 {
		return &node{}
	}
	left := bottomUpTree(depth - 1)
	right := bottomUpTree(depth - 1)
	return &node{left, right}
}

func itemCheck(n *node) uint64 {
	if n.left != nil && n.right != nil {
		return 1 + itemCheck(n.left) + itemCheck(n.right)
	}
	return 1
}

func binaryTrees(args []string) error {
	if err := atMost("binary-trees", args, 1); err != nil {
		return err
	}
	n, err := countArg(args, 0, "binary-trees N", 21, 0, 28)
	if err != nil {
		return err
	}
	maxDepth := max(uint(n), minDepth+2)
	stretch := maxDepth + 1
	nodes := func(d uint) uint64 { return 1<<(d+1) - 1 }

	var printed, want strings.Builder
	emit := func(line string) {
		fmt.Println(line)
		printed.WriteString(line + "\n")
	}
	want.WriteString(fmt.Sprintf("stretch tree of depth %d\t check: %d\n", stretch, nodes(stretch)))

	emit(fmt.Sprintf("stretch tree of depth %d\t check: %d", stretch, itemCheck(bottomUpTree(stretch))))
	longLived := bottomUpTree(maxDepth)

	var depths []uint
	for d := uint(minDepth); d <= maxDepth; d += 2 {
		depths = append(depths, d)
	}
	lines := make([]string, len(depths))
	var wg sync.WaitGroup
	for slot, depth := range depths {
		iterations := uint64(1) << (maxDepth - depth + minDepth)
		want.WriteString(fmt.Sprintf("%d\t trees of depth %d\t check: %d\n", iterations, depth, iterations*nodes(depth)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var check uint64
			for i := uint64(0); i < iterations; i++ {
				check += itemCheck(bottomUpTree(depth))
			}
			lines[slot] = fmt.Sprintf("%d\t trees of depth %d\t check: %d", iterations, depth, check)
		}()
	}
	wg.Wait()
	for _, line := range lines {
		emit(line)
	}
	emit(fmt.Sprintf("long lived tree of depth %d\t check: %d", maxDepth, itemCheck(longLived)))
	want.WriteString(fmt.Sprintf("long lived tree of depth %d\t check: %d\n", maxDepth, nodes(maxDepth)))

	if printed.String() != want.String() {
		return fmt.Errorf("output differs from the reference for N=%d:\n--- got\n%s--- want\n%s", n, printed.String(), want.String())
	}
	return nil
}
