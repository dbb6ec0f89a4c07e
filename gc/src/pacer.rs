//! Pacing: when the next collection starts (Go's `mgcpacer.go`, for a stop-the-world
//! collector: the trigger is the goal itself).
//!
//! - GOGC: the goal is the live heap plus GOGC percent of it, and at least 4 MiB x GOGC/100
//!   (Go's `heapMinimum`). GOGC off: no goal from it.
//! - Memory limit (GOMEMLIMIT): the goal is at most the limit minus the memory that is not
//!   heap objects. When the live heap itself is over the limit, Go's CPU limiter stops the
//!   collector from running back to back; here the goal keeps a margin of 1/16 of the live
//!   heap (at least 1 MiB) over it for the same reason.
//!
//! The hard `max_heap` is not the pacer's: the allocator enforces it and the mutator
//! collects once before reporting out of memory.

/// Go's `defaultHeapMinimum`: the goal never goes below this x GOGC/100.
pub const HEAP_MINIMUM: u64 = 4 << 20;

/// Settings the goal comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacer {
    /// Percent growth over the live heap; `None` = off.
    pub gogc: Option<u32>,
    /// Soft limit on total memory, in bytes.
    pub memory_limit: Option<u64>,
}

impl Pacer {
    /// The heap size to collect at, after a collection that found `live` bytes marked, with
    /// `overhead` bytes of memory that are not heap objects (metadata, fragmentation).
    pub fn goal(&self, live: u64, overhead: u64) -> u64 {
        let by_gogc = self.gogc.map_or(u64::MAX, |p| {
            let p = p as u64;
            live.saturating_add(live.saturating_mul(p) / 100)
                .max(HEAP_MINIMUM * p / 100)
        });
        let by_limit = self.memory_limit.map_or(u64::MAX, |limit| {
            let margin = (live / 16).max(1 << 20);
            limit.saturating_sub(overhead).max(live + margin)
        });
        by_gogc.min(by_limit)
    }

    /// Bytes of memory the heap may keep after a cycle with this goal before the scavenger
    /// returns the rest to the OS: Go retains 10% over the goal, and never over the limit.
    pub fn retain(&self, goal: u64) -> u64 {
        let retain = goal.saturating_add(goal / 10);
        self.memory_limit.map_or(retain, |l| retain.min(l))
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
        assert_eq!(p.goal(100 * MB, 0), 200 * MB);
        assert_eq!(p.goal(MB, 0), 4 * MB, "floor: 4 MiB x GOGC/100");
        let p = Pacer {
            gogc: Some(50),
            memory_limit: None,
        };
        assert_eq!(p.goal(100 * MB, 0), 150 * MB);
        assert_eq!(p.goal(0, 0), 2 * MB);
        let p = Pacer {
            gogc: Some(0),
            memory_limit: None,
        };
        assert_eq!(p.goal(10 * MB, 0), 10 * MB, "GOGC=0 collects continually");
        let off = Pacer {
            gogc: None,
            memory_limit: None,
        };
        assert_eq!(off.goal(100 * MB, 0), u64::MAX, "off: never by growth");
    }

    #[test]
    fn memory_limit_semantics() {
        let p = Pacer {
            gogc: Some(100),
            memory_limit: Some(150 * MB),
        };
        assert_eq!(
            p.goal(100 * MB, 10 * MB),
            140 * MB,
            "the limit caps the GOGC goal"
        );
        assert_eq!(p.goal(10 * MB, 0), 20 * MB, "under the limit GOGC rules");
        let off = Pacer {
            gogc: None,
            memory_limit: Some(150 * MB),
        };
        assert_eq!(
            off.goal(10 * MB, 5 * MB),
            145 * MB,
            "GOGC=off + limit: collect near it"
        );
        assert_eq!(
            off.goal(160 * MB, 0),
            170 * MB,
            "over the limit: a margin, not a spiral"
        );
        assert_eq!(p.retain(100 * MB), 110 * MB);
        assert_eq!(p.retain(140 * MB), 150 * MB, "never retain past the limit");
    }
}
