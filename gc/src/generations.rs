//! Generational collection with sticky mark bits (`GcConfig::generational`, on unless
//! `GODEBUG=gcgen=0`): a non-moving collector's young generation, as MMTk's
//! sticky-mark-bit plans and Ruby's RGenGC build it. Go has none: every Go cycle marks
//! the whole heap.
//!
//! 1. **Old is marked.** A sweep may keep the mark bits instead of clearing them
//!    ([`MHeap::start_sweep_cycle_keeping_marks`]): what survived stays marked, and is the
//!    old generation. Objects allocated afterwards are unmarked (allocation is black only
//!    while a cycle marks): the young generation.
//! 2. **The remembered set is the card table.** Every pointer store through
//!    [`MutatorState::write`](crate::MutatorState::write) dirties its slot's card. A young
//!    object reachable only through an old one was stored into it after the old one was
//!    marked, so that store's card is dirty.
//! 3. **A minor cycle** is an ordinary cycle (concurrent, with the runtime's root jobs and
//!    all) but for three things: besides the roots, it shades what the pointer words of
//!    the marked objects on dirty cards hold, cleaning the cards
//!    ([`MHeap::scan_dirty_cards`], root jobs of [`CARDS_PER_JOB`] cards); marking stops
//!    at every marked (old) object, so old objects are not marked again; and, when the
//!    last minor cycle was short (1 MiB of scan work), it marks in its first stop for up
//!    to 300 µs before it lets the mutators run, so that a short one ends there
//!    (`Collector::finish_small_cycle`). The snapshot the hybrid barrier keeps is the
//!    same as a major cycle's: a young object reachable when marking begins is reached
//!    from a root, from a young object, or from an old one on a dirty card. Its sweep
//!    frees the young that were not reached, and keeps the marks of what it traced, but
//!    not of what the mutators allocated (black) while it marked ([`KeepMarks::Traced`]):
//!    those stay young. A minor cycle at 1 P marks beside the mutator for as long as the
//!    mutator takes to allocate a good slice of its runway, and promoting all that (most
//!    of it dead by the next cycle) grew the old generation by about what the cycle
//!    allocated: gcbench 18 at 1 P ran 32 major cycles where the same run with the world
//!    stopped for each cycle ran 19. An old object that points at one of those was
//!    written while the cycle marked, so its card was dirtied then; the cycle's first stop
//!    moves the card table to a new epoch ([`MHeap::begin_minor_cards`]), the scan takes
//!    the cards of the epoch before, and a card a mutator dirties after that holds the
//!    new one: the scan reads it (it may have been dirty before) but leaves it dirty, for
//!    the next minor cycle.
//! 4. **Objects may age** (`GcConfig::ages`, `GODEBUG=gcage=1`; off by default): a young object
//!    becomes old when it survives its second cycle, not its first. A minor cycle finds
//!    the temporary structures the program is building (a tree half made, on gcbench)
//!    live, and promoted they would stay until the next major cycle, which they bring
//!    closer. The age is in bits the spans have anyway: an alloc bit is set only by a
//!    sweep, so an object allocated since the last sweep has it clear. After a minor
//!    cycle the sweep keeps the marks of the objects allocated before the last sweep and
//!    clears those of the others it keeps ([`KeepMarks::Old`]): allocated and unmarked
//!    between cycles is a young object that survived one. What this costs is the
//!    remembered set: an old object may now point at a young one that nobody stored
//!    since the last cycle (the first minor cycle found it through a card it cleaned, or
//!    it is being promoted with a pointer to a younger one). So a minor cycle's markers,
//!    on finding a word of an object that stays old pointing at one allocated since the
//!    last sweep, leave that word's card dirty ([`MarkQueue::with_ages`]), for the next
//!    minor cycle to scan. Why it is off: on gcbench 18 at 1 P it ran 13 major cycles
//!    where promotion at the first survival ran 23 (442 -> 348 ms of their mark CPU), but
//!    its minor cycles marked the survivors twice and rescanned the cards kept dirty
//!    (209 -> 291 ms), and wall time was the same or 2-4% worse; binary-trees likewise.
//!    The deep temporary trees there outlive two minor cycles anyway.
//! 5. **A major cycle** is an ordinary one: the sweep before it cleared the marks, or, for
//!    a forced collection after a sweep that kept them, it clears them in its first stop
//!    ([`MHeap::clear_marks`]); its sweep keeps every mark: whatever a major cycle
//!    finds live is old. When it ends, every live object is marked and points only
//!    at marked ones, so the cards dirtied until then say nothing the next minor cycle
//!    needs: its last stop moves the card table to a new epoch
//!    ([`MHeap::next_card_epoch`]), which makes every card read as clean without a walk
//!    of the table, and gives each mutator's barrier the new epoch to store. (Before, the
//!    first minor cycle after a major one scanned every old object written since the last
//!    minor: on gcbench at 1 P, half a major's work, so the policy below gave up minor
//!    cycles, and the majors it ran instead left as many cards for the next try: 4 minor
//!    cycles of 61.)
//!
//! **Policy.** The heap goal is set by each major cycle, by the pacer's rule (GOGC applied
//! to what the major found live, the memory limit respected), and minor cycles keep it:
//! a minor runs when the heap reaches the pacer's trigger for that goal, and the next
//! cycle is major once the old generation has grown past the middle of the room the goal
//! left (old objects that died since the major are counted as live until it). So peak
//! heap stays near what it would be without generations, and a program whose young
//! objects die pays for marking only what survives. A major cycle may start early, at the
//! trigger paced from what the last major found live, as it would be without
//! generations, once the last cycle's sweep is done: paced from the old generation's
//! growth, it came 95% of the way to the goal, too late for a cycle that marks the whole
//! heap. (Started early with spans left to sweep, the goroutine starting it would sweep
//! them all first.) A minor cycle whose scan work (the
//! young it marked, the old objects of dirty cards) reached half the last major cycle's
//! was not worth it: the next four cycles are major (a small heap, or old objects written
//! all over, as in `churn`'s window), then eight if the next try is not worth it either,
//! and so on up to 64. A forced collection (`gc()`,
//! `Mutator::collect`, the last try before out-of-memory) is always major.
//!
//! [`MHeap::start_sweep_cycle_keeping_marks`]: minigo_alloc_core::MHeap::start_sweep_cycle_keeping_marks
//! [`MHeap::scan_dirty_cards`]: minigo_alloc_core::MHeap::scan_dirty_cards
//! [`MHeap::clear_marks`]: minigo_alloc_core::MHeap::clear_marks
//! [`MHeap::next_card_epoch`]: minigo_alloc_core::MHeap::next_card_epoch
//! [`KeepMarks::Old`]: minigo_alloc_core::KeepMarks::Old
//! [`KeepMarks::Traced`]: minigo_alloc_core::KeepMarks::Traced
//! [`MHeap::begin_minor_cards`]: minigo_alloc_core::MHeap::begin_minor_cards
//! [`MarkQueue::with_ages`]: crate::mark::MarkQueue::with_ages

use std::sync::Arc as StdArc;

use minigo_alloc_core::sync::{load_word, Arc, Mutex};
use minigo_alloc_core::MHeap;

use crate::mark::RootJobs;
use crate::phase::BarrierHold;
use crate::roots::Tracer;

/// Cards a minor cycle's root job scans (32 KiB of heap). A job is not cut short, and a
/// minor cycle's first stop marks for a bounded time, checked between jobs: a job of old
/// pointer arrays, all on dirty cards, shades 4,096 words, each a cache miss when they
/// point all over the heap (`latency`'s window: 128 KiB jobs lengthened a stop by 0.9
/// ms). Claiming a job is an atomic add and a lock: 32,768 of them per GiB of heap.
const CARDS_PER_JOB: usize = 1 << 6;

/// A minor cycle is worth it while its scan work is under 1/this of a major cycle's.
const MINOR_WORK_RATIO: u64 = 2;

/// Major cycles run after a minor cycle that was not worth it, before minor ones are tried
/// again; doubled, up to `MAX_SKIP_MINORS`, while the tries are not worth it either.
const SKIP_MINORS: u32 = 4;
const MAX_SKIP_MINORS: u32 = 64;

/// What the generational policy knows between cycles.
#[derive(Default)]
pub(crate) struct Generations {
    /// Held while the last sweep cycle kept the mark bits: the next cycle may be minor (a
    /// major one must clear them first), so every pointer store must take the barrier's
    /// path and dirty its card ([`crate::any_barrier_on`]). Taken and given back only with
    /// the mutators stopped, in the stops that begin and end a cycle (while one marks, the
    /// phase holds the barrier on).
    sticky: Mutex<Option<BarrierHold>>,
    sizes: Mutex<Sizes>,
}

#[derive(Default, Clone, Copy)]
struct Sizes {
    /// Scan work of the last major cycle.
    major_work: u64,
    /// Major cycles to run before minor ones are tried again, after a minor cycle that
    /// cost too much of what a major one does; and how many the next such minor cycle
    /// sets (doubled each time one in a row was not worth it).
    skip_minors: u32,
    next_skip: u32,
    /// Bytes and objects marked now: the old generation (an over-estimate once old objects
    /// die, until the next major).
    old_bytes: u64,
    old_objects: u64,
    /// What the last major cycle found live, and the goal it set.
    major_live: u64,
    major_goal: u64,
    /// Scan work of the last minor cycle, if there was one.
    last_minor_work: Option<u64>,
}

/// What a cycle's end decides for the next one.
pub(crate) struct Outcome {
    /// Bytes and objects live (old and young marked).
    pub(crate) live: u64,
    pub(crate) objects: u64,
    /// The heap goal for the next cycle.
    pub(crate) goal: u64,
    /// The live heap the next cycle's early trigger is paced from
    /// (`Collector::early_trigger`): `live` before a minor cycle; before a major one after
    /// minors, what the last major found live, the heap it set `goal` for. A major's
    /// marking is the whole heap's, and paced from `live` (the old generation's growth
    /// included) it started 95% of the way to the goal, leaving the mutators' assists most
    /// of the marking (binary-trees 19 at 2 P: 55 -> 58 MB of a 58 MB goal, 28 ms of
    /// assists to 6 of background marking).
    pub(crate) pace_live: u64,
    /// The sweep keeps the marks: the next cycle is minor.
    pub(crate) keep_marks: bool,
}

/// What a cycle's start decides.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Begin {
    /// The cycle is minor: the last sweep kept the marks and it is not forced.
    pub(crate) minor: bool,
    /// The last sweep kept the marks but the cycle is major: clear them first.
    pub(crate) clear_marks: bool,
}

impl Generations {
    /// The next cycle, unless forced, is minor: the last sweep kept the marks.
    #[cfg(test)]
    fn next_minor(&self) -> bool {
        self.sticky.lock().is_some()
    }

    /// Whether a minor cycle starting now is likely to end in its first stop: the last one
    /// did at most `work` bytes of scan work. (None yet: no estimate, so no.)
    pub(crate) fn last_minor_within(&self, work: u64) -> bool {
        self.sizes.lock().last_minor_work.is_some_and(|w| w <= work)
    }

    /// A cycle begins (world stopped, before its phase turns the barrier on).
    pub(crate) fn begin(&self, forced: bool) -> Begin {
        let sticky = self.sticky.lock().take().is_some();
        Begin {
            minor: sticky && !forced,
            clear_marks: sticky && forced,
        }
    }

    /// A cycle ends (world stopped): `marked` bytes and objects newly marked by it, of
    /// which `promoted` are old after its sweep (all, for a major cycle), with `work` bytes
    /// of scan work; for a major one, `goal` is the pacer's goal for what it found live.
    /// Decides whether the next is minor.
    pub(crate) fn end(
        &self,
        minor: bool,
        (marked, objects): (u64, u64),
        promoted: (u64, u64),
        work: u64,
        goal: u64,
    ) -> Outcome {
        let mut s = self.sizes.lock();
        // Live but young after the sweep (objects that survived their first minor cycle).
        let mut young = (0, 0);
        if minor {
            s.last_minor_work = Some(work);
            s.old_bytes += promoted.0;
            s.old_objects += promoted.1;
            young = (
                marked.saturating_sub(promoted.0),
                objects.saturating_sub(promoted.1),
            );
            if work * MINOR_WORK_RATIO > s.major_work {
                // Marking the young and the cards cost a good part of marking everything:
                // the old generation is small or written all over (a young generation
                // that does not die young). Minor cycles buy nothing for a while.
                s.skip_minors = s.next_skip.max(SKIP_MINORS);
                s.next_skip = (s.skip_minors * 2).min(MAX_SKIP_MINORS);
            } else {
                s.next_skip = SKIP_MINORS;
            }
        } else {
            *s = Sizes {
                old_bytes: marked,
                old_objects: objects,
                major_live: marked,
                major_goal: goal,
                major_work: work,
                skip_minors: s.skip_minors.saturating_sub(1),
                next_skip: s.next_skip,
                last_minor_work: s.last_minor_work,
            };
        }
        let room = s.major_goal.saturating_sub(s.major_live);
        let promoted = s.old_bytes.saturating_sub(s.major_live);
        let keep_marks = s.skip_minors == 0 && promoted <= room / 2;
        let mut sticky = self.sticky.lock();
        match (keep_marks, sticky.is_some()) {
            (true, false) => *sticky = Some(BarrierHold::new()),
            (false, true) => *sticky = None,
            _ => {}
        }
        let live = s.old_bytes + young.0;
        Outcome {
            live,
            objects: s.old_objects + young.1,
            goal: s.major_goal,
            pace_live: if keep_marks {
                live
            } else {
                s.major_live.min(live)
            },
            keep_marks,
        }
    }
}

/// A minor cycle's root jobs: the embedder's (if any), then the card table in slices of
/// [`CARDS_PER_JOB`], scanned by the markers while the mutators run.
pub(crate) struct MinorRoots {
    host: Option<StdArc<dyn RootJobs>>,
    host_jobs: usize,
    heap: Arc<MHeap>,
    cards: usize,
}

impl MinorRoots {
    /// The jobs of a minor cycle starting now (world stopped: the card table's extent is
    /// the heap's now; cards of spans made later hold only black objects).
    pub(crate) fn new(heap: Arc<MHeap>, host: Option<StdArc<dyn RootJobs>>) -> MinorRoots {
        MinorRoots {
            host_jobs: host.as_ref().map_or(0, |h| h.count()),
            host,
            cards: heap.cards(),
            heap,
        }
    }
}

impl RootJobs for MinorRoots {
    fn count(&self) -> usize {
        self.host_jobs + self.cards.div_ceil(CARDS_PER_JOB)
    }

    fn scan(&self, job: usize, tracer: &mut Tracer<'_>) {
        if job < self.host_jobs {
            if let Some(h) = &self.host {
                h.scan(job, tracer);
            }
            return;
        }
        let from = (job - self.host_jobs) * CARDS_PER_JOB;
        let to = (from + CARDS_PER_JOB).min(self.cards);
        // SAFETY: root jobs run while the cycle marks (before its queue closes), when no
        // span is freed or swept; each word is a pointer word of an allocated object.
        unsafe {
            self.heap.scan_dirty_cards(from, to, |w| {
                tracer.mark(load_word(w));
                tracer.take_young()
            })
        };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MAJOR: Begin = Begin {
        minor: false,
        clear_marks: false,
    };
    const MINOR: Begin = Begin {
        minor: true,
        clear_marks: false,
    };
    const FORCED_AFTER_MINOR: Begin = Begin {
        minor: false,
        clear_marks: true,
    };

    #[test]
    fn majors_come_once_half_the_room_is_promoted() {
        let g = Generations::default();
        assert!(!g.next_minor());
        assert_eq!(g.begin(false), MAJOR);
        // A major finds 100 live and sets the goal at 200: minors until 150 is old.
        let o = g.end(false, (100, 10), (100, 10), 1000, 200);
        assert!(o.keep_marks && g.next_minor());
        assert_eq!((o.live, o.goal), (100, 200));
        assert_eq!(g.begin(false), MINOR);
        let o = g.end(true, (30, 3), (30, 3), 100, 0);
        assert_eq!(
            (o.live, o.objects, o.goal, o.keep_marks),
            (130, 13, 200, true)
        );
        assert_eq!(o.pace_live, 130, "a minor is paced from the heap live now");
        assert_eq!(g.begin(false), MINOR);
        let o = g.end(true, (30, 3), (30, 3), 100, 0);
        assert_eq!((o.live, o.keep_marks), (160, false));
        assert_eq!(
            o.pace_live, 100,
            "a major from what the last major found live"
        );
        assert!(!g.next_minor());
        // The major after it starts from marks the sweep cleared.
        assert_eq!(g.begin(false), MAJOR);
        // A forced major after a sweep that kept marks clears them itself.
        g.end(false, (100, 10), (100, 10), 1000, 200);
        assert_eq!(g.begin(true), FORCED_AFTER_MINOR);
        g.end(false, (100, 10), (100, 10), 1000, 200);
        assert_eq!(g.begin(false), MINOR);
        // A minor cycle that did half a major's work: four majors before the next, then
        // eight after another such one.
        for skip in [SKIP_MINORS, 2 * SKIP_MINORS] {
            let o = g.end(true, (10, 1), (10, 1), 600, 0);
            assert!(!o.keep_marks);
            for k in 0..skip {
                assert_eq!(g.begin(false), MAJOR);
                assert_eq!(
                    g.end(false, (100, 10), (100, 10), 1000, 200).keep_marks,
                    k + 1 == skip
                );
            }
            assert_eq!(g.begin(false), MINOR);
        }
        // One worth it starts the count over.
        assert!(g.end(true, (10, 1), (10, 1), 100, 0).keep_marks);
        assert_eq!(g.begin(false), MINOR);
        assert!(!g.end(true, (10, 1), (10, 1), 600, 0).keep_marks);
        assert_eq!(g.sizes.lock().skip_minors, SKIP_MINORS);
    }

    #[test]
    fn only_what_a_minor_cycle_promotes_grows_the_old_generation() {
        let g = Generations::default();
        g.begin(false);
        g.end(false, (100, 10), (100, 10), 1000, 200);
        g.begin(false);
        // 40 marked, of which 10 survived a minor cycle before (promoted now); the other
        // 30 are live but young, so count in the heap live but not towards a major.
        let o = g.end(true, (40, 4), (10, 1), 100, 0);
        assert_eq!((o.live, o.objects, o.keep_marks), (140, 14, true));
        assert_eq!(g.sizes.lock().old_bytes, 110);
        g.begin(false);
        let o = g.end(true, (60, 6), (39, 3), 100, 0);
        assert_eq!((o.live, o.keep_marks), (149 + 21, true));
        g.begin(false);
        let o = g.end(true, (10, 1), (2, 1), 100, 0);
        assert_eq!(
            (o.live, o.keep_marks),
            (151 + 8, false),
            "promoted past half the room"
        );
    }
}
