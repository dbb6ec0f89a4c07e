//! Specials: records attached to single objects, which the sweeper looks at when their
//! object dies (Go's `mspan.specials`). There is one kind: a heap-profile sample
//! (`specialprofile`), whose record number the collector's profile gave it.
//!
//! 1. A mutator that sampled an allocation attaches the record to the object
//!    ([`MHeap::add_special`](crate::MHeap::add_special)) and sets its span's
//!    `has_specials` flag.
//! 2. The sweeper looks at the flag of every span it sweeps; for a span that has one, it
//!    takes the table's lock, drops the specials of objects the cycle did not mark, and
//!    queues their records as freed. Spans without specials pay one load.
//! 3. The collector takes the freed records ([`MHeap::take_freed_specials`]) when it
//!    publishes a cycle's profile: by then that cycle's sweep is done, so every record the
//!    queue holds is of an object the cycle found dead (Go's `mProf_Free` into the
//!    cycle's `future` slot).
//!
//! Go keeps a sorted list per span under a per-span lock. Samples are rare (one per
//! 512 KiB allocated by default), so one table for the heap, keyed by address, is enough;
//! the per-span flag keeps the sweeper's common case free of it.
//!
//! [`MHeap::take_freed_specials`]: crate::MHeap::take_freed_specials

use std::collections::BTreeMap;

use crate::span::{MSpan, SpanInfo};
use crate::sync::{Mutex, Ordering};

/// The heap's specials.
pub(crate) struct Specials {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Object address -> record.
    by_addr: BTreeMap<usize, u32>,
    /// Records of objects swept dead, not yet taken.
    freed: Vec<u32>,
}

impl Specials {
    pub(crate) fn new() -> Specials {
        Specials {
            inner: Mutex::new(Table::default()),
        }
    }

    /// Attaches `record` to the object at `addr`, the start of a live object of `span`,
    /// unless it has one already.
    pub(crate) fn add(&self, span: &MSpan, addr: usize, record: u32) {
        // The seeded bug of loom model 10: the flag raised before the special is in the
        // table, so a sweep in between finds nothing, lowers it, and the special is lost.
        #[cfg(loom_mutant = "special_flag_early")]
        span.has_specials.store(true, Ordering::Release);
        let mut t = self.inner.lock();
        // One record per object, the first: its sampled allocation's.
        t.by_addr.entry(addr).or_insert(record);
        // Raised with the special in the table: a sweep of the span running meanwhile (a
        // sampled goroutine held up past the end of a cycle) either sees both or neither,
        // and leaves the flag up for the next sweep.
        #[cfg(not(loom_mutant = "special_flag_early"))]
        span.has_specials.store(true, Ordering::Release);
    }

    /// The sweep of `span` (its mark bits not yet turned into alloc bits): queues the
    /// records of objects that are not marked and drops them. `marked(i)` says whether slot
    /// `i` survived.
    pub(crate) fn sweep(&self, span: &MSpan, info: &SpanInfo, marked: impl Fn(usize) -> bool) {
        if !span.has_specials.load(Ordering::Acquire) {
            return;
        }
        let end = info.base + info.npages * crate::sizeclass::PAGE_SIZE;
        let mut t = self.inner.lock();
        let t = &mut *t;
        let mut dead = Vec::new();
        let mut left = 0;
        for (&addr, &record) in t.by_addr.range(info.base..end) {
            if marked(MSpan::obj_index(info, addr)) {
                left += 1;
            } else {
                dead.push(addr);
                t.freed.push(record);
            }
        }
        for addr in dead {
            t.by_addr.remove(&addr);
        }
        if left == 0 {
            span.has_specials.store(false, Ordering::Relaxed);
        }
    }

    /// Takes the records swept dead so far.
    pub(crate) fn take_freed(&self) -> Vec<u32> {
        std::mem::take(&mut self.inner.lock().freed)
    }
}
