//! minigo-benches: criterion benchmarks of minigo, grouped by layer, and the side-by-side
//! comparison with Go, Boehm GC and Box+mimalloc (`peers/`, `compare.sh`,
//! `src/bin/compare/`).
//!
//! - `benches/alloc.rs` — `alloc`: the mcache path for tiny, small (scan and noscan) and
//!   large objects, each beside the system allocator's malloc+free of the same size.
//! - `benches/gc.rs` — `mark` (throughput on a tree of 64-byte nodes and on pointer-dense
//!   arrays, 1 and 2 workers), `sweep` (spans per second), `gc_cycle` (full-collection
//!   pause as the live heap grows; binary-trees on the standalone heap).
//! - `benches/runtime.rs` — `scheduler` (spawn + exit, context switch, stop-the-world with
//!   10,000 parked goroutines) and `channels` (unbuffered ping-pong on one P and across two).
//! - `src/bin/fastpath.rs` — `fastpath`: allocates N 32-byte scan objects through one layer
//!   (mcache, standalone heap, runtime), for counting the fast path's instructions under
//!   callgrind.
//!
//! Run: `cargo bench -p minigo-benches` (one group: `cargo bench -p minigo-benches --bench
//! gc -- mark`). Numbers worth quoting come from these release builds, never from tests.
//! This library holds the heap builders the benchmarks share.

use minigo_gc::{Layout, Mutator, Roots, Tracer};

/// Roots kept in a vector: a shadow stack.
pub struct Stack(pub Vec<usize>);

impl Roots for Stack {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &a in &self.0 {
            t.mark(a);
        }
    }
}

/// Stores a pointer through the mutator's write function.
pub fn store(m: &mut Mutator, slot: usize, value: usize) {
    // SAFETY: callers pass a pointer word of a live object and a live object (or 0).
    unsafe { m.write(slot as *mut usize, value) }
}

/// Builds a complete binary tree of `depth` (2^(depth+1) - 1 nodes of `node`, whose first
/// two words are the children), keeping the part under construction on `roots`.
pub fn tree(m: &mut Mutator, node: &Layout, depth: u32, roots: &mut Stack) -> usize {
    let p = m
        .alloc(node, roots)
        .expect("allocating a tree node")
        .as_ptr() as usize;
    if depth > 0 {
        roots.0.push(p);
        let l = tree(m, node, depth - 1, roots);
        store(m, p, l);
        let r = tree(m, node, depth - 1, roots);
        store(m, p + 8, r);
        roots.0.pop();
    }
    p
}

/// Counts a tree's nodes (the Benchmarks Game's `check`).
pub fn check(p: usize) -> u64 {
    // SAFETY: `p` is a live tree node: two pointer words, both null for a leaf.
    let (l, r) = unsafe { (*(p as *const usize), *((p + 8) as *const usize)) };
    if l == 0 {
        1
    } else {
        1 + check(l) + check(r)
    }
}

/// Benchmarks Game binary-trees of depth `n` on a standalone heap: builds and checks
/// every tree, keeps the long-lived one. Returns the long-lived tree's check.
pub fn binary_trees(m: &mut Mutator, n: u32) -> u64 {
    let node = Layout::pointers(2);
    let mut roots = Stack(vec![]);
    let (min, max) = (4, n.max(6));
    let stretch = tree(m, &node, max + 1, &mut roots);
    assert_eq!(check(stretch), (1 << (max + 2)) - 1);
    let long = tree(m, &node, max, &mut roots);
    roots.0.push(long);
    let mut d = min;
    while d <= max {
        for _ in 0..1u64 << (max - d + min) {
            let t = tree(m, &node, d, &mut roots);
            assert_eq!(check(t), (1 << (d + 1)) - 1);
        }
        d += 2;
    }
    check(long)
}
