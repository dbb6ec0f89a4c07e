//! Recycling of dead goroutines and their stacks (Go's `gfput`/`gfget` and stack cache).
//!
//! A goroutine that ends leaves two things behind: its `G` (the descriptor the collector and
//! the wait queues know) and its stack mapping. Both are expensive to make (a heap allocation
//! and an entry in `allgs`; an `mmap` + `mprotect` and the page faults of a cold stack), and
//! a program that spawns goroutines at a steady rate needs them back at once. So each P keeps
//! a few of each without a lock (`LocalFree`); beyond twice `PER_P` half moves to the global
//! lists (`GlobalFree`). Gs are never freed (like Go's `allgs`); stacks on the global list are
//! released to the OS (`MADV_DONTNEED`) once per collection, as Go's `markrootFreeGStacks`
//! does, so a burst of goroutines does not pin its peak memory, yet a steady rate reuses
//! warm stacks without a syscall or a page fault.
//!
//! Stacks are kept apart from Gs because a goroutine gets its stack only when it first runs:
//! a burst of `go` statements creates many Gs before any dies, and the stacks of the first
//! to die must serve the next to start.

use crate::g::GRef;
use crate::sched::GPtr;
use crate::stack::GoStack;
use minigo_alloc_core::sync::Mutex;

/// Dead Gs, and idle stacks, a P keeps.
const PER_P: usize = 64;

/// A P's free lists; touched only by the M that holds the P.
#[derive(Default)]
pub(crate) struct LocalFree {
    gs: Vec<GRef>,
    stacks: Vec<GoStack>,
}

/// The free lists shared by all Ps.
#[derive(Default)]
pub(crate) struct GlobalFree {
    gs: Mutex<Vec<GPtr>>,
    stacks: Mutex<StackPool>,
}

#[derive(Default)]
struct StackPool {
    /// Stacks whose pages are still resident (released at the next collection).
    warm: Vec<GoStack>,
    /// Stacks whose pages were given back: reusing one costs page faults, not a mapping.
    released: Vec<GoStack>,
}

impl LocalFree {
    pub(crate) fn get_g(&mut self, global: &GlobalFree) -> Option<GRef> {
        self.gs
            .pop()
            .or_else(|| global.gs.lock().pop().map(|g| g.0))
    }

    pub(crate) fn put_g(&mut self, g: GRef, global: &GlobalFree) {
        self.gs.push(g);
        if self.gs.len() > 2 * PER_P {
            global.gs.lock().extend(self.gs.drain(..PER_P).map(GPtr));
        }
    }

    pub(crate) fn get_stack(&mut self, global: &GlobalFree) -> Option<GoStack> {
        self.stacks.pop().or_else(|| {
            let mut pool = global.stacks.lock();
            pool.warm.pop().or_else(|| pool.released.pop())
        })
    }

    pub(crate) fn put_stack(&mut self, s: GoStack, global: &GlobalFree) {
        self.stacks.push(s);
        if self.stacks.len() > 2 * PER_P {
            global.stacks.lock().warm.extend(self.stacks.drain(..PER_P));
        }
    }
}

impl LocalFree {
    /// The idle stacks' ranges (for `read_mem_stats`).
    pub(crate) fn stack_ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.stacks.iter().map(GoStack::range)
    }
}

impl GlobalFree {
    /// The idle stacks' ranges whose pages may be resident (for `read_mem_stats`).
    pub(crate) fn warm_stack_ranges(&self) -> Vec<(usize, usize)> {
        self.stacks.lock().warm.iter().map(GoStack::range).collect()
    }

    /// For an M without a P (a goroutine that ends while its M gives its P up).
    pub(crate) fn put(&self, g: GRef, stack: Option<GoStack>) {
        self.gs.lock().push(GPtr(g));
        if let Some(s) = stack {
            self.stacks.lock().warm.push(s);
        }
    }

    /// Gives the memory of the idle stacks on the global list back to the OS (once per
    /// collection, with the world stopped).
    pub(crate) fn release_stacks(&self) {
        let mut pool = self.stacks.lock();
        let warm = std::mem::take(&mut pool.warm);
        for s in &warm {
            s.release();
        }
        pool.released.extend(warm);
    }
}
