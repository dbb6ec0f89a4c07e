//! Goroutine stacks: mapped by the runtime itself, with a guard page, so that every stack's
//! bounds are known (for conservative scanning) and an overflow faults on the guard page
//! (where the signal handler recognises it) instead of running into other memory.
//!
//! A stack is a lazily backed mapping: a goroutine that uses 4 KiB of a 256 KiB stack costs
//! one page. Finished goroutines' stacks go to a pool; a pooled stack's memory is given back
//! to the OS (MADV_DONTNEED) so a burst of goroutines does not pin its peak forever.

use std::io;

use memmap2::{MmapOptions, MmapRaw, UncheckedAdvice};

/// Default usable size of a goroutine stack (Go grows its stacks from 2 KiB by copying;
/// minigo's stacks cannot move, because conservative roots and Rust references point into
/// them, so they are reserved at their full size and backed lazily).
pub const DEFAULT_STACK_SIZE: usize = 256 << 10;
const GUARD: usize = 4096;

/// A goroutine's stack: `[limit, base)` usable, a guard page below `limit`.
pub struct GoStack {
    map: MmapRaw,
    size: usize,
}

impl GoStack {
    /// Maps a stack of `size` usable bytes (rounded up to whole OS pages).
    pub fn new(size: usize) -> io::Result<GoStack> {
        let size = size.next_multiple_of(GUARD).max(4 * GUARD);
        let map: MmapRaw = MmapOptions::new()
            .len(size + GUARD)
            .no_reserve_swap()
            .map_anon()?
            .into();
        // SAFETY: the first page of a mapping we own and nobody uses yet.
        let r = unsafe { libc::mprotect(map.as_mut_ptr().cast(), GUARD, libc::PROT_NONE) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(GoStack { map, size })
    }

    /// Highest address (the stack grows down from here).
    pub fn top(&self) -> usize {
        self.map.as_mut_ptr() as usize + GUARD + self.size
    }

    /// The guard page's range.
    pub fn guard(&self) -> (usize, usize) {
        let start = self.map.as_mut_ptr() as usize;
        (start, start + GUARD)
    }

    /// Gives the stack's memory back to the OS (it reads as zeros afterwards).
    pub fn release(&self) {
        // SAFETY: the usable part of our own mapping; nothing runs on the stack (it is
        // pooled), so discarding its contents loses nothing.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, GUARD, self.size)
        };
    }
}

// SAFETY: `top` and `bottom` bound a mapping this value owns, 16-byte aligned (page-aligned)
// and at least MIN_STACK_SIZE long, with a PROT_NONE guard page below `bottom`.
unsafe impl corosensei::stack::Stack for GoStack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top()).expect("a mapping is never at address 0")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.map.as_mut_ptr() as usize)
            .expect("non-null mapping")
    }
}
