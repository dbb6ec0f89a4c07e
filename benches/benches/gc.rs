//! The collector's benchmarks.
//!
//! - `mark/tree_64B/{1,2}`: marking a 256 MiB complete binary tree of 64-byte nodes (two
//!   pointers, six scalars), 1 and 2 workers; throughput in bytes marked.
//! - `mark/list_32B/{1,2}`: marking a 256 MiB linked list of 32-byte nodes (one pointer),
//!   linked in allocation order; throughput in bytes.
//! - `mark/pointer_arrays/{1,2}`: marking 256 MiB of 128 KiB arrays whose every word points
//!   into another array; throughput in bytes.
//! - Each `mark` benchmark again with `_noprefetch`: the markers' prefetch FIFO off
//!   (`GcConfig::mark_prefetch`, `GODEBUG=gcprefetch=0`).
//! - `sweep/{empty,half}`: sweeping 64 MiB of 64-byte objects after a collection that kept
//!   none or every other one; throughput in spans.
//! - `gc_cycle/pause/{16,64,256,1024}`: a full collection's stop-the-world pause as the live
//!   heap (a tree of 64-byte nodes, MiB) grows; 2 workers.
//! - `gc_cycle/binary_trees_19`: the Benchmarks Game program, one P's worth of marking
//!   (concurrent cycles, as a VM gets them).
//!
//! The mark, sweep and pause benchmarks run stop-the-world cycles (`GcConfig::
//! stop_the_world`); concurrent cycles' pauses are measured by the CLI's workloads.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use minigo_alloc_core::{HeapConfig, Layout as ALayout, MCache, MHeap};
use minigo_benches::{binary_trees, store, tree, Stack};
use minigo_gc::{GcConfig, Heap, Layout, Mutator};

/// No pacing, and stop-the-world cycles: marking runs on exactly `workers` threads with
/// nothing beside it, which is what the mark and pause figures measure.
fn quiet(workers: usize) -> GcConfig {
    GcConfig {
        gogc: None,
        mark_workers: workers,
        stop_the_world: true,
        ..GcConfig::default()
    }
}

/// `quiet`, with the markers' prefetching on or off.
fn quiet_prefetch(workers: usize, prefetch: bool) -> GcConfig {
    GcConfig {
        mark_prefetch: prefetch,
        ..quiet(workers)
    }
}

/// The benchmark's name with `_noprefetch` when prefetching is off.
fn named(name: &str, prefetch: bool) -> String {
    match prefetch {
        true => name.to_string(),
        false => format!("{name}_noprefetch"),
    }
}

/// Times `iters` forced collections of whatever `roots` hold; returns the mark time.
fn mark_time(m: &mut Mutator, roots: &mut Stack, iters: u64) -> Duration {
    (0..iters)
        .map(|_| Duration::from_nanos(m.collect(roots).mark_ns))
        .sum()
}

fn bench_mark(c: &mut Criterion) {
    let mut g = c.benchmark_group("mark");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let node = Layout::new(64, &[0, 1]).unwrap();
    for (prefetch, workers) in [(true, 1), (false, 1), (true, 2), (false, 2)] {
        let heap = Heap::new(quiet_prefetch(workers, prefetch)).unwrap();
        let mut m = heap.mutator().unwrap();
        let mut roots = Stack(vec![]);
        let root = tree(&mut m, &node, 21, &mut roots);
        roots.0.push(root);
        let live = m.collect(&mut roots).heap_live;
        g.throughput(Throughput::Bytes(live));
        g.bench_function(
            BenchmarkId::new(named("tree_64B", prefetch), workers),
            |b| b.iter_custom(|iters| mark_time(&mut m, &mut roots, iters)),
        );
    }
    let link = Layout::new(32, &[0]).unwrap();
    for (prefetch, workers) in [(true, 1), (false, 1), (true, 2), (false, 2)] {
        let heap = Heap::new(quiet_prefetch(workers, prefetch)).unwrap();
        let mut m = heap.mutator().unwrap();
        let mut roots = Stack(vec![0]);
        for _ in 0..(256 << 20) / 32 {
            let p = m.alloc(&link, &mut roots).unwrap().as_ptr() as usize;
            store(&mut m, p, roots.0[0]);
            roots.0[0] = p;
        }
        let live = m.collect(&mut roots).heap_live;
        g.throughput(Throughput::Bytes(live));
        g.bench_function(
            BenchmarkId::new(named("list_32B", prefetch), workers),
            |b| b.iter_custom(|iters| mark_time(&mut m, &mut roots, iters)),
        );
    }
    let elems = 16 * 1024;
    for (prefetch, workers) in [(true, 1), (false, 1), (true, 2), (false, 2)] {
        let heap = Heap::new(quiet_prefetch(workers, prefetch)).unwrap();
        let mut m = heap.mutator().unwrap();
        let mut roots = Stack(vec![]);
        let arrays: Vec<usize> = (0..2048)
            .map(|_| {
                let a = m
                    .alloc_array(&Layout::pointers(1), elems, &mut roots)
                    .unwrap()
                    .as_ptr() as usize;
                roots.0.push(a);
                a
            })
            .collect();
        let mut seed = 7u64;
        for &a in &arrays {
            for i in 0..elems {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let target =
                    arrays[(seed >> 33) as usize % arrays.len()] + (seed as usize % elems) * 8;
                store(&mut m, a + i * 8, target);
            }
        }
        roots.0.truncate(1);
        let live = m.collect(&mut roots).heap_live;
        g.throughput(Throughput::Bytes(live));
        g.bench_function(
            BenchmarkId::new(named("pointer_arrays", prefetch), workers),
            |b| b.iter_custom(|iters| mark_time(&mut m, &mut roots, iters)),
        );
    }
    g.finish();
}

fn bench_sweep(c: &mut Criterion) {
    let mut g = c.benchmark_group("sweep");
    let heap = MHeap::new(HeapConfig::default()).unwrap();
    let mut cache = MCache::new(&heap);
    let layout = ALayout::new(64, &[0]).unwrap();
    let objects = (64 << 20) / 64;
    let spans = objects / 128;
    g.throughput(Throughput::Elements(spans as u64));
    for (name, keep) in [("empty", usize::MAX), ("half", 2)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    heap.finish_sweep();
                    let objs: Vec<usize> = (0..objects)
                        .map(|_| cache.alloc(&layout).unwrap().as_ptr() as usize)
                        .collect();
                    heap.finish_sweep();
                    for (i, &o) in objs.iter().enumerate() {
                        if i % keep == 0 && keep != usize::MAX {
                            // SAFETY: single thread; no span changes while marking.
                            unsafe { heap.find_object_unlocked(o) }.unwrap().try_mark();
                        }
                    }
                    // SAFETY: every object used after this sweep cycle was marked before it.
                    unsafe { heap.start_sweep_cycle() };
                    cache.release_all();
                    let t = Instant::now();
                    heap.finish_sweep();
                    total += t.elapsed();
                    // Free what survived, untimed, for the next round.
                    // SAFETY: every object used after this sweep cycle was marked before it.
                    unsafe { heap.start_sweep_cycle() };
                    heap.finish_sweep();
                }
                total
            })
        });
    }
    g.finish();
}

fn bench_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("gc_cycle");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let node = Layout::new(64, &[0, 1]).unwrap();
    for (mib, depth) in [(16, 17), (64, 19), (256, 21), (1024, 23)] {
        let heap = Heap::new(quiet(2)).unwrap();
        let mut m = heap.mutator().unwrap();
        let mut roots = Stack(vec![]);
        let root = tree(&mut m, &node, depth, &mut roots);
        roots.0.push(root);
        g.bench_function(BenchmarkId::new("pause", mib), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| Duration::from_nanos(m.collect(&mut roots).pause_ns))
                    .sum()
            })
        });
    }
    g.bench_function("binary_trees_19", |b| {
        b.iter(|| {
            let heap = Heap::new(GcConfig {
                mark_workers: 1,
                ..GcConfig::default()
            })
            .unwrap();
            let mut m = heap.mutator().unwrap();
            black_box(binary_trees(&mut m, 19))
        })
    });
    g.finish();
}

criterion_group!(benches, bench_mark, bench_sweep, bench_cycle);
criterion_main!(benches);
