//! Pacing: when the next cycle starts and how much marking mutators owe while it runs (Go
//! 1.18's pacer, `mgcpacer.go`, proposal 44167), and the GC CPU limiter (`mgclimit.go`).
//!
//! 1. **The goal.** GOGC: the live heap plus GOGC percent of it, at least 4 MiB x GOGC/100
//!    (Go's `heapMinimum`); GOGC off: no goal from it. Memory limit (GOMEMLIMIT): at most
//!    the limit minus the memory that is not heap objects; when the live heap itself is
//!    over the limit, a margin of 1/16 of it (at least 1 MiB) so cycles do not run back to
//!    back for nothing. The goal counts objects allocated during the last mark (they are
//!    marked: allocation is black).
//! 2. **The trigger** comes before the goal, so that marking, running beside the mutators,
//!    ends near the goal: the runway is the heap the mutators will allocate while the
//!    markers scan last cycle's scan work, from the measured cons/mark ratio (allocation
//!    rate over scan rate per CPU, the largest of the last four cycles', as Go since 1.21
//!    smooths it) weighed by the 25% the background workers get. The trigger is kept
//!    between 70% and 95% of the way from the live heap to the goal (for big heaps, up to
//!    4 MiB short of the goal).
//! 3. **Assists.** While marking, a mutator that allocates owes scan work in proportion:
//!    the work left over the heap left before the goal ([`assist_work_per_byte`]). When
//!    marking does more work than expected the goal is stretched toward the worst case
//!    (all scannable memory live), up to GOGC% over it; past the goal, 10% more. One
//!    assist does between [`OVER_ASSIST_WORK`] and [`MAX_ASSIST_WORK`] of scan work, and
//!    runs [`MAX_ASSIST_TIME`] at most.
//! 4. **The CPU limiter.** Under a memory limit below the live heap, cycles run back to
//!    back; a leaky bucket (capacity one second per processor, filled by GC CPU time and
//!    drained by mutator time) turns assists off while the collector has used more than
//!    half the CPU for a while, so the program keeps running and the heap goes over the
//!    limit instead.
//!
//! The hard `max_heap` is not the pacer's: the allocator enforces it and the mutator
//! collects once before reporting out of memory.

use std::time::Instant;

/// Go's `defaultHeapMinimum`: the goal never goes below this x GOGC/100.
pub const HEAP_MINIMUM: u64 = 4 << 20;

/// Go's `gcBackgroundUtilization`: the share of the processors background marking uses.
pub const BACKGROUND_UTILIZATION: f64 = 0.25;

/// Go's `gcOverAssistWork`: an assist does at least this much scan work, pre-paying for
/// the allocations that follow.
pub const OVER_ASSIST_WORK: u64 = 64 << 10;

/// The most scan work one assist does (about 200 µs of marking): a mutator deep in debt
/// pays it over several allocations rather than stalling once for all of it (Go's assists
/// are bounded by preemption instead). What is left stays owed.
pub const MAX_ASSIST_WORK: u64 = 512 << 10;

/// The longest one assist runs, whatever its work costs (pointer-dense objects over a big
/// heap miss the cache on every word): the bound on a mutator's stall for an assist.
pub const MAX_ASSIST_TIME: std::time::Duration = std::time::Duration::from_micros(500);

/// Settings the goal comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacer {
    /// Percent growth over the live heap; `None` = off.
    pub gogc: Option<u32>,
    /// Soft limit on total memory, in bytes.
    pub memory_limit: Option<u64>,
}

impl Pacer {
    /// The heap size to finish the next cycle by, after a cycle that found `live` bytes
    /// marked and scanned `roots` bytes of roots (goroutine stacks, globals), with
    /// `overhead` bytes of memory that are not heap objects (metadata, fragmentation).
    ///
    /// GOGC applies to the roots too, as in Go since 1.18: scanning a million goroutine
    /// stacks is work of a cycle like marking the heap is, and a goal that ignored it
    /// would collect a small heap over and over for the stacks' sake.
    pub fn goal(&self, live: u64, roots: u64, overhead: u64) -> u64 {
        let by_gogc = self.gogc.map_or(u64::MAX, |p| {
            let p = p as u64;
            live.saturating_add(live.saturating_add(roots).saturating_mul(p) / 100)
                .max(HEAP_MINIMUM * p / 100)
        });
        let by_limit = self.memory_limit.map_or(u64::MAX, |limit| {
            let margin = (live / 16).max(1 << 20);
            limit.saturating_sub(overhead).max(live + margin)
        });
        by_gogc.min(by_limit)
    }

    /// Go's `heapMinimum` for this GOGC.
    fn heap_minimum(&self) -> u64 {
        self.gogc.map_or(0, |p| HEAP_MINIMUM * p as u64 / 100)
    }

    /// Heap live at which the next cycle starts (Go's `commit`): `runway` before `goal`,
    /// kept between 70% and 95% of the way from `live` to the goal. Never past the goal.
    pub fn trigger(&self, live: u64, goal: u64, runway: u64) -> u64 {
        if goal == u64::MAX || goal <= live {
            return goal;
        }
        let room = goal - live;
        let min_trigger = (live + room * 45 / 64).max(self.heap_minimum().min(goal));
        let mut max_trigger = live + room * 61 / 64;
        if goal > HEAP_MINIMUM {
            max_trigger = max_trigger.max(goal - HEAP_MINIMUM);
        }
        let max_trigger = max_trigger.max(min_trigger);
        goal.saturating_sub(runway)
            .clamp(min_trigger, max_trigger)
            .min(goal)
    }

    /// Bytes of memory the heap may keep after a cycle with this goal before the scavenger
    /// returns the rest to the OS: Go retains 10% over the goal, and never over the limit.
    pub fn retain(&self, goal: u64) -> u64 {
        let retain = goal.saturating_add(goal / 10);
        self.memory_limit.map_or(retain, |l| retain.min(l))
    }
}

/// Scan work owed per byte allocated while marking (Go's `revise`): what is left of the
/// expected scan work over what is left of the heap before the goal.
///
/// `expected` is last cycle's scan work; `max_work` the worst case (everything live
/// scanned); `done` the work done so far; `trigger`, `goal` and `live` as the pacer set and
/// sees them; `gogc` the growth percent (off counts as very large).
pub fn assist_work_per_byte(
    live: u64,
    trigger: u64,
    goal: u64,
    expected: u64,
    max_work: u64,
    done: u64,
    gogc: Option<u32>,
) -> f64 {
    let mut goal = goal as f64;
    let mut expected = expected.max(1) as f64;
    let max_work = max_work.max(1) as f64;
    let done = done as f64;
    if done > expected {
        // More work than last cycle: the heap is growing. Stretch the goal as if the
        // runway scaled to the worst case, up to GOGC% over the goal.
        let grown = (goal - trigger as f64) / expected * max_work + trigger as f64;
        let hard = (1.0 + gogc.unwrap_or(100_000) as f64 / 100.0) * goal;
        goal = grown.min(hard);
        expected = max_work;
    }
    if live as f64 > goal {
        goal *= 1.1;
        expected = max_work;
    }
    let work_left = (expected - done).max(1000.0);
    let heap_left = (goal - live as f64).max(1.0);
    work_left / heap_left
}

/// What the pacer learns across cycles (Go's `gcControllerState` estimates).
#[derive(Clone, Debug, Default)]
pub(crate) struct Estimates {
    /// cons/mark of the last four cycles.
    cons_mark: [f64; 4],
    next: usize,
    /// Scan work the last cycle did (Go's `lastHeapScan`, roots included).
    pub(crate) last_scan_work: u64,
}

impl Estimates {
    /// Heap the mutators allocate while the markers do last cycle's scan work at 25% of
    /// the CPU (Go's runway).
    pub(crate) fn runway(&self) -> u64 {
        let cons_mark = self.cons_mark.iter().copied().fold(0.0, f64::max);
        let u = BACKGROUND_UTILIZATION;
        (cons_mark * (1.0 - u) / u * self.last_scan_work as f64) as u64
    }

    /// Learns from a finished concurrent cycle (Go's `endCycle`): the mutators allocated
    /// `allocated` bytes while markers did `scan_work`, with `utilization` of the CPU
    /// going to background workers and assists and `idle` to idle workers.
    pub(crate) fn end_cycle(
        &mut self,
        allocated: u64,
        scan_work: u64,
        utilization: f64,
        idle: f64,
    ) {
        self.last_scan_work = scan_work;
        if allocated == 0 || scan_work == 0 || utilization >= 1.0 {
            return;
        }
        let cons_mark =
            allocated as f64 * (utilization + idle) / (scan_work as f64 * (1.0 - utilization));
        if cons_mark.is_finite() {
            self.cons_mark[self.next] = cons_mark;
            self.next = (self.next + 1) % self.cons_mark.len();
        }
    }
}

/// Go's GC CPU limiter: a leaky bucket of GC CPU time.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Nanoseconds of CPU in the bucket.
    fill: f64,
    capacity: f64,
    procs: f64,
    last: Instant,
    /// The collector's CPU total when the bucket was last updated.
    gc_cpu_then: u64,
    enabled: bool,
}

impl Limiter {
    pub(crate) fn new(procs: usize) -> Limiter {
        let procs = procs.max(1) as f64;
        Limiter {
            fill: 0.0,
            capacity: procs * 1e9,
            procs,
            last: Instant::now(),
            gc_cpu_then: 0,
            enabled: false,
        }
    }

    /// Accounts the time since the last update, in which the collector's CPU total went to
    /// `gc_cpu_total`; returns whether assists are off. Cheap when called often: the
    /// bucket moves at most every millisecond.
    pub(crate) fn update(&mut self, gc_cpu_total: u64, now: Instant) -> bool {
        let wall = now.saturating_duration_since(self.last).as_nanos() as f64;
        if wall < 1e6 {
            return self.enabled;
        }
        let total = wall * self.procs;
        let gc = (gc_cpu_total.saturating_sub(self.gc_cpu_then) as f64).min(total);
        // Filled by GC time, drained by mutator time: it rises when GC takes over half.
        self.fill = (self.fill + gc - (total - gc)).clamp(0.0, self.capacity);
        self.enabled = self.fill >= self.capacity;
        self.last = now;
        self.gc_cpu_then = gc_cpu_total;
        self.enabled
    }

    #[cfg(test)]
    fn enabled(&self) -> bool {
        self.enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn gogc_semantics() {
        let p = Pacer {
            gogc: Some(100),
            memory_limit: None,
        };
        assert_eq!(p.goal(100 * MB, 0, 0), 200 * MB);
        assert_eq!(p.goal(MB, 0, 0), 4 * MB, "floor: 4 MiB x GOGC/100");
        let p = Pacer {
            gogc: Some(50),
            memory_limit: None,
        };
        assert_eq!(p.goal(100 * MB, 0, 0), 150 * MB);
        assert_eq!(p.goal(0, 0, 0), 2 * MB);
        let p = Pacer {
            gogc: Some(0),
            memory_limit: None,
        };
        assert_eq!(
            p.goal(10 * MB, 0, 0),
            10 * MB,
            "GOGC=0 collects continually"
        );
        let off = Pacer {
            gogc: None,
            memory_limit: None,
        };
        assert_eq!(off.goal(100 * MB, 0, 0), u64::MAX, "off: never by growth");
    }

    #[test]
    fn memory_limit_semantics() {
        let p = Pacer {
            gogc: Some(100),
            memory_limit: Some(150 * MB),
        };
        assert_eq!(
            p.goal(100 * MB, 0, 10 * MB),
            140 * MB,
            "the limit caps the GOGC goal"
        );
        assert_eq!(p.goal(10 * MB, 0, 0), 20 * MB, "under the limit GOGC rules");
        let off = Pacer {
            gogc: None,
            memory_limit: Some(150 * MB),
        };
        assert_eq!(
            off.goal(10 * MB, 0, 5 * MB),
            145 * MB,
            "GOGC=off + limit: collect near it"
        );
        assert_eq!(
            off.goal(160 * MB, 0, 0),
            170 * MB,
            "over the limit: a margin, not a spiral"
        );
        assert_eq!(p.retain(100 * MB), 110 * MB);
        assert_eq!(p.retain(140 * MB), 150 * MB, "never retain past the limit");
    }

    #[test]
    fn trigger_comes_before_the_goal_within_go_bounds() {
        let p = Pacer {
            gogc: Some(100),
            memory_limit: None,
        };
        // No runway measured yet: the latest trigger allowed (95%, or goal - 4 MiB).
        assert_eq!(p.trigger(100 * MB, 200 * MB, 0), 196 * MB);
        // A long runway is cut at 70% of the way.
        assert_eq!(
            p.trigger(100 * MB, 200 * MB, 150 * MB),
            100 * MB + 100 * MB * 45 / 64
        );
        // In between, the runway rules.
        assert_eq!(p.trigger(100 * MB, 200 * MB, 20 * MB), 180 * MB);
        // Small heaps: never below the heap minimum, so the trigger is the 4 MiB goal.
        assert_eq!(p.trigger(MB, 4 * MB, 2 * MB), 4 * MB);
        assert_eq!(p.trigger(MB, u64::MAX, 0), u64::MAX, "GOGC off");
    }

    #[test]
    fn assists_owe_the_work_left_over_the_heap_left() {
        // 10 MiB of scan work expected, none done, 10 MiB of heap before the goal.
        let r = assist_work_per_byte(100 * MB, 100 * MB, 110 * MB, 10 * MB, 50 * MB, 0, Some(100));
        assert!((r - 1.0).abs() < 1e-9, "{r}");
        // Half done with half the heap left: the same ratio.
        let r = assist_work_per_byte(
            105 * MB,
            100 * MB,
            110 * MB,
            10 * MB,
            50 * MB,
            5 * MB,
            Some(100),
        );
        assert!((r - 1.0).abs() < 1e-9, "{r}");
        // Past the goal: 10% more heap, and the worst case's work.
        let r = assist_work_per_byte(
            120 * MB,
            100 * MB,
            110 * MB,
            10 * MB,
            50 * MB,
            5 * MB,
            Some(100),
        );
        assert!(r > 1.0, "{r}");
    }

    #[test]
    fn runway_follows_cons_mark() {
        let mut e = Estimates::default();
        assert_eq!(e.runway(), 0);
        // The mutators allocated 30 MiB at 75% of the CPU while markers scanned 10 MiB at
        // 25%: cons/mark = (30 / 0.75) / (10 / 0.25) = 1.
        e.end_cycle(30 * MB, 10 * MB, 0.25, 0.0);
        assert_eq!(e.runway(), 30 * MB, "3 x cons/mark x scan work");
    }

    #[test]
    fn the_limiter_turns_on_past_half_the_cpu_and_off_again() {
        let t0 = Instant::now();
        let mut l = Limiter::new(1);
        let s = std::time::Duration::from_secs(1);
        // 90% GC for 2 s: the bucket fills at 0.8 s per second.
        assert!(!l.update(900_000_000, t0 + s));
        assert!(l.update(1_800_000_000, t0 + 2 * s));
        // Then 10%: it drains.
        assert!(!l.update(1_900_000_000, t0 + 3 * s));
        assert!(!l.enabled());
    }
}
