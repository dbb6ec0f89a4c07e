//! Sleeping: a timer heap per runtime. A sleeping goroutine parks with its deadline in the
//! heap, and whoever finds the deadline passed first readies it:
//!
//! 1. every P, each time it looks for work (`find_runnable`), as Go's Ps run their timers
//!    since Go 1.14: an expired sleeper goes onto that P's list of woken sleepers, which it
//!    runs before its run queue and the global queue, so a flood of new goroutines does not
//!    keep it waiting; the check is one atomic load while no timer is due. A P also looks
//!    before it resumes a goroutine preempted on it. sysmon counts a due sleeper as a
//!    goroutine waiting, so a P running one goroutine for a whole time slice is preempted
//!    for it;
//! 2. a background thread, for when no P is looking (all idle, or all running long
//!    goroutines): it sleeps until the earliest deadline and readies onto the global
//!    queue, and wakes an idle P for it. While every P is busy it readies nothing, only
//!    looks again every [`RECHECK`]: a busy P takes the sleeper at its next switch, and a
//!    P takes every due sleeper before it goes idle. (Readied onto the global queue, where
//!    a spawning goroutine's overflow also goes, a sleeper waited behind 100,000 new
//!    goroutines: 400 ms late at the 99th percentile.)

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering};

use crate::sched::{current, wait_unlocking, yield_now, GPtr, Sched};

/// How often the timer thread looks again at a due sleeper while every P is busy.
const RECHECK: Duration = Duration::from_millis(1);

pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(Instant, u64, usize)>>>,
    /// The earliest deadline in the heap, as nanoseconds since `base` (`u64::MAX`: none).
    /// Written with the heap's lock held.
    next: AtomicU64,
    base: Instant,
    cv: Condvar,
    started: AtomicBool,
    stop: AtomicBool,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heap: Mutex::default(),
            next: AtomicU64::new(u64::MAX),
            base: Instant::now(),
            cv: Condvar::new(),
            started: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }
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

    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.base).as_nanos() as u64
    }

    /// Notes the heap's earliest deadline (with its lock held).
    fn set_next(&self, h: &BinaryHeap<Reverse<(Instant, u64, usize)>>) {
        let next = h
            .peek()
            .map_or(u64::MAX, |Reverse((when, _, _))| self.nanos(*when));
        self.next.store(next, Ordering::Release);
    }

    /// Takes the sleepers whose deadline has passed, if any (`find_runnable`: one atomic
    /// load when none is due).
    #[inline]
    pub(crate) fn take_expired(&self, out: &mut Vec<GPtr>) {
        let next = self.next.load(Ordering::Acquire);
        if next == u64::MAX {
            return;
        }
        let now = Instant::now();
        if self.nanos(now) < next {
            return;
        }
        let mut h = self.heap.lock();
        while let Some(Reverse((when, _, _))) = h.peek() {
            if *when > now {
                break;
            }
            let Reverse((_, _, g)) = h.pop().expect("peeked");
            out.push(GPtr(
                std::ptr::NonNull::new(g as *mut _).expect("non-null G"),
            ));
        }
        self.set_next(&h);
    }

    fn serve(&self, sched: &Sched) {
        let mut h = self.heap.lock();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            let now = Instant::now();
            let idle = sched.world.npidle() > 0;
            match h.peek() {
                Some(Reverse((when, _, _))) if *when <= now && idle => {
                    // Counted before the sleeper leaves the heap until it is ready (see
                    // `checkdead.rs`); the heap's lock orders the count before the pop.
                    sched.wakers.fetch_add(1, Ordering::SeqCst);
                    let Reverse((_, _, g)) = h.pop().expect("peeked");
                    self.set_next(&h);
                    drop(h);
                    sched.ready(GPtr(std::ptr::NonNull::new(g as *mut _).expect("non-null G")).0);
                    sched.wakers.fetch_sub(1, Ordering::SeqCst);
                    h = self.heap.lock();
                }
                Some(Reverse((when, _, _))) => {
                    let wait = match when.checked_duration_since(now) {
                        Some(d) if !d.is_zero() => d,
                        _ => RECHECK,
                    };
                    h = self.cv.wait_for(h, wait);
                }
                None => h = self.cv.wait_for(h, Duration::from_secs(1)),
            }
        }
    }

    /// Whether a sleeper's deadline has passed (one atomic load while none is near).
    #[inline]
    pub(crate) fn due(&self) -> bool {
        let next = self.next.load(Ordering::Acquire);
        next != u64::MAX && self.nanos(Instant::now()) >= next
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
    sched.timers.set_next(&h);
    sched.timers.cv.notify_one();
    wait_unlocking(|| drop(h));
}
