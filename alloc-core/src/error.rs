//! What can go wrong when asking for memory. Every failure is a value: nothing in the
//! allocator panics or aborts on a bad request.

use std::fmt;

/// Why an allocation failed. The heap is unchanged and keeps working after any of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// `elem_size * len` does not fit in a `usize`.
    SizeOverflow {
        /// Size of one element in bytes.
        elem_size: usize,
        /// Requested number of elements.
        len: usize,
    },
    /// The request is larger than the heap's whole address space.
    TooLarge {
        /// Requested bytes.
        size: usize,
        /// The heap's reserved address space in bytes.
        address_space: usize,
    },
    /// The heap cannot hold the request: its `max_heap` limit or its address space is
    /// exhausted. A collector catches this, collects, and retries once before reporting it.
    OutOfMemory {
        /// Bytes of pages the allocation needed.
        requested: usize,
        /// Bytes of pages in use when it failed.
        in_use: usize,
        /// The limit that stopped it.
        limit: usize,
    },
    /// The runtime's typed allocation (`Gc::new`, `GcSlice::new`, ...) was called from a
    /// thread that is not running one of its goroutines: there is no P to allocate from.
    NotInGoroutine,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::SizeOverflow { elem_size, len } => {
                write!(f, "allocation size overflows: {len} elements of {elem_size} bytes")
            }
            AllocError::TooLarge { size, address_space } => write!(
                f,
                "allocation of {size} bytes is larger than the heap's address space ({address_space} bytes)"
            ),
            AllocError::OutOfMemory { requested, in_use, limit } => write!(
                f,
                "out of memory: {requested} more bytes of heap with {in_use} in use would exceed the limit of {limit} bytes"
            ),
            AllocError::NotInGoroutine => write!(
                f,
                "allocation outside a goroutine: call it from a goroutine of a running minigo runtime"
            ),
        }
    }
}

impl std::error::Error for AllocError {}

/// Why a [`Layout`](crate::Layout) could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A pointer word lies (partly) past the end of the type.
    PointerPastEnd {
        /// Index of the offending word.
        word: usize,
        /// Size of the type in bytes.
        size: usize,
    },
    /// A type holding pointers must be a whole number of words, so that array elements keep
    /// their pointers word-aligned.
    NotWordMultiple {
        /// Size of the type in bytes.
        size: usize,
    },
    /// A pointer offset that is not a multiple of 8.
    MisalignedPointer {
        /// The byte offset given.
        offset: usize,
    },
    /// The size is larger than any object can be (`isize::MAX`).
    TooLarge {
        /// Size of the type in bytes.
        size: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::PointerPastEnd { word, size } => write!(
                f,
                "pointer bitmap names word {word} (bytes {}..{}) but the type is only {size} bytes",
                word * 8,
                word * 8 + 8
            ),
            LayoutError::NotWordMultiple { size } => {
                write!(
                    f,
                    "a type with pointers must be a multiple of 8 bytes, not {size}"
                )
            }
            LayoutError::MisalignedPointer { offset } => {
                write!(f, "pointer at byte offset {offset} is not 8-byte aligned")
            }
            LayoutError::TooLarge { size } => write!(f, "type size {size} exceeds isize::MAX"),
        }
    }
}

impl std::error::Error for LayoutError {}
