//! minigo-runtime: goroutines on logical processors, over minigo's collected heap.
//!
//! ## Who runs
//!
//! A goroutine (G) is a stackful coroutine (corosensei) on a stack the runtime carves from
//! its stack arenas, with a guard page (`stack.rs`). `procs` logical processors (P, Go's GOMAXPROCS) each have a run queue
//! and an mcache; OS threads (M) run goroutines while they hold a P, steal work from other
//! Ps when theirs is empty, and park when there is none. Goroutines switch at channel
//! operations, `yield_now`, sleeps and allocation slow paths; those are the safepoints where
//! the world can stop ([`sched`](crate) module docs). A monitor thread (`sysmon.rs`)
//! preempts, with a signal, a goroutine that runs for 10 ms while others wait or while the
//! world is stopping (`preempt.rs`). `blocking` runs code without a P.
//!
//! ## What the collector sees
//!
//! When a goroutine stops it spills its callee-saved registers onto its stack and records
//! its stack pointer, so its stack can be scanned conservatively while it is stopped: a
//! word that points into an allocated object keeps it alive. Heap objects are scanned
//! precisely through their layouts, which `#[derive(HeapType)]` computes. `Global` handles,
//! channel buffers and not-yet-started goroutines' closures are roots too.
//!
//! Marking runs beside the goroutines (`roots.rs`, and the gc crate's cycle): a cycle stops
//! the world only to start and to end. Each stack is scanned once per cycle, whenever the
//! goroutine is not running: a parked one's by a mark worker, a running one's by its M
//! before it resumes. Every pointer store into the heap or a `Global` goes through the P's
//! write barrier (`barrier.rs`), which shades the pointer overwritten, and a value taken
//! from a channel is shaded as it is received: moving the only reference to an object
//! between the heap, a channel and a stack cannot hide it from the markers.
//!
//! ## Where memory goes
//!
//! Allocation is sampled for a heap profile as Go samples it (one allocation per
//! `Builder::mem_profile_rate` bytes on average, 512 KiB by default): a sampled
//! allocation records its goroutine's Rust call stack. [`write_heap_profile`] writes the
//! profile as of the last collection in the format `go tool pprof` reads;
//! [`mem_profile`] gives the records.
//!
//! ## Rules for users
//!
//! - A `Gc` lives on goroutine stacks, in heap objects, in `Global`s and channels, never in
//!   Rust-heap containers, thread-locals or foreign threads (see [`Gc`]). It is branded
//!   with its run (`Gc<'gc, T>`, from the [`Mutation`] token `run` hands main), so it
//!   cannot leave the run: that much the compiler checks.
//! - A goroutine may resume on another OS thread after any park (a channel operation,
//!   `yield_now`, `sleep`, an allocation): never keep a reference to thread-local state
//!   across one. The runtime re-reads its own thread-locals after every park.
//! - A goroutine that runs for 10 ms while others wait, or while the world is stopping, is
//!   preempted asynchronously (`preempt.rs`, x86-64 Linux): a loop without safepoints no
//!   longer holds up a collection or starves other goroutines. Nothing else runs on a
//!   preempted goroutine's thread until it continues there, so code that holds
//!   thread-local references or is inside a library's lock is never disturbed.
//! - Code inside `blocking` must not touch the heap or call the runtime.
//! - A goroutine that overflows its stack kills the process with "fatal error: goroutine
//!   N: stack overflow" (exit status 2), as in Go; a goroutine that panics ends the run with
//!   [`RunError::Panic`] (or aborts, if configured).
//! - A run whose goroutines are all asleep on each other (channels, `select`,
//!   `WaitGroup`), with no sleeper, `blocking` call or collection that could wake one,
//!   ends with [`RunError::Deadlock`] (or Go's "fatal error: all goroutines are asleep -
//!   deadlock!" and exit status 2, if panics abort), found within a few tens of
//!   milliseconds (`checkdead.rs`).

#![cfg_attr(loom, allow(dead_code))]

// Loom builds (`--cfg loom`) keep what the models drive: run queues, the world stop, and
// channels over the status-word handshake, with loom threads as goroutines (`loom_sched`).
#[cfg(not(loom))]
mod api;
#[cfg(not(loom))]
mod arena;
#[cfg(not(loom))]
mod arena_handles;
#[cfg(not(loom))]
mod barrier;
mod chan;
#[cfg(not(loom))]
mod checkdead;
#[cfg(not(loom))]
mod checked;
#[cfg(not(loom))]
mod cleanup;
mod cleanup_table;
#[cfg(not(loom))]
mod exe;
#[cfg(not(loom))]
mod g;
#[cfg(not(loom))]
mod gc_map;
#[cfg(not(loom))]
mod gc_vec;
#[cfg(not(loom))]
mod gfree;
#[cfg(not(loom))]
mod global_handle;
#[cfg(not(loom))]
mod malloc;
mod mslot;
#[cfg(not(loom))]
mod preempt;
mod root_table;
#[cfg(not(loom))]
mod roots;
mod runq;
mod scan_claim;
#[cfg(not(loom))]
mod sched;
#[cfg(loom)]
#[path = "loom_sched.rs"]
mod sched;
mod seqlock;
#[cfg(not(loom))]
mod signal;
mod slots;
#[cfg(not(loom))]
mod spill;
#[cfg(not(loom))]
mod stack;
mod status;
#[cfg(not(loom))]
mod sysmon;
#[cfg(not(loom))]
mod time;
#[cfg(not(loom))]
mod tls;
#[cfg(not(loom))]
mod typed_heap;
#[cfg(not(loom))]
mod waitgroup;
#[cfg(not(loom))]
mod weak;
mod world;

#[cfg(not(loom))]
pub use api::{
    async_preemptions, gc_cycles, go, goroutine_id, mem_profile, num_goroutine, procs,
    read_mem_stats, write_heap_profile, BuildError, Builder, RunError, Runtime,
};
#[cfg(not(loom))]
pub use arena::{Arena, ArenaMutation, Rootable};
#[cfg(not(loom))]
pub use arena_handles::{ArenaCleanup, ArenaGlobal, ArenaWeak};
#[cfg(not(loom))]
pub use chan::{select, try_select, RecvCase, SelectCase, SendCase};
pub use chan::{Chan, TryRecvError, TrySendError};
#[cfg(not(loom))]
pub use cleanup::{add_cleanup, Cleanup};
#[cfg(not(loom))]
pub use gc_map::GcMap;
#[cfg(not(loom))]
pub use gc_vec::GcVec;
#[cfg(not(loom))]
pub use global_handle::Global;
#[cfg(not(loom))]
pub use malloc::gc;
pub use minigo_alloc_core::{AllocError, Layout};
#[cfg(not(loom))]
pub use minigo_derive::HeapType;
/// The collector underneath: the advanced layer, for what this crate does not re-export
/// (heap-profile records and their encoder, the collector's phase, cycle records'
/// fields). Through it, `gc_crate::alloc_core` is the allocator's own API.
pub use minigo_gc as gc_crate;
pub use minigo_gc::MemStats;
#[cfg(not(loom))]
pub use preempt::async_preemption_enabled;
// For the loom models and the benches, not for embedders.
#[doc(hidden)]
pub use cleanup_table::{closure_bytes, CleanupTable};
#[doc(hidden)]
pub use mslot::{IdleMs, MSlot};
#[doc(hidden)]
pub use root_table::RootTable;
#[doc(hidden)]
pub use runq::{GlobalQueue, LocalQueue, RUNQ_SIZE};
#[doc(hidden)]
pub use scan_claim::scan_once;
#[cfg(loom)]
pub use sched::Sched as LoomSched;
#[cfg(not(loom))]
pub use sched::{blocking, yield_now};
#[doc(hidden)]
pub use seqlock::SeqLock;
#[cfg(not(loom))]
pub use stack::stack_guards_are_markers;
#[cfg(not(loom))]
pub use time::sleep;
#[cfg(not(loom))]
pub use typed_heap::{
    all_words_mask, cached_layout, layout_of, may_hold_pointers, shift_mask, within_word,
    Allocator, Gc, GcCell, GcField, GcPointer, GcScalar, GcSlice, GcStr, HeapType, Mutation,
};
#[cfg(not(loom))]
pub use waitgroup::WaitGroup;
#[cfg(not(loom))]
pub use weak::Weak;
#[cfg(loom)]
pub use world::World;
