//! `fastpath`: the allocation fast path's length in instructions, at each layer, for the
//! 32-byte scan object of issue 17 (two pointer words, two scalars).
//!
//! `fastpath LAYER N` allocates N such objects through one layer and exits:
//! - `mcache`: `MCache::alloc` on a bare heap, a sweep cycle every 4 MiB (as the `alloc`
//!   criterion bench does), so refills and lazy sweeping are counted;
//! - `gc`: `Mutator::alloc` on the standalone heap, its collections included;
//! - `runtime`: `Gc::new` of a `#[derive(HeapType)]` struct in a goroutine.
//!
//! Instructions are counted under valgrind, which counts exactly and ignores the
//! machine's noise. For `mcache` and `gc`, by the difference of two runs, so that setup
//! cancels out:
//!
//! ```sh
//! for n in 1000000 11000000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/fastpath gc $n 2>&1 | grep refs
//! done   # (second - first) / 10,000,000 = instructions per allocation
//! ```
//!
//! For `runtime`, whose other threads (the monitor, the mark workers) run for as long as
//! valgrind makes the run last, from the goroutine's own cost: the inclusive count of its
//! closure (`callgrind_annotate --inclusive=yes`, the `FnOnce::call_once` line), over N.

use std::hint::black_box;
use std::process::ExitCode;

use minigo_alloc_core::{HeapConfig, MCache, MHeap};
use minigo_gc::{GcConfig, Heap, Layout, Roots, Tracer};
use minigo_runtime::{Gc, GcCell, HeapType, Runtime};

/// Bytes allocated between the `mcache` layer's sweep cycles: Go's minimum heap goal.
const BATCH_BYTES: u64 = 4 << 20;

struct NoRoots;

impl Roots for NoRoots {
    fn trace(&mut self, _: &mut Tracer<'_>) {}
}

#[derive(HeapType)]
struct Node<'gc> {
    left: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    a: u64,
    right: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    b: u64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(layer), Some(Ok(n))) = (args.first(), args.get(1).map(|s| s.parse::<u64>())) else {
        eprintln!("usage: fastpath mcache|gc|runtime N");
        return ExitCode::from(2);
    };
    let layout = Layout::new(32, &[0, 2]).expect("a valid layout");
    match layer.as_str() {
        "mcache" => {
            let heap = MHeap::new(HeapConfig::default()).expect("a heap");
            let mut cache = MCache::new(&heap);
            let mut left = n;
            while left > 0 {
                let k = left.min(BATCH_BYTES / 32);
                for _ in 0..k {
                    black_box(cache.alloc(&layout).expect("memory"));
                }
                left -= k;
                heap.finish_sweep();
                // SAFETY: no object allocated before this sweep cycle is used after it.
                unsafe { heap.start_sweep_cycle() };
                cache.release_all();
            }
        }
        "gc" => {
            let heap = Heap::new(GcConfig::default()).expect("a heap");
            let mut m = heap.mutator().expect("the heap's mutator");
            for _ in 0..n {
                black_box(m.alloc(&layout, &mut NoRoots).expect("memory"));
            }
        }
        "runtime" => {
            let r = Runtime::new().expect("a runtime").run(move |mu| {
                for _ in 0..n {
                    black_box(
                        Gc::new(
                            mu,
                            Node {
                                left: GcCell::new(None),
                                a: 1,
                                right: GcCell::new(None),
                                b: 2,
                            },
                        )
                        .expect("memory"),
                    );
                }
            });
            if let Err(e) = r {
                eprintln!("fastpath: {e}");
                return ExitCode::from(1);
            }
        }
        other => {
            eprintln!("fastpath: unknown layer {other:?}; the layers are mcache, gc, runtime");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
