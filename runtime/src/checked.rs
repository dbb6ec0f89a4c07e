//! The checked mode: a handle (`Gc`, `GcSlice`, `GcStr`) is validated before it is read.
//!
//! What the type system cannot see: a `Gc` kept where the collector does not look (a
//! `Vec`, a `Box`, another OS thread) across a collection, or taken out of `Runtime::run`.
//! Reading through it reads freed or unmapped memory. In debug builds, and in release
//! builds with the `checked` feature (`cargo test --release --features checked`), every
//! read through a handle first checks that
//!
//! 1. the thread runs a goroutine of a runtime (a handle read elsewhere is one that left
//!    its runtime's view: another thread, or after `run` returned), and
//! 2. the handle's address is inside an allocated object of that runtime's heap (a freed
//!    slot fails; so does another runtime's object; not "starts at": small pointer-free
//!    objects share 16-byte tiny blocks),
//!
//! and panics with the address and what it found otherwise. A slot freed and then
//! allocated again passes: the check sees an object there, of whatever type. Other
//! release builds compile the check out: it takes the heap lock, and even a flag test on
//! every read costed binary-trees 3% of its instructions.

use minigo_alloc_core::zerobase;

use crate::sched::try_current;

/// Checks a read through the handle at `addr` in checked builds (see the module comment).
#[inline(always)]
pub(crate) fn check_read(addr: usize, what: &'static str) {
    if cfg!(any(debug_assertions, feature = "checked")) {
        check_slow(addr, what);
    }
}

#[cold]
#[inline(never)]
fn check_slow(addr: usize, what: &'static str) {
    if addr == zerobase().as_ptr() as usize {
        return;
    }
    let Some(cur) = try_current() else {
        panic!(
            "minigo checked mode: {what} {addr:#x} read outside a goroutine of a running \
             runtime (a handle kept past `run`, or sent to another thread)"
        );
    };
    if cur.sched().collector.heap().find_object(addr).is_none() {
        panic!(
            "minigo checked mode: {what} {addr:#x} is not an object of this runtime's heap: \
             freed by a collection (the handle was kept where the collector does not look: a \
             Vec, a Box, another thread) or another runtime's (last cycle: {})",
            cur.sched().collector.cycles_finished()
        );
    }
}
