//! Goroutine stacks: slots carved from large mappings (stack arenas), each with a guard
//! page below it, so that every stack's bounds are known (for conservative scanning) and an
//! overflow faults on the guard page (where the signal handler recognises it) instead of
//! running into the stack below.
//!
//! 1. Stacks of one size come from arenas of [`SLOTS_PER_ARENA`] slots, each slot a guard
//!    page and the stack above it. An arena is one anonymous mapping reserved without swap
//!    (`MAP_NORESERVE`); a stack's pages are backed lazily, when the goroutine first
//!    touches them (growth is the kernel's page faults), so a goroutine that uses 4 KiB of
//!    a 1 MiB stack costs one page.
//! 2. The guard page of a new slot is installed with `madvise(MADV_GUARD_INSTALL)` (Linux
//!    6.13 and later), which marks the page without splitting the mapping: a million
//!    stacks cost a thousand mappings, not two million, and `vm.max_map_count` (65,530 by
//!    default) no longer bounds the number of goroutines. On an older kernel the guard is
//!    an `mprotect(PROT_NONE)` page, which splits the mapping in two: stacks then run out
//!    where they did before (near 32,000 goroutines), with the same clear error ("cannot
//!    map a goroutine stack"), and overflow detection is as complete as with guard
//!    markers. No stack is ever handed out without its guard. `GODEBUG=stackguard=mprotect`
//!    forces the older kernels' way (for testing it on a newer one).
//! 3. Stacks shrink (`shrink`, Go's `shrinkstack`): each collection, for every parked
//!    goroutine that has run since the last one, the pages well below its saved stack
//!    pointer — below a margin of as much again as it uses, at least 4 KiB — go back to
//!    the OS, so a goroutine that once went deep and now waits shallow holds what it uses.
//!    A goroutine that goes deep every time it runs pays the page faults again at most
//!    once per collection.
//! 4. A stack that is dropped goes back to its arena's free slots with its pages given back
//!    to the OS (`MADV_DONTNEED`: the guard marker stays); arenas are never unmapped, as
//!    Go never unmaps its stack spans' address space. Dead goroutines' stacks are first
//!    kept warm on the Ps' free lists (`gfree.rs`), up to 128 per P; those beyond go to a
//!    global list whose pages are given back at each collection.

use std::io;
use std::sync::Mutex;

use memmap2::{MmapOptions, MmapRaw};

/// Default usable size of a goroutine stack (Go grows its stacks from 2 KiB by copying;
/// minigo's stacks cannot move, because conservative roots and Rust references point into
/// them, so they are reserved at their full size and backed lazily).
pub const DEFAULT_STACK_SIZE: usize = 1 << 20;
pub(crate) const GUARD: usize = 4096;
/// The smallest stack: room for an asynchronous preemption's saved registers and frames
/// (`preempt::ROOM`) above whatever the goroutine uses.
pub const MIN_STACK_SIZE: usize = 64 << 10;
/// Slots reserved per arena mapping: 1 MiB stacks make 257 MiB arenas.
pub const SLOTS_PER_ARENA: usize = 256;

/// Linux's `MADV_GUARD_INSTALL` (6.13+; not yet in every libc crate release).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// A goroutine's stack: `[limit, top)` usable, a guard page below `limit`.
pub struct GoStack {
    /// Start of the slot: the guard page.
    slot: usize,
    size: usize,
}

/// Every arena, by stack size.
static ARENAS: Mutex<Vec<Arenas>> = Mutex::new(Vec::new());

/// The arenas of one stack size.
struct Arenas {
    size: usize,
    /// The mappings (kept, never unmapped).
    maps: Vec<MmapRaw>,
    /// Slots handed back, ready again (guard installed, pages released).
    free: Vec<usize>,
    /// Slots of the newest arena not yet carved: `[next, end)`.
    next: usize,
    end: usize,
}

/// How guards are installed on this kernel, once found out.
static GUARD_KIND: Mutex<Option<GuardKind>> = Mutex::new(None);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GuardKind {
    /// `MADV_GUARD_INSTALL`: no mapping split.
    Marker,
    /// `mprotect(PROT_NONE)`: one more mapping per stack.
    Protect,
}

/// Whether `GODEBUG` holds `setting` (`key=value`) among its comma-separated settings.
pub(crate) fn godebug(setting: &str) -> bool {
    std::env::var("GODEBUG").is_ok_and(|v| v.split(',').any(|s| s.trim() == setting))
}

/// Makes `[addr, addr + GUARD)` a guard page.
fn install_guard(addr: usize) -> io::Result<()> {
    let mut kind = GUARD_KIND.lock().unwrap_or_else(|e| e.into_inner());
    if kind.is_none() && godebug("stackguard=mprotect") {
        *kind = Some(GuardKind::Protect);
    }
    if *kind != Some(GuardKind::Protect) {
        // SAFETY: a page of an arena mapping this module owns, not yet handed out.
        let r = unsafe { libc::madvise(addr as *mut libc::c_void, GUARD, MADV_GUARD_INSTALL) };
        if r == 0 {
            *kind = Some(GuardKind::Marker);
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) || *kind == Some(GuardKind::Marker) {
            return Err(e);
        }
        // An older kernel: fall back for good.
        *kind = Some(GuardKind::Protect);
    }
    // SAFETY: as above.
    if unsafe { libc::mprotect(addr as *mut libc::c_void, GUARD, libc::PROT_NONE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether goroutine stacks' guard pages are guard markers on this kernel (Linux 6.13+:
/// no mapping per stack, so the number of goroutines is bounded by memory, not by
/// `vm.max_map_count`), or `mprotect` pages (one mapping per stack); `None` before the
/// first goroutine has run.
pub fn stack_guards_are_markers() -> Option<bool> {
    GUARD_KIND
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|k| k == GuardKind::Marker)
}

/// Resident bytes of the stack `[lo, top)`. A stack's resident pages are one run down
/// from its top (it grows a page at a time, and shrinking releases everything below a
/// point), so it is probed from the top down, [`PROBE_PAGES`] pages per `mincore`, until a
/// probe finds a page not resident: one call for a stack that uses under 32 KiB. (One
/// `mincore` over each whole arena cost 2.5 us per goroutine with 1 MiB slots, the kernel
/// walking every page table entry.)
pub(crate) fn resident(lo: usize, top: usize) -> u64 {
    let mut pages = [0u8; PROBE_PAGES];
    let (mut hi, mut bytes) = (top, 0u64);
    while hi > lo {
        let from = hi.saturating_sub(PROBE_PAGES * GUARD).max(lo);
        let n = (hi - from) / GUARD;
        // SAFETY: mincore only reports on `[from, hi)`, a page-aligned range of a stack
        // arena (arenas are never unmapped), into `pages`, a byte for each of its pages.
        let r = unsafe { libc::mincore(from as *mut libc::c_void, hi - from, pages.as_mut_ptr()) };
        if r != 0 {
            break;
        }
        let resident = pages[..n].iter().filter(|&&b| b & 1 != 0).count();
        bytes += (resident * GUARD) as u64;
        if resident < n {
            break;
        }
        hi = from;
    }
    bytes
}

/// Pages one `mincore` of `resident` looks at.
const PROBE_PAGES: usize = 8;

/// What a parked goroutine keeps resident below its saved stack pointer, at least, when
/// its stack is shrunk (`shrinkstack`): as much again as it uses above, and never less
/// than this.
pub(crate) const SHRINK_MARGIN: usize = 4 << 10;

/// Gives back to the OS the pages of a parked goroutine's stack below what it may need
/// again soon (Go's `shrinkstack`, adapted to stacks that cannot move): everything in
/// `[lo, sp - keep)`, where `keep` is the margin above. One `mincore` of the page just
/// below the kept part decides: a stack grows a page at a time from the top (Rust probes
/// every page of a large frame), so if that page is not resident, nothing below it is.
/// Returns the bytes given back (or 0).
///
/// # Safety
/// `[lo, sp)` is the dead part of a goroutine stack that is not running and does not run
/// until this returns; `lo` is just above its guard page.
pub(crate) unsafe fn shrink(lo: usize, sp: usize, top: usize) -> usize {
    let keep = (top - sp).max(SHRINK_MARGIN);
    let Some(boundary) = sp.checked_sub(keep).map(|b| b & !(GUARD - 1)) else {
        return 0;
    };
    if boundary < lo + GUARD {
        return 0;
    }
    let mut resident = 0u8;
    // SAFETY: one page of our own stack mapping, and a one-byte vector for it.
    let r = unsafe {
        libc::mincore(
            (boundary - GUARD) as *mut libc::c_void,
            GUARD,
            &mut resident,
        )
    };
    if r != 0 || resident & 1 == 0 {
        return 0;
    }
    // SAFETY: the caller's contract: nothing runs on `[lo, boundary)`, below the frames
    // the goroutine has; its next use faults in zeroed pages, as a fresh stack's does.
    unsafe { libc::madvise(lo as *mut libc::c_void, boundary - lo, libc::MADV_DONTNEED) };
    boundary - lo
}

/// Bytes below the caller's stack pointer left alone by [`clear_dead`]: its own frame's
/// calls (`madvise`) and the red zone a leaf function may keep data in (128 bytes on
/// x86-64).
const CLEAR_MARGIN: usize = 256;

/// Clears the running goroutine's stack `[lo, top)` below the caller's frames: whole
/// pages go back to the OS (`MADV_DONTNEED`: they read as zeros after), the page just
/// under the frames is zeroed in place.
///
/// Verify mode calls it whenever a goroutine stops with its registers spilled (it parks,
/// enters `blocking`, is preempted). A frame's slots that its function has not written
/// yet hold words of frames that returned long ago, perhaps before the cycle began; the
/// conservative scan takes them for roots, and verify would report the dead objects they
/// name as reachable and unmarked (about 1 run in 90 of `binary-trees 14 --verify`, each
/// time a whole dead subtree behind one stale word; 1 to 5 in 1,500 with the clearing).
/// A goroutine's stack is scanned while it is stopped; cleared at the stop, everything
/// its frames hold from then on was written since. Boehm's `GC_clear_stack` clears the
/// dead stack for the same reason: so that stale words keep no garbage alive. What the
/// clearing leaves (the margin under the frames) a frame pushed later may still hold:
/// `Sched::shade_stale_frames` covers that for verify.
#[inline(never)]
pub(crate) fn clear_dead(lo: usize, top: usize) {
    let sp = crate::spill::stack_pointer();
    if sp <= lo + CLEAR_MARGIN || sp > top {
        // Not on this stack (or at its very bottom): nothing to clear.
        return;
    }
    let end = (sp - CLEAR_MARGIN) & !7;
    let page = end.saturating_sub(GUARD) & !(GUARD - 1);
    if page > lo {
        // SAFETY: `[lo, page)` is this goroutine's own stack, more than a page below every
        // frame it has (this one's included): nothing there is live.
        unsafe { libc::madvise(lo as *mut libc::c_void, page - lo, libc::MADV_DONTNEED) };
    }
    let from = page.max(lo);
    if from >= end {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `[from, end)` is below this frame by more than its calls and a red zone use,
    // on this goroutine's stack: dead memory. `rep stosq` calls nothing, so nothing of
    // ours is pushed there meanwhile.
    unsafe {
        std::arch::asm!(
            "rep stosq",
            inout("rdi") from => _,
            inout("rcx") (end - from) / 8 => _,
            in("rax") 0usize,
            options(nostack, preserves_flags)
        )
    };
}

impl GoStack {
    /// A stack of `size` usable bytes (rounded up to whole OS pages, at least
    /// [`MIN_STACK_SIZE`]).
    pub fn new(size: usize) -> io::Result<GoStack> {
        let size = size.next_multiple_of(GUARD).max(MIN_STACK_SIZE);
        let mut all = ARENAS.lock().unwrap_or_else(|e| e.into_inner());
        let i = match all.iter().position(|a| a.size == size) {
            Some(i) => i,
            None => {
                all.push(Arenas {
                    size,
                    maps: Vec::new(),
                    free: Vec::new(),
                    next: 0,
                    end: 0,
                });
                all.len() - 1
            }
        };
        let a = &mut all[i];
        if let Some(slot) = a.free.pop() {
            return Ok(GoStack { slot, size });
        }
        let stride = size + GUARD;
        if a.next == a.end {
            let map: MmapRaw = MmapOptions::new()
                .len(stride * SLOTS_PER_ARENA)
                .no_reserve_swap()
                .map_anon()?
                .into();
            a.next = map.as_mut_ptr() as usize;
            a.end = a.next + stride * SLOTS_PER_ARENA;
            a.maps.push(map);
        }
        let slot = a.next;
        install_guard(slot)?;
        a.next += stride;
        Ok(GoStack { slot, size })
    }

    /// Highest address (the stack grows down from here).
    pub fn top(&self) -> usize {
        self.slot + GUARD + self.size
    }

    /// The usable range, `[limit, top)`.
    pub(crate) fn range(&self) -> (usize, usize) {
        (self.slot + GUARD, self.top())
    }

    /// The guard page's range.
    pub fn guard(&self) -> (usize, usize) {
        (self.slot, self.slot + GUARD)
    }

    /// Gives the stack's memory back to the OS (it reads as zeros afterwards).
    pub fn release(&self) {
        // SAFETY: the usable part of a slot this value owns; nothing runs on the stack (it
        // is pooled or being dropped), so discarding its contents loses nothing. The guard
        // below is not in the range.
        unsafe {
            libc::madvise(
                (self.slot + GUARD) as *mut libc::c_void,
                self.size,
                libc::MADV_DONTNEED,
            );
        }
    }
}

impl Drop for GoStack {
    fn drop(&mut self) {
        self.release();
        let mut all = ARENAS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = all.iter_mut().find(|a| a.size == self.size) {
            a.free.push(self.slot);
        }
    }
}

// SAFETY: `top` and `limit` bound a slot this value owns, page-aligned and at least four
// pages long, with a guard page (marker or PROT_NONE) below `limit`.
unsafe impl corosensei::stack::Stack for GoStack {
    fn base(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.top()).expect("a mapping is never at address 0")
    }

    fn limit(&self) -> corosensei::stack::StackPointer {
        corosensei::stack::StackPointer::new(self.slot + GUARD).expect("non-null mapping")
    }
}
