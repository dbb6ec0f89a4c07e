//! The glue between Lox and minigo's heap: the one place objects are allocated and their
//! pointer fields first written.
//!
//! [`LoxHeap`] owns the `minigo_gc::Heap`, its `Mutator` and the object layouts. Each
//! constructor takes the VM's [`State`] as the roots of its allocation: any allocation may
//! collect, and the collector sees exactly what `State` reports. So the rule for callers,
//! as in clox, is that every object they still need is reachable from `State` (the stack,
//! `temps`, ...) when they call in here; the arguments of a constructor are its caller's
//! business too (a closure's function is a constant of a rooted function, an instance's
//! class is on the stack, and so on).
//!
//! Every store of a pointer or a value into a heap object, here and in the VM, goes
//! through `Mutator::write` ([`LoxHeap::write_value`], [`LoxHeap::write_ptr`]); scalar words
//! (headers, lengths, counts, string bytes, bytecode) are plain stores. A string found in
//! the weak intern table goes through `Mutator::shade` before it is used: the collector
//! marks beside the VM, and the table is the one reference it does not trace.

use std::io;
use std::mem::size_of;

use minigo_gc::{AllocError, GcConfig, Heap, Layout, MemStats, Mutator};

use super::fields;
use super::object::{
    closure_upvalues, hash_bytes, instance_capacity, instance_header, instance_inline_room,
    instance_inline_values, set_instance_capacity, Kind, Layouts, ObjBoundMethod, ObjClass,
    ObjClosure, ObjFunction, ObjInstance, ObjNative, ObjString, ObjUpvalue, MAX_INLINE_FIELDS,
};
use super::roots::State;
use super::table::{grown_capacity, Entry, Interner, Table};
use super::value::Value;

/// Every heap address must be below this for the value encoding to be precise (numbers
/// are encoded at and above it; see `value.rs`).
const ADDRESS_LIMIT: usize = 1 << 49;

/// A Lox heap: minigo's heap and mutator, and the layouts of Lox's objects.
pub struct LoxHeap {
    pub m: Mutator,
    pub layouts: Layouts,
    heap: Heap,
    /// The identity the next class gets (see `fields::class_id`).
    next_class_id: u32,
}

#[cold]
#[inline(never)]
fn out_of_memory(e: AllocError) -> ! {
    // An allocation can fail anywhere in the interpreter; clox exits when malloc fails.
    eprintln!("lox: {e}");
    std::process::exit(70)
}

#[inline(always)]
fn alloc(m: &mut Mutator, layout: &Layout, roots: &mut State) -> *mut u8 {
    match m.alloc(layout, roots) {
        Ok(p) => p.as_ptr(),
        Err(e) => out_of_memory(e),
    }
}

fn alloc_array(m: &mut Mutator, layout: &Layout, len: usize, roots: &mut State) -> *mut u8 {
    match m.alloc_array(layout, len, roots) {
        Ok(p) => p.as_ptr(),
        Err(e) => out_of_memory(e),
    }
}

/// Writes an object's header word (a scalar).
///
/// # Safety
/// `p` is a freshly allocated object.
#[inline(always)]
unsafe fn set_header(p: *mut u8, kind: Kind, extra: u32) {
    // SAFETY: the caller's contract; the header is the object's first word.
    unsafe { *(p as *mut u64) = kind as u64 | (extra as u64) << 32 };
}

impl LoxHeap {
    /// A heap configured by `config`, with the VM's global objects (the intern table, the
    /// globals table, `"init"`) created and recorded in `st`.
    pub fn new(config: GcConfig, st: &mut State) -> io::Result<LoxHeap> {
        let address_space = config.address_space;
        let heap = Heap::new(config)?;
        let m = heap
            .mutator()
            .expect("a new heap's mutator is not taken yet");
        let mut h = LoxHeap {
            m,
            layouts: Layouts::new(),
            heap,
            next_class_id: 1,
        };
        let strings = alloc(&mut h.m, &h.layouts.table_object, st);
        // The heap is one reservation; the first object is at or above its base, so this
        // bounds every address it will ever hand out.
        if strings as usize + address_space > ADDRESS_LIMIT {
            return Err(io::Error::other(format!(
                "the heap was mapped at {strings:p}, above what NaN-boxed values can address"
            )));
        }
        st.strings = strings as *mut Interner;
        let globals = alloc(&mut h.m, &h.layouts.table_object, st);
        st.globals = globals as *mut Table;
        st.init_string = h.intern(st, b"init");
        Ok(h)
    }

    /// Allocates a string object for `bytes` (not interned).
    fn new_string(&mut self, st: &mut State, bytes: &[u8], hash: u32) -> *mut ObjString {
        let words = 2 + bytes.len().div_ceil(8);
        let p = match self.layouts.string(words) {
            Some(l) => alloc(&mut self.m, l, st),
            None => alloc_array(&mut self.m, &self.layouts.word, words, st),
        };
        // SAFETY: `p` is a fresh noscan object of `words` words: header, length, bytes.
        unsafe {
            set_header(p, Kind::String, hash);
            (*(p as *mut ObjString)).len = bytes.len();
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                p.add(size_of::<ObjString>()),
                bytes.len(),
            );
        }
        p as *mut ObjString
    }

    /// The interned string with these bytes, made if there is none.
    pub fn intern(&mut self, st: &mut State, bytes: &[u8]) -> *mut ObjString {
        let hash = hash_bytes(bytes);
        // SAFETY: the interner is a root; its slots hold live strings between collections.
        if let Some(s) = unsafe { (*st.strings).find(bytes, hash) } {
            // The table is weak: while a cycle marks, a string only it holds may be about
            // to be dropped. Taking it out of the table keeps it (the collector's rule for
            // weak tables, `Mutator::shade`).
            self.m.shade(s as usize);
            return s;
        }
        // Grow first: the new string has no root until it is in the table, and this may
        // collect. A collection only turns slots into tombstones, so the room stays.
        // SAFETY: the interner is live (a root).
        let (count, capacity) = unsafe { ((*st.strings).count, (*st.strings).capacity) };
        if let Some(cap) = grown_capacity(count, capacity) {
            let slots = alloc_array(&mut self.m, &self.layouts.word, cap, st);
            // SAFETY: a fresh zeroed noscan array of `cap` words, with room for every
            // string (the load factor is under 3/4).
            unsafe { (*st.strings).rehash_into(&mut self.m, slots as *mut usize, cap) };
        }
        let s = self.new_string(st, bytes, hash);
        // SAFETY: the interner is live, `s` is new and absent, and there is room.
        unsafe { (*st.strings).insert(s) };
        s
    }

    /// Copies a finished chunk (`st.compiling`'s last) into a new function object. The
    /// caller pops the chunk afterwards: until then it keeps the constants alive.
    pub fn new_function(&mut self, st: &mut State) -> *mut ObjFunction {
        let f = alloc(&mut self.m, &self.layouts.function, st) as *mut ObjFunction;
        st.temps.push(Value::object(f));
        let (n_consts, n_code) = {
            let c = st.compiling.last().expect("a chunk is being compiled");
            (c.constants.len(), c.code.len())
        };
        let consts = alloc_array(&mut self.m, &self.layouts.values, n_consts, st) as *mut Value;
        // SAFETY: `f` is rooted by `temps`; the array by `f` once stored.
        unsafe { self.write_ptr(&raw mut (*f).constants, consts) };
        let code = alloc_array(&mut self.m, &self.layouts.byte, n_code, st);
        // SAFETY: as above.
        unsafe { self.write_ptr(&raw mut (*f).code, code) };
        let lines = alloc_array(&mut self.m, &self.layouts.byte, 4 * n_code, st) as *mut u32;
        // SAFETY: as above.
        unsafe { self.write_ptr(&raw mut (*f).lines, lines) };
        // Zeroed: every hint starts at slot 0, which the first lookup checks and corrects.
        let hints = alloc_array(&mut self.m, &self.layouts.word, n_consts, st) as *mut usize;
        // SAFETY: as above.
        unsafe { self.write_ptr(&raw mut (*f).hints, hints) };
        let calls = alloc_array(&mut self.m, &self.layouts.values, 2 * n_consts, st) as *mut Value;
        // SAFETY: as above.
        unsafe { self.write_ptr(&raw mut (*f).calls, calls) };
        let c = st.compiling.last().expect("a chunk is being compiled");
        // SAFETY: `f` and its three arrays are live and sized from this chunk; the code and
        // line arrays are noscan (plain copies), the constants pointer words.
        unsafe {
            set_header(f as *mut u8, Kind::Function, 0);
            (*f).arity = c.arity;
            (*f).upvalue_count = c.upvalue_count;
            (*f).max_stack = c.max_depth as usize;
            (*f).code_len = n_code;
            (*f).const_len = n_consts;
            self.m
                .write(&raw mut (*f).name as *mut usize, c.name as usize);
            std::ptr::copy_nonoverlapping(c.code.as_ptr(), code, n_code);
            std::ptr::copy_nonoverlapping(c.lines.as_ptr(), lines, n_code);
            for (i, v) in c.constants.iter().enumerate() {
                self.m.write(consts.add(i) as *mut usize, v.bits() as usize);
            }
        }
        st.temps.pop();
        f
    }

    /// A closure over `function` with its upvalues still null (the caller fills them).
    pub fn new_closure(&mut self, st: &mut State, function: *mut ObjFunction) -> *mut ObjClosure {
        // SAFETY: the caller keeps `function` live.
        let n = unsafe { (*function).upvalue_count };
        let LoxHeap { m, layouts, .. } = self;
        let c = alloc(m, layouts.closure(n), st) as *mut ObjClosure;
        // SAFETY: a fresh closure object with room for `n` upvalues.
        unsafe {
            set_header(c as *mut u8, Kind::Closure, 0);
            (*c).upvalue_count = n;
            (*c).code = (*function).code;
            // The compiler's limits keep both far below 2^32 (255 parameters, 256 locals).
            (*c).arity = (*function).arity as u32;
            (*c).max_stack = (*function).max_stack as u32;
            self.init_ptr(&raw mut (*c).function, function);
        }
        c
    }

    /// An open upvalue for the stack slot `slot`.
    pub fn new_upvalue(&mut self, st: &mut State, slot: *mut Value) -> *mut ObjUpvalue {
        let u = alloc(&mut self.m, &self.layouts.upvalue, st) as *mut ObjUpvalue;
        // SAFETY: a fresh upvalue; `location` is a scalar word, `closed` a value word.
        unsafe {
            set_header(u as *mut u8, Kind::Upvalue, 0);
            (*u).location = slot;
            self.init_value(&raw mut (*u).closed, Value::NIL);
        }
        u
    }

    /// A class named `name`, with no methods.
    pub fn new_class(&mut self, st: &mut State, name: *mut ObjString) -> *mut ObjClass {
        let c = alloc(&mut self.m, &self.layouts.class, st) as *mut ObjClass;
        // Saturates: the classes past 2^32 - 1 share the last identity, which no hint
        // names (see `fields::slot_hinted`).
        self.next_class_id = self.next_class_id.saturating_add(1);
        // SAFETY: a fresh class; the caller keeps `name` live.
        unsafe {
            set_header(c as *mut u8, Kind::Class, self.next_class_id - 1);
            self.init_ptr(&raw mut (*c).name, name);
        }
        c
    }

    /// An instance of `class`, with no fields set, and room inline for every slot the
    /// class has given out, if they fit (see `fields.rs`).
    #[inline(always)]
    pub fn new_instance(&mut self, st: &mut State, class: *mut ObjClass) -> *mut ObjInstance {
        // SAFETY: the caller keeps `class` live.
        let count = unsafe { (*class).field_count };
        // A class with more fields than fit inline keeps its instances' values out of line
        // from the start: one made with 32 inline would move out at its 33rd field and
        // leave 32 cleared words behind.
        let room = if count <= MAX_INLINE_FIELDS { count } else { 0 };
        let i = alloc(&mut self.m, self.layouts.inline_instance(room), st) as *mut ObjInstance;
        // SAFETY: a fresh instance with `room` zeroed (empty) values after its header, the
        // heap's last allocation.
        unsafe {
            (*i).header = instance_header(room);
            self.init_ptr(&raw mut (*i).class, class);
            if room > 0 {
                self.init_ptr(&raw mut (*i).values, instance_inline_values(i));
            }
        }
        i
    }

    /// Sets field `name` of `instance`, which has no room for it yet: gives the name a
    /// slot in the class if it has none, and moves the instance's values to an array with
    /// room for every slot the class has given out. The inline values it leaves are
    /// cleared, so they keep nothing alive.
    ///
    /// # Safety
    /// The instance is live and rooted; `name` and `value` are rooted.
    #[inline(never)]
    pub unsafe fn instance_set_new(
        &mut self,
        st: &mut State,
        instance: *mut ObjInstance,
        name: *mut ObjString,
        value: Value,
    ) {
        // SAFETY: the caller's contract: the class is reachable from the instance.
        let class = unsafe { (*instance).class };
        // SAFETY: as above.
        let slot = match unsafe { fields::slot(class, name) } {
            Some(s) => s,
            // SAFETY: as above.
            None => unsafe { self.class_add_field(st, class, name) },
        };
        // SAFETY: the instance is live.
        let capacity = unsafe { instance_capacity(instance) };
        if slot >= capacity {
            // SAFETY: as above.
            let wanted = unsafe { (*class).field_count };
            let cap = wanted.max(2 * capacity).max(2);
            let values = alloc_array(&mut self.m, &self.layouts.values, cap, st) as *mut Value;
            // SAFETY: the instance is live (rooted across the allocation); `values` is a
            // fresh zeroed array of `cap` > `capacity` words.
            unsafe {
                let old = (*instance).values;
                // Without inline room, the inline address is where the next object starts.
                let was_inline =
                    instance_inline_room(instance) > 0 && old == instance_inline_values(instance);
                for k in 0..capacity {
                    let v = *old.add(k);
                    self.write_value(values.add(k), v);
                    if was_inline {
                        self.write_value(old.add(k), Value::EMPTY);
                    }
                }
                self.write_ptr(&raw mut (*instance).values, values);
                set_instance_capacity(instance, cap);
            }
        }
        // SAFETY: the slot is inside the instance's value array now; the caller keeps
        // `value` live.
        unsafe { self.write_value((*instance).values.add(slot), value) };
    }

    /// Gives field name `name` the next slot of `class` and returns it.
    ///
    /// # Safety
    /// `class` is rooted and has no slot for `name`; `name` is rooted.
    unsafe fn class_add_field(
        &mut self,
        st: &mut State,
        class: *mut ObjClass,
        name: *mut ObjString,
    ) -> usize {
        // SAFETY: the caller's contract.
        let (count, capacity) = unsafe { ((*class).field_count, (*class).field_names_capacity) };
        if count == capacity {
            let cap = (2 * capacity).max(8);
            let names =
                alloc_array(&mut self.m, &self.layouts.values, cap, st) as *mut *mut ObjString;
            // SAFETY: the class is rooted, so live across the allocation; `names` is a
            // fresh array of `cap` > `count` words.
            unsafe {
                for k in 0..count {
                    self.write_ptr(names.add(k), *(*class).field_names.add(k));
                }
                self.write_ptr(&raw mut (*class).field_names, names);
                (*class).field_names_capacity = cap;
            }
        }
        // SAFETY: the class is rooted; the table is embedded in it; the slot number is
        // not an object.
        unsafe {
            self.table_set(
                st,
                &raw mut (*class).field_slots,
                name,
                Value::number(count as f64),
            );
            self.write_ptr((*class).field_names.add(count), name);
            (*class).field_count = count + 1;
            if (*class).methods.get(name).is_some() {
                (*class).shadowing = 1;
            }
        }
        count
    }

    /// `method` bound to `receiver`.
    pub fn new_bound_method(
        &mut self,
        st: &mut State,
        receiver: Value,
        method: *mut ObjClosure,
    ) -> *mut ObjBoundMethod {
        let b = alloc(&mut self.m, &self.layouts.bound_method, st) as *mut ObjBoundMethod;
        // SAFETY: a fresh bound method; the caller keeps both parts live.
        unsafe {
            set_header(b as *mut u8, Kind::BoundMethod, 0);
            self.init_value(&raw mut (*b).receiver, receiver);
            self.init_ptr(&raw mut (*b).method, method);
        }
        b
    }

    /// The native function number `index`.
    pub fn new_native(&mut self, st: &mut State, index: usize) -> *mut ObjNative {
        let n = alloc(&mut self.m, &self.layouts.native, st) as *mut ObjNative;
        // SAFETY: a fresh noscan native object.
        unsafe {
            set_header(n as *mut u8, Kind::Native, 0);
            (*n).index = index;
        }
        n
    }

    /// Stores `value` under `key` in `table`, growing it first if needed; true when the
    /// key is new.
    ///
    /// # Safety
    /// `table` is embedded in a live heap object (so it stays put and live across a
    /// collection); `key` and `value` are rooted by the caller.
    pub unsafe fn table_set(
        &mut self,
        st: &mut State,
        table: *mut Table,
        key: *mut ObjString,
        value: Value,
    ) -> bool {
        // SAFETY: the caller's contract.
        let (count, capacity) = unsafe { ((*table).count, (*table).capacity) };
        if let Some(cap) = grown_capacity(count, capacity) {
            let entries = self.alloc_entries(st, cap);
            // SAFETY: a fresh zeroed array of `cap` entries, room for every key.
            unsafe { (*table).rehash_into(&mut self.m, entries, cap) };
        }
        // SAFETY: the table has room now; the caller keeps key and value live.
        unsafe { (*table).set(&mut self.m, key, value) }
    }

    /// Copies every entry of `from` into `to` (clox's `tableAddAll`).
    ///
    /// # Safety
    /// Both tables are embedded in live, rooted heap objects.
    pub unsafe fn table_add_all(&mut self, st: &mut State, from: *mut Table, to: *mut Table) {
        // SAFETY: `from` is live; collecting its entries first means growing `to` cannot
        // disturb the iteration. The keys and values stay reachable from `from`.
        let entries: Vec<_> = unsafe { (*from).iter().collect() };
        for (k, v) in entries {
            // SAFETY: the caller's contract; `k` and `v` are reachable from `from`.
            unsafe { self.table_set(st, to, k, v) };
        }
    }

    fn alloc_entries(&mut self, st: &mut State, capacity: usize) -> *mut Entry {
        let p = match self.layouts.entries(capacity) {
            Some(l) => alloc(&mut self.m, l, st),
            None => {
                let entry = self.layouts.entry();
                alloc_array(&mut self.m, &entry, capacity, st)
            }
        };
        p as *mut Entry
    }

    /// Stores a value into a value word of a heap object, through the write API.
    ///
    /// # Safety
    /// `slot` is a value word (a pointer word in its layout) of a live heap object, and
    /// `v` is live if it is an object.
    #[inline(always)]
    pub unsafe fn write_value(&mut self, slot: *mut Value, v: Value) {
        // SAFETY: the caller's contract is `Mutator::write`'s; a non-object value is an
        // address outside every heap (see `value.rs`).
        unsafe { self.m.write(slot as *mut usize, v.bits() as usize) }
    }

    /// Stores an object pointer into a pointer word of a heap object, through the write API.
    ///
    /// # Safety
    /// `slot` is a pointer word of a live heap object; `p` is null or a live object.
    #[inline(always)]
    pub unsafe fn write_ptr<T>(&mut self, slot: *mut *mut T, p: *mut T) {
        // SAFETY: the caller's contract is `Mutator::write`'s.
        unsafe { self.m.write(slot as *mut usize, p as usize) }
    }

    /// [`LoxHeap::write_ptr`] into the object just allocated, before the next allocation:
    /// a plain store (`Mutator::init`), for constructors.
    ///
    /// # Safety
    /// As for [`LoxHeap::write_ptr`], and the object is the heap's last allocation.
    #[inline(always)]
    unsafe fn init_ptr<T>(&mut self, slot: *mut *mut T, p: *mut T) {
        // SAFETY: the caller's contract is `Mutator::init`'s.
        unsafe { self.m.init(slot as *mut usize, p as usize) }
    }

    /// [`LoxHeap::write_value`] into the object just allocated (see [`LoxHeap::init_ptr`]).
    ///
    /// # Safety
    /// As for [`LoxHeap::init_ptr`].
    #[inline(always)]
    unsafe fn init_value(&mut self, slot: *mut Value, v: Value) {
        // SAFETY: the caller's contract is `Mutator::init`'s.
        unsafe { self.m.init(slot as *mut usize, v.bits() as usize) }
    }

    /// Collects now and returns the statistics afterwards.
    pub fn collect(&mut self, st: &mut State) -> MemStats {
        self.m.collect(st);
        self.m.mem_stats()
    }

    /// Heap statistics.
    pub fn stats(&mut self) -> MemStats {
        self.m.mem_stats()
    }

    /// The minigo heap underneath.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }
}

/// Upvalue slot `i` of closure `c`.
///
/// # Safety
/// `c` is a live closure with more than `i` upvalues.
#[inline(always)]
pub unsafe fn upvalue_slot(c: *mut ObjClosure, i: usize) -> *mut *mut ObjUpvalue {
    // SAFETY: the caller's contract.
    unsafe { closure_upvalues(c).add(i) }
}
