//! Seqlocks for array elements wider than a word (crossbeam's `AtomicCell` fallback).
//!
//! A `GcSlice` is `Sync`: goroutines on different threads may read and write one element
//! at once. A word is read and written whole (a relaxed atomic), but an element of two or
//! more words read word by word while another goroutine writes it may pair words of two
//! writes, and a `T` whose validity spans words (an enum's tag in one word, a `bool` or a
//! `Gc` in another) would then hold an invalid value: undefined behaviour from safe code.
//! Go has the same race and calls the program wrong; a safe Rust API must not.
//!
//! 1. Elements hash by address to one of [`STRIPES`] locks (as crossbeam's), so an array
//!    needs no room of its own for them and one-word elements pay nothing.
//! 2. A write takes its stripe's lock (the state becomes `LOCKED`), writes the words, and
//!    leaves the state two higher than it found it.
//! 3. A read is optimistic: it notes the state, reads the words, and keeps them only if
//!    the state is still what it noted and was not `LOCKED`; otherwise it reads again.
//!    The words are relaxed atomics, so a read that overlaps a write is a discarded read,
//!    not a data race.
//!
//! Ordering (Boehm, "Can seqlocks get along with programming language memory models?"):
//! a reader that reads a word a writer stored after its release fence synchronizes, at its
//! acquire fence, with that fence, and so finds the state at `LOCKED` or past it.
//!
//! Loom model 17 (`loom-tests/tests/seqlock.rs`) runs this code: a writer and a reader,
//! two writers.

use minigo_alloc_core::sync::{fence, AtomicUsize, Backoff, Ordering};

/// The state of a stripe while a writer holds it; otherwise an even stamp.
const LOCKED: usize = 1;

/// One stripe's lock.
#[doc(hidden)]
#[repr(align(64))]
pub struct SeqLock {
    state: AtomicUsize,
}

impl Default for SeqLock {
    fn default() -> Self {
        SeqLock {
            state: AtomicUsize::new(0),
        }
    }
}

impl SeqLock {
    /// Runs `f` until one run saw no write (step 3) and returns what that run returned.
    /// `f` must only read, with relaxed atomic loads.
    #[inline]
    pub fn read<R>(&self, mut f: impl FnMut() -> R) -> R {
        let mut backoff = Backoff::new();
        loop {
            let stamp = self.state.load(Ordering::Acquire);
            if stamp != LOCKED {
                let r = f();
                fence(Ordering::Acquire);
                // The seeded bug of loom model 17: the words kept without checking that no
                // write overlapped them.
                #[cfg(loom_mutant = "seqlock_no_validate")]
                return r;
                #[cfg(not(loom_mutant = "seqlock_no_validate"))]
                if self.state.load(Ordering::Relaxed) == stamp {
                    return r;
                }
            }
            backoff.snooze();
        }
    }

    /// Runs `f`, which writes, holding the lock (step 2). A panic in `f` releases it.
    #[inline]
    pub fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut backoff = Backoff::new();
        // The seeded bug of loom model 17's second half: a writer that goes ahead without
        // the lock.
        #[cfg(loom_mutant = "seqlock_write_unlocked")]
        let prev = self.state.swap(LOCKED, Ordering::Acquire) & !LOCKED;
        // Test, then compare-and-swap: a waiting writer only reads the holder's line.
        #[cfg(not(loom_mutant = "seqlock_write_unlocked"))]
        let prev = loop {
            let stamp = self.state.load(Ordering::Relaxed);
            if stamp != LOCKED
                && self
                    .state
                    .compare_exchange(stamp, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break stamp;
            }
            backoff.snooze();
        };
        let _held = Held { lock: self, prev };
        fence(Ordering::Release);
        f()
    }
}

/// Releases a stripe, with the next stamp, however the write ends.
struct Held<'a> {
    lock: &'a SeqLock,
    prev: usize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.lock
            .state
            .store(self.prev.wrapping_add(2), Ordering::Release);
    }
}

/// Stripes in the table (crossbeam's count: a prime, so strided arrays spread).
#[cfg(not(loom))]
pub(crate) const STRIPES: usize = 67;

/// The lock of the element at `addr`.
#[cfg(not(loom))]
pub(crate) fn lock_for(addr: usize) -> &'static SeqLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const UNLOCKED: SeqLock = SeqLock {
        state: AtomicUsize::new(0),
    };
    static LOCKS: [SeqLock; STRIPES] = [UNLOCKED; STRIPES];
    &LOCKS[(addr >> 3) % STRIPES]
}
