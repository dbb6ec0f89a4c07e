//! Asynchronous preemption (Go's `preempt.go` and `doSigPreempt`): stopping a goroutine that
//! reaches no safepoint, from outside, with a signal.
//!
//! 1. The monitor thread (`sysmon.rs`) decides that the goroutine running on some P must
//!    stop: it has run for 10 ms while other goroutines wait, or the world is stopping. It
//!    sends SIGURG (Go's choice: a signal programs rarely use) to that P's M with `tgkill`.
//! 2. The handler, on the M's thread, decides whether the interrupted instruction is an
//!    *asynchronous safe point*. It is one when all of these hold:
//!    - the thread is running a goroutine of a runtime (not a scheduler loop, a mark worker
//!      or a thread of the user's);
//!    - the stack pointer is on that goroutine's stack, with at least [`ROOM`] bytes above
//!      its guard page (room for the registers and the runtime's frames);
//!    - the instruction is in the executable's own code, and not in this file's trampoline:
//!      not in the C library, the vDSO or another shared object, whose locks (malloc's) and
//!      state the runtime cannot see;
//!    - the thread's lock count is zero (`minigo_alloc_core::sync::m_locks`, Go's
//!      `m.locks`): it holds no lock of the runtime, collector or allocator, and is not in
//!      the runtime's own code — every runtime entry point that touches a P's state (the
//!      allocator's fast path, the write barrier, the scheduler's queues, channels, timers,
//!      `blocking`, ...) holds the count up for its whole length ([`NoPreempt`]), or runs
//!      in the `minigo_nopreempt` section;
//!    - no fast path inlined into the goroutine's code holds its P's state: the M's busy
//!      word is zero (`tls.rs`, Go's `acquirem` in `mallocgc`).
//!
//!    Anywhere else it does nothing and sysmon tries again on its next round; the
//!    goroutine's next cooperative safepoint may come first.
//! 3. At a safe point the handler makes the goroutine *call* [`minigo_async_preempt`] as
//!    if the interrupted instruction had: it pushes the interrupted address on the
//!    goroutine's stack below the red zone the code may be using (128 bytes on x86-64) and
//!    points the saved context there. The handler returns; the kernel resumes the thread in
//!    the trampoline, which saves every register — general-purpose, flags, and the vector
//!    and floating-point state with `xsave` (or `fxsave`) — on the goroutine's stack. The
//!    stack scan is conservative from the saved stack pointer up, so a pointer held only in
//!    a register (a caller-saved one, an XMM register) is seen while the goroutine is off
//!    its thread.
//! 4. The trampoline calls [`async_preempt2`] (Go's name), which does what the monitor
//!    wanted: if the world is stopping, the goroutine stops *in place* — its M stops its P
//!    and waits until the world restarts, as at any safepoint, then makes sure its stack
//!    was scanned for a cycle that began meanwhile (as `blocking` does on return); if the
//!    run has ended, it stops for good; otherwise it yields its P for a time slice
//!    (`Sched::preempt_yield`): its M hands the P to another M, which runs the goroutines
//!    waiting, and waits, as in `blocking`, until an M hands it a P back (the longest
//!    waiting first: when that M runs out of work, or once it has waited a slice). Then the
//!    trampoline restores every register and returns to the interrupted instruction.
//!
//! Either way nothing else runs on the goroutine's thread while it is stopped, and it
//! continues on that thread. The interrupted code may be anywhere in the program's own
//! code: holding references into thread-locals, inside a re-entrant lock (stdout's, in
//! `println!`), between queueing and sleeping in a parking_lot lock (whose per-thread data
//! the runtime's own locks use too), inside a statically linked allocator's thread cache.
//! Running another goroutine on the thread there would break all of these; moving the
//! goroutine to another thread would break the first. What remains, as with any OS thread
//! that is descheduled: a goroutine preempted while holding a lock delays whoever waits
//! for it by up to a time slice, unless the waiter is a goroutine on the M that holds the
//! P the preempted one waits for: that M blocks in the lock, never returns to its
//! scheduler, and sysmon's signal finds it in the C library, so the two wait for each
//! other for good. (Found with the test harness's panic-hook lock on one P. Go's locks
//! park goroutines, and its sysmon retakes a P from an M stuck in a system call; a
//! goroutine here should take an OS lock other goroutines share inside `blocking`.) A
//! system call interrupted by the signal fails with `EINTR` where the kernel does not
//! restart it, as in Go.
//!
//! The handler declines, too, when it runs on the goroutine's stack rather than the
//! thread's alternate signal stack (the kernel's signal frame would then lie where the
//! return address goes), and on stacks smaller than [`ROOM`] plus what the goroutine uses
//! (stacks are at least 64 KiB).
//!
//! Only x86-64 Linux has asynchronous preemption; elsewhere goroutines are preempted only
//! at their safepoints, as before.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Once;

use crate::g::Park;
use crate::sched::{current, current_p, park};

/// Stack bytes a safe point needs above the guard page: the red zone, the saved
/// registers (up to [`XSAVE_AREA`] bytes of vector state), and the runtime's frames down to
/// the coroutine switch.
pub(crate) const ROOM: usize = 32 << 10;

/// Bytes reserved for `xsave`; larger states (AMX tiles) are not saved: the trampoline asks
/// only for x87, SSE, AVX, MPX and AVX-512 state.
#[cfg(target_arch = "x86_64")]
const XSAVE_AREA: usize = 4096;

/// Set when this CPU and kernel support `xsave` for the state the trampoline saves.
static MINIGO_PREEMPT_USE_XSAVE: AtomicBool = AtomicBool::new(false);

/// The executable's code, `[lo, hi)`: where a safe point can be.
static TEXT_LO: AtomicUsize = AtomicUsize::new(0);
static TEXT_HI: AtomicUsize = AtomicUsize::new(0);

static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;
/// Whether asynchronous preemption works here (x86-64 Linux, handler installed).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Holds this thread's lock count up (see the module comment) for a region of the
/// runtime's own code that may park the goroutine (and so end on another thread): the
/// count is looked up again at the end.
pub(crate) struct NoPreempt(());

impl NoPreempt {
    #[inline]
    pub(crate) fn new() -> NoPreempt {
        minigo_alloc_core::sync::acquirem();
        NoPreempt(())
    }
}

impl Drop for NoPreempt {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the region `new` counted on this thread's goroutine is over (the count
        // travels with the goroutine across a park: `sched::park`).
        unsafe { minigo_alloc_core::sync::releasem() };
    }
}

/// [`NoPreempt`] for a region that never parks the goroutine (it ends on the thread it
/// began on): one thread-local lookup instead of two. `!Send`, like the thread it counts
/// on.
pub(crate) struct NoPreemptHere(*const std::cell::Cell<u32>);

impl NoPreemptHere {
    #[inline]
    pub(crate) fn new() -> NoPreemptHere {
        let c = minigo_alloc_core::sync::m_locks_cell();
        // SAFETY: this thread's count, alive as long as the thread.
        let cell = unsafe { &*c };
        cell.set(cell.get() + 1);
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        NoPreemptHere(c)
    }
}

impl Drop for NoPreemptHere {
    #[inline]
    fn drop(&mut self) {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
        // SAFETY: as in `new`: the region did not leave the thread.
        let cell = unsafe { &*self.0 };
        cell.set(cell.get().saturating_sub(1));
    }
}

/// Whether goroutines can be preempted asynchronously on this machine.
pub fn async_preemption_enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Installs the SIGURG handler once per process, and finds the executable's code.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        if cfg!(not(all(target_arch = "x86_64", target_os = "linux")))
            || crate::stack::godebug("asyncpreemptoff=1")
        {
            return;
        }
        find_text();
        // Keep the section (and so its bounds) in every program, including one that never
        // stores a pointer: the linker drops a section nothing refers to.
        std::hint::black_box(
            crate::barrier::write_outlined as unsafe fn(*mut usize, usize) as usize,
        );
        #[cfg(target_arch = "x86_64")]
        MINIGO_PREEMPT_USE_XSAVE.store(xsave_fits(), Ordering::Release);
        // SAFETY: installing a handler with sigaction; the previous one is saved first and
        // only read by the handler afterwards (Once orders the write before any signal
        // this process sends itself).
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigurg as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGURG, &new, &mut old) == 0 {
                *std::ptr::addr_of_mut!(PREVIOUS) = Some(old);
                ENABLED.store(true, Ordering::Release);
            }
        }
    });
}

/// Asks the thread `tid` (an M) to preempt its goroutine, if it is at a safe point.
pub(crate) fn preempt_m(tid: i32) {
    if tid == 0 || !async_preemption_enabled() {
        return;
    }
    // SAFETY: tgkill sends a signal to one thread of this process; a thread that has
    // exited makes it fail with ESRCH, which is harmless (Ms of a finished run).
    unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGURG) };
}

/// This thread's kernel id, for `preempt_m`.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Records the range of the executable's code.
fn find_text() {
    let (base, headers) = crate::exe::program_headers();
    let (mut lo, mut hi) = (usize::MAX, 0);
    for ph in headers
        .iter()
        .filter(|ph| ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0)
    {
        let start = base + ph.p_vaddr as usize;
        lo = lo.min(start);
        hi = hi.max(start + ph.p_memsz as usize);
    }
    if lo < hi {
        TEXT_LO.store(lo, Ordering::Release);
        TEXT_HI.store(hi, Ordering::Release);
    }
}

/// Whether `xsave` is usable (OSXSAVE) and the state the trampoline saves fits its area.
#[cfg(target_arch = "x86_64")]
// `__cpuid` is a safe function from Rust 1.89 on, unsafe before (the MSRV is 1.88).
#[allow(unused_unsafe)]
fn xsave_fits() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: `cpuid` exists on every x86-64 processor.
    let leaf1 = unsafe { __cpuid(1) };
    if leaf1.ecx & (1 << 27) == 0 {
        return false;
    }
    // Leaf 0xD exists when OSXSAVE is set.
    let mut need = 576;
    for comp in 2..8 {
        // SAFETY: as above; leaf 0xD exists when OSXSAVE is set.
        let c = unsafe { __cpuid_count(0xD, comp) };
        if c.eax != 0 {
            need = need.max(c.ebx as usize + c.eax as usize);
        }
    }
    need <= XSAVE_AREA
}

extern "C" {
    fn minigo_async_preempt();
    static minigo_async_preempt_end: u8;
    // The bounds of the `minigo_nopreempt` section (the linker defines them): functions
    // too hot for the lock count's two thread-local updates (the write barrier's and the
    // allocation's fast paths), which are runtime code all the same.
    static __start_minigo_nopreempt: u8;
    static __stop_minigo_nopreempt: u8;
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
std::arch::global_asm!(
    ".text",
    ".globl minigo_async_preempt",
    ".globl minigo_async_preempt_end",
    ".p2align 4",
    "minigo_async_preempt:",
    // The interrupted instruction's address is at [rsp]; 128 bytes of red zone above it.
    "pushfq",
    "cld",
    "push rax",
    "push rcx",
    "push rdx",
    "push rbx",
    "push rbp",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov rbx, rsp",
    "and rsp, -64",
    "sub rsp, {area}",
    // Zero the area and the alignment gap: xrstor needs the header's reserved bytes zero,
    // and the parts xsave leaves unwritten would otherwise hold stale words of dead frames,
    // which the conservative scan would take for roots (verify mode flags such a word
    // when it names an object that died before the cycle).
    "mov rdi, rsp",
    "mov rcx, rbx",
    "sub rcx, rsp",
    "shr rcx, 3",
    "xor eax, eax",
    "rep stosq",
    "test byte ptr [rip + {xsave}], 1",
    "jz 2f",
    "mov eax, 0xff",
    "xor edx, edx",
    "xsave64 [rsp]",
    "jmp 3f",
    "2:",
    "fxsave64 [rsp]",
    "3:",
    "call {preempt}",
    "test byte ptr [rip + {xsave}], 1",
    "jz 4f",
    "mov eax, 0xff",
    "xor edx, edx",
    "xrstor64 [rsp]",
    "jmp 5f",
    "4:",
    "fxrstor64 [rsp]",
    "5:",
    "mov rsp, rbx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rbp",
    "pop rbx",
    "pop rdx",
    "pop rcx",
    "pop rax",
    "popfq",
    // Pops the interrupted address and the red zone's 128 bytes.
    "ret 128",
    "minigo_async_preempt_end:",
    area = const XSAVE_AREA,
    preempt = sym async_preempt2,
    xsave = sym MINIGO_PREEMPT_USE_XSAVE,
);

/// Called by the trampoline with every register saved on the goroutine's stack and the
/// lock count at 1 (set by the handler, so a second signal meanwhile does nothing).
extern "C" fn async_preempt2() {
    let cur = current();
    let sched = cur.sched();
    let _listed = Preempted::list(sched, cur.g);
    sched.async_preemptions.fetch_add(1, Ordering::Relaxed);
    if sched.shutdown.load(Ordering::Acquire) {
        // The run is over: stop here for good (the M never resumes it).
        park(Park::Safepoint);
    } else if sched.world.stopping() {
        sched.stop_in_place(cur.g(), current_p());
    } else if !sched.preempt_yield(cur.g(), current_p()) {
        park(Park::Exit);
    }
    drop(_listed);
    // SAFETY: back to the interrupted code, which ran at count 0 (`safe_point` checked).
    unsafe { minigo_alloc_core::sync::set_m_locks(0) };
}

/// A goroutine on the runtime's list of asynchronously preempted ones for as long as it
/// is stopped (`Sched::shade_preempted` reads the list).
struct Preempted<'a> {
    sched: &'a crate::sched::Sched,
    g: crate::g::GRef,
}

impl<'a> Preempted<'a> {
    fn list(sched: &'a crate::sched::Sched, g: crate::g::GRef) -> Preempted<'a> {
        sched.preempted.lock().push(crate::sched::GPtr(g));
        Preempted { sched, g }
    }
}

impl Drop for Preempted<'_> {
    fn drop(&mut self) {
        let mut l = self.sched.preempted.lock();
        if let Some(i) = l.iter().position(|p| p.0 == self.g) {
            l.swap_remove(i);
        }
    }
}

extern "C" fn on_sigurg(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let uc = ctx as *mut libc::ucontext_t;
        // SAFETY: the kernel passes the interrupted context to an SA_SIGINFO handler; it
        // is ours to read and change until the handler returns.
        let gregs = unsafe { &mut (*uc).uc_mcontext.gregs };
        let pc = gregs[libc::REG_RIP as usize] as usize;
        let sp = gregs[libc::REG_RSP as usize] as usize;
        if let Some(new_sp) = safe_point(pc, sp) {
            // SAFETY: `safe_point` checked that `new_sp` is on the running goroutine's
            // stack, [`ROOM`] bytes clear of its guard page and below the red zone, so the
            // word is ours to write: it becomes the trampoline's return address.
            unsafe { *(new_sp as *mut usize) = pc };
            gregs[libc::REG_RSP as usize] = new_sp as i64;
            gregs[libc::REG_RIP as usize] = minigo_async_preempt as *const () as usize as i64;
            // SAFETY: raises the count (to 1, from the 0 `safe_point` saw) for the
            // trampoline and `async_preempt2`, which lowers it back.
            unsafe { minigo_alloc_core::sync::set_m_locks(1) };
            return;
        }
    }
    chain(sig, info, ctx);
}

/// Where the trampoline's return address goes if `(pc, sp)` is an asynchronous safe point
/// of the goroutine running on this thread (see the module comment); `None` if it is not.
fn safe_point(pc: usize, sp: usize) -> Option<usize> {
    let (lo, hi) = (
        TEXT_LO.load(Ordering::Relaxed),
        TEXT_HI.load(Ordering::Relaxed),
    );
    if pc < lo || pc >= hi {
        return None;
    }
    let tramp = minigo_async_preempt as *const () as usize;
    let tramp_end = std::ptr::addr_of!(minigo_async_preempt_end) as usize;
    if pc >= tramp && pc < tramp_end {
        return None;
    }
    let (np, np_end) = (
        std::ptr::addr_of!(__start_minigo_nopreempt) as usize,
        std::ptr::addr_of!(__stop_minigo_nopreempt) as usize,
    );
    if pc >= np && pc < np_end {
        return None;
    }
    let (guard_hi, top) = crate::signal::running_stack()?;
    if sp < guard_hi + ROOM || sp > top {
        return None;
    }
    // The handler must run on the thread's alternate signal stack: on the goroutine's own,
    // the kernel's signal frame lies just below the red zone, where the return address is
    // about to go, and overwriting it would lose vector state on the way back.
    let here = std::hint::black_box(0u8);
    let here = &here as *const u8 as usize;
    if here >= guard_hi && here <= top {
        return None;
    }
    if minigo_alloc_core::sync::m_locks() != 0 || crate::tls::busy() {
        return None;
    }
    Some(sp - 128 - 8)
}

/// Not a preemption this runtime can make: whoever handled SIGURG before us gets it.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: PREVIOUS was written before the handler was installed (see `install`).
    let previous = unsafe { *std::ptr::addr_of!(PREVIOUS) };
    if let Some(old) = previous {
        crate::signal::call_previous(&old, sig, info, ctx);
    }
}

#[cfg(all(test, not(loom), target_arch = "x86_64", target_os = "linux"))]
mod tests {
    use super::*;

    /// The fast paths that hold a P's state without the lock count are where the handler
    /// will not stop a goroutine: a `link_section` dropped (or a fast path moved out of
    /// the function that has it) would let a time slice's handoff give the P, and its
    /// mcache, to another thread in the middle of an allocation.
    #[test]
    fn the_lock_free_fast_paths_are_in_the_no_preemption_section() {
        let (np, np_end) = (
            std::ptr::addr_of!(__start_minigo_nopreempt) as usize,
            std::ptr::addr_of!(__stop_minigo_nopreempt) as usize,
        );
        let barrier = crate::barrier::write_outlined as unsafe fn(*mut usize, usize) as usize;
        type Fast = fn(&minigo_alloc_core::Layout) -> Option<std::ptr::NonNull<u8>>;
        let alloc = crate::sched::alloc_fast_outlined::<true> as Fast as usize;
        let overwritten = crate::sched::alloc_fast_outlined::<false> as Fast as usize;
        for (name, f) in [
            ("barrier::write_outlined", barrier),
            ("sched::alloc_fast_outlined::<true>", alloc),
            ("sched::alloc_fast_outlined::<false>", overwritten),
        ] {
            assert!(
                (np..np_end).contains(&f),
                "{name} at {f:#x} is outside minigo_nopreempt [{np:#x}, {np_end:#x})"
            );
        }
    }
}
