//! Goroutines and channels over the garbage-collected heap: a producer sends jobs, a pool of
//! workers builds a binary tree on the heap for each (`Gc`, `GcCell`, `#[derive(HeapType)]`),
//! checks it and sends back its node count, and `main` gathers the results. The trees
//! become garbage as soon as a worker is done with them; the statistics at the end say
//! how many collections that took.
//!
//! `cargo run --release -p minigo-runtime --example pipeline -- [JOBS=2000] [DEPTH=12] [WORKERS=8]`

use minigo_runtime::{
    gc, go, read_mem_stats, Chan, Gc, GcCell, HeapType, Mutation, Runtime, WaitGroup,
};

/// A tree node: two children that are set after the node is made (so `GcCell`s, whose
/// stores go through the write barrier) and a scalar.
#[derive(HeapType)]
struct Node<'gc> {
    left: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    depth: u64,
}

fn build(mu: Mutation<'_>, depth: u64) -> Gc<'_, Node<'_>> {
    let n = Gc::new(
        mu,
        Node {
            left: GcCell::new(None),
            right: GcCell::new(None),
            depth,
        },
    )
    .expect("the heap has no max_heap here");
    if depth > 0 {
        n.left.set(Some(build(mu, depth - 1)));
        n.right.set(Some(build(mu, depth - 1)));
    }
    n
}

fn count(n: Gc<Node>) -> u64 {
    let children = [n.left.get(), n.right.get()];
    1 + children.into_iter().flatten().map(count).sum::<u64>()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let jobs: u64 = args.next().map_or(2000, |s| s.parse().expect("JOBS"));
    let depth: u64 = args.next().map_or(12, |s| s.parse().expect("DEPTH"));
    let workers: u64 = args.next().map_or(8, |s| s.parse().expect("WORKERS"));

    Runtime::builder()
        .build()
        .expect("a runtime")
        .run(move |mu| {
            let work: Chan<u64> = Chan::new(16);
            let results: Chan<u64> = Chan::new(16);

            let producer = work.clone();
            go(move || {
                for _ in 0..jobs {
                    producer.send(depth);
                }
                producer.close();
            });

            let wg = WaitGroup::new();
            for _ in 0..workers {
                wg.add(1);
                let (work, results, wg) = (work.clone(), results.clone(), wg.clone());
                // `mu.go`: the goroutine allocates, with the run's token.
                mu.go(move || {
                    for d in work.iter() {
                        let tree = build(mu, d);
                        assert_eq!(tree.depth, d);
                        results.send(count(tree));
                    }
                    wg.done();
                });
            }
            let closer = results.clone();
            go(move || {
                wg.wait();
                closer.close();
            });

            let nodes: u64 = results.iter().sum();
            assert_eq!(nodes, jobs * ((1 << (depth + 1)) - 1));
            gc();
            let s = read_mem_stats();
            println!("{jobs} trees of depth {depth} by {workers} goroutines: {nodes} nodes");
            println!(
                "allocated {} MiB; {} collections, {:.3} ms of pauses; {} KiB live after gc()",
                s.total_alloc >> 20,
                s.num_gc,
                s.pause_total_ns as f64 / 1e6,
                s.heap_alloc >> 10
            );
        })
        .expect("the run");
}
