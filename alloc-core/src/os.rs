//! The OS layer: address space reserved with memmap2, and memory handed back with madvise.
//!
//! A heap reserves its whole address space once (Go's pre-1.11 runtime did the same: one big
//! reservation, arenas carved from it in order) so that arena lookup is an offset and a heap
//! can grow without ever moving. The reservation is `MAP_NORESERVE`: it costs page tables
//! only where it is touched, and the kernel's overcommit heuristic does not count it.
//! Released memory (`MADV_DONTNEED` on a private anonymous mapping) reads back as zero on
//! the next touch, which is what lets the page heap treat released pages as zeroed.

use std::io;

use memmap2::{MmapOptions, MmapRaw, UncheckedAdvice};

/// The OS page size this crate assumes for `madvise` alignment (the runtime page is 8 KiB,
/// always a multiple of it).
pub(crate) const OS_PAGE_SIZE: usize = 4096;

/// A reserved, readable and writable, lazily committed range of address space.
pub(crate) struct Reservation {
    map: MmapRaw,
}

impl Reservation {
    /// Reserves `len` bytes (rounded up to OS pages), aligned to `align` (a power of two).
    /// Over-reserves by `align` so an aligned window always fits.
    pub(crate) fn new(len: usize, align: usize) -> io::Result<Reservation> {
        debug_assert!(align.is_power_of_two());
        let total = len
            .checked_add(align)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "reservation too large"))?;
        let map = MmapOptions::new().len(total).no_reserve_swap().map_anon()?;
        Ok(Reservation {
            map: MmapRaw::from(map),
        })
    }

    /// The first `align`-aligned address inside the reservation.
    pub(crate) fn aligned_base(&self, align: usize) -> usize {
        (self.map.as_mut_ptr() as usize).next_multiple_of(align)
    }

    /// Start of the mapping.
    pub(crate) fn start(&self) -> usize {
        self.map.as_mut_ptr() as usize
    }

    /// Length of the mapping.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Returns the physical memory behind `[addr, addr + len)` to the OS. The range stays
    /// mapped and reads back as zeros.
    ///
    /// # Safety
    /// Nothing may be live in the range: its contents are discarded.
    pub unsafe fn release(&self, addr: usize, len: usize) {
        debug_assert!(addr.is_multiple_of(OS_PAGE_SIZE) && len.is_multiple_of(OS_PAGE_SIZE));
        debug_assert!(addr >= self.start() && addr + len <= self.start() + self.len());
        // Discarding memory is the one effect here other threads can observe (their bytes
        // vanish), and loom cannot see a syscall: let the model schedule them right here.
        #[cfg(loom)]
        loom::thread::yield_now();
        // SAFETY: the range is inside this mapping (checked above in debug builds, guaranteed
        // by the page heap's bounds otherwise) and the caller guarantees nothing in it is
        // live; DONTNEED on a private anonymous mapping only discards contents.
        let r = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, addr - self.start(), len)
        };
        // madvise fails only for a bad range or flags, both bugs of ours; the memory stays
        // usable either way, so this is a lost optimisation, not corruption.
        debug_assert!(r.is_ok(), "madvise(DONTNEED) failed: {r:?}");
    }
}
