//! The checked mode: a handle (`Gc`, `GcSlice`, `GcStr`) is validated before it is read.
//!
//! What the type system cannot see: a `Gc` kept where the collector does not look (a
//! `Vec`, a `Box`, another OS thread) across a collection, or taken out of `Runtime::run`.
//! Reading through it reads freed or unmapped memory. In debug builds, and in release
//! builds with the `checked` feature (`cargo test --release --features checked`), every
//! read through a handle first checks that
//!
//! 1. the thread runs a goroutine of a runtime (a handle read elsewhere is one that left
//!    its runtime's view: another thread), or the handle is an object of an arena that
//!    is mutating (`arena.rs`: on any thread), and
//! 2. the handle's address is inside an allocated object of that runtime's heap (a freed
//!    slot fails; so does another runtime's object; not "starts at": small pointer-free
//!    objects share 16-byte tiny blocks),
//!
//! and panics with the address and what it found otherwise. A slot freed and then
//! allocated again passes: the check sees an object there, of whatever type. Other
//! release builds compile the check out: it takes the heap lock, and even a flag test on
//! every read costed binary-trees 3% of its instructions.

use std::sync::Mutex;

use minigo_alloc_core::zerobase;
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

/// Checks a read through the handle at `addr` in checked builds (see the module comment).
#[inline(always)]
pub(crate) fn check_read(addr: usize, what: &'static str) {
    if cfg!(any(debug_assertions, feature = "checked")) {
        check_slow(addr, what);
    }
}

#[cold]
#[inline(never)]
fn check_slow(addr: usize, what: &'static str) {
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
    if cur.sched().collector.heap().find_object(addr).is_none() {
        panic!(
            "minigo checked mode: {what} {addr:#x} is not an object of this runtime's heap: \
             freed by a collection (the handle was kept where the collector does not look: a \
             Vec, a Box, another thread; keep it in a GcVec or a Global) (last cycle: {})",
            cur.sched().collector.cycles_finished()
        );
    }
}
