//! The heap's pointer bitmap: one bit per 8-byte word of the heap's address space, set when
//! the word is a pointer. Small objects of scan span classes get their bits here when they
//! are allocated; large objects keep a layout reference on their span instead.
//!
//! A free slot's bits are always clear: they are cleared when the span is made and the
//! sweeper clears the bits of the slots it frees (their memory it leaves for the allocation
//! to clear). So allocating only ORs the object's mask in, without first clearing the
//! slot's field.
//!
//! Because spans start on 8 KiB page boundaries and a page's bits fill exactly 16 bitmap
//! words, no two spans share a bitmap word, so the span's owner writes with plain loads and
//! stores (relaxed atomics, no read-modify-write) and the collector reads them after the
//! handoff that stopped the world. This is Go 1.20's arena bitmap in layout, with Go 1.22's
//! per-layout storage for large objects.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::os::Reservation;

pub(crate) struct HeapBits {
    map: Reservation,
    words: *const AtomicU64,
    heap_base: usize,
}

// SAFETY: `words` points into `map`, which lives as long as `self`; all access is atomic.
unsafe impl Send for HeapBits {}
// SAFETY: as above.
unsafe impl Sync for HeapBits {}

impl HeapBits {
    /// A bitmap covering `heap_len` bytes of heap from `heap_base`.
    pub(crate) fn new(heap_base: usize, heap_len: usize) -> io::Result<HeapBits> {
        let map = Reservation::new(heap_len.div_ceil(64), 8)?;
        let words = map.aligned_base(8) as *const AtomicU64;
        Ok(HeapBits {
            map,
            words,
            heap_base,
        })
    }

    /// The bitmap word holding bit `bit`.
    #[inline(always)]
    fn word(&self, bit: usize) -> &AtomicU64 {
        debug_assert!(bit / 64 * 8 < self.map.len());
        // SAFETY: every bit index comes from a heap address inside the reservation, and the
        // bitmap reservation covers the whole heap reservation (one bit per 8 bytes); the
        // mapping is zero-initialised, readable and writable, and 8-byte aligned.
        unsafe { &*self.words.add(bit / 64) }
    }

    /// Bits of the `n <= 64` words starting at `addr` (bit 0 = the word at `addr`).
    #[inline]
    pub(crate) fn read(&self, addr: usize, n: usize) -> u64 {
        debug_assert!(n > 0 && n <= 64);
        let bit = (addr - self.heap_base) / 8;
        let s = bit % 64;
        let mut v = self.word(bit).load(Ordering::Relaxed) >> s;
        if s + n > 64 {
            v |= self.word(bit + 64).load(Ordering::Relaxed) << (64 - s);
        }
        if n == 64 {
            v
        } else {
            v & ((1u64 << n) - 1)
        }
    }

    /// ORs `mask` into the bits of the words from `addr` (a free slot's bits are clear).
    ///
    /// Only the owner of the span holding these words may call this (no other writer can
    /// share the bitmap words, see the module comment).
    #[inline(always)]
    pub(crate) fn set(&self, addr: usize, mask: u64) {
        let bit = (addr - self.heap_base) / 8;
        let s = bit % 64;
        let w0 = self.word(bit);
        w0.store(w0.load(Ordering::Relaxed) | mask << s, Ordering::Relaxed);
        let spill = (mask >> 1) >> (63 - s);
        if spill != 0 {
            let w1 = self.word(bit + 64);
            w1.store(w1.load(Ordering::Relaxed) | spill, Ordering::Relaxed);
        }
    }

    /// ORs in the bits of an `nwords`-word object at `addr`, 64 words at a time from `chunk`.
    pub(crate) fn set_wide(&self, addr: usize, nwords: usize, chunk: impl Fn(usize) -> u64) {
        for k in 0..nwords.div_ceil(64) {
            let mask = chunk(k);
            if mask != 0 {
                self.set(addr + k * 64 * 8, mask);
            }
        }
    }

    /// Clears the bits of the `nwords` words from `addr`.
    pub(crate) fn clear(&self, addr: usize, nwords: usize) {
        let mut bit = (addr - self.heap_base) / 8;
        let end = bit + nwords;
        while bit < end {
            let s = bit % 64;
            let n = (64 - s).min(end - bit);
            let w = self.word(bit);
            if n == 64 {
                w.store(0, Ordering::Relaxed);
            } else {
                let field = ((1u64 << n) - 1) << s;
                w.store(w.load(Ordering::Relaxed) & !field, Ordering::Relaxed);
            }
            bit += n;
        }
    }
}
