//! What the collector sees of a runtime: every goroutine's stack, conservatively, from its
//! saved stack pointer to its top (all are parked or in `blocking` while the world is
//! stopped, with their registers spilled); goroutine closures that have not started yet;
//! the global handles, precisely; and channel buffers, conservatively.

use minigo_gc::{Roots, Tracer};

use crate::sched::Sched;

pub(crate) struct RuntimeRoots<'a> {
    pub(crate) sched: &'a Sched,
}

impl Roots for RuntimeRoots<'_> {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for g in self.sched.goroutines() {
            // SAFETY: the world is stopped: every G in the list is alive and not running.
            let g = unsafe { g.as_ref() };
            if let Some((lo, hi)) = g.entry_range() {
                // SAFETY: the closure's own memory, alive until the goroutine starts.
                unsafe { t.scan_conservative(lo, hi) };
            }
            let sp = g.saved_sp.load(minigo_alloc_core::sync::Ordering::Acquire);
            if sp != 0 {
                // SAFETY: `[sp, top)` is the live part of the goroutine's stack mapping.
                unsafe {
                    t.scan_conservative(
                        sp,
                        g.stack_top.load(minigo_alloc_core::sync::Ordering::Acquire),
                    )
                };
            }
        }
        self.sched.globals.trace(t);
        self.sched.chans.trace(t);
    }
}

impl Sched {
    /// A collection, with the world stopped (from a stop-the-world job).
    pub(crate) fn collect(&self, forced: bool) {
        let mut caches: Vec<&mut minigo_alloc_core::MCache> = (0..self.procs())
            // SAFETY: the world is stopped: no M uses any P's mcache.
            .map(|p| unsafe { self.mcache(p) })
            .collect();
        let mut roots = RuntimeRoots { sched: self };
        self.collector.collect(&mut roots, &mut caches, forced);
        self.free.release_stacks();
    }
}
