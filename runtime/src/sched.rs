//! The scheduler: Ps, Ms, and the loop that runs goroutines (Go's `proc.go`, simplified).
//!
//! `procs` Ps each own a local run queue and an mcache. An M (an OS thread) runs goroutines
//! while it holds a P: it takes the next one (the P's `runnext`, its ring, every 61st time
//! the global queue first for fairness, then the global queue, then other Ps' queues),
//! resumes its coroutine on the goroutine's own stack, and acts on why it came back
//! (yielded, waiting, wants the world stopped, finished). With nothing to run, an M puts its
//! P on the idle list and parks; `wakep` hands an idle P to a parked M (or a new one) when
//! work appears.
//!
//! Stopping the world (`world.rs`, Go's `stopTheWorldWithSema`): the stopper claims every
//! idle P and waits until each running P stops itself at its goroutine's next safepoint
//! (channel operations, `yield_now`, sleeps, allocation slow paths), and sysmon preempts
//! one that reaches none: it stops in place, its registers saved on its stack
//! (`preempt.rs`). A goroutine inside `blocking` holds no P, so it never holds the world
//! up. With the world stopped, every goroutine is parked or stopped with its registers
//! spilled onto its stack, which is what makes the collector's stack scan sound.
//!
//! A goroutine preempted at the end of its time slice is stopped in the middle of its own
//! code, which may hold references into its thread's thread-locals, or be inside a
//! library's per-thread state (a re-entrant lock, parking_lot's thread data, a statically
//! linked malloc's cache). So no other code runs on its thread until it continues, and it
//! continues on that thread: it gives its P to another M (Go's `handoffp`) and waits for
//! one to be handed back (`preempt_yield`; Go's `startlockedm` does the same for a
//! goroutine locked to its thread). A P is handed to the longest-waiting such goroutine
//! when its M runs out of work, or once that goroutine has waited a time slice.

use std::cell::Cell;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use minigo_alloc_core::sync::{Arc, AtomicU32, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use minigo_gc::{Collector, MutatorState};

pub(crate) use crate::barrier::shade_value;
use crate::g::{GRef, Outcome, Park, G, RUNNABLE, RUNNING, SYSCALL};
use crate::gfree::{GlobalFree, LocalFree};
use crate::mslot::{IdleMs, MSlot};
use crate::preempt::{NoPreempt, NoPreemptHere};
use crate::runq::{GlobalQueue, LocalQueue};
use crate::signal;
use crate::spill::with_spilled_registers;
use crate::stack::GoStack;
use crate::world::World;

/// Rounds of stealing before an M gives up its P (Go's `stealTries`).
const STEAL_TRIES: usize = 4;

/// A logical processor.
pub(crate) struct P {
    pub(crate) runq: LocalQueue<G>,
    /// Dead Gs and idle stacks for the next `go` on this P (Go's `p.gFree`).
    free: std::cell::UnsafeCell<LocalFree>,
    /// Sleepers whose time came, found by this P's M: they run before its run queue (Go
    /// readies them into `runnext`). Touched only by the M holding the P.
    woken: std::cell::UnsafeCell<std::collections::VecDeque<GRef>>,
    tick: AtomicU32,
    /// The collector's state for this P: mcache, write-barrier buffer, mark work buffer,
    /// assist credit.
    state: std::cell::UnsafeCell<MutatorState>,
    /// Goroutines resumed on this P, and the thread resuming them (for `sysmon.rs`).
    pub(crate) schedtick: AtomicU64,
    pub(crate) m_tid: std::sync::atomic::AtomicI32,
}

// SAFETY: the mutator state is touched only by the M holding the P, or by the collector
// while the world is stopped; everything else is atomic.
unsafe impl Sync for P {}
// SAFETY: as above.
unsafe impl Send for P {}

/// How a run ended.
pub(crate) enum Finish {
    Main(Outcome),
    Panic {
        goroutine: u64,
        message: String,
    },
    /// Every goroutine asleep with nothing to wake one (`checkdead.rs`).
    Deadlock {
        goroutines: usize,
    },
}

/// A runtime's scheduler state, shared by its Ms.
pub(crate) struct Sched {
    pub(crate) collector: Arc<Collector>,
    /// The collector's gc-stress mode (every allocation collects), read on every allocation.
    stress: bool,
    /// The collector's verify mode: parking goroutines clear their dead stack
    /// (`stack::clear_dead`), and recycled stacks start empty.
    pub(crate) clear_stacks: bool,
    pub(crate) ps: Box<[P]>,
    pub(crate) global: GlobalQueue<G>,
    /// The Ps' states and the stop-the-world handshake.
    pub(crate) world: World,
    /// Ms without a P, waiting for `wakep` to hand them one.
    idle_ms: IdleMs,
    pub(crate) stw_running: AtomicBool,
    pub(crate) worlds_stopped: AtomicU64,
    next_goid: AtomicU64,
    pub(crate) ngoroutines: AtomicUsize,
    /// Every G, live or dead.
    allgs: Mutex<AllGs>,
    /// Dead Gs and idle stacks that no P's free list has room for.
    pub(crate) free: GlobalFree,
    /// Ms looking for work (Go's `nmspinning`): while one is, `wakep` wakes no other.
    pub(crate) nmspinning: AtomicUsize,
    /// Goroutines readied so far: deadlock detection's proof that nothing moved. (Nothing
    /// runs that was not readied or queued by a running goroutine, and with every P idle
    /// none is running.)
    pub(crate) progress: AtomicU64,
    /// Goroutines inside `blocking`: awake, though they hold no P.
    pub(crate) in_blocking: AtomicUsize,
    /// Goroutines being run by an M (resumed and not yet back), `blocking` ones included.
    running: AtomicUsize,
    /// Threads other than Ms (the timer thread, whoever ends a cycle) between taking
    /// goroutines off a wait list and readying them: for deadlock detection, a goroutine
    /// in neither place is still being woken.
    pub(crate) wakers: AtomicUsize,
    stack_size: usize,
    pub(crate) globals: crate::root_table::RootTable,
    pub(crate) weaks: crate::weak::Weaks,
    pub(crate) cleanups: crate::cleanup_table::CleanupTable,
    pub(crate) chans: crate::chan::Registry,
    pub(crate) timers: crate::time::Timers,
    /// Goroutines in `gc()` waiting for a cycle to finish: (cycles finished they wait for,
    /// goroutine).
    pub(crate) gc_waiters: Mutex<Vec<(u32, GPtr)>>,
    finish: Mutex<Option<Finish>>,
    finish_cv: Condvar,
    pub(crate) shutdown: AtomicBool,
    pub(crate) panic_aborts: bool,
    pub(crate) sysmon: crate::sysmon::Sysmon,
    /// Goroutines stopped by an asynchronous preemption, in place or parked (`preempt.rs`).
    pub(crate) preempted: Mutex<Vec<GPtr>>,
    /// Asynchronous preemptions so far.
    pub(crate) async_preemptions: AtomicU64,
    /// Ms whose goroutine was preempted at the end of its time slice, oldest first, each
    /// waiting for a P (`preempt_yield`); and how many (read without the lock).
    preempt_waiters: Mutex<std::collections::VecDeque<(Arc<MSlot>, std::time::Instant)>>,
    pub(crate) npreempt_waiting: AtomicUsize,
    /// Where the next stopped cycle's `shrinkstack` round starts (`roots.rs`).
    pub(crate) shrink_cursor: AtomicUsize,
}

/// Every goroutine ever created, for the collector and for abandoning them at the end.
/// Append-only, as Go's `allgs`: a dead G is kept for reuse (`gfree`), never removed.
#[derive(Default)]
struct AllGs {
    slots: Vec<GPtr>,
}

impl AllGs {
    fn add(&mut self, g: GRef) {
        self.slots.push(GPtr(g));
    }
}

/// A goroutine handle as wait queues hold it (opaque outside the crate).
#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GPtr(pub(crate) GRef);
// SAFETY: see `G`'s Send/Sync: ownership of the G moves by protocol, not by this pointer.
unsafe impl Send for GPtr {}
// SAFETY: as above.
unsafe impl Sync for GPtr {}

/// The goroutine and P of the running code, set by the M around each resume.
#[derive(Clone, Copy)]
pub(crate) struct Cur {
    sched: *const Sched,
    pub(crate) g: GRef,
}

thread_local! {
    static CUR: Cell<Option<Cur>> = const { Cell::new(None) };
    /// The P this M holds (changes under a running goroutine only in `blocking`).
    static M_P: Cell<Option<usize>> = const { Cell::new(None) };
    /// This M's kernel thread id (0 until it runs a goroutine), for preemption signals.
    static M_TID: Cell<i32> = const { Cell::new(0) };
}

/// Points the allocation fast path at P `p`'s state, or at none. Called where goroutine
/// code starts or stops running on this M, and (through `set_goroutine_p`) where its P
/// changes under it, so that the pointer is set exactly while a goroutine runs here with
/// that P.
fn set_m_alloc(sched: &Sched, p: Option<usize>) {
    let st = match p {
        Some(p) if !sched.stress => sched.ps[p].state.get(),
        _ => std::ptr::null_mut(),
    };
    crate::tls::set_state(st);
}

/// Gives the running goroutine's M the P `p`, or takes its P away (`blocking`,
/// `preempt_yield`): the P it holds and the state its allocation fast path uses change
/// together.
fn set_goroutine_p(sched: &Sched, p: Option<usize>) {
    M_P.with(|c| c.set(p));
    set_m_alloc(sched, p);
}

impl Cur {
    /// The runtime; valid for as long as the calling goroutine code runs.
    pub(crate) fn sched<'a>(self) -> &'a Sched {
        // SAFETY: a goroutine runs only while its runtime's Sched is alive (every M holds
        // an Arc to it), and goroutine code cannot outlive its goroutine.
        unsafe { &*self.sched }
    }

    /// The running goroutine's G; valid for as long as the calling goroutine code runs.
    pub(crate) fn g<'a>(self) -> &'a G {
        // SAFETY: the running goroutine's G lives until its coroutine returns.
        unsafe { self.g.as_ref() }
    }
}

/// The running goroutine, if this thread is running one.
///
/// Never inlined, like every accessor of the runtime's thread-locals: LLVM treats the
/// thread pointer as constant within a function, so after inlining it would reuse the
/// address of the *previous* thread's slot across a park that resumed on another thread.
#[inline(never)]
pub(crate) fn try_current() -> Option<Cur> {
    CUR.with(|c| c.get())
}

/// The running goroutine; panics outside one.
#[inline(never)]
pub(crate) fn current() -> Cur {
    try_current()
        .expect("this minigo function must be called from a goroutine of a running minigo runtime")
}

/// Allocation's fast path, from the running goroutine's P's mcache, inlined into the
/// caller: the P's state comes from one `%fs`-relative load, under the M's busy word,
/// which keeps the preemption handler out until the mcache is done with (`tls.rs`). Where
/// that word's offset is unknown, the out-of-line [`alloc_fast_outlined`]. `None` when the
/// slow path must run: outside a goroutine, and always in gc-stress mode. With `ZERO`
/// false, a pointer-free object may hold an old object's bytes, for a caller that writes
/// over all of them (`malloc::alloc_overwritten`).
#[inline(always)]
pub(crate) fn alloc_fast<const ZERO: bool>(
    layout: &minigo_alloc_core::Layout,
) -> Option<std::ptr::NonNull<u8>> {
    #[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom)))]
    if let Some(off) = crate::tls::offset() {
        // SAFETY: `enter` and `leave` pair on this thread: nothing between them parks.
        // The state is non-null only while a goroutine runs on this M holding the P whose
        // state it is (`set_m_alloc`); this M keeps the P until the goroutine parks or is
        // preempted, and the busy word keeps the preemption handler out until `leave`.
        unsafe {
            let st = crate::tls::enter(off);
            let p = match st.as_mut() {
                Some(st) => st.alloc_fast::<ZERO>(layout),
                None => None,
            };
            crate::tls::leave(off);
            return p;
        }
    }
    alloc_fast_outlined::<ZERO>(layout)
}

/// [`alloc_fast`] where the M's fast-path word cannot be reached inline: one thread-local
/// in one call (not inlined: see `try_current`). It holds the P's state throughout, so it
/// must not be preempted asynchronously: it lives in the `minigo_nopreempt` section, where
/// the preemption handler never stops a goroutine (`preempt.rs`), as `barrier::write_outlined`
/// does, and the mcache's fast path it inlines holds the thread's lock count up around the
/// calls it makes out of that section (`MCache::alloc_fast_nopreempt`).
#[inline(never)]
#[link_section = "minigo_nopreempt"]
pub(crate) fn alloc_fast_outlined<const ZERO: bool>(
    layout: &minigo_alloc_core::Layout,
) -> Option<std::ptr::NonNull<u8>> {
    let st = crate::tls::state();
    if st.is_null() {
        return None;
    }
    // SAFETY: non-null only while a goroutine runs on this M holding the P whose state this
    // is (`set_m_alloc`); this M keeps the P until the goroutine parks or is preempted, and
    // neither can happen here: nothing parks, and the section (or, around the calls out of
    // it, the lock count) keeps the preemption handler out.
    unsafe { (*st).alloc_fast_nopreempt::<ZERO>(layout) }
}

/// The running goroutine's P's mutator state, if this thread runs a goroutine that holds
/// a P (not inlined: see `try_current`). The reference must not be held across a park.
#[inline(never)]
pub(crate) fn try_current_state<'a>() -> Option<&'a mut MutatorState> {
    let sched = CUR.with(|c| c.get())?.sched();
    let p = M_P.with(|p| p.get())?;
    // SAFETY: as in `current_state_for_alloc`.
    Some(unsafe { sched.state(p) })
}

/// The P this thread's M holds (not inlined: see `try_current`).
#[inline(never)]
pub(crate) fn current_p() -> usize {
    M_P.with(|p| p.get())
        .expect("a running goroutine's M holds a P")
}

/// Stops the running goroutine until its M resumes it; `reason` says what the M should do.
/// The one way a goroutine stops (see `park`): registers are spilled, the stack pointer
/// recorded for the collector.
///
/// The thread's lock count (`preempt.rs`) belongs to the goroutine: it is 1 while the
/// goroutine is switched out and the scheduler runs, and the goroutine's own again when it
/// resumes, perhaps on another thread.
pub(crate) fn park(reason: Park) {
    let cur = current();
    let g = cur.g();
    // SAFETY: raises the count for the switch and the scheduler; restored below.
    let locks = unsafe { minigo_alloc_core::sync::set_m_locks(1) };
    with_spilled_registers(|sp| {
        g.saved_sp.store(sp, Ordering::Release);
        cur.sched().clear_dead_stack(g);
        crate::spill::clear_switch_registers();
        // SAFETY: set when the coroutine started; this is that coroutine.
        unsafe { (*g.yielder.get()).suspend(reason) };
        crate::spill::clear_switch_registers();
    });
    // SAFETY: this goroutine's own count from before the park, now on its new thread.
    unsafe { minigo_alloc_core::sync::set_m_locks(locks) };
}

/// The running goroutine's scheduler.
pub(crate) fn current_sched() -> Arc<Sched> {
    current().sched().arc()
}

/// The running goroutine, as wait queues hold it.
pub(crate) fn current_gptr() -> GPtr {
    GPtr(current().g)
}

/// A safepoint: if the world is stopping, stop here.
#[inline]
pub(crate) fn safepoint() {
    if let Some(cur) = try_current() {
        let sched = cur.sched();
        // After the run has ended, a goroutine stops here for good: it is queued and its
        // M, finding the run over, never resumes it.
        if sched.world.stopping() || sched.shutdown.load(Ordering::Acquire) {
            park(Park::Safepoint);
        }
    }
}

/// Parks the running goroutine until `wake` (via `ready`), which the caller must make
/// possible only after this has published that the goroutine is about to wait: call it
/// holding the lock that makes the goroutine visible to wakers, and release that lock in
/// `unlock` (the goroutine then parks).
pub(crate) fn wait_unlocking(unlock: impl FnOnce()) {
    // Never preempted between publishing the wait and parking: a preemption's own park
    // would overwrite the status a waker may already have moved on.
    let _np = NoPreempt::new();
    current().g().status.prepare_wait(unlock);
    park(Park::Wait);
}

/// Runs `f` with the world stopped (from a goroutine): the goroutine parks, its M stops
/// every P, runs `f`, and restarts the world. If another M is stopping the world at the
/// same moment, this waits its turn.
pub(crate) fn with_world_stopped(mut f: impl FnMut(&Sched)) {
    let _np = NoPreempt::new();
    let done = Cell::new(false);
    let mut job = |s: &Sched| {
        f(s);
        done.set(true);
    };
    while !done.get() {
        let job: *mut (dyn FnMut(&Sched) + '_) = &mut job;
        // SAFETY: only the lifetime is erased; the M calls the job while this goroutine is
        // parked inside `park`, so everything it borrows is alive.
        let job: *mut (dyn FnMut(&Sched) + 'static) = unsafe { std::mem::transmute(job) };
        park(Park::StopTheWorld(job));
    }
}

/// Gives up the processor: other goroutines run, this one runs again soon.
pub fn yield_now() {
    park(Park::Yield);
}

/// Runs `f` without holding a P (Go's `entersyscall`/`exitsyscall`): another goroutine may
/// run on this goroutine's P meanwhile, and the world can stop without waiting for `f`.
/// For blocking system calls and long computations that touch no heap object: `f` must not
/// use `Gc` values, allocate, or call other runtime functions (the collector may be running).
///
/// A panic in `f` propagates out of `blocking` after the goroutine has its P back, so a
/// goroutine that catches it runs on as usual.
pub fn blocking<R>(f: impl FnOnce() -> R) -> R {
    // Never preempted inside: it holds no P to give up. (The goroutine does not park: its
    // thread runs `f`.)
    let _np = NoPreemptHere::new();
    let cur = current();
    let sched = cur.sched();
    let g = cur.g();
    let r = with_spilled_registers(|sp| {
        g.saved_sp.store(sp, Ordering::Release);
        sched.clear_dead_stack(g);
        g.status.store(SYSCALL, Ordering::Release);
        let p = current_p();
        set_goroutine_p(sched, None);
        sched.in_blocking.fetch_add(1, Ordering::AcqRel);
        // Go's handoffp: goroutines queued on the P must not wait for this call to end.
        sched.give_up_p(p);
        // A P with nothing queued is idle: an idle mark worker may use its CPU.
        sched.collector.proc_idle();
        // Caught here and resumed below, once the P is back: unwinding straight out would
        // leave the goroutine running without one.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let p = sched.world.acquire_p();
        sched.in_blocking.fetch_sub(1, Ordering::AcqRel);
        set_goroutine_p(sched, Some(p));
        sched.note_running(p, true);
        // Its stack above `sp` is still frozen here: a cycle that began meanwhile scans it
        // before the goroutine runs on.
        sched.ensure_scanned(g, p);
        g.status.store(RUNNING, Ordering::Release);
        r
    });
    r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl Sched {
    pub(crate) fn new(
        collector: Arc<Collector>,
        procs: usize,
        stack_size: usize,
        panic_aborts: bool,
    ) -> Sched {
        Sched {
            stress: collector.config().stress,
            clear_stacks: collector.config().verify,
            ps: (0..procs)
                .map(|_| P {
                    runq: LocalQueue::default(),
                    free: std::cell::UnsafeCell::new(LocalFree::default()),
                    woken: Default::default(),
                    tick: AtomicU32::new(0),
                    // SAFETY: the runtime is not running yet, so no cycle starts; every
                    // cycle gets every P's state (`all_states`).
                    state: std::cell::UnsafeCell::new(unsafe { MutatorState::new(&collector) }),
                    schedtick: AtomicU64::new(0),
                    m_tid: std::sync::atomic::AtomicI32::new(0),
                })
                .collect(),
            collector,
            global: GlobalQueue::default(),
            world: World::new(procs),
            idle_ms: IdleMs::default(),
            stw_running: AtomicBool::new(false),
            worlds_stopped: AtomicU64::new(0),
            next_goid: AtomicU64::new(1),
            ngoroutines: AtomicUsize::new(0),
            allgs: Mutex::new(AllGs::default()),
            free: GlobalFree::default(),
            nmspinning: AtomicUsize::new(0),
            progress: AtomicU64::new(0),
            in_blocking: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            wakers: AtomicUsize::new(0),
            stack_size,
            globals: Default::default(),
            weaks: Default::default(),
            cleanups: Default::default(),
            chans: Default::default(),
            timers: Default::default(),
            gc_waiters: Mutex::new(Vec::new()),
            finish: Mutex::new(None),
            finish_cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            panic_aborts,
            sysmon: Default::default(),
            preempted: Mutex::new(Vec::new()),
            async_preemptions: AtomicU64::new(0),
            preempt_waiters: Mutex::new(Default::default()),
            npreempt_waiting: AtomicUsize::new(0),
            shrink_cursor: AtomicUsize::new(0),
        }
    }

    pub(crate) fn procs(&self) -> usize {
        self.ps.len()
    }

    /// The mutator state of P `p`.
    ///
    /// # Safety
    /// The caller's M holds `p`, or the world is stopped.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn state(&self, p: usize) -> &mut MutatorState {
        // SAFETY: exclusive by the caller's contract.
        unsafe { &mut *self.ps[p].state.get() }
    }

    /// The running goroutine's P's mutator state.
    ///
    /// # Safety
    /// Called from a goroutine of this runtime; the reference must not outlive a park.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn current_state(&self) -> &mut MutatorState {
        // SAFETY: this M holds the P until the goroutine parks.
        unsafe { self.state(current_p()) }
    }

    /// Every P's mutator state.
    ///
    /// # Safety
    /// The world is stopped (no M uses any P's state), and the references do not outlive
    /// the stop.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn all_states(&self) -> Vec<&mut MutatorState> {
        (0..self.procs())
            // SAFETY: the caller's contract.
            .map(|p| unsafe { self.state(p) })
            .collect()
    }

    /// Creates a goroutine running `f` and queues it. Returns its id.
    pub(crate) fn spawn(self: &Arc<Self>, f: Box<dyn FnOnce() + Send>) -> u64 {
        // The P's free lists and run queue are its M's alone: not preempted meanwhile.
        let _np = NoPreemptHere::new();
        let id = self.next_goid.fetch_add(1, Ordering::Relaxed);
        let g = match self.take_dead_g() {
            Some(g) => {
                // SAFETY: a dead G from a free list is ours.
                unsafe { g.as_ref().reuse(id, f) };
                g
            }
            None => {
                let g = G::new(id, f);
                self.allgs.lock().add(g);
                g
            }
        };
        self.ngoroutines.fetch_add(1, Ordering::Relaxed);
        self.make_runnable(g);
        id
    }

    /// A dead G to reuse: from this M's P (no lock), else the global list.
    fn take_dead_g(&self) -> Option<GRef> {
        match try_current().and_then(|c| std::ptr::eq(c.sched, self).then(current_p)) {
            // SAFETY: this M holds P `p`, whose free lists only it touches.
            Some(p) => unsafe { self.local_free(p) }.get_g(&self.free),
            None => LocalFree::default().get_g(&self.free),
        }
    }

    /// P `p`'s free lists.
    ///
    /// # Safety
    /// The caller is the M holding P `p`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn local_free(&self, p: usize) -> &mut LocalFree {
        // SAFETY: only the M holding the P touches its free lists (the caller's promise).
        unsafe { &mut *self.ps[p].free.get() }
    }

    /// Queues a runnable goroutine: on this M's P if called from a goroutine (as `runnext`
    /// when `next`), else on the global queue; and wakes an idle P if there is one.
    fn make_runnable_next(&self, g: GRef, next: bool) {
        // Only the M holding a P pushes onto its queue: not preempted meanwhile.
        let _np = NoPreemptHere::new();
        match try_current().and_then(|c| std::ptr::eq(c.sched, self).then(current_p)) {
            Some(p) => self.ps[p].runq.push(g, next, &self.global),
            None => self.global.push([g]),
        }
        self.wakep();
    }

    fn make_runnable(&self, g: GRef) {
        self.make_runnable_next(g, false);
    }

    /// Makes a waiting goroutine runnable (Go's `ready`): it runs next on this P.
    pub(crate) fn ready(&self, g: GRef) {
        self.progress.fetch_add(1, Ordering::AcqRel);
        // SAFETY: the waker owns the waiting G's handle (it took it from a wait queue).
        if unsafe { g.as_ref() }.status.wake() {
            self.make_runnable_next(g, true);
        }
    }

    /// Hands an idle P to an idle (or new) M when there is work for it.
    pub(crate) fn wakep(&self) {
        if self.world.npidle() == 0
            || self.world.stopping()
            || self.nmspinning.load(Ordering::Acquire) != 0
        {
            return;
        }
        // One M at a time goes looking for work (Go's spinning Ms): it wakes the next one
        // when it finds some (`schedule`).
        if self
            .nmspinning
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let p = match self.shutdown.load(Ordering::Acquire) {
            false => self.world.take_idle_p(),
            true => None,
        };
        let Some(p) = p else {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let m = self.idle_ms.pop();
        match m {
            Some(m) => m.hand(p),
            None => self.start_m(p),
        }
    }

    fn start_m(&self, p: usize) {
        let sched = self.arc();
        let spawned = std::thread::Builder::new()
            .name(format!("minigo-m-p{p}"))
            .spawn(move || sched.m_main(Some(p)));
        if spawned.is_err() {
            // No thread: give the P back; the Ms there are will run its work.
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
            self.world.release_p(p);
        }
    }

    /// An `Arc` to this scheduler (every Sched lives in one).
    pub(crate) fn arc(&self) -> Arc<Sched> {
        // SAFETY: Sched values are only ever created inside an Arc (see `Runtime`), and a
        // reference to one exists only while some Arc keeps it alive.
        unsafe {
            Arc::increment_strong_count(self as *const Sched);
            Arc::from_raw(self as *const Sched)
        }
    }

    /// Makes sure an M runs the queued main goroutine (spawning it usually did already),
    /// and starts the monitor thread.
    pub(crate) fn start(self: &Arc<Self>) {
        self.start_sysmon();
        self.wakep();
    }

    /// P `p` is about to run a goroutine on this thread, in a new time slice if `new_slice`
    /// (`sysmon.rs`).
    fn note_running(&self, p: usize, new_slice: bool) {
        let pp = &self.ps[p];
        if new_slice {
            pp.schedtick
                .store(pp.schedtick.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        let mut tid = M_TID.with(|c| c.get());
        if tid == 0 {
            tid = crate::preempt::gettid();
            M_TID.with(|c| c.set(tid));
        }
        // Usually unchanged: a load keeps the P's line clean for sysmon's reads.
        if pp.m_tid.load(Ordering::Relaxed) != tid {
            pp.m_tid.store(tid, Ordering::Relaxed);
        }
    }

    /// The goroutine `g`, preempted asynchronously on P `p` while the world is stopping,
    /// stops where it is (`preempt.rs`): its registers are on its stack below the saved
    /// pointer, its M stops the P as at any safepoint, and before it runs on its stack is
    /// scanned if a cycle began meanwhile (as on the way out of `blocking`). Nothing else
    /// runs on its thread meanwhile.
    pub(crate) fn stop_in_place(&self, g: &G, p: usize) {
        with_spilled_registers(|sp| {
            g.saved_sp.store(sp, Ordering::Release);
            self.clear_dead_stack(g);
            self.world.stop_self(p);
            self.ensure_scanned(g, p);
            g.saved_sp.store(0, Ordering::Release);
        });
    }

    /// In verify mode, as goroutine `g` (the caller's) stops with its registers spilled:
    /// clears its stack below the caller's frames (`stack::clear_dead`).
    #[inline]
    fn clear_dead_stack(&self, g: &G) {
        if self.clear_stacks {
            crate::stack::clear_dead(
                g.stack_lo.load(Ordering::Relaxed),
                g.stack_top.load(Ordering::Relaxed),
            );
        }
    }

    /// Lets P `p` go (to `blocking` or a preemption's yield): the sleepers it woke go to
    /// the global queue (nobody else would run them while it is idle), and an M is woken
    /// for what it has queued (Go's `handoffp`).
    fn give_up_p(&self, p: usize) {
        self.spill_woken(p);
        self.world.release_p(p);
        self.wakep_if_work();
    }

    /// Moves the sleepers P `p` woke to the global queue.
    fn spill_woken(&self, p: usize) {
        // SAFETY: only the M holding P `p` calls this, before it lets the P go.
        let woken = unsafe { &mut *self.ps[p].woken.get() };
        if !woken.is_empty() {
            self.global.push(woken.drain(..));
        }
    }

    /// The goroutine `g`, preempted at the end of its time slice on P `p`, lets the P go
    /// and keeps its thread, as if it were in `blocking` (see the module comment): its
    /// stack is frozen above the saved pointer, it counts as awake for deadlock detection,
    /// and it waits for an M to hand it a P (`handoff_to_preempted`), or takes an idle one
    /// when nothing else waits for it. Returns false if the run ended meanwhile: the
    /// goroutine must not run on.
    pub(crate) fn preempt_yield(&self, g: &G, p: usize) -> bool {
        with_spilled_registers(|sp| {
            g.saved_sp.store(sp, Ordering::Release);
            self.clear_dead_stack(g);
            g.status.store(SYSCALL, Ordering::Release);
            set_goroutine_p(self, None);
            self.in_blocking.fetch_add(1, Ordering::AcqRel);
            let slot = MSlot::new();
            {
                let mut w = self.preempt_waiters.lock();
                w.push_back((slot.clone(), std::time::Instant::now()));
                self.npreempt_waiting.store(w.len(), Ordering::Release);
            }
            // With nothing queued, the P goes straight to the goroutine preempted longest
            // ago (this one, if it is the only one: nobody else wanted the P).
            if self.work_waiting_besides_preempted() || !self.handoff_to_preempted(p, None) {
                self.give_up_p(p);
            }
            let got = self.wait_for_p(&slot);
            self.in_blocking.fetch_sub(1, Ordering::AcqRel);
            let Some(p) = got else {
                return false;
            };
            set_goroutine_p(self, Some(p));
            if self.world.stopping() {
                self.world.stop_self(p);
            }
            self.note_running(p, true);
            self.ensure_scanned(g, p);
            g.status.store(RUNNING, Ordering::Release);
            g.saved_sp.store(0, Ordering::Release);
            true
        })
    }

    /// `preempt_yield`'s wait: a P handed over, else an idle P once no goroutine is queued
    /// for one (nobody else wants it), else `None` when the run ends.
    fn wait_for_p(&self, slot: &Arc<MSlot>) -> Option<usize> {
        let mut got = slot.p.lock();
        loop {
            if let Some(p) = got.take() {
                return Some(p);
            }
            if self.shutdown.load(Ordering::Acquire) {
                drop(got);
                if !self.forget_waiter(slot) {
                    // `handoff_to_preempted` took it off the queue: its P is on the way
                    // (`mslot.rs`).
                    let p = slot.wait_handed();
                    self.give_up_p(p);
                }
                return None;
            }
            if !self.work_waiting_besides_preempted()
                && self.world.npidle() > 0
                && self.first_waiter(slot)
            {
                // Only if still queued: a giver that took it off is handing it a P.
                if self.forget_waiter(slot) {
                    if let Some(p) = self.world.take_idle_p() {
                        return Some(p);
                    }
                    let mut w = self.preempt_waiters.lock();
                    w.push_front((slot.clone(), std::time::Instant::now()));
                    self.npreempt_waiting.store(w.len(), Ordering::Release);
                }
            }
            got = slot.cv.wait_for(got, Duration::from_millis(1));
        }
    }

    /// Whether `slot` waits at the head of the waiters' queue (the one an idle P is for).
    fn first_waiter(&self, slot: &Arc<MSlot>) -> bool {
        self.preempt_waiters
            .lock()
            .front()
            .is_some_and(|(s, _)| Arc::ptr_eq(s, slot))
    }

    /// Takes `slot` off the waiters' queue; false if a giver already took it.
    fn forget_waiter(&self, slot: &Arc<MSlot>) -> bool {
        let mut w = self.preempt_waiters.lock();
        let before = w.len();
        w.retain(|(s, _)| !Arc::ptr_eq(s, slot));
        self.npreempt_waiting.store(w.len(), Ordering::Release);
        w.len() != before
    }

    /// Hands P `p`, which this M holds, to the M of the goroutine preempted longest ago,
    /// if one waits (and, with `after`, has waited that long); this M then has no P
    /// (`M_P` is cleared here).
    fn handoff_to_preempted(&self, p: usize, after: Option<Duration>) -> bool {
        if self.npreempt_waiting.load(Ordering::Acquire) == 0 {
            return false;
        }
        let slot = {
            let mut w = self.preempt_waiters.lock();
            let due = w
                .front()
                .is_some_and(|(_, since)| after.is_none_or(|d| since.elapsed() >= d));
            let s = if due {
                w.pop_front().map(|(s, _)| s)
            } else {
                None
            };
            self.npreempt_waiting.store(w.len(), Ordering::Release);
            s
        };
        let Some(slot) = slot else {
            return false;
        };
        self.spill_woken(p);
        M_P.with(|c| c.set(None));
        slot.hand(p);
        self.wakep_if_work();
        true
    }

    /// An M: runs goroutines whenever it holds a P.
    fn m_main(self: Arc<Self>, mut p: Option<usize>) {
        // An M's own code is the scheduler's, and a goroutine's first instructions (the
        // coroutine's start, on its stack) run with the count the M has: never preempted.
        // SAFETY: raises the count: nothing runs on this thread yet.
        unsafe { minigo_alloc_core::sync::set_m_locks(1) };
        crate::tls::check_thread();
        let _altstack = signal::ensure_altstack();
        let slot = MSlot::new();
        loop {
            if self.shutdown.load(Ordering::Acquire) {
                match p.take() {
                    Some(pid) => self.decline_p(pid),
                    None => self.m_exit(&slot),
                }
                return;
            }
            let pid = match p.take() {
                Some(pid) => pid,
                None => {
                    let mut got = slot.p.lock();
                    loop {
                        if let Some(pid) = got.take() {
                            break pid;
                        }
                        if self.shutdown.load(Ordering::Acquire) {
                            drop(got);
                            self.m_exit(&slot);
                            return;
                        }
                        // An idle M is where a deadlock shows: look twice, RECHECK apart.
                        match self.all_asleep() {
                            Some(seen) => {
                                got = slot.cv.wait_for(got, crate::checkdead::RECHECK);
                                if got.is_none() {
                                    self.check_dead(seen);
                                }
                            }
                            None => got = slot.cv.wait_for(got, Duration::from_millis(100)),
                        }
                    }
                }
            };
            // Every M gets its P from `wakep`, which counted it as spinning.
            self.schedule(pid, true);
            self.idle_ms.push(slot.clone());
        }
    }

    /// An idle M leaving at the end of the run (`mslot.rs`): off the idle list, and the P
    /// a `wakep` that took it off first is handing it goes back.
    fn m_exit(&self, slot: &Arc<MSlot>) {
        if let Some(p) = self.idle_ms.leave(slot) {
            self.decline_p(p);
        }
    }

    /// Gives back P `p`, which a `wakep` handed this M (and counted it spinning for), at
    /// the end of the run.
    fn decline_p(&self, p: usize) {
        self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        self.give_up_p(p);
    }

    /// Runs goroutines on `p` until there is nothing to run; then releases `p`. `spinning`:
    /// this M was woken to look for work (it counts in `nmspinning` until it finds some).
    fn schedule(&self, mut p: usize, mut spinning: bool) {
        M_P.with(|c| c.set(Some(p)));
        loop {
            if self.world.stopping() {
                self.world.stop_self(p);
            }
            if self.shutdown.load(Ordering::Acquire) {
                break;
            }
            let next = self.find_runnable(p);
            if M_P.with(|c| c.get()).is_none() {
                // P `p` went to a preempted goroutine's M.
                if spinning {
                    self.nmspinning.fetch_sub(1, Ordering::AcqRel);
                }
                return;
            }
            match next {
                Some((g, inherit)) => {
                    if spinning {
                        spinning = false;
                        self.nmspinning.fetch_sub(1, Ordering::AcqRel);
                        // More work may be waiting for another idle P.
                        if !self.global.is_empty() {
                            self.wakep();
                        }
                    }
                    self.execute(g, p, inherit);
                    // `blocking` or a preemption may have moved this M to another P.
                    match M_P.with(|c| c.get()) {
                        Some(np) => p = np,
                        None => return,
                    }
                }
                None => {
                    M_P.with(|c| c.set(None));
                    self.world.release_p(p);
                    if spinning {
                        self.nmspinning.fetch_sub(1, Ordering::AcqRel);
                    }
                    // Go's findrunnable re-check: a goroutine queued from outside any P (a
                    // timer, a goroutine in `blocking`) between our last look and now saw
                    // this P still running or this M still spinning, so its `wakep` did
                    // nothing. Idle first, then look, so that one of us sees the other.
                    self.wakep_if_work();
                    // Go's gcBgMarkWorker on an idle P: the CPU this P leaves is the
                    // collector's to use.
                    self.collector.proc_idle();
                    return;
                }
            }
        }
        if spinning {
            self.nmspinning.fetch_sub(1, Ordering::AcqRel);
        }
        M_P.with(|c| c.set(None));
        self.world.release_p(p);
    }

    /// `wakep` if there is work no running P will get to: in the global queue, or queued
    /// on a P that no M holds (one handed off by `blocking`). A held P's own queue is left
    /// to its M (and to thieves it wakes) — a P still stopped as the world restarts too:
    /// waking an M for it sent an idle M to steal a goroutine from a P whose own M was
    /// about to run it (276 moves between threads on `churn`, one every third cycle).
    pub(crate) fn wakep_if_work(&self) {
        let orphaned =
            (0..self.ps.len()).any(|i| self.world.is_idle(i) && !self.ps[i].runq.is_empty());
        if !self.global.is_empty() || orphaned {
            self.wakep();
        }
    }

    /// Go's checkTimers: sleepers whose time has come run on this P, first. (Queued
    /// behind the run queue, 100,000 sleepers woke 150-230 ms late at the 99th percentile
    /// while their spawner's goroutines started ahead of them.)
    #[inline]
    fn take_woken(&self, p: usize) -> Option<GRef> {
        // SAFETY: this M holds P `p`, whose `woken` list only it touches.
        let woken = unsafe { &mut *self.ps[p].woken.get() };
        if woken.is_empty() && !self.timers.due() {
            return None;
        }
        let mut expired = Vec::new();
        self.timers.take_expired(&mut expired);
        for g in expired {
            self.progress.fetch_add(1, Ordering::AcqRel);
            // SAFETY: taken from the timer heap, the sleeper's handle is ours to wake.
            if unsafe { g.0.as_ref() }.status.wake() {
                woken.push_back(g.0);
            }
        }
        woken.pop_front()
    }

    /// The goroutine `p` runs next, and whether it inherits the time slice under way (it
    /// was in `runnext`: Go's `inheritTime`). A goroutine readied by the one that ran last
    /// (a channel partner) or stopped at a safepoint for a stop of the world runs on in that
    /// slice, so that a pair handing off to each other, or a goroutine whose allocations
    /// stop it for every cycle, does not start a new slice each time and keep the goroutines
    /// queued behind it from ever running (`sysmon.rs`).
    fn find_runnable(&self, p: usize) -> Option<(GRef, bool)> {
        let pp = &self.ps[p];
        if let Some(g) = self.take_woken(p) {
            return Some((g, false));
        }
        let tick = pp.tick.fetch_add(1, Ordering::Relaxed);
        if tick.is_multiple_of(61) {
            // Fairness for a goroutine preempted at the end of its slice: once it has
            // waited a slice itself (Go queues it behind the global queue, which makes
            // its wait longer still when many goroutines are queued); then for the global
            // queue.
            if self.handoff_to_preempted(p, Some(crate::sysmon::SLICE)) {
                return None;
            }
            if let Some(g) = self.global.pop() {
                return Some((g, false));
            }
        }
        if let Some(g) = pp.runq.pop_inheriting() {
            return Some(g);
        }
        if let Some(g) = self.global.pop() {
            return Some((g, false));
        }
        // Go's `stealWork`: a few rounds over the other Ps; only the last takes a victim's
        // `runnext`, and only after giving a running victim a moment to run it itself: a
        // goroutine just readied by a channel partner is best run on its P (the partner is
        // about to block), and taking it at once would bounce a ping-pong pair between
        // threads on every message.
        let n = self.ps.len();
        for round in 0..STEAL_TRIES {
            let last = round == STEAL_TRIES - 1;
            for k in 1..n {
                let victim = &self.ps[(p + k) % n];
                if last && victim.runq.has_next() && self.world.is_running((p + k) % n) {
                    std::thread::sleep(Duration::from_micros(3));
                }
                if let Some(g) = victim.runq.steal_into(&pp.runq, last) {
                    return Some((g, false));
                }
            }
        }
        // Nothing else to run: a goroutine preempted earlier gets this P.
        self.handoff_to_preempted(p, None);
        None
    }

    /// Resumes `g` on `p` (in the time slice under way if `inherit`) and does what it asks
    /// when it comes back.
    fn execute(&self, g: GRef, p: usize, inherit: bool) {
        // Counted as running before the run's end is looked at, while `wait_finish` sets
        // the end before it reads the count (both SeqCst): one of the two sees the other,
        // so no goroutine starts once `run` may have returned. One that would is left
        // where it is, never to run (its stack is freed with the scheduler).
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.shutdown.load(Ordering::SeqCst) {
            self.running.fetch_sub(1, Ordering::Release);
            return;
        }
        // SAFETY: we took the G from a run queue: it is ours until it parks or ends.
        let gr = unsafe { g.as_ref() };
        // SAFETY: as above.
        if unsafe { gr.co() }.is_none() {
            // SAFETY: this M holds P `p`.
            let stack = match unsafe { self.local_free(p) }.get_stack(&self.free) {
                Some(s) => {
                    // A goroutine started while a cycle marks is not among those it
                    // scans: in verify mode its stack must not start with the stale
                    // words of the dead one's (`stack::clear_dead`).
                    if self.clear_stacks {
                        s.release();
                    }
                    Ok(s)
                }
                None => GoStack::new(self.stack_size),
            };
            match stack {
                // SAFETY: as above.
                Ok(stack) => unsafe { G::start(g, stack) },
                Err(e) => {
                    self.running.fetch_sub(1, Ordering::Release);
                    return self.finish(g, Err(format!("cannot map a goroutine stack: {e}")));
                }
            }
        }
        self.ensure_scanned(gr, p);
        gr.status.store(RUNNING, Ordering::Release);
        gr.saved_sp.store(0, Ordering::Relaxed);
        gr.runs.store(
            gr.runs.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        CUR.with(|c| c.set(Some(Cur { sched: self, g })));
        set_m_alloc(self, M_P.with(|c| c.get()));
        self.note_running(p, !inherit);
        signal::set_running(Some((
            gr.guard(),
            gr.id(),
            gr.stack_top.load(Ordering::Relaxed),
        )));
        // SAFETY: as above.
        let co = unsafe { gr.co() }
            .as_mut()
            .expect("a queued goroutine has its coroutine");
        crate::spill::clear_switch_registers();
        let r = co.resume(());
        crate::spill::clear_switch_registers();
        self.running.fetch_sub(1, Ordering::Release);
        signal::set_running(None);
        CUR.with(|c| c.set(None));
        set_m_alloc(self, None);
        let p = M_P.with(|c| c.get()).unwrap_or(p);
        match r {
            corosensei::CoroutineResult::Yield(Park::Yield) => {
                // Go's Gosched: to the global queue, so a yielding goroutine may continue on
                // any P.
                gr.status.store(RUNNABLE, Ordering::Release);
                self.global.push([g]);
                self.wakep();
            }
            corosensei::CoroutineResult::Yield(Park::Safepoint) => {
                gr.status.store(RUNNABLE, Ordering::Release);
                self.ps[p].runq.push(g, true, &self.global);
            }
            // Stopped for good (the run ended while it waited for a P): never resumed, its
            // stack freed with the scheduler.
            corosensei::CoroutineResult::Yield(Park::Exit) => {}
            corosensei::CoroutineResult::Yield(Park::Wait) => {
                if gr.status.finish_parking() {
                    self.ps[p].runq.push(g, true, &self.global);
                }
            }
            corosensei::CoroutineResult::Yield(Park::StopTheWorld(job)) => {
                if self
                    .stw_running
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    self.stop_world(Some(p));
                    self.worlds_stopped.fetch_add(1, Ordering::AcqRel);
                    crate::g::fatal_on_panic(|| {
                        // SAFETY: the job lives on the parked goroutine's stack (see
                        // `with_world_stopped`).
                        unsafe { (*job)(self) }
                    });
                    self.world.start(Some(p));
                    self.collector.resume();
                    self.wakep_if_work();
                    self.stw_running.store(false, Ordering::Release);
                } else {
                    // Another M is stopping the world: stop with it, then try again. It
                    // may not have asked this P to stop yet, and it may be off the CPU
                    // (on one CPU it is, while this M runs): give the CPU up, as a spin
                    // would not. A pause here cost binary-trees 18 pinned to one CPU 45%
                    // of its time, going round `schedule` until the OS preempted it.
                    minigo_alloc_core::sync::yield_thread();
                }
                gr.status.store(RUNNABLE, Ordering::Release);
                self.ps[p].runq.push(g, true, &self.global);
            }
            corosensei::CoroutineResult::Return(outcome) => self.finish(g, outcome),
        }
    }

    /// A goroutine returned: keep its G and stack for the next one, and end the run if it
    /// was main or panicked.
    fn finish(&self, g: GRef, outcome: Outcome) {
        // SAFETY: the goroutine has returned (or never started); its M owns the G alone.
        let gr = unsafe { g.as_ref() };
        let id = gr.id();
        self.ngoroutines.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        let stack = unsafe { gr.retire() };
        match M_P.with(|c| c.get()) {
            Some(p) => {
                // SAFETY: this M holds P `p`.
                let local = unsafe { self.local_free(p) };
                local.put_g(g, &self.free);
                if let Some(s) = stack {
                    local.put_stack(s, &self.free);
                }
            }
            None => self.free.put(g, stack),
        }
        match outcome {
            Err(message) => {
                if self.panic_aborts {
                    crate::g::fatal_print(format_args!(
                        "panic: {message}\n\ngoroutine {id} [running]\nfatal: a goroutine panicked"
                    ));
                    std::process::exit(2);
                }
                self.set_finish(Finish::Panic {
                    goroutine: id,
                    message,
                });
            }
            Ok(()) if id == 1 => self.set_finish(Finish::Main(Ok(()))),
            Ok(()) => {}
        }
    }

    /// Whether the run has ended (main returned, a goroutine panicked, a deadlock).
    pub(crate) fn finished(&self) -> bool {
        self.finish.lock().is_some()
    }

    pub(crate) fn set_finish(&self, f: Finish) {
        let mut fin = self.finish.lock();
        if fin.is_none() {
            *fin = Some(f);
            self.finish_cv.notify_all();
        }
    }

    /// Waits until main returns or a goroutine panics; then stops every M.
    pub(crate) fn wait_finish(&self) -> Finish {
        let mut fin = self.finish.lock();
        while fin.is_none() {
            fin = self.finish_cv.wait(fin);
        }
        let f = fin.take().expect("checked");
        drop(fin);
        self.shutdown.store(true, Ordering::SeqCst);
        self.idle_ms.notify_all();
        self.timers.shutdown();
        // Go ends the program when main returns. A goroutine still running stops at its
        // next safepoint or park (its M finds the run over and never resumes it) and one in
        // `blocking` when the call returns; none starts any more (`execute`). Wait until
        // none runs, so that no goroutine runs once `run` has returned.
        // One in a loop without safepoints is preempted, here rather than by sysmon (which
        // stops with the run).
        self.stop_sysmon();
        let mut nap = Duration::from_micros(10);
        while self.running.load(Ordering::SeqCst) != 0 {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(1));
            self.preempt_running();
        }
        // A cycle still marking is abandoned with the program, as Go's is when main
        // returns; its workers let go of this scheduler before `run` returns.
        self.collector.abandon_cycle();
        f
    }

    /// Every goroutine ever created, dead ones too (a cycle's root jobs: a G may be
    /// reused while the cycle marks).
    pub(crate) fn all_goroutines(&self) -> Vec<GRef> {
        self.allgs.lock().slots.iter().map(|g| g.0).collect()
    }

    /// Resident bytes of the goroutines' stacks (`read_mem_stats`'s StackInuse). A
    /// goroutine switched out that has not run since the last measure (nor had its stack
    /// shrunk) keeps its pages: its last figure stands, without a `mincore`.
    pub(crate) fn goroutine_stacks_resident(&self) -> u64 {
        let mut total = 0;
        for g in self.all_goroutines() {
            // SAFETY: Gs are never freed while the scheduler lives.
            let g = unsafe { g.as_ref() };
            let (lo, top) = (
                g.stack_lo.load(Ordering::Acquire),
                g.stack_top.load(Ordering::Acquire),
            );
            if lo == 0 || top == 0 {
                continue;
            }
            let status = g.status.load(Ordering::Acquire);
            let runs = g.runs.load(Ordering::Relaxed);
            let parked = status == RUNNABLE || status == crate::status::WAITING;
            if parked && g.resident_runs.load(Ordering::Relaxed) == runs {
                total += g.resident.load(Ordering::Relaxed);
                continue;
            }
            let bytes = crate::stack::resident(lo, top);
            g.resident.store(bytes, Ordering::Relaxed);
            g.resident_runs
                .store(if parked { runs } else { u32::MAX }, Ordering::Relaxed);
            total += bytes;
        }
        total
    }

    /// Every goroutine that is alive, for the collector (world stopped).
    pub(crate) fn goroutines(&self) -> Vec<GRef> {
        let all = self.allgs.lock();
        all.slots
            .iter()
            .map(|g| g.0)
            // SAFETY: Gs are never freed while the scheduler lives.
            .filter(|g| unsafe { g.as_ref() }.status.load(Ordering::Acquire) != crate::g::DEAD)
            .collect()
    }
}

impl Drop for Sched {
    fn drop(&mut self) {
        // Goroutines still alive when the runtime ends are abandoned, as Go's are when main
        // returns: their stacks are unmapped without unwinding them.
        for g in self.allgs.get_mut().slots.drain(..) {
            // SAFETY: every M has exited (they hold Arcs to this Sched), so no one else
            // refers to any G; the coroutine is forgotten (not unwound) and its stack
            // mapping freed with it by dropping the stack it is built on.
            unsafe {
                let g = Box::from_raw(g.0.as_ptr());
                // A goroutine that never started is forgotten too: its closure may
                // capture handles branded with the run that is over (`Mutation::go`),
                // which its captures' destructors would read.
                if let Some(entry) = g.entry.lock().take() {
                    std::mem::forget(entry);
                }
                if let Some(co) = (*g.co()).take() {
                    let (lo, hi) = (g.guard().0, g.stack_top.load(Ordering::Relaxed));
                    std::mem::forget(co);
                    libc::munmap(lo as *mut libc::c_void, hi - lo);
                }
            }
        }
    }
}
