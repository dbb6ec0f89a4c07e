//! minigo-gc: a precise, concurrent, parallel mark-sweep collector over alloc-core's heap
//! (Go's `mgc.go` family).
//!
//! ## How a cycle goes
//!
//! 1. An allocation slow path finds heap live past the pacer's trigger ([`pacer`]: Go
//!    1.18's, so that marking, which takes time, ends near the goal). The allocating
//!    mutator sweeps what the last cycle left, stops the others (the runtime stops the
//!    world; a standalone heap has no others) and starts the cycle
//!    ([`Collector::start_cycle`], [`cycle`]): allocate-black on, each mutator's write
//!    barrier on, roots taken (a standalone heap's traced now, the runtime's goroutine
//!    stacks queued as root jobs), phase `Mark`. The world restarts: this stop is short.
//!    A small heap's cycle (last cycle's scan work at most 256 KiB), and a minor cycle
//!    after a short one (at most 1 MiB), is marked and ended inside this stop instead, for
//!    at most 300 µs
//!    ([`Collector::finish_small_cycle`]): cheaper than waking workers and stopping twice,
//!    and as short a pause; if that is not enough, marking goes on concurrently.
//! 2. Marking runs beside the mutators ([`mark`]): background workers (`workers.rs`, 25% of
//!    the processors as Go sizes them, plus idle cores), mutators' assists (allocating
//!    during marking owes scan work in proportion, [`MutatorState::assist`]), and the
//!    shading of what the write barrier recorded ([`wbbuf`]: Go's hybrid barrier).
//!    Goroutine stacks are scanned one at a time: a parked goroutine's by a worker, a
//!    running one's by its M before it resumes.
//! 3. When no marker has grey work left, the world stops again for mark termination
//!    ([`Collector::mark_termination`]): every barrier buffer is shaded, a little marking
//!    may finish the job (or, if there is more, the world restarts and marking goes on);
//!    then weak tables are cleared, the marked bytes become the live heap, the sweep cycle
//!    starts, the next goal and trigger are set. This stop is short too.
//! 4. Spans are swept lazily by allocation and by a background sweeper, which then
//!    returns memory over Go's retention target to the OS.
//!
//! Allocation is sampled for the heap profile as Go samples it (one sample per
//! `GcConfig::mem_profile_rate` bytes on average): [`mprof`] keeps the records, attached
//! to the sampled objects so sweeping counts their frees, published per cycle; [`pprof`]
//! writes them as the profile.proto file `go tool pprof` reads
//! ([`Collector::write_heap_profile`]).
//!
//! `GcConfig::generational` (on unless `GODEBUG=gcgen=0`) puts minor cycles between
//! these: the same phases, but marking only the young objects reachable from the roots and
//! from old objects the write barrier's card table remembers, with mark bits kept across
//! cycles (`generations.rs`).
//!
//! `GcConfig::stop_the_world` (Go's `GODEBUG=gcstoptheworld=1`) runs 1-3 in one stop,
//! marking on every processor. Verify mode (Go's `gccheckmark`) re-marks from the roots at
//! mark termination and fails loudly if anything reachable was not marked (`verify.rs`).
//!
//! ## For embedders
//!
//! A single-threaded embedder creates a [`Heap`] with a [`GcConfig`] (GOGC, memory limit,
//! hard `max_heap`, verify mode, gctrace), takes its [`Mutator`], and allocates with a
//! [`Layout`] and its [`Roots`]. Every pointer store into a heap object goes through
//! [`Mutator::write`]; an object taken out of a weak table goes through
//! [`Mutator::shade`]; weak tables themselves implement [`Roots::clear_weak`]. Several
//! heaps may live in one process, each with its own phase and barrier.
//!
//! A multi-threaded embedder (the runtime) keeps a [`MutatorState`] per processor, calls
//! [`alloc_slow`] past the fast path with a [`MutatorContext`], and implements
//! [`MarkHost`] to give the collector its root jobs and a way to stop the world.

// Loom builds keep only what the models drive (marking, the barrier); the rest is
// compiled but unused.
#![cfg_attr(loom, allow(dead_code))]

mod alloc;
mod collector;
pub mod config;
pub mod cycle;
mod generations;
mod heap;
// Marking's internals (`GcWork`, `MarkQueue`): for the loom models and the model tests.
#[doc(hidden)]
pub mod mark;
pub mod mprof;
mod mutator;
// The pacer's arithmetic, for its own tests; `GcConfig` and `Collector` are the knobs.
#[doc(hidden)]
pub mod pacer;
pub mod phase;
pub mod pprof;
mod queue;
pub mod roots;
pub mod stats;
mod verify;
pub mod wbbuf;
mod workers;

pub use alloc::{alloc_slow, MutatorContext};
pub use collector::Collector;
pub use config::{EnvError, GcConfig, DEFAULT_MEM_PROFILE_RATE};
pub use cycle::{CycleRoots, MarkHost};
pub use heap::{Heap, Mutator};
pub use mark::RootJobs;
/// The allocator underneath, whole: the advanced layer (spans, mcaches, the page heap),
/// for embedders building their own collector or measuring the allocator. Its steps that
/// could free objects in use are `unsafe` (`MHeap::start_sweep_cycle`,
/// `MHeap::set_alloc_black`).
pub use minigo_alloc_core as alloc_core;
pub use minigo_alloc_core::{AllocError, Layout, MemStats};
pub use mprof::{Frame, MemProfileRecord, SampleStack};
pub use mutator::MutatorState;
pub use phase::{any_barrier_on, GcPhase};
pub use roots::{Liveness, NoRoots, RootKind, Roots, Tracer};
pub use stats::CycleRecord;
