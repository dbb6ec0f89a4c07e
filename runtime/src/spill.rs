//! The one way a goroutine's registers reach its stack before it stops.
//!
//! When a goroutine parks (or enters a `blocking` region), the collector may scan its
//! stack while it is not running. Its stack is scanned conservatively from the saved stack
//! pointer up to the stack's top, but a pointer may live only in a callee-saved register of
//! some caller. So every park goes through [`with_spilled_registers`], which is never
//! inlined: it copies the callee-saved registers into an array in its own frame, reads the
//! stack pointer below that array, and only then calls on (to the coroutine switch). The
//! scanned range `[sp, top)` therefore holds every register value a caller could still need.

use std::hint::black_box;

/// Callee-saved registers of the platform ABI (x86-64 SysV: rbx, rbp, r12-r15; AArch64:
/// x19-x29).
const SAVED: usize = 12;

/// Spills the callee-saved registers into this frame, then runs `f` with the stack pointer
/// below them: everything from there up to the stack's top is what a scan must cover.
#[inline(never)]
pub(crate) fn with_spilled_registers<R>(f: impl FnOnce(usize) -> R) -> R {
    let mut regs = [0usize; SAVED];
    spill(&mut regs);
    let sp = stack_pointer();
    let r = f(sp);
    // Keep the array (and so the spill) alive until after `f` returned.
    black_box(&mut regs);
    r
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn spill(regs: &mut [usize; SAVED]) {
    // SAFETY: stores six registers into the caller's array; touches nothing else.
    unsafe {
        std::arch::asm!(
            "mov [{r}], rbx",
            "mov [{r} + 8], rbp",
            "mov [{r} + 16], r12",
            "mov [{r} + 24], r13",
            "mov [{r} + 32], r14",
            "mov [{r} + 40], r15",
            r = in(reg) regs.as_mut_ptr(),
            options(nostack, preserves_flags)
        )
    };
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads rsp.
    unsafe {
        std::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn spill(regs: &mut [usize; SAVED]) {
    // SAFETY: stores eleven registers into the caller's array; touches nothing else.
    unsafe {
        std::arch::asm!(
            "stp x19, x20, [{r}]",
            "stp x21, x22, [{r}, #16]",
            "stp x23, x24, [{r}, #32]",
            "stp x25, x26, [{r}, #48]",
            "stp x27, x28, [{r}, #64]",
            "str x29, [{r}, #80]",
            r = in(reg) regs.as_mut_ptr(),
            options(nostack, preserves_flags)
        )
    };
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: reads sp.
    unsafe { std::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Clears the registers a coroutine switch leaves as they were (corosensei saves rbx and
/// rbp, and declares r12-r15 clobbered, x20-x28 on AArch64: after a switch they hold the
/// other side's values).
/// Called on both sides of every switch, so that no goroutine spills another's (or its
/// M's) dead values onto its stack at its next park, where the conservative scan would
/// take them for roots and keep dead objects alive; the compiler keeps its own live values
/// elsewhere around it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn clear_switch_registers() {
    // SAFETY: only zeroes four registers the compiler is told are clobbered.
    unsafe {
        std::arch::asm!(
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "xor r15d, r15d",
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            options(nomem, nostack, preserves_flags)
        )
    };
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
pub(crate) fn clear_switch_registers() {
    // SAFETY: only zeroes nine registers the compiler is told are clobbered.
    unsafe {
        std::arch::asm!(
            "mov x20, xzr",
            "mov x21, xzr",
            "mov x22, xzr",
            "mov x23, xzr",
            "mov x24, xzr",
            "mov x25, xzr",
            "mov x26, xzr",
            "mov x27, xzr",
            "mov x28, xzr",
            out("x20") _,
            out("x21") _,
            out("x22") _,
            out("x23") _,
            out("x24") _,
            out("x25") _,
            out("x26") _,
            out("x27") _,
            out("x28") _,
            options(nomem, nostack, preserves_flags)
        )
    };
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!(
    "minigo-runtime spills callee-saved registers with inline assembly for x86_64 and aarch64 only"
);
