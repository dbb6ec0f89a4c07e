//! minigo-runtime: goroutines on logical processors (not built yet).
//!
//! This crate will own who runs: goroutines (G) as stackful coroutines on stacks the runtime
//! maps itself with a guard page, OS threads (M), and `procs` logical processors (P), each
//! with a local run queue and its own mcache. It will stop the world at safepoints, scan
//! suspended goroutine stacks conservatively for roots, and offer the public embedding API:
//! `Gc<T>` with derived layouts, channels, a wait group, `gc()` and `read_mem_stats()`.
//!
//! It is the glue of the workspace: `runtime -> gc -> alloc-core`.

pub use minigo_gc as gc;
