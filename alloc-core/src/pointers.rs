//! The collector's view of an object's words: an iterator over the addresses of exactly
//! those words its layout called pointers (Go's `typePointers`). Small objects' bits come
//! from their span's uniform mask or from the heap's pointer bitmap, 64 words per load;
//! large objects' from their layout, tiled per array element, stopping after the last
//! element's last pointer.

use crate::heapbits::HeapBits;
use crate::layout::Layout;
use crate::span::{MSpan, PtrMask};

enum Source<'h> {
    Bitmap(&'h HeapBits),
    Mask(u64),
    Layout(Layout, usize),
}

/// Addresses of an object's pointer words, in increasing order.
pub struct PointerWords<'h> {
    source: Option<Source<'h>>,
    base: usize,
    nwords: usize,
    next_chunk: usize,
    chunk_addr: usize,
    bits: u64,
}

impl<'h> PointerWords<'h> {
    #[inline]
    pub(crate) fn of(bits: &'h HeapBits, span: &MSpan, base: usize) -> PointerWords<'h> {
        let (source, nwords) = span.info(|i| {
            if i.spc.noscan() {
                (None, 0)
            } else if let Some((layout, len)) = &i.large {
                (
                    Some(Source::Layout(layout.clone(), *len)),
                    layout.inner().pointer_extent(*len),
                )
            } else {
                match span.ptrmask() {
                    PtrMask::Uniform(mask) => (Some(Source::Mask(mask)), i.elemsize / 8),
                    PtrMask::Bitmap => (Some(Source::Bitmap(bits)), i.elemsize / 8),
                    PtrMask::Empty => (None, 0),
                }
            }
        });
        PointerWords {
            source,
            base,
            nwords,
            next_chunk: 0,
            chunk_addr: base,
            bits: 0,
        }
    }
}

impl PointerWords<'_> {
    /// Words of the object in all (one past its last pointer word, or its slot's words).
    pub fn extent(&self) -> usize {
        self.nwords
    }

    /// Keeps only words `[from, to)` (from rounded down to a multiple of 64): one "oblet"
    /// of a large object, so that several markers can share it (Go scans 128 KiB oblets).
    pub fn restrict(mut self, from: usize, to: usize) -> Self {
        self.next_chunk = from / 64;
        self.nwords = self.nwords.min(to);
        self
    }
}

impl Iterator for PointerWords<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            let k = self.next_chunk;
            if k * 64 >= self.nwords {
                return None;
            }
            self.next_chunk += 1;
            self.chunk_addr = self.base + k * 64 * 8;
            self.bits = match self.source.as_ref()? {
                Source::Bitmap(bits) => bits.read(self.chunk_addr, (self.nwords - k * 64).min(64)),
                Source::Mask(mask) => *mask,
                Source::Layout(layout, len) => layout.inner().chunk(*len, k),
            };
        }
        let i = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(self.chunk_addr + i * 8)
    }
}
