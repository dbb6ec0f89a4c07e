//! Typed pointers into the heap: `Gc<'gc, T>` for objects of `#[derive(HeapType)]` types,
//! `GcSlice<'gc, T>` and `GcStr<'gc>` for arrays and strings, `GcCell` for pointer fields
//! that change.
//!
//! 1. **The brand.** Every handle carries `'gc`, the lifetime of the [`Mutation`] token
//!    that `Runtime::run` hands its main goroutine (gc-arena's technique). `run` takes a
//!    closure for *every* `'gc` (`for<'gc> FnOnce(Mutation<'gc>)`), so no caller can name
//!    one: a handle cannot be returned out of `run`, stored in a `static`, a
//!    `thread_local!`, a `'static` channel or a `Box<dyn Any>`, or mixed with another
//!    runtime's handles. Allocation needs the token, so no handle exists without a brand.
//!    The brand is invariant: `'gc` can neither grow nor shrink.
//! 2. **Where a handle may live** (the collector finds it there): on a goroutine's stack
//!    (locals, arguments, anything the goroutine's frames hold), scanned conservatively
//!    while the goroutine is parked; inside heap objects (fields of derived types, slice
//!    elements), scanned precisely; in a [`Global`](crate::Global), in a channel's buffer,
//!    in a goroutine's closure before it starts, in a cleanup's closure.
//! 3. **Where the type system cannot stop it**: a `Vec`, `Box` or `HashMap` on the Rust
//!    heap, or an OS thread of a `std::thread::scope` — places the brand allows (they end
//!    within `run`) and the collector does not look at. The object is freed under them.
//!    Keep such references in a [`GcVec`](crate::GcVec) or a [`GcMap`](crate::GcMap) (a
//!    growable array and a hash map in the heap) or as `Global`s. The checked mode (`checked.rs`) reports a read through such a handle.
//!
//! Objects never run destructors (derived types may not need `Drop`) and fields are written
//! once, at `Gc::new`, except through `GcCell` (pointers) and atomics (scalars), which are
//! safe to share between goroutines running on different threads. Every pointer store into
//! an object goes through the collector's write function.

use std::marker::PhantomData;
use std::ptr::NonNull;

use minigo_alloc_core::sync::{AtomicUsize, Ordering};
use minigo_alloc_core::{AllocError, Layout};

use crate::barrier;
use crate::checked;
use crate::malloc::{alloc, alloc_overwritten};
use crate::preempt::NoPreemptHere;
use crate::seqlock;

/// A type that may be a field of a heap object: says which of its words are pointers.
///
/// # Safety
/// `pointer_words` must report exactly the byte offsets (from `offset`) of the words that
/// hold pointers into the heap, and the type must be plain data the collector may copy and
/// free without running code.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a field of a heap object",
    note = "the collector neither sees nor frees memory outside its heap: use GcStr, GcSlice, Gc or a #[derive(HeapType)] type"
)]
pub unsafe trait GcField {
    /// Bit `i` set: word `i` of the value is a pointer (words past 64 are not represented;
    /// `pointer_words` has them all).
    const MASK: u64;

    /// Pushes the word index of every pointer word, the value being at byte `offset`.
    fn pointer_words(offset: usize, out: &mut Vec<usize>);

    /// Whether a value may carry bytes no field of it holds in a word the collector scans:
    /// a derived enum with a pointer in some variant (every word of it is a pointer word),
    /// or a type with such an enum inside.
    #[doc(hidden)]
    const SLACK: bool = false;

    /// Rewrites the value at `p` so that the bytes no field holds are zero. A copy of an
    /// enum carries in its padding, and in the room only other variants use, whatever
    /// the registers or stack held, stale pointers included; the collector scans every
    /// word of such an enum, so one stale word keeps a dead object alive, and that object's
    /// own stale words the next (a list built of `Value::Int` cells kept every earlier list
    /// alive). The derive rebuilds the active variant from its fields over zeroed bytes.
    ///
    /// # Safety
    /// `p` points at a valid, writable value of the type.
    #[doc(hidden)]
    unsafe fn clear_slack(_p: *mut Self) {}

    /// Whether any combination of words, each taken from some valid value at its place,
    /// is a valid value, wherever its alignment lets it start: true for scalars and
    /// one-word handles, for arrays of such, and for structs whose fields each are such or
    /// lie inside one word of a word-aligned struct; false for an enum that may straddle
    /// two words (a tag from one value, a payload from another) and for `GcSlice` and
    /// `GcStr` (a pointer with another's length). A `GcSlice` reads and writes elements
    /// wider than a word that are not tear-safe under a seqlock (`seqlock.rs`), since
    /// goroutines on other threads may write them meanwhile. Unsafe to claim wrongly: a
    /// torn read would make an invalid value.
    #[doc(hidden)]
    const TEAR_SAFE: bool = false;
}

/// Whether `size` bytes at `offset` lie inside one word: read and written whole (for
/// `GcField::TEAR_SAFE` of composite types; used by the derive).
#[doc(hidden)]
pub const fn within_word(offset: usize, size: usize) -> bool {
    size == 0 || offset / 8 == (offset + size - 1) / 8
}

/// `mask` moved up by `words` words, dropping what passes word 63 (for `GcField::MASK` of
/// composite types; used by the derive).
#[doc(hidden)]
pub const fn shift_mask(mask: u64, words: usize) -> u64 {
    if words >= 64 {
        0
    } else {
        mask << words
    }
}

/// A type that can be allocated as `Gc<Self>`. Derive it: `#[derive(HeapType)]`, on a
/// struct, an enum (every word of an enum with a pointer in some variant is scanned as a
/// candidate pointer), or a generic type; `#[minigo(crate = "path")]` names a renamed
/// runtime crate.
///
/// ```
/// use minigo_runtime::{Gc, GcStr, HeapType};
/// #[derive(HeapType, Clone, Copy)]
/// enum Value<'gc> { Nil, Int(i64), Str(GcStr<'gc>), Cons(Gc<'gc, Cons<'gc>>) }
/// #[derive(HeapType)]
/// struct Cons<'gc> { car: Value<'gc>, cdr: Value<'gc> }
/// #[derive(HeapType)]
/// struct Tagged<T> { tag: u32, value: T }
/// ```
///
/// Fields the collector cannot see or free are compile errors:
///
/// ```compile_fail
/// #[derive(minigo_runtime::HeapType)]
/// struct Named { name: String }
/// ```
///
/// and so are packed types (their pointers need not be word-aligned):
///
/// ```compile_fail
/// #[derive(minigo_runtime::HeapType)]
/// #[repr(C, packed)]
/// struct Odd<'gc> { tag: u8, next: Option<minigo_runtime::Gc<'gc, Odd<'gc>>> }
/// ```
///
/// and types that need `Drop`, and unions:
///
/// ```compile_fail
/// #[derive(minigo_runtime::HeapType)]
/// union Word { int: u64, float: f64 }
/// ```
///
/// # Safety
/// `layout` must describe the type's size and pointer words exactly, and the type must not
/// need `Drop`.
pub unsafe trait HeapType: GcField + Sized {
    /// The type's layout, computed once.
    fn layout() -> &'static Layout;
}

/// Whether a field of type `T` may hold a pointer word: its mask says so, or it is too big
/// for the mask to say (for the derive's enums).
#[doc(hidden)]
pub const fn may_hold_pointers<T: GcField>() -> bool {
    T::MASK != 0 || std::mem::size_of::<T>() > 64 * 8
}

/// The mask of a type of `size` bytes whose every word is a pointer word (the derive's
/// enums with a pointer in some variant).
#[doc(hidden)]
pub const fn all_words_mask(size: usize) -> u64 {
    let words = size / 8;
    if words >= 64 {
        u64::MAX
    } else {
        (1 << words) - 1
    }
}

/// The layout of a derived type with type parameters, computed on its first allocation
/// and kept per instantiation (a `static` in a generic function is one for them all).
///
/// The key is the instantiation's `pointer_words` function and size, not its `TypeId`:
/// heap types carry the non-`'static` brand, and `TypeId` needs `'static`. The key is
/// sound either way the compiler lays out code: a layout is exactly a size and what
/// `pointer_words` pushes, so two instantiations that share the function's code and the
/// size share the layout.
#[doc(hidden)]
pub fn cached_layout<T: GcField>() -> &'static Layout {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    type Key = (usize, usize);
    static CACHE: OnceLock<RwLock<HashMap<Key, &'static Layout>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let words: fn(usize, &mut Vec<usize>) = T::pointer_words;
    let key = (words as usize, std::mem::size_of::<T>());
    if let Some(l) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return l;
    }
    let mut w = cache.write().unwrap_or_else(|e| e.into_inner());
    w.entry(key)
        .or_insert_with(|| Box::leak(Box::new(layout_of::<T>())))
}

/// The layout of `T` from its `GcField` impl (what the derive caches).
pub fn layout_of<T: GcField>() -> Layout {
    let mut words = Vec::new();
    T::pointer_words(0, &mut words);
    Layout::new(std::mem::size_of::<T>(), &words)
        .expect("GcField reported a pointer past the type's end")
}

/// A field type without pointer words: what a `Cell` field may hold.
///
/// A store into a `Cell` is a plain store, and a pointer stored so would skip the write
/// barrier that a concurrent marker relies on; pointer fields that change are
/// [`GcCell`]s. So a `Cell` of a pointer is not a field type:
///
/// ```compile_fail
/// use minigo_runtime::{Gc, HeapType};
/// #[derive(HeapType)]
/// struct Node<'gc> { next: std::cell::Cell<Option<Gc<'gc, Node<'gc>>>> }
/// ```
///
/// while a `Cell` of a scalar and a `GcCell` of a pointer are:
///
/// ```
/// use minigo_runtime::{Gc, GcCell, HeapType};
/// #[derive(HeapType)]
/// struct Node<'gc> { visits: std::cell::Cell<u64>, next: GcCell<Option<Gc<'gc, Node<'gc>>>> }
/// ```
///
/// Sealed: implemented for the primitive scalars and arrays of them.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a scalar, so a `Cell` of it cannot be a heap object's field",
    note = "a pointer field that changes is a `GcCell` (its stores go through the write barrier)"
)]
pub trait GcScalar: GcField + sealed::Scalar {}

pub(crate) mod sealed {
    pub trait Scalar {}
    pub trait Allocator {}
}

impl<T: GcScalar, const N: usize> sealed::Scalar for [T; N] {}
impl<T: GcScalar, const N: usize> GcScalar for [T; N] {}

macro_rules! scalar_fields {
    ($($t:ty),*) => {$(
        // SAFETY: a scalar: no pointer words, no drop glue.
        unsafe impl GcField for $t {
            const MASK: u64 = 0;
            const TEAR_SAFE: bool = true;
            #[inline]
            fn pointer_words(_: usize, _: &mut Vec<usize>) {}
        }
        impl sealed::Scalar for $t {}
        impl GcScalar for $t {}
    )*};
}

scalar_fields!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    (),
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicIsize,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicBool
);

// SAFETY: a scalar wrapper: `GcScalar` types have no pointer words, and Cell<T> for Copy
// scalars has no drop glue.
unsafe impl<T: GcScalar + Copy> GcField for std::cell::Cell<T> {
    const MASK: u64 = T::MASK;
    const TEAR_SAFE: bool = T::TEAR_SAFE;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        T::pointer_words(offset, out)
    }
}

// SAFETY: elements at their offsets.
unsafe impl<T: GcField, const N: usize> GcField for [T; N] {
    const MASK: u64 = {
        let (mut m, mut i) = (0, 0);
        while i < N {
            m |= shift_mask(T::MASK, i * std::mem::size_of::<T>() / 8);
            i += 1;
        }
        m
    };
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        for i in 0..N {
            T::pointer_words(offset + i * std::mem::size_of::<T>(), out);
        }
    }
    const SLACK: bool = T::SLACK;
    const TEAR_SAFE: bool = T::TEAR_SAFE;
    unsafe fn clear_slack(p: *mut Self) {
        for i in 0..N {
            // SAFETY: element i of the valid array at `p`.
            unsafe { T::clear_slack(p.cast::<T>().add(i)) };
        }
    }
}

/// The brand of a run's handles: a zero-size, `Copy` token that `Runtime::run` hands its
/// main goroutine, needed to allocate (`Gc::new(mu, ...)`) and to start a goroutine that
/// captures handles ([`Mutation::go`]). Every `Gc<'gc, T>`, `GcSlice<'gc, T>` and
/// `GcStr<'gc>` is valid for the `'gc` of the token that made it, and `'gc` ends with
/// `run` (see the module comment, step 1).
///
/// A handle cannot leave its run:
///
/// ```compile_fail,E0521
/// use minigo_runtime::{Gc, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// let (tx, rx) = std::sync::mpsc::channel();
/// Runtime::new().unwrap().run(move |mu| {
///     tx.send(Gc::new(mu, Entry { key: 1 }).unwrap()).unwrap(); // `'gc` is not `'static`
/// }).unwrap();
/// let kept = rx.recv().unwrap();
/// ```
///
/// nor be kept in a `static` or a `thread_local!`:
///
/// ```compile_fail,E0521
/// use std::sync::Mutex;
/// use minigo_runtime::{Gc, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// static KEPT: Mutex<Option<Gc<'static, Entry>>> = Mutex::new(None);
/// Runtime::new().unwrap().run(|mu| {
///     *KEPT.lock().unwrap() = Some(Gc::new(mu, Entry { key: 1 }).unwrap());
/// }).unwrap();
/// ```
///
/// nor be given to a goroutine of another runtime:
///
/// ```compile_fail,E0521
/// use minigo_runtime::{Gc, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Entry { key: u64 }
/// Runtime::new().unwrap().run(|mu| {
///     let e = Gc::new(mu, Entry { key: 1 }).unwrap();
///     Runtime::new().unwrap().run(move |_| assert_eq!(e.key, 1)).unwrap();
/// }).unwrap();
/// ```
#[derive(Clone, Copy)]
pub struct Mutation<'gc> {
    _brand: Brand<'gc>,
}

/// Invariant in `'gc`: a brand neither coerces to a longer lifetime (escaping the run)
/// nor to a shorter one shared with another brand.
pub(crate) type Brand<'gc> = PhantomData<fn(&'gc ()) -> &'gc ()>;

impl Mutation<'_> {
    /// The token of a run; only `Runtime::run` makes one, for a `'gc` its caller cannot
    /// name.
    pub(crate) fn new() -> Self {
        Mutation {
            _brand: PhantomData,
        }
    }
}

impl std::fmt::Debug for Mutation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Mutation")
    }
}

/// Where handles of brand `'gc` are allocated: a run's [`Mutation`] (the running
/// goroutine's P) or an [`ArenaMutation`](crate::ArenaMutation) (the arena's one mutator,
/// by an explicit pointer). Sealed: the constructors (`Gc::new`, `GcSlice::new`,
/// `GcStr::new`) take either.
pub trait Allocator<'gc>: Copy + sealed::Allocator {
    /// A zeroed array of `len` elements of `layout`.
    #[doc(hidden)]
    fn alloc(self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError>;

    /// [`Allocator::alloc`] for a constructor that writes over every byte of the array
    /// before anything reads it: if `layout` has no pointers, it may hold old bytes.
    #[doc(hidden)]
    #[inline(always)]
    fn alloc_overwritten(self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
        self.alloc(layout, len)
    }
}

impl sealed::Allocator for Mutation<'_> {}

impl<'gc> Allocator<'gc> for Mutation<'gc> {
    #[inline(always)]
    fn alloc(self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
        alloc(layout, len)
    }

    #[inline(always)]
    fn alloc_overwritten(self, layout: &Layout, len: usize) -> Result<NonNull<u8>, AllocError> {
        alloc_overwritten(layout, len)
    }
}

/// A pointer to a heap object, valid for the run that allocated it (`'gc`). `Copy`; null
/// is `Option<Gc<T>>::None` (same size).
///
/// ```
/// use minigo_runtime::{gc, Gc, GcCell, GcSlice, GcStr, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Node<'gc> { value: u64, name: GcStr<'gc>, next: GcCell<Option<Gc<'gc, Node<'gc>>>> }
/// Runtime::new().unwrap().run(|mu| {
///     let node = |value, name| Node { value, name: GcStr::new(mu, name).unwrap(), next: GcCell::new(None) };
///     let a = Gc::new(mu, node(1, "a")).unwrap();
///     let b = Gc::new(mu, node(2, "b")).unwrap();
///     b.next.set(Some(a)); // through the write barrier
///     let all = GcSlice::new(mu, 2, None::<Gc<Node>>).unwrap();
///     all.set(0, Some(b));
///     gc(); // `a` and `b` live on: `b` is on this goroutine's stack, `a` reached from it
///     assert_eq!(b.next.get().unwrap().name.as_str(), "a");
///     assert_eq!(all.get(0).unwrap().value, 2);
/// }).unwrap();
/// ```
#[repr(transparent)]
pub struct Gc<'gc, T> {
    ptr: NonNull<T>,
    _brand: PhantomData<(T, Brand<'gc>)>,
}

impl<T> Clone for Gc<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Gc<'_, T> {}

impl<T> PartialEq for Gc<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}
impl<T> Eq for Gc<'_, T> {}

/// By address: objects never move, so a `Gc` keys a `GcMap` by identity.
impl<T> std::hash::Hash for Gc<'_, T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.ptr.hash(state)
    }
}

impl<T> std::fmt::Debug for Gc<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gc({:p})", self.ptr)
    }
}

// SAFETY: a Gc is an address the collector keeps alive wherever the rules above allow it to
// be, for as long as its brand (within the run); sharing it between goroutines (on any of
// the runtime's threads) shares `&T`, which is sound when T is Sync.
unsafe impl<T: Sync> Send for Gc<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Gc<'_, T> {}

// SAFETY: one pointer word.
unsafe impl<T> GcField for Gc<'_, T> {
    // One word, written whole.
    const TEAR_SAFE: bool = true;
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

// SAFETY: Option<Gc<T>> has Gc's representation (null = None): one pointer word.
unsafe impl<T> GcField for Option<Gc<'_, T>> {
    // One word, written whole.
    const TEAR_SAFE: bool = true;
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

impl<'gc, T: HeapType + 'gc> Gc<'gc, T> {
    /// Moves `value` into a new heap object, of the run or the arena `mu` belongs to.
    /// Fails outside a goroutine of the run, and when the heap cannot hold it (after a
    /// collection, in a run) under a `max_heap` limit.
    #[inline]
    pub fn new(mu: impl Allocator<'gc>, value: T) -> Result<Gc<'gc, T>, AllocError> {
        let mut value = value;
        if T::SLACK {
            // SAFETY: `value` is a valid T, ours. Cleared here, before the copy into the
            // object: zeroing the object in place would open a window in which a marker
            // reading it (see below) sees its pointers as null.
            unsafe { T::clear_slack(&mut value) };
        }
        let p = mu.alloc_overwritten(T::layout(), 1)?.cast::<T>();
        // SAFETY: a fresh, properly sized and aligned object (zeroed if it has pointers;
        // a pointer-free one may hold old bytes until the copy below writes over them) that no one else can
        // reach yet; the write is its initialisation. A collector marking meanwhile never
        // scans it (it is allocated black), so it does not read the words being written,
        // and the pointers written come from this goroutine's stack, which is black while
        // it runs: these stores need no barrier (`barrier.rs`). (A goroutine preempted
        // between the allocation and this write, while a cycle starts, has the object
        // greyed by its stack's scan: a marker may then read its words during the write.
        // Holding the preemption count across both made verify mode report a zeroed,
        // unmarked object reached from a stack, 4 runs in 30, for a reason not found yet;
        // see the issue 14 notes.) In an arena nothing marks while a mutation runs. The
        // copy is of bytes, not typed, so that the slack `clear_slack` zeroed stays zero;
        // `value` needs no drop (a HeapType has no drop glue).
        unsafe {
            std::ptr::copy_nonoverlapping(
                &value as *const T as *const u8,
                p.as_ptr() as *mut u8,
                std::mem::size_of::<T>(),
            )
        };
        std::mem::forget(value);
        Ok(Gc {
            ptr: p,
            _brand: PhantomData,
        })
    }
}

impl<'gc, T> Gc<'gc, T> {
    /// The object's address.
    pub fn as_ptr(self) -> *const T {
        self.ptr.as_ptr()
    }

    /// Whether two pointers point at the same object.
    pub fn ptr_eq(a: Gc<'gc, T>, b: Gc<'gc, T>) -> bool {
        a.ptr == b.ptr
    }

    /// A `Gc` from an address.
    ///
    /// # Safety
    /// `ptr` is a live heap object of type `T` of `mu`'s heap, kept alive (as the module
    /// comment says) for as long as the returned handle is used.
    pub unsafe fn from_raw(mu: impl Allocator<'gc>, ptr: *const T) -> Gc<'gc, T> {
        let _ = mu;
        Gc {
            ptr: NonNull::new(ptr as *mut T).expect("Gc::from_raw(null)"),
            _brand: PhantomData,
        }
    }
}

impl<T: HeapType> std::ops::Deref for Gc<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        checked::check_object(self.ptr.as_ptr() as usize, T::layout);
        // SAFETY: a Gc held where the rules allow keeps its object alive, and its brand
        // keeps it from outliving the run, whose heap it points into (the checked mode
        // reports one held where the collector does not look); objects are immutable but
        // for atomics and GcCells.
        unsafe { self.ptr.as_ref() }
    }
}

/// A pointer field that can change after the object is built: reads and writes are atomic
/// (word-sized, relaxed), writes go through the collector's write function.
#[repr(transparent)]
pub struct GcCell<T: GcPointer> {
    word: AtomicUsize,
    _t: PhantomData<T>,
}

/// `Gc<T>` or `Option<Gc<T>>`: what a `GcCell` holds.
pub trait GcPointer: Copy + GcField {
    /// The pointer as a word (0 for None).
    fn to_word(self) -> usize;
    /// The word back as the pointer.
    ///
    /// # Safety
    /// `w` came from `to_word` of the same type.
    unsafe fn from_word(w: usize) -> Self;
}

impl<T> GcPointer for Gc<'_, T> {
    fn to_word(self) -> usize {
        self.ptr.as_ptr() as usize
    }
    unsafe fn from_word(w: usize) -> Self {
        Gc {
            ptr: NonNull::new(w as *mut T).expect("a Gc word is never 0"),
            _brand: PhantomData,
        }
    }
}

impl<T> GcPointer for Option<Gc<'_, T>> {
    fn to_word(self) -> usize {
        self.map_or(0, |g| g.ptr.as_ptr() as usize)
    }
    unsafe fn from_word(w: usize) -> Self {
        NonNull::new(w as *mut T).map(|ptr| Gc {
            ptr,
            _brand: PhantomData,
        })
    }
}

// SAFETY: one pointer word.
unsafe impl<T: GcPointer> GcField for GcCell<T> {
    // One word, written whole.
    const TEAR_SAFE: bool = true;
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

impl<T: GcPointer> GcCell<T> {
    /// A cell holding `v`.
    pub fn new(v: T) -> Self {
        GcCell {
            word: AtomicUsize::new(v.to_word()),
            _t: PhantomData,
        }
    }

    /// The current pointer.
    pub fn get(&self) -> T {
        // SAFETY: the word was stored from a T.
        unsafe { T::from_word(self.word.load(Ordering::Relaxed)) }
    }

    /// Stores `v` through the collector's write function.
    pub fn set(&self, v: T) {
        // SAFETY: this cell is a pointer word of a live heap object (cells live in heap
        // objects; one on a stack is scanned conservatively anyway), and `v` is a heap
        // pointer or null.
        unsafe { barrier::write(self.word.as_ptr(), v.to_word()) };
    }
}

/// An array in the heap: a `Copy` pair of a pointer to the elements and their number (Go's
/// slice header, without a capacity). Elements are word-sized multiples so that a
/// concurrent read can tear only between words, never inside one.
pub struct GcSlice<'gc, T> {
    ptr: Option<NonNull<T>>,
    len: usize,
    _brand: Brand<'gc>,
}

impl<T> std::fmt::Debug for GcSlice<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcSlice({:?}, len {})", self.ptr, self.len)
    }
}

impl<T> Clone for GcSlice<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for GcSlice<'_, T> {}

// SAFETY: as for Gc.
unsafe impl<T: Sync> Send for GcSlice<'_, T> {}
// SAFETY: as for Gc.
unsafe impl<T: Sync> Sync for GcSlice<'_, T> {}

// SAFETY: a pointer word, then the length (a scalar).
unsafe impl<T> GcField for GcSlice<'_, T> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

impl<'gc, T: GcField + Copy + 'gc> GcSlice<'gc, T> {
    const WORDS: usize = {
        assert!(
            std::mem::size_of::<T>().is_multiple_of(8),
            "GcSlice elements must be a whole number of words"
        );
        assert!(
            std::mem::size_of::<T>() <= 512,
            "GcSlice elements are at most 64 words"
        );
        std::mem::size_of::<T>() / 8
    };

    /// Whether elements are read and written under a seqlock (`seqlock.rs`): wider
    /// than a word, and not valid whatever words of valid values are put together.
    const LOCKED: bool = Self::WORDS > 1 && !T::TEAR_SAFE;

    /// A new array of `len` copies of `init`.
    pub fn new(
        mu: impl Allocator<'gc>,
        len: usize,
        init: T,
    ) -> Result<GcSlice<'gc, T>, AllocError> {
        let layout = elem_layout::<T>();
        // Every element is written below, before the slice is returned.
        let p = mu.alloc_overwritten(&layout, len)?.cast::<T>();
        let s = GcSlice {
            ptr: Some(p),
            len,
            _brand: PhantomData,
        };
        for i in 0..len {
            // No other goroutine has the array yet.
            s.set_unshared(i, init);
        }
        Ok(s)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty array.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The array's address (0 for an empty one made without allocating).
    pub(crate) fn addr(&self) -> usize {
        self.ptr.map_or(0, |p| p.as_ptr() as usize)
    }

    /// The first `len` elements of the array at `addr`.
    ///
    /// # Safety
    /// `addr` is an array of this brand's heap with at least `len` elements of `T`, live
    /// while the handle is used (0 with `len` 0).
    pub(crate) unsafe fn from_addr(addr: usize, len: usize) -> GcSlice<'gc, T> {
        GcSlice {
            ptr: NonNull::new(addr as *mut T),
            len,
            _brand: PhantomData,
        }
    }

    /// Zeroes element `i` (pointer words through the write function), so that it keeps
    /// nothing alive.
    ///
    /// # Safety
    /// Element `i` is not read as a `T` again before it is `set` (zero words need not be
    /// a valid `T`).
    pub(crate) unsafe fn clear(&self, i: usize) {
        self.write_words(i, false, |_| 0);
    }

    /// Writes `value(w)` into each word `w` of element `i`: pointer words through the
    /// write function; an element of more than one word under its stripe's seqlock
    /// (`seqlock.rs`), not preempted meanwhile, so that a goroutine reading it waits on a
    /// write that runs, not on a parked one.
    #[inline]
    fn write_words(&self, i: usize, locked: bool, value: impl Fn(usize) -> usize) {
        let store = || {
            for w in 0..Self::WORDS {
                let word = value(w);
                let slot = self.word(i, w);
                if T::MASK >> w & 1 != 0 {
                    // SAFETY: a pointer word of a live heap array; the caller's word is a
                    // T's (or 0, null).
                    unsafe { barrier::write(slot.as_ptr(), word) };
                } else {
                    slot.store(word, Ordering::Relaxed);
                }
            }
        };
        if !locked {
            store();
        } else {
            if T::MASK != 0 {
                // Refused before any word is stored, not at the first pointer word: the
                // lock would publish the words stored before as a whole element.
                barrier::refuse_store_off_goroutine(self.word(i, 0).as_ptr() as usize);
            }
            let _np = NoPreemptHere::new();
            seqlock::lock_for(self.word(i, 0) as *const AtomicUsize as usize).write(store);
        }
    }

    /// The checked mode's test of the array handle (`checked.rs`).
    #[inline(always)]
    fn check(&self) {
        if let Some(p) = self.ptr {
            checked::check_read(p.as_ptr() as usize, "GcSlice");
        }
    }

    fn word(&self, i: usize, w: usize) -> &AtomicUsize {
        assert!(
            i < self.len,
            "index {i} out of range for a GcSlice of length {}",
            self.len
        );
        let base = self.ptr.expect("non-empty").as_ptr() as usize;
        // SAFETY: element i is inside the array (checked), word w inside the element.
        unsafe { &*((base + i * std::mem::size_of::<T>() + w * 8) as *const AtomicUsize) }
    }

    /// Element `i` (panics out of range).
    pub fn get(&self, i: usize) -> T {
        self.read(i, Self::LOCKED)
    }

    /// Stores `v` at `i` (panics out of range); pointer words through the write function.
    #[inline]
    pub fn set(&self, i: usize, v: T) {
        self.write(i, v, Self::LOCKED)
    }

    /// [`GcSlice::get`] without the seqlock: for the arrays of `GcVec` and `GcMap`, whose
    /// handles stay on one thread, so no write can race the read.
    pub(crate) fn get_unshared(&self, i: usize) -> T {
        self.read(i, false)
    }

    /// [`GcSlice::set`] without the seqlock, as [`GcSlice::get_unshared`].
    pub(crate) fn set_unshared(&self, i: usize, v: T) {
        self.write(i, v, false)
    }

    fn read(&self, i: usize, locked: bool) -> T {
        self.check();
        let mut words = [0usize; 64];
        let n = Self::WORDS;
        let mut load = || {
            for (w, slot) in words.iter_mut().enumerate().take(n) {
                *slot = self.word(i, w).load(Ordering::Relaxed);
            }
        };
        if !locked {
            load();
        } else {
            // One write's words, not two writes' (`seqlock.rs`).
            seqlock::lock_for(self.word(i, 0) as *const AtomicUsize as usize).read(load);
        }
        // SAFETY: the words were stored from one T (see `set`), and T is plain data; the
        // buffer is only word-aligned (a u128 wants more).
        unsafe { std::ptr::read_unaligned(words.as_ptr() as *const T) }
    }

    #[inline]
    fn write(&self, i: usize, v: T, locked: bool) {
        self.check();
        let mut v = v;
        if T::SLACK {
            // SAFETY: `v` is a valid value of T, ours.
            unsafe { T::clear_slack(&mut v) };
        }
        let src = &v as *const T as *const usize;
        // SAFETY: `src` points at `v`, `Self::WORDS` words long.
        self.write_words(i, locked, |w| unsafe { src.add(w).read() });
    }
}

/// An immutable UTF-8 string in the heap (a noscan object), as a `Copy` pointer and length.
#[derive(Clone, Copy)]
pub struct GcStr<'gc> {
    ptr: Option<NonNull<u8>>,
    len: usize,
    _brand: Brand<'gc>,
}

// SAFETY: an immutable byte array.
unsafe impl Send for GcStr<'_> {}
// SAFETY: as above.
unsafe impl Sync for GcStr<'_> {}

// SAFETY: a pointer word, then the length.
unsafe impl GcField for GcStr<'_> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

impl<'gc> GcStr<'gc> {
    /// Copies `s` into the heap.
    pub fn new(mu: impl Allocator<'gc>, s: &str) -> Result<GcStr<'gc>, AllocError> {
        if s.is_empty() {
            return Ok(GcStr {
                ptr: None,
                len: 0,
                _brand: PhantomData,
            });
        }
        let p = mu.alloc_overwritten(&Layout::noscan(1), s.len())?;
        // SAFETY: a fresh object of s.len() bytes, all written here.
        unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), p.as_ptr(), s.len()) };
        Ok(GcStr {
            ptr: Some(p),
            len: s.len(),
            _brand: PhantomData,
        })
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        if let Some(p) = self.ptr {
            checked::check_read(p.as_ptr() as usize, "GcStr");
        }
        match self.ptr {
            None => "",
            // SAFETY: the bytes were copied from a &str and never change.
            Some(p) => unsafe {
                std::str::from_utf8_unchecked(std::slice::from_raw_parts(p.as_ptr(), self.len))
            },
        }
    }
}

impl std::fmt::Debug for GcStr<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialEq for GcStr<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for GcStr<'_> {}

/// By contents, as `PartialEq` compares.
impl std::hash::Hash for GcStr<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

fn elem_layout<T: GcField>() -> Layout {
    layout_of::<T>()
}
