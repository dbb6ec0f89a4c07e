//! The shapes of Lox's heap objects and their precise layouts.
//!
//! Every object starts with a header word whose low byte is its [`Kind`] (strings keep
//! their hash in the upper half). The structs here are `#[repr(C)]` images of the words in
//! the minigo heap; their layouts are built from the fields' offsets, so a pointer bit is
//! set exactly where the struct holds a `*mut` to another object or a [`Value`]. Scalars
//! (lengths, counts, a native's index, an open upvalue's stack address) have no bit. The
//! collector never reads a word without one.
//!
//! Objects are made only by `heap::LoxHeap` (which writes their pointer fields through
//! `Mutator::write`) and read through the accessors below, by the VM and the compiler.

use std::mem::{offset_of, size_of};

use minigo_gc::Layout;

use super::table::{Entry, Table};
use super::value::Value;

/// What an object is; the low byte of its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    String = 1,
    Function = 2,
    Native = 3,
    Closure = 4,
    Upvalue = 5,
    Class = 6,
    Instance = 7,
    BoundMethod = 8,
}

/// An interned string: header (kind, and the FNV-1a hash in bits 32..64), length, then
/// the bytes. Pointer-free: allocated noscan.
#[repr(C)]
pub struct ObjString {
    pub header: u64,
    pub len: usize,
}

/// A compiled function: its bytecode, line table and constants (heap arrays of their
/// own), and its name (null for the top-level script).
#[repr(C)]
pub struct ObjFunction {
    pub header: u64,
    pub arity: usize,
    pub upvalue_count: usize,
    /// The most stack slots a call of this function uses (slot 0, the callee, included):
    /// the VM checks that much room is left before it pushes the frame.
    pub max_stack: usize,
    pub code_len: usize,
    pub const_len: usize,
    pub name: *mut ObjString,
    pub constants: *mut Value,
    pub code: *mut u8,
    pub lines: *mut u32,
    /// One probe hint per constant (a noscan array): for a name constant, the table slot
    /// where the last lookup of that name found it (see `Table::get_hinted`).
    pub hints: *mut usize,
    /// Two pointer words per constant: for the name of a method call, the class the last
    /// call there found and the method it ran (see the VM's `INVOKE`).
    pub calls: *mut Value,
}

/// A native function: an index into the VM's table of Rust functions.
#[repr(C)]
pub struct ObjNative {
    pub header: u64,
    pub index: usize,
}

/// A closure: its function and `upvalue_count` upvalue pointers inline after the header.
#[repr(C)]
pub struct ObjClosure {
    pub header: u64,
    pub function: *mut ObjFunction,
    pub upvalue_count: usize,
    /// The function's code, arity and `max_stack`, copied (scalar words: the function
    /// keeps the code alive) so that a call reaches the callee's first instruction one
    /// dependent load sooner than through `function`.
    pub code: *const u8,
    pub arity: u32,
    pub max_stack: u32,
}

/// A captured variable. Open: `location` is its stack slot (a scalar: the stack is not in
/// the heap, and is a root). Closed: the value moved into `closed` and `location` points
/// there.
#[repr(C)]
pub struct ObjUpvalue {
    pub header: u64,
    pub location: *mut Value,
    pub closed: Value,
}

/// A class: name, methods, its `init` method cached (or null), and the slots it has
/// assigned to its instances' field names (see `fields.rs`).
#[repr(C)]
pub struct ObjClass {
    pub header: u64,
    pub name: *mut ObjString,
    pub methods: Table,
    pub init: *mut ObjClosure,
    /// Slot `i`'s field name, for `field_count` slots (a heap array of
    /// `field_names_capacity` pointer words, or null).
    pub field_names: *mut *mut ObjString,
    pub field_count: usize,
    pub field_names_capacity: usize,
    /// Each field name's slot, as a number: the lookup when a site's hint misses.
    pub field_slots: Table,
    /// Non-zero once a field name of this class is also one of its methods' names. A
    /// class has all its methods before its first instance exists (they are defined, and
    /// inherited, as the class declaration runs), so until then no field can shadow a
    /// method, and a method call need not look among the fields.
    pub shadowing: usize,
}

/// An instance: its class and one value word per field slot of the class.
///
/// The values start inside the object, right after this header, with room for as many
/// slots as the class had assigned when the instance was made (V8's slack tracking,
/// simplified), if they fit in [`MAX_INLINE_FIELDS`]. A slot not yet set holds
/// `Value::EMPTY`. An instance that needs a slot past its room moves its values to an
/// array of its own. The header holds, besides the kind, the inline room (bits 8-15; it
/// never changes) and how many slots `values` has (the upper half): an instance is three
/// words and its values, so an instance without fields takes 24 bytes, not 32.
#[repr(C)]
pub struct ObjInstance {
    pub header: u64,
    pub class: *mut ObjClass,
    /// The inline values or the array they moved to.
    pub values: *mut Value,
}

/// The most value slots an instance keeps inline.
pub const MAX_INLINE_FIELDS: usize = 32;

/// The inline values that follow an instance's header.
///
/// # Safety
/// `i` is a live instance (the values exist when its inline room is not zero).
#[inline(always)]
pub unsafe fn instance_inline_values(i: *mut ObjInstance) -> *mut Value {
    // SAFETY: the values are laid out right after the fixed part of the object.
    unsafe { (i as *mut u8).add(size_of::<ObjInstance>()) as *mut Value }
}

/// The header of an instance with `room` values inline, and as many slots.
pub fn instance_header(room: usize) -> u64 {
    debug_assert!(room <= MAX_INLINE_FIELDS);
    Kind::Instance as u64 | (room as u64) << 8 | (room as u64) << 32
}

/// How many values `i` has inline.
///
/// # Safety
/// `i` is a live instance.
#[inline(always)]
pub unsafe fn instance_inline_room(i: *mut ObjInstance) -> usize {
    // SAFETY: the caller's contract.
    (unsafe { (*i).header } >> 8) as u8 as usize
}

/// How many slots `i`'s `values` has (the header's upper half).
///
/// # Safety
/// `i` is a live instance.
#[inline(always)]
pub unsafe fn instance_capacity(i: *mut ObjInstance) -> usize {
    // SAFETY: the caller's contract.
    (unsafe { (*i).header } >> 32) as usize
}

/// Records that `i`'s `values` now has `capacity` slots (at most `u32::MAX`).
///
/// # Safety
/// `i` is a live instance; the header is the mutator's alone (no collector reads it).
#[inline]
pub unsafe fn set_instance_capacity(i: *mut ObjInstance, capacity: usize) {
    let capacity = u32::try_from(capacity).expect("an instance has at most 2^32 slots");
    // SAFETY: the caller's contract.
    unsafe { (*i).header = (*i).header as u32 as u64 | (capacity as u64) << 32 };
}

/// A method bound to its receiver.
#[repr(C)]
pub struct ObjBoundMethod {
    pub header: u64,
    pub receiver: Value,
    pub method: *mut ObjClosure,
}

/// The kind of the object at `p`.
///
/// # Safety
/// `p` is a live Lox object.
#[inline(always)]
pub unsafe fn kind_of(p: *const u64) -> u8 {
    // SAFETY: the caller's contract: every object starts with its header word.
    unsafe { *p as u8 }
}

/// True when `v` is an object of kind `k`.
#[inline(always)]
pub fn is_kind(v: Value, k: Kind) -> bool {
    // SAFETY: object values are addresses of live objects (the VM only holds values that
    // are rooted or reachable from roots).
    v.is_object() && unsafe { kind_of(v.as_ptr()) } == k as u8
}

impl ObjString {
    /// The string's hash.
    #[inline(always)]
    pub fn hash(&self) -> u32 {
        (self.header >> 32) as u32
    }

    /// The string's bytes.
    ///
    /// # Safety
    /// `s` is a live string object; the slice must not outlive it.
    #[inline]
    pub unsafe fn bytes<'a>(s: *const ObjString) -> &'a [u8] {
        // SAFETY: a string object is its header, its length, then `len` bytes.
        unsafe {
            std::slice::from_raw_parts((s as *const u8).add(size_of::<ObjString>()), (*s).len)
        }
    }
}

/// FNV-1a, 32 bits, as clox hashes strings.
pub fn hash_bytes(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2166136261;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(16777619);
    }
    h
}

/// The upvalue array that follows a closure's header.
///
/// # Safety
/// `c` is a live closure.
#[inline(always)]
pub unsafe fn closure_upvalues(c: *mut ObjClosure) -> *mut *mut ObjUpvalue {
    // SAFETY: the upvalues are laid out right after the fixed part of the object.
    unsafe { (c as *mut u8).add(size_of::<ObjClosure>()) as *mut *mut ObjUpvalue }
}

/// The layouts of every object shape, built once per VM (a `Layout` precomputes the
/// allocation fast path, so building one per allocation would cost more than the
/// allocation).
pub struct Layouts {
    pub function: Layout,
    pub native: Layout,
    pub upvalue: Layout,
    pub class: Layout,
    pub bound_method: Layout,
    /// A table that is an object of its own (the globals) and the intern table: a
    /// pointer to the slot array, a count and a capacity.
    pub table_object: Layout,
    /// An array of values: one pointer word per element.
    pub values: Layout,
    /// One noscan byte: element of code arrays and (times 4) line tables.
    pub byte: Layout,
    /// One noscan word: element of large strings and of the weak intern table.
    pub word: Layout,
    /// Closures by upvalue count, built on first use.
    closures: Vec<Option<Layout>>,
    /// Small strings by total words (header and length included).
    strings: Vec<Layout>,
    /// Table entry arrays by log2 of capacity.
    entries: Vec<Layout>,
    /// Instances by how many values they keep inline, 0 to `MAX_INLINE_FIELDS`.
    inline_instances: [Layout; MAX_INLINE_FIELDS + 1],
}

/// The layout of an instance with `room` inline values.
fn instance_layout(room: usize) -> Layout {
    let fixed = size_of::<ObjInstance>();
    // `values` may point at the instance's own inline values: an interior pointer, which
    // the collector resolves to the instance.
    let mut ptrs = vec![
        offset_of!(ObjInstance, class),
        offset_of!(ObjInstance, values),
    ];
    ptrs.extend((0..room).map(|w| fixed + 8 * w));
    layout_of(fixed + 8 * room, &ptrs)
}

/// Strings up to this many words total get a cached layout (and the fast path).
const CACHED_STRING_WORDS: usize = 34;
/// Entry arrays up to 2^this entries get a cached layout: 2048 entries = 32 KiB, the
/// largest small object.
const CACHED_ENTRY_LOG2: usize = 11;

fn layout_of(size: usize, pointer_offsets: &[usize]) -> Layout {
    Layout::from_offsets(size, pointer_offsets).expect("object layouts are well-formed")
}

impl Layouts {
    pub fn new() -> Layouts {
        Layouts {
            function: layout_of(
                size_of::<ObjFunction>(),
                &[
                    offset_of!(ObjFunction, name),
                    offset_of!(ObjFunction, constants),
                    offset_of!(ObjFunction, code),
                    offset_of!(ObjFunction, lines),
                    offset_of!(ObjFunction, hints),
                    offset_of!(ObjFunction, calls),
                ],
            ),
            native: Layout::noscan(size_of::<ObjNative>()),
            upvalue: layout_of(size_of::<ObjUpvalue>(), &[offset_of!(ObjUpvalue, closed)]),
            class: layout_of(
                size_of::<ObjClass>(),
                &[
                    offset_of!(ObjClass, name),
                    offset_of!(ObjClass, methods) + offset_of!(Table, entries),
                    offset_of!(ObjClass, init),
                    offset_of!(ObjClass, field_names),
                    offset_of!(ObjClass, field_slots) + offset_of!(Table, entries),
                ],
            ),
            bound_method: layout_of(
                size_of::<ObjBoundMethod>(),
                &[
                    offset_of!(ObjBoundMethod, receiver),
                    offset_of!(ObjBoundMethod, method),
                ],
            ),
            table_object: layout_of(size_of::<Table>(), &[offset_of!(Table, entries)]),
            values: Layout::pointers(1),
            byte: Layout::noscan(1),
            word: Layout::noscan(8),
            closures: vec![None; 257],
            strings: (0..=CACHED_STRING_WORDS)
                .map(|w| Layout::noscan(w * 8))
                .collect(),
            entries: (0..=CACHED_ENTRY_LOG2)
                .map(|k| Layout::pointers(2 * (1 << k)))
                .collect(),
            inline_instances: std::array::from_fn(instance_layout),
        }
    }

    /// The layout of an instance with `room` (at most [`MAX_INLINE_FIELDS`]) inline
    /// values.
    #[inline(always)]
    pub fn inline_instance(&self, room: usize) -> &Layout {
        &self.inline_instances[room]
    }

    /// The layout of a closure with `n` upvalues: the function pointer and each upvalue.
    pub fn closure(&mut self, n: usize) -> &Layout {
        self.closures[n].get_or_insert_with(|| {
            let fixed = size_of::<ObjClosure>();
            let mut ptrs = vec![offset_of!(ObjClosure, function)];
            ptrs.extend((0..n).map(|i| fixed + 8 * i));
            layout_of(fixed + 8 * n, &ptrs)
        })
    }

    /// The layout of a whole string object of `words` words, when cached.
    pub fn string(&self, words: usize) -> Option<&Layout> {
        self.strings.get(words)
    }

    /// The layout of a whole entry array of `capacity` (a power of two), when cached.
    pub fn entries(&self, capacity: usize) -> Option<&Layout> {
        debug_assert!(capacity.is_power_of_two());
        self.entries.get(capacity.trailing_zeros() as usize)
    }

    /// The element layout of entry arrays too large for a cached layout.
    pub fn entry(&self) -> Layout {
        Layout::pointers(size_of::<Entry>() / 8)
    }
}

impl Default for Layouts {
    fn default() -> Self {
        Layouts::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_mark_exactly_the_reference_fields() {
        let mut l = Layouts::new();
        let words = |l: &Layout| {
            (0..l.size() / 8)
                .filter(|&i| l.is_pointer(i))
                .collect::<Vec<_>>()
        };
        assert_eq!(words(&l.function), vec![6, 7, 8, 9, 10, 11]);
        assert_eq!(words(&l.upvalue), vec![2]);
        assert_eq!(words(&l.class), vec![1, 2, 6, 7, 10]);
        assert_eq!(words(l.inline_instance(0)), vec![1, 2]);
        assert_eq!(words(l.inline_instance(1)), vec![1, 2, 3]);
        assert_eq!(l.inline_instance(0).size(), 24);
        assert_eq!(l.inline_instance(6).size(), 24 + 6 * 8);
        assert_eq!(l.inline_instance(MAX_INLINE_FIELDS).size(), 24 + 32 * 8);
        assert_eq!(words(&l.bound_method), vec![1, 2]);
        assert_eq!(words(l.closure(0)), vec![1]);
        assert_eq!(words(l.closure(3)), vec![1, 5, 6, 7]);
        assert!(!l.native.has_pointers() && !l.string(5).unwrap().has_pointers());
        assert_eq!(words(l.entries(8).unwrap()), (0..16).collect::<Vec<_>>());
    }

    #[test]
    fn fnv1a_matches_clox() {
        assert_eq!(hash_bytes(b""), 2166136261);
        assert_eq!(hash_bytes(b"a"), 0xe40c292c);
    }
}
