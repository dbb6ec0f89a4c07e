//! `select` over channel cases (Go's `selectgo`): see the channel module's comment.
//!
//! The select locks every case's channel at once (raw, in address order, as Go's
//! `sellock`), which loom's mutex cannot express; it is left out of loom builds.

use minigo_alloc_core::sync::{AtomicU64, AtomicUsize, Ordering};

use super::{me, Chan, Inner, State, TryRecvError, TrySendError, Waiter, Woken, NOT_FIRED};
use crate::sched::{current, safepoint, wait_unlocking, GPtr};

impl<T: Send> Chan<T> {
    /// A receive case for [`select`].
    pub fn recv_case(&self) -> RecvCase<'_, T> {
        RecvCase {
            ch: self,
            slot: None,
            woken: Woken::Pending,
            value: None,
        }
    }

    /// A send case for [`select`].
    pub fn send_case(&self, v: T) -> SendCase<'_, T> {
        SendCase {
            ch: self,
            slot: Some(v),
            woken: Woken::Pending,
        }
    }

    /// The channel's state, for a select holding its lock raw.
    ///
    /// # Safety
    /// The caller holds the lock (`lock_raw`) and no other reference to the state.
    #[allow(clippy::mut_from_ref)]
    unsafe fn locked(&self) -> &mut State<T> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.inner.state.data_ptr() }
    }
}

/// One case of a [`select`]: a [`RecvCase`] or a [`SendCase`]. The select holds every case's
/// channel lock (taken raw, in address order) while it calls the `*_locked` methods.
pub trait SelectCase {
    /// The channel's identity (lock order).
    fn channel(&self) -> usize;
    /// Locks the channel.
    fn lock(&self);
    /// Unlocks the channel.
    ///
    /// # Safety
    /// Locked by `lock` on this thread.
    unsafe fn unlock(&self);
    /// Performs the operation if it can proceed now; `Some` with a goroutine to ready (after
    /// unlocking) if it did.
    ///
    /// # Safety
    /// The channel is locked by this select.
    unsafe fn try_locked(&mut self) -> Option<Option<GPtr>>;
    /// Queues a waiter for the select whose word is `sel`.
    ///
    /// # Safety
    /// As above; `sel` outlives the waiter (it is removed before `select` returns).
    unsafe fn register_locked(&mut self, g: GPtr, sel: *const AtomicUsize, case: usize);
    /// Removes this select's waiters.
    ///
    /// # Safety
    /// As above.
    unsafe fn unregister_locked(&mut self, sel: *const AtomicUsize);
    /// After a waker fired this case: settles the result (a send on a closed channel panics).
    fn complete(&mut self);
}

/// A receive case: after [`select`] picks it, `value` holds `Some(v)`, or `None` if the
/// channel was closed.
pub struct RecvCase<'a, T> {
    ch: &'a Chan<T>,
    slot: Option<T>,
    woken: Woken,
    /// The result, once this case fired.
    pub value: Option<Option<T>>,
}

/// A send case.
pub struct SendCase<'a, T> {
    ch: &'a Chan<T>,
    slot: Option<T>,
    woken: Woken,
}

impl<T: Send> SelectCase for RecvCase<'_, T> {
    fn channel(&self) -> usize {
        &*self.ch.inner as *const Inner<T> as usize
    }

    fn lock(&self) {
        self.ch.inner.state.lock_raw();
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.ch.inner.state.unlock_raw() };
    }

    unsafe fn try_locked(&mut self) -> Option<Option<GPtr>> {
        // SAFETY: the caller holds the lock.
        match self.ch.recv_now(unsafe { self.ch.locked() }) {
            Ok((v, woke)) => {
                self.value = Some(Some(v));
                Some(woke)
            }
            Err(TryRecvError::Closed) => {
                self.value = Some(None);
                Some(None)
            }
            Err(TryRecvError::Empty) => None,
        }
    }

    unsafe fn register_locked(&mut self, g: GPtr, sel: *const AtomicUsize, case: usize) {
        let w = Waiter {
            g,
            slot: &mut self.slot,
            woken: &mut self.woken,
            sel,
            case,
        };
        // SAFETY: the caller holds the lock.
        unsafe { self.ch.locked() }.recvq.push_back(w);
    }

    unsafe fn unregister_locked(&mut self, sel: *const AtomicUsize) {
        // SAFETY: the caller holds the lock.
        unsafe { self.ch.locked() }.recvq.retain(|w| w.sel != sel);
    }

    fn complete(&mut self) {
        if self.value.is_none() {
            self.value = Some(match self.woken {
                Woken::Done => self.slot.take(),
                _ => None,
            });
        }
    }
}

impl<T: Send> SelectCase for SendCase<'_, T> {
    fn channel(&self) -> usize {
        &*self.ch.inner as *const Inner<T> as usize
    }

    fn lock(&self) {
        self.ch.inner.state.lock_raw();
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.ch.inner.state.unlock_raw() };
    }

    unsafe fn try_locked(&mut self) -> Option<Option<GPtr>> {
        let v = self.slot.take().expect("a send case sends once");
        // SAFETY: the caller holds the lock.
        match self.ch.send_now(unsafe { self.ch.locked() }, v) {
            Ok(woke) => Some(woke),
            Err(TrySendError::Closed(v)) | Err(TrySendError::Full(v)) => {
                self.slot = Some(v);
                // SAFETY: as above.
                if unsafe { self.ch.locked() }.closed {
                    self.woken = Woken::Closed;
                    return Some(None);
                }
                None
            }
        }
    }

    unsafe fn register_locked(&mut self, g: GPtr, sel: *const AtomicUsize, case: usize) {
        let w = Waiter {
            g,
            slot: &mut self.slot,
            woken: &mut self.woken,
            sel,
            case,
        };
        // SAFETY: the caller holds the lock.
        unsafe { self.ch.locked() }.sendq.push_back(w);
    }

    unsafe fn unregister_locked(&mut self, sel: *const AtomicUsize) {
        // SAFETY: the caller holds the lock.
        unsafe { self.ch.locked() }.sendq.retain(|w| w.sel != sel);
    }

    fn complete(&mut self) {
        if self.woken == Woken::Closed {
            panic!("send on closed channel");
        }
    }
}

static SELECT_SEED: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);

/// The order to poll `n` cases in: a uniform random permutation (Go's `pollorder`, a
/// Fisher-Yates shuffle), so that each ready case is equally likely to be taken. (A random
/// start alone is not: with cases 0 and 1 of 4 ready, starts 2 and 3 also land on 0.)
fn poll_order(n: usize) -> Vec<usize> {
    let mut x = SELECT_SEED.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    let mut next = || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Multiply-shift: uniform in 0..=i without a division.
        let j = (((next() >> 32) * (i as u64 + 1)) >> 32) as usize;
        order.swap(i, j);
    }
    order
}

/// Go's `select`: waits until one of the cases can proceed, performs it, and returns its
/// index. When several are ready, each is equally likely to be chosen.
pub fn select(cases: &mut [&mut dyn SelectCase]) -> usize {
    select_inner(cases, false).expect("a blocking select always fires")
}

/// `select` with a `default`: `None` when no case is ready right now.
pub fn try_select(cases: &mut [&mut dyn SelectCase]) -> Option<usize> {
    select_inner(cases, true)
}

fn select_inner(cases: &mut [&mut dyn SelectCase], default: bool) -> Option<usize> {
    safepoint();
    let n = cases.len();
    assert!(n > 0 || default, "select with no cases blocks forever");
    // Lock every channel once, in address order (Go's `sellock`).
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| cases[i].channel());
    order.dedup_by_key(|i| cases[*i].channel());
    let lock_all = |cases: &mut [&mut dyn SelectCase]| order.iter().for_each(|&i| cases[i].lock());
    let unlock_all = |cases: &mut [&mut dyn SelectCase]| {
        for &i in order.iter().rev() {
            // SAFETY: locked by `lock_all` just before, on this thread.
            unsafe { cases[i].unlock() };
        }
    };
    lock_all(cases);
    for i in poll_order(n) {
        // SAFETY: every case's channel is locked.
        if let Some(woke) = unsafe { cases[i].try_locked() } {
            unlock_all(cases);
            cases[i].complete();
            if let Some(g) = woke {
                current().sched().ready(g.0);
            }
            return Some(i);
        }
    }
    if default || n == 0 {
        unlock_all(cases);
        return None;
    }
    let sel = AtomicUsize::new(NOT_FIRED);
    let g = me();
    for (i, c) in cases.iter_mut().enumerate() {
        // SAFETY: locked; `sel` lives until the waiters are removed below.
        unsafe { c.register_locked(g, &sel, i) };
    }
    wait_unlocking(|| unlock_all(cases));
    lock_all(cases);
    for c in cases.iter_mut() {
        // SAFETY: locked.
        unsafe { c.unregister_locked(&sel) };
    }
    unlock_all(cases);
    let fired = sel.load(Ordering::Acquire);
    cases[fired].complete();
    Some(fired)
}
