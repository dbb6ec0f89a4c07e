//! Layouts: what the allocating code tells the heap about an object's words.
//!
//! A [`Layout`] is a type's size plus a bitmap naming which of its 8-byte words are
//! pointers. An array of a layout repeats the bitmap once per element. The mcache writes the
//! bits into the heap's pointer bitmap when it hands out a small object; a large object's
//! span keeps a reference to its layout instead. The collector reads nothing else: a word
//! the layout does not call a pointer is never looked at (invariant 3).
//!
//! Building a layout precomputes what the allocation fast path needs (span class, the bits
//! of a one-element object up to 64 words) so that path does no arithmetic beyond Go's.

use std::sync::Arc;

use crate::error::{AllocError, LayoutError};
use crate::sizeclass::{size_to_class, SpanClass, MAX_SMALL_SIZE, TINY_SIZE};

/// Size and pointer map of a type. Cheap to clone (a reference count).
#[derive(Clone)]
pub struct Layout(Arc<LayoutInner>);

pub(crate) struct LayoutInner {
    size: usize,
    /// Bit `i` set: word `i` of an element is a pointer. Trimmed after the last pointer.
    ptr_mask: Box<[u64]>,
    /// One past the last pointer word of an element (Go's `PtrBytes / 8`); 0 = pointer-free.
    ptr_words: usize,
    /// The element bitmap tiled over 64 words, when an element's words divide 64 (an array
    /// of pointers: 1): every 64-word chunk of an array is then this, cut at its end. A
    /// large array of pointers is scanned chunk by chunk, and tiling bit by bit cost 2% of
    /// `churn`, whose window is one.
    tile: Option<u64>,
    pub(crate) fast: Fast,
}

/// How a one-element object of this layout is allocated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fast {
    /// Size 0: the shared zero-size address.
    Zero,
    /// Pointer-free and smaller than 16 bytes: packed into the mcache's tiny block.
    Tiny { size: usize },
    /// A size-classed object of at most 64 words; `mask` is its pointer bits (0: noscan).
    Small { spc: SpanClass, mask: u64 },
    /// A size-classed object with pointers and more than 64 words: bits written per chunk.
    SmallWide { spc: SpanClass },
    /// Larger than 32 KiB: its own span.
    Large,
}

impl Layout {
    /// A pointer-free type of `size` bytes (a noscan object: never scanned).
    pub fn noscan(size: usize) -> Layout {
        Layout::build(size, Vec::new())
    }

    /// A type of `size` bytes whose pointers are the 8-byte words with the given indices.
    pub fn new(size: usize, pointer_words: &[usize]) -> Result<Layout, LayoutError> {
        let mut mask = Vec::new();
        for &w in pointer_words {
            if w >= size / 8 {
                return Err(LayoutError::PointerPastEnd { word: w, size });
            }
            if mask.len() <= w / 64 {
                mask.resize(w / 64 + 1, 0u64);
            }
            mask[w / 64] |= 1 << (w % 64);
        }
        Layout::from_bitmap(size, &mask)
    }

    /// A type of `size` bytes with pointers at the given byte offsets (multiples of 8).
    pub fn from_offsets(size: usize, pointer_offsets: &[usize]) -> Result<Layout, LayoutError> {
        let mut words = Vec::with_capacity(pointer_offsets.len());
        for &off in pointer_offsets {
            if off % 8 != 0 {
                return Err(LayoutError::MisalignedPointer { offset: off });
            }
            words.push(off / 8);
        }
        Layout::new(size, &words)
    }

    /// A type of `size` bytes whose pointer words are the set bits of `bitmap` (bit `i` of
    /// `bitmap[i / 64]` is word `i`). Rejects a bitmap that names a word past `size`.
    pub fn from_bitmap(size: usize, bitmap: &[u64]) -> Result<Layout, LayoutError> {
        if size > isize::MAX as usize {
            return Err(LayoutError::TooLarge { size });
        }
        let words = size / 8;
        for (i, &bits) in bitmap.iter().enumerate() {
            if bits == 0 {
                continue;
            }
            let last = i * 64 + 63 - bits.leading_zeros() as usize;
            if last >= words {
                return Err(LayoutError::PointerPastEnd { word: last, size });
            }
        }
        let mut mask = bitmap.to_vec();
        while mask.last() == Some(&0) {
            mask.pop();
        }
        if !mask.is_empty() && !size.is_multiple_of(8) {
            return Err(LayoutError::NotWordMultiple { size });
        }
        Ok(Layout::build(size, mask))
    }

    /// `words` consecutive pointers (for example the element type of an array of pointers).
    pub fn pointers(words: usize) -> Layout {
        let mut mask = vec![!0u64; words / 64];
        if !words.is_multiple_of(64) {
            mask.push((1u64 << (words % 64)) - 1);
        }
        Layout::build(words * 8, mask)
    }

    fn build(size: usize, ptr_mask: Vec<u64>) -> Layout {
        let ptr_words = ptr_mask.last().map_or(0, |&w| {
            (ptr_mask.len() - 1) * 64 + 64 - w.leading_zeros() as usize
        });
        let period = size / 8;
        let tile = (ptr_words != 0 && 64 % period == 0).then(|| {
            let mut tile = ptr_mask[0];
            let mut filled = period;
            while filled < 64 {
                tile |= tile << filled;
                filled *= 2;
            }
            tile
        });
        let mut inner = LayoutInner {
            size,
            ptr_mask: ptr_mask.into_boxed_slice(),
            ptr_words,
            tile,
            fast: Fast::Zero,
        };
        inner.fast = inner.fast_path(1);
        Layout(Arc::new(inner))
    }

    /// Size of one element in bytes.
    pub fn size(&self) -> usize {
        self.0.size
    }

    /// True when the type holds at least one pointer.
    pub fn has_pointers(&self) -> bool {
        self.0.ptr_words != 0
    }

    /// True when word `i` of an element is a pointer.
    pub fn is_pointer(&self, i: usize) -> bool {
        i < self.0.ptr_words && self.0.ptr_mask[i / 64] >> (i % 64) & 1 != 0
    }

    #[inline(always)]
    pub(crate) fn inner(&self) -> &LayoutInner {
        &self.0
    }
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ptrs: Vec<usize> = (0..self.0.ptr_words)
            .filter(|&i| self.is_pointer(i))
            .collect();
        f.debug_struct("Layout")
            .field("size", &self.0.size)
            .field("pointer_words", &ptrs)
            .finish()
    }
}

impl LayoutInner {
    pub(crate) fn noscan(&self) -> bool {
        self.ptr_words == 0
    }

    /// Bytes of an array of `len` elements, or why there is no such array.
    #[inline]
    pub(crate) fn array_bytes(&self, len: usize) -> Result<usize, AllocError> {
        self.size
            .checked_mul(len)
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or(AllocError::SizeOverflow {
                elem_size: self.size,
                len,
            })
    }

    /// How an array of `len` elements is allocated (the layout caches `len == 1`).
    pub(crate) fn fast_path(&self, len: usize) -> Fast {
        let Ok(size) = self.array_bytes(len) else {
            return Fast::Large;
        };
        let noscan = self.noscan();
        if size == 0 {
            Fast::Zero
        } else if noscan && size < TINY_SIZE {
            Fast::Tiny { size }
        } else if size <= MAX_SMALL_SIZE {
            let spc = SpanClass::new(size_to_class(size), noscan);
            if !noscan && size > 64 * 8 {
                Fast::SmallWide { spc }
            } else {
                Fast::Small {
                    spc,
                    mask: if noscan { 0 } else { self.chunk(len, 0) },
                }
            }
        } else {
            Fast::Large
        }
    }

    /// One past the last pointer word of an array of `len` elements.
    pub(crate) fn pointer_extent(&self, len: usize) -> usize {
        if self.ptr_words == 0 || len == 0 {
            0
        } else {
            (len - 1) * (self.size / 8) + self.ptr_words
        }
    }

    /// Pointer bits of words `64k .. 64k + 64` of an array of `len` elements: the element
    /// bitmap tiled with the element's period.
    pub(crate) fn chunk(&self, len: usize, k: usize) -> u64 {
        let period = self.size / 8;
        let start = k * 64;
        let end = (start + 64).min(self.pointer_extent(len));
        if start >= end {
            return 0;
        }
        if let Some(tile) = self.tile {
            let n = end - start;
            return if n >= 64 { tile } else { tile & ((1 << n) - 1) };
        }
        let mut out = 0u64;
        let mut i = start;
        while i < end {
            let off = i % period;
            let take = (period - off).min(end - i);
            out |= self.mask_bits(off, take) << (i - start);
            i += take;
        }
        out
    }

    /// `n <= 64` bits of the element bitmap starting at word `off` (zero past the end).
    fn mask_bits(&self, off: usize, n: usize) -> u64 {
        let m = &self.ptr_mask;
        let (w, s) = (off / 64, off % 64);
        let lo = m.get(w).copied().unwrap_or(0) >> s;
        let hi = if s == 0 {
            0
        } else {
            m.get(w + 1).copied().unwrap_or(0) << (64 - s)
        };
        let bits = lo | hi;
        if n >= 64 {
            bits
        } else {
            bits & ((1u64 << n) - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bitmap_past_size() {
        assert_eq!(
            Layout::new(16, &[2]).unwrap_err(),
            LayoutError::PointerPastEnd { word: 2, size: 16 }
        );
        assert_eq!(
            Layout::from_bitmap(8, &[0b10]).unwrap_err(),
            LayoutError::PointerPastEnd { word: 1, size: 8 }
        );
        assert!(
            Layout::from_bitmap(12, &[0b10]).is_err(),
            "word 1 is only half inside"
        );
        assert_eq!(
            Layout::from_offsets(24, &[4]).unwrap_err(),
            LayoutError::MisalignedPointer { offset: 4 }
        );
        assert_eq!(
            Layout::from_bitmap(20, &[1]).unwrap_err(),
            LayoutError::NotWordMultiple { size: 20 }
        );
        assert!(Layout::from_bitmap(usize::MAX, &[]).is_err());
        assert!(
            Layout::from_bitmap(16, &[0, 0, 0]).is_ok(),
            "trailing zero words are fine"
        );
    }

    #[test]
    fn chunks_tile_the_element_bitmap() {
        // 3 words: pointer, scalar, pointer.
        let l = Layout::new(24, &[0, 2]).unwrap();
        let inner = l.inner();
        let a = inner.chunk(30, 0);
        for i in 0..64 {
            assert_eq!(a >> i & 1 == 1, i % 3 != 1, "word {i}");
        }
        let b = inner.chunk(30, 1);
        for i in 0..26 {
            // 30 elements = 90 words; the last pointer is word 89.
            assert_eq!(b >> i & 1 == 1, (64 + i) % 3 != 1, "word {}", 64 + i);
        }
        assert_eq!(b >> 26, 0, "nothing past the array");
        assert_eq!(inner.pointer_extent(30), 90);
    }

    #[test]
    fn chunks_agree_with_the_element_bitmap_for_every_period() {
        for words in 1..=70usize {
            for ptrs in [vec![0], vec![words - 1], (0..words).step_by(3).collect()] {
                let l = Layout::new(words * 8, &ptrs).unwrap();
                let inner = l.inner();
                assert_eq!(inner.tile.is_some(), 64 % words == 0, "{words} words");
                for len in [1, 2, 7, 64, 100] {
                    let extent = inner.pointer_extent(len);
                    for k in 0..extent.div_ceil(64) + 1 {
                        let chunk = inner.chunk(len, k);
                        for i in 0..64 {
                            let w = k * 64 + i;
                            let want = w < extent && l.is_pointer(w % words);
                            assert_eq!(
                                chunk >> i & 1 == 1,
                                want,
                                "{words} words {ptrs:?} x{len}, word {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn wide_elements_span_chunks() {
        let l = Layout::new(8 * 100, &[0, 63, 64, 99]).unwrap();
        let inner = l.inner();
        assert_eq!(inner.chunk(2, 0), 1 | 1 << 63);
        // words 64..128: element 0 words 64 and 99, element 1 word 0 (= word 100)
        assert_eq!(inner.chunk(2, 1), 1 | 1 << 35 | 1 << 36);
        assert_eq!(inner.pointer_extent(2), 200);
    }

    #[test]
    fn fast_paths() {
        assert!(matches!(Layout::noscan(0).inner().fast, Fast::Zero));
        assert!(matches!(
            Layout::noscan(15).inner().fast,
            Fast::Tiny { size: 15 }
        ));
        assert!(matches!(
            Layout::noscan(16).inner().fast,
            Fast::Small { .. }
        ));
        assert!(matches!(
            Layout::pointers(1).inner().fast,
            Fast::Small { mask: 1, .. }
        ));
        assert!(matches!(Layout::noscan(32769).inner().fast, Fast::Large));
        match Layout::pointers(65).inner().fast {
            Fast::SmallWide { .. } => {}
            f => panic!("{f:?}"),
        }
    }
}
