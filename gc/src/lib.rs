//! minigo-gc: the mark-sweep collector (not built yet).
//!
//! This crate will own everything about deciding what to throw away, over the heap that
//! `minigo-alloc-core` manages:
//!
//! - a standalone heap for embedders without goroutines: a config (GOGC, memory limit,
//!   verify mode, trace), a mutator handle that owns an mcache, and a root-provider trait the
//!   embedder implements to report its roots precisely;
//! - marking: tri-colour over the spans' mark bits, reading only the words the allocation-time
//!   pointer bits name, with parallel workers stealing grey work;
//! - sweeping: the sweep-generation protocol driven from the cycle (lazy sweeping by mcaches
//!   and a background sweeper both use alloc-core's span-level sweep);
//! - pacing (GOGC, a soft memory limit, a hard `max_heap`), gctrace lines, the verify mode,
//!   and the one function every pointer store goes through.
//!
//! Until it lands, the allocator's own span-level sweep (`minigo_alloc_core::MHeap`) is the
//! only way memory is reclaimed.

pub use minigo_alloc_core as alloc_core;
