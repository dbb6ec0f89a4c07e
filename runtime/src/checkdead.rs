//! Deadlock detection (Go's `checkdead`): when every goroutine is asleep on something only
//! another goroutine could end — a channel, a `select`, a `WaitGroup` — the run ends with
//! "all goroutines are asleep - deadlock!" instead of hanging at 0% CPU.
//!
//! 1. An M that has gone idle asks [`Sched::all_asleep`]: every P idle, no M looking for
//!    work, nothing queued anywhere, no goroutine inside `blocking` (it will come back), no
//!    timer pending (a sleeper will wake), no collection under way or waited for (its end
//!    readies the waiters), the world not stopping, and the run not over. If so, it notes
//!    the scheduler's progress count (bumped whenever a goroutine is readied).
//! 2. It looks again [`RECHECK`] later. Go decides under its scheduler lock, where
//!    these counts are exact; here they are separate atomics, so a wake-up racing the first
//!    look (a timer firing, a goroutine leaving `blocking`) could make one look wrong. The
//!    second look must see the same state and the same progress count: anything that
//!    readied a goroutine in between changed the count. A waker that is not an M (the
//!    timer thread, whoever ends a cycle) counts itself in `wakers` from before it takes
//!    a goroutine off its list until the goroutine is ready, so a waker the OS stalls
//!    between the two for longer than the recheck is not mistaken for a deadlock.
//! 3. Then the run ends with [`RunError::Deadlock`](crate::RunError::Deadlock), or, when
//!    panics abort the process, with Go's message and exit status 2.
//!
//! What it cannot see, it does not guess about: a goroutine waiting on something outside
//! the runtime (there is no such wait but `blocking`, which counts as awake) never looks
//! deadlocked.

use std::time::Duration;

use minigo_alloc_core::sync::Ordering;
use minigo_gc::GcPhase;

use crate::sched::{Finish, Sched};

/// How long the state must hold still before it is a deadlock.
pub(crate) const RECHECK: Duration = Duration::from_millis(20);

impl Sched {
    /// The progress count if every goroutine is asleep with nothing that could wake one
    /// (see the module comment); `None` otherwise.
    pub(crate) fn all_asleep(&self) -> Option<u64> {
        let progress = self.progress.load(Ordering::Acquire);
        let asleep = !self.shutdown.load(Ordering::Acquire)
            && self.world.npidle() == self.ps.len()
            && !self.world.stopping()
            && self.nmspinning.load(Ordering::Acquire) == 0
            && self.global.is_empty()
            && self.ps.iter().all(|p| p.runq.is_empty())
            && self.in_blocking.load(Ordering::Acquire) == 0
            && !self.timers.pending()
            && self.collector.phase() == GcPhase::Off
            && self.gc_waiters.lock().is_empty()
            // After the two lists: a waker counts itself before it takes a goroutine off
            // one (under its lock), so a list seen empty and no waker counted means nobody
            // is between the list and `ready`.
            && self.wakers.load(Ordering::SeqCst) == 0
            && self.ngoroutines.load(Ordering::Acquire) > 0
            && !self.finished();
        asleep.then_some(progress)
    }

    /// The second look: still asleep, and nothing was readied since `seen`. Ends the run.
    pub(crate) fn check_dead(&self, seen: u64) {
        if self.all_asleep() != Some(seen) {
            return;
        }
        let goroutines = self.ngoroutines.load(Ordering::Acquire);
        if self.panic_aborts {
            crate::g::fatal_print(format_args!(
                "fatal error: all goroutines are asleep - deadlock!\n\n\
                 ({goroutines} goroutine{} asleep)",
                if goroutines == 1 { "" } else { "s" }
            ));
            std::process::exit(2);
        }
        self.set_finish(Finish::Deadlock { goroutines });
    }
}
