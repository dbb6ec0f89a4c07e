//! minigo-benches: criterion benchmarks of minigo, grouped by layer, and (to come) the
//! side-by-side comparison with Go and Boehm GC.
//!
//! - `benches/alloc.rs` — the `alloc` group: the mcache path for tiny, small (scan and
//!   noscan) and large objects, each beside the system allocator's malloc+free of the same
//!   size.
//!
//! Run: `cargo bench -p minigo-benches` (one group: `cargo bench -p minigo-benches --bench
//! alloc`). Numbers worth quoting come from these release builds, never from tests.
