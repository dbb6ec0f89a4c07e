//! Arenas (`runtime/src/arena.rs`): the typed handles on a standalone heap, collected
//! between mutations from the root object, in verify mode; handles kept anywhere within a
//! mutation; out-of-memory under `max_heap` as an error that loses nothing; the handles that
//! outlive mutations (`ArenaGlobal`, `ArenaWeak`).

use minigo_runtime::gc_crate::GcConfig;
use minigo_runtime::{
    AllocError, Arena, ArenaGlobal, ArenaWeak, Gc, GcCell, GcSlice, GcStr, HeapType, Rootable,
    Runtime,
};

/// An interpreter's value, tagged.
#[derive(HeapType, Clone, Copy)]
enum Value<'gc> {
    Int(i64),
    Str(GcStr<'gc>),
}

#[derive(HeapType)]
struct Pair<'gc> {
    car: Value<'gc>,
    cdr: Option<Gc<'gc, Pair<'gc>>>,
}

/// The VM: a stack of values (a heap array, replaced when it grows) and a list.
#[derive(HeapType)]
struct Vm<'gc> {
    stack: GcCell<Option<Gc<'gc, Stack<'gc>>>>,
    list: GcCell<Option<Gc<'gc, Pair<'gc>>>>,
}

#[derive(HeapType)]
struct Stack<'gc> {
    slots: GcSlice<'gc, Option<Gc<'gc, Pair<'gc>>>>,
}

struct VmRoot;
impl Rootable for VmRoot {
    type Root<'gc> = Vm<'gc>;
}

fn config(gogc: u32) -> GcConfig {
    GcConfig {
        gogc: Some(gogc),
        verify: true,
        ..GcConfig::default()
    }
}

fn new_vm(c: GcConfig) -> Arena<VmRoot> {
    Arena::new(c, |_| Vm {
        stack: GcCell::new(None),
        list: GcCell::new(None),
    })
    .unwrap()
}

fn sum<'gc>(mut node: Option<Gc<'gc, Pair<'gc>>>) -> (i64, usize) {
    let (mut ints, mut strs) = (0, 0);
    while let Some(p) = node {
        match p.car {
            Value::Int(i) => ints += i,
            Value::Str(s) => {
                assert!(s.as_str().starts_with('s'), "{:?}", s.as_str());
                strs += 1;
            }
        }
        node = p.cdr;
    }
    (ints, strs)
}

/// A list built one cell per mutation, with garbage beside it, survives every collection
/// (verify mode re-marks from the root after each and fails on anything reachable left
/// unmarked); the garbage is freed.
#[test]
fn a_list_built_across_mutations_survives_collections_and_garbage_goes() {
    let mut arena = new_vm(config(25));
    for i in 0..20_000i64 {
        arena.mutate(|mu, vm| {
            let car = if i % 4 == 0 {
                Value::Str(GcStr::new(mu, &format!("s{i:020}")).unwrap())
            } else {
                Value::Int(i)
            };
            let cell = Gc::new(
                mu,
                Pair {
                    car,
                    cdr: vm.list.get(),
                },
            )
            .unwrap();
            vm.list.set(Some(cell));
            for _ in 0..20 {
                let garbage = Gc::new(
                    mu,
                    Pair {
                        car: Value::Int(-1),
                        cdr: Some(cell),
                    },
                )
                .unwrap();
                std::hint::black_box(garbage);
            }
        });
    }
    let cycles = arena.collector().cycles_finished();
    assert!(cycles > 10, "{cycles} collections");
    let want_ints: i64 = (0..20_000).filter(|i| i % 4 != 0).sum();
    assert_eq!(arena.mutate(|_, vm| sum(vm.list.get())), (want_ints, 5_000));
    arena.collect();
    // The root, the list's 20,000 cells and 5,000 strings (21 bytes: not tiny objects,
    // which share blocks): the garbage is gone.
    assert_eq!(arena.mem_stats().heap_objects, 1 + 20_000 + 5_000);
}

/// Within one mutation nothing is collected, so handles kept where no collector looks (a
/// `Vec`, threads of a scope) stay valid however much is allocated; the collection due
/// runs when the mutation ends.
#[test]
fn handles_kept_anywhere_during_a_mutation_stay_valid() {
    let mut arena = new_vm(config(10));
    let before = arena.collector().cycles_finished();
    let total = arena.mutate(|mu, _| {
        let kept: Vec<Gc<Pair>> = (0..200_000)
            .map(|i| {
                Gc::new(
                    mu,
                    Pair {
                        car: Value::Int(i),
                        cdr: None,
                    },
                )
                .unwrap()
            })
            .collect();
        let halves: Vec<i64> = std::thread::scope(|s| {
            let workers: Vec<_> = kept
                .chunks(100_000)
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|p| match p.car {
                                Value::Int(i) => i,
                                _ => unreachable!(),
                            })
                            .sum::<i64>()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        halves.iter().sum::<i64>()
    });
    assert_eq!(total, (0..200_000).sum::<i64>());
    assert_eq!(
        arena.collector().cycles_finished(),
        before + 1,
        "no cycle during the mutation, one after it"
    );
    assert_eq!(arena.mem_stats().heap_objects, 1);
}

/// Under `max_heap`, an allocation that does not fit is an error inside the mutation (no
/// panic); the arena collects when the mutation ends, and the next one allocates again,
/// with the root's data intact.
#[test]
fn out_of_memory_under_max_heap_is_an_error_and_loses_nothing() {
    let mut arena = new_vm(GcConfig {
        max_heap: Some(8 << 20),
        gogc: None,
        ..config(100)
    });
    arena.mutate(|mu, vm| {
        let slots = GcSlice::new(mu, 64, None).unwrap();
        vm.stack.set(Some(Gc::new(mu, Stack { slots }).unwrap()));
        let kept = Gc::new(
            mu,
            Pair {
                car: Value::Int(42),
                cdr: None,
            },
        )
        .unwrap();
        slots.set(0, Some(kept));
    });
    let err = arena.mutate(|mu, _| loop {
        if let Err(e) = GcSlice::new(mu, 4096, 0u64) {
            break e;
        }
    });
    assert!(matches!(err, AllocError::OutOfMemory { .. }), "{err:?}");
    let (kept, more) = arena.mutate(|mu, vm| {
        let slots = vm.stack.get().unwrap().slots;
        let kept = match slots.get(0).unwrap().car {
            Value::Int(i) => i,
            _ => unreachable!(),
        };
        (kept, GcSlice::new(mu, 4096, 7u64).map(|s| s.get(4095)))
    });
    assert_eq!((kept, more), (42, Ok(7)));
}

/// An arena mutates on a plain thread; on a goroutine its stores would meet the run's
/// write barrier. Refused with a message.
#[test]
fn mutate_on_a_goroutine_panics() {
    let r = Runtime::builder().procs(1).build().unwrap().run(|_| {
        let mut arena = new_vm(config(100));
        arena.mutate(|_, _| ());
    });
    let message = format!("{r:?}");
    assert!(
        message.contains("Arena::mutate on a goroutine"),
        "{message}"
    );
}

/// A node, as `Rootable` for the persistent handles.
struct PairK;
impl Rootable for PairK {
    type Root<'gc> = Pair<'gc>;
}

/// `ArenaGlobal`s keep their objects (and what those reach) alive across mutations and
/// collections until dropped; `ArenaWeak`s give theirs back until a collection finds
/// nothing else keeps them, then `None`.
#[test]
fn globals_keep_and_weak_pointers_follow_across_mutations() {
    let mut arena = new_vm(config(100));
    let (strong, weak_kept, weak_lost) = arena.mutate(|mu, _| {
        let mut list = None;
        for i in 0..1000 {
            list = Some(
                Gc::new(
                    mu,
                    Pair {
                        car: Value::Int(i),
                        cdr: list,
                    },
                )
                .unwrap(),
            );
        }
        let head = list.unwrap();
        let lost = Gc::new(
            mu,
            Pair {
                car: Value::Int(-1),
                cdr: None,
            },
        )
        .unwrap();
        (
            ArenaGlobal::<PairK>::new(mu, head),
            ArenaWeak::<PairK>::new(mu, head),
            ArenaWeak::<PairK>::new(mu, lost),
        )
    });
    assert!(
        arena.mutate(|mu, _| weak_lost.get(mu).is_some()),
        "no collection yet"
    );
    for _ in 0..3 {
        arena.collect();
    }
    assert_eq!(arena.mem_stats().heap_objects, 1 + 1000);
    let (sum, same) = arena.mutate(|mu, _| {
        let head = strong.get(mu);
        (
            sum(Some(head)).0,
            weak_kept.get(mu).is_some_and(|w| Gc::ptr_eq(w, head)),
        )
    });
    assert_eq!((sum, same), ((0..1000).sum(), true));
    assert!(arena.mutate(|mu, _| weak_lost.get(mu).is_none()));
    drop(strong);
    arena.collect();
    assert!(arena.mutate(|mu, _| weak_kept.get(mu).is_none()));
    assert_eq!(arena.mem_stats().heap_objects, 1);
}

/// A handle names a slot of its own arena's table: with another arena's token it is
/// refused with a message, not read.
#[test]
fn a_handle_of_another_arena_is_refused() {
    let mut a = new_vm(config(100));
    let mut b = new_vm(config(100));
    let g = a.mutate(|mu, _| {
        ArenaGlobal::<PairK>::new(
            mu,
            Gc::new(
                mu,
                Pair {
                    car: Value::Int(1),
                    cdr: None,
                },
            )
            .unwrap(),
        )
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.mutate(|mu, _| g.get(mu).cdr.is_none())
    }));
    let message = *r.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("a handle of another arena"), "{message}");
}

/// Cleanups run once, after the collection that finds their object unreachable (not
/// while an `ArenaGlobal` keeps it), on the collecting thread; a stopped one never runs;
/// collections the pacer starts at a mutation's end run them too.
#[test]
fn cleanups_run_once_after_their_object_is_unreachable() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let mut arena = new_vm(config(100));
    let ran = Arc::new(AtomicU64::new(0));
    let bump = |by: u64| {
        let ran = ran.clone();
        move || {
            ran.fetch_add(by, Ordering::SeqCst);
        }
    };
    let (kept, stopped) = arena.mutate(|mu, _| {
        let a = Gc::new(
            mu,
            Pair {
                car: Value::Int(1),
                cdr: None,
            },
        )
        .unwrap();
        let b = Gc::new(
            mu,
            Pair {
                car: Value::Int(2),
                cdr: None,
            },
        )
        .unwrap();
        mu.add_cleanup(a, bump(1));
        mu.add_cleanup(a, bump(10));
        mu.add_cleanup(b, bump(100));
        let stopped = mu.add_cleanup(b, bump(1000));
        (ArenaGlobal::<PairK>::new(mu, b), stopped)
    });
    arena.collect();
    assert_eq!(ran.load(Ordering::SeqCst), 11, "a's two cleanups, not b's");
    stopped.stop();
    drop(kept);
    arena.collect();
    arena.collect();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        111,
        "b's remaining cleanup, once"
    );
    // Many objects with cleanups, dropped as garbage: the pacer's collections at the
    // mutations' ends run them.
    for _ in 0..2_000 {
        arena.mutate(|mu, _| {
            let garbage = Gc::new(
                mu,
                Pair {
                    car: Value::Int(3),
                    cdr: None,
                },
            )
            .unwrap();
            mu.add_cleanup(garbage, bump(1_000_000));
            std::hint::black_box(GcSlice::new(mu, 1024, 0u64).unwrap());
        });
    }
    assert!(ran.load(Ordering::SeqCst) > 111 + 1_000 * 1_000_000);
}
