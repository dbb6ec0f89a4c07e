//! What the collector records about its cycles: Go's MemStats GC fields (NumGC, the pause
//! ring, GCCPUFraction...) and one gctrace line per cycle in Go's format.

use std::collections::VecDeque;
use std::fmt::Write;

use minigo_alloc_core::MemStats;

/// One collection, as measured. Times are nanoseconds.
///
/// A concurrent cycle stops the world twice: at its start (sweep termination, mark setup)
/// and at its end (mark termination); marking runs between them beside the mutators. A
/// stop to end marking that found more work restarts the world and counts as a retry. In
/// a stop-the-world cycle (`GcConfig::stop_the_world`) all of it is one pause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CycleRecord {
    /// 1 for the first cycle.
    pub number: u32,
    /// Start, since the collector was created.
    pub start_ns: u64,
    /// The first stop: finishing the last cycle's sweep, setting up marking.
    pub sweep_term_ns: u64,
    /// Marking: from the end of the first stop to the start of the last (with the world
    /// running, in a concurrent cycle; inside the pause, in a stop-the-world one).
    pub mark_ns: u64,
    /// The last stop: mark termination (weak tables, the sweep's start, the next goal).
    pub mark_term_ns: u64,
    /// Stops that tried to end marking and found more to mark.
    pub retries: u32,
    /// Their time.
    pub retry_ns: u64,
    /// All the time the world was stopped (Go's `PauseNs` entry: every pause of the cycle).
    pub pause_ns: u64,
    /// The longest single stop.
    pub longest_pause_ns: u64,
    /// Every stop of the cycle, in order: the first, the retries, the last (one, in a
    /// stop-the-world cycle).
    pub pauses: Vec<u64>,
    /// CPU spent marking, all of it (assists, background and idle workers, stopped marking).
    pub mark_cpu_ns: u64,
    /// Of it, by mutators' assists.
    pub assist_cpu_ns: u64,
    /// Of it, by dedicated and fractional background workers.
    pub background_cpu_ns: u64,
    /// Of it, by workers on otherwise idle cores.
    pub idle_cpu_ns: u64,
    /// The longest single assist.
    pub longest_assist_ns: u64,
    /// Heap live (Go's heapLive) when the cycle began.
    pub heap_before: u64,
    /// Heap live when mark termination began.
    pub heap_at_term: u64,
    /// Bytes marked, objects allocated during marking included: the live heap.
    pub heap_live: u64,
    /// Objects marked by the markers (objects allocated during marking not included).
    pub objects_live: u64,
    /// Bytes of roots scanned while marking concurrently (goroutine stacks, globals): GOGC
    /// applies to them too (what gctrace prints as "MB stacks").
    pub root_bytes: u64,
    /// This cycle's goal: the heap it was paced to finish by (what gctrace prints).
    pub goal: u64,
    /// The goal set for the next cycle.
    pub next_goal: u64,
    /// The heap live at which the next cycle starts.
    pub next_trigger: u64,
    /// Mark workers the cycle could use (background ones, or the stopped mark's threads).
    pub workers: usize,
    /// Asked for by the program rather than by the pacer.
    pub forced: bool,
    /// Marked beside the mutators (false: with the world stopped).
    pub concurrent: bool,
    /// A minor cycle (generational mode): it marked only young objects.
    pub minor: bool,
}

impl CycleRecord {
    /// When marking began (since the collector was created).
    pub fn mark_start_ns(&self) -> u64 {
        self.start_ns + self.sweep_term_ns
    }

    /// When the last stop began.
    pub fn mark_end_ns(&self) -> u64 {
        self.mark_start_ns() + self.mark_ns
    }

    /// When the cycle ended (the world restarted after mark termination).
    pub fn end_ns(&self) -> u64 {
        self.mark_end_ns() + self.mark_term_ns
    }
}

/// Running totals behind the MemStats GC fields.
#[derive(Default)]
pub(crate) struct GcStats {
    pub(crate) num_gc: u32,
    pub(crate) num_forced_gc: u32,
    pub(crate) pause_total_ns: u64,
    pub(crate) pause_ns: Vec<u64>,
    pub(crate) pause_end: Vec<u64>,
    pub(crate) last_gc_unix_ns: u64,
    pub(crate) gc_cpu_ns: u64,
    pub(crate) next_gc: u64,
    pub(crate) history: VecDeque<CycleRecord>,
    /// Processors a pause stops (what a pause costs in CPU).
    pub(crate) procs: usize,
}

/// At most this many cycle records are kept (the oldest are dropped).
const HISTORY: usize = 1 << 16;

impl GcStats {
    pub(crate) fn record(&mut self, r: CycleRecord, end_unix_ns: u64) {
        self.num_gc += 1;
        self.num_forced_gc += r.forced as u32;
        self.pause_total_ns += r.pause_ns;
        if self.pause_ns.is_empty() {
            self.pause_ns = vec![0; 256];
            self.pause_end = vec![0; 256];
        }
        let slot = (self.num_gc as usize + 255) % 256;
        self.pause_ns[slot] = r.pause_ns;
        self.pause_end[slot] = end_unix_ns;
        self.last_gc_unix_ns = end_unix_ns;
        // A pause takes every processor; marking beside the mutators, what it used, but
        // for marking on idle cores, which the mutators did not want (Go's
        // GCCPUFraction). A stop-the-world cycle's marking is inside its pause.
        self.gc_cpu_ns += r.pause_ns * self.procs.max(1) as u64;
        if r.concurrent {
            self.gc_cpu_ns += r.mark_cpu_ns.saturating_sub(r.idle_cpu_ns);
        }
        self.next_gc = r.next_goal;
        // A ring: dropping the oldest of 65,536 records from a Vec moved them all, 120 µs
        // a cycle once a long run (a --gc-stress one) had filled it.
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(r);
    }

    /// Fills the GC fields of a MemStats.
    pub(crate) fn fill(&self, m: &mut MemStats, elapsed_ns: u64, procs: usize) {
        m.num_gc = self.num_gc;
        m.num_forced_gc = self.num_forced_gc;
        m.pause_total_ns = self.pause_total_ns;
        if !self.pause_ns.is_empty() {
            m.pause_ns.copy_from_slice(&self.pause_ns);
            m.pause_end.copy_from_slice(&self.pause_end);
        }
        m.last_gc = self.last_gc_unix_ns;
        m.next_gc = if self.next_gc == u64::MAX {
            0
        } else {
            self.next_gc
        };
        m.gc_cpu_fraction = if elapsed_ns == 0 {
            0.0
        } else {
            self.gc_cpu_ns as f64 / (elapsed_ns as f64 * procs.max(1) as f64)
        };
    }
}

fn ms(ns: u64) -> String {
    // Go prints two significant decimals for small values and fewer for large ones.
    let v = ns as f64 / 1e6;
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The cycle's gctrace line, in Go's format:
/// `gc 3 @0.012s 2%: 0.016+0.33+0.003 ms clock, 0.032+0.12/0.60/0.05+0.006 ms cpu, 4->5->1
/// MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P`: the clocks are the first pause, marking
/// and the last pause (failed attempts to end marking count in the last); the CPU fields
/// are the pauses times the processors they stopped, and marking split into assists /
/// background workers / idle workers; the sizes are heap live at the start, at mark
/// termination, and marked. "MB" is MiB and `P` the processors, as in Go.
pub(crate) fn gctrace_line(r: &CycleRecord, cpu_percent: u64, procs: usize) -> String {
    let mb = |b: u64| b >> 20;
    let p = procs.max(1) as u64;
    let (first, last) = (r.sweep_term_ns, r.mark_term_ns + r.retry_ns);
    let mut s = format!(
        "gc {} @{:.3}s {}%: {}+{}+{} ms clock, {}+{}/{}/{}+{} ms cpu, {}->{}->{} MB, {} MB goal, {} MB stacks, 0 MB globals, {} P",
        r.number,
        r.start_ns as f64 / 1e9,
        cpu_percent,
        ms(first),
        ms(r.mark_ns),
        ms(last),
        ms(first * p),
        ms(r.assist_cpu_ns),
        ms(r.background_cpu_ns),
        ms(r.idle_cpu_ns),
        ms(last * p),
        mb(r.heap_before),
        mb(r.heap_at_term),
        mb(r.heap_live),
        if r.goal == u64::MAX { 0 } else { mb(r.goal) },
        mb(r.root_bytes),
        procs,
    );
    if r.forced {
        let _ = write!(s, " (forced)");
    }
    if r.minor {
        let _ = write!(s, " (minor)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gctrace_has_go_shape() {
        let r = CycleRecord {
            number: 7,
            start_ns: 1_234_000_000,
            sweep_term_ns: 16_000,
            mark_ns: 330_000,
            mark_term_ns: 3_000,
            mark_cpu_ns: 750_000,
            assist_cpu_ns: 120_000,
            background_cpu_ns: 600_000,
            idle_cpu_ns: 30_000,
            pause_ns: 19_000,
            heap_before: 4 << 20,
            heap_at_term: 5 << 20,
            heap_live: 1 << 20,
            objects_live: 100,
            goal: 4 << 20,
            next_goal: 2 << 20,
            workers: 2,
            forced: true,
            concurrent: true,
            ..CycleRecord::default()
        };
        assert_eq!(
            gctrace_line(&r, 2, 2),
            "gc 7 @1.234s 2%: 0.016+0.330+0.003 ms clock, 0.032+0.120/0.600/0.030+0.006 ms cpu, 4->5->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)"
        );
    }

    #[test]
    fn pause_ring_is_gos() {
        let mut s = GcStats::default();
        let mut m = MemStats::default();
        for n in 1..=300u32 {
            let r = CycleRecord {
                number: n,
                pause_ns: n as u64,
                workers: 1,
                forced: n % 2 == 0,
                ..CycleRecord::default()
            };
            s.record(r, 1000 + n as u64);
        }
        s.fill(&mut m, 1, 1);
        assert_eq!(m.num_gc, 300);
        assert_eq!(m.num_forced_gc, 150);
        assert_eq!(m.pause_total_ns, (1..=300u64).sum::<u64>());
        // Cycle n's pause is at (n + 255) % 256.
        assert_eq!(m.pause_ns[(300 + 255) % 256], 300);
        assert_eq!(m.pause_ns[(45 + 255) % 256], 301 - 256);
        assert_eq!(m.last_gc, 1300);
    }
}
