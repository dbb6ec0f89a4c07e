//! `gc/examples/cons.rs` on the typed layer: the same interpreter in miniature (cons cells
//! by the million, lists built, summed, kept or dropped, one collection and the heap's
//! statistics at the end), on an `Arena` instead of the raw standalone heap.
//!
//! `cargo run --release -p minigo-runtime --example arena -- [LISTS=5000] [LEN=1000]`
//!
//! What changes for the embedder: no value encoding to design (`Value` is a Rust enum),
//! no layout to write (`#[derive(HeapType)]`), no `Roots` (the root object is the only
//! root, and collections run between mutations, when no other handle exists), and no
//! `unsafe`. Each list is built in a mutation of its own, so the arena can collect between
//! lists.

use std::time::Instant;

use minigo_runtime::gc_crate::GcConfig;
use minigo_runtime::{Arena, ArenaMutation, Gc, GcCell, HeapType, Rootable};

/// A tagged value, as an interpreter's.
#[derive(HeapType, Clone, Copy)]
enum Value<'gc> {
    Nil,
    Int(u32),
    Cons(Gc<'gc, Cons<'gc>>),
}

#[derive(HeapType)]
struct Cons<'gc> {
    car: Value<'gc>,
    cdr: Value<'gc>,
}

/// The root: the lists kept, as a list.
#[derive(HeapType)]
struct Vm<'gc> {
    kept: GcCell<Option<Gc<'gc, Cons<'gc>>>>,
}

struct VmRoot;
impl Rootable for VmRoot {
    type Root<'gc> = Vm<'gc>;
}

fn cons<'gc>(mu: ArenaMutation<'gc>, car: Value<'gc>, cdr: Value<'gc>) -> Gc<'gc, Cons<'gc>> {
    Gc::new(mu, Cons { car, cdr }).unwrap_or_else(|e| panic!("cons: {e}"))
}

/// The sum of a list of ints.
fn sum(mut list: Value<'_>) -> u64 {
    let mut s = 0;
    while let Value::Cons(c) = list {
        match c.car {
            Value::Int(i) => s += i as u64,
            _ => panic!("not an int"),
        }
        list = c.cdr;
    }
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lists: u32 = args.next().map_or(5000, |s| s.parse().expect("LISTS"));
    let len: u32 = args.next().map_or(1000, |s| s.parse().expect("LEN"));

    let config = GcConfig::from_env().expect("GOGC/GOMEMLIMIT/GODEBUG");
    let mut arena = Arena::<VmRoot>::new(config, |_| Vm {
        kept: GcCell::new(None),
    })
    .expect("an arena");
    let start = Instant::now();

    for l in 0..lists {
        arena.mutate(|mu, vm| {
            let mut list = Value::Nil;
            for i in 0..len {
                list = Value::Cons(cons(mu, Value::Int(i), list));
            }
            assert_eq!(sum(list), len as u64 * (len as u64 - 1) / 2);
            if l % 100 == 0 {
                let kept = vm.kept.get().map_or(Value::Nil, Value::Cons);
                vm.kept.set(Some(cons(mu, list, kept)));
            }
        });
    }
    let elapsed = start.elapsed();
    let record = arena.collect();

    let (kept, total) = arena.mutate(|_, vm| {
        let (mut kept, mut total) = (0, 0);
        let mut cursor = vm.kept.get();
        while let Some(c) = cursor {
            total += sum(c.car);
            kept += 1;
            cursor = match c.cdr {
                Value::Cons(next) => Some(next),
                _ => None,
            };
        }
        (kept, total)
    });
    assert_eq!(kept, lists.div_ceil(100));
    assert_eq!(total, kept as u64 * (len as u64 * (len as u64 - 1) / 2));

    // What is left is exactly what the root reaches: the kept lists' cells and the cells
    // that hold them, and the root. (`Value::Int` leaves a word no field holds; were it not
    // zeroed when a cell enters the heap, its stale register contents would point into
    // earlier lists, and this count would be all 5 million.)
    let s = arena.mem_stats();
    assert_eq!(s.heap_objects, kept as u64 * (len as u64 + 1) + 1);
    println!(
        "{} cons cells in {:.3} s ({:.1} ns each); {kept} lists of {len} kept",
        s.mallocs,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / s.mallocs.max(1) as f64
    );
    println!(
        "collections {} (pauses {:.3} ms in all); after the last: {} KiB in {} objects, \
         the last one's pause {:.3} ms",
        s.num_gc,
        s.pause_total_ns as f64 / 1e6,
        s.heap_alloc / 1024,
        s.heap_objects,
        record.pause_ns as f64 / 1e6
    );
    println!(
        "allocated {} MiB in all; heap from the OS {} MiB",
        s.total_alloc >> 20,
        s.heap_sys >> 20
    );
}
