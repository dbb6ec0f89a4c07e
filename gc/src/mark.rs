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
//! Each worker pushes and pops grey objects on its own LIFO deque (depth-first, so a long
//! list needs one queue slot, not a stack frame per node: nothing recurses) and, when it
//! runs dry, steals from the roots' injector and from the other workers. Objects over 128 KiB
//! are split into oblets so that one huge array does not serialise the phase. The phase ends
//! when every worker is idle at once: a worker goes idle only with an empty deque, and only
//! busy workers push, so "all idle" means no grey object is left anywhere.
//!
//! Everything here runs with the world stopped and sweeping finished (the contract of
//! `MHeap::find_object_unlocked`).

use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{spin_loop, AtomicUsize, Ordering};
use minigo_alloc_core::{MHeap, MSpan};

use crate::queue::{Injector, Steal, Stealer, Worker};

/// Words per oblet: Go's `maxObletBytes` (128 KiB).
pub const OBLET_WORDS: usize = 128 * 1024 / 8;

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
    stealers: Vec<Stealer<Grey<'h>>>,
    idle: AtomicUsize,
}

/// One marker's state: its deque and its counts.
pub struct MarkWorker<'h> {
    local: Worker<Grey<'h>>,
    index: usize,
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
        .map(|index| MarkWorker {
            local: Worker::new_lifo(),
            index,
            marked_bytes: 0,
            marked_objects: 0,
            scanned: 0,
            busy: Duration::ZERO,
        })
        .collect();
    let shared = MarkShared {
        heap,
        injector: Injector::new(),
        stealers: workers.iter().map(|w| w.local.stealer()).collect(),
        idle: AtomicUsize::new(0),
    };
    (shared, workers)
}

impl<'h> MarkShared<'h> {
    /// The heap being marked.
    pub fn heap(&self) -> &'h MHeap {
        self.heap
    }

    fn work_visible(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}

impl<'h> MarkWorker<'h> {
    /// Greys the object holding `addr`, if it is a heap object not yet marked. Returns
    /// whether this call marked it.
    #[inline]
    pub fn shade(&mut self, shared: &MarkShared<'h>, addr: usize) -> bool {
        // SAFETY: marking runs with the world stopped and sweeping finished.
        let Some(obj) = (unsafe { shared.heap.find_object_unlocked(addr) }) else {
            return false;
        };
        if !obj.try_mark() {
            return false;
        }
        let span = obj.span();
        self.marked_bytes += span.elem_size() as u64;
        self.marked_objects += 1;
        if !span.noscan() {
            self.local.push(Grey {
                span,
                base: obj.base(),
                from: 0,
            });
        }
        true
    }

    /// Scans grey objects until no worker has any left.
    pub fn drain(&mut self, shared: &MarkShared<'h>) {
        loop {
            let start = Instant::now();
            while let Some(g) = self.find_work(shared) {
                self.scan(shared, g);
            }
            self.busy += start.elapsed();
            shared.idle.fetch_add(1, Ordering::AcqRel);
            loop {
                if shared.idle.load(Ordering::Acquire) == shared.stealers.len() {
                    return;
                }
                if shared.work_visible() {
                    shared.idle.fetch_sub(1, Ordering::AcqRel);
                    break;
                }
                spin_loop();
            }
        }
    }

    fn find_work(&mut self, shared: &MarkShared<'h>) -> Option<Grey<'h>> {
        if let Some(g) = self.local.pop() {
            return Some(g);
        }
        loop {
            let mut retry = false;
            match shared.injector.steal() {
                Steal::Success(g) => return Some(g),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            let n = shared.stealers.len();
            for k in 1..n {
                match shared.stealers[(self.index + k) % n].steal() {
                    Steal::Success(g) => return Some(g),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }

    /// Shades every pointer of a grey object (or of one oblet of it).
    fn scan(&mut self, shared: &MarkShared<'h>, g: Grey<'h>) {
        self.scanned += 1;
        // SAFETY: world stopped, sweeping finished; `g` came from an ObjectRef this phase.
        let words = unsafe { shared.heap.pointer_words(g.span, g.base) };
        let words = if words.extent() > OBLET_WORDS {
            if g.from == 0 {
                let mut from = OBLET_WORDS;
                while from < words.extent() {
                    self.local.push(Grey { from, ..g });
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

    /// Hands this worker's grey objects to the others through the injector (used when
    /// the roots were shaded on one worker before the others start).
    pub fn share(&mut self, shared: &MarkShared<'h>) {
        while let Some(g) = self.local.pop() {
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
