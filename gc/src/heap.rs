//! The standalone heap, for embedders without goroutines (a single-threaded interpreter):
//! a [`Heap`] and its one [`Mutator`], which owns the mutator state and passes the
//! embedder's roots to the collector whenever an allocation may start or end a cycle.
//!
//! Cycles are concurrent here too: the mutator traces its roots when a cycle starts (in
//! an allocation), the collector's background workers mark while it keeps running, and
//! the mutator ends the cycle in a later allocation once marking is done. So between those
//! two points, the embedder keeps the two rules every concurrent collector asks of its
//! mutators (see [`Roots`]): every pointer store into a heap object goes through
//! [`Mutator::write`], and an object taken out of a weak table goes through
//! [`Mutator::shade`].

use std::io;
use std::ptr::NonNull;

use minigo_alloc_core::sync::{Arc, AtomicBool, Ordering};
use minigo_alloc_core::{AllocError, Layout, MemStats, ObjectInfo};

use crate::alloc::{alloc_slow, MutatorContext};
use crate::collector::Collector;
use crate::config::GcConfig;
use crate::cycle::CycleRoots;
use crate::mutator::MutatorState;
use crate::roots::Roots;
use crate::stats::CycleRecord;

/// A garbage-collected heap. Several may coexist; each has its own collector.
///
/// One mutator allocates, reporting its roots with every allocation (any allocation may
/// start or end a cycle); pointer stores go through [`Mutator::write`]. A whole example:
/// `gc/examples/cons.rs`.
///
/// ```
/// use minigo_gc::{GcConfig, Heap, Layout, NoRoots, Tracer};
/// let heap = Heap::new(GcConfig::default()).unwrap();
/// let mut m = heap.mutator().expect("the heap's one mutator");
/// let pair = Layout::pointers(2); // two pointer words
/// let a = m.alloc(&pair, &mut NoRoots).unwrap().as_ptr() as usize;
/// // Roots: `a` only. A closure over a tracer is a `Roots`.
/// let mut roots = |t: &mut Tracer<'_>| t.mark(a);
/// let b = m.alloc(&pair, &mut roots).unwrap().as_ptr() as usize;
/// // SAFETY: word 0 of `a` is a pointer word of a live object; `b` is an object of this heap.
/// unsafe { m.write(a as *mut usize, b) };
/// m.collect(&mut roots);
/// let s = m.mem_stats();
/// assert_eq!(s.heap_objects, 2); // `a`, and `b` through it
/// ```
pub struct Heap {
    collector: Arc<Collector>,
    mutator_taken: Arc<AtomicBool>,
}

impl Heap {
    /// A heap with `config` (reserves its address space; starts the background sweeper
    /// and mark workers).
    pub fn new(config: GcConfig) -> io::Result<Heap> {
        Ok(Heap {
            collector: Collector::new(config)?,
            mutator_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The heap's mutator, if it is not already out: a heap has one, because its cycles
    /// start and end in that mutator's allocations.
    pub fn mutator(&self) -> Option<Mutator> {
        if self.mutator_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Mutator {
            // SAFETY: the heap's one mutator (the flag above), made before it can start a
            // cycle; its state is the one every cycle of this heap gets.
            // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
            state: unsafe { MutatorState::new(&self.collector) },
            taken: self.mutator_taken.clone(),
        })
    }

    /// The collector (statistics, cycle history, GOGC and limit settings).
    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }
}

/// The one handle that allocates from a [`Heap`]. Owns the heap's mutator state (mcache,
/// write-barrier buffer, mark work buffer, assist credit).
///
/// Every allocation may start or end a cycle. It takes the embedder's roots so the
/// collector can see them: anything the embedder holds that is not reported there is freed.
pub struct Mutator {
    state: MutatorState,
    taken: Arc<AtomicBool>,
}

/// The standalone mutator and its roots, for the allocation slow path.
struct Standalone<'a> {
    state: &'a mut MutatorState,
    roots: &'a mut dyn Roots,
}

impl MutatorContext for Standalone<'_> {
    fn state(&mut self) -> &mut MutatorState {
        self.state
    }

    fn safepoint(&mut self) {}

    fn start_cycle(&mut self) {
        let c = self.state.collector().clone();
        c.heap().sweep_all();
        let states = &mut [&mut *self.state];
        // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
        if unsafe { c.start_cycle(states, CycleRoots::Now(&mut *self.roots), false) } {
            // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
            unsafe { c.finish_small_cycle(states, self.roots) };
        }
        c.resume();
    }

    fn collect(&mut self, full: bool) {
        let c = self.state.collector().clone();
        // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
        unsafe { c.collect_here(&mut [&mut *self.state], self.roots, full) };
    }

    fn sample_stack(&mut self, stack: &mut crate::mprof::SampleStack) {
        self.roots.sample_stack(stack);
    }

    fn poll_mark_done(&mut self) {
        let c = self.state.collector().clone();
        if let Some(q) = c.marking_queue() {
            if q.take_done_hint() {
                // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
                unsafe { c.mark_termination(&mut [&mut *self.state], self.roots) };
                c.resume();
            }
        }
    }
}

/// The standalone mutator between collections (`Mutator::alloc_deferred`): the slow path
/// refills and samples, and never starts or runs a cycle. With no cycle under way, none is
/// marking, so there is nothing to end or assist either.
struct Deferred<'a> {
    state: &'a mut MutatorState,
}

impl MutatorContext for Deferred<'_> {
    fn state(&mut self) -> &mut MutatorState {
        self.state
    }

    fn safepoint(&mut self) {}

    fn start_cycle(&mut self) {}

    fn collect(&mut self, _full: bool) {}
}

impl Mutator {
    /// Allocates a zeroed object of `layout`. May start or end a cycle first (pacer,
    /// stress mode), and collects once more before failing with out-of-memory under
    /// `max_heap`.
    #[inline]
    pub fn alloc(
        &mut self,
        layout: &Layout,
        roots: &mut dyn Roots,
    ) -> Result<NonNull<u8>, AllocError> {
        if !self.state.collector().config.stress {
            if let Some(p) = self.state.alloc_fast::<true>(layout) {
                return Ok(p);
            }
        }
        self.alloc_slow(layout, 1, roots)
    }

    /// Allocates a zeroed array of `len` elements of `layout`, as [`Mutator::alloc`].
    pub fn alloc_array(
        &mut self,
        layout: &Layout,
        len: usize,
        roots: &mut dyn Roots,
    ) -> Result<NonNull<u8>, AllocError> {
        self.alloc_slow(layout, len, roots)
    }

    #[cold]
    fn alloc_slow(
        &mut self,
        layout: &Layout,
        len: usize,
        roots: &mut dyn Roots,
    ) -> Result<NonNull<u8>, AllocError> {
        alloc_slow(
            &mut Standalone {
                state: &mut self.state,
                roots,
            },
            layout,
            len,
        )
    }

    /// Allocates a zeroed array of `len` elements of `layout` without starting, ending or
    /// running a cycle, whatever the pacer says (it only counts): for an embedder that
    /// collects between mutations, when no pointer lives outside its roots (the runtime
    /// crate's `Arena`). [`Collector::should_start`] then says when a cycle is due; under
    /// `max_heap`, a full heap is out-of-memory at once, with no collection first.
    #[inline]
    pub fn alloc_deferred(
        &mut self,
        layout: &Layout,
        len: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        if len == 1 {
            if let Some(p) = self.state.alloc_fast::<true>(layout) {
                return Ok(p);
            }
        }
        self.alloc_deferred_slow(layout, len)
    }

    #[cold]
    fn alloc_deferred_slow(
        &mut self,
        layout: &Layout,
        len: usize,
    ) -> Result<NonNull<u8>, AllocError> {
        alloc_slow(
            &mut Deferred {
                state: &mut self.state,
            },
            layout,
            len,
        )
    }

    /// Collects now (Go's `runtime.GC()`): finishes a cycle under way, runs a whole new
    /// one, and finishes sweeping, so that statistics read next are exact.
    pub fn collect(&mut self, roots: &mut dyn Roots) -> CycleRecord {
        let c = self.state.collector().clone();
        // SAFETY: this is the heap's only mutator state (`Heap::mutator`).
        let r = unsafe { c.collect_here(&mut [&mut self.state], roots, true) };
        c.heap().sweep_all();
        c.profile_post_sweep();
        r
    }

    /// Starts a cycle now, without waiting for it (it ends in a later allocation, or
    /// [`Mutator::poll`]): its roots are traced now, marking runs beside this mutator.
    /// False if a cycle is already under way. The cycle is the one the pacer would have
    /// started, only earlier: not forced, so in generational mode a minor one when the last
    /// sweep kept the marks (a forced, major cycle is [`Mutator::collect`]).
    pub fn start_cycle(&mut self, roots: &mut dyn Roots) -> bool {
        let c = self.state.collector().clone();
        c.heap().sweep_all();
        // SAFETY: this is the heap's only mutator state (`Heap::mutator`).
        let started =
            // SAFETY: the heap's only mutator state (`Heap::mutator`), the caller's.
            unsafe { c.start_cycle(&mut [&mut self.state], CycleRoots::Now(roots), false) };
        c.resume();
        started
    }

    /// Ends the cycle under way if its marking is done, as an allocation would: for an
    /// embedder that goes a long time without allocating. Returns whether a cycle ended.
    pub fn poll(&mut self, roots: &mut dyn Roots) -> bool {
        let before = self.state.collector().cycles_finished();
        Standalone {
            state: &mut self.state,
            roots,
        }
        .poll_mark_done();
        self.state.collector().cycles_finished() != before
    }

    /// Stores a pointer into an object just allocated, before the next allocation: no
    /// barrier, no card (see [`MutatorState::init`]). For constructors.
    ///
    /// # Safety
    /// As [`MutatorState::init`]: as for [`Mutator::write`], and the object came from this
    /// mutator's last allocation.
    #[inline(always)]
    pub unsafe fn init(&mut self, slot: *mut usize, value: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.state.init(slot, value) }
    }

    /// Stores a pointer into a heap object: the one function every such store goes through
    /// (see [`MutatorState::write`]: while the heap marks, the write barrier records the
    /// pointer overwritten).
    ///
    /// # Safety
    /// As [`MutatorState::write`].
    #[inline(always)]
    pub unsafe fn write(&mut self, slot: *mut usize, value: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.state.write(slot, value) }
    }

    /// Keeps an object found through a reference the collector does not trace (a weak
    /// table's entry) alive for the cycle that is marking, if one is (see
    /// [`MutatorState::shade`]). Call it before keeping such an object anywhere.
    #[inline]
    pub fn shade(&mut self, addr: usize) {
        self.state.shade(addr);
    }

    /// Statistics, with this mutator's allocations counted to the last one.
    pub fn mem_stats(&mut self) -> MemStats {
        self.state.flush_stats();
        self.state.collector().mem_stats()
    }

    /// The object holding `addr`, if any (see `MHeap::find_object`).
    pub fn find_object(&self, addr: usize) -> Option<ObjectInfo> {
        self.state.collector().heap().find_object(addr)
    }

    /// The collector.
    pub fn collector(&self) -> &Arc<Collector> {
        self.state.collector()
    }

    /// True while the heap marks (the write barrier is on).
    pub fn marking(&self) -> bool {
        self.state.marking()
    }
}

impl Drop for Mutator {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}
