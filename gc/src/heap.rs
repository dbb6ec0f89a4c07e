//! The standalone heap, for embedders without goroutines (a single-threaded interpreter):
//! a [`Heap`] and its one [`Mutator`], which owns the mcache and passes the embedder's
//! roots to the collector whenever an allocation triggers a cycle.

use std::io;
use std::ptr::NonNull;

use minigo_alloc_core::sync::{Arc, AtomicBool, Ordering};
use minigo_alloc_core::{AllocError, Layout, MCache, MemStats, ObjectInfo};

use crate::collector::Collector;
use crate::config::GcConfig;
use crate::roots::Roots;
use crate::stats::CycleRecord;

/// A garbage-collected heap. Several may coexist; each has its own collector.
pub struct Heap {
    collector: Arc<Collector>,
    mutator_taken: Arc<AtomicBool>,
}

impl Heap {
    /// A heap with `config` (reserves its address space; starts the background sweeper).
    pub fn new(config: GcConfig) -> io::Result<Heap> {
        Ok(Heap {
            collector: Collector::new(config)?,
            mutator_taken: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The heap's mutator, if it is not already out: a heap has one, because its
    /// collections stop nothing but the thread that triggers them.
    pub fn mutator(&self) -> Option<Mutator> {
        if self.mutator_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Mutator {
            cache: MCache::new(self.collector.heap()),
            collector: self.collector.clone(),
            taken: self.mutator_taken.clone(),
        })
    }

    /// The collector (statistics, cycle history, GOGC and limit settings).
    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }
}

/// The one handle that allocates from a [`Heap`]. Owns the heap's mcache.
///
/// Every allocation may collect. It takes the embedder's roots so the collector can see
/// them: anything the embedder holds that is not reported there is freed.
pub struct Mutator {
    cache: MCache,
    collector: Arc<Collector>,
    taken: Arc<AtomicBool>,
}

impl Mutator {
    /// Allocates a zeroed object of `layout`. May collect first (pacer, stress mode), and
    /// collects once more before failing with out-of-memory under `max_heap`.
    #[inline]
    pub fn alloc(
        &mut self,
        layout: &Layout,
        roots: &mut dyn Roots,
    ) -> Result<NonNull<u8>, AllocError> {
        if !self.collector.config().stress {
            if let Some(p) = self.cache.alloc_fast(layout) {
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
        if self.collector.config().stress || self.collector.should_collect() {
            self.collector.collect(roots, &mut [&mut self.cache], false);
        }
        match self.cache.alloc_array(layout, len) {
            Err(AllocError::OutOfMemory { .. }) => {
                self.collector.collect(roots, &mut [&mut self.cache], false);
                self.cache.alloc_array(layout, len)
            }
            r => r,
        }
    }

    /// Collects now (Go's `runtime.GC()`), and finishes sweeping.
    pub fn collect(&mut self, roots: &mut dyn Roots) -> CycleRecord {
        let r = self.collector.collect(roots, &mut [&mut self.cache], true);
        self.collector.heap().finish_sweep();
        r
    }

    /// Stores a pointer into a heap object: the one function every such store goes through
    /// (see [`Collector::write`]).
    ///
    /// # Safety
    /// As [`Collector::write`].
    #[inline(always)]
    pub unsafe fn write(&mut self, slot: *mut usize, value: usize) {
        // SAFETY: the caller's contract.
        unsafe { Collector::write(slot, value) }
    }

    /// Statistics, with this mutator's allocations counted to the last one.
    pub fn mem_stats(&mut self) -> MemStats {
        self.cache.flush_stats();
        self.collector.mem_stats()
    }

    /// The object holding `addr`, if any (see `MHeap::find_object`).
    pub fn find_object(&self, addr: usize) -> Option<ObjectInfo> {
        self.collector.heap().find_object(addr)
    }

    /// The collector.
    pub fn collector(&self) -> &Arc<Collector> {
        &self.collector
    }
}

impl Drop for Mutator {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}
