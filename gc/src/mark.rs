//! Marking: tri-colour over the spans' mark bits, on several workers that steal grey work
//! from each other.
//!
//! White is an unmarked object; grey, marked and queued; black, marked and scanned (or
//! noscan: never queued). To shade an object a worker resolves the pointer with
//! `find_object` (interior pointers allowed) and sets the mark bit with one atomic: the
//! worker whose `fetch_or` set the bit owns scanning the object, so each object is scanned
//! exactly once however many pointers to it the workers race on. Scanning reads only the
//! words the object's layout calls pointers.
//!
//! Each worker pushes and pops grey objects on its own stack, a plain `Vec` (depth-first, so
//! a long list needs one slot, not a stack frame per node: nothing recurses). Work moves
//! between workers only through a shared injector, as in Go's `gcWork.balance`: while some
//! worker is idle and the injector is empty, a busy worker hands over the older half of its
//! stack (the biggest subtrees). So the common path takes no atomic operation at all.
//! Objects over 128 KiB are split into oblets so that one huge array does not serialise the
//! phase. The phase ends when every worker is idle at once: a worker goes idle only with an
//! empty stack, and only busy workers push, so "all idle" means no grey object is left.
//!
//! Everything here runs with the world stopped and sweeping finished (the contract of
//! `MHeap::find_object_unlocked`).

use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{spin_loop, AtomicUsize, Ordering};
use minigo_alloc_core::{MHeap, MSpan};

use crate::queue::{Injector, Steal};

/// Words per oblet: Go's `maxObletBytes` (128 KiB).
pub const OBLET_WORDS: usize = 128 * 1024 / 8;

/// Grey objects in flight between the deque and `scan` (see `MarkWorker::drain`).
const PREFETCH: usize = 16;

/// Asks the CPU to start loading the cache line at `addr`.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(addr as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// A grey object, or one oblet of a large one: words from `from` on.
#[derive(Clone, Copy)]
pub struct Grey<'h> {
    span: &'h MSpan,
    base: usize,
    from: usize,
}

/// What the workers of one mark phase share.
pub struct MarkShared<'h> {
    heap: &'h MHeap,
    injector: Injector<Grey<'h>>,
    workers: usize,
    idle: AtomicUsize,
}

/// One marker's state: its stack and its counts. Aligned to two cache lines: workers sit
/// side by side in a `Vec` and each writes its stack length and counters per object, which
/// on shared lines would bounce between cores (it halved 2-worker throughput).
#[repr(align(128))]
pub struct MarkWorker<'h> {
    stack: Vec<Grey<'h>>,
    /// Bytes of the objects this worker marked (their slot sizes).
    pub marked_bytes: u64,
    /// Objects this worker marked.
    pub marked_objects: u64,
    /// Objects (and oblets) this worker scanned.
    pub scanned: u64,
    /// Time spent with work in hand.
    pub busy: Duration,
}

/// Sets up `n` workers on `heap`.
pub fn workers<'h>(heap: &'h MHeap, n: usize) -> (MarkShared<'h>, Vec<MarkWorker<'h>>) {
    let workers: Vec<MarkWorker<'h>> = (0..n.max(1))
        .map(|_| MarkWorker {
            stack: Vec::new(),
            marked_bytes: 0,
            marked_objects: 0,
            scanned: 0,
            busy: Duration::ZERO,
        })
        .collect();
    let shared = MarkShared {
        heap,
        injector: Injector::new(),
        workers: workers.len(),
        idle: AtomicUsize::new(0),
    };
    (shared, workers)
}

impl<'h> MarkShared<'h> {
    /// The heap being marked.
    pub fn heap(&self) -> &'h MHeap {
        self.heap
    }

    /// A worker is waiting for work and none is on offer.
    #[inline]
    fn hungry(&self) -> bool {
        self.idle.load(Ordering::Relaxed) > 0 && self.injector.is_empty()
    }
}

impl<'h> MarkWorker<'h> {
    /// Greys the object holding `addr`, if it is a heap object not yet marked. Returns
    /// whether this call marked it.
    #[inline(always)]
    pub fn shade(&mut self, shared: &MarkShared<'h>, addr: usize) -> bool {
        // SAFETY: marking runs with the world stopped and sweeping finished.
        let Some(obj) = (unsafe { shared.heap.find_object_unlocked(addr) }) else {
            return false;
        };
        let newly = if shared.workers == 1 {
            // SAFETY: this worker is the only marker of this phase.
            unsafe { obj.try_mark_exclusive() }
        } else {
            obj.try_mark()
        };
        if !newly {
            return false;
        }
        self.marked_bytes += obj.slot_size() as u64;
        self.marked_objects += 1;
        if !obj.noscan() {
            self.stack.push(Grey {
                span: obj.span(),
                base: obj.base(),
                from: 0,
            });
        }
        true
    }

    /// Scans grey objects until no worker has any left.
    ///
    /// Marking a big heap is a cache miss per object, so objects do not go from the deque
    /// straight to `scan`: they pass through a FIFO of `PREFETCH` slots, prefetched as they
    /// enter, scanned as they leave, which keeps that many misses in flight (Boehm's and
    /// Cher, Hosking and Vijaykumar's prefetch-on-grey, 2004). The FIFO's objects are this
    /// worker's work in hand: it does not go idle until the FIFO is empty.
    pub fn drain(&mut self, shared: &MarkShared<'h>) {
        let mut fifo: [Option<Grey<'h>>; PREFETCH] = [None; PREFETCH];
        let mut at = 0;
        loop {
            let start = Instant::now();
            let mut in_hand = 0;
            loop {
                let next = self.find_work(shared);
                if let Some(g) = next {
                    prefetch(g.base + g.from * 8);
                    in_hand += 1;
                } else if in_hand == 0 {
                    break;
                }
                if let Some(g) = std::mem::replace(&mut fifo[at], next) {
                    in_hand -= 1;
                    self.scan(shared, g);
                    if self.stack.len() > 1 && shared.hungry() {
                        self.give_half(shared);
                    }
                }
                at = (at + 1) % PREFETCH;
            }
            self.busy += start.elapsed();
            shared.idle.fetch_add(1, Ordering::AcqRel);
            loop {
                if shared.idle.load(Ordering::Acquire) == shared.workers {
                    return;
                }
                if !shared.injector.is_empty() {
                    shared.idle.fetch_sub(1, Ordering::AcqRel);
                    break;
                }
                spin_loop();
            }
        }
    }

    fn find_work(&mut self, shared: &MarkShared<'h>) -> Option<Grey<'h>> {
        if let Some(g) = self.stack.pop() {
            return Some(g);
        }
        loop {
            match shared.injector.steal() {
                Steal::Success(g) => return Some(g),
                Steal::Retry => {}
                Steal::Empty => return None,
            }
        }
    }

    /// Hands the older half of this worker's stack to the injector.
    fn give_half(&mut self, shared: &MarkShared<'h>) {
        let half = self.stack.len() / 2;
        for g in self.stack.drain(..half) {
            shared.injector.push(g);
        }
    }

    /// Shades every pointer of a grey object (or of one oblet of it).
    #[inline]
    fn scan(&mut self, shared: &MarkShared<'h>, g: Grey<'h>) {
        self.scanned += 1;
        // SAFETY: world stopped, sweeping finished; `g` came from an ObjectRef this phase.
        if let Some(mask) = unsafe { shared.heap.uniform_mask(g.span) } {
            let mut bits = mask;
            while bits != 0 {
                let addr = g.base + bits.trailing_zeros() as usize * 8;
                bits &= bits - 1;
                // SAFETY: a pointer word of a live object, read with the world stopped.
                let value = unsafe { std::ptr::read(addr as *const usize) };
                if value != 0 {
                    self.shade(shared, value);
                }
            }
            return;
        }
        self.scan_words(shared, g);
    }

    /// `scan` for objects whose pointer words come from the bitmap or a layout.
    #[inline(never)]
    fn scan_words(&mut self, shared: &MarkShared<'h>, g: Grey<'h>) {
        // SAFETY: world stopped, sweeping finished; `g` came from an ObjectRef this phase.
        let words = unsafe { shared.heap.pointer_words(g.span, g.base) };
        let words = if words.extent() > OBLET_WORDS {
            if g.from == 0 {
                let mut from = OBLET_WORDS;
                while from < words.extent() {
                    self.stack.push(Grey { from, ..g });
                    from += OBLET_WORDS;
                }
            }
            words.restrict(g.from, g.from + OBLET_WORDS)
        } else {
            words
        };
        for addr in words {
            // SAFETY: `addr` is a pointer word of a live object; with the world stopped
            // nobody writes it.
            let value = unsafe { std::ptr::read(addr as *const usize) };
            if value != 0 {
                self.shade(shared, value);
            }
        }
    }

    /// Hands all of this worker's grey objects to the injector (used when the roots were
    /// shaded on one worker before the others start).
    pub fn share(&mut self, shared: &MarkShared<'h>) {
        for g in self.stack.drain(..) {
            shared.injector.push(g);
        }
    }
}

/// Marks everything reachable from what was shaded into `workers` (roots), running the
/// workers on `workers.len()` threads (the calling thread is one). Returns when marking is
/// complete. (Loom models start the workers on their own threads instead.)
#[cfg(not(loom))]
pub fn run<'h>(shared: &MarkShared<'h>, workers: &mut [MarkWorker<'h>]) {
    if workers.len() == 1 {
        workers[0].drain(shared);
        return;
    }
    for w in workers.iter_mut() {
        w.share(shared);
    }
    std::thread::scope(|scope| {
        let (first, rest) = workers.split_first_mut().expect("at least one worker");
        for w in rest {
            std::thread::Builder::new()
                .name("minigo-mark".into())
                .spawn_scoped(scope, move || w.drain(shared))
                .expect("the OS refused a mark worker thread");
        }
        first.drain(shared);
    });
}
