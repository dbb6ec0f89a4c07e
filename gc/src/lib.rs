//! minigo-gc: a precise, parallel, stop-the-world mark-sweep collector over alloc-core's
//! heap (Go's `mgc.go` family, before concurrent marking).
//!
//! ## How a collection goes
//!
//! Allocation slow paths ask the pacer ([`Collector::should_collect`]: has heap-live
//! reached the goal?). When it says yes, the collector runs a cycle with the world stopped
//! ([`Collector::collect`]):
//!
//! ```text
//! finish last sweep -> shade roots -> mark (N workers, stealing) -> [verify] ->
//!   clear weak tables -> heap_live = marked -> sweepgen += 2 -> release mcaches -> new goal
//! ```
//!
//! Roots come from the embedder through the [`Roots`] trait, precisely (an interpreter's
//! stack, frames, globals) or conservatively (goroutine stacks). Marking reads an object's
//! words only where its layout put pointer bits, resolves each pointer with alloc-core's
//! `find_object` (interior pointers allowed) and sets mark bits atomically, so parallel
//! workers scan each object exactly once ([`mark`]). Sweeping is alloc-core's: lazily by
//! allocation, and by a background sweeper thread that then returns memory over Go's
//! retention target to the OS.
//!
//! ## For embedders
//!
//! A single-threaded embedder creates a [`Heap`] with a [`GcConfig`] (GOGC, memory limit,
//! hard `max_heap`, verify mode, gctrace), takes its [`Mutator`], and allocates with a
//! [`Layout`] and its roots. Every pointer store into a heap object goes through
//! [`Mutator::write`]. Weak tables (an intern table) implement [`Roots::clear_weak`].
//! Several heaps may live in one process.

// Loom builds keep only what the models drive (marking); the rest is compiled but unused.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
mod collector;
pub mod config;
#[cfg(not(loom))]
mod heap;
pub mod mark;
pub mod pacer;
mod queue;
pub mod roots;
pub mod stats;
mod verify;

#[cfg(not(loom))]
pub use collector::Collector;
pub use config::{EnvError, GcConfig};
#[cfg(not(loom))]
pub use heap::{Heap, Mutator};
pub use minigo_alloc_core as alloc_core;
pub use minigo_alloc_core::{AllocError, Layout, MemStats};
pub use roots::{Liveness, NoRoots, RootKind, Roots, Tracer};
pub use stats::{gctrace_line, CycleRecord};
