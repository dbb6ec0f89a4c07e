//! One collection cycle, phase by phase (Go's `mgc.go`):
//!
//! 1. **Sweep termination** ([`Collector::start_cycle`], mutators stopped): finish the last
//!    cycle's sweep (the caller has swept most of it already, before stopping anyone);
//!    turn allocate-black on and give each mutator state the cycle's mark queue, which
//!    turns its write barrier on; take the roots — a
//!    standalone heap's are traced right here, the runtime's become root jobs (a
//!    goroutine stack each) that markers scan later; set the phase to `Mark`; wake the
//!    background workers. The world restarts.
//! 2. **Concurrent mark**: background workers, and mutators' assists and barrier flushes,
//!    drain grey objects and root jobs while the mutators run. A running goroutine's stack
//!    is scanned before it resumes; a new object is black; a pointer store is recorded by
//!    the write barrier. When the last marker leaves with nothing queued, the queue raises
//!    its done hint.
//! 3. **Mark termination** ([`Collector::mark_termination`], mutators stopped): shade what
//!    every write-barrier buffer holds; if that (or a marker still at work) leaves grey
//!    objects, mark a little with the world stopped and, if that is not the end of it,
//!    give the world back and let marking go on (a retry). Otherwise: verify if asked,
//!    clear weak tables, clear the marks of slots the mcaches did not use, make the
//!    marked bytes the live heap, start the sweep cycle, release every mcache (sweeping
//!    what they held), set the next goal and trigger, phase `Off`.
//! 4. **Sweep**: spans are swept lazily by allocation and by the background sweeper,
//!    which then returns memory over the retention target to the OS.
//!
//! With [`GcConfig::stop_the_world`](crate::GcConfig) the three first phases run in one
//! stop ([`Collector::collect_stopped`]), marking on every processor, as before marking
//! was concurrent.

use std::sync::Arc as StdArc;
use std::time::Instant;

use minigo_alloc_core::sync::{spin_loop, Arc, Ordering};
use minigo_alloc_core::KeepMarks;

use crate::generations::MinorRoots;
use crate::mark::{drain_stopped, Drained, GcWork, MarkCpu, MarkQueue, RootJobs};
use crate::mutator::MutatorState;
use crate::phase::GcPhase;
use crate::roots::{Liveness, Roots, Tracer};
use crate::stats::CycleRecord;
use crate::verify;
use crate::workers::Job;
use crate::Collector;

/// Scan work mark termination may do with the world stopped before it gives up and lets
/// marking go on concurrently (about 100 µs of marking).
const STOPPED_DRAIN_WORK: u64 = 256 << 10;

/// A cycle whose last one scanned at most this much is marked to its end in the stop that
/// starts it ([`Collector::finish_small_cycle`]), with at most twice this much scan work
/// and [`SMALL_CYCLE_TIME`] of marking (a heap grows between cycles).
pub const SMALL_CYCLE_WORK: u64 = 256 << 10;

/// A minor cycle marks in its first stop ([`Collector::finish_small_cycle`]) when the last
/// minor one did at most this much scan work (its young survivors and the old objects of
/// dirty cards, not the heap). Without the test, `latency 1GiB`'s minor cycles, whose
/// dirty cards hold pointers all over a GiB (a cache and TLB miss each), overran the time
/// bound by the length of one root job: a 0.6 ms stop.
pub const MINOR_STOP_WORK: u64 = 1 << 20;

/// The longest a small cycle, or a minor one, marks in its first stop before marking goes
/// on concurrently: with the rest of that stop, under the half millisecond a pause may
/// take.
pub const SMALL_CYCLE_TIME: std::time::Duration = std::time::Duration::from_micros(300);

/// Bytes expected to be marked from which a stopped mark uses more than one thread:
/// below it, starting threads costs more than it saves.
const PARALLEL_MARK_MIN: u64 = 1 << 20;

/// What a stop left for [`Collector::resume`] to wake.
#[derive(Default)]
pub(crate) struct Deferred {
    start: Option<Job>,
    finished: Option<Arc<MarkQueue>>,
    sweep: Option<u64>,
}

/// Where a cycle's roots come from.
pub enum CycleRoots<'a> {
    /// Trace these now, in the first stop: a standalone heap's VM state. The embedder must
    /// then keep the rule of concurrent marking (see [`crate::Roots`]).
    Now(&'a mut dyn Roots),
    /// Scan these jobs on the markers while the mutators run (the runtime's goroutine
    /// stacks, globals and channel buffers), and end marking through this host.
    Jobs(StdArc<dyn MarkHost>),
}

/// A multi-mutator embedder's side of a concurrent cycle (the runtime): root jobs to scan,
/// and a way to stop every mutator to end marking.
pub trait MarkHost: RootJobs {
    /// Marking looks complete: stop every mutator, call [`Collector::mark_termination`]
    /// with their states, and restart them. Called on a background mark worker's thread,
    /// which is none of the mutators.
    fn finish_mark(&self);

    /// Processors with nothing to run now: idle mark workers may use that many.
    fn idle_procs(&self) -> usize;
}

/// The cycle under way.
pub(crate) struct Cycle {
    pub(crate) queue: Arc<MarkQueue>,
    forced: bool,
    start_ns: u64,
    sweep_term_ns: u64,
    mark_start: Instant,
    heap_before: u64,
    trigger: u64,
    goal: u64,
    retries: u32,
    retry_ns: u64,
    /// The stops so far.
    pauses: Vec<u64>,
    /// Mark termination runs in the first stop, which its time then lengthens.
    in_first_stop: bool,
    /// CPU the markers spent with the world stopped (a stopped mark's drain).
    stopped_mark_cpu_ns: u64,
    workers: usize,
    concurrent: bool,
    /// A minor cycle (generational mode): its roots included the dirty cards' old objects.
    minor: bool,
}

impl Collector {
    /// Sweep termination and the start of marking (Go's `gcStart`, world stopped). Call
    /// with every mutator of the heap stopped, passing each one's state; sweep what is
    /// left of the last cycle before stopping them ([`MHeap::sweep_all`]) so this stop is
    /// short, and call [`Collector::resume`] once they run again (it wakes the background
    /// workers). Returns false, doing nothing, if a cycle is already under way.
    ///
    /// [`MHeap::sweep_all`]: minigo_alloc_core::MHeap::sweep_all
    ///
    /// Safe code cannot start a cycle behind the mutators' backs:
    ///
    /// ```compile_fail,E0133
    /// # use minigo_gc::{CycleRoots, GcConfig, Heap, NoRoots};
    /// let heap = Heap::new(GcConfig::default()).unwrap();
    /// let _m = heap.mutator().unwrap();
    /// heap.collector().start_cycle(&mut [], CycleRoots::Now(&mut NoRoots), true);
    /// ```
    ///
    /// # Safety
    /// `states` holds the state of every mutator of this heap, and none of those mutators
    /// runs meanwhile (they are stopped, or the caller is the heap's only one): a state
    /// left out would keep its write barrier off, or its allocation white, while others
    /// mark, and objects it reaches could be freed.
    pub unsafe fn start_cycle(
        &self,
        states: &mut [&mut MutatorState],
        roots: CycleRoots<'_>,
        forced: bool,
    ) -> bool {
        // SAFETY: the caller's contract.
        unsafe { self.begin(states, roots, forced, true) }
    }

    /// [`Collector::start_cycle`], waking the workers at [`Collector::resume`] or not.
    ///
    /// # Safety
    /// As for [`Collector::start_cycle`].
    unsafe fn begin(
        &self,
        states: &mut [&mut MutatorState],
        roots: CycleRoots<'_>,
        forced: bool,
        wake_workers: bool,
    ) -> bool {
        let t0 = Instant::now();
        let mut cur = self.cycle.lock();
        if cur.is_some() || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let heap = &*self.heap;
        let heap_before = heap.heap_live();
        heap.finish_sweep();

        let (host, mut now) = match roots {
            CycleRoots::Now(r) => (None, Some(r)),
            CycleRoots::Jobs(h) => (Some(h), None),
        };
        let gen = self.gen.begin(forced);
        let minor = gen.minor;
        if gen.clear_marks {
            // SAFETY: the mutators are stopped (the caller's contract), sweeping was just
            // drained, and no cycle marks (`cur` is None).
            unsafe { heap.clear_marks() };
        }
        let concurrent = !self.config.stop_the_world;
        let exclusive = !concurrent && self.stopped_mark_threads(heap_before) == 1;
        let mut jobs = host.clone().map(|h| h as StdArc<dyn RootJobs>);
        if minor {
            // The old objects on dirty cards are roots too, scanned by the markers.
            jobs = Some(StdArc::new(MinorRoots::new(self.heap.clone(), jobs)));
        }
        // SAFETY: sweeping was just drained (`finish_sweep`) and restarts only in mark
        // termination, after the queue is closed; an exclusive queue is a stopped mark's
        // on one thread, with every mutator stopped.
        let q = unsafe { MarkQueue::new(self.heap.clone(), exclusive, jobs) };
        let q = match self.config.mark_prefetch {
            true => q,
            false => q.without_prefetch(),
        };
        let q = Arc::new(match minor && self.config.ages {
            true => q.with_ages(),
            false => q,
        });
        if minor {
            // SAFETY: the mutators are stopped (the caller's contract) and each gets the
            // new epoch's marker right here.
            unsafe { heap.begin_minor_cards() };
            give_card_markers(heap, states);
        }
        // SAFETY: turning it on is always sound (objects allocated marked survive).
        unsafe { heap.set_alloc_black(true) };
        let mut grey = Vec::new();
        for st in states.iter_mut() {
            st.cache.begin_mark();
            st.cache.take_reserved();
            st.queue = Some(q.clone());
            st.credit = 0;
        }
        if let Some(r) = now.as_mut() {
            r.trace(&mut Tracer::new(&mut |addr, _| grey.push(addr)));
        }
        GcWork::new().shade_all(&q, grey.into_iter());
        *self.queue.lock() = Some(q.clone());
        self.phase.set(GcPhase::Mark);

        // The heap the cycle started at, if below the trigger (an early start, a forced
        // cycle): Go's `triggered`.
        let trigger = self
            .trigger
            .load(Ordering::Relaxed)
            .min(self.heap.heap_live());
        self.mark_trigger.store(trigger, Ordering::Relaxed);
        self.mark_expected
            .store(self.estimates.lock().last_scan_work, Ordering::Relaxed);
        self.mark_max_work.store(heap_before, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::AcqRel);

        let workers = match (&self.workers, wake_workers && concurrent) {
            (Some(w), true) => {
                self.deferred.lock().start = Some(Job {
                    queue: q.clone(),
                    host,
                    start: Instant::now(),
                    gc_cpu: self.gc_cpu_total.clone(),
                });
                w.len()
            }
            _ => 0,
        };
        let sweep_term_ns = t0.elapsed().as_nanos() as u64;
        *cur = Some(Cycle {
            queue: q,
            forced,
            start_ns: (t0 - self.created).as_nanos() as u64,
            sweep_term_ns,
            mark_start: Instant::now(),
            heap_before,
            trigger,
            goal: self.goal.load(Ordering::Relaxed),
            retries: 0,
            retry_ns: 0,
            pauses: vec![sweep_term_ns],
            in_first_stop: false,
            stopped_mark_cpu_ns: 0,
            workers,
            concurrent,
            minor,
        });
        true
    }

    /// Marks a small heap's cycle to its end in the stop that started it, and ends it there
    /// (call right after [`Collector::start_cycle`], the mutators still stopped, with the
    /// roots as for [`Collector::mark_termination`]). Returns whether the cycle ended.
    ///
    /// When the last cycle scanned at most [`SMALL_CYCLE_WORK`], marking it beside the
    /// mutators costs more than marking it: waking the workers, a second stop from one of
    /// them, the write barrier's slow path, a goroutine moved between Ps — eighteen
    /// context switches a cycle on `churn`, which collects every 2 ms, and 50% more wall
    /// time than stop-the-world mode. So such a cycle marks here, for at most
    /// [`SMALL_CYCLE_TIME`]: the stop stays short (the bound holds whatever the estimate),
    /// and a heap that outgrew the estimate goes on marking concurrently from where this
    /// left off.
    ///
    /// A minor cycle tries when the last minor one did at most [`MINOR_STOP_WORK`] (its
    /// work is the young survivors and the dirty cards, not the heap): marked beside the
    /// mutator, one on gcbench at 1 P took 3 ms of wall for 0.35 ms of marking, and
    /// everything allocated meanwhile was black, so promoted. The time bound is checked
    /// between root jobs too, and a card job is small (`generations.rs`), so the stop
    /// overruns it by one job at most.
    ///
    /// # Safety
    /// `states` holds the state of every mutator of this heap, and none of those mutators
    /// runs meanwhile (they are stopped, or the caller is the heap's only one): a state
    /// left out would keep its write barrier off, or its allocation white, while others
    /// mark, and objects it reaches could be freed.
    pub unsafe fn finish_small_cycle(
        &self,
        states: &mut [&mut MutatorState],
        roots: &mut dyn Roots,
    ) -> bool {
        let (q, minor) = {
            let cur = self.cycle.lock();
            match cur.as_ref() {
                Some(c) if c.concurrent => (c.queue.clone(), c.minor),
                _ => return false,
            }
        };
        let small = if minor {
            self.gen.last_minor_within(MINOR_STOP_WORK)
        } else {
            self.estimates.lock().last_scan_work <= SMALL_CYCLE_WORK
        };
        if !small {
            return false;
        }
        let budget = if minor {
            u64::MAX
        } else {
            2 * SMALL_CYCLE_WORK
        };
        let t0 = Instant::now();
        let mut gcw = GcWork::new();
        let (drained, _) = gcw.drain_until(&q, budget, Some(t0 + SMALL_CYCLE_TIME));
        let ns = t0.elapsed().as_nanos() as u64;
        let done = drained == Drained::Empty && q.quiescent();
        if let Some(c) = self.cycle.lock().as_mut() {
            c.stopped_mark_cpu_ns += ns;
            if let Some(first) = c.pauses.first_mut() {
                *first += ns;
            }
            c.in_first_stop = done;
        }
        self.charge_pause(ns);
        // SAFETY: the caller's contract.
        done && unsafe { self.mark_termination(states, roots) }
    }

    /// Threads a stopped mark of a heap with `heap_before` live uses.
    fn stopped_mark_threads(&self, heap_before: u64) -> usize {
        // The heap before the cycle is mostly garbage when it is small next to the goal;
        // the last cycle's marked bytes say better how much there is to mark.
        let expected = heap_before.min(self.last_marked().unwrap_or(u64::MAX));
        if expected >= PARALLEL_MARK_MIN {
            self.config.mark_workers.max(1)
        } else {
            1
        }
    }

    /// Mark termination (Go's `gcMarkDone` + `gcMarkTermination`, world stopped). Call
    /// with every mutator stopped, passing each one's state and the roots (for verify mode
    /// and weak tables; a runtime passes its full root set, traceable while stopped).
    /// Returns false when marking is not over: the caller restarts the mutators and
    /// marking goes on (the queue will hint again). True when the cycle is done (or none
    /// was under way). Either way, call [`Collector::resume`] once the mutators run again.
    ///
    /// # Safety
    /// `states` holds the state of every mutator of this heap, and none of those mutators
    /// runs meanwhile (they are stopped, or the caller is the heap's only one): a state
    /// left out would keep its write barrier off, or its allocation white, while others
    /// mark, and objects it reaches could be freed.
    pub unsafe fn mark_termination(
        &self,
        states: &mut [&mut MutatorState],
        roots: &mut dyn Roots,
    ) -> bool {
        let t0 = Instant::now();
        let mut cur = self.cycle.lock();
        let Some(c) = cur.as_mut() else {
            return true;
        };
        let q = c.queue.clone();
        let mut gcw = GcWork::new();
        for st in states.iter_mut() {
            st.flush_wb();
        }
        if !q.quiescent() {
            let (_, work) = gcw.drain(&q, STOPPED_DRAIN_WORK);
            // A background worker may have just joined to look for work: give it a moment.
            let spin = Instant::now();
            while !q.quiescent() && !q.has_work() && spin.elapsed().as_micros() < 50 {
                spin_loop();
            }
            if work > 0 {
                c.stopped_mark_cpu_ns += t0.elapsed().as_nanos() as u64;
            }
            if !q.quiescent() {
                let ns = t0.elapsed().as_nanos() as u64;
                c.retries += 1;
                c.retry_ns += ns;
                match c.pauses.last_mut() {
                    Some(first) if std::mem::take(&mut c.in_first_stop) => *first += ns,
                    _ => c.pauses.push(ns),
                }
                self.charge_pause(ns);
                return false;
            }
        }
        self.phase.set(GcPhase::MarkTermination);
        // Before sweeping may start: no marker marks through the queue after this.
        q.close();
        let heap = &*self.heap;
        let heap_at_term = heap.heap_live();
        let mark_ns = (t0 - c.mark_start).as_nanos() as u64;

        if self.config.verify {
            let number = self.stats.lock().num_gc + 1;
            match verify::verify(heap, roots) {
                Err(report) => panic!("minigo gc verify (cycle {number}): {report}"),
                Ok(reachable) if !c.concurrent && !c.minor && reachable != q.marked_objects() => panic!(
                    "minigo gc verify (cycle {number}): marked {} objects but {reachable} are reachable",
                    q.marked_objects()
                ),
                Ok(_) => {}
            }
        }
        roots.clear_weak(&Liveness::new(heap));

        let mut black = 0;
        for st in states.iter_mut() {
            black += st.cache.end_mark();
        }
        // SAFETY: marking is over (the queue is closed, no marker marks after this), and
        // every mcache ended its marking above.
        unsafe { heap.set_alloc_black(false) };
        let pacer = *self.pacer.lock();
        let mut marked = q.marked_bytes() + black;
        let mut objects_live = q.marked_objects();
        let mut goal = pacer.goal(marked, q.root_bytes(), self.overhead());
        let mut keep_marks = KeepMarks::None;
        let mut pace_live = marked;
        if self.config.generational {
            // Without ages, everything a minor cycle traces is promoted; what it allocated
            // black stays young (`KeepMarks::Traced`), unless `black_young` is off.
            let ages = c.minor && self.config.ages;
            let black_young = c.minor && !ages && self.config.black_young;
            let promoted = match (ages, black_young) {
                (true, _) => (q.promoted_bytes(), q.promoted_objects()),
                (false, true) => (q.marked_bytes(), q.marked_objects()),
                (false, false) => (marked, objects_live),
            };
            let o = self.gen.end(
                c.minor,
                (marked, objects_live),
                promoted,
                q.scan_work(),
                goal,
            );
            (marked, objects_live, goal) = (o.live, o.objects, o.goal);
            pace_live = o.pace_live;
            keep_marks = match (o.keep_marks, ages, black_young) {
                (false, _, _) => KeepMarks::None,
                (true, true, _) => KeepMarks::Old,
                (true, false, true) => KeepMarks::Traced,
                (true, false, false) => KeepMarks::All,
            };
        }
        heap.set_heap_live(marked);
        self.mprof.next_cycle(heap);
        // SAFETY: marking is complete: every object reachable from the roots (and from
        // the write barrier's buffers, shaded above) is marked, and so is everything
        // allocated during the cycle; in a minor cycle, every old object that may point at
        // a young one was on a dirty card and had its pointers shaded; with ages, every
        // word of an object that stays old pointing at one that stays young had its card
        // dirtied by a marker (`MarkQueue::with_ages`); the mutators are stopped (the
        // caller's contract).
        unsafe { heap.start_sweep_cycle_keeping_marks(keep_marks) };
        if self.config.generational && !c.minor {
            // Every live object is marked now and points only at marked ones: the cards
            // dirtied so far hold nothing a minor cycle needs. Scanning them would make
            // the first minor cycle after each major one rescan every old object written
            // since the last minor (on gcbench at 1 P, half a major cycle's work, so the
            // policy gave up minor cycles for a while, again and again).
            // SAFETY: the mutators are stopped (the caller's contract) and each gets the
            // new epoch's marker right here.
            unsafe { heap.next_card_epoch() };
            give_card_markers(heap, states);
        }
        for st in states.iter_mut() {
            st.cache.release_all();
            st.queue = None;
            st.credit = 0;
        }
        *self.queue.lock() = None;
        if let Some(w) = &self.workers {
            w.end();
        }

        let assist = q.cpu(MarkCpu::Assist);
        let background = q.cpu(MarkCpu::Background);
        let idle = q.cpu(MarkCpu::Idle);
        let mark_cpu = assist + background + idle + c.stopped_mark_cpu_ns;
        if c.minor {
            // The pacer's estimates stay the last major cycle's: a trigger set from a minor
            // cycle's short mark would start the next major too late (binary-trees 19
            // overshot its goal by 30%), and a minor cycle is paced well enough by them.
        } else if c.concurrent && mark_ns > 0 {
            let procs = self.config.mark_workers.max(1) as f64;
            let span = mark_ns as f64 * procs;
            let u = ((background + assist) as f64 / span).min(0.95);
            self.estimates.lock().end_cycle(
                heap_at_term.saturating_sub(c.trigger),
                q.scan_work(),
                u,
                idle as f64 / span,
            );
        } else {
            self.estimates.lock().last_scan_work = q.scan_work();
        }
        let runway = self.estimates.lock().runway();
        let (trigger, early) = if c.concurrent {
            let trigger = pacer.trigger(marked, goal, runway);
            (trigger, pacer.trigger(pace_live, goal, runway).min(trigger))
        } else {
            (goal, goal)
        };
        self.goal.store(goal, Ordering::Relaxed);
        self.trigger.store(trigger, Ordering::Relaxed);
        self.early_trigger.store(early, Ordering::Relaxed);
        self.phase.set(GcPhase::Off);

        let term_ns = t0.elapsed().as_nanos() as u64;
        self.charge_pause(term_ns);
        let pauses = if c.concurrent {
            let mut p = std::mem::take(&mut c.pauses);
            match p.last_mut() {
                Some(first) if c.in_first_stop => *first += term_ns,
                _ => p.push(term_ns),
            }
            p
        } else {
            vec![c.sweep_term_ns + mark_ns + term_ns]
        };
        let pause_ns = pauses.iter().sum();
        let record = CycleRecord {
            number: 0,
            start_ns: c.start_ns,
            sweep_term_ns: c.sweep_term_ns,
            mark_ns,
            mark_term_ns: term_ns,
            retries: c.retries,
            retry_ns: c.retry_ns,
            pause_ns,
            longest_pause_ns: pauses.iter().copied().max().unwrap_or(0),
            pauses,
            mark_cpu_ns: mark_cpu,
            assist_cpu_ns: assist,
            background_cpu_ns: background,
            idle_cpu_ns: idle,
            longest_assist_ns: q.longest_assist(),
            heap_before: c.heap_before,
            heap_at_term,
            heap_live: marked,
            objects_live,
            root_bytes: q.root_bytes(),
            goal: c.goal,
            next_goal: goal,
            next_trigger: trigger,
            workers: c.workers,
            forced: c.forced,
            concurrent: c.concurrent,
            minor: c.minor,
        };
        *cur = None;
        drop(cur);
        self.record(record);
        {
            let mut d = self.deferred.lock();
            // Ended in the stop that began it: its workers need not wake at all.
            if d.start.as_ref().is_some_and(|j| Arc::ptr_eq(&j.queue, &q)) {
                d.start = None;
            }
            d.finished = Some(q);
            d.sweep = Some(pacer.retain(goal));
        }
        *self.finished.lock() += 1;
        self.finished_cv.notify_all();
        true
    }

    /// Wakes what [`Collector::start_cycle`] and [`Collector::mark_termination`] left
    /// asleep: the background workers of a cycle that began, the background sweeper after
    /// one that ended; and publishes the ended cycle's heap profile. Call once the mutators
    /// stopped for them run again. (Woken inside the stop, a worker thread could take the
    /// stopping thread's core and lengthen the pause by a scheduler slice; the profile's
    /// buckets are walked outside it for the same reason.)
    pub fn resume(&self) {
        self.mprof.flush();
        let d = std::mem::take(&mut *self.deferred.lock());
        if let Some(q) = d.finished {
            q.notify();
        }
        if let Some(retain) = d.sweep {
            self.start_background_sweep(retain);
        }
        if let (Some(job), Some(w)) = (d.start, &self.workers) {
            w.begin(job);
        }
    }

    /// Counts a pause in the collector's CPU total (every processor stops).
    fn charge_pause(&self, ns: u64) {
        let procs = self.config.mark_workers.max(1) as u64;
        let total = self.gc_cpu_total.fetch_add(ns * procs, Ordering::Relaxed) + ns * procs;
        self.update_limiter(total);
    }

    /// A whole cycle in one stop, marking on every processor (Go's
    /// `GODEBUG=gcstoptheworld=1`; also what a forced collection does in that mode). Call
    /// with every mutator stopped. A concurrent cycle under way is finished first, inside
    /// the same stop. Once the collector is closed ([`Collector::abandon_cycle`]) it runs
    /// no cycle and returns the last one's record.
    ///
    /// # Safety
    /// `states` holds the state of every mutator of this heap, and none of those mutators
    /// runs meanwhile (they are stopped, or the caller is the heap's only one): a state
    /// left out would keep its write barrier off, or its allocation white, while others
    /// mark, and objects it reaches could be freed.
    pub unsafe fn collect_stopped(
        &self,
        states: &mut [&mut MutatorState],
        roots: &mut dyn Roots,
        forced: bool,
    ) -> CycleRecord {
        if self.cycle.lock().is_some() {
            // SAFETY: the caller's contract.
            unsafe { self.finish_here(states, roots) };
        }
        let threads = self.stopped_mark_threads(self.heap.heap_live());
        // SAFETY: the caller's contract.
        if !unsafe { self.begin(states, CycleRoots::Now(roots), forced, false) } {
            return self.cycles().pop().unwrap_or_default();
        }
        let q = self.marking_queue().expect("the cycle just began");
        let mut workers: Vec<GcWork> = (0..threads).map(|_| GcWork::new()).collect();
        let t = Instant::now();
        drain_stopped(&q, &mut workers);
        if let Some(c) = self.cycle.lock().as_mut() {
            c.stopped_mark_cpu_ns += t.elapsed().as_nanos() as u64 * threads as u64;
            c.workers = threads;
        }
        // SAFETY: the caller's contract.
        unsafe { self.finish_here(states, roots) };
        self.cycles().pop().expect("a cycle just ended")
    }

    /// Runs a whole cycle on the calling mutator, which stops nobody else: the standalone
    /// heap's forced collections, out-of-memory retries and stress mode. A cycle under way
    /// is finished first; background workers help only when there is much to mark.
    ///
    /// # Safety
    /// As for [`Collector::start_cycle`].
    pub(crate) unsafe fn collect_here(
        &self,
        states: &mut [&mut MutatorState],
        roots: &mut dyn Roots,
        forced: bool,
    ) -> CycleRecord {
        if self.config.stop_the_world {
            // SAFETY: the caller's contract.
            let r = unsafe { self.collect_stopped(states, roots, forced) };
            self.resume();
            return r;
        }
        if self.cycle.lock().is_some() {
            // SAFETY: the caller's contract.
            unsafe { self.finish_here(states, roots) };
            self.resume();
        }
        let helpers = self.stopped_mark_threads(self.heap.heap_live()) > 1;
        // SAFETY: the caller's contract.
        if !unsafe { self.begin(states, CycleRoots::Now(roots), forced, helpers) } {
            return self.cycles().pop().unwrap_or_default();
        }
        self.resume();
        if let Some(c) = self.cycle.lock().as_mut() {
            // The calling mutator marks too.
            c.workers += 1;
        }
        // SAFETY: the caller's contract.
        unsafe { self.finish_here(states, roots) };
        self.resume();
        self.cycles().pop().expect("a cycle just ended")
    }

    /// Marks the cycle under way to its end on this thread, then terminates it: for a
    /// caller that is the heap's only mutator, or holds every mutator stopped.
    ///
    /// # Safety
    /// As for [`Collector::start_cycle`].
    pub(crate) unsafe fn finish_here(
        &self,
        states: &mut [&mut MutatorState],
        roots: &mut dyn Roots,
    ) {
        loop {
            let Some(q) = self.marking_queue() else {
                return;
            };
            for st in states.iter_mut() {
                st.flush_wb();
            }
            let mut gcw = GcWork::new();
            let t = Instant::now();
            gcw.drain_all(&q);
            if let Some(c) = self.cycle.lock().as_mut() {
                c.stopped_mark_cpu_ns += t.elapsed().as_nanos() as u64;
            }
            // SAFETY: the caller's contract.
            if unsafe { self.mark_termination(states, roots) } {
                return;
            }
        }
    }
}

impl Collector {
    /// Gives up the cycle under way without finishing it, closes the collector (no cycle
    /// starts again: the marks left behind would make the next one skip objects), and
    /// waits until no background worker holds anything of the cycle: for an embedder
    /// shutting down (the runtime when `run` returns, its other goroutines abandoned and
    /// perhaps still allocating for a moment). The heap keeps serving allocations
    /// without collecting.
    pub fn abandon_cycle(&self) {
        let mut cur = self.cycle.lock();
        self.closed.store(true, Ordering::Release);
        if let Some(c) = cur.take() {
            c.queue.finish();
            *self.queue.lock() = None;
            // SAFETY: the collector is closed, so no sweep cycle ever starts again: the
            // objects allocated unmarked from now on are never freed.
            unsafe { self.heap.set_alloc_black(false) };
            self.phase.set(GcPhase::Off);
            if let Some(w) = &self.workers {
                w.end();
            }
        }
        drop(cur);
        // A cycle that began but whose mutators never resumed left its workers' job here;
        // the job holds the host (a runtime's scheduler), which must not outlive it.
        self.deferred.lock().start = None;
        if let Some(w) = &self.workers {
            w.quiesce();
        }
    }
}

/// Gives every mutator the barrier's marker for the card table's new epoch (the table just
/// moved to it, with the mutators stopped). The seeded bug `card_epoch_stale` skips it.
fn give_card_markers(heap: &minigo_alloc_core::MHeap, states: &mut [&mut MutatorState]) {
    let marker = heap.card_marker();
    #[cfg(not(loom_mutant = "card_epoch_stale"))]
    for st in states.iter_mut() {
        st.set_card_marker(marker);
    }
    #[cfg(loom_mutant = "card_epoch_stale")]
    let _ = (marker, states);
}
