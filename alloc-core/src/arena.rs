//! Arenas: the heap's address space in 64 MiB units, and the O(1) map from an address to
//! the span that holds it.
//!
//! A heap reserves its address space once (see `os`) and grows into it an arena at a time,
//! in address order. Each arena has a page table: one span pointer per page (Go's
//! `heapArena.spans`). The arenas' tables are consecutive slices of one table reserved with
//! the heap (lazily backed, like the heap itself), so finding an arena's table is
//! arithmetic rather than a pointer to follow: `span_of` is a subtraction, a shift and one
//! load, which matters because marking does it for every pointer.
//!
//! Table entries are written under the heap lock when a span is allocated or freed and read
//! without it, so they are atomics. A freed span's entries are cleared, so while no span is
//! allocated or freed, a non-null entry is a span in use.

use std::io;

use crate::sizeclass::PAGE_SHIFT;
use crate::span::{MSpan, SpanRef};
use crate::sync::{AtomicPtr, Ordering};

/// Bytes per arena: Go's `heapArenaBytes` on 64-bit Linux. Loom models use tiny arenas so
/// their tables stay small.
#[cfg(not(loom))]
pub const ARENA_BYTES: usize = 64 << 20;
/// Bytes per arena (loom builds).
#[cfg(loom)]
pub const ARENA_BYTES: usize = 1 << 20;
/// Pages per arena.
pub const ARENA_PAGES: usize = ARENA_BYTES >> PAGE_SHIFT;

/// The page tables of one heap's arenas.
pub(crate) struct Arenas {
    base: usize,
    arenas: usize,
    table: Table,
}

impl Arenas {
    /// Tables for `len` bytes of address space from `base` (both arena-aligned).
    pub(crate) fn new(base: usize, len: usize) -> io::Result<Arenas> {
        let arenas = len / ARENA_BYTES;
        Ok(Arenas {
            base,
            arenas,
            table: Table::new(arenas * ARENA_PAGES)?,
        })
    }

    /// Number of arenas the address space has room for.
    pub(crate) fn capacity(&self) -> usize {
        self.arenas
    }

    /// Points pages `[page, page + n)` (heap page numbers) at `span`, or at nothing.
    /// Called under the heap lock.
    pub(crate) fn set_spans(&self, page: usize, n: usize, span: Option<SpanRef>) {
        let ptr = span.map_or(std::ptr::null_mut(), SpanRef::as_ptr);
        for p in page..page + n {
            self.table.entry(p).store(ptr, Ordering::Release);
        }
    }

    /// The span whose pages include `addr`, if any is there now. The caller bounds `addr`
    /// to the grown part of the heap.
    #[inline]
    pub(crate) fn span_of(&self, addr: usize) -> Option<&MSpan> {
        let page = addr.wrapping_sub(self.base) >> PAGE_SHIFT;
        if page >= self.arenas * ARENA_PAGES {
            return None;
        }
        let span = self.table.entry(page).load(Ordering::Acquire);
        // SAFETY: span structs are owned by the heap and never freed while it lives.
        (!span.is_null()).then(|| unsafe { &*span })
    }
}

/// One span pointer per page of the address space: lazily backed memory normally; under
/// loom, a boxed slice of loom atomics (loom's address space is a few tiny arenas).
struct Table {
    #[cfg(not(loom))]
    map: crate::os::Reservation,
    #[cfg(not(loom))]
    entries: *const AtomicPtr<MSpan>,
    #[cfg(loom)]
    entries: Box<[AtomicPtr<MSpan>]>,
    #[cfg(debug_assertions)]
    len: usize,
}

// SAFETY: the entries are atomics in memory the table owns for its whole life.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

impl Table {
    fn new(len: usize) -> io::Result<Table> {
        let bytes = len * std::mem::size_of::<AtomicPtr<MSpan>>();
        #[cfg(not(loom))]
        let table = {
            let map = crate::os::Reservation::new(bytes, 8)?;
            let entries = map.aligned_base(8) as *const AtomicPtr<MSpan>;
            Table {
                map,
                entries,
                #[cfg(debug_assertions)]
                len,
            }
        };
        #[cfg(loom)]
        let table = {
            let _ = bytes;
            Table {
                entries: (0..len)
                    .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                    .collect(),
                #[cfg(debug_assertions)]
                len,
            }
        };
        Ok(table)
    }

    #[inline(always)]
    fn entry(&self, page: usize) -> &AtomicPtr<MSpan> {
        #[cfg(debug_assertions)]
        debug_assert!(page < self.len);
        #[cfg(not(loom))]
        {
            let _ = &self.map;
            // SAFETY: `page` is below the table's length (callers bound it by the address
            // space); the reservation is zeroed (null pointers), aligned, and lives as long
            // as `self`.
            unsafe { &*self.entries.add(page) }
        }
        #[cfg(loom)]
        &self.entries[page]
    }
}
