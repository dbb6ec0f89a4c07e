//! Instance fields: each class gives its field names slots, and its instances keep one
//! value word per slot.
//!
//! clox gives every instance a hash table of its own, keyed by field name. Lox never
//! deletes a field and has no computed property names, so a class can number the names
//! its instances use once and for all (V8's hidden classes, kept to one per class):
//!
//! 1. The first store of a name into any instance of a class gives the name the class's
//!    next slot (`ObjClass::field_names`, `field_slots`). Slots are never renumbered, so
//!    the order in which an instance's fields are set does not matter.
//! 2. An instance is made with room inline for every slot its class has given out, if
//!    they fit in `MAX_INLINE_FIELDS` (else with none: `LoxHeap::new_instance`); one that
//!    needs a slot past its room moves its values to an array of its own
//!    (`LoxHeap::instance_set_new`).
//! 3. A slot the instance has not set holds `Value::EMPTY`, so a read finds "not a field"
//!    there and goes on to the methods, or to clox's "Undefined property" error.
//! 4. A field access site keeps the class it last saw and the slot it found there in its
//!    name constant's hint (`ObjFunction::hints`): for an instance of that class, the
//!    value is one load away; otherwise [`slot`] looks the name up and corrects the hint.
//!    A class is named in a hint by an identity no other class has (a counter in its
//!    header), not by its address, which a later class may reuse.
//!
//! A field read is then the class's header and the instance's value, both in cache
//! lines that every instance of the class shares or already touched; an instance of six
//! fields takes 80 bytes where a table of them took 176. The cost: an instance has room
//! for every name its class has seen, set or not. That is bounded by the field names in
//! the program's source, and instances of one class usually share their fields.

use super::object::{instance_capacity, ObjClass, ObjInstance, ObjString};
use super::value::Value;

/// The slot of field `name` in `class`, if the class has given it one.
///
/// # Safety
/// `class` and `name` are live.
#[inline]
pub unsafe fn slot(class: *mut ObjClass, name: *mut ObjString) -> Option<usize> {
    // SAFETY: the caller's contract; the table holds slot numbers.
    unsafe { (*class).field_slots.get(name) }.map(|v| v.as_number() as usize)
}

/// The identity of `class`: 1 for the first class a VM makes, then counting, up to
/// `u32::MAX`, which every class past that shares.
///
/// # Safety
/// `class` is live.
#[inline(always)]
unsafe fn class_id(class: *mut ObjClass) -> u64 {
    // SAFETY: the caller's contract; the identity is the header's upper half.
    unsafe { (*class).header >> 32 }
}

/// [`slot`], trying the hint first and leaving there what it found: an inline cache per
/// name constant, `class identity << 32 | slot`. It needs no invalidation: a class never
/// renumbers a name, and the hint names its class by an identity no other class shares.
/// A fresh hint (0) names no class, nor does one that a global or method lookup left in
/// the same word (a table slot, below 2^32); the shared last identity is never stored.
///
/// # Safety
/// `class` and `name` are live.
#[inline(always)]
pub unsafe fn slot_hinted(
    class: *mut ObjClass,
    name: *mut ObjString,
    hint: &mut usize,
) -> Option<usize> {
    let h = *hint as u64;
    // SAFETY: the caller's contract.
    if h >> 32 == unsafe { class_id(class) } {
        return Some(h as u32 as usize);
    }
    // SAFETY: the caller's contract.
    unsafe { slot_and_remember(class, name, hint) }
}

/// `slot_hinted` when the hint missed: out of line, to keep the hit path small.
///
/// # Safety
/// As `slot_hinted`.
#[inline(never)]
unsafe fn slot_and_remember(
    class: *mut ObjClass,
    name: *mut ObjString,
    hint: &mut usize,
) -> Option<usize> {
    // SAFETY: the caller's contract.
    let (s, id) = unsafe { (slot(class, name)?, class_id(class)) };
    if id != u32::MAX as u64 && s <= u32::MAX as usize {
        *hint = (id << 32 | s as u64) as usize;
    }
    Some(s)
}

/// The value word of slot `s` of `instance`, if the instance has room for it (set or
/// `Value::EMPTY`).
///
/// # Safety
/// `instance` is live.
#[inline(always)]
pub unsafe fn value_slot(instance: *mut ObjInstance, s: usize) -> Option<*mut Value> {
    // SAFETY: the caller's contract; `values` has `instance_capacity` words.
    unsafe { (s < instance_capacity(instance)).then(|| (*instance).values.add(s)) }
}

/// The value of field `name` of `instance`, if it is set.
///
/// # Safety
/// `instance` and `name` are live.
#[inline]
pub unsafe fn get(instance: *mut ObjInstance, name: *mut ObjString) -> Option<Value> {
    // SAFETY: the caller's contract.
    let s = unsafe { slot((*instance).class, name) }?;
    // SAFETY: as above; the word is inside the live value array.
    let v = unsafe { *value_slot(instance, s)? };
    (v != Value::EMPTY).then_some(v)
}
