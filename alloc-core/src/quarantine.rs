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
//!    the span stays in use. The slot is cleared (a freed slot is otherwise cleared only
//!    when it is handed out again: a held one is still an object to a stale word that
//!    marks it, and must hold no old pointer), and counted as freed: the statistics and
//!    the pacer see the heap without the quarantine.
//! 2. Each later sweep of the span finds the slot dead again (nothing marks it) and
//!    keeps holding it, until `cycles` cycles have passed since it was freed: then the
//!    slot is released as any freed slot (its alloc bit clears) and forgotten.
//! 3. [`MHeap::freed_by`](crate::MHeap::freed_by) answers, for an object's address,
//!    which cycle freed it, while it is held.
//!
//! The table is kept per span (its base, then a generation per slot): a sweep looks its
//! span up once, and a dead slot costs an array access.
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
//! lock and a table lookup per span swept.
//!
//! [`MHeap::set_quarantine`]: crate::MHeap::set_quarantine

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

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

/// Hashes a span's base address with one multiplication, folded: bases are distinct and
/// page-aligned, and SipHash would make the sweeps of debug builds slower still.
#[derive(Default)]
struct BaseHasher(u64);

impl Hasher for BaseHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        // The table indexes by the low bits, which a product of aligned addresses
        // leaves zero: fold the high half in.
        let h = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ h >> 32;
    }
}

/// The held slots of one span.
struct SpanHeld {
    /// Per slot: 0, or the sweep generation that found it dead (always 2 or more).
    freed_at: Box<[u32]>,
    /// Slots held.
    count: usize,
}

#[derive(Default)]
struct Held {
    /// Span base -> its held slots: one lookup per span swept, not one per dead object
    /// (a table of objects made debug builds' sweeps several times slower).
    spans: HashMap<usize, SpanHeld, BuildHasherDefault<BaseHasher>>,
    bytes: usize,
    objects: usize,
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
        debug_assert!(sg >= 2, "sweeps begin with the first cycle");
        let mut guard = self.held.lock();
        let h = &mut *guard;
        let mut verdict = SpanVerdict {
            held: vec![0; words],
            fresh: 0,
        };
        let mut span = h.spans.remove(&base);
        for (w, held) in verdict.held.iter_mut().enumerate() {
            let mut d = dead(w);
            while d != 0 {
                let bit = d.trailing_zeros();
                d &= d - 1;
                let slot = w * 64 + bit as usize;
                match span.as_ref().map_or(0, |s| s.freed_at[slot]) {
                    0 => {
                        verdict.fresh += 1;
                        if h.bytes + elemsize <= max_bytes && h.objects < MAX_ENTRIES {
                            let s = span.get_or_insert_with(|| SpanHeld {
                                freed_at: vec![0; words * 64].into_boxed_slice(),
                                count: 0,
                            });
                            s.freed_at[slot] = sg;
                            s.count += 1;
                            h.bytes += elemsize;
                            h.objects += 1;
                            *held |= 1 << bit;
                        }
                    }
                    at if sg.wrapping_sub(at) >= hold_for => {
                        let s = span.as_mut().expect("a held slot's span is recorded");
                        s.freed_at[slot] = 0;
                        s.count -= 1;
                        h.bytes -= elemsize;
                        h.objects -= 1;
                    }
                    _ => *held |= 1 << bit,
                }
            }
        }
        if let Some(s) = span.filter(|s| s.count > 0) {
            h.spans.insert(base, s);
        }
        verdict
    }

    /// The sweep generation that freed slot `index` of the span at `base`, while the
    /// quarantine holds it.
    pub(crate) fn freed_at(&self, base: usize, index: usize) -> Option<u32> {
        if !self.on() {
            return None;
        }
        let h = self.held.lock();
        let at = *h.spans.get(&base)?.freed_at.get(index)?;
        (at != 0).then_some(at)
    }
}
