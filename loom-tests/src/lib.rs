//! minigo-loom-tests: loom models of minigo's concurrent handoffs.
//!
//! Every model runs the production types — `MCache`, `MCentral` (through the mcache), the
//! page heap and its scavenger, the sweeper and its specials, the mark workers, the write barrier and
//! black allocation, the global handles' root table and the cleanups' table, the card table of minor cycles, the run queues, the world stop, the stack-scan claim, channels and
//! the park/wake status handshake — compiled with loom's
//! primitives through the crates' `sync` shims (`--cfg loom`). Sizes are the real ones,
//! chosen so that state stays small: 18 KiB objects (four to a span), 1 MiB arenas, a
//! 4-slot run queue ring, at most three threads. Each model file states what it proves;
//! each has a seeded bug (`--cfg loom_mutant="..."` in the production code) that makes it
//! fail, which CI checks. Heap object words are plain memory, not loom's: the sync shim's
//! `load_word`/`store_word` give each word a loom shadow so that loom orders a marker's
//! load against a mutator's store of it.
//!
//! | model | file | mutant |
//! |---|---|---|
//! | 1. two Ps refill one span class while a third thread sweeps | `tests/refill.rs` | `cache_span_no_pop` |
//! | 2. lazy sweeping races the background sweeper across a cycle | `tests/sweep.rs` | `finish_sweep_no_wait` |
//! | 3. page allocation races the scavenger | `tests/scavenge.rs` | `scavenge_free_early` |
//! | 4. two mark workers on a shared graph | `tests/mark.rs` | `mark_racy` |
//! | 5. a run queue's owner, a thief and the global queue | `tests/runq.rs` | `take_head_racy` |
//! | 6. the stop-the-world handshake | `tests/world.rs` | `stop_self_no_wait`, `exitsyscall_ignores_stw` |
//! | 7. channel send, receive and close | `tests/chan.rs` | `prepare_after_unlock` |
//! | 8. a mutator's barrier-protected stores race a mark worker | `tests/barrier.rs` | `barrier_no_old`, `alloc_white` |
//! | 9. a late marker races mark termination (the queue's close) | `tests/close.rs` | `late_marker` |
//! | 10. a heap-profile special is attached while its span is swept | `tests/specials.rs` | `special_flag_early` |
//! | 11. an asynchronously preempted goroutine stops in place; a mark worker takes its stack | `tests/preempt.rs` | `scan_claim_racy` |
//! | 12. a weak reference's read barrier races a mark worker | `tests/weak.rs` | `shade_noop` |
//! | 13. a global handle's root slot changes while a mark worker scans the root table | `tests/roots.rs` | `root_set_no_shade` |
//! | 14. ready cleanups leave their table while a mark worker scans it | `tests/cleanups.rs` | `cleanup_ready_no_shade` |
//! | 15. a minor cycle's card table, with a store moving a young object between old ones while a mark worker scans the cards | `tests/remset.rs` | `card_not_marked` |
//! | 16. a P handed to an idle M that is leaving while a mark worker stops the world | `tests/mslot.rs` | `m_leave_no_wait` |
//! | 17. two writers and a reader on one two-word array element under its seqlock | `tests/seqlock.rs` | `seqlock_no_validate`, `seqlock_write_unlocked` |
//!
//! Run: `.ci/loom` (bounded, as CI), or
//! `RUSTFLAGS="--cfg loom -C debug-assertions=on" LOOM_MAX_PREEMPTIONS=2 cargo test -p
//! minigo-loom-tests --release`. `LOOM_MAX_PREEMPTIONS` unset in the environment means
//! the bound of 2 set here; set it higher for a deeper search, or set
//! `MINIGO_LOOM_EXHAUSTIVE=1` for no bound at all (see the README for how long that takes).

/// Runs `f` as a loom model with this suite's settings: a preemption bound of
/// `LOOM_MAX_PREEMPTIONS` (default 2), and a branch limit high enough for a heap's
/// bookkeeping.
/// Prints how many interleavings were explored and how long it took.
#[cfg(loom)]
pub fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut b = loom::model::Builder::new();
    if std::env::var_os("MINIGO_LOOM_EXHAUSTIVE").is_some() {
        b.preemption_bound = None;
    } else if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        b.preemption_bound = Some(2);
    }
    b.max_branches = 100_000;
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f()
    });
    let name = std::thread::current().name().unwrap_or("model").to_string();
    eprintln!(
        "loom model {name}: {} interleavings in {:.1?} (preemption bound {:?})",
        runs.load(Ordering::Relaxed),
        start.elapsed(),
        b.preemption_bound
    );
}

/// An 18 KiB pointer-free layout: size class 60, four objects to a 9-page span.
#[cfg(loom)]
pub fn four_per_span() -> minigo_alloc_core::Layout {
    minigo_alloc_core::Layout::noscan(18_000)
}

/// The standalone heap the marking models drive: no mark workers or sweeper of its own
/// (the model's loom thread is the marker), no pacer (cycles start when the model says),
/// major cycles only (in a minor cycle, the objects models 8-14 race over would be old
/// already), and verify mode as asked.
#[cfg(loom)]
pub fn model_heap(verify: bool) -> minigo_gc::Heap {
    model_heap_with(verify, false)
}

/// [`model_heap`], generational if asked, with objects aging (model 15: minor cycles
/// between forced majors).
#[cfg(loom)]
pub fn model_heap_with(verify: bool, generational: bool) -> minigo_gc::Heap {
    // Model 15 checks both a young object's first minor cycle and, aged, its second.
    model_heap_aging(verify, generational, generational)
}

/// [`model_heap_with`], with objects that age (`GcConfig::ages`) or not (model 15b).
#[cfg(loom)]
pub fn model_heap_aging(verify: bool, generational: bool, ages: bool) -> minigo_gc::Heap {
    minigo_gc::Heap::new(minigo_gc::GcConfig {
        mark_workers: 0,
        background_sweep: false,
        verify,
        gogc: None,
        generational,
        ages,
        ..minigo_gc::GcConfig::default()
    })
    .expect("a model heap")
}

/// A model mutator's roots: the addresses it holds.
#[cfg(loom)]
pub struct Held(pub Vec<usize>);

#[cfg(loom)]
impl minigo_gc::Roots for Held {
    fn trace(&mut self, t: &mut minigo_gc::Tracer<'_>) {
        for &a in &self.0 {
            t.mark(a);
        }
    }
}
