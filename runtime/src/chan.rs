//! Channels (Go's `chan.go`): a buffer, and queues of goroutines waiting to send or receive.
//!
//! A send with a receiver waiting hands the value straight to it (into a slot on the
//! receiver's stack) and readies it; otherwise it goes into the buffer if there is room,
//! else the sender queues itself with its value and parks. Receiving mirrors this, taking
//! from a waiting sender first (for a full buffer: the buffer's head, and the sender's value
//! moves into the buffer). `close` wakes every waiter: receivers get "closed", senders
//! panic, as in Go.
//!
//! `select` polls its cases in a random order; if none is ready it registers a waiter on
//! every case's channel, all sharing one word: a waker claims the select by a
//! compare-and-swap of that word to its case, so exactly one case fires, and the others'
//! waiters are removed before `select` returns.
//!
//! Values in a channel's buffer stay alive: every channel of a runtime is in its registry,
//! and the collector scans buffers conservatively (values in flight sit on the stacks of
//! parked goroutines, which are scanned anyway).

use std::collections::{HashMap, VecDeque};
use std::ptr::null;

use minigo_alloc_core::sync::{Arc, AtomicUsize, Mutex, Ordering};
use minigo_gc::Tracer;

use crate::sched::{current_gptr, current_sched, safepoint, wait_unlocking, GPtr, Sched};

/// A channel buffer the collector scans.
pub(crate) trait ScanBuffer: Send + Sync {
    fn scan(&self, t: &mut Tracer<'_>);
}

struct RawScan(*const dyn ScanBuffer);
// SAFETY: the pointee is Send + Sync, and registered only while it lives (see `Inner`).
unsafe impl Send for RawScan {}

/// The channels of one runtime.
#[derive(Default)]
pub(crate) struct Registry {
    chans: Mutex<HashMap<usize, RawScan>>,
}

impl Registry {
    /// Reports every buffered value: a cycle's root job (beside running goroutines, each
    /// channel's lock holding its buffer still), or all roots at once with the world
    /// stopped.
    pub(crate) fn trace(&self, t: &mut Tracer<'_>) {
        for c in self.chans.lock().values() {
            // SAFETY: a channel removes itself before it is freed, and that removal waits
            // for this lock.
            unsafe { (*c.0).scan(t) };
        }
    }
}

/// What woke a waiting goroutine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Woken {
    Pending,
    Done,
    Closed,
}

const NOT_FIRED: usize = usize::MAX;

/// A goroutine waiting on a channel: pointers into its (parked) stack.
struct Waiter<T> {
    g: GPtr,
    slot: *mut Option<T>,
    woken: *mut Woken,
    /// The select this waiter belongs to (its shared word), or null.
    sel: *const AtomicUsize,
    case: usize,
}

impl<T> Waiter<T> {
    /// True if this waiter may be woken by us (always, unless its select already fired).
    ///
    /// # Safety
    /// Called under the channel lock while the waiter is queued (its goroutine is parked
    /// or parking, and removes its waiters under this lock before leaving its frame).
    unsafe fn claim(&self) -> bool {
        // SAFETY: see above.
        self.sel.is_null()
            || unsafe { &*self.sel }
                .compare_exchange(NOT_FIRED, self.case, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }
}

struct State<T> {
    buf: VecDeque<T>,
    closed: bool,
    recvq: VecDeque<Waiter<T>>,
    sendq: VecDeque<Waiter<T>>,
}

struct Inner<T> {
    state: Mutex<State<T>>,
    cap: usize,
    sched: Arc<Sched>,
}

// SAFETY: the waiter pointers are touched only under the lock, by the protocol above; the
// values are Send.
unsafe impl<T: Send> Send for Inner<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T: Send> ScanBuffer for Inner<T> {
    fn scan(&self, t: &mut Tracer<'_>) {
        let st = self.state.lock();
        let (a, b) = st.buf.as_slices();
        for part in [a, b] {
            let start = part.as_ptr() as usize;
            // SAFETY: the buffer's initialised elements, read under the channel's lock (a
            // marker scans this beside running goroutines; no send or receive changes the
            // buffer while the lock is held).
            unsafe { t.scan_conservative(start, start + std::mem::size_of_val(part)) };
        }
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        self.sched
            .chans
            .chans
            .lock()
            .remove(&(self as *const Self as usize));
    }
}

/// A channel of `T`: Go's `chan T`. Clones share the channel; capacity 0 is unbuffered.
/// Values in a channel's buffer are roots: a `Gc` sent through one stays alive.
///
/// ```
/// use minigo_runtime::{go, Chan, Runtime};
/// Runtime::new().unwrap().run(|_| {
///     let ch = Chan::new(4);
///     let tx = ch.clone();
///     go(move || {
///         for i in 0..10 {
///             tx.send(i);
///         }
///         tx.close();
///     });
///     assert_eq!(ch.iter().sum::<i32>(), 45); // ends when the channel is closed and drained
/// }).unwrap();
/// ```
pub struct Chan<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Chan<T> {
    fn clone(&self) -> Self {
        Chan {
            inner: self.inner.clone(),
        }
    }
}

/// Why a non-blocking send failed; the value comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// No room and no receiver waiting.
    Full(T),
    /// The channel is closed.
    Closed(T),
}

/// Why a non-blocking receive got nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing buffered and no sender waiting.
    Empty,
    /// The channel is closed and drained.
    Closed,
}

fn me() -> GPtr {
    current_gptr()
}

impl<T: Send> Chan<T> {
    /// A channel with room for `cap` values (0: unbuffered), created from a goroutine.
    pub fn new(cap: usize) -> Chan<T> {
        let sched = current_sched();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                buf: VecDeque::with_capacity(cap.min(1024)),
                closed: false,
                recvq: VecDeque::new(),
                sendq: VecDeque::new(),
            }),
            cap,
            sched,
        });
        let key = &*inner as *const Inner<T> as usize;
        let scan: *const (dyn ScanBuffer + '_) = &*inner;
        // SAFETY: only the trait object's lifetime bound changes. The registry holds the
        // pointer while `inner` lives (its drop unregisters it), and `T` (a run's
        // handles, say) lives at least as long as `inner`.
        let scan: *const (dyn ScanBuffer + 'static) = unsafe { std::mem::transmute(scan) };
        inner.sched.chans.chans.lock().insert(key, RawScan(scan));
        Chan { inner }
    }

    /// Capacity.
    pub fn cap(&self) -> usize {
        self.inner.cap
    }

    /// Values buffered now.
    pub fn len(&self) -> usize {
        self.inner.state.lock().buf.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ready(&self, g: GPtr) {
        self.inner.sched.ready(g.0);
    }

    /// Sends `v`, waiting for room or a receiver. Panics if the channel is closed (Go's
    /// "send on closed channel").
    pub fn send(&self, v: T) {
        safepoint();
        let mut st = self.inner.state.lock();
        match self.send_now(&mut st, v) {
            Ok(woke) => {
                drop(st);
                if let Some(g) = woke {
                    self.ready(g);
                }
            }
            Err(TrySendError::Closed(_)) => {
                drop(st);
                panic!("send on closed channel");
            }
            Err(TrySendError::Full(v)) => {
                let mut slot = Some(v);
                let mut woken = Woken::Pending;
                st.sendq.push_back(Waiter {
                    g: me(),
                    slot: &mut slot,
                    woken: &mut woken,
                    sel: null(),
                    case: 0,
                });
                wait_unlocking(|| drop(st));
                if woken == Woken::Closed {
                    panic!("send on closed channel");
                }
            }
        }
    }

    /// Delivers `v` without waiting: to a receiver (returned, to be readied after the
    /// unlock) or into the buffer.
    fn send_now(&self, st: &mut State<T>, v: T) -> Result<Option<GPtr>, TrySendError<T>> {
        if st.closed {
            return Err(TrySendError::Closed(v));
        }
        while let Some(w) = st.recvq.pop_front() {
            // SAFETY: under the lock, the waiter queued.
            if unsafe { w.claim() } {
                // SAFETY: the receiver's slot and flag, on its parked stack.
                unsafe {
                    *w.slot = Some(v);
                    *w.woken = Woken::Done;
                }
                return Ok(Some(w.g));
            }
        }
        if st.buf.len() < self.inner.cap {
            st.buf.push_back(v);
            return Ok(None);
        }
        Err(TrySendError::Full(v))
    }

    /// Sends without waiting.
    pub fn try_send(&self, v: T) -> Result<(), TrySendError<T>> {
        let mut st = self.inner.state.lock();
        let woke = self.send_now(&mut st, v)?;
        drop(st);
        if let Some(g) = woke {
            self.ready(g);
        }
        Ok(())
    }

    /// Receives a value, waiting for one; `None` once the channel is closed and drained.
    pub fn recv(&self) -> Option<T> {
        safepoint();
        let mut st = self.inner.state.lock();
        match self.recv_now(&mut st) {
            Ok((v, woke)) => {
                drop(st);
                if let Some(g) = woke {
                    self.ready(g);
                }
                Some(v)
            }
            Err(TryRecvError::Closed) => None,
            Err(TryRecvError::Empty) => {
                let mut slot = None;
                let mut woken = Woken::Pending;
                st.recvq.push_back(Waiter {
                    g: me(),
                    slot: &mut slot,
                    woken: &mut woken,
                    sel: null(),
                    case: 0,
                });
                wait_unlocking(|| drop(st));
                slot
            }
        }
    }

    /// Takes a value without waiting: from a waiting sender (returned, to be readied) or
    /// from the buffer.
    fn recv_now(&self, st: &mut State<T>) -> Result<(T, Option<GPtr>), TryRecvError> {
        while let Some(w) = st.sendq.pop_front() {
            // SAFETY: under the lock, the waiter queued.
            if unsafe { w.claim() } {
                // SAFETY: the sender's slot and flag, on its parked stack.
                let sent = unsafe {
                    *w.woken = Woken::Done;
                    (*w.slot).take().expect("a waiting sender has a value")
                };
                // Values leave places a marking cycle may not have scanned yet (the
                // sender's stack, the buffer) for this goroutine's scanned one: shade them.
                crate::sched::shade_value(&self.inner.sched, &sent);
                let v = match st.buf.pop_front() {
                    Some(head) => {
                        crate::sched::shade_value(&self.inner.sched, &head);
                        st.buf.push_back(sent);
                        head
                    }
                    None => sent,
                };
                return Ok((v, Some(w.g)));
            }
        }
        if let Some(v) = st.buf.pop_front() {
            crate::sched::shade_value(&self.inner.sched, &v);
            return Ok((v, None));
        }
        Err(if st.closed {
            TryRecvError::Closed
        } else {
            TryRecvError::Empty
        })
    }

    /// Receives without waiting.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut st = self.inner.state.lock();
        let (v, woke) = self.recv_now(&mut st)?;
        drop(st);
        if let Some(g) = woke {
            self.ready(g);
        }
        Ok(v)
    }

    /// Closes the channel: receivers drain what is buffered, then get `None`; waiting
    /// senders panic. Panics if already closed (Go's "close of closed channel").
    pub fn close(&self) {
        let mut st = self.inner.state.lock();
        if st.closed {
            drop(st);
            panic!("close of closed channel");
        }
        st.closed = true;
        let mut woke = Vec::new();
        let st = &mut *st;
        let waiters: Vec<Waiter<T>> = st.recvq.drain(..).chain(st.sendq.drain(..)).collect();
        for w in waiters {
            // SAFETY: under the lock, the waiter queued.
            if unsafe { w.claim() } {
                // SAFETY: the waiter's flag, on its parked stack.
                unsafe { *w.woken = Woken::Closed };
                woke.push(w.g);
            }
        }
        for g in woke {
            self.ready(g);
        }
    }

    /// Receives until the channel is closed and drained (Go's `for v := range ch`).
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.recv())
    }
}

#[cfg(not(loom))]
mod select;
#[cfg(not(loom))]
pub use select::{select, try_select, RecvCase, SelectCase, SendCase};
