//! The synchronisation shim: every atomic, lock and shared cell on alloc-core's concurrent
//! paths comes from here, so that `--cfg loom` swaps them all for loom's and the loom models
//! in `loom-tests` run this crate's production code.
//!
//! Rules: no `std::sync` or `parking_lot` outside this module on a concurrent path. The only
//! exceptions are the heap side tables that are plain memory inside the heap's reservation
//! (the pointer bitmap, see `heapbits`): like object memory itself they are written by the
//! owner of a span and read by the collector with the world stopped, and the handoffs that
//! order those accesses (span ownership, stop-the-world) are what the models check; and
//! settings made before the heap is shared (the quarantine's cycles).
//!
//! `UnsafeCell` offers loom's closure API (`with`, `with_mut`) in both builds so that loom
//! can check that every access to span-owned state is ordered by a handoff.

#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::thread::yield_now;

#[cfg(not(loom))]
pub use std::sync::atomic::{
    fence, AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub use std::sync::Arc;
#[cfg(not(loom))]
pub use std::thread::yield_now;

/// A mutual-exclusion lock with an infallible `lock()`: parking_lot normally, loom's mutex in
/// models.
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard of [`Mutex`]: while one is alive its thread counts a lock held ([`m_locks`]).
#[cfg(not(loom))]
pub struct MutexGuard<'a, T> {
    inner: std::mem::ManuallyDrop<parking_lot::MutexGuard<'a, T>>,
    /// This thread's lock count: a guard is dropped on the thread that took it (it is
    /// `!Send`, and no goroutine parks holding one), so the address found at `lock` is
    /// the one to count down (one thread-local lookup a lock, not two).
    locks: *const std::cell::Cell<u32>,
}

#[cfg(not(loom))]
impl<T> std::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.inner
    }
}

#[cfg(not(loom))]
impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

#[cfg(not(loom))]
impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped once, here; the guard is not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.inner) };
        // Only once the lock is free: a goroutine preempted between the two would leave
        // its thread's next goroutine to wait for a lock its holder cannot release.
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        // SAFETY: this thread's count (see `locks`), alive as long as the thread.
        let c = unsafe { &*self.locks };
        c.set(c.get().saturating_sub(1));
    }
}
/// The guard of [`Mutex`].
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: parking_lot::Mutex::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks, blocking until the lock is free.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        {
            let locks = m_locks_cell();
            // SAFETY: this thread's count, alive as long as the thread.
            let c = unsafe { &*locks };
            c.set(c.get() + 1);
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            MutexGuard {
                inner: std::mem::ManuallyDrop::new(self.inner.lock()),
                locks,
            }
        }
        #[cfg(loom)]
        return self
            .inner
            .lock()
            .expect("a loom model thread panicked holding a lock");
    }

    /// Locks without a guard (for code that must hold several locks of different types at
    /// once, such as a channel `select`); pair with [`Mutex::unlock_raw`].
    #[cfg(not(loom))]
    pub fn lock_raw(&self) {
        use parking_lot::lock_api::RawMutex;
        acquirem();
        // SAFETY: `raw` is unsafe only because unlocking through it could break a guard's
        // assumptions; we only lock, and the caller unlocks with `unlock_raw`.
        unsafe { self.inner.raw() }.lock();
    }

    /// Unlocks a mutex locked with [`Mutex::lock_raw`].
    ///
    /// # Safety
    /// This thread locked it with `lock_raw` and holds no guard on it.
    #[cfg(not(loom))]
    pub unsafe fn unlock_raw(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.inner.force_unlock() };
        // SAFETY: counts down the count `lock_raw` raised on this thread (the caller's
        // contract), now that the lock is free.
        unsafe { releasem() };
    }

    /// The protected data, for a holder of a raw lock.
    #[cfg(not(loom))]
    pub fn data_ptr(&self) -> *mut T {
        self.inner.data_ptr()
    }

    /// Exclusive access without locking.
    pub fn get_mut(&mut self) -> &mut T {
        #[cfg(not(loom))]
        return self.inner.get_mut();
        #[cfg(loom)]
        return self.inner.get_mut().expect("poisoned");
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

/// A condition variable paired with [`Mutex`]: parking_lot normally, loom's in models.
#[derive(Default)]
pub struct Condvar {
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

impl Condvar {
    /// A new condition variable.
    pub fn new() -> Self {
        Condvar::default()
    }

    /// Releases the guard's lock, waits for a notification, and locks again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(not(loom))]
        {
            let mut guard = guard;
            self.inner.wait(&mut guard.inner);
            guard
        }
        #[cfg(loom)]
        return self
            .inner
            .wait(guard)
            .expect("a loom model thread panicked holding a lock");
    }

    /// As [`Condvar::wait`], giving up after `timeout` (loom: waits as if notified).
    pub fn wait_for<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        #[cfg(not(loom))]
        {
            let mut guard = guard;
            self.inner.wait_for(&mut guard.inner, timeout);
            guard
        }
        #[cfg(loom)]
        {
            let _ = timeout;
            self.wait(guard)
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.inner.notify_one();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.inner.notify_all();
    }
}

// Go's `m.locks`: how many reasons this thread has not to be preempted asynchronously —
// locks of this shim held, plus the runtime's own non-preemptible regions
// (`acquirem`/`releasem` around them). minigo-runtime's preemption signal handler reads it
// on the interrupted thread and declines while it is not zero: a goroutine switched out
// holding a lock could deadlock the M that runs next on its thread. A plain thread-local
// word (written only by its thread, read only by a signal handler on the same thread),
// behind never-inlined accessors: a goroutine may move to another thread at a park, and an
// address of the thread-local computed before the park must not be reused after it.
#[cfg(not(loom))]
thread_local! {
    static M_LOCKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// This thread's count cell (never inlined: see the comment above `M_LOCKS`), for a
/// region that counts up and down on one thread without parking a goroutine in between
/// (a lock guard): one thread-local lookup for both.
#[cfg(not(loom))]
#[inline(never)]
pub fn m_locks_cell() -> *const std::cell::Cell<u32> {
    M_LOCKS.with(|c| c as *const std::cell::Cell<u32>)
}

/// Counts one more reason not to preempt this thread (Go's `acquirem`).
#[inline(never)]
pub fn acquirem() {
    acquirem_inline();
}

/// Counts one reason less (Go's `releasem`).
///
/// # Safety
/// Pairs with an earlier [`acquirem`] on this thread whose region is over: counting down
/// a region still under way would let the runtime be preempted inside it (holding a P's
/// state or a lock), which is undefined behaviour.
#[inline(never)]
pub unsafe fn releasem() {
    // SAFETY: the caller's contract.
    unsafe { releasem_inline() };
}

/// [`acquirem`], inlined: only for a function that is itself never inlined and never
/// parks a goroutine between this and [`releasem_inline`] (a fast path), so that the
/// thread-local's address it computes is this thread's throughout.
#[inline(always)]
pub fn acquirem_inline() {
    #[cfg(not(loom))]
    {
        M_LOCKS.with(|c| c.set(c.get() + 1));
        // What follows must not be reordered before the count (the handler reads it on
        // this thread).
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

/// [`releasem`], inlined (see [`acquirem_inline`]).
///
/// # Safety
/// As for [`releasem`].
#[inline(always)]
pub unsafe fn releasem_inline() {
    #[cfg(not(loom))]
    {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        M_LOCKS.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// This thread's count ([`acquirem`]); 0 means it may be preempted. Async-signal-safe.
#[inline(never)]
pub fn m_locks() -> u32 {
    #[cfg(not(loom))]
    return M_LOCKS.with(|c| c.get());
    #[cfg(loom)]
    return 0;
}

/// Sets this thread's count, returning the old one: a goroutine's count travels with it
/// when it parks on one thread and resumes on another (the runtime's `park`).
///
/// # Safety
/// Lowering the count is for the runtime's scheduler only: `n` must be the count of the
/// code that runs on this thread next (as [`releasem`]).
#[inline(never)]
pub unsafe fn set_m_locks(n: u32) -> u32 {
    #[cfg(not(loom))]
    {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        let old = M_LOCKS.with(|c| c.replace(n));
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        old
    }
    #[cfg(loom)]
    {
        let _ = n;
        0
    }
}

/// A cell whose contents are shared by raw pointer under an ordering rule stated at each
/// use (for example "only the span's owner touches this"). In loom builds every access is
/// tracked, and an access not ordered after the previous one fails the model.
#[cfg(not(loom))]
#[derive(Debug)]
pub struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// A new cell.
    pub const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the contents.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with an exclusive pointer to the contents.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }

    /// Exclusive access through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

#[cfg(loom)]
#[derive(Debug)]
pub struct UnsafeCell<T>(loom::cell::UnsafeCell<T>);

#[cfg(loom)]
impl<T> UnsafeCell<T> {
    /// A new cell.
    pub fn new(value: T) -> Self {
        UnsafeCell(loom::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared pointer to the contents.
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        self.0.with(f)
    }

    /// Runs `f` with an exclusive pointer to the contents.
    #[inline(always)]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        self.0.with_mut(f)
    }

    /// Exclusive access through `&mut self`.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` proves no other access exists.
        self.0.with_mut(|p| unsafe { &mut *p })
    }
}

/// Tells a spin loop's other party to make progress (a real yield under loom, where a
/// spinning thread would otherwise never let the model move on).
#[inline]
pub fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Gives the CPU to another thread: for a wait on a thread that may not be running at
/// all (a process pinned to one CPU), where a spin would only delay it.
#[inline]
pub fn yield_thread() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

/// Waiting for another thread that may not be running: spins a little, then yields, then
/// sleeps in short naps. The party waited for can be descheduled mid-step (the background
/// sweeper runs at idle priority): a waiter that only spun would hold the core it needs
/// (measured: spinning in `sweep_all` took 46% of binary-trees' CPU on 2 cores).
#[derive(Default)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    /// A fresh backoff: the first waits are spins.
    pub fn new() -> Backoff {
        Backoff { step: 0 }
    }

    /// Waits a little longer than last time.
    pub fn snooze(&mut self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        {
            if self.step < 6 {
                for _ in 0..1u32 << self.step {
                    std::hint::spin_loop();
                }
            } else if self.step < 10 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        }
        self.step = self.step.saturating_add(1);
    }
}

/// Loads a pointer word of a heap object: a relaxed atomic load (a plain `mov` on x86-64),
/// so that a collector marking beside the mutators may read a word a mutator is storing
/// without a data race.
///
/// Object memory is not loom's, so under loom each word also has a *shadow* loom atomic,
/// touched beside it: the models' partial-order reduction then knows that a marker's load
/// and a mutator's store of one word conflict, and explores both orders. (The value comes
/// from memory; the shadow carries only the ordering, so its accesses are read-modify-
/// writes: loom must not think a load could see an older store than memory gives.)
///
/// # Safety
/// `addr` is an aligned word of memory that stays mapped while this runs (a heap object).
#[inline(always)]
pub unsafe fn load_word(addr: usize) -> usize {
    #[cfg(loom)]
    shadow::of(addr).fetch_or(0, Ordering::AcqRel);
    // SAFETY: the caller's contract: an aligned, mapped word.
    unsafe { std::sync::atomic::AtomicUsize::from_ptr(addr as *mut usize) }
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Stores a pointer word of a heap object (see [`load_word`]).
///
/// # Safety
/// As for [`load_word`].
#[inline(always)]
pub unsafe fn store_word(addr: usize, value: usize) {
    // SAFETY: the caller's contract: an aligned, mapped word.
    unsafe { std::sync::atomic::AtomicUsize::from_ptr(addr as *mut usize) }
        .store(value, std::sync::atomic::Ordering::Relaxed);
    #[cfg(loom)]
    shadow::of(addr).swap(value, Ordering::AcqRel);
}

/// Loom's view of heap words: one loom atomic per word a model touched, made afresh for
/// each execution of the model.
#[cfg(loom)]
mod shadow {
    use std::collections::HashMap;

    loom::lazy_static! {
        // A loom mutex, so that a shadow made by one thread is ordered before another's
        // first use of it.
        static ref WORDS: super::Mutex<HashMap<usize, &'static super::AtomicUsize>> =
            super::Mutex::new(HashMap::new());
    }

    pub(super) fn of(addr: usize) -> &'static super::AtomicUsize {
        let mut words = WORDS.lock();
        // Leaked: a handful of words per execution, for the life of a test process.
        words
            .entry(addr)
            .or_insert_with(|| Box::leak(Box::new(super::AtomicUsize::new(0))))
    }
}
