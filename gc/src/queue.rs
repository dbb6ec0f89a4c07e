//! The shared grey queue of a cycle: batches of grey objects (Go's full `workbuf`s on
//! `work.full`), and the empty batches markers give back for reuse (`work.empty`).
//!
//! Work moves between markers a batch at a time — half a busy marker's stack when another
//! waits, a whole stack when a marker leaves — so one short lock per batch is all it
//! costs, and a batch's memory is reused rather than freed. (Crossbeam's injector moved
//! objects one at a time and freed a block every 63 of them in the thread that took them:
//! freeing another thread's memory took that thread's malloc arena lock, and a mutator's
//! assist slept on it for tens of milliseconds when the arena's owner was descheduled.)
//! The lock is the sync shim's, so the loom models run this file as it is.

use minigo_alloc_core::sync::{AtomicUsize, Mutex, Ordering};

/// Grey objects shared by the markers of one cycle, in batches.
pub(crate) struct BatchQueue<T> {
    full: Mutex<Vec<Vec<T>>>,
    /// Batches in `full`, readable without the lock.
    len: AtomicUsize,
    empty: Mutex<Vec<Vec<T>>>,
}

/// Empty batches kept for reuse at most (each keeps its capacity).
const KEEP_EMPTY: usize = 64;

impl<T> BatchQueue<T> {
    pub(crate) fn new() -> BatchQueue<T> {
        BatchQueue {
            full: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            empty: Mutex::new(Vec::new()),
        }
    }

    /// True when no batch is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::SeqCst) == 0
    }

    /// Queues a batch (ignored if empty).
    pub(crate) fn push(&self, batch: Vec<T>) {
        if batch.is_empty() {
            self.recycle(batch);
            return;
        }
        let mut full = self.full.lock();
        full.push(batch);
        self.len.store(full.len(), Ordering::SeqCst);
    }

    /// Takes a queued batch, if any.
    pub(crate) fn pop(&self) -> Option<Vec<T>> {
        if self.is_empty() {
            return None;
        }
        let mut full = self.full.lock();
        let b = full.pop();
        self.len.store(full.len(), Ordering::SeqCst);
        b
    }

    /// An empty batch to fill (a reused one when there is one).
    pub(crate) fn take_empty(&self) -> Vec<T> {
        self.empty.lock().pop().unwrap_or_default()
    }

    /// Gives back a batch that has been emptied.
    pub(crate) fn recycle(&self, mut batch: Vec<T>) {
        if batch.capacity() == 0 {
            return;
        }
        batch.clear();
        let mut empty = self.empty.lock();
        if empty.len() < KEEP_EMPTY {
            empty.push(batch);
        }
    }
}
