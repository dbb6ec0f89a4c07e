//! `WaitGroup` (Go's `sync.WaitGroup`): waits for a count of goroutines to finish.
//!
//! The counter is an atomic, so `add` and `done` take no lock unless the count reaches
//! zero with goroutines waiting. A waiter re-checks the count under the waiters' lock before
//! it parks, and the goroutine that brings the count to zero takes that lock to wake them,
//! so no wakeup is lost between the two.

use minigo_alloc_core::sync::{Arc, AtomicI64, Mutex, Ordering};

use crate::sched::{current, wait_unlocking, GPtr};

#[derive(Default)]
struct Inner {
    count: AtomicI64,
    waiters: Mutex<Vec<GPtr>>,
}

/// A counter that goroutines wait on until it reaches zero. Clones share the counter.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use minigo_runtime::{go, Runtime, WaitGroup};
/// Runtime::new().unwrap().run(|_| {
///     let (wg, total) = (WaitGroup::new(), Arc::new(AtomicU64::new(0)));
///     for i in 1..=10 {
///         wg.add(1);
///         let (wg, total) = (wg.clone(), total.clone());
///         go(move || {
///             total.fetch_add(i, Ordering::Relaxed);
///             wg.done();
///         });
///     }
///     wg.wait();
///     assert_eq!(total.load(Ordering::Relaxed), 55);
/// }).unwrap();
/// ```
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Inner>,
}

impl WaitGroup {
    /// A wait group at zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` (which may be negative) to the counter; at zero, waiters wake. Panics if
    /// the counter goes negative, as Go's does.
    pub fn add(&self, n: i64) {
        let v = self.inner.count.fetch_add(n, Ordering::AcqRel) + n;
        assert!(v >= 0, "sync: negative WaitGroup counter");
        if v == 0 {
            let waiters = std::mem::take(&mut *self.inner.waiters.lock());
            if !waiters.is_empty() {
                let sched = current().sched();
                for g in waiters {
                    sched.ready(g.0);
                }
            }
        }
    }

    /// `add(-1)`.
    pub fn done(&self) {
        self.add(-1);
    }

    /// Waits until the counter is zero.
    pub fn wait(&self) {
        crate::sched::safepoint();
        if self.inner.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut w = self.inner.waiters.lock();
        if self.inner.count.load(Ordering::Acquire) == 0 {
            return;
        }
        w.push(GPtr(current().g));
        wait_unlocking(|| drop(w));
    }
}
