//! `GcMap`: a hash map in the heap (Go's `map`), the other container an embedder would
//! otherwise fill with handles on the Rust heap (an interpreter's globals, a table's
//! fields).
//!
//! 1. A `GcMap` is a `Copy` handle on a header object: counts and the address of its
//!    table, an array of slots (empty, full, or deleted; a key and a value), probed
//!    linearly from the key's hash. Slots and header are traced like any object.
//! 2. Keys hash as their `Hash` says, with a fixed-key SipHash: a `Gc` by its address
//!    (objects never move), a `GcStr` by its bytes. Not hardened against keys chosen to
//!    collide, as Go's per-map seed is.
//! 3. An insert that would fill more than 3/4 of the table (deleted slots count) first
//!    moves every entry into a table twice as large (or as large, if deletions made the
//!    room), stored through the write barrier; if that allocation fails under `max_heap`,
//!    nothing changes.
//! 4. As `GcVec`, the header's words are `Cell`s: a map is not `Sync`.

use std::cell::Cell;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::mem::MaybeUninit;

use minigo_alloc_core::{AllocError, Layout};

use crate::barrier;
use crate::typed_heap::{Allocator, Gc, GcField, GcSlice, HeapType};

const EMPTY: u64 = 0;
const FULL: u64 = 1;
const DELETED: u64 = 2;

/// A table slot: its state, then a key and a value, which are valid only when it is full
/// (an empty slot is zero words, not necessarily a valid `K` or `V`).
#[repr(C)]
struct Slot<K, V> {
    state: u64,
    key: MaybeUninit<K>,
    value: MaybeUninit<V>,
}

impl<K: Copy, V: Copy> Clone for Slot<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Copy, V: Copy> Copy for Slot<K, V> {}

// SAFETY: the key's and the value's pointer words at their offsets; the state is a scalar.
// A slot that is not full has zero words there, which the collector reads as null.
unsafe impl<K: GcField, V: GcField> GcField for Slot<K, V> {
    const MASK: u64 = {
        let key = std::mem::offset_of!(Slot<K, V>, key) / 8;
        let value = std::mem::offset_of!(Slot<K, V>, value) / 8;
        crate::typed_heap::shift_mask(K::MASK, key) | crate::typed_heap::shift_mask(V::MASK, value)
    };
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        K::pointer_words(offset + std::mem::offset_of!(Slot<K, V>, key), out);
        V::pointer_words(offset + std::mem::offset_of!(Slot<K, V>, value), out);
    }
    const SLACK: bool = K::SLACK || V::SLACK;
    unsafe fn clear_slack(p: *mut Self) {
        // SAFETY: the caller's contract; only full slots are written with a key and value
        // (`GcMap::put`), and a valid one is what `clear_slack` is given.
        unsafe {
            if (*p).state == FULL {
                K::clear_slack((*p).key.as_mut_ptr());
                V::clear_slack((*p).value.as_mut_ptr());
            }
        }
    }
}

/// The header: the table's address (its one pointer word), its slot count, the full
/// slots and the full or deleted ones.
#[repr(C)]
struct MapHeader<'gc, K, V> {
    table: Cell<usize>,
    slots: Cell<usize>,
    len: Cell<usize>,
    used: Cell<usize>,
    _t: PhantomData<GcSlice<'gc, Slot<K, V>>>,
}

// SAFETY: word 0 is the table's address (a pointer word); the counts are scalars.
unsafe impl<K, V> GcField for MapHeader<'_, K, V> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

// SAFETY: the layout above, and no drop glue (four `Cell<usize>`s).
unsafe impl<K, V> HeapType for MapHeader<'_, K, V> {
    fn layout() -> &'static Layout {
        static LAYOUT: std::sync::OnceLock<Layout> = std::sync::OnceLock::new();
        LAYOUT.get_or_init(|| Layout::new(32, &[0]).expect("a valid layout"))
    }
}

/// A hash map from `K` to `V` in the heap, of a run or an arena.
///
/// ```
/// use minigo_runtime::{gc, Gc, GcMap, GcStr, HeapType, Runtime};
/// #[derive(HeapType)]
/// struct Var { value: i64 }
/// Runtime::new().unwrap().run(|mu| {
///     let globals = GcMap::new(mu).unwrap();
///     for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
///         let var = Gc::new(mu, Var { value: i as i64 }).unwrap();
///         globals.insert(mu, GcStr::new(mu, name).unwrap(), var).unwrap();
///     }
///     gc(); // the map is on this goroutine's stack; its keys and values are in its table
///     let b = GcStr::new(mu, "b").unwrap();
///     assert_eq!(globals.get(&b).map(|v| v.value), Some(1));
///     assert_eq!(globals.remove(&b).map(|v| v.value), Some(1));
///     assert_eq!(globals.len(), 2);
/// }).unwrap();
/// ```
pub struct GcMap<'gc, K, V> {
    header: Gc<'gc, MapHeader<'gc, K, V>>,
}

impl<K, V> Clone for GcMap<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for GcMap<'_, K, V> {}

impl<K, V> std::fmt::Debug for GcMap<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GcMap({:p}, len {})",
            self.header.as_ptr(),
            self.header.len.get()
        )
    }
}

// SAFETY: one pointer word, the header's address.
unsafe impl<K, V> GcField for GcMap<'_, K, V> {
    const MASK: u64 = 1;
    fn pointer_words(offset: usize, out: &mut Vec<usize>) {
        out.push(offset / 8);
    }
}

fn hash<K: Hash>(k: &K) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    k.hash(&mut h);
    h.finish() as usize
}

impl<'gc, K, V> GcMap<'gc, K, V>
where
    K: GcField + Copy + Hash + Eq + 'gc,
    V: GcField + Copy + 'gc,
{
    /// An empty map (its table is allocated by the first insert).
    pub fn new(mu: impl Allocator<'gc>) -> Result<GcMap<'gc, K, V>, AllocError> {
        let header = Gc::new(
            mu,
            MapHeader {
                table: Cell::new(0),
                slots: Cell::new(0),
                len: Cell::new(0),
                used: Cell::new(0),
                _t: PhantomData,
            },
        )?;
        Ok(GcMap { header })
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.header.len.get()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table(&self) -> GcSlice<'gc, Slot<K, V>> {
        // SAFETY: the header's table holds `slots` slots and lives while the header
        // reaches it; the slice handle keeps it alive after.
        unsafe { GcSlice::from_addr(self.header.table.get(), self.header.slots.get()) }
    }

    /// The slot holding `k`, if any.
    fn find(&self, table: GcSlice<'gc, Slot<K, V>>, k: &K) -> Option<usize> {
        let n = table.len();
        if n == 0 {
            return None;
        }
        let mut i = hash(k) & (n - 1);
        for _ in 0..n {
            let s = table.get_unshared(i);
            match s.state {
                EMPTY => return None,
                // SAFETY: a full slot's key was written from a K (`put`).
                FULL if unsafe { s.key.assume_init_ref() } == k => return Some(i),
                _ => i = (i + 1) & (n - 1),
            }
        }
        None
    }

    /// The value for `k`.
    pub fn get(&self, k: &K) -> Option<V> {
        let table = self.table();
        let i = self.find(table, k)?;
        // SAFETY: a full slot's value was written from a V (`put`).
        Some(unsafe { table.get_unshared(i).value.assume_init() })
    }

    /// True when `k` has a value.
    pub fn contains_key(&self, k: &K) -> bool {
        self.find(self.table(), k).is_some()
    }

    /// Writes `k` and `v` into the first free slot of `table` on `k`'s probe (there is
    /// one: the load factor keeps a quarter free). Returns whether it was empty (not a
    /// deleted slot reused).
    fn put(table: GcSlice<'gc, Slot<K, V>>, k: K, v: V) -> bool {
        let n = table.len();
        let mut i = hash(&k) & (n - 1);
        loop {
            let state = table.get_unshared(i).state;
            if state != FULL {
                table.set_unshared(
                    i,
                    Slot {
                        state: FULL,
                        key: MaybeUninit::new(k),
                        value: MaybeUninit::new(v),
                    },
                );
                return state == EMPTY;
            }
            i = (i + 1) & (n - 1);
        }
    }

    /// Sets `k` to `v`; returns the value it replaced. Fails only when the heap cannot
    /// hold a larger table, and then changes nothing.
    pub fn insert(&self, mu: impl Allocator<'gc>, k: K, v: V) -> Result<Option<V>, AllocError> {
        let table = self.table();
        if let Some(i) = self.find(table, &k) {
            // SAFETY: a full slot's value was written from a V (`put`).
            let old = unsafe { table.get_unshared(i).value.assume_init() };
            table.set_unshared(
                i,
                Slot {
                    state: FULL,
                    key: MaybeUninit::new(k),
                    value: MaybeUninit::new(v),
                },
            );
            return Ok(Some(old));
        }
        let table = if (self.header.used.get() + 1) * 4 > table.len() * 3 {
            self.rehash(mu)?
        } else {
            table
        };
        if Self::put(table, k, v) {
            self.header.used.set(self.header.used.get() + 1);
        }
        self.header.len.set(self.len() + 1);
        Ok(None)
    }

    /// Moves every entry into a new table (twice as large unless deletions made room),
    /// then points the header at it.
    fn rehash(&self, mu: impl Allocator<'gc>) -> Result<GcSlice<'gc, Slot<K, V>>, AllocError> {
        let old = self.table();
        let mut n = old.len().max(4);
        while (self.len() + 1) * 2 > n {
            n *= 2;
        }
        let empty = Slot {
            state: EMPTY,
            key: MaybeUninit::zeroed(),
            value: MaybeUninit::zeroed(),
        };
        let table = GcSlice::new(mu, n, empty)?;
        for i in 0..old.len() {
            let s = old.get_unshared(i);
            if s.state == FULL {
                // SAFETY: a full slot's key and value were written from a K and a V.
                unsafe { Self::put(table, s.key.assume_init(), s.value.assume_init()) };
            }
        }
        // SAFETY: word 0 of a live header is its pointer word; `table` is an object of the
        // same heap (the same brand).
        unsafe { barrier::write(self.header.table.as_ptr(), table.addr()) };
        self.header.slots.set(n);
        self.header.used.set(self.len());
        Ok(table)
    }

    /// Removes `k`; returns its value.
    pub fn remove(&self, k: &K) -> Option<V> {
        let table = self.table();
        let i = self.find(table, k)?;
        // SAFETY: a full slot's value was written from a V (`put`).
        let v = unsafe { table.get_unshared(i).value.assume_init() };
        table.set_unshared(
            i,
            Slot {
                state: DELETED,
                key: MaybeUninit::zeroed(),
                value: MaybeUninit::zeroed(),
            },
        );
        self.header.len.set(self.len() - 1);
        Some(v)
    }

    /// The entries, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + 'gc {
        let table = self.table();
        (0..table.len()).filter_map(move |i| {
            let s = table.get_unshared(i);
            // SAFETY: a full slot's key and value were written from a K and a V.
            (s.state == FULL).then(|| unsafe { (s.key.assume_init(), s.value.assume_init()) })
        })
    }
}
