//! Arenas: the typed layer (`Gc`, `GcCell`, `GcSlice`, `GcStr`, `#[derive(HeapType)]`) on a
//! heap of its own, for an embedder without goroutines (an interpreter on one thread).
//! gc-arena's design, over minigo's collector:
//!
//! 1. **Mutations.** Handles exist only inside [`Arena::mutate`]`(|mu, root| ...)`: `mu`
//!    (an [`ArenaMutation`]) allocates from the arena's one mutator through an explicit
//!    pointer (no thread-local), and `root` is the arena's root object. The brand (`'gc`,
//!    as in a run) keeps every handle inside its mutation; what lasts from one mutation
//!    to the next is what the root object reaches, and the unbranded handles of
//!    `arena_handles.rs` (`ArenaGlobal`, `ArenaWeak`).
//! 2. **No collection during a mutation.** An allocation never starts, ends or runs a
//!    cycle (`minigo_gc::Mutator::alloc_deferred`). So a handle stays valid wherever it is
//!    kept during its mutation — a local, a `Vec`, a thread of a `std::thread::scope` —
//!    with no rooting, no stack scan and no checked mode: the runtime's rules about where
//!    a `Gc` may live do not apply here.
//! 3. **Collections between mutations.** When a mutation returns, no handle exists outside
//!    the heap, so the root object and the `ArenaGlobal`s are the only roots. The arena collects then when the
//!    pacer's trigger is passed (GOGC, GOMEMLIMIT), when an allocation ran out of memory
//!    under `max_heap` (end the mutation, and the next one may retry), after every
//!    mutation in gc-stress mode, and on [`Arena::collect`]. The cycle runs on the calling
//!    thread with the world it owns stopped; the heap's mark workers help on large heaps.
//! 4. **Not generational.** Every cycle is a major one: a minor cycle needs every store of
//!    a young pointer into an old object recorded, and a mutation may store through its
//!    handles from any thread of a scope, where no write barrier knows the arena. Since
//!    nothing marks while a mutation runs, its stores need no barrier at all.
//!
//! As with gc-arena, garbage made during a long mutation waits for its end: split long
//! work into many mutations (an interpreter: one per statement, or per N instructions).
//! An arena mutates on a plain thread: `mutate` on a goroutine panics (the goroutine's
//! write barrier is its P's, which knows only the run's heap).

use std::cell::UnsafeCell;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;

use minigo_alloc_core::sync::Arc;
use minigo_alloc_core::{AllocError, Layout, MemStats};
use minigo_gc::{Collector, CycleRecord, GcConfig, Heap, Liveness, Mutator, Roots, Tracer};

use crate::arena_handles::Handles;
use crate::checked::ArenaScope;
use crate::sched::try_current;
use crate::typed_heap::{sealed, Allocator, Brand, Gc, HeapType};

/// The type of an arena's root object, for every brand: `type Root<'gc> = Vm<'gc>;` on a
/// marker type (gc-arena's `Rootable`, with a generic associated type).
///
/// ```
/// use minigo_runtime::{Gc, GcCell, HeapType, Rootable};
/// #[derive(HeapType)]
/// struct Vm<'gc> { stack: GcCell<Option<Gc<'gc, Frame<'gc>>>>, steps: std::cell::Cell<u64> }
/// #[derive(HeapType)]
/// struct Frame<'gc> { up: Option<Gc<'gc, Frame<'gc>>>, pc: u64 }
/// struct VmRoot;
/// impl Rootable for VmRoot {
///     type Root<'gc> = Vm<'gc>;
/// }
/// ```
pub trait Rootable: 'static {
    /// The root object's type, branded `'gc`.
    type Root<'gc>: HeapType + 'gc;
}

/// The arena's mutator, its persistent handles, and what a mutation's allocations tell
/// the next collection.
struct Inner {
    mutator: Mutator,
    handles: Arc<Handles>,
    /// An allocation failed under `max_heap`: collect when the mutation ends.
    out_of_memory: bool,
}

/// A collection's roots: the root object and the strong handles; the weak ones cleared.
struct ArenaRoots<'a> {
    root: usize,
    handles: &'a Handles,
}

impl Roots for ArenaRoots<'_> {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        t.mark(self.root);
        self.handles.trace(t);
    }

    fn clear_weak(&mut self, live: &Liveness<'_>) {
        self.handles.clear_weak(live);
    }
}

/// A heap with the typed handles and no goroutines (see the module comment). Its root
/// object, of type `R::Root`, is made by `new` and handed to every mutation.
///
/// ```
/// use minigo_runtime::gc_crate::GcConfig;
/// use minigo_runtime::{Arena, Gc, GcCell, HeapType, Rootable};
/// #[derive(HeapType)]
/// struct List<'gc> { head: GcCell<Option<Gc<'gc, Node<'gc>>>> }
/// #[derive(HeapType)]
/// struct Node<'gc> { value: u64, next: Option<Gc<'gc, Node<'gc>>> }
/// struct Root;
/// impl Rootable for Root {
///     type Root<'gc> = List<'gc>;
/// }
/// let mut arena = Arena::<Root>::new(GcConfig::default(), |_| List { head: GcCell::new(None) }).unwrap();
/// for value in 0..1000 {
///     arena.mutate(|mu, list| {
///         let next = list.head.get();
///         list.head.set(Some(Gc::new(mu, Node { value, next }).unwrap()));
///         let _garbage = Gc::new(mu, Node { value, next: None }).unwrap();
///     });
/// }
/// arena.collect();
/// assert_eq!(arena.mem_stats().heap_objects, 1001); // the root and the list
/// let sum = arena.mutate(|_, list| {
///     let (mut sum, mut node) = (0, list.head.get());
///     while let Some(n) = node {
///         sum += n.value;
///         node = n.next;
///     }
///     sum
/// });
/// assert_eq!(sum, 999 * 1000 / 2);
/// ```
///
/// A handle cannot outlive its mutation:
///
/// ```compile_fail,E0521
/// # use minigo_runtime::gc_crate::GcConfig;
/// # use minigo_runtime::{Arena, Gc, HeapType, Rootable};
/// # #[derive(HeapType)]
/// # struct Cell { n: u64 }
/// # struct Root;
/// # impl Rootable for Root { type Root<'gc> = Cell; }
/// let mut arena = Arena::<Root>::new(GcConfig::default(), |_| Cell { n: 0 }).unwrap();
/// let mut kept = None;
/// arena.mutate(|mu, _| kept = Some(Gc::new(mu, Cell { n: 1 }).unwrap()));
/// ```
///
/// and the mutation's token stays on its thread (two threads allocating from one mutator
/// would race):
///
/// ```compile_fail,E0277
/// # use minigo_runtime::gc_crate::GcConfig;
/// # use minigo_runtime::{Arena, Gc, HeapType, Rootable};
/// # #[derive(HeapType)]
/// # struct Cell { n: u64 }
/// # struct Root;
/// # impl Rootable for Root { type Root<'gc> = Cell; }
/// let mut arena = Arena::<Root>::new(GcConfig::default(), |_| Cell { n: 0 }).unwrap();
/// arena.mutate(|mu, _| {
///     std::thread::scope(|s| {
///         s.spawn(move || Gc::new(mu, Cell { n: 1 }).unwrap().n);
///     })
/// });
/// ```
pub struct Arena<R: Rootable> {
    inner: UnsafeCell<Inner>,
    root: usize,
    heap: Heap,
    _root: PhantomData<R>,
}

/// An arena mutation's token: allocates from the arena (`Gc::new(mu, ...)`). `Copy`, and
/// neither `Send` nor `Sync`: it names the arena's one mutator, which one thread at a time
/// may use.
#[derive(Clone, Copy)]
pub struct ArenaMutation<'gc> {
    inner: NonNull<UnsafeCell<Inner>>,
    _brand: PhantomData<(Brand<'gc>, *const ())>,
}

impl std::fmt::Debug for ArenaMutation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArenaMutation")
    }
}

impl ArenaMutation<'_> {
    /// The arena's table of persistent handles.
    pub(crate) fn handles(self) -> Arc<Handles> {
        // SAFETY: as in `alloc`; only a shared reference, for the length of this call.
        unsafe { &*self.inner.as_ref().get() }.handles.clone()
    }
}

impl sealed::Allocator for ArenaMutation<'_> {}

impl<'gc> Allocator<'gc> for ArenaMutation<'gc> {
    #[inline]
    fn alloc(self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
        // SAFETY: a token exists only inside `Arena::mutate`, which holds the arena
        // mutably for as long (the brand keeps the token inside), on the mutation's thread
        // (the token is not Send). No other reference to `Inner` is live: an allocation
        // calls no user code, and nothing else in a mutation touches `Inner`.
        let inner = unsafe { &mut *self.inner.as_ref().get() };
        let r = inner.mutator.alloc_deferred(layout, len);
        if matches!(r, Err(AllocError::OutOfMemory { .. })) {
            inner.out_of_memory = true;
        }
        r
    }
}

impl<R: Rootable> Arena<R> {
    /// An arena on a heap of `config` (its `generational` setting is ignored: an arena's
    /// cycles are major), with the root object `init` makes. Fails when the OS refuses
    /// the heap's memory, or with `ErrorKind::OutOfMemory` (its source the `AllocError`)
    /// when the root object does not fit.
    pub fn new(
        mut config: GcConfig,
        init: impl for<'gc> FnOnce(ArenaMutation<'gc>) -> R::Root<'gc>,
    ) -> io::Result<Arena<R>> {
        config.generational = false;
        let heap = Heap::new(config)?;
        let mutator = heap.mutator().expect("a new heap's mutator");
        let mut arena = Arena {
            inner: UnsafeCell::new(Inner {
                mutator,
                handles: Arc::default(),
                out_of_memory: false,
            }),
            root: 0,
            heap,
            _root: PhantomData,
        };
        arena.root = arena
            .with_token(|mu| {
                let root = init(mu);
                Gc::new(mu, root).map(|r| r.as_ptr() as usize)
            })
            .map_err(|e| io::Error::new(io::ErrorKind::OutOfMemory, e))?;
        Ok(arena)
    }

    /// Runs `f` with a token to allocate with and the root object (see the module
    /// comment); then collects if a cycle is due. Returns what `f` returns, which cannot
    /// hold a handle.
    ///
    /// # Panics
    /// On a goroutine (see the module comment).
    pub fn mutate<T>(
        &mut self,
        f: impl for<'gc> FnOnce(ArenaMutation<'gc>, Gc<'gc, R::Root<'gc>>) -> T,
    ) -> T {
        let root = self.root;
        let t = self.with_token(|mu| {
            // SAFETY: the root object, which every collection keeps (it is the arena's one
            // root) and none runs during the mutation; its brand is the mutation's.
            let root = unsafe { Gc::from_raw(mu, root as *const R::Root<'_>) };
            f(mu, root)
        });
        let inner = self.inner.get_mut();
        let c = inner.mutator.collector();
        if inner.out_of_memory || c.config().stress || c.should_start() {
            self.collect();
        }
        t
    }

    /// Calls `f` with a token for this arena, for one brand.
    fn with_token<'gc, T>(&'gc mut self, f: impl FnOnce(ArenaMutation<'gc>) -> T) -> T {
        assert!(
            try_current().is_none(),
            "Arena::mutate on a goroutine: an arena mutates on a plain thread (its stores \
             would go through the goroutine's write barrier, which knows only the run's heap)"
        );
        let _checked = ArenaScope::enter(self.heap.collector());
        f(ArenaMutation {
            inner: NonNull::from(&self.inner),
            _brand: PhantomData,
        })
    }

    /// Collects now: a whole cycle from the root object and the [`ArenaGlobal`]s, then
    /// the sweep, so that statistics read next are exact (Go's `runtime.GC()`); then the
    /// cleanups of the objects it freed run, here. One that panics unwinds out of this
    /// call (and out of `mutate`, when the collection ran there), and the cleanups after
    /// it in that collection's list do not run.
    ///
    /// [`ArenaGlobal`]: crate::ArenaGlobal
    pub fn collect(&mut self) -> CycleRecord {
        let root = self.root;
        let inner = self.inner.get_mut();
        inner.out_of_memory = false;
        let handles = inner.handles.clone();
        let record = inner.mutator.collect(&mut ArenaRoots {
            root,
            handles: &handles,
        });
        for cleanup in handles.take_ready() {
            cleanup();
        }
        record
    }

    /// Memory statistics, with every allocation so far counted.
    pub fn mem_stats(&mut self) -> MemStats {
        self.inner.get_mut().mutator.mem_stats()
    }

    /// The arena's collector (cycle records, settings).
    pub fn collector(&self) -> &Arc<Collector> {
        self.heap.collector()
    }
}
