//! How a collector is configured, and Go's environment variables for it.

use std::fmt;

use minigo_alloc_core::DEFAULT_ADDRESS_SPACE;

/// A collector's settings. `GcConfig::default()` is Go's defaults; [`GcConfig::from_env`]
/// applies `GOGC`, `GOMEMLIMIT` and `GODEBUG` on top.
#[derive(Clone, Debug)]
pub struct GcConfig {
    /// Go's GOGC: collect when the heap has grown by this percentage over what the last
    /// collection found live (`None` = off: only the memory limits collect). Default 100.
    pub gogc: Option<u32>,
    /// Go's GOMEMLIMIT: a soft limit on the heap's memory; the pacer collects earlier and the
    /// scavenger returns memory to stay under it. Default none.
    pub memory_limit: Option<u64>,
    /// A hard limit on heap bytes in use: an allocation that cannot fit under it even after
    /// a full collection fails with an out-of-memory error. Default none.
    pub max_heap: Option<usize>,
    /// The processors the collector paces itself for (the runtime sets GOMAXPROCS): marking
    /// beside the mutators aims at a quarter of them (Go's 25% background utilisation, a
    /// fractional worker making up what whole workers cannot), idle cores may mark too, and
    /// a stop-the-world mark runs on this many threads. 0: no background marking at all;
    /// mutators do the marking a little at a time as they allocate (an incremental
    /// collector). Default: available cores.
    pub mark_workers: usize,
    /// Go's `GODEBUG=gcstoptheworld=1`: mark with the world stopped, the whole cycle in one
    /// pause, as before marking was concurrent (for comparison and debugging).
    pub stop_the_world: bool,
    /// Generational collection (`GODEBUG=gcgen=0` turns it off; Go has none): between
    /// major cycles, minor ones (concurrent, as major ones) mark only what was allocated
    /// since the last cycle, from the roots and from the old objects the write barrier's
    /// card table says were written to; mark bits stay set across them (sticky), so old
    /// objects are not marked again. See `gc/src/generations.rs` for the policy. Default on.
    pub generational: bool,
    /// In generational mode, an object becomes old when it survives its second cycle, not
    /// its first (`GODEBUG=gcage=1`; see `gc/src/generations.rs`): an object allocated
    /// just before a minor cycle, or during it, is often about to die (a temporary
    /// structure half built), and promoted it lives until the next major cycle. Default
    /// off: on gcbench and binary-trees it trades major cycles for minor work and gains
    /// no time (README, issue 17).
    pub ages: bool,
    /// In generational mode without ages, what the mutators allocate while a minor cycle
    /// marks (black) stays young through its sweep rather than being promoted with what
    /// the cycle traced (`GODEBUG=gcblackyoung=0` promotes it, as before; see
    /// `gc/src/generations.rs`). Default on.
    pub black_young: bool,
    /// Markers prefetch the grey objects they are about to scan, through a FIFO of 16
    /// (`GODEBUG=gcprefetch=0` turns it off, to measure what it gains; Go has none).
    /// Default on.
    pub mark_prefetch: bool,
    /// Go's `GODEBUG=gccheckmark=1`: after each mark, re-mark from the roots
    /// single-threaded and panic with the path if anything reachable was left unmarked.
    pub verify: bool,
    /// Go's `GODEBUG=gctrace=1`: one line per cycle on stderr.
    pub trace: bool,
    /// Collect before every allocation (for testing embedders' rooting).
    pub stress: bool,
    /// Sweep in a background thread between cycles (as Go's `bgsweep`), besides the lazy
    /// sweeping allocation does. Default on; `GODEBUG=gcbgsweep=0` turns it off (Go has no
    /// such setting).
    pub background_sweep: bool,
    /// Bytes of address space the heap reserves.
    pub address_space: usize,
    /// Go's `runtime.MemProfileRate` (and `GODEBUG=memprofilerate=N`): the heap profile
    /// records one allocation per this many bytes allocated, on average; 1 records every
    /// allocation that takes a slot (as in Go, a tiny object carved from the current
    /// 16-byte block is not one: the block was counted when it was taken); 0 turns heap
    /// profiling off. Default 512 KiB, as Go.
    pub mem_profile_rate: usize,
}

/// Go's default `MemProfileRate`: one sample per 512 KiB allocated.
pub const DEFAULT_MEM_PROFILE_RATE: usize = 512 * 1024;

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            gogc: Some(100),
            memory_limit: None,
            max_heap: None,
            mark_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            stop_the_world: false,
            generational: true,
            ages: false,
            black_young: true,
            mark_prefetch: true,
            verify: false,
            trace: false,
            stress: false,
            background_sweep: true,
            address_space: DEFAULT_ADDRESS_SPACE,
            mem_profile_rate: DEFAULT_MEM_PROFILE_RATE,
        }
    }
}

/// An environment variable that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for EnvError {}

impl GcConfig {
    /// The defaults with the process environment applied, as Go reads it: `GOGC` (a
    /// percentage or `off`), `GOMEMLIMIT` (bytes with an optional `B`, `KiB`, `MiB`, `GiB`,
    /// `TiB` suffix, or `off`), `GODEBUG` (`gctrace=1`, `gccheckmark=1`,
    /// `gcstoptheworld=1`, `gcgen=0`, `gcprefetch=0`, `gcbgsweep=0`, `memprofilerate=N`).
    pub fn from_env() -> Result<GcConfig, EnvError> {
        let get = |k| std::env::var(k).ok();
        GcConfig::default().with_env(get("GOGC"), get("GOMEMLIMIT"), get("GODEBUG"))
    }

    /// Applies the three variables' values (for tests and embedders with their own
    /// environment).
    pub fn with_env(
        mut self,
        gogc: Option<String>,
        memlimit: Option<String>,
        godebug: Option<String>,
    ) -> Result<GcConfig, EnvError> {
        if let Some(v) = gogc {
            self.gogc = parse_gogc(&v).ok_or(EnvError {
                var: "GOGC",
                value: v,
                expected: "a percentage or \"off\"",
            })?;
        }
        if let Some(v) = memlimit {
            self.memory_limit = if v.trim() == "off" {
                None
            } else {
                Some(parse_size(&v).ok_or(EnvError {
                    var: "GOMEMLIMIT",
                    value: v,
                    expected: "a byte count with an optional B/KiB/MiB/GiB/TiB suffix, or \"off\"",
                })?)
            };
        }
        if let Some(v) = godebug {
            for setting in v.split(',') {
                match setting.trim().split_once('=') {
                    Some(("gctrace", n)) => self.trace = n.trim() != "0",
                    Some(("gccheckmark", n)) => self.verify = n.trim() != "0",
                    Some(("gcstoptheworld", n)) => self.stop_the_world = n.trim() != "0",
                    Some(("gcgen", n)) => self.generational = n.trim() != "0",
                    Some(("gcage", n)) => self.ages = n.trim() != "0",
                    Some(("gcblackyoung", n)) => self.black_young = n.trim() != "0",
                    Some(("gcprefetch", n)) => self.mark_prefetch = n.trim() != "0",
                    Some(("gcbgsweep", n)) => self.background_sweep = n.trim() != "0",
                    Some(("memprofilerate", n)) => {
                        self.mem_profile_rate = n.trim().parse().map_err(|_| EnvError {
                            var: "GODEBUG",
                            value: v.clone(),
                            expected: "memprofilerate=N with N a byte count (0: off)",
                        })?
                    }
                    _ => {} // Go ignores settings it does not know.
                }
            }
        }
        Ok(self)
    }
}

/// `GOGC`: a non-negative percentage, or `off`.
pub fn parse_gogc(s: &str) -> Option<Option<u32>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Some(None);
    }
    s.parse::<u32>().ok().map(Some)
}

/// A byte size as GOMEMLIMIT writes it: digits, then optionally `B`, `KiB`, `MiB`, `GiB` or
/// `TiB` (Go's units, powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_environment_syntax() {
        let c = GcConfig::default()
            .with_env(
                Some("off".into()),
                Some("512MiB".into()),
                Some("gctrace=1,inittrace=1".into()),
            )
            .unwrap();
        assert_eq!(c.gogc, None);
        assert_eq!(c.memory_limit, Some(512 << 20));
        assert!(c.trace && !c.verify && !c.stop_the_world);
        let c = GcConfig::default()
            .with_env(
                Some("50".into()),
                Some("off".into()),
                Some("gccheckmark=1, gcstoptheworld=1,memprofilerate=1,gcgen=1".into()),
            )
            .unwrap();
        assert_eq!(c.mem_profile_rate, 1);
        assert_eq!(GcConfig::default().mem_profile_rate, 512 * 1024);
        assert!(GcConfig::default()
            .with_env(None, None, Some("memprofilerate=lots".into()))
            .is_err());
        assert_eq!((c.gogc, c.memory_limit, c.verify), (Some(50), None, true));
        assert!(c.stop_the_world && c.generational);
        assert!(GcConfig::default().generational);
        let off = GcConfig::default()
            .with_env(None, None, Some("gcgen=0".into()))
            .unwrap();
        assert!(!off.generational && off.mark_prefetch);
        let on = GcConfig::default()
            .with_env(None, None, Some("gcage=1".into()))
            .unwrap();
        assert!(on.generational && on.ages && !GcConfig::default().ages);
        let off = GcConfig::default()
            .with_env(None, None, Some("gcblackyoung=0".into()))
            .unwrap();
        assert!(off.generational && !off.black_young && GcConfig::default().black_young);
        let off = GcConfig::default()
            .with_env(None, None, Some("gcprefetch=0".into()))
            .unwrap();
        assert!(off.generational && !off.mark_prefetch);
        let off = GcConfig::default()
            .with_env(None, None, Some("gcbgsweep=0".into()))
            .unwrap();
        assert!(!off.background_sweep && off.mark_prefetch);
        let on = GcConfig {
            background_sweep: false,
            ..GcConfig::default()
        }
        .with_env(None, None, Some("gcbgsweep=1".into()))
        .unwrap();
        assert!(on.background_sweep);
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("3GiB"), Some(3 << 30));
        assert_eq!(parse_size("3GB"), None, "Go's units are binary");
        assert_eq!(parse_size("99999999999TiB"), None, "overflow");
        let e = GcConfig::default()
            .with_env(Some("lots".into()), None, None)
            .unwrap_err();
        assert_eq!(e.var, "GOGC");
        assert!(e.to_string().contains("percentage"));
        assert!(GcConfig::default()
            .with_env(None, Some("-1".into()), None)
            .is_err());
    }
}
