//! Memory statistics with the meanings of Go's `runtime.MemStats`.
//!
//! Counting stays off the fast path: an mcache counts nothing per allocation; when it hands
//! a span back (or is asked to flush) it reports how far the span's `alloc_count` moved
//! since it took it, along with its own tiny and large counters. Sweepers report frees per
//! span. The heap-wide counters are behind one lock touched only at those moments. A
//! snapshot is exact when every mcache has been flushed (the runtime stops the world for
//! that, as Go's `ReadMemStats` does).

use crate::sizeclass::{CLASS_TO_SIZE, NUM_SIZE_CLASSES};
use crate::sync::{AtomicU64, Mutex, Ordering};

/// The heap's running counts: the object counters behind `MemStats`, and Go's `heapLive`.
pub(crate) struct HeapStats {
    pub(crate) counters: Mutex<Counters>,
    /// Go's `heapLive`: see `MHeap::heap_live`.
    heap_live: AtomicU64,
}

impl HeapStats {
    pub(crate) fn new() -> HeapStats {
        HeapStats {
            counters: Mutex::new(Counters::default()),
            heap_live: AtomicU64::new(0),
        }
    }

    pub(crate) fn heap_live(&self) -> u64 {
        self.heap_live.load(Ordering::Relaxed)
    }

    pub(crate) fn set_heap_live(&self, bytes: u64) {
        self.heap_live.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn add_live(&self, bytes: u64) {
        self.heap_live.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn sub_live(&self, bytes: u64) {
        // Saturating: a collection may have reset the count below what a cache holds.
        let _ = self
            .heap_live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(bytes))
            });
    }
}

/// Object counters kept by the heap; fed by mcache flushes and sweeps.
#[derive(Clone, Debug)]
pub(crate) struct Counters {
    pub(crate) small_allocs: [u64; NUM_SIZE_CLASSES],
    pub(crate) small_frees: [u64; NUM_SIZE_CLASSES],
    pub(crate) large_allocs: u64,
    pub(crate) large_alloc_bytes: u64,
    pub(crate) large_frees: u64,
    pub(crate) large_free_bytes: u64,
    /// Tiny allocations that fit in an existing block (each block is a small alloc).
    pub(crate) tiny_allocs: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            small_allocs: [0; NUM_SIZE_CLASSES],
            small_frees: [0; NUM_SIZE_CLASSES],
            large_allocs: 0,
            large_alloc_bytes: 0,
            large_frees: 0,
            large_free_bytes: 0,
            tiny_allocs: 0,
        }
    }
}

/// Allocation count of one size class (Go's `MemStats.BySize` entry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BySize {
    /// Object size of the class.
    pub size: u32,
    /// Objects of this class allocated so far.
    pub mallocs: u64,
    /// Objects of this class freed so far.
    pub frees: u64,
}

/// A snapshot of the heap, field by field as Go's `runtime.MemStats` defines it. The GC
/// fields stay zero when no collector drives the heap.
#[derive(Clone, Debug)]
pub struct MemStats {
    /// Bytes of allocated heap objects (same as `heap_alloc`).
    pub alloc: u64,
    /// Cumulative bytes allocated for heap objects (size-class rounded; whole pages for
    /// large objects). Never decreases.
    pub total_alloc: u64,
    /// Bytes obtained from the OS for the heap and its metadata.
    pub sys: u64,
    /// Cumulative count of heap objects allocated (including tiny sub-allocations).
    pub mallocs: u64,
    /// Cumulative count of heap objects freed.
    pub frees: u64,
    /// Bytes of allocated heap objects: allocated and not yet swept away.
    pub heap_alloc: u64,
    /// Bytes of heap memory obtained from the OS (arenas grown into).
    pub heap_sys: u64,
    /// Bytes in idle (unused) spans: `heap_sys - heap_inuse`.
    pub heap_idle: u64,
    /// Bytes in in-use spans.
    pub heap_inuse: u64,
    /// Bytes of idle memory returned to the OS (or never touched since it was obtained).
    pub heap_released: u64,
    /// Number of allocated heap objects.
    pub heap_objects: u64,
    /// Heap size the next collection aims to finish by.
    pub next_gc: u64,
    /// When the last collection finished, in nanoseconds since the Unix epoch.
    pub last_gc: u64,
    /// Cumulative nanoseconds of stop-the-world pauses.
    pub pause_total_ns: u64,
    /// Recent pause durations: the pause of cycle `n` is at `pause_ns[(n + 255) % 256]`.
    pub pause_ns: [u64; 256],
    /// When each recent pause ended, in nanoseconds since the Unix epoch.
    pub pause_end: [u64; 256],
    /// Completed collection cycles.
    pub num_gc: u32,
    /// Cycles forced by the application.
    pub num_forced_gc: u32,
    /// Fraction of the CPU time since the first cycle used by the collector.
    pub gc_cpu_fraction: f64,
    /// Per size class allocations and frees (every class, where Go reports the first 61).
    pub by_size: Vec<BySize>,
    /// Bytes of goroutine stack memory in use: resident pages of the stacks goroutines
    /// hold (running, parked, or kept for reuse), in every runtime of the process (stack
    /// arenas are shared). Zero without goroutines (a standalone heap). Stacks are backed
    /// lazily, so this is what they cost, not their reserved size.
    pub stack_inuse: u64,
    /// Bytes of stack memory obtained from the OS: `stack_inuse` plus the resident pages of
    /// free stack slots (Go adds its threads' stacks; these are the OS's here).
    pub stack_sys: u64,
}

impl Default for MemStats {
    fn default() -> Self {
        MemStats {
            alloc: 0,
            total_alloc: 0,
            sys: 0,
            mallocs: 0,
            frees: 0,
            heap_alloc: 0,
            heap_sys: 0,
            heap_idle: 0,
            heap_inuse: 0,
            heap_released: 0,
            heap_objects: 0,
            next_gc: 0,
            last_gc: 0,
            pause_total_ns: 0,
            pause_ns: [0; 256],
            pause_end: [0; 256],
            num_gc: 0,
            num_forced_gc: 0,
            gc_cpu_fraction: 0.0,
            by_size: Vec::new(),
            stack_inuse: 0,
            stack_sys: 0,
        }
    }
}

impl MemStats {
    /// The fields in the text Go's heap profile ends with in its debug form
    /// (`pprof.Lookup("heap").WriteTo(w, 1)`): `# runtime.MemStats`, one `# Name = value`
    /// line per field, `PauseNs` as the 256 recent pauses, and `BySize` as
    /// `size/mallocs/frees` triples.
    pub fn go_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::from("# runtime.MemStats\n");
        let mut line = |name: &str, v: &dyn std::fmt::Display| {
            let _ = writeln!(s, "# {name} = {v}");
        };
        line("Alloc", &self.alloc);
        line("TotalAlloc", &self.total_alloc);
        line("Sys", &self.sys);
        line("Mallocs", &self.mallocs);
        line("Frees", &self.frees);
        line("HeapAlloc", &self.heap_alloc);
        line("HeapSys", &self.heap_sys);
        line("HeapIdle", &self.heap_idle);
        line("HeapInuse", &self.heap_inuse);
        line("HeapReleased", &self.heap_released);
        line("HeapObjects", &self.heap_objects);
        line("StackInuse", &self.stack_inuse);
        line("StackSys", &self.stack_sys);
        line("NextGC", &self.next_gc);
        line("LastGC", &self.last_gc);
        line("PauseTotalNs", &self.pause_total_ns);
        let pauses: Vec<String> = self.pause_ns.iter().map(u64::to_string).collect();
        line("PauseNs", &format!("[{}]", pauses.join(" ")));
        line("NumGC", &self.num_gc);
        line("NumForcedGC", &self.num_forced_gc);
        line("GCCPUFraction", &self.gc_cpu_fraction);
        let by_size: Vec<String> = self
            .by_size
            .iter()
            .map(|b| format!("{}/{}/{}", b.size, b.mallocs, b.frees))
            .collect();
        line(
            "BySize (size/mallocs/frees)",
            &format!("[{}]", by_size.join(" ")),
        );
        s
    }

    /// Fills the object fields from the heap's counters (Go's `readmemstats_m` sums).
    pub(crate) fn add_counters(&mut self, c: &Counters) {
        let (mut mallocs, mut frees, mut alloc_bytes, mut free_bytes) = (0u64, 0u64, 0u64, 0u64);
        self.by_size = (0..NUM_SIZE_CLASSES)
            .map(|i| {
                let size = CLASS_TO_SIZE[i] as u64;
                mallocs += c.small_allocs[i];
                frees += c.small_frees[i];
                alloc_bytes += c.small_allocs[i] * size;
                free_bytes += c.small_frees[i] * size;
                BySize {
                    size: size as u32,
                    mallocs: c.small_allocs[i],
                    frees: c.small_frees[i],
                }
            })
            .collect();
        mallocs += c.large_allocs + c.tiny_allocs;
        frees += c.large_frees + c.tiny_allocs;
        alloc_bytes += c.large_alloc_bytes;
        free_bytes += c.large_free_bytes;
        self.mallocs = mallocs;
        self.frees = frees;
        self.total_alloc = alloc_bytes;
        self.heap_alloc = alloc_bytes - free_bytes;
        self.alloc = self.heap_alloc;
        self.heap_objects = mallocs - frees;
    }
}
