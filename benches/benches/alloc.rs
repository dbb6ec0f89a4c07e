//! `alloc`: ns per allocation through an mcache, steady state, refills included, beside the
//! system allocator's malloc+free of the same size.
//!
//! minigo's side allocates in batches of 4 MiB (Go's minimum heap goal: how far a program
//! with a small live heap gets between collections); between batches, outside the timing, a
//! collection that finds nothing live starts a sweep cycle, so the next batch refills its
//! spans by sweeping them lazily (clearing the dead slots) inside the timing, as a program
//! does between collections. minigo's objects come back zeroed. The system side is
//! `std::alloc::alloc` + `dealloc` of the same layout, not zeroed: the allocator's best case
//! (a thread-cache hit).
//!
//! - `alloc/tiny/{minigo,system}/8`: 8-byte pointer-free objects (minigo's tiny allocator).
//! - `alloc/scan/minigo/{16..512}`: small objects with every other word a pointer.
//! - `alloc/noscan/minigo/{16..65536}`: pointer-free objects; 64 KiB is a large object.
//! - `alloc/system/system/{16..65536}`: malloc+free of the same sizes.

use std::alloc::{alloc, dealloc, Layout as StdLayout};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap};

const BATCH_BYTES: usize = 4 << 20;

fn minigo(c: &mut Criterion, group: &str, size: usize, layout: Layout) {
    let heap = MHeap::new(HeapConfig::default()).unwrap();
    let mut cache = MCache::new(&heap);
    let batch = (BATCH_BYTES / size.max(16)).max(64);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("minigo", size), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(batch as u64);
                let t = Instant::now();
                for _ in 0..n {
                    black_box(cache.alloc(&layout).unwrap());
                }
                total += t.elapsed();
                left -= n;
                heap.finish_sweep();
                // SAFETY: every object used after this sweep cycle was marked before it.
                unsafe { heap.start_sweep_cycle() };
                cache.release_all();
            }
            total
        })
    });
    g.finish();
}

fn system(c: &mut Criterion, group: &str, size: usize) {
    let layout = StdLayout::from_size_align(size, 8).unwrap();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("system", size), |b| {
        b.iter(|| {
            // SAFETY: a non-zero-size layout, freed with the same layout.
            unsafe {
                let p = alloc(layout);
                black_box(p);
                dealloc(p, layout);
            }
        })
    });
    g.finish();
}

fn scan_layout(size: usize) -> Layout {
    // Every other word a pointer: bits to write, as for a typical node.
    let words: Vec<usize> = (0..size / 8).step_by(2).collect();
    Layout::new(size, &words).unwrap()
}

fn bench_alloc(c: &mut Criterion) {
    minigo(c, "alloc/tiny", 8, Layout::noscan(8));
    system(c, "alloc/tiny", 8);
    for size in [16, 32, 64, 128, 512] {
        minigo(c, "alloc/scan", size, scan_layout(size));
        minigo(c, "alloc/noscan", size, Layout::noscan(size));
        system(c, "alloc/system", size);
    }
    for size in [4096, 65536] {
        minigo(c, "alloc/noscan", size, Layout::noscan(size));
        system(c, "alloc/system", size);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = bench_alloc
}
criterion_main!(benches);
