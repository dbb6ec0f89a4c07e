//! Marking: tri-colour over the spans' mark bits, shared by every marker of a cycle — the
//! background workers, the mutators' assists and barrier flushes, the thread that stops
//! the world at the end.
//!
//! White is an unmarked object; grey, marked and queued; black, marked and scanned (or
//! noscan: never queued). To shade an object a marker resolves the pointer with
//! `find_object` (interior pointers allowed) and sets the mark bit with one atomic: the
//! marker whose `fetch_or` set the bit owns scanning the object, so each object is scanned
//! exactly once however many markers race on it. Scanning reads only the words the
//! object's layout calls pointers, each with one atomic load, since mutators may be storing
//! into the object meanwhile (their write barrier covers what the load misses).
//!
//! Each marker's grey objects are its [`GcWork`] (Go's gcWork), a plain `Vec` used as a
//! stack (depth-first: a long list needs one slot, nothing recurses). Work moves between
//! markers only through the cycle's [`MarkQueue`], in batches (Go's workbufs, `queue.rs`),
//! as in Go's `gcWork.balance`: while the queue is empty, a busy marker with a deep stack
//! (or any, when another marker waits) hands over the older half of its stack as one
//! batch. So the common path takes no atomic read-modify-write but the mark bit's. Objects over 128 KiB are split into
//! oblets so that one huge array does not serialise the phase, and a bounded drain stops
//! inside a big object rather than after it.
//!
//! **When is marking over?** A marker *joins* the queue's `active` count before it takes
//! work and *leaves* it only with an empty stack after finding the queue empty. Every
//! push comes from a joined marker. So "queue empty, then `active` read as zero, and
//! every root job done" means no grey object is left anywhere a marker can see. With the
//! world stopped that is the end ([`GcWork::drain_all`]); while mutators run it is only a
//! hint ([`MarkQueue::done_hint`]): a barrier buffer may still hold pointers, so mark
//! termination flushes every buffer with the world stopped and checks again, then closes
//! the queue (`MarkQueue::close`): a marker that comes later marks nothing, which is
//! what lets sweeping start.
//!
//! Marking runs while sweeping is drained for the cycle, so no span is freed or swept
//! under it; spans may be allocated, and a slot counts as an object only once its mcache
//! published it (the contract of `MHeap::find_object_unlocked`).

use std::ptr::NonNull;
use std::sync::Arc as StdArc;
use std::time::{Duration, Instant};

use minigo_alloc_core::sync::{
    fence, load_word, spin_loop, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering,
};
use minigo_alloc_core::{MHeap, MSpan};

use crate::queue::BatchQueue;
use crate::roots::Tracer;

/// Words per oblet: Go's `maxObletBytes` (128 KiB).
pub const OBLET_WORDS: usize = 128 * 1024 / 8;

/// Grey objects in flight between the stack and `scan` (see `GcWork::drain_loop`).
const PREFETCH: usize = 16;

/// A marker with at least this many grey objects shares half when the queue is empty.
const BALANCE_MIN: usize = 64;

/// The bit of `MarkQueue::active` that says the queue is closed (`MarkQueue::close`).
const CLOSED: usize = 1 << (usize::BITS - 1);

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

/// Whether `g` is (part of) a large object: one of its own span.
#[inline(always)]
fn is_large(g: Grey) -> bool {
    // SAFETY: span structs outlive their heap's queue; `g` came from an ObjectRef.
    unsafe { g.span.as_ref() }.span_class().size_class() == 0
}

/// A grey object, or one oblet of a large one: words from `Grey::from` on, and whether
/// it is old once the cycle's sweep is over although what it points at may not be (a
/// young object surviving its second minor cycle, see [`MarkQueue::with_ages`]). Three
/// words, the flag in the top bit of the word index: mark stacks and batches are arrays
/// of these, and every marker moves them.
#[derive(Clone, Copy)]
pub struct Grey {
    span: NonNull<MSpan>,
    base: usize,
    from_old: usize,
}

/// The bit of `Grey::from_old` that says the object stays old.
const GREY_OLD: usize = 1 << (usize::BITS - 1);

const _: () = assert!(std::mem::size_of::<Grey>() == 3 * std::mem::size_of::<usize>());

impl Grey {
    /// The first word to scan.
    #[inline(always)]
    fn from(self) -> usize {
        self.from_old & !GREY_OLD
    }

    #[inline(always)]
    fn old(self) -> bool {
        self.from_old & GREY_OLD != 0
    }

    /// The same object, from word `from` on.
    #[inline(always)]
    fn at(self, from: usize) -> Grey {
        Grey {
            from_old: from | (self.from_old & GREY_OLD),
            ..self
        }
    }
}

/// `GcWork::shade`'s answer: this call marked the object.
const NEWLY: u8 = 1;
/// `GcWork::shade`'s answer: the object is young, and stays young through this cycle's
/// sweep (see [`MarkQueue::with_ages`]).
const YOUNG: u8 = 2;

// SAFETY: a Grey names a span struct and an address; span structs are never freed while
// their heap lives, and every Grey is used with the MarkQueue that holds that heap's Arc.
unsafe impl Send for Grey {}

/// Roots a concurrent cycle scans on its markers, one job at a time: the runtime's
/// goroutine stacks (one job each), its global handles, its channel buffers. Each job is
/// claimed by exactly one marker per cycle, from any thread, while mutators run.
pub trait RootJobs: Send + Sync {
    /// Jobs this cycle (fixed when the cycle starts).
    fn count(&self) -> usize;
    /// Scans job `job` into `tracer`.
    fn scan(&self, job: usize, tracer: &mut Tracer<'_>);
}

/// What every marker of one cycle shares (Go's `work`).
pub struct MarkQueue {
    heap: Arc<MHeap>,
    batches: BatchQueue<Grey>,
    /// Markers holding grey work or about to take some (see the module comment), and
    /// the [`CLOSED`] bit.
    active: AtomicUsize,
    /// Markers waiting for work: a busy one hands over half its stack while any is.
    waiting: AtomicUsize,
    /// One marker and the world stopped: mark bits may be set without an atomic
    /// read-modify-write.
    exclusive: bool,
    /// Markers prefetch grey objects through their FIFO (`GcWork::drain_loop`).
    prefetch: bool,
    /// A minor cycle whose sweep keeps only the marks of objects allocated before the
    /// last sweep (`KeepMarks::Old`): see [`MarkQueue::with_ages`].
    ages: bool,
    /// The root jobs' source until marking ends. Let go of then: it is the embedder's (a
    /// runtime's scheduler), and mutator states that still point at this queue must not
    /// keep it alive (a scheduler owning them would never be dropped).
    roots: Mutex<Option<StdArc<dyn RootJobs>>>,
    root_total: usize,
    root_next: AtomicUsize,
    root_done: AtomicUsize,
    /// Set when the last marker left with nothing queued (see `MarkQueue::done_hint`).
    done_hint: AtomicBool,
    /// Background workers with nothing to do sleep here.
    sleep: Mutex<()>,
    wake: Condvar,
    sleepers: AtomicUsize,
    marked_bytes: AtomicU64,
    marked_objects: AtomicU64,
    /// Of those, allocated before the last sweep (with ages: what the cycle promotes).
    promoted_bytes: AtomicU64,
    promoted_objects: AtomicU64,
    scan_work: AtomicU64,
    /// Bytes of roots scanned (goroutine stacks, globals): the pacer counts them in the
    /// next goal, as Go's does since 1.18.
    root_bytes: AtomicU64,
    /// Scan work background workers did that assists have not claimed (Go's
    /// `bgScanCredit`).
    credit: AtomicU64,
    /// CPU time this cycle's marking took, by kind.
    cpu: [AtomicU64; 3],
    /// The longest single assist.
    longest_assist: AtomicU64,
    /// Marking is over (set at mark termination): background workers stop.
    finished: AtomicBool,
}

/// Who spent mark CPU time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkCpu {
    /// Mutators paying for their allocation.
    Assist = 0,
    /// Dedicated and fractional background workers.
    Background = 1,
    /// Workers on otherwise idle cores.
    Idle = 2,
}

impl MarkQueue {
    /// A queue for marking `heap`. `exclusive`: one marker, world stopped (a cheaper mark
    /// bit). `roots`: jobs to scan as part of marking, if any.
    ///
    /// # Safety
    /// Until the queue is closed (mark termination), no span of `heap` is freed or swept:
    /// sweeping is drained for the cycle, the contract of
    /// [`MHeap::find_object_unlocked`], which every shade relies on. (Once closed, markers
    /// that come to the queue mark nothing, so sweeping may start.) With `exclusive`, one
    /// thread at a time marks through the queue and nothing allocates from `heap`.
    ///
    /// ```compile_fail,E0133
    /// # use minigo_gc::{mark::MarkQueue, GcConfig, Heap};
    /// let heap = Heap::new(GcConfig::default()).unwrap();
    /// let q = MarkQueue::new(heap.collector().heap().clone(), true, None);
    /// ```
    pub unsafe fn new(
        heap: Arc<MHeap>,
        exclusive: bool,
        roots: Option<StdArc<dyn RootJobs>>,
    ) -> MarkQueue {
        let root_total = roots.as_ref().map_or(0, |r| r.count());
        MarkQueue {
            heap,
            batches: BatchQueue::new(),
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            exclusive,
            prefetch: true,
            ages: false,
            roots: Mutex::new(roots),
            root_total,
            root_next: AtomicUsize::new(0),
            root_done: AtomicUsize::new(0),
            done_hint: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            marked_bytes: AtomicU64::new(0),
            marked_objects: AtomicU64::new(0),
            promoted_bytes: AtomicU64::new(0),
            promoted_objects: AtomicU64::new(0),
            scan_work: AtomicU64::new(0),
            root_bytes: AtomicU64::new(0),
            credit: AtomicU64::new(0),
            cpu: std::array::from_fn(|_| AtomicU64::new(0)),
            longest_assist: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }

    /// The queue with its markers scanning each grey object as they take it, without the
    /// prefetch FIFO (`GcConfig::mark_prefetch`: to measure what prefetching gains).
    pub fn without_prefetch(self) -> MarkQueue {
        MarkQueue {
            prefetch: false,
            ..self
        }
    }

    /// The queue of a minor cycle whose sweep will keep only the marks of objects
    /// allocated before the last sweep (`KeepMarks::Old`): those allocated since that
    /// survive stay young one more cycle. Its markers therefore keep the remembered set
    /// whole for the next minor cycle: an object that will be old (allocated before the
    /// last sweep) and holds a pointer to one that will still be young has that word's
    /// card dirtied (`MHeap::dirty_card`), whether the marker found the word on a dirty
    /// card or scanning the object. And they count what they mark of the first kind
    /// ([`MarkQueue::promoted_bytes`]).
    pub fn with_ages(self) -> MarkQueue {
        MarkQueue { ages: true, ..self }
    }

    /// Adds `ns` of mark CPU time spent by `who`.
    pub fn note_cpu(&self, who: MarkCpu, ns: u64) {
        self.cpu[who as usize].fetch_add(ns, Ordering::Relaxed);
        if who == MarkCpu::Assist {
            self.longest_assist.fetch_max(ns, Ordering::Relaxed);
        }
    }

    /// Mark CPU time spent by `who` so far.
    pub fn cpu(&self, who: MarkCpu) -> u64 {
        self.cpu[who as usize].load(Ordering::Relaxed)
    }

    /// The longest single assist so far.
    pub fn longest_assist(&self) -> u64 {
        self.longest_assist.load(Ordering::Relaxed)
    }

    /// Banks scan work a background worker did, for assists to claim.
    pub fn add_credit(&self, work: u64) {
        self.credit.fetch_add(work, Ordering::Relaxed);
    }

    /// Claims up to `want` units of banked scan work; returns how much it got.
    pub fn steal_credit(&self, want: u64) -> u64 {
        let mut have = self.credit.load(Ordering::Relaxed);
        loop {
            let take = have.min(want);
            if take == 0 {
                return 0;
            }
            match self.credit.compare_exchange_weak(
                have,
                have - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => have = now,
            }
        }
    }

    /// Ends marking for the background workers, and wakes them (a cycle abandoned).
    pub(crate) fn finish(&self) {
        self.finish_quietly();
        self.notify();
    }

    /// Ends marking without waking sleeping workers (they notice at their next wake-up;
    /// `notify` them once that is cheap).
    fn finish_quietly(&self) {
        self.finished.store(true, Ordering::SeqCst);
        self.roots.lock().take();
    }

    /// Mark termination: ends marking and waits until no marker is inside the queue.
    /// Afterwards nothing marks through it (every marker enters through
    /// [`MarkQueue::enter`], which then turns it away), so sweeping may start. Sleeping
    /// workers are not woken here.
    pub(crate) fn close(&self) {
        self.finish_quietly();
        // The closed bit and a marker's join are read-modify-writes of one word, so one
        // comes first: either the marker sees the bit, or this waits for it to leave.
        // After a quiescent check only markers that find nothing can be inside.
        self.active.fetch_or(CLOSED, Ordering::SeqCst);
        let mut backoff = minigo_alloc_core::sync::Backoff::new();
        while self.markers() != 0 {
            backoff.snooze();
        }
    }

    /// Markers inside the queue (joined and not left).
    fn markers(&self) -> usize {
        self.active.load(Ordering::SeqCst) & !CLOSED
    }

    /// True once mark termination has ended this cycle's marking.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// The heap being marked.
    pub fn heap(&self) -> &MHeap {
        &self.heap
    }

    /// A marker holding `held` grey objects should hand half of them over (Go's
    /// `gcw.balance` when `work.full` is empty): none is on offer and either a marker waits
    /// or it holds enough to share. Not only for waiters: a mutator's assist that finds
    /// nothing leaves at once rather than wait, and would otherwise find nothing all cycle
    /// while one worker held every grey object (88,000 empty assists on binary-trees 19).
    #[inline]
    fn should_balance(&self, held: usize) -> bool {
        held > 1
            && self.batches.is_empty()
            && (held >= BALANCE_MIN || self.waiting.load(Ordering::Relaxed) > 0)
    }

    fn roots_pending(&self) -> bool {
        self.root_next.load(Ordering::SeqCst) < self.root_total
    }

    fn roots_done(&self) -> bool {
        self.root_done.load(Ordering::SeqCst) == self.root_total
    }

    /// Joins as a marker, unless marking is over (see [`MarkQueue::close`]): the one way in
    /// for every drain and shade, so that none marks once sweeping may run.
    fn enter(&self) -> bool {
        let closed = self.active.fetch_add(1, Ordering::SeqCst) & CLOSED != 0;
        // The seeded bug of loom model 9: a closed queue that still lets markers in.
        #[cfg(loom_mutant = "late_marker")]
        let closed = closed && false;
        if closed {
            self.active.fetch_sub(1, Ordering::SeqCst);
        }
        !closed
    }

    /// Leaves `active`; the last marker out with nothing queued and every root scanned
    /// raises the done hint and wakes a worker to act on it.
    fn leave(&self) {
        if self.active.fetch_sub(1, Ordering::SeqCst) & !CLOSED == 1
            && self.batches.is_empty()
            && self.roots_done()
        {
            self.done_hint.store(true, Ordering::SeqCst);
            self.notify();
        }
    }

    /// True when no marker holds or can find grey work: with the world stopped (and every
    /// barrier buffer flushed), marking is complete.
    pub fn quiescent(&self) -> bool {
        self.batches.is_empty() && !self.roots_pending() && self.markers() == 0 && self.roots_done()
    }

    /// Marking looked complete when the last marker left: a cue to try mark termination
    /// (which checks again with the world stopped). Taking the hint clears it.
    pub fn take_done_hint(&self) -> bool {
        self.done_hint.swap(false, Ordering::SeqCst)
    }

    /// Peeks at the done hint without taking it.
    pub fn done_hint(&self) -> bool {
        self.done_hint.load(Ordering::SeqCst)
    }

    /// True when the queue or the root jobs have work for another marker.
    pub fn has_work(&self) -> bool {
        !self.batches.is_empty() || self.roots_pending()
    }

    /// Wakes every sleeping worker (work arrived, or the cycle moves on).
    pub fn notify(&self) {
        // Pairs with the fence in `sleep`: a sleeper either sees what was pushed before
        // this, or is counted here (a lost wakeup would cost a sleeper its timeout).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.sleep.lock();
            self.wake.notify_all();
        }
    }

    /// Sleeps until work arrives (or the done hint, if `hint` says the caller acts on it),
    /// marking finishes, or `timeout` passes: a background worker with nothing to do.
    pub fn sleep(&self, timeout: Duration, hint: bool) {
        let g = self.sleep.lock();
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let wake = self.has_work() || self.finished() || (hint && self.done_hint());
        if !wake {
            let _g = self.wake.wait_for(g, timeout);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Bytes marked by markers so far (flushed counts).
    pub fn marked_bytes(&self) -> u64 {
        self.marked_bytes.load(Ordering::Relaxed)
    }

    /// Objects marked by markers so far (flushed counts).
    pub fn marked_objects(&self) -> u64 {
        self.marked_objects.load(Ordering::Relaxed)
    }

    /// Of [`MarkQueue::marked_bytes`], the bytes of objects allocated before the last
    /// sweep: with ages, what this minor cycle promotes to the old generation.
    pub fn promoted_bytes(&self) -> u64 {
        self.promoted_bytes.load(Ordering::Relaxed)
    }

    /// Of [`MarkQueue::marked_objects`], those allocated before the last sweep.
    pub fn promoted_objects(&self) -> u64 {
        self.promoted_objects.load(Ordering::Relaxed)
    }

    /// Scan work done so far: bytes of objects up to their last pointer word (Go's
    /// `heapScanWork`), plus root bytes.
    pub fn scan_work(&self) -> u64 {
        self.scan_work.load(Ordering::Relaxed)
    }

    /// Bytes of roots scanned so far this cycle (Go's `lastStackScan` plus globals).
    pub fn root_bytes(&self) -> u64 {
        self.root_bytes.load(Ordering::Relaxed)
    }

    /// Counts `n` bytes of roots scanned outside the root jobs (a stack its own M scans).
    pub(crate) fn add_root_bytes(&self, n: u64) {
        self.root_bytes.fetch_add(n, Ordering::Relaxed);
    }
}

/// A marker's grey objects and its counts (Go's `gcWork`). Aligned to two cache lines:
/// workers' structs sit side by side and each writes its stack length and counters per
/// object, which on shared lines would bounce between cores.
#[repr(align(128))]
#[derive(Default)]
pub struct GcWork {
    stack: Vec<Grey>,
    /// Bytes of the objects this marker marked (their slot sizes), not yet flushed.
    pub marked_bytes: u64,
    /// Objects this marker marked, not yet flushed.
    pub marked_objects: u64,
    /// Of those, allocated before the last sweep (counted with ages only).
    promoted_bytes: u64,
    promoted_objects: u64,
    /// Objects (and oblets) this marker scanned.
    pub scanned: u64,
    /// Scan work done, not yet flushed (see [`MarkQueue::scan_work`]).
    pub scan_work: u64,
    /// Time spent with work in hand.
    pub busy: Duration,
    /// The scan work at which the drain under way stops.
    limit: u64,
    /// When the drain under way stops, if it is timed.
    deadline: Option<Instant>,
}

/// Words of a big object scanned between two looks at a drain's budget: a bounded drain
/// (an assist) stops inside an oblet rather than after all 16,384 of its words, which
/// with a cache miss a word can take milliseconds.
const SCAN_CHUNK_WORDS: usize = 1024;

/// Objects a timed drain scans between two looks at the clock.
const CLOCK_EVERY: u32 = 32;

/// How a bounded drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drained {
    /// No grey object was left to take.
    Empty,
    /// The budget ran out first; the rest went to the queue.
    Budget,
}

impl GcWork {
    /// An empty work buffer.
    pub fn new() -> GcWork {
        GcWork::default()
    }

    /// True when this marker holds no grey object.
    pub fn is_empty(&self) -> bool {
        self.stack.is_empty()
    }

    /// Greys the object holding `addr`, if it is a heap object not yet marked. Returns
    /// [`NEWLY`] if this call marked it, and [`YOUNG`] if (marked now or before) it stays
    /// young through this cycle's sweep.
    #[inline(always)]
    fn shade(&mut self, q: &MarkQueue, addr: usize) -> u8 {
        // SAFETY: a cycle marks with sweeping drained (no span is freed or swept), which
        // is `find_object_unlocked`'s contract; the result is used only within this call.
        let Some(obj) = (unsafe { q.heap.find_object_unlocked(addr) }) else {
            return 0;
        };
        // Alloc bits change only when a span is swept, so the answer holds all cycle.
        let young = q.ages && obj.is_new();
        let newly = if q.exclusive {
            // SAFETY: an exclusive queue's maker promised one marker at a time and no
            // allocation meanwhile (`MarkQueue::new`).
            unsafe { obj.try_mark_exclusive() }
        } else {
            obj.try_mark()
        };
        if !newly {
            return if young { YOUNG } else { 0 };
        }
        self.marked_bytes += obj.slot_size() as u64;
        self.marked_objects += 1;
        let old = q.ages && !young;
        if old {
            self.promoted_bytes += obj.slot_size() as u64;
            self.promoted_objects += 1;
        }
        if !obj.noscan() {
            self.stack.push(Grey {
                span: NonNull::from(obj.span()),
                base: obj.base(),
                from_old: if old { GREY_OLD } else { 0 },
            });
        }
        if young {
            NEWLY | YOUNG
        } else {
            NEWLY
        }
    }

    /// Shades the pointer `value` read from word `slot` of an object that will be old
    /// after this cycle, dirtying the word's card if what it points at will still be
    /// young (see [`MarkQueue::with_ages`]).
    #[inline(always)]
    fn shade_from_old(&mut self, q: &MarkQueue, slot: usize, value: usize) {
        if self.shade(q, value) & YOUNG != 0 {
            #[cfg(not(loom_mutant = "card_not_kept"))]
            q.heap.dirty_card(slot);
            #[cfg(loom_mutant = "card_not_kept")]
            let _ = slot;
        }
    }

    /// Marks from this marker's grey objects, the queue and unclaimed root jobs until
    /// there is nothing left to take or `budget` units of scan work are done. Grey objects
    /// left over go to the queue. Returns how it ended and the scan work done.
    pub fn drain(&mut self, q: &MarkQueue, budget: u64) -> (Drained, u64) {
        self.drain_until(q, budget, None)
    }

    /// [`GcWork::drain`] that also stops at `deadline` (checked every few dozen objects
    /// and every chunk of a big one): for a mutator's assist, whose stall must stay short
    /// whatever the objects cost to scan (a pointer array over a big heap misses the cache
    /// on every word).
    pub fn drain_until(
        &mut self,
        q: &MarkQueue,
        budget: u64,
        deadline: Option<Instant>,
    ) -> (Drained, u64) {
        if !q.enter() {
            return (Drained::Empty, 0);
        }
        let start = self.scan_work;
        let limit = start.saturating_add(budget);
        self.deadline = deadline;
        let empty = self.drain_loop(q, limit);
        self.deadline = None;
        let done = self.scan_work - start;
        self.share(q);
        self.flush_counts(q);
        q.leave();
        let how = if empty {
            Drained::Empty
        } else {
            Drained::Budget
        };
        (how, done)
    }

    /// Marks until no marker has anything left: for a marker that holds the world stopped
    /// (or is the heap's only mutator) and must see marking through. Other markers may
    /// work beside it; it returns when every one of them is idle and the queue empty.
    pub fn drain_all(&mut self, q: &MarkQueue) {
        if !q.enter() {
            return;
        }
        loop {
            self.drain_loop(q, u64::MAX);
            q.waiting.fetch_add(1, Ordering::SeqCst);
            q.active.fetch_sub(1, Ordering::SeqCst);
            let more = loop {
                if q.has_work() {
                    break true;
                }
                if q.markers() == 0 {
                    break false;
                }
                spin_loop();
            };
            if more {
                q.active.fetch_add(1, Ordering::SeqCst);
                q.waiting.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            q.waiting.fetch_sub(1, Ordering::SeqCst);
            self.flush_counts(q);
            return;
        }
    }

    /// The mark loop. Returns true when it ran out of work, false at `limit`.
    ///
    /// Marking a big heap is a cache miss per object, so objects do not go from the stack
    /// straight to `scan`: they pass through a FIFO of `PREFETCH` slots, prefetched as they
    /// enter, scanned as they leave, which keeps that many misses in flight (Boehm's and
    /// Cher, Hosking and Vijaykumar's prefetch-on-grey, 2004). The FIFO's objects are this
    /// marker's work in hand: it does not stop until the FIFO is empty. Large objects and
    /// oblets are scanned as they are taken (a prefetch of one line is nothing to them);
    /// with nothing new to take, the oldest in hand is scanned at once (a list has one
    /// grey object at a time). `GcConfig::mark_prefetch` off makes the FIFO one deep.
    fn drain_loop(&mut self, q: &MarkQueue, limit: u64) -> bool {
        let mut fifo: [Option<Grey>; PREFETCH] = [None; PREFETCH];
        // Without prefetching, a FIFO of one: each object is scanned as the next is taken.
        let depth = if q.prefetch { PREFETCH } else { 1 };
        let mut at = 0;
        let mut in_hand = 0;
        let start = Instant::now();
        self.limit = limit;
        let mut until_clock = CLOCK_EVERY;
        let empty;
        loop {
            if self.deadline.is_some() {
                until_clock -= 1;
                if until_clock == 0 {
                    until_clock = CLOCK_EVERY;
                    self.check_deadline();
                }
            }
            if self.scan_work >= self.limit && in_hand > 0 {
                // Budget spent: what is in flight goes back to the stack unscanned, so a
                // bounded drain overshoots by one object at most (one 128 KiB oblet).
                self.stack.extend(fifo.iter_mut().filter_map(Option::take));
                in_hand = 0;
            }
            let next = if self.scan_work < self.limit {
                self.find_work(q)
            } else {
                None
            };
            match next {
                Some(g) if is_large(g) => {
                    // Deferred, it would only be kept from the other markers.
                    self.scan(q, g);
                    if q.should_balance(self.stack.len()) {
                        self.give_half(q);
                    }
                    continue;
                }
                Some(g) => {
                    if q.prefetch {
                        prefetch(g.base + g.from() * 8);
                    }
                    in_hand += 1;
                }
                None if in_hand == 0 => {
                    empty = self.scan_work < self.limit;
                    break;
                }
                None => {
                    // Not after a walk through the empty slots before it: a list's next
                    // node waited a whole round of the FIFO, each step a look at the
                    // shared queue (marking a list ran 2.1x slower than without the FIFO).
                    while fifo[at].is_none() {
                        at = if at + 1 == depth { 0 } else { at + 1 };
                    }
                }
            }
            if let Some(g) = std::mem::replace(&mut fifo[at], next) {
                in_hand -= 1;
                self.scan(q, g);
                if q.should_balance(self.stack.len()) {
                    self.give_half(q);
                }
            }
            at += 1;
            if at == depth {
                at = 0;
            }
        }
        self.busy += start.elapsed();
        empty
    }

    fn find_work(&mut self, q: &MarkQueue) -> Option<Grey> {
        loop {
            if let Some(g) = self.stack.pop() {
                return Some(g);
            }
            if let Some(batch) = q.batches.pop() {
                let empty = std::mem::replace(&mut self.stack, batch);
                q.batches.recycle(empty);
                continue;
            }
            if !self.scan_root_job(q) {
                return None;
            }
            // A root job may shade nothing (a parked goroutine whose stack holds no heap
            // pointer): look at the budget and the clock between jobs too, or a bounded
            // drain runs through every such job at once (190 ms of a stop with 100,000
            // fresh goroutines).
            if self.deadline.is_some() {
                self.check_deadline();
            }
            if self.scan_work >= self.limit {
                return None;
            }
        }
    }

    /// Claims and scans the next root job, if one is left.
    fn scan_root_job(&mut self, q: &MarkQueue) -> bool {
        if !q.roots_pending() {
            return false;
        }
        let Some(roots) = q.roots.lock().clone() else {
            return false;
        };
        let job = q.root_next.fetch_add(1, Ordering::SeqCst);
        if job >= q.root_total {
            return false;
        }
        let mut words = 0u64;
        let young = std::cell::Cell::new(false);
        roots.scan(
            job,
            &mut Tracer::noting_young(
                &mut |addr, _| {
                    words += 1;
                    if self.shade(q, addr) & YOUNG != 0 {
                        young.set(true);
                    }
                },
                &young,
            ),
        );
        self.scan_work += 8 * words;
        q.add_root_bytes(8 * words);
        q.root_done.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Hands the older half of this marker's stack to the queue, as one batch.
    fn give_half(&mut self, q: &MarkQueue) {
        let half = self.stack.len() / 2;
        let mut batch = q.batches.take_empty();
        batch.extend(self.stack.drain(..half));
        q.batches.push(batch);
        q.notify();
    }

    /// Shades every pointer of a grey object (or of one oblet of it).
    #[inline]
    fn scan(&mut self, q: &MarkQueue, g: Grey) {
        self.scanned += 1;
        // SAFETY: span structs outlive their heap's queue; `g` came from an ObjectRef.
        let span = unsafe { g.span.as_ref() };
        // SAFETY: as in `shade`; (span, base) came from an ObjectRef this cycle.
        if let Some(mask) = unsafe { q.heap.uniform_mask(span) } {
            self.scan_work += 8 * (64 - mask.leading_zeros()) as u64;
            let mut bits = mask;
            while bits != 0 {
                let addr = g.base + bits.trailing_zeros() as usize * 8;
                bits &= bits - 1;
                // SAFETY: a pointer word of an allocated object (objects are never freed
                // while marking runs).
                let value = unsafe { load_word(addr) };
                if value != 0 {
                    if g.old() {
                        self.shade_from_old(q, addr, value);
                    } else {
                        self.shade(q, value);
                    }
                }
            }
            return;
        }
        self.scan_words(q, span, g);
    }

    /// `scan` for objects whose pointer words come from the bitmap or a layout.
    #[inline(never)]
    fn scan_words(&mut self, q: &MarkQueue, span: &MSpan, g: Grey) {
        // SAFETY: as in `scan`.
        let extent = unsafe { q.heap.pointer_words(span, g.base) }.extent();
        let end = if extent > OBLET_WORDS {
            if g.from() == 0 {
                let mut from = OBLET_WORDS;
                while from < extent {
                    self.stack.push(g.at(from));
                    from += OBLET_WORDS;
                }
            }
            // The end of the oblet `from` is in (a grey object split at a budget resumes
            // mid-oblet).
            ((g.from() / OBLET_WORDS + 1) * OBLET_WORDS).min(extent)
        } else {
            extent
        };
        let mut from = g.from();
        while from < end {
            let to = (from + SCAN_CHUNK_WORDS).min(end);
            // SAFETY: as in `scan`.
            for addr in unsafe { q.heap.pointer_words(span, g.base) }.restrict(from, to) {
                // SAFETY: as in `scan`.
                let value = unsafe { load_word(addr) };
                if value != 0 {
                    if g.old() {
                        self.shade_from_old(q, addr, value);
                    } else {
                        self.shade(q, value);
                    }
                }
            }
            self.scan_work += 8 * (to - from) as u64;
            from = to;
            self.check_deadline();
            if from < end && self.scan_work >= self.limit {
                // Budget spent: the rest of the object stays grey.
                self.stack.push(g.at(from));
                return;
            }
        }
    }

    /// Past the drain's deadline, spends its budget (the drain then stops as if it had).
    #[inline]
    fn check_deadline(&mut self) {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.limit = self.scan_work;
        }
    }

    /// Hands all of this marker's grey objects to the queue, as one batch.
    fn share(&mut self, q: &MarkQueue) {
        if self.stack.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.stack, q.batches.take_empty());
        q.batches.push(batch);
        q.notify();
    }

    /// Shades what a flushed write-barrier buffer or a root scan produced and hands the
    /// grey objects to the queue, as a marker that joins for the push (see the module
    /// comment). Returns how many objects it greyed.
    pub fn shade_all(&mut self, q: &MarkQueue, addrs: impl Iterator<Item = usize>) -> usize {
        if !q.enter() {
            return 0;
        }
        let mut n = 0;
        for a in addrs {
            n += (self.shade(q, a) & NEWLY) as usize;
        }
        self.share(q);
        self.flush_counts(q);
        q.leave();
        n
    }

    /// Adds this marker's counts to the queue's.
    fn flush_counts(&mut self, q: &MarkQueue) {
        if self.marked_bytes != 0 {
            q.marked_bytes
                .fetch_add(std::mem::take(&mut self.marked_bytes), Ordering::Relaxed);
        }
        if self.marked_objects != 0 {
            q.marked_objects
                .fetch_add(std::mem::take(&mut self.marked_objects), Ordering::Relaxed);
        }
        if self.promoted_objects != 0 {
            q.promoted_bytes
                .fetch_add(std::mem::take(&mut self.promoted_bytes), Ordering::Relaxed);
            q.promoted_objects.fetch_add(
                std::mem::take(&mut self.promoted_objects),
                Ordering::Relaxed,
            );
        }
        if self.scan_work != 0 {
            q.scan_work
                .fetch_add(std::mem::take(&mut self.scan_work), Ordering::Relaxed);
        }
    }
}

/// Marks everything reachable from what was shaded into the queue, on `workers.len()`
/// threads (the calling thread is one), with the world stopped. (Loom models start their
/// markers on loom threads themselves; here, under loom, one thread marks.)
pub(crate) fn drain_stopped(q: &MarkQueue, workers: &mut [GcWork]) {
    if workers.len() == 1 || cfg!(loom) {
        workers[0].drain_all(q);
        return;
    }
    std::thread::scope(|scope| {
        let (first, rest) = workers.split_first_mut().expect("at least one worker");
        for w in rest {
            std::thread::Builder::new()
                .name("minigo-mark".into())
                .spawn_scoped(scope, move || w.drain_all(q))
                .expect("the OS refused a mark worker thread");
        }
        first.drain_all(q);
    });
}
