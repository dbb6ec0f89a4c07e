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
//! take them (a byte load, and a swap for a dirty one) while mutators run: a card dirtied
//! meanwhile needs nothing from this cycle (see `gc/src/generations.rs`), and whether it is
//! taken now or left dirty for the next, nothing is lost.
//!
//! A dirty card holds the table's *epoch* (1 to 255), not just a flag. A major cycle makes
//! every live object old, and every pointer an old object holds then points at an old
//! one: cards dirtied before it ended say nothing the next minor cycle needs. Cleaning
//! them would take a walk of the table in the stop that ends the major cycle (a byte per
//! 512 bytes of heap: 6 MiB at 3 GiB); instead that stop moves the table to the next
//! epoch and gives every mutator's barrier a marker that stores it, and a card is dirty
//! only if it holds the epoch of now. One that holds an earlier epoch reads as clean; 255
//! epochs later it reads as dirty again, and costs one needless scan of its card.

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

    /// Cards of the heap below `end`.
    pub(crate) fn cards_below(&self, end: usize) -> usize {
        end.saturating_sub(self.heap_base) >> CARD_SHIFT
    }

    /// Cleans each dirty card (one holding the epoch of now) among cards `[from, to)`
    /// (card indices, `to` at most `cards_below` the heap's grown end) and calls `f` with
    /// its first address. Mutators may dirty cards meanwhile: a card dirtied during the
    /// call may or may not be reported (and if not, stays dirty).
    pub(crate) fn take_dirty(&self, from: usize, to: usize, mut f: impl FnMut(usize)) {
        debug_assert!(to <= self.map.len());
        // The epoch cannot change during the call: it changes only with the world
        // stopped, and a minor cycle's scan runs within one cycle.
        let dirty = self.epoch.load(Ordering::Relaxed);
        for k in from..to {
            // SAFETY: the table is mapped, zero-initialised, for every card of the
            // reservation; byte atomics, as the barrier's stores.
            let card = unsafe { &*(self.table.add(k) as *const AtomicU8) };
            if card.load(Ordering::Relaxed) == dirty && card.swap(0, Ordering::Relaxed) == dirty {
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
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(
            got,
            vec![7 * CARD_BYTES],
            "the card of the last epoch reads clean"
        );
        // 255 epochs on, the table is back at the first card's epoch (0 is skipped): that
        // card reads dirty again, a needless scan but never a lost one.
        for _ in 0..254 {
            t.next_epoch();
            assert_ne!(t.marker().epoch, 0);
        }
        assert_eq!(t.marker().epoch, old.epoch);
        got.clear();
        t.take_dirty(0, n, |c| got.push(c - base));
        assert_eq!(got, vec![3 * CARD_BYTES]);
    }
}
