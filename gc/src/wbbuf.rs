//! The write-barrier buffer (Go's `wbBuf`, mwbbuf.go): one per mutator state, so that a
//! pointer store during marking costs two plain stores into a buffer, not a trip into the
//! heap's metadata. When it fills, the mutator flushes it: every recorded pointer is shaded
//! (`MutatorState::flush_wb`). Mark termination flushes every buffer with the world
//! stopped, so nothing recorded is lost.

/// Pointers a buffer holds (Go: 512). Small under loom, so that a model fills it.
#[cfg(not(loom))]
pub(crate) const WB_ENTRIES: usize = 512;
#[cfg(loom)]
pub(crate) const WB_ENTRIES: usize = 4;

/// Pointers recorded by the barrier, to be shaded.
pub struct WbBuf {
    n: usize,
    buf: [usize; WB_ENTRIES],
}

impl Default for WbBuf {
    fn default() -> Self {
        WbBuf {
            n: 0,
            buf: [0; WB_ENTRIES],
        }
    }
}

impl WbBuf {
    /// Records an overwritten pointer (zero is skipped); true when the buffer is full and
    /// must be flushed before the next store.
    #[inline(always)]
    pub(crate) fn put(&mut self, old: usize) -> bool {
        // A slot is always free here: a full buffer is flushed at once.
        debug_assert!(self.n < WB_ENTRIES);
        self.buf[self.n] = old;
        self.n += (old != 0) as usize;
        self.n == WB_ENTRIES
    }

    /// The recorded pointers, emptying the buffer.
    pub(crate) fn take(&mut self) -> impl Iterator<Item = usize> + '_ {
        let n = std::mem::take(&mut self.n);
        self.buf[..n].iter().copied()
    }

    /// Forgets what is recorded (no cycle is marking: nothing needs shading).
    pub(crate) fn clear(&mut self) {
        self.n = 0;
    }

    /// True when nothing is recorded.
    pub(crate) fn is_empty(&self) -> bool {
        self.n == 0
    }
}
