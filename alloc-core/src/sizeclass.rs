//! Size classes: the rounding of small object sizes, and the span size of each class.
//!
//! The table is the one Go uses (68 entries including the dummy class 0), produced by
//! [`generate`], which implements the rule of Go's `mksizeclasses.go`, and checked in as
//! `sizeclasses.rs`. A test regenerates the source and compares it with the checked-in
//! file and with Go's published table; `MINIGO_BLESS=1 cargo test -p minigo-alloc-core
//! sizeclass` rewrites the file when the rule deliberately changes.
//!
//! Lookup is O(1): sizes up to 1024 bytes index a table in 8-byte steps, larger ones a table
//! in 128-byte steps (the "fatten" pass keeps every class above 1024 a multiple of 128 so
//! the coarse table is exact).

pub use crate::sizeclasses::{
    CLASS_TO_DIVMAGIC, CLASS_TO_NELEMS, CLASS_TO_NPAGES, CLASS_TO_SIZE, SIZE_TO_CLASS128,
    SIZE_TO_CLASS8,
};

/// log2 of the runtime page.
pub const PAGE_SHIFT: usize = 13;
/// The runtime's page: 8 KiB, whatever the OS page is.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Number of size classes, including the dummy class 0 (large objects).
pub const NUM_SIZE_CLASSES: usize = 68;
/// Size class x {scan, noscan}.
pub const NUM_SPAN_CLASSES: usize = NUM_SIZE_CLASSES * 2;
/// The largest small object; anything larger gets its own span.
pub const MAX_SMALL_SIZE: usize = 32768;
/// Granularity of the fine lookup table.
pub const SMALL_SIZE_DIV: usize = 8;
/// Limit of the fine lookup table.
pub const SMALL_SIZE_MAX: usize = 1024;
/// Granularity of the coarse lookup table, and of every class above `SMALL_SIZE_MAX`.
pub const LARGE_SIZE_DIV: usize = 128;
/// Pointer-free objects smaller than this are packed into blocks of this size.
pub const TINY_SIZE: usize = 16;
/// The class of a tiny block.
pub const TINY_SIZE_CLASS: u8 = 2;
/// The most objects any span holds (class 1: 8-byte objects in one page).
pub const MAX_OBJS_PER_SPAN: usize = PAGE_SIZE / 8;
/// Every object is aligned to at least this.
pub const MIN_ALIGN: usize = 8;

/// Rounds a small size (1..=32768) to its size class.
#[inline(always)]
pub fn size_to_class(size: usize) -> u8 {
    debug_assert!(size > 0 && size <= MAX_SMALL_SIZE);
    if size <= SMALL_SIZE_MAX {
        SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)]
    } else {
        SIZE_TO_CLASS128[(size - SMALL_SIZE_MAX).div_ceil(LARGE_SIZE_DIV)]
    }
}

/// Object size of a class.
#[inline(always)]
pub fn class_size(class: u8) -> usize {
    CLASS_TO_SIZE[class as usize] as usize
}

/// The alignment every object of `class` gets: the largest power of two dividing its size
/// (capped at a page), since objects sit at multiples of the size from a page-aligned base.
pub fn class_align(class: u8) -> usize {
    let size = class_size(class);
    (1usize << size.trailing_zeros()).min(PAGE_SIZE)
}

/// A span class: size class x {scan, noscan}, encoded as Go does (`class << 1 | noscan`).
/// Class 0 stands for a large object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct SpanClass(pub u8);

impl SpanClass {
    /// The span class of `size_class` objects, with or without pointers.
    #[inline(always)]
    pub const fn new(size_class: u8, noscan: bool) -> Self {
        SpanClass(size_class << 1 | noscan as u8)
    }

    /// The size class (0 for large objects).
    #[inline(always)]
    pub const fn size_class(self) -> u8 {
        self.0 >> 1
    }

    /// True when objects of this class hold no pointers and are never scanned.
    #[inline(always)]
    pub const fn noscan(self) -> bool {
        self.0 & 1 != 0
    }

    /// Index into per-span-class arrays.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// One class as the generator produces it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClassSpec {
    /// Object size in bytes.
    pub size: usize,
    /// Span size in pages.
    pub npages: usize,
}

impl ClassSpec {
    /// Objects per span.
    pub fn objects(&self) -> usize {
        self.npages * PAGE_SIZE / self.size
    }
}

/// Generates the size classes by Go's rule (`makeClasses` in `mksizeclasses.go`):
///
/// 1. Walk candidate sizes from 8 to 32768 in steps of `align`. `align` starts at 8 and only
///    changes at powers of two: 16 from 32 up, `size/8` from 128 up (round-up waste stays
///    under 12.5%), 256 from 2048 up.
/// 2. Give each candidate the fewest pages whose leftover is at most 1/8 of the span (tail
///    waste at most 12.5%).
/// 3. A candidate with the same page count and object count as the previous class replaces
///    (grows) it instead of adding a class.
/// 4. "Fatten": grow each class to the largest size that fits the same number of objects in
///    the same pages, rounded down to a multiple of 128 so the coarse lookup stays exact.
///
/// Class 0 is a placeholder for large objects. Panics if the count is not 68, as Go's does.
///
/// For the tests that check the generated table; not part of the allocator's API.
#[doc(hidden)]
pub fn generate() -> Vec<ClassSpec> {
    let mut classes = vec![ClassSpec { size: 0, npages: 0 }];
    let mut align = MIN_ALIGN;
    let mut size = align;
    while size <= MAX_SMALL_SIZE {
        if size.is_power_of_two() {
            if size >= 2048 {
                align = 256;
            } else if size >= 128 {
                align = size / 8;
            } else if size >= 32 {
                align = 16;
            }
        }
        assert!(align.is_power_of_two());
        let mut alloc = PAGE_SIZE;
        while alloc % size > alloc / 8 {
            alloc += PAGE_SIZE;
        }
        let npages = alloc / PAGE_SIZE;
        let prev = *classes.last().expect("class 0 is always there");
        if classes.len() > 1 && npages == prev.npages && alloc / size == alloc / prev.size {
            classes.last_mut().expect("non-empty").size = size;
        } else {
            classes.push(ClassSpec { size, npages });
        }
        size += align;
    }
    for c in classes.iter_mut().skip(1) {
        let span = c.npages * PAGE_SIZE;
        let fat = (span / (span / c.size)) & !(LARGE_SIZE_DIV - 1);
        if fat > c.size {
            c.size = fat;
        }
    }
    assert_eq!(
        classes.len(),
        NUM_SIZE_CLASSES,
        "number of size classes has changed"
    );
    classes
}

/// Go's `computeDivMagic`: `n / size == (n * magic) >> 32` for every offset in a span.
pub fn div_magic(size: usize) -> u32 {
    (u32::MAX as usize)
        .checked_div(size)
        .map_or(0, |q| (q + 1) as u32)
}

/// Renders the checked-in `sizeclasses.rs` from a generated table.
pub fn render(classes: &[ClassSpec]) -> String {
    use std::fmt::Write;
    let smallest = |min: usize| {
        classes
            .iter()
            .position(|c| c.size >= min)
            .expect("MAX_SMALL_SIZE is a class")
    };
    let mut s = String::new();
    s.push_str(
        "// Code generated by `minigo_alloc_core::sizeclass::render(&generate())`. DO NOT EDIT.\n",
    );
    s.push_str("// Regenerate: MINIGO_BLESS=1 cargo test -p minigo-alloc-core sizeclass\n//\n");
    s.push_str(
        "// class  bytes/obj  bytes/span  pages  objects  tail waste  max waste  min align\n",
    );
    for (i, c) in classes.iter().enumerate().skip(1) {
        let span = c.npages * PAGE_SIZE;
        let objs = c.objects();
        let tail = span - objs * c.size;
        let prev = classes[i - 1].size;
        let max_waste = ((c.size - prev - 1) * objs + tail) as f64 / span as f64 * 100.0;
        let align = (1usize << c.size.trailing_zeros()).min(PAGE_SIZE);
        writeln!(
            s,
            "// {i:5} {:10} {:11} {:6} {:8} {tail:11} {max_waste:9.2}% {align:10}",
            c.size, span, c.npages, objs
        )
        .unwrap();
    }
    s.push('\n');
    let row = |s: &mut String, name: &str, ty: &str, vals: &[usize]| {
        writeln!(s, "/// Generated; see the table above.\n#[rustfmt::skip]\npub static {name}: [{ty}; {}] = [", vals.len()).unwrap();
        for chunk in vals.chunks(16) {
            let items: Vec<String> = chunk.iter().map(|v| v.to_string()).collect();
            writeln!(s, "    {},", items.join(", ")).unwrap();
        }
        s.push_str("];\n\n");
    };
    let sizes: Vec<usize> = classes.iter().map(|c| c.size).collect();
    let pages: Vec<usize> = classes.iter().map(|c| c.npages).collect();
    let nelems: Vec<usize> = classes
        .iter()
        .map(|c| if c.size == 0 { 0 } else { c.objects() })
        .collect();
    let magic: Vec<usize> = classes.iter().map(|c| div_magic(c.size) as usize).collect();
    let class8: Vec<usize> = (0..=SMALL_SIZE_MAX / SMALL_SIZE_DIV)
        .map(|i| smallest(i * SMALL_SIZE_DIV))
        .collect();
    let class128: Vec<usize> = (0..=(MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV)
        .map(|i| smallest(SMALL_SIZE_MAX + i * LARGE_SIZE_DIV))
        .collect();
    row(&mut s, "CLASS_TO_SIZE", "u16", &sizes);
    row(&mut s, "CLASS_TO_NPAGES", "u8", &pages);
    row(&mut s, "CLASS_TO_NELEMS", "u16", &nelems);
    row(&mut s, "CLASS_TO_DIVMAGIC", "u32", &magic);
    row(&mut s, "SIZE_TO_CLASS8", "u8", &class8);
    row(&mut s, "SIZE_TO_CLASS128", "u8", &class128);
    s.truncate(s.len() - 1);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = include_str!("sizeclasses.rs");

    #[test]
    fn sizeclass_source_matches_generator() {
        let fresh = render(&generate());
        if std::env::var_os("MINIGO_BLESS").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sizeclasses.rs");
            std::fs::write(path, &fresh).unwrap();
            return;
        }
        assert!(
            fresh == CHECKED_IN,
            "sizeclasses.rs is stale; rerun with MINIGO_BLESS=1"
        );
    }

    #[test]
    fn sizeclass_table_matches_go() {
        let tsv = include_str!("../tests/data/go-sizeclasses.tsv");
        let classes = generate();
        let mut rows = 0;
        for line in tsv.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let class: usize = f[0].parse().unwrap();
            let c = classes[class];
            let (size, span, pages, objs, tail) = (
                f[1].parse::<usize>().unwrap(),
                f[2].parse::<usize>().unwrap(),
                f[3].parse::<usize>().unwrap(),
                f[4].parse::<usize>().unwrap(),
                f[5].parse::<usize>().unwrap(),
            );
            assert_eq!(
                (c.size, c.npages * PAGE_SIZE, c.npages),
                (size, span, pages),
                "class {class}"
            );
            assert_eq!(c.objects(), objs, "class {class}");
            assert_eq!(CLASS_TO_NELEMS[class] as usize, objs, "class {class}");
            assert_eq!(span - objs * size, tail, "class {class}");
            let prev = classes[class - 1].size;
            let waste = ((size - prev - 1) * objs + tail) as f64 / span as f64 * 100.0;
            assert_eq!(format!("{waste:.2}"), f[6], "class {class}");
            assert_eq!(class_align(class as u8).to_string(), f[7], "class {class}");
            rows += 1;
        }
        assert_eq!(rows, NUM_SIZE_CLASSES - 1);
    }

    #[test]
    fn sizeclass_lookup_is_the_smallest_fitting_class() {
        for size in 1..=MAX_SMALL_SIZE {
            let c = size_to_class(size);
            assert!(class_size(c) >= size, "size {size} -> class {c}");
            assert!(
                c == 1 || class_size(c - 1) < size,
                "size {size} -> class {c} not smallest"
            );
        }
    }

    #[test]
    fn sizeclass_div_magic_is_exact_over_every_span_offset() {
        for class in 1..NUM_SIZE_CLASSES {
            let size = CLASS_TO_SIZE[class] as u64;
            let magic = CLASS_TO_DIVMAGIC[class] as u64;
            let span = CLASS_TO_NPAGES[class] as u64 * PAGE_SIZE as u64;
            for n in 0..=span {
                assert_eq!(n / size, (n * magic) >> 32, "class {class} offset {n}");
            }
        }
    }

    #[test]
    fn span_class_encoding() {
        let s = SpanClass::new(5, true);
        assert_eq!((s.size_class(), s.noscan(), s.index()), (5, true, 11));
        assert_eq!(
            SpanClass::new(TINY_SIZE_CLASS, true).0,
            5,
            "Go's tinySpanClass"
        );
    }
}
