//! Global roots: handles that keep a heap object alive from anywhere (a `Vec` on the Rust
//! heap, a struct of the embedding program, another thread), reported to the collector
//! precisely. The `Gc` a handle gives back follows the usual rules.

use std::marker::PhantomData;

use minigo_alloc_core::sync::{Arc, Mutex};
use minigo_gc::Tracer;

use crate::barrier;
use crate::sched::{current, Sched};
use crate::types::{Gc, GcPointer};

/// The table of global roots: one word per live handle (0 in free slots).
#[derive(Default)]
pub(crate) struct Globals {
    slots: Mutex<(Vec<usize>, Vec<usize>)>,
}

impl Globals {
    fn add(&self, addr: usize) -> usize {
        let mut t = self.slots.lock();
        match t.1.pop() {
            Some(i) => {
                t.0[i] = addr;
                i
            }
            None => {
                t.0.push(addr);
                t.0.len() - 1
            }
        }
    }

    fn get(&self, i: usize) -> usize {
        self.slots.lock().0[i]
    }

    /// A root table the collector scans once a cycle: what leaves it while a cycle marks
    /// is shaded (`barrier.rs`).
    fn set(&self, sched: &Sched, i: usize, addr: usize) {
        let old = std::mem::replace(&mut self.slots.lock().0[i], addr);
        barrier::shade_words(sched, &[old]);
    }

    fn remove(&self, sched: &Sched, i: usize) {
        let mut t = self.slots.lock();
        let old = std::mem::replace(&mut t.0[i], 0);
        t.1.push(i);
        drop(t);
        barrier::shade_words(sched, &[old]);
    }

    /// Reports every handle's object.
    pub(crate) fn trace(&self, t: &mut Tracer<'_>) {
        for &a in &self.slots.lock().0 {
            if a != 0 {
                t.mark(a);
            }
        }
    }
}

/// Keeps a heap object alive until dropped, wherever the handle itself is kept.
pub struct Global<T> {
    sched: Arc<Sched>,
    index: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Global<T> {
    /// A handle on `obj` (from a goroutine of the runtime that owns `obj`).
    pub fn new(obj: Gc<T>) -> Global<T> {
        let sched = current().sched().arc();
        let index = sched.globals.add(obj.to_word());
        Global {
            sched,
            index,
            _t: PhantomData,
        }
    }

    /// The object.
    pub fn get(&self) -> Gc<T> {
        // SAFETY: the slot holds a word stored from a Gc<T>.
        unsafe { Gc::from_word(self.sched.globals.get(self.index)) }
    }

    /// Points the handle at another object.
    pub fn set(&self, obj: Gc<T>) {
        self.sched
            .globals
            .set(&self.sched, self.index, obj.to_word());
    }
}

impl<T> Drop for Global<T> {
    fn drop(&mut self) {
        self.sched.globals.remove(&self.sched, self.index);
    }
}
