//! The M's fast-path word (Go's `getg().m`, reached here without a register): the running
//! goroutine's P's mutator state, and the flag that keeps the preemption handler out while
//! code inlined into the goroutine's own functions holds that state.
//!
//! 1. Go keeps `g` in a register, so its compiled `mallocgc` and write barrier reach the
//!    P's mcache with two loads. Rust cannot reserve a register; the runtime keeps the
//!    state's address in a thread-local instead ([`MFast`]).
//! 2. A thread-local cannot simply be read in code inlined into a goroutine's functions:
//!    LLVM treats the thread pointer as constant within a function, so it may reuse an
//!    address computed before a park (`sched::try_current`) after it, on another thread.
//!    The runtime's accessors are therefore `#[inline(never)]`, and its fast paths were
//!    calls.
//! 3. On x86-64 Linux, a thread-local of the executable itself lies at the same offset
//!    from the thread pointer (`%fs`) in every thread: the linker writes that offset into
//!    the code that uses it. [`init`] works out the offset of [`MFast`] once and checks
//!    that it lies in the executable's own TLS block (not in a block `dlopen` allocated
//!    per thread, which has no fixed offset). Then each access is one `%fs`-relative
//!    instruction in an `asm!` block, which LLVM may neither merge with another nor move
//!    across a call: it reaches the word of whichever thread executes it.
//! 4. Code inlined into a goroutine's function is outside the `minigo_nopreempt` section,
//!    so the preemption handler could stop the goroutine there and give its P (and the
//!    P's mcache) to another M. [`enter`] therefore sets [`MFast::busy`] before it reads
//!    the state: one store, which a signal on this thread lands wholly before or wholly
//!    after. The handler declines while it is set (`preempt.rs`), as it does inside the
//!    section or under the lock count, and sysmon asks again on its next round. Nothing
//!    between [`enter`] and [`leave`] parks, so both run on one thread.
//!
//! Elsewhere (other targets, loom builds, a runtime `dlopen`ed into its process) the
//! offset is unknown and the fast paths stay the out-of-line calls in the section.

use std::cell::Cell;

use minigo_gc::MutatorState;

/// The per-M words [`enter`] reaches: `state` at offset 0, `busy` at 8.
#[repr(C)]
pub(crate) struct MFast {
    /// The mutator state the fast paths use: the P's, while goroutine code runs on this M
    /// holding a P; null otherwise, and always in gc-stress mode (`sched::set_m_alloc`).
    state: Cell<*mut MutatorState>,
    /// Non-zero while an inlined fast path holds `state` (between [`enter`] and
    /// [`leave`]): the preemption handler declines.
    busy: Cell<usize>,
}

thread_local! {
    static M_FAST: MFast = const {
        MFast {
            state: Cell::new(std::ptr::null_mut()),
            busy: Cell::new(0),
        }
    };
}

/// Points this M's fast paths at `st` (or at none, null).
#[inline(never)]
pub(crate) fn set_state(st: *mut MutatorState) {
    M_FAST.with(|m| m.state.set(st));
}

/// This M's state for the fast paths, or null. Inlined, so only for a function that is
/// never inlined itself and does not park between this and the state's last use (one in
/// the `minigo_nopreempt` section): see the module comment.
#[inline(always)]
pub(crate) fn state() -> *mut MutatorState {
    M_FAST.with(|m| m.state.get())
}

/// Whether an inlined fast path on this thread holds its P's state: the preemption
/// handler must not stop it. Async-signal-safe.
#[inline(never)]
pub(crate) fn busy() -> bool {
    M_FAST.with(|m| m.busy.get() != 0)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom)))]
pub(crate) use fs::{check_thread, enter, init, leave, offset};

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom)))]
mod fs {
    use std::arch::asm;
    use std::sync::atomic::{AtomicIsize, Ordering};
    use std::sync::Once;

    use minigo_gc::MutatorState;

    use super::{MFast, M_FAST};

    /// [`MFast`]'s offset from the thread pointer, proven the same in every thread
    /// ([`init`]); 0 until then, or if it cannot be (the block lies below the thread
    /// pointer, so 0 is never an offset).
    static OFFSET: AtomicIsize = AtomicIsize::new(0);
    static INIT: Once = Once::new();

    /// [`MFast`]'s offset, once [`init`] has proven it fixed; only [`offset`] makes one.
    #[derive(Clone, Copy)]
    pub(crate) struct Offset(isize);

    /// The offset, if the inlined fast paths can use it.
    #[inline(always)]
    pub(crate) fn offset() -> Option<Offset> {
        match OFFSET.load(Ordering::Relaxed) {
            0 => None,
            off => Some(Offset(off)),
        }
    }

    /// This thread's pointer (`%fs:0` holds its own address, by the x86-64 TLS ABI).
    fn thread_pointer() -> usize {
        let tp: usize;
        // SAFETY: reads the thread control block's self pointer, which every thread has.
        unsafe {
            asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
        };
        tp
    }

    /// This thread's offset of [`MFast`] from its thread pointer.
    fn this_thread_offset() -> isize {
        let addr = M_FAST.with(|m| m as *const MFast as usize);
        addr.wrapping_sub(thread_pointer()) as isize
    }

    /// Works out [`MFast`]'s offset, and keeps it if it lies in the executable's own TLS
    /// block (x86-64 puts that block just below the thread pointer, at an offset the
    /// linker fixed). `GODEBUG=inlinefast=0` keeps the fast paths out of line.
    pub(crate) fn init() {
        INIT.call_once(|| {
            if crate::stack::godebug("inlinefast=0") {
                return;
            }
            let off = this_thread_offset();
            let block = executable_tls_block();
            let size = std::mem::size_of::<MFast>() as isize;
            if off < 0 && off + size <= 0 && -off <= block {
                OFFSET.store(off, Ordering::Relaxed);
            }
        });
    }

    /// How far below the thread pointer the executable's TLS block can begin: its size
    /// rounded up to its alignment, and one alignment more for its first byte's padding;
    /// 0 if the executable has none.
    fn executable_tls_block() -> isize {
        let (_, headers) = crate::exe::program_headers();
        headers
            .iter()
            .find(|ph| ph.p_type == libc::PT_TLS)
            .map_or(0, |ph| {
                let align = ph.p_align.max(1) as isize;
                (ph.p_memsz as isize + align - 1) / align * align + align
            })
    }

    /// Marks this thread's inlined fast path busy, then reads its state (null outside a
    /// goroutine holding a P).
    ///
    /// # Safety
    /// Pairs with a [`leave`] on the same thread: nothing in between parks.
    #[inline(always)]
    pub(crate) unsafe fn enter(off: Offset) -> *mut MutatorState {
        let st: *mut MutatorState;
        // SAFETY: `off` is MFast's offset in every thread (`init`): the two words are this
        // thread's `busy` and `state`. Not `pure`: executed wherever it is written, on the
        // thread that runs it; and it clobbers memory, so nothing that uses the state
        // moves above it.
        #[cfg(not(runtime_mutant = "fast_not_busy"))]
        unsafe {
            asm!(
                "mov qword ptr fs:[{off} + 8], 1",
                "mov {st}, qword ptr fs:[{off}]",
                off = in(reg) off.0,
                st = lateout(reg) st,
                options(nostack, preserves_flags),
            )
        };
        // The seeded bug `runtime/tests/preempt.rs` must catch (`.ci/run`): the state read
        // with the handler free to give the P away.
        // SAFETY: as above, but for the busy word, which this leaves unset.
        #[cfg(runtime_mutant = "fast_not_busy")]
        unsafe {
            asm!(
                "mov {st}, qword ptr fs:[{off}]",
                off = in(reg) off.0,
                st = lateout(reg) st,
                options(nostack, preserves_flags),
            )
        };
        st
    }

    /// Ends [`enter`]'s region: the handler may preempt this thread again.
    ///
    /// # Safety
    /// Follows an [`enter`] on this thread; the state it read is not used again.
    #[inline(always)]
    pub(crate) unsafe fn leave(off: Offset) {
        // SAFETY: as in `enter`; it clobbers memory, so nothing that uses the state moves
        // below it.
        unsafe {
            asm!(
                "mov qword ptr fs:[{off} + 8], 0",
                off = in(reg) off.0,
                options(nostack, preserves_flags),
            )
        };
    }

    /// Checks, on a thread about to run goroutines, that [`MFast`] lies at the offset
    /// [`init`] found (it must, being in the executable's block).
    pub(crate) fn check_thread() {
        if let Some(Offset(off)) = offset() {
            assert_eq!(
                this_thread_offset(),
                off,
                "the M's thread-local moved: the inlined fast paths would read another word"
            );
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// The words `enter` and `leave` reach through `%fs` are the ones the scheduler
        /// sets (`set_state`) and the preemption handler reads (`busy`), on this thread and
        /// on another; and the test executable's offset is usable, so the inlined fast
        /// paths are the ones its other tests run.
        #[test]
        fn enter_reaches_the_words_the_scheduler_and_the_handler_use() {
            init();
            let off = offset().expect("an executable's thread-local has a fixed offset");
            let check = move |tag: usize| {
                check_thread();
                let st = tag as *mut MutatorState;
                super::super::set_state(st);
                assert!(!super::super::busy());
                // SAFETY: paired with `leave` below, nothing parks in between.
                let seen = unsafe { enter(off) };
                assert_eq!(seen, st);
                assert!(super::super::busy(), "the handler would preempt here");
                // SAFETY: after `enter` on this thread.
                unsafe { leave(off) };
                assert!(!super::super::busy());
                super::super::set_state(std::ptr::null_mut());
            };
            check(0x1000);
            std::thread::spawn(move || check(0x2000)).join().unwrap();
        }
    }
}

/// Elsewhere the offset is never known: the fast paths stay out of line.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(loom))))]
pub(crate) fn init() {}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(loom))))]
pub(crate) fn check_thread() {}
