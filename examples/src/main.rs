//! The `minigo` CLI. Until the runtime and its workloads land, it runs a small allocator
//! demo: build a heap, allocate a few shapes of object, sweep with nothing marked, and print
//! the heap's statistics at each step.

use minigo_alloc_core::{HeapConfig, Layout, MCache, MHeap, MemStats};

fn print(stage: &str, m: &MemStats) {
    println!(
        "{stage:<28} HeapAlloc {:>10}  HeapInuse {:>10}  HeapIdle {:>10}  HeapReleased {:>10}  HeapObjects {:>8}  Mallocs {:>8}  Frees {:>8}",
        m.heap_alloc, m.heap_inuse, m.heap_idle, m.heap_released, m.heap_objects, m.mallocs, m.frees
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let heap = MHeap::new(HeapConfig::default())?;
    let mut cache = MCache::new(&heap);
    let node = Layout::new(32, &[0, 1])?;
    let bytes = Layout::noscan(10);
    for _ in 0..100_000 {
        cache.alloc(&node)?;
        cache.alloc(&bytes)?;
    }
    cache.alloc_array(&Layout::pointers(1), 100_000)?;
    cache.flush_stats();
    print("after 200,001 allocations", &heap.mem_stats());

    cache.release_all();
    heap.start_sweep_cycle();
    heap.finish_sweep();
    print("after a sweep, none marked", &heap.mem_stats());

    heap.scavenge_all();
    print("after scavenging", &heap.mem_stats());
    Ok(())
}
