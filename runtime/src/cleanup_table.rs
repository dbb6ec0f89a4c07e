//! The table behind `add_cleanup` (`cleanup.rs`): cleanups waiting for their objects, and
//! those whose objects died, ready to run. Both lists are a root, scanned once a cycle as
//! a root job: a cleanup's closure bytes, conservatively (what it captured lives until it
//! has run).
//!
//! A cleanup leaves the table while the goroutines run: handed to a new goroutine to run
//! (`take_ready`), or cancelled (`stop`). If the cycle marking then has not scanned the
//! table yet, nothing else may show it the captures: a goroutine started during marking is
//! not one of the cycle's roots. So the closures' bytes are handed to the caller's barrier
//! as they leave (Yuasa's deletion barrier, over a conservative range).
//!
//! Loom model 14 (`loom-tests/tests/cleanups.rs`) drives `take_ready` against a marker that
//! scans the table; its seeded bug, `cleanup_ready_no_shade`, hands nothing over.

use minigo_alloc_core::sync::Mutex;
use minigo_gc::{Liveness, Tracer};

use crate::slots::Slots;

/// A cleanup: a boxed closure on the Rust heap.
pub type Func = Box<dyn FnOnce() + Send>;

/// A cleanup waiting for its object.
struct Pending {
    obj: usize,
    id: u64,
    f: Func,
}

#[derive(Default)]
struct Table {
    pending: Slots<Pending>,
    ready: Vec<Func>,
    next_id: u64,
}

/// A runtime's cleanups.
#[derive(Default)]
pub struct CleanupTable {
    table: Mutex<Table>,
}

/// The bytes of a boxed closure: its captures.
pub fn closure_bytes(f: &Func) -> (usize, usize) {
    let lo = &**f as *const (dyn FnOnce() + Send) as *const u8 as usize;
    (lo, lo + std::mem::size_of_val(&**f))
}

impl CleanupTable {
    /// Records `f`, to run once the object at `obj` is found dead. Returns its slot and an
    /// id that tells it from a later cleanup in the same slot.
    pub fn add(&self, obj: usize, f: Func) -> (usize, u64) {
        let mut table = self.table.lock();
        table.next_id += 1;
        let id = table.next_id;
        (table.pending.add(Pending { obj, id, f }), id)
    }

    /// Reports every waiting and ready cleanup's captures (conservatively: a closure's
    /// layout is the compiler's).
    pub fn trace(&self, t: &mut Tracer<'_>) {
        let table = self.table.lock();
        let funcs = table.pending.iter().map(|(_, p)| &p.f);
        for f in funcs.chain(table.ready.iter()) {
            let (lo, hi) = closure_bytes(f);
            // SAFETY: the closure's bytes, alive while the table holds it (it is locked).
            unsafe { t.scan_conservative(lo, hi) };
        }
    }

    /// Moves the cleanups of the objects this collection found unreachable to the ready
    /// list (called from `Roots::clear_weak`, between marking and sweeping).
    pub fn clear_dead(&self, live: &Liveness<'_>) {
        let mut table = self.table.lock();
        let dead: Vec<usize> = table
            .pending
            .iter()
            .filter(|(_, p)| !live.is_live(p.obj))
            .map(|(i, _)| i)
            .collect();
        for i in dead {
            let p = table.pending.remove(i).expect("a slot found taken above");
            table.ready.push(p.f);
        }
    }

    /// Takes the ready cleanups out of the table, handing each one's bytes to `shade` (the
    /// barrier) as they leave.
    pub fn take_ready(&self, mut shade: impl FnMut(usize, usize)) -> Vec<Func> {
        let ready = std::mem::take(&mut self.table.lock().ready);
        // The seeded bug of loom model 14: the captures leave unshaded.
        #[cfg(loom_mutant = "cleanup_ready_no_shade")]
        let mut shade = |_: usize, _: usize| {};
        for f in &ready {
            let (lo, hi) = closure_bytes(f);
            shade(lo, hi);
        }
        ready
    }

    /// Cancels the cleanup in slot `index` if it is still the one with `id` and waiting,
    /// handing its bytes to `shade` with the table locked, so no cleanup runs or leaves in
    /// between. Returns the closure, for the caller to drop once the table is unlocked:
    /// its captures' destructors are the user's, and may use the table.
    #[must_use = "the cancelled closure, to drop with the table unlocked"]
    pub fn stop(&self, index: usize, id: u64, shade: impl FnOnce(usize, usize)) -> Option<Func> {
        let mut table = self.table.lock();
        if table.pending.get(index).is_none_or(|p| p.id != id) {
            return None;
        }
        let p = table.pending.remove(index).expect("checked above");
        let (lo, hi) = closure_bytes(&p.f);
        shade(lo, hi);
        Some(p.f)
    }
}

impl Drop for CleanupTable {
    /// Cleanups still in the table when the runtime ends never run, and are forgotten,
    /// not dropped: a closure may capture handles branded with a run that is over, and its
    /// captures' destructors would read them after it (as `Sched`'s drop forgets
    /// goroutines that never started).
    fn drop(&mut self) {
        std::mem::forget(std::mem::take(&mut *self.table.lock()));
    }
}
