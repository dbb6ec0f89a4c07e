// pipeline as minigo's examples/src/workloads/pipeline.rs runs it: a source goroutine,
// STAGES chained goroutines each making a new message (a new 4-word payload and a pointer
// back) from the one it receives, WORKERS goroutines sharing the last channel that check
// each message's chain and send a result object to one channel, drained by main. Every
// channel holds 64.
package main

import (
	"fmt"
	"sync"
	"time"
)

const (
	chanCap = 64
	payload = 4
)

type msg struct {
	id, stage uint64
	payload   []uint64
	prev      *msg
}

type done struct {
	msg *msg
	sum uint64
	ok  bool
}

func word(id, stage uint64, k int) uint64 {
	return (id^(stage<<48))*0x9e3779b97f4a7c15 ^ uint64(k)
}

func message(id, stage uint64, prev *msg) *msg {
	p := make([]uint64, payload)
	for k := range p {
		p[k] = word(id, stage, k)
	}
	return &msg{id, stage, p, prev}
}

// checkChain walks a message's chain back to the source's; ok if every link is right.
func checkChain(last *msg, stages uint64) (sum uint64, ok bool) {
	id, m := last.id, last
	for stage := int64(stages); stage >= 0; stage-- {
		if m == nil || m.id != id || m.stage != uint64(stage) || len(m.payload) != payload {
			return 0, false
		}
		for k, w := range m.payload {
			if w != word(id, uint64(stage), k) {
				return 0, false
			}
			sum += w
		}
		m = m.prev
	}
	return sum, m == nil
}

func pipeline(args []string) error {
	if err := atMost("pipeline", args, 3); err != nil {
		return err
	}
	messages, err := countArg(args, 0, "pipeline MESSAGES", 1_000_000, 1, 1<<40)
	if err != nil {
		return err
	}
	stages, err := countArg(args, 1, "pipeline STAGES", 4, 1, 10_000)
	if err != nil {
		return err
	}
	workers, err := countArg(args, 2, "pipeline WORKERS", 8, 1, 10_000)
	if err != nil {
		return err
	}

	start := time.Now()
	chans := make([]chan *msg, stages+1)
	for i := range chans {
		chans[i] = make(chan *msg, chanCap)
	}
	results := make(chan *done, chanCap)

	go func() {
		for id := uint64(0); id < messages; id++ {
			chans[0] <- message(id, 0, nil)
		}
		close(chans[0])
	}()
	for stage := uint64(1); stage <= stages; stage++ {
		input, output := chans[stage-1], chans[stage]
		go func() {
			for m := range input {
				output <- message(m.id, stage, m)
			}
			close(output)
		}()
	}
	var wg sync.WaitGroup
	for w := uint64(0); w < workers; w++ {
		wg.Add(1)
		input := chans[stages]
		go func() {
			defer wg.Done()
			for m := range input {
				sum, ok := checkChain(m, stages)
				results <- &done{m, sum, ok}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var count, ids, sum, broken uint64
	for d := range results {
		count++
		ids += d.msg.id
		sum += d.sum
		if !d.ok {
			broken++
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("pipeline: %d messages through %d stages and %d workers in %.3f s (%.0f ns/message)\n",
		messages, stages, workers, elapsed.Seconds(), float64(elapsed.Nanoseconds())/float64(messages))

	var wantSum, wantIDs uint64
	for id := uint64(0); id < messages; id++ {
		wantIDs += id
		for s := uint64(0); s <= stages; s++ {
			for k := 0; k < payload; k++ {
				wantSum += word(id, s, k)
			}
		}
	}
	switch {
	case broken > 0:
		return fmt.Errorf("%d messages arrived with a broken chain", broken)
	case count != messages || ids != wantIDs:
		return fmt.Errorf("%d messages arrived (id sum %d), not %d (id sum %d)", count, ids, messages, wantIDs)
	case sum != wantSum:
		return fmt.Errorf("payload checksum %#x, expected %#x", sum, wantSum)
	}
	return nil
}
