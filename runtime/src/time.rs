//! Sleeping: a timer heap per runtime, served by one background thread (the part of Go's
//! `sysmon` and timer code minigo needs). A sleeping goroutine parks; the timer thread
//! readies it on the global queue when its deadline passes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering};

use crate::sched::{current, wait_unlocking, yield_now, GPtr, Sched};

#[derive(Default)]
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(Instant, u64, usize)>>>,
    cv: Condvar,
    started: AtomicBool,
    stop: AtomicBool,
}

impl Timers {
    fn start(&self, sched: Arc<Sched>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("minigo-timers".into())
            .spawn(move || sched.timers.serve(&sched));
        assert!(spawned.is_ok(), "the OS refused the timer thread");
    }

    fn serve(&self, sched: &Sched) {
        let mut h = self.heap.lock();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            match h.peek() {
                Some(Reverse((when, _, _))) if *when <= now => {
                    let Reverse((_, _, g)) = h.pop().expect("peeked");
                    drop(h);
                    sched.ready(GPtr(std::ptr::NonNull::new(g as *mut _).expect("non-null G")).0);
                    h = self.heap.lock();
                }
                Some(Reverse((when, _, _))) => {
                    let wait = *when - now;
                    h = self.cv.wait_for(h, wait);
                }
                None => h = self.cv.wait_for(h, Duration::from_secs(1)),
            }
        }
    }

    /// Whether a sleeper is waiting for its deadline.
    pub(crate) fn pending(&self) -> bool {
        !self.heap.lock().is_empty()
    }

    pub(crate) fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let _h = self.heap.lock();
        self.cv.notify_all();
    }
}

/// Parks the running goroutine for at least `d` (Go's `time.Sleep`). Zero yields.
pub fn sleep(d: Duration) {
    if d.is_zero() {
        yield_now();
        return;
    }
    let cur = current();
    let sched = cur.sched();
    sched.timers.start(sched.arc());
    let when = Instant::now() + d;
    let mut h = sched.timers.heap.lock();
    h.push(Reverse((when, cur.g().id(), cur.g.as_ptr() as usize)));
    sched.timers.cv.notify_one();
    wait_unlocking(|| drop(h));
}
