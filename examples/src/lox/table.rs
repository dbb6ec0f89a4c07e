//! Hash tables in the heap: the string-keyed tables behind methods, globals and a class's
//! field slots, and the weak intern table.
//!
//! A [`Table`] is four words embedded in its owner (a class, or the globals object): a
//! pointer to an entry array in the heap, a count, a capacity and a Bloom filter. Keys are
//! interned strings, so a key compares by address; the hash sits in the string's header.
//! Open addressing with linear probing, clox's: an empty slot is the zero entry (fresh heap
//! memory is zero, so a new array needs no initialising), a deleted one a tombstone (null
//! key, non-zero value), and the count includes tombstones so probing always ends. Entry
//! arrays are all pointer words; every store into them goes through `Mutator::write`.
//!
//! The [`Interner`] holds every string once. Its slot array is allocated *noscan*: the
//! collector marks the array (the interner points at it) but never reads its slots, so a
//! string that nothing else reaches is collected. Before the sweep frees it,
//! [`Interner::clear_dead`] (called from `Roots::clear_weak`) turns its slot into a
//! tombstone. Growing either kind of table allocates, so it lives with the allocator in
//! `heap.rs`; this module only probes and stores.

use minigo_gc::{Liveness, Mutator};

use super::object::ObjString;
use super::value::Value;

/// One slot of a table.
#[repr(C)]
pub struct Entry {
    pub key: *mut ObjString,
    pub value: Value,
}

/// A string-keyed hash table whose entries live in a heap array.
#[repr(C)]
pub struct Table {
    pub entries: *mut Entry,
    pub count: usize,
    pub capacity: usize,
    /// A one-word Bloom filter of the keys ever stored: bit `hash % 64` of each. A clear
    /// bit proves a key absent without probing, which is what a method call on an
    /// instance asks of its fields first. Lox never deletes fields, methods or globals,
    /// and a stale bit would only cost a probe. Non-zero only once a key is stored, so
    /// it also says the entry array exists.
    pub filter: u64,
}

/// The filter bit of `key`.
///
/// # Safety
/// `key` is a live string.
#[inline(always)]
unsafe fn filter_bit(key: *mut ObjString) -> u64 {
    // SAFETY: the caller's contract.
    1 << (unsafe { (*key).hash() } & 63)
}

/// Tables grow when more than 3/4 full (tombstones included), as clox's.
pub fn grown_capacity(count: usize, capacity: usize) -> Option<usize> {
    if (count + 1) * 4 > capacity * 3 {
        Some((capacity * 2).max(8))
    } else {
        None
    }
}

/// The slot for `key` in `entries`: its entry, or where it would go (the first tombstone
/// on its probe sequence, else the empty slot that ends it).
///
/// # Safety
/// `entries` is a live entry array of `capacity` (a power of two) with at least one empty
/// slot; `key` is a live string.
#[inline(always)]
pub unsafe fn find_entry(entries: *mut Entry, capacity: usize, key: *mut ObjString) -> *mut Entry {
    let mask = capacity - 1;
    // SAFETY: the caller's contract: `key` is live.
    let mut index = unsafe { (*key).hash() } as usize & mask;
    let mut tombstone: *mut Entry = std::ptr::null_mut();
    loop {
        // SAFETY: `index` is masked to the array's capacity.
        let entry = unsafe { entries.add(index) };
        // SAFETY: as above, a slot of the live array.
        let (k, v) = unsafe { ((*entry).key, (*entry).value) };
        if k == key {
            return entry;
        }
        if k.is_null() {
            if v == Value::EMPTY {
                return if tombstone.is_null() {
                    entry
                } else {
                    tombstone
                };
            }
            if tombstone.is_null() {
                tombstone = entry;
            }
        }
        index = (index + 1) & mask;
    }
}

impl Table {
    /// An empty table (no entry array yet).
    pub const fn new() -> Table {
        Table {
            entries: std::ptr::null_mut(),
            count: 0,
            capacity: 0,
            filter: 0,
        }
    }

    /// The entry of `key`, if present: the one probe every lookup shares.
    ///
    /// # Safety
    /// The table and `key` are live.
    #[inline(always)]
    unsafe fn entry(&self, key: *mut ObjString) -> Option<*mut Entry> {
        // SAFETY: the caller's contract.
        if self.filter & unsafe { filter_bit(key) } == 0 {
            return None;
        }
        // SAFETY: a key was stored (its filter bit is set), so the array exists, and it
        // always has an empty slot.
        let e = unsafe { find_entry(self.entries, self.capacity, key) };
        // SAFETY: `e` is a slot of the live array.
        (unsafe { (*e).key } == key).then_some(e)
    }

    /// The value of `key`, if present.
    ///
    /// # Safety
    /// The table and `key` are live.
    #[inline(always)]
    pub unsafe fn get(&self, key: *mut ObjString) -> Option<Value> {
        // SAFETY: the caller's contract; an entry found is a slot of the live array.
        unsafe { self.entry(key).map(|e| (*e).value) }
    }

    /// The value word of `key`'s entry, if the key is present (to overwrite it in place).
    ///
    /// # Safety
    /// The table and `key` are live.
    #[inline(always)]
    pub unsafe fn value_slot(&self, key: *mut ObjString) -> Option<*mut Value> {
        // SAFETY: the caller's contract; an entry found is a slot of the live array.
        unsafe { self.entry(key).map(|e| &raw mut (*e).value) }
    }

    /// The value word of `key`'s entry, if the key is present, trying slot `*hint`
    /// first and leaving there the slot where the key was found: an inline cache, one per
    /// name constant of a function. A hint needs no invalidation because it is checked:
    /// the slot it names holds `key` (keys are unique in a table) or the lookup probes as
    /// usual. Instances built by the same code store their fields in the same order, so
    /// they share slots, and a hint found on one serves them all.
    ///
    /// # Safety
    /// The table and `key` are live.
    #[inline(always)]
    pub unsafe fn slot_hinted(&self, key: *mut ObjString, hint: &mut usize) -> Option<*mut Value> {
        if *hint < self.capacity {
            // SAFETY: the slot is inside the live array (`capacity` > 0, so it exists).
            let e = unsafe { self.entries.add(*hint) };
            // SAFETY: as above.
            if unsafe { (*e).key } == key {
                // SAFETY: as above.
                return Some(unsafe { &raw mut (*e).value });
            }
        }
        // SAFETY: the caller's contract.
        unsafe { self.slot_and_remember(key, hint) }
    }

    /// `slot_hinted` when the hint missed: out of line, to keep the hit path small.
    ///
    /// # Safety
    /// As `slot_hinted`.
    #[inline(never)]
    unsafe fn slot_and_remember(
        &self,
        key: *mut ObjString,
        hint: &mut usize,
    ) -> Option<*mut Value> {
        // SAFETY: the caller's contract.
        let e = unsafe { self.entry(key) }?;
        // SAFETY: `e` is in the array that starts at `entries`.
        *hint = unsafe { e.offset_from(self.entries) } as usize;
        // SAFETY: as above.
        Some(unsafe { &raw mut (*e).value })
    }

    /// Stores `value` under `key`; true when the key is new. The caller has grown the
    /// table if [`grown_capacity`] asked for it.
    ///
    /// # Safety
    /// The table, `key` and `value` are live, and the table has room for one more key.
    #[inline]
    pub unsafe fn set(&mut self, m: &mut Mutator, key: *mut ObjString, value: Value) -> bool {
        // SAFETY: the caller made room, so the array exists and has an empty slot.
        let e = unsafe { find_entry(self.entries, self.capacity, key) };
        // SAFETY: `e` is a slot of the live array.
        let is_new = unsafe { (*e).key.is_null() };
        // SAFETY: as above; a tombstone's value is non-zero.
        if is_new && unsafe { (*e).value } == Value::EMPTY {
            self.count += 1;
        }
        // SAFETY: the caller's contract: `key` is live.
        self.filter |= unsafe { filter_bit(key) };
        // SAFETY: both words of an entry are pointer words of a live heap array; `key` is
        // a live string and `value` a live object or a non-address.
        unsafe {
            m.write(&raw mut (*e).key as *mut usize, key as usize);
            m.write(&raw mut (*e).value as *mut usize, value.bits() as usize);
        }
        is_new
    }

    /// Moves every live entry into `entries`, a fresh (zeroed) array of `capacity`, and
    /// makes it the table's; tombstones are dropped.
    ///
    /// # Safety
    /// The table is live; `entries` is a new live array of `capacity` with room for all
    /// of the table's keys.
    pub unsafe fn rehash_into(&mut self, m: &mut Mutator, entries: *mut Entry, capacity: usize) {
        let mut count = 0;
        for i in 0..self.capacity {
            // SAFETY: `i` is below the old capacity.
            let (key, value) = unsafe {
                let e = self.entries.add(i);
                ((*e).key, (*e).value)
            };
            if key.is_null() {
                continue;
            }
            // SAFETY: the new array is live, has room, and `key` is a live string.
            let dest = unsafe { find_entry(entries, capacity, key) };
            // SAFETY: pointer words of the new array; the values come from the old one.
            unsafe {
                m.write(&raw mut (*dest).key as *mut usize, key as usize);
                m.write(&raw mut (*dest).value as *mut usize, value.bits() as usize);
            }
            count += 1;
        }
        self.count = count;
        self.capacity = capacity;
        // SAFETY: `entries` is the pointer word of the table's owner, a live heap object
        // (or the globals object); the array is live.
        unsafe { m.write(&raw mut self.entries as *mut usize, entries as usize) };
    }

    /// Every (key, value) pair, in slot order.
    ///
    /// # Safety
    /// The table is live and not modified while the iterator is used.
    pub unsafe fn iter(&self) -> impl Iterator<Item = (*mut ObjString, Value)> + '_ {
        (0..self.capacity).filter_map(move |i| {
            // SAFETY: `i` is below the capacity of the live array (the caller's contract).
            let (k, v) = unsafe {
                let e = self.entries.add(i);
                ((*e).key, (*e).value)
            };
            (!k.is_null()).then_some((k, v))
        })
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

/// A slot of the intern table: empty, a tombstone, or a string's address.
const EMPTY_SLOT: usize = 0;
const TOMBSTONE_SLOT: usize = 1;

/// The weak set of interned strings (a heap object: `slots` is a pointer word, to a noscan
/// array of string addresses).
#[repr(C)]
pub struct Interner {
    pub slots: *mut usize,
    pub count: usize,
    pub capacity: usize,
}

impl Interner {
    /// The interned string equal to `bytes` (whose hash is `hash`), if there is one.
    ///
    /// # Safety
    /// The interner is live, and its slots hold live strings (true between collections:
    /// `clear_dead` removes the others before they are freed).
    #[inline]
    pub unsafe fn find(&self, bytes: &[u8], hash: u32) -> Option<*mut ObjString> {
        if self.count == 0 {
            return None;
        }
        let mask = self.capacity - 1;
        let mut index = hash as usize & mask;
        loop {
            // SAFETY: `index` is masked to the capacity of the live slot array.
            let slot = unsafe { *self.slots.add(index) };
            match slot {
                EMPTY_SLOT => return None,
                TOMBSTONE_SLOT => {}
                s => {
                    let s = s as *mut ObjString;
                    // SAFETY: non-empty, non-tombstone slots hold live strings.
                    if unsafe { (*s).hash() == hash && ObjString::bytes(s) == bytes } {
                        return Some(s);
                    }
                }
            }
            index = (index + 1) & mask;
        }
    }

    /// Adds `s` (not present yet). The caller has grown the table if
    /// [`grown_capacity`] asked for it.
    ///
    /// # Safety
    /// The interner and `s` are live; there is room for one more string.
    pub unsafe fn insert(&mut self, s: *mut ObjString) {
        // SAFETY: `s` is live.
        let hash = unsafe { (*s).hash() };
        let mask = self.capacity - 1;
        let mut index = hash as usize & mask;
        loop {
            // SAFETY: masked index into the live slot array. The slots are scalar words
            // (noscan): a plain store, not a pointer store for `Mutator::write`; that the
            // collector cannot see it is what makes the table weak.
            unsafe {
                let slot = self.slots.add(index);
                if *slot == EMPTY_SLOT || *slot == TOMBSTONE_SLOT {
                    if *slot == EMPTY_SLOT {
                        self.count += 1;
                    }
                    *slot = s as usize;
                    return;
                }
            }
            index = (index + 1) & mask;
        }
    }

    /// Moves every string into `slots`, a fresh zeroed array of `capacity`.
    ///
    /// # Safety
    /// The interner is live; `slots` is a new live noscan array of `capacity` words with
    /// room for every string; `m` is the heap's mutator.
    pub unsafe fn rehash_into(&mut self, m: &mut Mutator, slots: *mut usize, capacity: usize) {
        let old = (self.slots, self.capacity);
        self.count = 0;
        self.capacity = capacity;
        // SAFETY: `slots` is the interner's pointer word; the array is live.
        unsafe { m.write(&raw mut self.slots as *mut usize, slots as usize) };
        for i in 0..old.1 {
            // SAFETY: `i` is below the old capacity.
            let s = unsafe { *old.0.add(i) };
            if s != EMPTY_SLOT && s != TOMBSTONE_SLOT {
                // SAFETY: a live string, and the new array has room.
                unsafe { self.insert(s as *mut ObjString) };
            }
        }
    }

    /// Turns the slots of strings this collection found dead into tombstones. Returns how
    /// many it dropped.
    ///
    /// # Safety
    /// Called from `Roots::clear_weak` with the interner live.
    pub unsafe fn clear_dead(&mut self, live: &Liveness<'_>) -> usize {
        let mut dropped = 0;
        for i in 0..self.capacity {
            // SAFETY: `i` is below the capacity of the live slot array; the world is
            // stopped, so a plain store races with nothing.
            unsafe {
                let slot = self.slots.add(i);
                if *slot != EMPTY_SLOT && *slot != TOMBSTONE_SLOT && !live.is_live(*slot) {
                    *slot = TOMBSTONE_SLOT;
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Strings currently interned.
    ///
    /// # Safety
    /// The interner is live.
    pub unsafe fn len(&self) -> usize {
        (0..self.capacity)
            // SAFETY: `i` is below the capacity of the live slot array.
            .filter(|&i| unsafe { *self.slots.add(i) } > TOMBSTONE_SLOT)
            .count()
    }
}
