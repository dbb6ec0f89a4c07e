//! The page allocator: which runtime pages of the heap are in use, which are free, and
//! which free pages have been released to the OS.
//!
//! One bit per page (1 = in use), plus one bit per page for "scavenged" (released, so known
//! to be zero). Over the in-use bitmap sits a summary tree in the style of Go's
//! `mpagealloc.go`: every leaf summarises one 64-page bitmap word and every inner node its
//! two children as (free pages at the start, longest free run, free pages at the end).
//! Finding the lowest-addressed run of `n` free pages descends the tree once, so it costs
//! O(log pages) however many free runs there are; allocating or freeing `n` pages touches
//! `n / 64` leaves and their ancestors. Freeing coalesces for free: a run is just zero bits.
//!
//! Pages past the grown end of the heap read as in use, so no search ever returns them.
//! This structure has no locking of its own: it lives inside the heap lock.

const LEAF_PAGES: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Sum {
    start: u32,
    max: u32,
    end: u32,
}

impl Sum {
    fn of_word(used: u64) -> Sum {
        let free = !used;
        let max = if free == 0 {
            0
        } else if free == !0 {
            64
        } else {
            // Longest run of ones in `free`: erode every run by one bit per step.
            let (mut x, mut n) = (free, 0);
            while x != 0 {
                x &= x << 1;
                n += 1;
            }
            n
        };
        Sum {
            start: used.trailing_zeros(),
            max,
            end: used.leading_zeros(),
        }
    }

    fn merge(l: Sum, r: Sum, half: u32) -> Sum {
        Sum {
            start: if l.start == half {
                half + r.start
            } else {
                l.start
            },
            end: if r.end == half { half + l.end } else { r.end },
            max: l.max.max(r.max).max(l.end + r.start),
        }
    }
}

pub(crate) struct PageAlloc {
    /// Bit per page, 1 = in use (or not grown yet).
    used: Vec<u64>,
    /// Bit per page, 1 = released to the OS; meaningful for free pages only.
    scav: Vec<u64>,
    /// Summary tree, 1-based heap order; leaves at `leaves..2 * leaves`.
    tree: Vec<Sum>,
    leaves: usize,
    /// Pages `[0, grown)` belong to the heap.
    grown: usize,
    free_pages: usize,
    scav_free_pages: usize,
}

impl PageAlloc {
    pub(crate) fn new() -> PageAlloc {
        PageAlloc {
            used: Vec::new(),
            scav: Vec::new(),
            tree: vec![Sum::default(); 2],
            leaves: 1,
            grown: 0,
            free_pages: 0,
            scav_free_pages: 0,
        }
    }

    /// Pages managed so far.
    #[cfg(test)]
    pub(crate) fn grown(&self) -> usize {
        self.grown
    }

    /// Free pages (released or not).
    pub(crate) fn free_pages(&self) -> usize {
        self.free_pages
    }

    /// Free pages that are released to the OS.
    pub(crate) fn released_pages(&self) -> usize {
        self.scav_free_pages
    }

    /// Free pages at the end of the grown region, which a growth extends.
    pub(crate) fn free_at_end(&self) -> usize {
        let mut p = self.grown;
        while p > 0 && self.used[(p - 1) / 64] >> ((p - 1) % 64) & 1 == 0 {
            // Whole free words at a time, single pages at the run's edge.
            p -= if p.is_multiple_of(64) && self.used[p / 64 - 1] == 0 {
                64
            } else {
                1
            };
        }
        self.grown - p
    }

    /// Adds pages `[grown, new_grown)` to the heap, free and released (fresh from the OS).
    pub(crate) fn grow(&mut self, new_grown: usize) {
        assert!(new_grown >= self.grown);
        let words = new_grown.div_ceil(LEAF_PAGES);
        if words > self.used.len() {
            self.used.resize(words, !0);
            self.scav.resize(words, 0);
        }
        if words > self.leaves {
            let mut leaves = self.leaves;
            while leaves < words {
                leaves *= 2;
            }
            self.leaves = leaves;
            self.tree = vec![Sum::default(); 2 * leaves];
            for i in 0..leaves {
                self.tree[leaves + i] = Sum::of_word(self.used.get(i).copied().unwrap_or(!0));
            }
            for i in (1..leaves).rev() {
                self.tree[i] = self.merged(i);
            }
        }
        let (old, n) = (self.grown, new_grown - self.grown);
        self.grown = new_grown;
        self.set_range(old, n, false, Some(true));
        self.free_pages += n;
        self.scav_free_pages += n;
    }

    /// Lowest-addressed run of `n >= 1` free pages, if any.
    pub(crate) fn find(&self, n: usize) -> Option<usize> {
        let n32 = u32::try_from(n).ok()?;
        if n == 0 || self.tree[1].max < n32 {
            return None;
        }
        let (mut node, mut lo, mut span) = (1usize, 0usize, self.leaves * LEAF_PAGES);
        while node < self.leaves {
            let half = span / 2;
            let (l, r) = (self.tree[2 * node], self.tree[2 * node + 1]);
            if l.max >= n32 {
                node *= 2;
            } else if l.end + r.start >= n32 {
                return Some(lo + half - l.end as usize);
            } else {
                node = 2 * node + 1;
                lo += half;
            }
            span = half;
        }
        // A leaf with room: n <= 64 here (longer runs cross leaves and were found above).
        let used = self.used[node - self.leaves];
        (0..=LEAF_PAGES - n)
            .find(|&p| {
                let field = if n == 64 { !0 } else { ((1u64 << n) - 1) << p };
                used & field == 0
            })
            .map(|p| lo + p)
    }

    /// Marks the free run `[start, start + n)` in use. Returns how many of its pages were
    /// released (and so are zero).
    pub(crate) fn alloc_range(&mut self, start: usize, n: usize) -> usize {
        debug_assert!(start + n <= self.grown);
        let released = self.count(&self.scav, start, n);
        debug_assert_eq!(
            self.count(&self.used, start, n),
            0,
            "allocating pages in use"
        );
        self.set_range(start, n, true, Some(false));
        self.free_pages -= n;
        self.scav_free_pages -= released;
        released
    }

    /// Allocates the lowest run of `n` pages: `(first page, pages that were released)`.
    pub(crate) fn alloc(&mut self, n: usize) -> Option<(usize, usize)> {
        let start = self.find(n)?;
        Some((start, self.alloc_range(start, n)))
    }

    /// Frees `[start, start + n)`; `released` says whether its contents are known zero
    /// (just given back to the OS) or dirty.
    pub(crate) fn free(&mut self, start: usize, n: usize, released: bool) {
        debug_assert!(start + n <= self.grown);
        debug_assert_eq!(self.count(&self.used, start, n), n, "double free of pages");
        self.set_range(start, n, false, Some(released));
        self.free_pages += n;
        if released {
            self.scav_free_pages += n;
        }
    }

    /// The highest run of free, unreleased pages, at most `max` pages long (its top part).
    /// Scavenging from the top leaves the low pages, which first fit reuses, backed.
    pub(crate) fn find_unreleased_from_top(&self, max: usize) -> Option<(usize, usize)> {
        let candidates = |w: usize| !self.used[w] & !self.scav[w];
        let is_candidate = |p: usize| candidates(p / 64) >> (p % 64) & 1 != 0;
        let words = self.grown.div_ceil(LEAF_PAGES);
        let w = (0..words).rev().find(|&w| candidates(w) != 0)?;
        let top = w * LEAF_PAGES + LEAF_PAGES - candidates(w).leading_zeros() as usize;
        let mut start = top;
        while start > 0 && top - start < max && is_candidate(start - 1) {
            start -= 1;
        }
        Some((start, top - start))
    }

    fn count(&self, bits: &[u64], start: usize, n: usize) -> usize {
        let mut c = 0;
        let mut p = start;
        while p < start + n {
            let (w, s) = (p / 64, p % 64);
            let take = (64 - s).min(start + n - p);
            let field = if take == 64 {
                !0
            } else {
                ((1u64 << take) - 1) << s
            };
            c += (bits[w] & field).count_ones() as usize;
            p += take;
        }
        c
    }

    /// Sets the in-use bits of `[start, start + n)` to `used`, the scavenged bits to `scav`
    /// when given, and refreshes the summaries above the touched words.
    fn set_range(&mut self, start: usize, n: usize, used: bool, scav: Option<bool>) {
        if n == 0 {
            return;
        }
        let mut p = start;
        while p < start + n {
            let (w, s) = (p / 64, p % 64);
            let take = (64 - s).min(start + n - p);
            let field = if take == 64 {
                !0
            } else {
                ((1u64 << take) - 1) << s
            };
            if used {
                self.used[w] |= field;
            } else {
                self.used[w] &= !field;
            }
            match scav {
                Some(true) => self.scav[w] |= field,
                Some(false) => self.scav[w] &= !field,
                None => {}
            }
            p += take;
        }
        let (first, last) = (start / 64, (start + n - 1) / 64);
        for w in first..=last {
            self.tree[self.leaves + w] = Sum::of_word(self.used[w]);
        }
        let (mut a, mut b) = ((self.leaves + first) / 2, (self.leaves + last) / 2);
        while a >= 1 {
            for i in a..=b {
                self.tree[i] = self.merged(i);
            }
            a /= 2;
            b /= 2;
        }
    }

    fn merged(&self, i: usize) -> Sum {
        // Node i at depth d covers leaves/2^d leaves; find its width from its level.
        let level_width = self.leaves >> (usize::BITS - 1 - i.leading_zeros());
        let half = (level_width * LEAF_PAGES / 2) as u32;
        Sum::merge(self.tree[2 * i], self.tree[2 * i + 1], half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious implementation: a Vec<bool>, first fit by linear scan.
    struct Naive {
        used: Vec<bool>,
        scav: Vec<bool>,
    }

    impl Naive {
        fn find(&self, n: usize) -> Option<usize> {
            (0..self.used.len())
                .find(|&s| s + n <= self.used.len() && self.used[s..s + n].iter().all(|u| !u))
        }
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn first_fit_coalesce_and_growth_match_a_naive_model() {
        for seed in 1..=10u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut pa = PageAlloc::new();
            let mut naive = Naive {
                used: vec![],
                scav: vec![],
            };
            let mut live: Vec<(usize, usize)> = vec![];
            for step in 0..3000 {
                match rng.below(10) {
                    0 if pa.grown() < 20_000 => {
                        let g = pa.grown() + 1 + rng.below(700);
                        pa.grow(g);
                        naive.used.resize(g, false);
                        naive.scav.resize(g, true);
                    }
                    1..=5 => {
                        let n = 1 + if rng.below(4) == 0 {
                            rng.below(300)
                        } else {
                            rng.below(20)
                        };
                        let want = naive.find(n);
                        let got = pa.alloc(n);
                        assert_eq!(got.map(|g| g.0), want, "seed {seed} step {step} n {n}");
                        if let Some((s, rel)) = got {
                            let nrel = naive.scav[s..s + n].iter().filter(|&&b| b).count();
                            assert_eq!(rel, nrel);
                            for p in s..s + n {
                                naive.used[p] = true;
                                naive.scav[p] = false;
                            }
                            live.push((s, n));
                        }
                    }
                    _ if !live.is_empty() => {
                        let (s, n) = live.swap_remove(rng.below(live.len()));
                        let released = rng.below(3) == 0;
                        pa.free(s, n, released);
                        for p in s..s + n {
                            naive.used[p] = false;
                            naive.scav[p] = released;
                        }
                    }
                    _ => {}
                }
                let free = naive.used.iter().filter(|&&u| !u).count();
                assert_eq!(pa.free_pages(), free);
                let rel = (0..naive.used.len())
                    .filter(|&p| !naive.used[p] && naive.scav[p])
                    .count();
                assert_eq!(pa.released_pages(), rel);
            }
        }
    }

    #[test]
    fn scavenge_candidates_come_from_the_top() {
        let mut pa = PageAlloc::new();
        pa.grow(300);
        let (a, _) = pa.alloc(300).unwrap();
        assert_eq!(a, 0);
        assert_eq!(pa.find_unreleased_from_top(1000), None, "all in use");
        pa.free(10, 100, false); // dirty run 10..110
        pa.free(200, 50, false); // dirty run 200..250
        pa.free(120, 10, true); // released run: not a candidate
        assert_eq!(pa.find_unreleased_from_top(1000), Some((200, 50)));
        assert_eq!(pa.find_unreleased_from_top(8), Some((242, 8)));
        pa.alloc_range(200, 50);
        assert_eq!(pa.find_unreleased_from_top(1000), Some((10, 100)));
        pa.alloc_range(10, 100);
        pa.free(10, 100, true);
        assert_eq!(pa.find_unreleased_from_top(1000), None);
    }

    #[test]
    fn huge_runs_cross_many_leaves() {
        let mut pa = PageAlloc::new();
        pa.grow(100_000);
        assert_eq!(pa.alloc(3).unwrap().0, 0);
        assert_eq!(pa.alloc(70_000).unwrap().0, 3);
        assert_eq!(pa.alloc(30_000), None);
        assert_eq!(pa.alloc(29_997).unwrap().0, 70_003);
        pa.free(0, 3, false);
        assert_eq!(pa.free_at_end(), 0);
        pa.free(99_000, 1000, false);
        assert_eq!(pa.free_at_end(), 1000);
        pa.free(30_000, 69_000, false);
        assert_eq!(pa.free_at_end(), 70_000);
        pa.alloc_range(30_000, 70_000);
        assert_eq!(pa.alloc(4), None);
        assert_eq!(pa.alloc(3).unwrap(), (0, 0), "dirty pages are not released");
    }
}
