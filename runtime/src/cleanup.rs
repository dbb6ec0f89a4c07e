//! Cleanups (Go 1.24's `runtime.AddCleanup`): a function that runs on a goroutine of its
//! own after its object has become unreachable, and never brings the object back.
//!
//! 1. [`add_cleanup`] records the object's address, weakly (as a `Weak` does), and the
//!    cleanup, a boxed closure on the Rust heap. The closure's own bytes are a root,
//!    scanned conservatively: a `Gc` it captured lives until it has run. It must not
//!    capture its object (that would keep it alive forever, and Go panics there too).
//! 2. At mark termination, with the world stopped and before the sweep, the runtime's
//!    `Roots::clear_weak` moves the cleanups of unmarked objects to a ready list (still a
//!    root). The object is freed by that cycle's sweep; the cleanup never sees it.
//! 3. Once the world runs again (`Sched::cycle_ended`, or after a stopped collection), the
//!    ready list is handed to a new goroutine, which runs the cleanups one after another.
//!    A cleanup that leaves the table is shaded first: a cycle marking meanwhile may not
//!    have scanned the table yet (`cleanup_table.rs`, loom model 14).
//!
//! As in Go, cleanups are not guaranteed to run: not before `run` returns, and not for an
//! object still reachable when the program ends.

use std::marker::PhantomData;

use minigo_alloc_core::sync::Arc;
use minigo_gc::Tracer;

use crate::barrier;
use crate::cleanup_table::{closure_bytes, CleanupTable, Func};
use crate::global_handle::assert_owned;
use crate::sched::{current, Sched};
use crate::typed_heap::{Gc, GcPointer, Mutation};

impl CleanupTable {
    /// Starts a goroutine for the ready cleanups, if there are any. With the world running.
    pub(crate) fn run_ready(&self, sched: &Arc<Sched>) {
        let ready = self.take_ready(|lo, hi| {
            // SAFETY: the closure's bytes, owned by the list being taken.
            unsafe { barrier::shade_range(sched, lo, hi) }
        });
        if ready.is_empty() {
            return;
        }
        sched.spawn(Box::new(move || {
            for f in ready {
                f();
            }
        }));
    }
}

/// A registered cleanup; [`Cleanup::stop`] cancels it. Branded as the handles its
/// closure may capture: stopping drops the closure, which must happen within the run.
pub struct Cleanup<'gc> {
    sched: Arc<Sched>,
    index: usize,
    id: u64,
    _brand: PhantomData<Mutation<'gc>>,
}

impl Cleanup<'_> {
    /// Cancels the cleanup if it has not been handed to its goroutine yet (Go's
    /// `Cleanup.Stop`).
    pub fn stop(self) {
        let sched = &self.sched;
        let cancelled = sched.cleanups.stop(self.index, self.id, |lo, hi| {
            // SAFETY: the closure's bytes, alive until it is dropped below; their captures
            // leave a root area (see `cleanup_table.rs`).
            unsafe { barrier::shade_range(sched, lo, hi) }
        });
        drop(cancelled);
    }
}

/// Runs `cleanup` on a goroutine of its own some time after `obj` has become unreachable
/// (Go 1.24's `runtime.AddCleanup`). Several cleanups may wait on one object.
///
/// What `cleanup` captures stays alive until it has run; it may capture the run's
/// handles. It must not capture `obj`
/// itself, which would then never become unreachable; nor anything through which `obj`
/// is reachable, for the same reason (that is not detected).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use minigo_runtime::{add_cleanup, gc, yield_now, Chan, Gc, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct File { fd: u64 }
/// Runtime::new().unwrap().run(|mu| {
///     let closed = Arc::new(AtomicBool::new(false));
///     let c = closed.clone();
///     // The object is made and dropped by a goroutine that has ended (no stack keeps it).
///     let done = Chan::new(1);
///     let d = done.clone();
///     mu.go(move || {
///         let f = Gc::new(mu, File { fd: 3 }).unwrap();
///         let fd = f.fd;
///         add_cleanup(f, move || c.store(fd == 3, Ordering::SeqCst));
///         d.send(());
///     });
///     done.recv();
///     gc();
///     while !closed.load(Ordering::SeqCst) {
///         yield_now();
///     }
/// }).unwrap();
/// ```
///
/// # Panics
/// Outside a goroutine; when `obj` is not an object of this runtime's heap; when
/// `cleanup` captures `obj`.
pub fn add_cleanup<'gc, T>(obj: Gc<'gc, T>, cleanup: impl FnOnce() + Send + 'gc) -> Cleanup<'gc> {
    let sched = current().sched().arc();
    let addr = obj.to_word();
    assert_owned(&sched, addr, "add_cleanup");
    let f: Box<dyn FnOnce() + Send + 'gc> = Box::new(cleanup);
    // SAFETY: the closure runs, if at all, on a goroutine of this run (no goroutine runs
    // after `run` returns), is dropped by `Cleanup::stop` (branded: within the run), or is
    // forgotten with the table (`CleanupTable`'s drop): nothing it captures is used after
    // `'gc`.
    let f: Func = unsafe { std::mem::transmute(f) };
    let (lo, hi) = closure_bytes(&f);
    // The words the collector will scan while the cleanup waits, read the same way.
    let object = addr..addr + std::mem::size_of::<T>().max(1);
    let mut captures_object = false;
    let mut sink = |word: usize, _| captures_object |= object.contains(&word);
    // SAFETY: the closure's bytes, which `f` owns.
    unsafe { Tracer::new(&mut sink).scan_conservative(lo, hi) };
    assert!(
        !captures_object,
        "add_cleanup: the cleanup captures its own object ({addr:#x}), which would keep it \
         reachable forever"
    );
    let (index, id) = sched.cleanups.add(addr, f);
    Cleanup {
        sched,
        index,
        id,
        _brand: PhantomData,
    }
}
