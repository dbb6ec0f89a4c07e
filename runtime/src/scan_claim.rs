//! The claim on a goroutine's stack scan for one cycle (`roots.rs`): whoever gets to a
//! goroutine first while a cycle marks scans its stack — a mark worker while it is parked,
//! or its own M before it resumes it (or before it runs on after a stop in place or a
//! `blocking` call) — and nobody resumes it meanwhile.
//!
//! The claim is a word per goroutine: `2 * epoch` once its stack is scanned for the cycle
//! numbered `epoch`, `2 * epoch + 1` while it is being scanned. A compare-and-swap takes
//! the claim; a second party waits for `2 * epoch`. This file compiles under loom: the
//! preemption model (loom-tests/tests/preempt.rs) runs it as it is.

use minigo_alloc_core::sync::{AtomicU32, Backoff, Ordering};

/// Runs `scan` unless the stack whose claim word is `gen` was scanned for cycle `epoch`
/// already, making sure nobody else scans it meanwhile. Returns when it is scanned for the
/// cycle (by this call or another): the caller may then resume the goroutine.
pub fn scan_once(gen: &AtomicU32, epoch: u32, scan: impl FnOnce()) {
    let done = epoch.wrapping_mul(2);
    let scanning = done.wrapping_add(1);
    let mut backoff = Backoff::new();
    loop {
        let s = gen.load(Ordering::Acquire);
        if s == done {
            return;
        }
        if s == scanning {
            // Another marker is at it. A stack scan is short, but the marker may have
            // lost its CPU mid-scan (a process pinned to one CPU, a busy host): spinning
            // would keep it off the CPU it needs.
            backoff.snooze();
            continue;
        }
        #[cfg(not(loom_mutant = "scan_claim_racy"))]
        let claimed = gen
            .compare_exchange(s, scanning, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        #[cfg(loom_mutant = "scan_claim_racy")]
        let claimed = {
            gen.store(scanning, Ordering::Relaxed);
            true
        };
        if claimed {
            scan();
            gen.store(done, Ordering::Release);
            return;
        }
    }
}
