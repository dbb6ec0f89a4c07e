//! Weak pointers (Go 1.24's `weak.Pointer`): a handle that gives its object back while the
//! object is reachable some other way, and nothing once a collection has found it
//! unreachable.
//!
//! 1. A [`Weak`] is a slot in its runtime's weak table (`Weaks`), which the collector does
//!    not trace: a weak slot keeps nothing alive.
//! 2. At mark termination, with the world stopped and before anything is swept, the
//!    runtime's `Roots::clear_weak` zeroes the slots whose objects were not marked
//!    (`Weaks::clear_dead`). So a slot never names a freed object, and once cleared it
//!    stays cleared: an object nothing reached cannot be reached again.
//! 3. [`Weak::get`] is a read barrier: while a cycle marks, the object it hands back is
//!    shaded first. Without that, a goroutine whose stack was already scanned could take
//!    the only path to an unmarked object out of the table, and the cycle would free the
//!    object under it. The read and the shade happen with async preemption held off, so
//!    no stop of the world (mark termination) falls between them.

use std::marker::PhantomData;

use minigo_alloc_core::sync::{Arc, Mutex};
use minigo_gc::Liveness;

use crate::barrier;
use crate::global_handle::assert_owned;
use crate::preempt::NoPreemptHere;
use crate::sched::{current, Sched};
use crate::slots::Slots;
use crate::typed_heap::{Gc, GcPointer};

/// The weak slots of a runtime: one word per live `Weak`, its object's address or 0 once
/// cleared.
#[derive(Default)]
pub(crate) struct Weaks {
    slots: Mutex<Slots<usize>>,
}

impl Weaks {
    /// Clears every slot whose object this collection found unreachable (called from
    /// `Roots::clear_weak`, between marking and sweeping).
    pub(crate) fn clear_dead(&self, live: &Liveness<'_>) {
        for a in self.slots.lock().values_mut() {
            if *a != 0 && !live.is_live(*a) {
                *a = 0;
            }
        }
    }
}

/// A weak pointer to a heap object: [`Weak::get`] returns the object while it is
/// reachable through anything but weak pointers, and `None` from the collection that finds
/// it unreachable on.
///
/// Like [`Global`](crate::Global), it may be kept anywhere (a `Vec`, a cache, another
/// thread) within its run, and is `Send`/`Sync` only when `Gc<T>` is.
///
/// ```
/// use minigo_runtime::{gc, Gc, Global, HeapType, Runtime, Weak};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// Runtime::new().unwrap().run(|mu| {
///     let strong = Global::new(Gc::new(mu, Entry { key: 7 }).unwrap());
///     let weak = Weak::new(strong.get());
///     gc();
///     assert_eq!(weak.get().map(|e| e.key), Some(7)); // still reachable through `strong`
/// }).unwrap();
/// ```
pub struct Weak<'gc, T> {
    sched: Arc<Sched>,
    index: usize,
    _t: PhantomData<Gc<'gc, T>>,
}

impl<'gc, T> Weak<'gc, T> {
    /// A weak pointer to `obj`, from a goroutine of the runtime that owns `obj`.
    ///
    /// # Panics
    /// Outside a goroutine, and when `obj` is not an object of this runtime's heap (as
    /// [`Global::new`](crate::Global::new)).
    pub fn new(obj: Gc<'gc, T>) -> Weak<'gc, T> {
        let sched = current().sched().arc();
        let addr = obj.to_word();
        assert_owned(&sched, addr, "Weak::new");
        let index = sched.weaks.slots.lock().add(addr);
        Weak {
            sched,
            index,
            _t: PhantomData,
        }
    }

    /// The object, if no collection has found it unreachable yet. While a cycle marks,
    /// the object is shaded first, so it survives the cycle (the read barrier).
    pub fn get(&self) -> Option<Gc<'gc, T>> {
        let _np = NoPreemptHere::new();
        let addr = *self
            .sched
            .weaks
            .slots
            .lock()
            .get(self.index)
            .expect("a live Weak's slot");
        if addr == 0 {
            return None;
        }
        barrier::shade_words(&self.sched, &[addr]);
        // SAFETY: the slot held a word stored from a Gc<T> (`new`), and a slot is cleared
        // before the sweep can free its object: a non-zero slot names a live object.
        Some(unsafe { Gc::from_word(addr) })
    }
}

impl<T> Drop for Weak<'_, T> {
    fn drop(&mut self) {
        self.sched.weaks.slots.lock().remove(self.index);
    }
}
