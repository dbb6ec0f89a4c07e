//! The checked mode: a handle (`Gc`, `GcSlice`, `GcStr`) is validated before it is read.
//!
//! What the type system cannot see: a `Gc` kept where the collector does not look (a
//! `Vec`, a `Box`, another OS thread) across a collection. Reading through it reads freed
//! memory. In debug builds, and in release builds with the `checked` feature
//! (`cargo test --release --features checked`), every read through a handle first checks
//! that
//!
//! 1. the thread runs a goroutine of a runtime (a handle read elsewhere is one that left
//!    its runtime's view: another thread), or the handle is an object of an arena that
//!    is mutating (`arena.rs`: on any thread);
//! 2. the handle's address is inside an allocated object of that runtime's heap (a freed
//!    slot fails; not "starts at": small pointer-free objects share 16-byte tiny blocks);
//! 3. for a `Gc`, the object there has its type's shape: it starts at the handle's
//!    address, and its slot is of the type's size class and kind (pointers or none). A
//!    span freed whole and made again for another class fails this: memory freed and
//!    allocated again;
//!
//! and panics with the address and what it found otherwise.
//!
//! A slot is reused only within its class, and the handle is one word, with no room for
//! an allocation count: an object of the same class in the freed one's slot has the right
//! shape. So checked builds keep a quarantine (alloc-core's `quarantine.rs`): a slot a
//! sweep finds dead stays out of reuse for [`QUARANTINE_CYCLES`] cycles, and a read
//! through a handle to it panics naming the cycle that freed it. After that, step 3 is
//! what is left to catch a reuse.
//!
//! Other release builds compile all of it out: the check takes the heap lock, and even a
//! flag test on every read cost binary-trees 3% of its instructions.

use std::sync::Mutex;

use minigo_alloc_core::sizeclass::{size_to_class, TINY_SIZE};
use minigo_alloc_core::{zerobase, Layout, MHeap, ObjectInfo, MAX_SMALL_SIZE};
use minigo_gc::Collector;

use crate::sched::try_current;

/// The collectors of the arenas mutating now, on any thread: an arena's handles are valid
/// on every thread while its mutation runs (nothing collects it meanwhile), and a handle
/// read off a goroutine is checked against their heaps.
static ARENAS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// While the guard lives, `collector`'s arena is mutating (checked builds only;
/// `Arena::mutate`).
pub(crate) struct ArenaScope(Option<usize>);

impl ArenaScope {
    pub(crate) fn enter(collector: &Collector) -> ArenaScope {
        if !cfg!(any(debug_assertions, feature = "checked")) {
            return ArenaScope(None);
        }
        let key = collector as *const Collector as usize;
        arenas().push(key);
        ArenaScope(Some(key))
    }
}

impl Drop for ArenaScope {
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            let mut a = arenas();
            let i = a.iter().rposition(|&k| k == key).expect("entered");
            a.swap_remove(i);
        }
    }
}

fn arenas() -> std::sync::MutexGuard<'static, Vec<usize>> {
    ARENAS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether `addr` is inside an object of an arena that is mutating.
fn in_arena(addr: usize) -> bool {
    arenas().iter().any(|&c| {
        // SAFETY: a collector is listed only while its arena's mutation runs
        // (`ArenaScope`), and the mutation holds the arena, which holds the collector.
        unsafe { &*(c as *const Collector) }
            .heap()
            .find_object(addr)
            .is_some()
    })
}

/// Cycles a dead object's slot is held back from reuse in checked builds.
pub(crate) const QUARANTINE_CYCLES: u32 = 4;

/// Turns the quarantine on for a runtime's `heap` in checked builds. An arena needs none:
/// its handles cannot outlive the mutation they were made in, and nothing is freed
/// during one.
pub(crate) fn quarantine(heap: &MHeap) {
    if cfg!(any(debug_assertions, feature = "checked")) {
        heap.set_quarantine(QUARANTINE_CYCLES);
    }
}

/// Checks a read through the handle at `addr` in checked builds (see the module comment).
#[inline(always)]
pub(crate) fn check_read(addr: usize, what: &'static str) {
    if cfg!(any(debug_assertions, feature = "checked")) {
        check_slow(addr, what, None);
    }
}

/// Checks a read through a `Gc` at `addr` of the type whose layout `layout` gives: as
/// [`check_read`], and the object there must have the type's shape (step 3 of the module
/// comment). The layout is asked for only when the check runs: other builds must not
/// pay its lookup on every dereference.
#[inline(always)]
pub(crate) fn check_object(addr: usize, layout: fn() -> &'static Layout) {
    if cfg!(any(debug_assertions, feature = "checked")) {
        check_slow(addr, "Gc", Some(layout()));
    }
}

#[cold]
#[inline(never)]
fn check_slow(addr: usize, what: &'static str, layout: Option<&Layout>) {
    if addr == zerobase().as_ptr() as usize {
        return;
    }
    let Some(cur) = try_current() else {
        if in_arena(addr) {
            return;
        }
        panic!(
            "minigo checked mode: {what} {addr:#x} read outside a goroutine of a running \
             runtime, and not an object of an arena that is mutating (a handle sent to another \
             thread)"
        );
    };
    let c = &cur.sched().collector;
    let Some(found) = c.heap().find_object(addr) else {
        panic!(
            "minigo checked mode: {what} {addr:#x} is not an object of this runtime's heap: \
             freed by a collection the quarantine no longer remembers (it holds a freed \
             slot {QUARANTINE_CYCLES} cycles, while it has room) (the handle was kept where \
             the collector does not look: a Vec, a Box, another thread; keep it in a GcVec \
             or a Global) (last cycle: {})",
            c.cycles_finished()
        );
    };
    if let Some(cycle) = c.heap().freed_by(&found) {
        panic!(
            "minigo checked mode: {what} {addr:#x} names an object freed by cycle {cycle} (the \
             handle was kept where the collector does not look: a Vec, a Box, another thread; \
             keep it in a GcVec or a Global) (last cycle: {})",
            c.cycles_finished()
        );
    }
    if let Some(why) = layout.and_then(|l| reused(addr, &found, l)) {
        panic!(
            "minigo checked mode: Gc {addr:#x} names memory freed and allocated again: {why} \
             (the handle was kept where the collector does not look: a Vec, a Box, another \
             thread; keep it in a GcVec or a Global) (last cycle: {})",
            c.cycles_finished()
        );
    }
}

/// Why the object found at `addr` cannot be the one a `Gc` of `layout` was made for, if
/// it cannot: the handle points inside it, or its slot is of another size class or kind
/// (pointers or none). Only a span freed whole and made again for another class gets
/// there; a slot taken again by an object of the same class passes.
fn reused(addr: usize, found: &ObjectInfo, layout: &Layout) -> Option<String> {
    let size = layout.size();
    if size < TINY_SIZE && !layout.has_pointers() {
        // Tiny objects share 16-byte blocks: a handle points inside one.
        return None;
    }
    if found.base != addr {
        return Some(format!("it points inside an object at {:#x}", found.base));
    }
    let class = found.span_class;
    if class.noscan() == layout.has_pointers() {
        return Some("its slot holds an object of the other kind (pointers or none)".into());
    }
    let same_size = if size <= MAX_SMALL_SIZE {
        class.size_class() == size_to_class(size)
    } else {
        class.size_class() == 0 && found.size >= size
    };
    (!same_size).then(|| {
        format!(
            "its slot is of {} bytes, not a {size}-byte type's",
            found.size
        )
    })
}
