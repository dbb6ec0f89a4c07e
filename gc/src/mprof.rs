//! Heap profile records (Go's `mprof.go`): which call stacks allocated the sampled
//! objects, and how many of those are still in use.
//!
//! 1. Each mutator's mcache counts bytes down to its next sample (alloc-core's `cache.rs`,
//!    Go's `nextSample`). A sampled allocation comes back through the slow path
//!    ([`crate::alloc_slow`]), which asks its context for the stack: the embedder's own
//!    frames through [`Roots::sample_stack`](crate::Roots::sample_stack) (a Lox program's
//!    functions and lines), or by default the Rust call stack, as return addresses,
//!    symbolized only when a profile is written.
//! 2. The stack and the sampled size find their bucket (`MemProfile::malloc`, Go's
//!    `mProf_Malloc`); the bucket's number is attached to the object as a special, so the
//!    sweep that frees it queues the number (Go's `mProf_Free`).
//! 3. A profile shows the heap as of the last completed mark, as Go's does, so that an
//!    object's allocation and its free are always seen together. Each bucket keeps three
//!    cycles of pending counts: allocations made while `cycle == c` are counted in slot
//!    `(c + 1) % 3`, with the cycle whose mark will judge them; frees swept after mark
//!    `c` in slot `c % 3`. Mark termination takes the frees the last sweep queued (that
//!    sweep is done by then) and advances `c` (`MemProfile::next_cycle`, Go's
//!    `mProf_NextCycle`); once the world runs again, the frees are counted and the slot is
//!    published (`MemProfile::flush`, Go's `mProf_Flush`), so a stop never walks the
//!    buckets. A forced collection publishes as soon as its sweep is done
//!    (`MemProfile::post_sweep`, Go's `mProf_PostSweep`).
//! 4. Readers take the published counts ([`MemProfile::records`]); `pprof.rs` scales them
//!    by the sampling probability and writes the profile.proto file `go tool pprof` reads.

use std::collections::HashMap;
use std::sync::Arc as StdArc;

use minigo_alloc_core::sync::Mutex;
use minigo_alloc_core::MHeap;

/// Frames recorded per sample at most (Go 1.23's default `profstackdepth`).
pub const MAX_STACK_DEPTH: usize = 128;

/// One frame of a sampled allocation's stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// An address in this process's code: the leaf's instruction pointer or a return
    /// address, symbolized when a profile is written.
    Pc(usize),
    /// A frame the embedder named (an interpreted function, say).
    Named {
        /// The function's name.
        function: StdArc<str>,
        /// Its source file.
        file: StdArc<str>,
        /// The line being run in it.
        line: u32,
    },
}

/// The stack of one sampled allocation, innermost frame first, as
/// [`Roots::sample_stack`](crate::Roots::sample_stack) builds it.
#[derive(Debug, Default)]
pub struct SampleStack {
    frames: Vec<Frame>,
}

impl SampleStack {
    /// An empty stack.
    pub fn new() -> SampleStack {
        SampleStack::default()
    }

    /// Appends a named frame (callers after callees). Frames past [`MAX_STACK_DEPTH`] are
    /// dropped.
    pub fn push(&mut self, function: &str, file: &str, line: u32) {
        if self.frames.len() < MAX_STACK_DEPTH {
            self.frames.push(Frame::Named {
                function: function.into(),
                file: file.into(),
                line,
            });
        }
    }

    /// Appends the calling thread's Rust stack (return addresses, symbolized later; the
    /// collector's and runtime's own frames are trimmed when the profile is written).
    pub fn capture_rust(&mut self) {
        backtrace::trace(|f| {
            self.frames.push(Frame::Pc(f.ip() as usize));
            self.frames.len() < MAX_STACK_DEPTH
        });
    }

    /// The frames, innermost first.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Whether no frame was pushed.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Counts for one bucket over some span of cycles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    allocs: u64,
    frees: u64,
}

/// The published counts of one call stack and size (Go's `MemProfileRecord`): sampled
/// objects, not yet scaled to estimates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemProfileRecord {
    /// The allocating stack, innermost frame first.
    pub stack: Vec<Frame>,
    /// The bytes each sampled object counted (its slot size).
    pub size: u64,
    /// Sampled objects allocated.
    pub alloc_objects: u64,
    /// Sampled objects freed.
    pub free_objects: u64,
}

impl MemProfileRecord {
    /// Bytes allocated by the sampled objects.
    pub fn alloc_bytes(&self) -> u64 {
        self.alloc_objects * self.size
    }

    /// Bytes freed by the sampled objects.
    pub fn free_bytes(&self) -> u64 {
        self.free_objects * self.size
    }

    /// Sampled objects still in use.
    pub fn inuse_objects(&self) -> u64 {
        self.alloc_objects - self.free_objects
    }
}

struct Bucket {
    stack: StdArc<[Frame]>,
    size: u64,
    /// Pending counts by cycle (see the module comment).
    future: [Counts; 3],
    /// Published counts.
    active: Counts,
}

#[derive(Default)]
struct Records {
    buckets: Vec<Bucket>,
    index: HashMap<(StdArc<[Frame]>, u64), u32>,
    /// Mark terminations seen (Go's `mProfCycle`).
    cycle: u32,
    /// A slot mark termination left to publish, with the frees of its sweep.
    unflushed: Option<(usize, Vec<u32>)>,
}

impl Records {
    /// Publishes what the last mark termination left, if it is still waiting.
    fn flush_unflushed(&mut self) {
        if let Some((slot, freed)) = self.unflushed.take() {
            self.flush_slot(slot, freed);
        }
    }

    /// Counts `freed` in `slot` and publishes it. A record that names no bucket (only
    /// `MHeap::add_special` called from outside the collector can make one) is ignored.
    fn flush_slot(&mut self, slot: usize, freed: Vec<u32>) {
        for b in freed {
            if let Some(b) = self.buckets.get_mut(b as usize) {
                b.future[slot].frees += 1;
            }
        }
        for b in &mut self.buckets {
            let f = std::mem::take(&mut b.future[slot]);
            b.active.allocs += f.allocs;
            b.active.frees += f.frees;
        }
    }
}

/// The heap profile of one heap.
#[derive(Default)]
pub struct MemProfile {
    records: Mutex<Records>,
}

impl MemProfile {
    /// Counts a sampled allocation of `size` bytes made from `stack`; returns its bucket's
    /// number, for the object's special.
    pub(crate) fn malloc(&self, stack: &[Frame], size: usize) -> u32 {
        let mut r = self.records.lock();
        let r = &mut *r;
        let size = size as u64;
        let key: StdArc<[Frame]> = stack.into();
        let n = r.buckets.len() as u32;
        let b = *r.index.entry((key.clone(), size)).or_insert(n);
        if b == n {
            r.buckets.push(Bucket {
                stack: key,
                size,
                future: [Counts::default(); 3],
                active: Counts::default(),
            });
        }
        let slot = ((r.cycle + 1) % 3) as usize;
        r.buckets[b as usize].future[slot].allocs += 1;
        b
    }

    /// Mark termination, with the world stopped and before the new cycle's sweep begins:
    /// takes the frees of the sweep that just finished and moves on. The slot they belong
    /// to is published by `MemProfile::flush` once the world runs.
    pub(crate) fn next_cycle(&self, heap: &MHeap) {
        let mut r = self.records.lock();
        // No flush since the last stop (none runs between two back-to-back stops).
        r.flush_unflushed();
        let slot = (r.cycle % 3) as usize;
        r.unflushed = Some((slot, heap.take_freed_specials()));
        r.cycle = r.cycle.wrapping_add(1);
    }

    /// After a stop: publishes what the last mark termination left.
    pub(crate) fn flush(&self) {
        let mut r = self.records.lock();
        r.flush_unflushed();
    }

    /// A collection's sweep is complete: publishes its cycle now rather than at the next
    /// mark termination.
    pub(crate) fn post_sweep(&self, heap: &MHeap) {
        let mut r = self.records.lock();
        r.flush_unflushed();
        let slot = (r.cycle % 3) as usize;
        let freed = heap.take_freed_specials();
        r.flush_slot(slot, freed);
    }

    /// The published records, one per bucket that allocated anything.
    pub fn records(&self) -> Vec<MemProfileRecord> {
        let mut r = self.records.lock();
        r.flush_unflushed();
        r.buckets
            .iter()
            .filter(|b| b.active.allocs > 0)
            .map(|b| MemProfileRecord {
                stack: b.stack.to_vec(),
                size: b.size,
                alloc_objects: b.active.allocs,
                free_objects: b.active.frees,
            })
            .collect()
    }
}
