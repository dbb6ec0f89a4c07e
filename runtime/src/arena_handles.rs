//! An arena's handles that outlive mutations: [`ArenaGlobal`] (a strong root beside the
//! root object, gc-arena's `DynamicRoot`), [`ArenaWeak`] (Go 1.24's `weak.Pointer`) and
//! cleanups ([`ArenaMutation::add_cleanup`], Go 1.24's `runtime.AddCleanup`).
//!
//! 1. A handle is a slot in its arena's table (`Handles`), holding the object's address;
//!    it names no brand, so it may be kept anywhere, and a mutation turns it back into a
//!    `Gc` of its own brand (`get(mu)`). Its type names the object's type for every brand
//!    through a [`Rootable`] marker, as the arena's root does.
//! 2. A collection traces the strong slots with the root object, and before it sweeps,
//!    zeroes the weak slots whose objects it did not mark (`Roots::clear_weak`). Nothing
//!    marks while a mutation runs, so `ArenaWeak::get` needs no read barrier (the runtime's
//!    `Weak` does).
//! 3. A handle used with another arena's token panics: its slot means nothing there.
//! 4. A cleanup holds its object weakly. The collection that finds the object dead moves
//!    the cleanup to a ready list (with the weak slots, before the sweep), and once the
//!    collection is over, the thread that ran it runs the ready cleanups, outside any
//!    mutation. A cleanup is `'static`, so it holds no handle: it can neither keep its
//!    object alive nor bring it back, which the runtime's cleanups check at run time.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use minigo_gc::{Liveness, Tracer};

use crate::arena::{ArenaMutation, Rootable};
use crate::cleanup_table::{CleanupTable, Func};
use crate::slots::Slots;
use crate::typed_heap::{Gc, GcPointer};

/// The persistent handles of one arena: strong and weak slots of addresses (0: cleared),
/// and the cleanups (the runtime's table: its closures are never traced here, since an
/// arena's hold no handle).
#[derive(Default)]
pub(crate) struct Handles {
    strong: Mutex<Slots<usize>>,
    weak: Mutex<Slots<usize>>,
    cleanups: CleanupTable,
}

fn lock(m: &Mutex<Slots<usize>>) -> MutexGuard<'_, Slots<usize>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handles {
    /// Reports every strong slot (a collection's roots, with the root object).
    pub(crate) fn trace(&self, t: &mut Tracer<'_>) {
        for (_, &a) in lock(&self.strong).iter() {
            t.mark(a);
        }
    }

    /// Zeroes the weak slots of objects this collection found dead, and readies their
    /// cleanups, before its sweep.
    pub(crate) fn clear_weak(&self, live: &Liveness<'_>) {
        for a in lock(&self.weak).values_mut() {
            if *a != 0 && !live.is_live(*a) {
                *a = 0;
            }
        }
        self.cleanups.clear_dead(live);
    }

    /// The cleanups the last collections readied, to run now. Nothing marks between
    /// mutations, so nothing leaving the table needs shading.
    pub(crate) fn take_ready(&self) -> Vec<Func> {
        self.cleanups.take_ready(|_, _| {})
    }
}

/// Panics unless `mu` is a token of the arena whose table is `handles`.
fn assert_same_arena(mu: ArenaMutation<'_>, handles: &Arc<Handles>, what: &str) {
    assert!(
        Arc::ptr_eq(&mu.handles(), handles),
        "{what}: a handle of another arena (its slot means nothing in this one)"
    );
}

/// Keeps an arena object alive between mutations, wherever the handle is kept, until it
/// is dropped. `K` names the object's type for every brand (`K::Root<'gc>`).
///
/// ```
/// use minigo_runtime::gc_crate::GcConfig;
/// use minigo_runtime::{Arena, ArenaGlobal, Gc, HeapType, Rootable};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// struct EntryK;
/// impl Rootable for EntryK {
///     type Root<'gc> = Entry;
/// }
/// let mut arena = Arena::<EntryK>::new(GcConfig::default(), |_| Entry { key: 0 }).unwrap();
/// let kept: ArenaGlobal<EntryK> =
///     arena.mutate(|mu, _| ArenaGlobal::new(mu, Gc::new(mu, Entry { key: 7 }).unwrap()));
/// arena.collect();
/// assert_eq!(arena.mutate(|mu, _| kept.get(mu).key), 7);
/// ```
pub struct ArenaGlobal<K: Rootable> {
    handles: Arc<Handles>,
    index: usize,
    _k: PhantomData<fn() -> K>,
}

impl<K: Rootable> ArenaGlobal<K> {
    /// A handle on `obj`.
    pub fn new<'gc>(mu: ArenaMutation<'gc>, obj: Gc<'gc, K::Root<'gc>>) -> ArenaGlobal<K> {
        let handles = mu.handles();
        let index = lock(&handles.strong).add(obj.to_word());
        ArenaGlobal {
            handles,
            index,
            _k: PhantomData,
        }
    }

    /// The object, branded with `mu`'s mutation.
    ///
    /// # Panics
    /// When `mu` is another arena's.
    pub fn get<'gc>(&self, mu: ArenaMutation<'gc>) -> Gc<'gc, K::Root<'gc>> {
        assert_same_arena(mu, &self.handles, "ArenaGlobal::get");
        let a = *lock(&self.handles.strong)
            .get(self.index)
            .expect("a live handle's slot");
        // SAFETY: a strong slot is a root of every collection of its arena (the one `mu`
        // mutates, checked above), so its object lives; the brand is the mutation's.
        unsafe { Gc::from_word(a) }
    }

    /// Points the handle at another object.
    pub fn set<'gc>(&self, mu: ArenaMutation<'gc>, obj: Gc<'gc, K::Root<'gc>>) {
        assert_same_arena(mu, &self.handles, "ArenaGlobal::set");
        *lock(&self.handles.strong)
            .get_mut(self.index)
            .expect("a live handle's slot") = obj.to_word();
    }
}

impl<K: Rootable> Drop for ArenaGlobal<K> {
    fn drop(&mut self) {
        lock(&self.handles.strong).remove(self.index);
    }
}

/// A weak pointer to an arena object (Go 1.24's `weak.Pointer`): [`ArenaWeak::get`] gives
/// the object back while something else keeps it (the root object, an [`ArenaGlobal`], a
/// handle in the running mutation), and `None` from the collection that finds it
/// unreachable on. As in Go, an object of under 16 bytes without pointers shares a block
/// with others (the tiny allocator) and stays reachable while any of them does.
///
/// ```
/// use minigo_runtime::gc_crate::GcConfig;
/// use minigo_runtime::{Arena, ArenaWeak, Gc, HeapType, Rootable};
/// #[derive(HeapType)]
/// struct Entry { key: u64, hits: u64 }
/// struct EntryK;
/// impl Rootable for EntryK {
///     type Root<'gc> = Entry;
/// }
/// let mut arena = Arena::<EntryK>::new(GcConfig::default(), |_| Entry { key: 0, hits: 0 }).unwrap();
/// let weak: ArenaWeak<EntryK> = arena.mutate(|mu, _| {
///     ArenaWeak::new(mu, Gc::new(mu, Entry { key: 7, hits: 0 }).unwrap())
/// });
/// assert_eq!(arena.mutate(|mu, _| weak.get(mu).map(|e| e.key)), Some(7));
/// arena.collect(); // nothing else kept it
/// assert!(arena.mutate(|mu, _| weak.get(mu).is_none()));
/// ```
pub struct ArenaWeak<K: Rootable> {
    handles: Arc<Handles>,
    index: usize,
    _k: PhantomData<fn() -> K>,
}

impl<K: Rootable> ArenaWeak<K> {
    /// A weak pointer to `obj`.
    pub fn new<'gc>(mu: ArenaMutation<'gc>, obj: Gc<'gc, K::Root<'gc>>) -> ArenaWeak<K> {
        let handles = mu.handles();
        let index = lock(&handles.weak).add(obj.to_word());
        ArenaWeak {
            handles,
            index,
            _k: PhantomData,
        }
    }

    /// The object, if no collection has found it unreachable yet.
    ///
    /// # Panics
    /// When `mu` is another arena's.
    pub fn get<'gc>(&self, mu: ArenaMutation<'gc>) -> Option<Gc<'gc, K::Root<'gc>>> {
        assert_same_arena(mu, &self.handles, "ArenaWeak::get");
        let a = *lock(&self.handles.weak)
            .get(self.index)
            .expect("a live handle's slot");
        // SAFETY: a weak slot is zeroed by the collection that finds its object dead,
        // before the sweep frees it, and none runs during the mutation: a non-zero slot
        // is a live object of `mu`'s arena (checked above).
        (a != 0).then(|| unsafe { Gc::from_word(a) })
    }
}

impl<K: Rootable> Drop for ArenaWeak<K> {
    fn drop(&mut self) {
        lock(&self.handles.weak).remove(self.index);
    }
}

impl<'gc> ArenaMutation<'gc> {
    /// Runs `cleanup` after the collection that finds `obj` unreachable, on the thread that
    /// ran the collection, once it is over (outside any mutation). `cleanup` is `'static`:
    /// it holds no handle, so it cannot keep `obj` alive or see it. Several cleanups may
    /// wait on one object; one still waiting when the arena is dropped never runs, and is
    /// forgotten with the table (as in Go, cleanups are not guaranteed to run).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use minigo_runtime::gc_crate::GcConfig;
    /// use minigo_runtime::{Arena, Gc, HeapType, Rootable};
    /// #[derive(HeapType)]
    /// struct File { fd: u64, flags: u64 }
    /// struct FileK;
    /// impl Rootable for FileK {
    ///     type Root<'gc> = File;
    /// }
    /// let mut arena = Arena::<FileK>::new(GcConfig::default(), |_| File { fd: 0, flags: 0 }).unwrap();
    /// let closed = Arc::new(AtomicU64::new(0));
    /// let c = closed.clone();
    /// arena.mutate(|mu, _| {
    ///     let f = Gc::new(mu, File { fd: 3, flags: 0 }).unwrap();
    ///     let fd = f.fd;
    ///     mu.add_cleanup(f, move || c.store(fd, Ordering::SeqCst));
    /// });
    /// assert_eq!(closed.load(Ordering::SeqCst), 0); // no collection yet
    /// arena.collect();
    /// assert_eq!(closed.load(Ordering::SeqCst), 3);
    /// ```
    pub fn add_cleanup<T>(
        self,
        obj: Gc<'gc, T>,
        cleanup: impl FnOnce() + Send + 'static,
    ) -> ArenaCleanup {
        let handles = self.handles();
        let (index, id) = handles.cleanups.add(obj.to_word(), Box::new(cleanup));
        ArenaCleanup { handles, index, id }
    }
}

/// A registered arena cleanup; [`ArenaCleanup::stop`] cancels it.
pub struct ArenaCleanup {
    handles: Arc<Handles>,
    index: usize,
    id: u64,
}

impl ArenaCleanup {
    /// Cancels the cleanup if no collection has readied it yet (Go's `Cleanup.Stop`).
    pub fn stop(self) {
        // Nothing marks between mutations: nothing to shade.
        let cancelled = self.handles.cleanups.stop(self.index, self.id, |_, _| {});
        drop(cancelled);
    }
}
