//! A table of root words, one per handle (the `Global` handles' table): scanned once a
//! cycle, as a root job, while the goroutines run.
//!
//! A handle may change or leave its slot at any moment of a cycle, before or after the
//! scan. What a slot held before the scan and no longer holds after it would be seen by
//! nobody, though a goroutine may have loaded it (a `Global::get` whose result now lives
//! only on a stack scanned already). So the word a slot loses is handed to the caller's
//! write barrier, which shades it while a cycle marks (Yuasa's deletion barrier, as for a
//! pointer overwritten in the heap). The new word needs nothing: it comes from a goroutine
//! stack, black once scanned, or is allocated black.
//!
//! Loom model 13 (`loom-tests/tests/roots.rs`) drives this table against a marker that
//! scans it; its seeded bug, `root_set_no_shade`, forgets the lost word.

use minigo_alloc_core::sync::Mutex;
use minigo_gc::Tracer;

use crate::slots::Slots;

/// Root words, each in a slot a handle owns.
#[derive(Default)]
pub struct RootTable {
    slots: Mutex<Slots<usize>>,
}

impl RootTable {
    /// Takes a slot holding `addr`; returns its index.
    pub fn add(&self, addr: usize) -> usize {
        self.slots.lock().add(addr)
    }

    /// The word in slot `i`.
    ///
    /// # Panics
    /// If slot `i` is free.
    pub fn get(&self, i: usize) -> usize {
        *self.slots.lock().get(i).expect("a live handle's slot")
    }

    /// Puts `addr` in slot `i` and hands the word it held to `shade` (the write barrier).
    ///
    /// # Panics
    /// If slot `i` is free.
    pub fn set(&self, i: usize, addr: usize, shade: impl FnOnce(usize)) {
        let old = std::mem::replace(
            self.slots.lock().get_mut(i).expect("a live handle's slot"),
            addr,
        );
        // The seeded bug of loom model 13: the lost word goes unshaded.
        #[cfg(loom_mutant = "root_set_no_shade")]
        let shade = |_| {};
        shade(old);
    }

    /// Frees slot `i` and hands the word it held to `shade`.
    ///
    /// # Panics
    /// If slot `i` is free.
    pub fn remove(&self, i: usize, shade: impl FnOnce(usize)) {
        let old = self.slots.lock().remove(i).expect("a live handle's slot");
        shade(old);
    }

    /// Reports every slot's word.
    pub fn trace(&self, t: &mut Tracer<'_>) {
        for (_, &a) in self.slots.lock().iter() {
            t.mark(a);
        }
    }
}
