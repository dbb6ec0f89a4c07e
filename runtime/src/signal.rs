//! Turning a goroutine's stack overflow into a message instead of a bare SIGSEGV.
//!
//! A goroutine that overflows its stack touches the guard page below it. The runtime
//! installs a SIGSEGV handler (on the alternate signal stack that Rust's standard library
//! gives every thread) which checks the fault address against the guard page of the
//! goroutine running on this thread: if it matches, it prints `fatal error: goroutine N:
//! stack overflow` and exits with status 2, as Go does (an overflowed stack cannot be
//! unwound safely). Any other fault goes to the handler that was there before (Rust's own,
//! which reports overflows of thread stacks), or to the default action.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// The running goroutine's guard page, id and stack top (all 0: none runs), set by the
    /// scheduler around each resume.
    static GUARD: Cell<(usize, usize, u64, usize)> = const { Cell::new((0, 0, 0, 0)) };
}

static INSTALL: Once = Once::new();
static mut PREVIOUS: Option<libc::sigaction> = None;

/// Notes which goroutine (guard page, id, stack top) runs on this thread; `None` when
/// none does.
pub(crate) fn set_running(g: Option<((usize, usize), u64, usize)>) {
    GUARD.with(|c| c.set(g.map_or((0, 0, 0, 0), |((lo, hi), id, top)| (lo, hi, id, top))));
}

/// The stack of the goroutine running on this thread, `(top of its guard page, top)`.
/// Async-signal-safe (for the preemption handler).
pub(crate) fn running_stack() -> Option<(usize, usize)> {
    let (_, hi, _, top) = GUARD.with(|c| c.get());
    (top != 0).then_some((hi, top))
}

/// This thread's alternate signal stack, when the runtime had to give it one.
pub(crate) struct AltStack {
    mem: Vec<u8>,
}

/// Size of the alternate signal stacks the runtime gives its Ms.
const ALTSTACK_SIZE: usize = 64 << 10;

/// Makes sure this thread (an M) has an alternate signal stack, as Go's `minitSignalStack`
/// does: the overflow handler runs on it when a goroutine's stack is exhausted, and the
/// preemption handler must not run on the goroutine's stack (`preempt.rs`). Threads the
/// standard library made usually have one; a thread that does not gets one here, given
/// back when the returned value drops (when the M exits).
pub(crate) fn ensure_altstack() -> Option<AltStack> {
    // SAFETY: an all-zero `stack_t` is a valid value of this plain C struct.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: sigaltstack with a null new stack only reads the current one into `old`.
    let r = unsafe { libc::sigaltstack(std::ptr::null(), &mut old) };
    if r != 0 || old.ss_flags & libc::SS_DISABLE == 0 {
        return None;
    }
    let mut mem = vec![0u8; ALTSTACK_SIZE];
    let new = libc::stack_t {
        ss_sp: mem.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: mem.len(),
    };
    // SAFETY: `mem` outlives the registration: `AltStack::drop` disables it first.
    if unsafe { libc::sigaltstack(&new, std::ptr::null_mut()) } != 0 {
        return None;
    }
    Some(AltStack { mem })
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: disables this thread's alternate stack before its memory is freed; no
        // handler runs on it now (we are not in one).
        unsafe { libc::sigaltstack(&off, std::ptr::null_mut()) };
        let _ = self.mem.len();
    }
}

/// Installs the handler once per process.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        // SAFETY: installing a handler with sigaction; the previous one is saved first and
        // only read by the handler afterwards (Once orders the write before any fault).
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_segv as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGSEGV, &new, &mut old) == 0 {
                *std::ptr::addr_of_mut!(PREVIOUS) = Some(old);
            }
        }
    });
}

extern "C" fn on_segv(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (lo, hi, id, _) = GUARD.with(|c| c.get());
    if addr >= lo && addr < hi {
        let mut buf = [0u8; 96];
        let msg = format_overflow(&mut buf, id);
        // SAFETY: write(2) and _exit are async-signal-safe; `msg` is a valid buffer.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(2);
        }
    }
    // Not a goroutine overflow: hand it to whoever handled SIGSEGV before us.
    // SAFETY: PREVIOUS was written before the handler could run (see `install`).
    let previous = unsafe { *std::ptr::addr_of!(PREVIOUS) };
    match previous {
        Some(old) if call_previous(&old, sig, info, ctx) => {}
        _ => {
            // Restore the default action and return: the faulting instruction runs again
            // and the process dies of SIGSEGV, as it would have without us.
            // SAFETY: resetting a signal's disposition to its default.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut());
            }
        }
    }
}

/// Calls the handler `old` describes with the signal's arguments, if it is a function
/// (not `SIG_DFL` or `SIG_IGN`); returns whether it was.
pub(crate) fn call_previous(
    old: &libc::sigaction,
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) -> bool {
    if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
        return false;
    }
    if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed as a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(old.sa_sigaction) };
        f(sig, info, ctx);
    } else {
        // SAFETY: the previous handler was installed as a one-argument handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
        f(sig);
    }
    true
}

/// "fatal error: goroutine N: stack overflow\n" without allocating.
fn format_overflow(buf: &mut [u8; 96], id: u64) -> &[u8] {
    let head = b"fatal error: goroutine ";
    let tail = b": stack overflow\n";
    let mut digits = [0u8; 20];
    let mut n = id;
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut len = 0;
    for &b in head.iter().chain(&digits[k..]).chain(tail) {
        buf[len] = b;
        len += 1;
    }
    &buf[..len]
}

#[cfg(test)]
mod tests {
    #[test]
    fn overflow_message() {
        let mut b = [0u8; 96];
        assert_eq!(
            super::format_overflow(&mut b, 17),
            b"fatal error: goroutine 17: stack overflow\n"
        );
        assert_eq!(
            super::format_overflow(&mut b, 0),
            b"fatal error: goroutine 0: stack overflow\n"
        );
    }
}
