//! Run queues: each P's local queue (Go's `runq`: a bounded ring plus a `runnext` slot) and
//! the global queue that takes overflow and work from outside.
//!
//! The ring is single-producer, multi-consumer, lock-free: only the owning P pushes (at the
//! tail); the owner and thieves take from the head with a compare-and-swap, so a goroutine
//! is taken by exactly one of them. `runnext` holds the goroutine the owner should run next
//! (the one it just readied: a channel partner), which keeps a ping-pong pair on one P; a
//! thief may take it only when the ring is empty. When the ring is full, the owner moves
//! half of it, plus the new goroutine, to the global queue (Go's `runqputslow`).
//!
//! Generic over the item so that loom models can run it with their own tokens.

use std::collections::VecDeque;
use std::ptr::NonNull;

use minigo_alloc_core::sync::{AtomicPtr, AtomicU32, AtomicUsize, Mutex, Ordering};

/// Ring size: Go's 256; 4 in loom models, so that full and wrapped states are reachable.
#[cfg(not(loom))]
pub const RUNQ_SIZE: usize = 256;
/// Ring size in loom models.
#[cfg(loom)]
pub const RUNQ_SIZE: usize = 4;

/// A P's local run queue of `NonNull<T>`s.
pub struct LocalQueue<T> {
    head: AtomicU32,
    tail: AtomicU32,
    ring: Box<[AtomicPtr<T>]>,
    runnext: AtomicPtr<T>,
}

/// The global run queue.
pub struct GlobalQueue<T> {
    q: Mutex<VecDeque<NonNull<T>>>,
    len: AtomicUsize,
}

// SAFETY: the queues hold pointers to items whose ownership they transfer between threads
// (each item is taken exactly once); the items themselves are Send.
unsafe impl<T: Send> Send for LocalQueue<T> {}
// SAFETY: as above; all shared state is atomic.
unsafe impl<T: Send> Sync for LocalQueue<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for GlobalQueue<T> {}
// SAFETY: as above; the deque is behind a mutex.
unsafe impl<T: Send> Sync for GlobalQueue<T> {}

impl<T> Default for GlobalQueue<T> {
    fn default() -> Self {
        GlobalQueue {
            q: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
        }
    }
}

impl<T> GlobalQueue<T> {
    /// Appends `items`.
    pub fn push(&self, items: impl IntoIterator<Item = NonNull<T>>) {
        let mut q = self.q.lock();
        q.extend(items);
        self.len.store(q.len(), Ordering::Release);
    }

    /// Takes the oldest item.
    pub fn pop(&self) -> Option<NonNull<T>> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = self.q.lock();
        let g = q.pop_front();
        self.len.store(q.len(), Ordering::Release);
        g
    }

    /// Items queued (a hint: it may change at once).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when nothing is queued (a hint).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for LocalQueue<T> {
    fn default() -> Self {
        LocalQueue {
            head: AtomicU32::new(0),
            tail: AtomicU32::new(0),
            ring: (0..RUNQ_SIZE)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            runnext: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

impl<T> LocalQueue<T> {
    /// Queues `g` (owner only). With `next`, `g` goes to `runnext` and whatever was there
    /// is queued at the tail. A full ring sends half of itself to `global`.
    pub fn push(&self, g: NonNull<T>, next: bool, global: &GlobalQueue<T>) {
        let mut g = g;
        if next {
            let old = self.runnext.swap(g.as_ptr(), Ordering::AcqRel);
            match NonNull::new(old) {
                Some(o) => g = o,
                None => return,
            }
        }
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Relaxed);
            if (t.wrapping_sub(h) as usize) < RUNQ_SIZE {
                self.ring[t as usize % RUNQ_SIZE].store(g.as_ptr(), Ordering::Relaxed);
                self.tail.store(t.wrapping_add(1), Ordering::Release);
                return;
            }
            if self.push_slow(g, h, t, global) {
                return;
            }
        }
    }

    /// Moves half the ring and `g` to the global queue; false if a thief moved the head
    /// meanwhile (then there is room again).
    fn push_slow(&self, g: NonNull<T>, h: u32, t: u32, global: &GlobalQueue<T>) -> bool {
        let n = (t.wrapping_sub(h) / 2) as usize;
        debug_assert_eq!(n, RUNQ_SIZE / 2);
        let batch: Vec<NonNull<T>> = (0..n)
            .map(|i| {
                let p = self.ring[(h as usize + i) % RUNQ_SIZE].load(Ordering::Relaxed);
                NonNull::new(p).expect("queued items are non-null")
            })
            .collect();
        if self
            .head
            .compare_exchange(
                h,
                h.wrapping_add(n as u32),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        global.push(batch.into_iter().chain(std::iter::once(g)));
        true
    }

    /// Takes the next item (owner only): `runnext` first, then the ring's head.
    pub fn pop(&self) -> Option<NonNull<T>> {
        self.pop_inheriting().map(|(g, _)| g)
    }

    /// [`LocalQueue::pop`], and whether the item came from `runnext`: a goroutine readied
    /// there runs in the rest of its readier's time slice (Go's `inheritTime`).
    pub fn pop_inheriting(&self) -> Option<(NonNull<T>, bool)> {
        let next = self.runnext.load(Ordering::Relaxed);
        if !next.is_null()
            && self
                .runnext
                .compare_exchange(
                    next,
                    std::ptr::null_mut(),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return NonNull::new(next).map(|g| (g, true));
        }
        self.take_head().map(|g| (g, false))
    }

    fn take_head(&self) -> Option<NonNull<T>> {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            if t == h {
                return None;
            }
            let g = self.ring[h as usize % RUNQ_SIZE].load(Ordering::Relaxed);
            // The seeded bug: claim the head with a plain store, racing thieves.
            #[cfg(loom_mutant = "take_head_racy")]
            {
                self.head.store(h.wrapping_add(1), Ordering::Release);
                return NonNull::new(g);
            }
            #[cfg(not(loom_mutant = "take_head_racy"))]
            if self
                .head
                .compare_exchange(h, h.wrapping_add(1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return NonNull::new(g);
            }
        }
    }

    /// Go's `runqsteal`: moves half of this ring into `thief`'s (which must be empty: a P
    /// steals only when it has nothing) and returns one of them to run now; with an empty
    /// ring and `steal_next`, takes `runnext`.
    pub fn steal_into(&self, thief: &LocalQueue<T>, steal_next: bool) -> Option<NonNull<T>> {
        loop {
            let h = self.head.load(Ordering::Acquire);
            let t = self.tail.load(Ordering::Acquire);
            let n = t.wrapping_sub(h);
            let n = n - n / 2;
            if n == 0 {
                return if steal_next {
                    self.steal_runnext()
                } else {
                    None
                };
            }
            if n as usize > RUNQ_SIZE / 2 + 1 {
                continue; // read head and tail at different times; try again
            }
            // Copy first, then claim with one CAS: if the owner or another thief took any
            // of them meanwhile, the CAS fails and nothing was taken.
            let tt = thief.tail.load(Ordering::Relaxed);
            for i in 0..n {
                let g = self.ring[h.wrapping_add(i) as usize % RUNQ_SIZE].load(Ordering::Relaxed);
                thief.ring[tt.wrapping_add(i) as usize % RUNQ_SIZE].store(g, Ordering::Relaxed);
            }
            if self
                .head
                .compare_exchange(h, h.wrapping_add(n), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                let last =
                    thief.ring[tt.wrapping_add(n - 1) as usize % RUNQ_SIZE].load(Ordering::Relaxed);
                if n > 1 {
                    thief.tail.store(tt.wrapping_add(n - 1), Ordering::Release);
                }
                return NonNull::new(last);
            }
        }
    }

    fn steal_runnext(&self) -> Option<NonNull<T>> {
        let next = self.runnext.load(Ordering::Acquire);
        if next.is_null() {
            return None;
        }
        self.runnext
            .compare_exchange(
                next,
                std::ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .ok()
            .and_then(NonNull::new)
    }

    /// Whether `runnext` holds a goroutine (a hint).
    pub fn has_next(&self) -> bool {
        !self.runnext.load(Ordering::Acquire).is_null()
    }

    /// Items queued, `runnext` included (a hint).
    pub fn len(&self) -> usize {
        let h = self.head.load(Ordering::Acquire);
        let t = self.tail.load(Ordering::Acquire);
        t.wrapping_sub(h) as usize + (!self.runnext.load(Ordering::Acquire).is_null()) as usize
    }

    /// True when nothing is queued (a hint).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn item(n: usize) -> NonNull<u64> {
        NonNull::new((n * 8) as *mut u64).unwrap()
    }

    #[test]
    fn fifo_with_runnext_first_and_overflow_to_global() {
        let q = LocalQueue::default();
        let global = GlobalQueue::default();
        for i in 1..=RUNQ_SIZE + 1 {
            q.push(item(i), false, &global);
        }
        assert_eq!(
            global.len(),
            RUNQ_SIZE / 2 + 1,
            "half the ring and the new one"
        );
        q.push(item(9999), true, &global);
        assert_eq!(q.pop(), Some(item(9999)), "runnext first");
        let mut got = vec![];
        while let Some(g) = q.pop() {
            got.push(g.as_ptr() as usize / 8);
        }
        while let Some(g) = global.pop() {
            got.push(g.as_ptr() as usize / 8);
        }
        got.sort();
        assert_eq!(
            got,
            (1..=RUNQ_SIZE + 1).collect::<Vec<_>>(),
            "every item exactly once"
        );
    }

    #[test]
    fn a_thief_takes_half_the_ring() {
        let (q, thief) = (LocalQueue::default(), LocalQueue::default());
        let global = GlobalQueue::default();
        for i in 1..=10 {
            q.push(item(i), false, &global);
        }
        assert_eq!(
            q.steal_into(&thief, true),
            Some(item(5)),
            "the fifth of the five taken runs now"
        );
        assert_eq!((q.len(), thief.len()), (5, 4));
        let mut rest = vec![];
        while let Some(g) = thief.pop() {
            rest.push(g.as_ptr() as usize / 8);
        }
        assert_eq!(rest, vec![1, 2, 3, 4]);
    }

    #[test]
    fn thieves_take_runnext_only_from_an_empty_ring() {
        let q = LocalQueue::default();
        let global = GlobalQueue::default();
        q.push(item(1), false, &global);
        q.push(item(2), true, &global);
        let thief = LocalQueue::default();
        assert_eq!(q.steal_into(&thief, true), Some(item(1)));
        assert_eq!(
            q.steal_into(&thief, false),
            None,
            "runnext is left to its owner"
        );
        assert_eq!(q.steal_into(&thief, true), Some(item(2)));
        assert_eq!(q.steal_into(&thief, true), None);
    }
}
