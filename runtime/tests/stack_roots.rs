//! Pointers held only by goroutine frames survive collections triggered while the goroutine
//! is parked: in a local, and (in release builds, where the compiler keeps a value that is
//! needed after a call in a callee-saved register) in a register the park spills.

use std::hint::black_box;

use minigo_runtime::{gc, Gc, HeapType, Mutation, Runtime, WaitGroup};

#[derive(HeapType)]
struct Cell {
    value: i64,
    pad: [u64; 3],
}

/// Collects, then allocates enough objects of the same size class to reuse (and clear) any
/// slot the collection freed.
#[inline(never)]
fn collect_and_churn(mu: Mutation<'_>) {
    gc();
    for i in 0..20_000 {
        black_box(
            Gc::new(
                mu,
                Cell {
                    value: -i,
                    pad: [0; 3],
                },
            )
            .unwrap(),
        );
    }
}

const KEY: usize = 0x5a5a_5a5a_5a5a_5a5a;

/// The object's address exists only in a register across the call: what reaches memory
/// (through `black_box`) is `addr ^ KEY`, which points nowhere; `addr` is recomputed into a
/// register, which the compiler keeps in a callee-saved one because it is needed after the
/// call. Only the park's register spill can keep the object alive.
#[inline(never)]
fn hidden_survives(mu: Mutation<'_>, v: i64) -> i64 {
    let masked = black_box(
        Gc::new(
            mu,
            Cell {
                value: v,
                pad: [7; 3],
            },
        )
        .unwrap()
        .as_ptr() as usize
            ^ KEY,
    );
    let addr = masked ^ KEY;
    collect_and_churn(mu);
    // SAFETY: the test's claim: the object is still alive.
    unsafe { (*(addr as *const Cell)).value }
}

#[test]
fn pointers_only_in_frames_and_registers_survive_collections_on_every_p() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.run(|mu| {
        let wg = WaitGroup::new();
        for g in 0..8i64 {
            wg.add(1);
            let wg = wg.clone();
            mu.go(move || {
                for round in 0..25 {
                    let v = g * 1000 + round;
                    assert_eq!(
                        hidden_survives(mu, v),
                        v,
                        "goroutine {g} round {round}: object freed"
                    );
                }
                wg.done();
            });
        }
        wg.wait();
    })
    .unwrap();
}

#[test]
fn a_local_gc_survives_a_park_on_another_thread() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    rt.run(|mu| {
        let keep = Gc::new(
            mu,
            Cell {
                value: 99,
                pad: [1, 2, 3],
            },
        )
        .unwrap();
        for _ in 0..50 {
            minigo_runtime::yield_now();
            collect_and_churn(mu);
        }
        assert_eq!((keep.value, keep.pad), (99, [1, 2, 3]));
    })
    .unwrap();
}
