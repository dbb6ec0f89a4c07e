//! `WaitGroup` (Go's `sync.WaitGroup`): waits for a count of goroutines to finish.

use minigo_alloc_core::sync::{Arc, Mutex};

use crate::sched::{current, wait_unlocking, GPtr};

/// A counter that goroutines wait on until it reaches zero. Clones share the counter.
#[derive(Clone, Default)]
pub struct WaitGroup {
    inner: Arc<Mutex<(i64, Vec<GPtr>)>>,
}

impl WaitGroup {
    /// A wait group at zero.
    pub fn new() -> WaitGroup {
        WaitGroup::default()
    }

    /// Adds `n` (which may be negative) to the counter; at zero, waiters wake. Panics if
    /// the counter goes negative, as Go's does.
    pub fn add(&self, n: i64) {
        let mut st = self.inner.lock();
        st.0 += n;
        assert!(st.0 >= 0, "sync: negative WaitGroup counter");
        if st.0 == 0 && !st.1.is_empty() {
            let waiters = std::mem::take(&mut st.1);
            drop(st);
            let sched = current().sched();
            for g in waiters {
                sched.ready(g.0);
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
        let mut st = self.inner.lock();
        if st.0 == 0 {
            return;
        }
        st.1.push(GPtr(current().g));
        wait_unlocking(|| drop(st));
    }
}
