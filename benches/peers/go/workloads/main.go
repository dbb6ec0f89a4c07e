// The minigo CLI's workloads (examples/src/workloads/*.rs) written in Go, for the
// side-by-side comparison (benches/compare.sh): `workloads WORKLOAD [ARGS]` runs one,
// prints the same lines as `minigo WORKLOAD [ARGS]` on stdout, checks its own result like
// the minigo version does, and prints one `peer-gc:` line of collector figures on stderr
// for the harness. Exit status: 0 checked out, 1 did not, 2 usage error (as minigo).
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
)

type workload struct {
	name, usage string
	run         func(args []string) error
}

var workloads = []workload{
	{"binary-trees", "[N=21]", binaryTrees},
	{"gcbench", "[DEPTH=16]", gcBench},
	{"churn", "[COUNT=100000000] [WINDOW=10000]", churn},
	{"latency", "[SIZE=1GiB]", latency},
	{"pipeline", "[MESSAGES=1000000] [STAGES=4] [WORKERS=8]", pipeline},
	{"goroutines", "[N=100000]", goroutines},
}

// usageError is a bad command line: exit status 2, as minigo.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	if len(os.Args) < 2 || os.Args[1] == "--help" || os.Args[1] == "help" {
		fmt.Println("usage: workloads WORKLOAD [ARGS]   (GOMAXPROCS and GOGC from the environment)")
		for _, w := range workloads {
			fmt.Printf("  %-13s %s\n", w.name, w.usage)
		}
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	name, args := os.Args[1], os.Args[2:]
	for _, w := range workloads {
		if w.name != name {
			continue
		}
		err := w.run(args)
		if _, ok := err.(usageError); ok {
			fmt.Fprintf(os.Stderr, "workloads: %v\n", err)
			os.Exit(2)
		}
		reportGC()
		if err != nil {
			fmt.Fprintf(os.Stderr, "workloads: %s: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	fmt.Fprintf(os.Stderr, "workloads: unknown workload %q; the workloads are %s\n", name, strings.Join(names, ", "))
	os.Exit(2)
}

// reportGC prints the line the harness reads. PauseNs keeps only the last 256 cycles, so
// the maximum over a longer run also takes the lower bound of the highest non-empty bucket
// of the runtime's pause histogram (which covers every cycle, with buckets up to 25% wide).
func reportGC() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var max uint64
	for i := uint32(0); i < ms.NumGC && i < 256; i++ {
		if p := ms.PauseNs[i]; p > max {
			max = p
		}
	}
	if ms.NumGC > 256 {
		s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindFloat64Histogram {
			h := s[0].Value.Float64Histogram()
			for i := len(h.Counts) - 1; i >= 0; i-- {
				if h.Counts[i] > 0 {
					if lo := h.Buckets[i]; !math.IsInf(lo, 0) && uint64(lo*1e9) > max {
						max = uint64(lo * 1e9)
					}
					break
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "peer-gc: collections %d pause-max-ms %.3f pause-total-ms %.3f\n",
		ms.NumGC, float64(max)/1e6, float64(ms.PauseTotalNs)/1e6)
}

// atMost: at most max positional arguments, as minigo's `at_most`.
func atMost(workload string, args []string, max int) error {
	if len(args) > max {
		return usagef("%s: unexpected argument %q", workload, args[max])
	}
	return nil
}

// parseCount: digits, optionally grouped with `_` or `,`, in lo..=hi (minigo's
// parse_count_in).
func parseCount(what, s string, lo, hi uint64) (uint64, error) {
	digits := strings.NewReplacer("_", "", ",", "").Replace(s)
	if digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, usagef("%s: expected a whole number, got %q", what, s)
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, usagef("%s: %q is too large", what, s)
	}
	if n < lo || n > hi {
		return 0, usagef("%s: %d is out of range (%d..=%d)", what, n, lo, hi)
	}
	return n, nil
}

// countArg: argument i parsed as a count, or def when absent.
func countArg(args []string, i int, what string, def, lo, hi uint64) (uint64, error) {
	if i >= len(args) {
		return def, nil
	}
	return parseCount(what, args[i], lo, hi)
}

var sizeUnits = []struct {
	shift uint
	unit  string
}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}}

// parseSize: a byte size as GOMEMLIMIT writes it (`1GiB`, `512MiB`, `4096`).
func parseSize(what, s string) (uint64, error) {
	bad := usagef("%s: expected a byte size such as 512MiB or 1GiB (units B, KiB, MiB, GiB, TiB), got %q", what, s)
	num, shift := s, uint(0)
	for _, u := range append(sizeUnits, struct {
		shift uint
		unit  string
	}{0, "B"}) {
		if strings.HasSuffix(s, u.unit) {
			num, shift = strings.TrimSuffix(s, u.unit), u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || n > math.MaxUint64>>shift {
		return 0, bad
	}
	return n << shift, nil
}

// sizeLabel: a size in the unit GOMEMLIMIT would use for it, exactly (minigo's size_label).
func sizeLabel(bytes uint64) string {
	for _, u := range sizeUnits {
		if bytes >= 1<<u.shift && bytes%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", bytes>>u.shift, u.unit)
		}
	}
	return strconv.FormatUint(bytes, 10)
}

// rng is minigo's xorshift64* (examples/src/workloads/mod.rs), so that latency replaces
// the same lists in the same order.
type rng uint64

func newRng(seed uint64) rng { return rng(seed | 1) }

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x >> 12
	x ^= x << 25
	x ^= x >> 27
	*r = rng(x)
	return x * 0x2545f4914f6cdd1d
}

func (r *rng) below(n uint64) uint64 { return r.next() % n }
