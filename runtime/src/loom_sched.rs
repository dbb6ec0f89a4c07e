//! The scheduler as loom models see it: each modelled goroutine is a loom thread.
//!
//! Under `cfg(loom)` this module stands in for `sched.rs`, providing what the channel code
//! needs from a scheduler (the running goroutine, `wait_unlocking`, `ready`, the channel
//! registry) and nothing else. The parts that decide correctness are the production ones:
//! the channel code itself and the status-word handshake (`status.rs`). Only the
//! coroutine switch is replaced: where an M would suspend the goroutine and later resume it
//! from a run queue, the loom thread parks until its waker unparks it. Run queues and the
//! world stop have their own models, over `runq.rs` and `world.rs`.

use std::cell::RefCell;

use minigo_alloc_core::sync::{Arc, Ordering};

use crate::chan::Registry;
use crate::status::{GStatus, RUNNABLE, RUNNING};

/// A modelled goroutine: its status word and the loom thread that runs it.
pub(crate) struct G {
    pub(crate) status: GStatus,
    thread: loom::thread::Thread,
}

pub(crate) type GRef = &'static G;

/// A goroutine handle as wait queues hold it.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct GPtr(pub(crate) GRef);

/// A modelled runtime: what channels are registered with.
pub struct Sched {
    pub(crate) chans: Registry,
}

loom::thread_local! {
    static CUR: RefCell<Option<(GRef, Arc<Sched>)>> = RefCell::new(None);
}

impl Sched {
    /// A runtime for one model execution.
    pub fn new() -> Arc<Sched> {
        Arc::new(Sched {
            chans: Registry::default(),
        })
    }

    /// Runs `f` on this loom thread as a goroutine of `sched` (channels made or used in
    /// `f` park and wake this thread as they would a goroutine).
    pub fn enter<R>(sched: &Arc<Sched>, f: impl FnOnce() -> R) -> R {
        let g: GRef = Box::leak(Box::new(G {
            status: GStatus::new(RUNNING),
            thread: loom::thread::current(),
        }));
        CUR.with(|c| *c.borrow_mut() = Some((g, sched.clone())));
        let r = f();
        CUR.with(|c| *c.borrow_mut() = None);
        r
    }

    /// As `sched.rs`'s `ready`: a waker that finds the goroutine fully parked requeues it
    /// (here: unparks its thread); one that comes early leaves that to `wait_unlocking`.
    pub(crate) fn ready(&self, g: GRef) {
        if g.status.wake() {
            g.thread.unpark();
        }
    }
}

fn current_g() -> GRef {
    CUR.with(|c| c.borrow().as_ref().expect("not inside Sched::enter").0)
}

pub(crate) fn current_sched() -> Arc<Sched> {
    CUR.with(|c| {
        c.borrow()
            .as_ref()
            .expect("not inside Sched::enter")
            .1
            .clone()
    })
}

pub(crate) fn current_gptr() -> GPtr {
    GPtr(current_g())
}

/// Safepoints do nothing here: no world stops in the channel model.
pub(crate) fn safepoint() {}

/// As `sched.rs`'s `wait_unlocking`, with the M's side (`execute` on `Park::Wait`) done by
/// the waiting thread itself.
pub(crate) fn wait_unlocking(unlock: impl FnOnce()) {
    let g = current_g();
    g.status.prepare_wait(unlock);
    if !g.status.finish_parking() {
        while g.status.load(Ordering::Acquire) != RUNNABLE {
            loom::thread::park();
        }
    }
    g.status.store(RUNNING, Ordering::Release);
}

/// No collector marks in the channel model: moving a value needs no shading.
pub(crate) fn shade_value<T>(_: &Sched, _: &T) {}
