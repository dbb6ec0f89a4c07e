//! `GcVec`: a growable array in the heap (Go's slice with `append`), for what an embedder
//! would otherwise keep in a Rust `Vec` of handles, where the collector does not look.
//!
//! 1. A `GcVec` is a `Copy` handle on a header object: the length, the capacity, and a
//!    pointer word to the backing array (a `GcSlice`'s memory). Being in the heap, it is
//!    traced like any object, and may be a field of one.
//! 2. `push` past the capacity allocates an array twice as large, copies the elements and
//!    stores the new array's address through the write barrier, as Go's `growslice`
//!    does. If that allocation fails (`max_heap`), nothing changes.
//! 3. The header's words are `Cell`s: a `GcVec` is not `Sync`, so its handles cannot be
//!    shared between goroutines on different threads (two `push`es racing could pair a
//!    length with the wrong array). A vector is one goroutine's, or one mutation's.
//! 4. `pop` and `truncate` zero the slots they give up, so that a shrunk vector keeps
//!    nothing alive past its length. Zero words need not be a valid `T` (a `Gc` is never
//!    null), so no view of the array is handed out: every read checks the length of the
//!    moment.

use std::cell::Cell;
use std::marker::PhantomData;

use minigo_alloc_core::{AllocError, Layout};

use crate::barrier;
use crate::typed_heap::{Allocator, Gc, GcField, GcSlice, HeapType};

/// The header object. Word 0 (the array's address) is its only pointer word.
#[repr(C)]
struct VecHeader<'gc, T> {
    data: Cell<usize>,
    len: Cell<usize>,
    cap: Cell<usize>,
    _t: PhantomData<GcSlice<'gc, T>>,
}

// SAFETY: word 0 is the array's address (a pointer word); the length and capacity are
// scalars.
unsafe impl<T> GcField for VecHeader<'_, T> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

// SAFETY: the layout above, and no drop glue (three `Cell<usize>`s).
unsafe impl<T> HeapType for VecHeader<'_, T> {
    fn layout() -> &'static Layout {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        LAYOUT.get_or_init(|| Layout::new(24, &[0]).expect("a valid layout"))
    }
}

/// A growable array of `T` in the heap, of a run or an arena.
///
/// ```
/// use minigo_runtime::{gc, Gc, GcVec, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// Runtime::new().unwrap().run(|mu| {
///     let entries = GcVec::new(mu).unwrap();
///     for key in 0..1000 {
///         entries.push(mu, Gc::new(mu, Entry { key }).unwrap()).unwrap();
///     }
///     gc(); // the vector is on this goroutine's stack; the entries are in its array
///     assert_eq!(entries.iter().map(|e| e.key).sum::<u64>(), 999 * 1000 / 2);
/// }).unwrap();
/// ```
pub struct GcVec<'gc, T> {
    header: Gc<'gc, VecHeader<'gc, T>>,
}

impl<T> Clone for GcVec<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GcVec<'_, T> {}

impl<T> std::fmt::Debug for GcVec<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GcVec({:p}, len {})",
            self.header.as_ptr(),
            self.header.len.get()
        )
    }
}

// SAFETY: one pointer word, the header's address.
unsafe impl<T> GcField for GcVec<'_, T> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

impl<'gc, T: GcField + Copy + 'gc> GcVec<'gc, T> {
    /// An empty vector (its array is allocated by the first `push`).
    pub fn new(mu: impl Allocator<'gc>) -> Result<GcVec<'gc, T>, AllocError> {
        let header = Gc::new(
            mu,
            VecHeader {
                data: Cell::new(0),
                len: Cell::new(0),
                cap: Cell::new(0),
                _t: PhantomData,
            },
        )?;
        Ok(GcVec { header })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.header.len.get()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements the array holds before `push` must grow it.
    pub fn capacity(&self) -> usize {
        self.header.cap.get()
    }

    /// The first `len` elements of the current array. Not public: a slice kept across a
    /// `pop` or `truncate` would reach the slots they zeroed, which need not be valid `T`s;
    /// every use here is made afresh, with the length of the moment.
    fn as_slice(&self) -> GcSlice<'gc, T> {
        // SAFETY: the header's array holds `cap >= len` elements of T and lives while this
        // handle reaches it; the slice handle keeps it alive after.
        unsafe { GcSlice::from_addr(self.header.data.get(), self.len()) }
    }

    /// Element `i` (panics out of range).
    pub fn get(&self, i: usize) -> T {
        self.as_slice().get_unshared(i)
    }

    /// Stores `v` at `i` (panics out of range).
    pub fn set(&self, i: usize, v: T) {
        self.as_slice().set_unshared(i, v)
    }

    /// Appends `v`, growing the array (twice the capacity, at least 4) when it is full.
    /// Fails only when the heap cannot hold the larger array, and then changes nothing.
    pub fn push(&self, mu: impl Allocator<'gc>, v: T) -> Result<(), AllocError> {
        let (len, cap) = (self.len(), self.capacity());
        if len == cap {
            let grown = GcSlice::new(mu, (cap * 2).max(4), v)?;
            let old = self.as_slice();
            for i in 0..len {
                grown.set_unshared(i, old.get_unshared(i));
            }
            // SAFETY: word 0 of a live header is its pointer word; `grown` is an object of
            // the same heap (the same brand).
            unsafe { barrier::write(self.header.data.as_ptr(), grown.addr()) };
            self.header.cap.set(grown.len());
        }
        self.header.len.set(len + 1);
        self.set(len, v);
        Ok(())
    }

    /// Removes and returns the last element.
    pub fn pop(&self) -> Option<T> {
        let len = self.len();
        if len == 0 {
            return None;
        }
        let v = self.get(len - 1);
        self.truncate(len - 1);
        Some(v)
    }

    /// Shortens the vector to `len` elements (no change if it is not longer).
    pub fn truncate(&self, len: usize) {
        let old = self.as_slice();
        let len = len.min(old.len());
        // The length first: from here no read reaches the slots given up.
        self.header.len.set(len);
        for i in len..old.len() {
            // SAFETY: slot `i` is past the length, which every read checks afresh (`get`,
            // `iter`; no slice of the array is handed out): read again only after a
            // `push` writes it.
            unsafe { old.clear(i) };
        }
    }

    /// The elements, in order. Each step reads the vector as it is then (a `push` during
    /// the iteration is seen, a `pop` ends it sooner).
    pub fn iter(&self) -> impl Iterator<Item = T> + 'gc {
        let v = *self;
        (0..).map_while(move |i| (i < v.len()).then(|| v.get(i)))
    }
}
