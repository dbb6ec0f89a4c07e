//! G: a goroutine. A stackful coroutine on a stack the runtime mapped, plus what the
//! scheduler and the collector need to know about it while it is not running.
//!
//! A G is owned by exactly one party at a time: a run queue, the M running it, or whatever
//! it waits on (a channel's wait queue, a timer, a wait group); ownership moves through its
//! status word (`status.rs`).

use std::cell::Cell;
use std::ptr::NonNull;

use corosensei::{Coroutine, Yielder};
use minigo_alloc_core::sync::{AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering};

use crate::stack::GoStack;

/// Why a goroutine handed control back to its M.
pub(crate) enum Park {
    /// Runnable again at once, on any P (`yield_now`).
    Yield,
    /// Stopped at a safepoint because the world is stopping: runs again first on its own
    /// P when the world restarts (so a world stop does not move it to another M).
    Safepoint,
    /// Stopped for good: the run ended while it waited for a P after a preemption
    /// (`Sched::preempt_yield`). Its M never resumes it.
    Exit,
    /// Waiting for a `ready` (channel, timer, wait group, select).
    Wait,
    /// Wants `job` run with the world stopped (a collection, a statistics snapshot).
    StopTheWorld(*mut (dyn FnMut(&crate::sched::Sched) + 'static)),
}

/// How a goroutine ended: normally, or with its panic's message.
pub(crate) type Outcome = Result<(), String>;

pub(crate) type Co = Coroutine<(), Park, Outcome, GoStack>;

pub(crate) use crate::status::{GStatus, DEAD, RUNNABLE, RUNNING, SYSCALL};

/// A goroutine.
pub(crate) struct G {
    /// Its id, new each time the G is reused for a goroutine.
    id: AtomicU64,
    pub(crate) status: GStatus,
    /// Stack pointer at the last park (or `blocking` entry); what the collector scans from.
    pub(crate) saved_sp: AtomicUsize,
    /// Which cycle's scan this goroutine's stack has had: `2 * epoch` once scanned for the
    /// cycle numbered `epoch`, `2 * epoch + 1` while being scanned (see `roots.rs`).
    pub(crate) scan_gen: AtomicU32,
    /// The saved stack pointer a concurrent cycle last scanned its stack from; 0 if none has
    /// since the goroutine started (verify mode's `Sched::shade_stale_frames`).
    pub(crate) scan_sp: AtomicUsize,
    /// The stack's top and lowest usable address (its guard page is the page below), once
    /// the goroutine has a stack (at its first run: goroutines that have not run yet cost
    /// no mapping); 0 otherwise.
    pub(crate) stack_top: AtomicUsize,
    pub(crate) stack_lo: AtomicUsize,
    /// Times an M resumed it, and the count when `shrinkstack` last looked at its stack
    /// (a goroutine that has not run since cannot have grown it).
    pub(crate) runs: AtomicU32,
    pub(crate) shrink_seen: AtomicU32,
    /// Its stack's resident bytes as `read_mem_stats` last measured them, and `runs` then
    /// (`u32::MAX`: to measure again): a goroutine that has not run since keeps its pages.
    pub(crate) resident: AtomicU64,
    pub(crate) resident_runs: AtomicU32,
    /// The function to run, until the goroutine starts (scanned conservatively till then).
    pub(crate) entry: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// Set once the coroutine runs; only the goroutine itself reads it.
    pub(crate) yielder: Cell<*const Yielder<(), Park>>,
    /// The coroutine; touched only by the M that owns the G (see the module comment).
    co: std::cell::UnsafeCell<Option<Co>>,
}

/// A goroutine pointer, as queues and waiters hold it.
pub(crate) type GRef = NonNull<G>;

// SAFETY: a G moves between threads only through the ownership protocol above: whoever
// holds a GRef either owns the G exclusively (queue, waiter, running M) or only touches its
// atomics. The coroutine inside is `!Send` because the code on its stack might hold
// thread-affine data; the runtime's rule (documented for users) is that goroutines keep no
// thread-local state across a park.
unsafe impl Send for G {}
// SAFETY: as above.
unsafe impl Sync for G {}

impl G {
    pub(crate) fn new(id: u64, entry: Box<dyn FnOnce() + Send>) -> GRef {
        let g = Box::new(G {
            id: AtomicU64::new(id),
            status: GStatus::new(RUNNABLE),
            saved_sp: AtomicUsize::new(0),
            scan_gen: AtomicU32::new(0),
            scan_sp: AtomicUsize::new(0),
            stack_top: AtomicUsize::new(0),
            stack_lo: AtomicUsize::new(0),
            runs: AtomicU32::new(0),
            shrink_seen: AtomicU32::new(0),
            resident: AtomicU64::new(0),
            resident_runs: AtomicU32::new(u32::MAX),
            entry: Mutex::new(Some(entry)),
            yielder: Cell::new(std::ptr::null()),
            co: std::cell::UnsafeCell::new(None),
        });
        NonNull::from(Box::leak(g))
    }

    /// Its stack's guard page, `[lo, hi)` (while it has a stack).
    pub(crate) fn guard(&self) -> (usize, usize) {
        let hi = self.stack_lo.load(Ordering::Acquire);
        (hi - crate::stack::GUARD, hi)
    }

    /// The goroutine's id.
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// Makes a dead G a new goroutine (Go's `gfget` + `newproc1`).
    ///
    /// # Safety
    /// The caller owns the dead G (took it from a free list).
    pub(crate) unsafe fn reuse(&self, id: u64, entry: Box<dyn FnOnce() + Send>) {
        debug_assert_eq!(self.status.load(Ordering::Relaxed), DEAD);
        self.id.store(id, Ordering::Relaxed);
        self.saved_sp.store(0, Ordering::Relaxed);
        self.scan_sp.store(0, Ordering::Relaxed);
        *self.entry.lock() = Some(entry);
        self.status.store(RUNNABLE, Ordering::Release);
    }

    /// Ends a goroutine; returns the stack its coroutine ran on, for the next one.
    ///
    /// # Safety
    /// The caller owns the G, whose coroutine has returned (or never started).
    pub(crate) unsafe fn retire(&self) -> Option<GoStack> {
        // SAFETY: the caller owns the G.
        let stack = unsafe { self.co() }.take().map(|co| co.into_stack());
        self.saved_sp.store(0, Ordering::Relaxed);
        // The stack goes to a free list; the G has none until it runs again.
        self.stack_top.store(0, Ordering::Release);
        self.stack_lo.store(0, Ordering::Release);
        // Its coroutine is gone: a later goroutine on this G sets its own.
        self.yielder.set(std::ptr::null());
        self.resident_runs.store(u32::MAX, Ordering::Relaxed);
        self.status.store(DEAD, Ordering::Release);
        stack
    }

    /// Gives a goroutine that is about to run for the first time its stack and coroutine.
    ///
    /// # Safety
    /// The caller owns the G (it is the M about to run it).
    pub(crate) unsafe fn start(gref: GRef, stack: GoStack) {
        // SAFETY: the caller owns the G.
        let g = unsafe { gref.as_ref() };
        g.stack_top.store(stack.top(), Ordering::Release);
        g.stack_lo.store(stack.guard().1, Ordering::Release);
        let body = move |y: &Yielder<(), Park>, (): ()| -> Outcome {
            // SAFETY: the G outlives its coroutine (it is freed only after the coroutine
            // returned, by the M that ran it).
            let g = unsafe { gref.as_ref() };
            g.yielder.set(y);
            let f = g.entry.lock().take().expect("a goroutine starts once");
            // The goroutine's own code may be preempted asynchronously; the runtime's
            // around it (the coroutine's start and end) may not.
            // SAFETY: the goroutine's own code begins here, outside any runtime region.
            unsafe { minigo_alloc_core::sync::set_m_locks(0) };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|p| panic_message(&*p));
            // SAFETY: raises the count for the coroutine's return into the scheduler.
            unsafe { minigo_alloc_core::sync::set_m_locks(1) };
            r
        };
        // SAFETY: as above.
        unsafe { *g.co.get() = Some(Coroutine::with_stack(stack, body)) };
    }

    /// The coroutine.
    ///
    /// # Safety
    /// The caller owns the G (it is the M about to run it, or the scheduler freeing it).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn co(&self) -> &mut Option<Co> {
        // SAFETY: exclusive by the caller's ownership of the G.
        unsafe { &mut *self.co.get() }
    }

    /// The entry closure's memory, while the goroutine has not started: `(start, end)`.
    pub(crate) fn entry_range(&self) -> Option<(usize, usize)> {
        let e = self.entry.lock();
        e.as_ref().map(|b| {
            let p = &**b as *const (dyn FnOnce() + Send) as *const u8 as usize;
            (p, p + std::mem::size_of_val(&**b))
        })
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Writes a fatal error's message, and its newline, straight to the process's stderr
/// before it exits: not through `eprintln!`, which a test harness captures per test and
/// never prints when the process exits under it (a CI run ended with exit status 2 and no
/// message).
pub(crate) fn fatal_print(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(message);
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}

/// Runs `f`, code of the runtime's own that runs with the world stopped (a collection, a
/// statistics snapshot). If it panics — the collector's verify mode found a lost object,
/// say — no goroutine can run again (the world would stay stopped), so the process ends
/// with the message and exit status 2, as Go's `throw` does.
pub(crate) fn fatal_on_panic<R>(f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            crate::g::fatal_print(format_args!(
                "fatal error: {}\n\nruntime stack: (the world was stopped)",
                panic_message(&*p)
            ));
            std::process::exit(2);
        }
    }
}
