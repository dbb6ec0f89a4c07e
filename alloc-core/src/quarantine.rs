//! The quarantine: slots a sweep found dead, held back from reuse for a few cycles
//! (AddressSanitizer's quarantine, for a collected heap).
//!
//! A handle kept where the collector does not look (a `Vec`, another thread) outlives its
//! object. Without a quarantine its slot is handed out again at once, to an object of the
//! same size class, and a check of the handle finds a live object of the right shape
//! where the freed one was. With it, checked builds of the runtime's typed layer turn
//! that into a report naming the cycle that freed the object:
//!
//! 1. A sweep that finds a slot dead (allocated, unmarked) for the first time records it
//!    with its sweep generation and leaves its alloc bit set: no mcache hands it out, and
//!    the span stays in use. The slot is cleared as every freed slot is, and counted as
//!    freed: the statistics and the pacer see the heap without the quarantine.
//! 2. Each later sweep of the span finds the slot dead again (nothing marks it) and
//!    keeps holding it, until `cycles` cycles have passed since it was freed: then the
//!    slot is released as any freed slot (its alloc bit clears) and forgotten.
//! 3. [`MHeap::freed_by`](crate::MHeap::freed_by) answers, for an object's address,
//!    which cycle freed it, while it is held.
//!
//! Bounds. A held slot pins its span's pages, which no other size class can take
//! meanwhile, so a heap under a `max_heap` limit holds nothing: a program that fits its
//! limit must not run out for a check. Otherwise the quarantine holds at most
//! [`MAX_BYTES`] of objects and [`MAX_ENTRIES`] of them (its table is on the Rust heap);
//! a dead slot past either is released at once, as without a quarantine. The pages pinned
//! may be more than the bytes held (one slot pins a whole span): checked builds trade that
//! memory for the reports. Large objects are held as small ones are, span and all, and
//! cleared, so that a stale stack word that marks one keeps nothing else alive.
//!
//! It is off unless the heap's owner turns it on ([`MHeap::set_quarantine`]): it costs a
//! table lookup per dead object and a lock per span swept.
//!
//! [`MHeap::set_quarantine`]: crate::MHeap::set_quarantine

use std::collections::HashMap;

use std::sync::atomic::{AtomicU32, Ordering};

use crate::sync::Mutex;

/// Bytes of objects the quarantine holds at most.
const MAX_BYTES: usize = 64 << 20;

/// Objects the quarantine holds at most (its table's entries).
const MAX_ENTRIES: usize = 1 << 20;

/// The heap's quarantine.
pub(crate) struct Quarantine {
    /// Cycles a dead slot is held for; 0: off. A setting made before the heap is shared,
    /// not a handoff: std's atomic keeps it out of the loom models' schedules, which
    /// every sweep would otherwise lengthen by a load.
    cycles: AtomicU32,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// Object address -> the sweep generation that found it dead.
    freed_at: HashMap<usize, u32>,
    bytes: usize,
}

/// What a sweep of one span did with its dead slots.
pub(crate) struct SpanVerdict {
    /// Per alloc-bit word: the dead slots still held.
    pub(crate) held: Vec<u64>,
    /// Dead slots found dead for the first time: the objects this sweep frees.
    pub(crate) fresh: usize,
}

impl Quarantine {
    pub(crate) fn new() -> Quarantine {
        Quarantine {
            cycles: AtomicU32::new(0),
            held: Mutex::new(Held::default()),
        }
    }

    pub(crate) fn set_cycles(&self, cycles: u32) {
        self.cycles.store(cycles, Ordering::Relaxed);
    }

    /// Whether sweeps consult the quarantine.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.cycles.load(Ordering::Relaxed) != 0
    }

    /// Decides, in a sweep of generation `sg`, which of a span's dead slots stay held:
    /// `dead(w)` gives word `w`'s dead slots (bit `b`: slot `64w + b`), the slot at index
    /// `n` is at `base + n * elemsize`, and the heap may hold `max_heap` bytes at most.
    pub(crate) fn sweep_span(
        &self,
        sg: u32,
        base: usize,
        elemsize: usize,
        words: usize,
        max_heap: Option<usize>,
        dead: impl Fn(usize) -> u64,
    ) -> SpanVerdict {
        let hold_for = self.cycles.load(Ordering::Relaxed).saturating_mul(2);
        let max_bytes = if max_heap.is_some() { 0 } else { MAX_BYTES };
        let mut h = self.held.lock();
        let mut verdict = SpanVerdict {
            held: vec![0; words],
            fresh: 0,
        };
        for (w, held) in verdict.held.iter_mut().enumerate() {
            let mut d = dead(w);
            while d != 0 {
                let bit = d.trailing_zeros();
                d &= d - 1;
                let addr = base + (w * 64 + bit as usize) * elemsize;
                match h.freed_at.get(&addr) {
                    None => {
                        verdict.fresh += 1;
                        if h.bytes + elemsize <= max_bytes && h.freed_at.len() < MAX_ENTRIES {
                            h.freed_at.insert(addr, sg);
                            h.bytes += elemsize;
                            *held |= 1 << bit;
                        }
                    }
                    Some(&at) if sg.wrapping_sub(at) >= hold_for => {
                        h.freed_at.remove(&addr);
                        h.bytes -= elemsize;
                    }
                    Some(_) => *held |= 1 << bit,
                }
            }
        }
        verdict
    }

    /// The sweep generation that freed the object at `addr`, while the quarantine holds
    /// it.
    pub(crate) fn freed_at(&self, addr: usize) -> Option<u32> {
        if !self.on() {
            return None;
        }
        self.held.lock().freed_at.get(&addr).copied()
    }
}
