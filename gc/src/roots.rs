//! Roots: the pointers from outside the heap that marking starts from, and the hook for
//! tables that must not keep their entries alive.
//!
//! An embedder implements [`Roots`] for its VM state and reports every pointer it holds
//! into the heap precisely ([`Tracer::mark`]): value stack, call frames, globals, objects a
//! compiler is still building. The runtime reports goroutine stacks conservatively
//! ([`Tracer::scan_conservative`]): every word that `find_object` says is an object is kept.
//! A pointer may point anywhere inside its object. Values that are not heap objects (null,
//! the zero-size address, memory outside the heap) are ignored.
//!
//! **Concurrent marking.** A standalone heap's roots are traced once per cycle, when the
//! cycle starts; marking then runs beside the mutator until a later allocation ends it.
//! The roots may change freely meanwhile (a VM's stack is not watched, as Go does not
//! watch a goroutine's stack once scanned), because the collector keeps everything that
//! was reachable when it traced them, plus everything allocated since (new objects are
//! black). That holds as long as the embedder keeps two rules:
//!
//! 1. every pointer store into a heap object goes through `Mutator::write` (its write
//!    barrier records the pointer overwritten, which may be the last path to an object
//!    the VM still holds);
//! 2. an object reached through a reference the collector does not trace — an entry of a
//!    weak table such as an intern table — goes through `Mutator::shade` before the VM
//!    keeps it (it may not have been reachable when the roots were traced).

use std::cell::Cell;

use minigo_alloc_core::MHeap;

use crate::mprof::SampleStack;

/// How a root was reported, for messages about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// Reported by [`Tracer::mark`]: must be a heap object, or not in the heap at all.
    Precise,
    /// Found by [`Tracer::scan_conservative`]: any word that looks like a heap object.
    Conservative,
}

/// What an embedder implements to tell the collector what it holds.
pub trait Roots {
    /// Reports every root. Called when a cycle starts (and again at its end in verify
    /// mode), from inside an allocation or a collection: it must not allocate.
    fn trace(&mut self, tracer: &mut Tracer<'_>);

    /// Called at mark termination, before anything is freed: drop every entry of a weak table
    /// (an intern table, a cache) whose object [`Liveness::is_live`] says is dead. Entries
    /// left pointing at dead objects would dangle once the sweep reuses them.
    fn clear_weak(&mut self, live: &Liveness<'_>) {
        let _ = live;
    }

    /// The stack of an allocation the heap profile sampled (one per
    /// `GcConfig::mem_profile_rate` bytes on average), innermost frame first. By default
    /// the Rust call stack; an interpreter pushes its own frames
    /// ([`SampleStack::push`]: function, source file, line) so that its users' profiles
    /// name their functions rather than the interpreter's. Called from inside the
    /// allocation: it must not allocate from the heap.
    fn sample_stack(&mut self, stack: &mut SampleStack) {
        stack.capture_rust();
    }
}

/// No roots at all: everything allocated is garbage at the next collection.
pub struct NoRoots;

impl Roots for NoRoots {
    fn trace(&mut self, _: &mut Tracer<'_>) {}
}

impl<F: FnMut(&mut Tracer<'_>)> Roots for F {
    fn trace(&mut self, tracer: &mut Tracer<'_>) {
        self(tracer)
    }
}

/// Receives roots during a collection.
pub struct Tracer<'a> {
    sink: &'a mut dyn FnMut(usize, RootKind),
    /// Set by a marker's sink when a root it was given points at an object that stays
    /// young through the cycle's sweep (a minor cycle's card scan keeps such a card dirty).
    young: Option<&'a Cell<bool>>,
}

impl<'a> Tracer<'a> {
    /// A tracer that hands every root it is given to `sink` (for embedders composing
    /// their roots, and for scanning a range outside a collection).
    pub fn new(sink: &'a mut dyn FnMut(usize, RootKind)) -> Tracer<'a> {
        Tracer { sink, young: None }
    }

    /// A marker's tracer, whose `sink` sets `young` as [`Tracer::take_young`] reports.
    pub(crate) fn noting_young(
        sink: &'a mut dyn FnMut(usize, RootKind),
        young: &'a Cell<bool>,
    ) -> Tracer<'a> {
        Tracer {
            sink,
            young: Some(young),
        }
    }

    /// Whether a root given since the last call points at an object that stays young
    /// through this cycle's sweep (see `MarkQueue::with_ages`); false for a tracer that
    /// does not note it.
    pub(crate) fn take_young(&mut self) -> bool {
        self.young.is_some_and(|y| y.replace(false))
    }

    /// A precise root: an address inside a heap object (or one not in the heap, ignored).
    #[inline]
    pub fn mark(&mut self, addr: usize) {
        (self.sink)(addr, RootKind::Precise)
    }

    /// A precise root given as a pointer.
    #[inline]
    pub fn mark_ptr<T: ?Sized>(&mut self, ptr: *const T) {
        self.mark(ptr as *const u8 as usize)
    }

    /// Scans `[start, end)` word by word; every word that points into a heap object keeps
    /// it alive (a goroutine stack, say).
    ///
    /// # Safety
    /// The range must be readable memory (it is read as `usize` words, aligned down).
    pub unsafe fn scan_conservative(&mut self, start: usize, end: usize) {
        let mut p = start.next_multiple_of(std::mem::size_of::<usize>());
        while p + std::mem::size_of::<usize>() <= end {
            // SAFETY: the caller guarantees the range is readable; `p` is aligned.
            let word = unsafe { std::ptr::read_volatile(p as *const usize) };
            (self.sink)(word, RootKind::Conservative);
            p += std::mem::size_of::<usize>();
        }
    }
}

/// Answers "was this object marked?" between marking and sweeping.
pub struct Liveness<'h> {
    heap: &'h MHeap,
}

impl<'h> Liveness<'h> {
    pub(crate) fn new(heap: &'h MHeap) -> Liveness<'h> {
        Liveness { heap }
    }

    /// False only for a heap object that this collection found unreachable (it is about
    /// to be freed). Addresses outside the heap are always live: they are not ours.
    pub fn is_live(&self, addr: usize) -> bool {
        // SAFETY: called only from `Roots::clear_weak`, at mark termination: sweeping is
        // drained for the cycle, so no span is freed or swept meanwhile.
        unsafe { self.heap.find_object_unlocked(addr) }.is_none_or(|o| o.is_marked())
    }
}
