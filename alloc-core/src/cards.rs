//! The card table: one byte per 512-byte card of the heap's address space, set when a
//! pointer is stored into the card. It is the remembered set of generational (minor)
//! collections: with sticky mark bits, an old object is one still marked from an earlier
//! cycle, and a minor cycle marks only from the roots and from the pointer words of old
//! objects on dirty cards, so every store that can make an old object point at a young one
//! must dirty its card first. The write barrier dirties a card with one shift and one byte
//! store, unconditionally (no test of what was stored where): filtering is left to the
//! minor cycle, which reads only the marked objects of dirty cards. A minor cycle's markers
//! dirty cards too: those of old objects that hold a pointer to an object that survives
//! the cycle still young (objects age, see `gc/src/generations.rs`), since no store will
//! dirty them again.
//!
//! Like the pointer bitmap, the table covers the whole reservation and is committed only
//! where touched (a 256 GiB reservation has a 512 MiB table, of which a 1 GiB heap touches
//! at most 2 MiB). Mutators dirty cards with relaxed byte stores; a minor cycle's markers
//! take them (a byte load, and a compare-and-swap for a dirty one) while mutators run. A
//! minor cycle begins by moving the table to a new epoch (below): its markers take the
//! cards of the epoch before, and a card dirtied while it marks holds the new one and is
//! left dirty for the next minor cycle, which needs it: it may point at an object
//! allocated while this one marked, which stays young (see `gc/src/generations.rs`). A
//! card that was dirty when the cycle began and is dirtied again before the markers reach
//! it is read, and left dirty.
//!
//! A dirty card holds the table's *epoch* (1 to 255), not just a flag. A major cycle makes
//! every live object old, and every pointer an old object holds then points at an old
//! one: cards dirtied before it ended say nothing the next minor cycle needs. Cleaning
//! them would take a walk of the table in the stop that ends the major cycle (a byte per
//! 512 bytes of heap: 6 MiB at 3 GiB); instead that stop moves the table to the next
//! epoch and gives every mutator's barrier a marker that stores it. A minor cycle's
//! markers take only the cards holding the epoch before it began (and those holding its
//! own, which they leave dirty); a card of an earlier epoch reads as clean. 255 epochs
//! later it reads as dirty again, and costs one needless scan of its card.

use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::os::Reservation;

/// log2 of the bytes a card covers (Go has no card table; 512 is the size HotSpot and
/// most card-marking collectors use: 64 words, one word of the pointer bitmap).
pub(crate) const CARD_SHIFT: usize = 9;

/// Bytes a card covers.
pub(crate) const CARD_BYTES: usize = 1 << CARD_SHIFT;

pub(crate) struct CardTable {
    map: Reservation,
    table: *mut u8,
    heap_base: usize,
    heap_len: usize,
    /// The value of a dirty card now (never 0, the value of a clean one). Changed only
    /// with every mutator stopped, which then takes a new [`CardMarker`].
    epoch: AtomicU8,
    /// The epoch whose dirty cards a minor cycle's scan takes: the one before a minor
    /// cycle began ([`CardTable::begin_minor`]).
    taking: AtomicU8,
}

// SAFETY: `table` points into `map`, which lives as long as `self`; every access through it
// is a byte or word atomic.
unsafe impl Send for CardTable {}
// SAFETY: as above.
unsafe impl Sync for CardTable {}

/// What the write barrier needs to dirty a card: the table's address biased by the heap's
/// base, so that the card of `slot` is `biased + (slot >> CARD_SHIFT)`.
#[derive(Clone, Copy, Debug)]
pub struct CardMarker {
    /// Non-zero, so that an `Option<CardMarker>` (a barrier with cards off) is no larger.
    biased: NonZeroUsize,
    heap_base: usize,
    heap_len: usize,
    /// The table's epoch when this marker was made: what a dirtied card holds.
    epoch: u8,
}

impl CardMarker {
    /// Dirties the card holding `slot`; does nothing for a slot outside the heap's
    /// reservation (a store into another heap's object: its own barrier's business, and
    /// no byte outside the table is ever written).
    ///
    /// # Safety
    /// The heap (which owns the table) is alive.
    #[inline(always)]
    pub unsafe fn mark(self, slot: usize) {
        if slot.wrapping_sub(self.heap_base) >= self.heap_len {
            return;
        }
        let card = self.biased.get().wrapping_add(slot >> CARD_SHIFT) as *const AtomicU8;
        #[cfg(not(loom_mutant = "card_not_marked"))]
        // SAFETY: a slot in the reservation (tested above) has a card in the table, which
        // is mapped readable and writable for the heap's lifetime (the caller's contract).
        unsafe {
            (*card).store(self.epoch, Ordering::Relaxed)
        };
        #[cfg(loom_mutant = "card_not_marked")]
        let _ = card;
    }
}

impl CardTable {
    /// A table covering `heap_len` bytes of heap from `heap_base` (a multiple of the card
    /// size).
    pub(crate) fn new(heap_base: usize, heap_len: usize) -> io::Result<CardTable> {
        debug_assert!(heap_base.is_multiple_of(CARD_BYTES));
        let map = Reservation::new((heap_len >> CARD_SHIFT).next_multiple_of(8), 8)?;
        let table = map.aligned_base(8) as *mut u8;
        Ok(CardTable {
            map,
            table,
            heap_base,
            heap_len,
            epoch: AtomicU8::new(1),
            taking: AtomicU8::new(1),
        })
    }

    pub(crate) fn marker(&self) -> CardMarker {
        let biased = (self.table as usize).wrapping_sub(self.heap_base >> CARD_SHIFT);
        CardMarker {
            // The table is mapped above the heap's base >> 9 in any address space this
            // runs in (the table's address is at least the heap's base / 512 away).
            biased: NonZeroUsize::new(biased).expect("a card table biased to zero"),
            heap_base: self.heap_base,
            heap_len: self.heap_len,
            epoch: self.epoch.load(Ordering::Relaxed),
        }
    }

    /// Moves to the next epoch: every card dirty now reads as clean. Call with every
    /// mutator stopped, and give each a new [`CardTable::marker`] before it runs again (a
    /// barrier that stored the old epoch would dirty cards no scan reads).
    pub(crate) fn next_epoch(&self) {
        let e = self.epoch.load(Ordering::Relaxed);
        self.epoch
            .store(if e == u8::MAX { 1 } else { e + 1 }, Ordering::Relaxed);
    }

    /// A minor cycle begins: its scan will take the cards dirty now, and cards dirtied
    /// from now on (by the barrier while it marks, or by its markers) hold the next epoch
    /// and are left for the next minor cycle. As for [`CardTable::next_epoch`], every
    /// mutator is stopped and takes a new marker.
    pub(crate) fn begin_minor(&self) {
        self.taking
            .store(self.epoch.load(Ordering::Relaxed), Ordering::Relaxed);
        self.next_epoch();
    }

    /// Cards of the heap below `end`.
    pub(crate) fn cards_below(&self, end: usize) -> usize {
        end.saturating_sub(self.heap_base) >> CARD_SHIFT
    }

    /// Calls `f` with the first address of each card among cards `[from, to)` (card
    /// indices, `to` at most `cards_below` the heap's grown end) that was dirty when the
    /// minor cycle began ([`CardTable::begin_minor`]), cleaning it unless a store since
    /// has dirtied it for the next minor cycle. Mutators dirty cards meanwhile, with the
    /// next epoch, over the one this cycle takes: so a card holding the next epoch is
    /// reported too (it may have held this one), and left dirty.
    pub(crate) fn take_dirty(&self, from: usize, to: usize, mut f: impl FnMut(usize)) {
        debug_assert!(to <= self.map.len());
        // The epochs cannot change during the call: they change only with the world
        // stopped, and a minor cycle's scan runs within one cycle.
        let taking = self.taking.load(Ordering::Relaxed);
        let next = self.epoch.load(Ordering::Relaxed);
        for k in from..to {
            // SAFETY: the table is mapped, zero-initialised, for every card of the
            // reservation; byte atomics, as the barrier's stores.
            let card = unsafe { &*(self.table.add(k) as *const AtomicU8) };
            let v = card.load(Ordering::Relaxed);
            // The seeded bugs of model 15b: a card dirtied again while the cycle marks is
            // skipped, or cleaned with the rest.
            #[cfg(loom_mutant = "card_next_skipped")]
            let next = taking;
            if v == taking || v == next {
                #[cfg(not(loom_mutant = "card_next_cleaned"))]
                if v == taking {
                    let _ = card.compare_exchange(taking, 0, Ordering::Relaxed, Ordering::Relaxed);
                }
                #[cfg(loom_mutant = "card_next_cleaned")]
                card.store(0, Ordering::Relaxed);
                f(self.heap_base + (k << CARD_SHIFT));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn marked_cards_are_taken_once() {
        let base = 1 << 30;
        let t = CardTable::new(base, 1 << 20).unwrap();
        let m = t.marker();
        // SAFETY: the slots are inside the table's range; the table lives.
        unsafe {
            m.mark(base + 8);
            m.mark(base + 511);
            m.mark(base + 5 * CARD_BYTES + 16);
            m.mark(base + (1 << 20) - 8);
        }
        let n = t.cards_below(base + (1 << 20));
        assert_eq!(n, (1 << 20) / CARD_BYTES);
        // SAFETY: as above. Outside the heap: ignored, nothing written.
        unsafe {
            m.mark(base - 8);
            m.mark(base + (1 << 20));
            m.mark(usize::MAX - 7);
        }
        let mut got = Vec::new();
        t.take_dirty(1, n - 1, |c| got.push(c - base));
        assert_eq!(got, vec![5 * CARD_BYTES]);
        got.clear();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(got, vec![0, (1 << 20) - CARD_BYTES], "each card taken once");
        got.clear();
        t.take_dirty(0, n, |c| got.push(c));
        assert!(got.is_empty());
    }

    #[test]
    fn a_new_epoch_cleans_every_card_and_wraps_past_zero() {
        let base = 1 << 30;
        let t = CardTable::new(base, 1 << 20).unwrap();
        let n = t.cards_below(base + (1 << 20));
        let old = t.marker();
        // SAFETY: slots inside the table's range; the table lives.
        unsafe { old.mark(base + 3 * CARD_BYTES) };
        t.next_epoch();
        let m = t.marker();
        // SAFETY: as above.
        unsafe { m.mark(base + 7 * CARD_BYTES) };
        let mut got = Vec::new();
        t.begin_minor();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(
            got,
            vec![7 * CARD_BYTES],
            "the card of the last epoch reads clean"
        );
        // 255 epochs on (`begin_minor` moved it once), the table is back at the first
        // card's epoch (0 is skipped): that card reads dirty again, a needless scan but
        // never a lost one.
        for _ in 0..253 {
            t.next_epoch();
            assert_ne!(t.marker().epoch, 0);
        }
        assert_eq!(t.marker().epoch, old.epoch);
        got.clear();
        t.begin_minor();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(got, vec![3 * CARD_BYTES]);
    }

    #[test]
    fn a_card_dirtied_after_a_minor_cycle_began_is_left_for_the_next() {
        let base = 1 << 30;
        let t = CardTable::new(base, 1 << 20).unwrap();
        let n = t.cards_below(base + (1 << 20));
        // SAFETY: slots inside the table's range; the table lives.
        unsafe { t.marker().mark(base + 2 * CARD_BYTES) };
        t.begin_minor();
        // SAFETY: as above.
        unsafe {
            t.marker().mark(base + 2 * CARD_BYTES);
            t.marker().mark(base + 9 * CARD_BYTES);
        }
        // Card 2 was dirty when the cycle began: it is scanned, though its epoch is the
        // next one's now; card 9 may be too. Both stay dirty for the next cycle.
        let mut got = Vec::new();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(got, vec![2 * CARD_BYTES, 9 * CARD_BYTES]);
        got.clear();
        t.begin_minor();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(
            got,
            vec![2 * CARD_BYTES, 9 * CARD_BYTES],
            "left for this cycle"
        );
        got.clear();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert!(
            got.is_empty(),
            "cleaned by the cycle that took them: {got:?}"
        );
    }
}
