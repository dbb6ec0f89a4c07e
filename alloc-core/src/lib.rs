//! minigo-alloc-core: Go's allocator, in Rust.
//!
//! This crate owns where new objects go. It knows nothing of marking policy or scheduling;
//! the collector (`minigo-gc`) drives its sweeping and reads its bitmaps, and the runtime
//! gives each logical processor (P) an [`MCache`].
//!
//! ## The allocation path, fastest first
//!
//! ```text
//! mutator -> MCache (per P, no lock) -> MCentral (per span class, locked)
//!         -> MHeap (page allocator, locked) -> arena (reserved with memmap2) -> OS
//! ```
//!
//! A request is a [`Layout`] (size + pointer bitmap) and a length. Sizes are rounded to one
//! of Go's 67 size classes ([`sizeclass`]); each class, with or without pointers, is a span
//! class with its own spans. An [`MCache`] caches one span per span class and hands out its
//! free slots by scanning a 64-bit window of the span's alloc bits with count-trailing-zeros
//! (no free lists: slots are freed only by sweeping). When the span is full the mcache asks
//! the class's mcentral for another, which sweeps unswept spans lazily or asks the heap for
//! pages. The heap's page allocator finds the lowest run of free pages through a summary
//! tree; the heap grows into its reserved address space a 64 MiB arena at a time. Objects
//! over 32 KiB get a span of their own; pointer-free objects under 16 bytes share 16-byte
//! tiny blocks.
//!
//! ## What the collector reads
//!
//! Every object of a scan class has its pointer words recorded when it is allocated: bits in
//! the heap's pointer bitmap for small objects, a layout reference on the span for large
//! ones ([`ObjectRef::pointer_words`]). Every span has alloc bits and atomic mark bits.
//! [`MHeap::find_object`] maps any address, interior ones included, to its object, and says
//! "not an object" for anything else: outside the heap, free pages, free slots.
//!
//! ## Freeing
//!
//! Nothing is freed explicitly. After marking, the collector starts a sweep cycle
//! ([`MHeap::start_sweep_cycle`]); each span's mark bits then become its alloc bits the
//! first time it is needed (or by [`MHeap::sweep_one`]), and an empty span's pages return to
//! the page heap. [`MHeap::scavenge`] returns free pages to the OS.
//!
//! ## Layers
//!
//! Each knows only those before it (the order snmalloc writes down):
//!
//! ```text
//! leaves (os, sync, sizeclass, layout, error, stats) -> pages (page bitmap and summaries)
//!   -> heapbits, cards (the card table) -> span -> special (per-object records the sweeper reports)
//!   -> arena (address -> span) -> pointers (reads heap bits)
//!   -> pageheap (span alloc/free, grow, scavenge, max_heap)
//!   -> quarantine (dead slots held back from reuse, for checked builds)
//!   -> central (mcentral lists, and span sweeping beside them)
//!   -> heap (the MHeap facade: find_object, sweep cycle control) -> cache (MCache)
//! ```
//!
//! `sync` is the shim that swaps every concurrent primitive for loom's under `--cfg loom`.
//! `heap` ties the layers to one instance: there is no global heap, and several may
//! coexist.

mod arena;
mod cache;
mod cards;
mod central;
mod error;
mod heap;
mod heapbits;
mod layout;
mod os;
mod pageheap;
mod pages;
mod pointers;
mod quarantine;
pub mod sizeclass;
mod sizeclasses;
mod span;
mod special;
mod stats;
pub mod sync;

pub use arena::{ARENA_BYTES, ARENA_PAGES};
pub use cache::{zerobase, MCache};
pub use cards::CardMarker;
pub use central::KeepMarks;
pub use error::{AllocError, LayoutError};
pub use heap::{HeapConfig, MHeap, ObjectInfo, ObjectRef, DEFAULT_ADDRESS_SPACE};
pub use layout::Layout;
pub use pointers::PointerWords;
pub use sizeclass::{SpanClass, MAX_SMALL_SIZE, PAGE_SIZE};
pub use span::MSpan;
pub use stats::{BySize, MemStats};
