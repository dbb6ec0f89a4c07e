//! Global roots: handles that keep a heap object alive from anywhere (a `Vec` on the Rust
//! heap, a struct of the embedding program, another thread), reported to the collector
//! precisely from the runtime's `RootTable` (`root_table.rs`). The `Gc` a handle gives
//! back follows the usual rules.

use std::marker::PhantomData;

use minigo_alloc_core::sync::Arc;
use minigo_alloc_core::zerobase;

use crate::barrier;
use crate::sched::{current, Sched};
use crate::typed_heap::{Gc, GcPointer};

/// Keeps a heap object alive until dropped, wherever the handle itself is kept.
///
/// It carries its run's brand, as the `Gc` it was made from: it may be kept anywhere but
/// past the run. It shares its object as a [`Gc`] does: it is `Send` and `Sync` only
/// when `Gc<T>` is, that is when `T` is `Sync`. An object with a `Cell` cannot be reached
/// from two threads through one:
///
/// ```compile_fail
/// use minigo_runtime::{Gc, Global, HeapType};
/// #[derive(HeapType)]
/// struct Counter { n: std::cell::Cell<u64> }
/// fn needs_send<T: Send>(_: T) {}
/// fn share(g: Global<'_, Counter>) { needs_send(g) }
/// ```
///
/// With an atomic it can:
///
/// ```
/// use minigo_runtime::{Gc, Global, HeapType};
/// #[derive(HeapType)]
/// struct Counter { n: std::sync::atomic::AtomicU64 }
/// fn needs_send<T: Send>(_: T) {}
/// fn share(g: Global<'_, Counter>) { needs_send(g) }
/// ```
pub struct Global<'gc, T> {
    sched: Arc<Sched>,
    index: usize,
    _t: PhantomData<Gc<'gc, T>>,
}

impl<'gc, T> Global<'gc, T> {
    /// A handle on `obj`, from a goroutine of the runtime that owns `obj`.
    ///
    /// # Panics
    /// Outside a goroutine, and when `obj` is not an object of this runtime's heap (a `Gc`
    /// kept from another runtime, or from this one past a collection that freed it).
    pub fn new(obj: Gc<'gc, T>) -> Global<'gc, T> {
        let sched = current().sched().arc();
        let addr = obj.to_word();
        assert_owned(&sched, addr, "Global::new");
        let index = sched.globals.add(addr);
        Global {
            sched,
            index,
            _t: PhantomData,
        }
    }

    /// The object.
    pub fn get(&self) -> Gc<'gc, T> {
        // SAFETY: the slot holds a word stored from a Gc<T>.
        unsafe { Gc::from_word(self.sched.globals.get(self.index)) }
    }

    /// Points the handle at another object.
    ///
    /// # Panics
    /// As [`Global::new`], when `obj` is not an object of the handle's runtime.
    pub fn set(&self, obj: Gc<'gc, T>) {
        let addr = obj.to_word();
        assert_owned(&self.sched, addr, "Global::set");
        let sched = &self.sched;
        sched
            .globals
            .set(self.index, addr, |old| barrier::shade_words(sched, &[old]));
    }
}

/// Panics unless `addr` is an object of `sched`'s heap (or the address every zero-size
/// object has): a global slot is a root, and the collector would mark through anything
/// else.
pub(crate) fn assert_owned(sched: &Sched, addr: usize, what: &str) {
    let heap = sched.collector.heap();
    let found = heap.find_object(addr);
    // A slot the checked mode's quarantine holds is allocated, but its object is dead.
    if let Some(cycle) = found.and_then(|o| heap.freed_by(&o)) {
        panic!(
            "{what}: {addr:#x} names an object freed by cycle {cycle} (a Gc kept where the \
             collector could not see it)"
        );
    }
    assert!(
        found.is_some_and(|o| o.base == addr) || addr == zerobase().as_ptr() as usize,
        "{what}: {addr:#x} is not an object of this runtime's heap (a Gc from another \
         runtime, or one kept where the collector could not see it and freed)"
    );
}

impl<T> Drop for Global<'_, T> {
    fn drop(&mut self) {
        let sched = &self.sched;
        sched
            .globals
            .remove(self.index, |old| barrier::shade_words(sched, &[old]));
    }
}
