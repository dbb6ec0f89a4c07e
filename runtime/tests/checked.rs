//! The checked mode (`runtime/src/checked.rs`: debug builds, and the `checked` feature): a
//! handle the collector could not see is reported when it is read, with its address,
//! instead of reading freed or unmapped memory. CI runs it as
//! `cargo test --release -p minigo-runtime --features checked --test checked`; the panics
//! it provokes are silenced here (a test binary of its own).

use std::panic::{catch_unwind, AssertUnwindSafe};

use minigo_runtime::{
    gc, read_mem_stats, Gc, GcSlice, GcStr, HeapType, Mutation, RunError, Runtime,
};

#[derive(HeapType)]
struct Entry {
    key: u64,
    pad: [u64; 5],
}

/// An entry whose words all say `k`.
fn entry(mu: Mutation<'_>, k: u64) -> Gc<'_, Entry> {
    Gc::new(
        mu,
        Entry {
            key: k,
            pad: [k; 5],
        },
    )
    .unwrap()
}

fn runtime() -> Runtime {
    Runtime::builder().procs(2).build().unwrap()
}

fn message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// A handle cannot leave its run (the brand: `Mutation`'s compile-fail doctests), but it
/// can reach a scoped OS thread inside it, which is not one of the runtime's: a read there
/// is reported with the handle's address.
#[test]
fn a_handle_read_on_a_thread_of_its_own_is_reported() {
    std::panic::set_hook(Box::new(|_| {}));
    let r = runtime().run(|mu| {
        let e = Gc::new(
            mu,
            Entry {
                key: 9,
                pad: [9; 5],
            },
        )
        .unwrap();
        let s = GcStr::new(mu, "read on another thread").unwrap();
        let (key, len) = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    (
                        catch_unwind(AssertUnwindSafe(|| e.key)).map_err(message),
                        catch_unwind(AssertUnwindSafe(|| s.as_str().len())).map_err(message),
                    )
                })
                .join()
                .unwrap()
        });
        let err = key.expect_err("a read off the runtime's threads");
        assert!(err.contains("read outside a goroutine"), "{err}");
        assert!(
            err.contains(&format!("{:#x}", e.as_ptr() as usize)),
            "{err}"
        );
        assert!(len.unwrap_err().contains("GcStr"));
        assert_eq!(e.key, 9, "the goroutine itself reads it");
    });
    assert_eq!(r, Ok(()));
}

/// Handles kept in a `Vec` (the Rust heap: the collector does not look there) across
/// collections: their objects are freed, and reading one is reported, not garbage.
#[test]
fn handles_kept_in_a_vec_across_a_collection_are_reported() {
    std::panic::set_hook(Box::new(|_| {}));
    let r = runtime().run(|mu| {
        let hidden: Vec<Gc<Entry>> = (0..1000).map(|k| entry(mu, k)).collect();
        let slices: Vec<GcSlice<u64>> = (0..100).map(|k| GcSlice::new(mu, 8, k).unwrap()).collect();
        let freeing = read_mem_stats().num_gc + 1;
        gc();
        gc();
        let mut reported = 0;
        for e in &hidden {
            match catch_unwind(AssertUnwindSafe(|| e.key)).map_err(message) {
                Ok(_) => {} // kept by a stale copy on the stack (scanned conservatively)
                Err(m) => {
                    let says = format!(
                        "{:#x} names an object freed by cycle {freeing} ",
                        e.as_ptr() as usize
                    );
                    assert!(m.contains(&says), "{m}");
                    reported += 1;
                }
            }
        }
        let slices_reported = slices
            .iter()
            .filter(|s| catch_unwind(AssertUnwindSafe(|| s.get(0))).is_err())
            .count();
        assert!(reported > 900, "{reported} of 1000 reported");
        assert!(slices_reported > 90, "{slices_reported} of 100 reported");
    });
    assert_eq!(r, Ok::<(), RunError>(()));
}

/// An arena's handles are valid on every thread while its mutation runs (nothing collects
/// it meanwhile): the check lets them through, on the mutation's thread and on a scope's.
#[test]
fn an_arenas_handles_pass_the_check_on_any_thread_of_the_mutation() {
    use minigo_runtime::gc_crate::GcConfig;
    use minigo_runtime::{Arena, Rootable};
    struct Root;
    impl Rootable for Root {
        type Root<'gc> = Entry;
    }
    let mut arena = Arena::<Root>::new(GcConfig::default(), |_| Entry {
        key: 1,
        pad: [1; 5],
    })
    .unwrap();
    let sum = arena.mutate(|mu, root| {
        let e = Gc::new(
            mu,
            Entry {
                key: 2,
                pad: [2; 5],
            },
        )
        .unwrap();
        let s = GcStr::new(mu, "in the arena").unwrap();
        let there = std::thread::scope(|scope| {
            scope
                .spawn(|| e.key + root.key + s.as_str().len() as u64)
                .join()
                .unwrap()
        });
        there + e.key
    });
    assert_eq!(sum, 2 + 1 + 12 + 2);
}

#[derive(HeapType)]
struct Wide<'gc> {
    next: Option<Gc<'gc, Wide<'gc>>>,
    pad: [u64; 9],
}

/// Handles kept in a `Vec` across a collection, then as many objects of their own class
/// allocated: without the quarantine those would take the freed slots, and the handles
/// would read them, shape and all. With it, no new object lands in a freed slot, and every
/// read is reported with the cycle that freed its object.
#[test]
fn a_slot_its_own_class_would_take_again_is_held_and_reported() {
    std::panic::set_hook(Box::new(|_| {}));
    let r = runtime().run(|mu| {
        let hidden: Vec<Gc<Entry>> = (0..2000).map(|k| entry(mu, k)).collect();
        let freeing = read_mem_stats().num_gc + 1;
        gc();
        let kept = minigo_runtime::GcVec::new(mu).unwrap();
        for k in 0..2000 {
            kept.push(mu, entry(mu, 1_000_000 + k)).unwrap();
        }
        let new: std::collections::HashSet<usize> =
            kept.iter().map(|e| e.as_ptr() as usize).collect();
        let mut reported = 0;
        for (k, e) in hidden.iter().enumerate() {
            assert!(!new.contains(&(e.as_ptr() as usize)), "slot {k} reused");
            match catch_unwind(AssertUnwindSafe(|| e.key)).map_err(message) {
                Ok(key) => assert_eq!(key, k as u64, "kept by a stale stack word"),
                Err(m) => {
                    assert!(m.contains(&format!("freed by cycle {freeing} ")), "{m}");
                    reported += 1;
                }
            }
        }
        assert!(reported > 1900, "{reported} of 2000 reported");
    });
    assert_eq!(r, Ok::<(), RunError>(()));
}

/// Handles kept in a `Vec` past the quarantine, while their spans were freed whole and
/// made again for objects of another class: the check sees an object there, but not one
/// of the handle's shape, and reports memory freed and allocated again.
#[test]
fn handles_whose_memory_was_allocated_again_are_reported() {
    std::panic::set_hook(Box::new(|_| {}));
    let r = runtime().run(|mu| {
        let hidden: Vec<Gc<Entry>> = (0..2000).map(|k| entry(mu, k)).collect();
        // Past the quarantine's cycles: the entries' slots are released, their spans
        // freed.
        for _ in 0..6 {
            gc();
        }
        // Other objects, kept: their spans take the pages the entries' spans gave back.
        let kept = minigo_runtime::GcVec::new(mu).unwrap();
        for _ in 0..20_000 {
            let w = Gc::new(
                mu,
                Wide {
                    next: None,
                    pad: [0; 9],
                },
            )
            .unwrap();
            kept.push(mu, w).unwrap();
        }
        let (mut freed, mut reused) = (0, 0);
        for e in &hidden {
            match catch_unwind(AssertUnwindSafe(|| e.key)).map_err(message) {
                Ok(_) => {}
                Err(m) if m.contains("freed and allocated again") => reused += 1,
                Err(m) => {
                    assert!(m.contains("is not an object of this runtime's heap"), "{m}");
                    freed += 1;
                }
            }
        }
        assert!(reused > 100, "{reused} reused, {freed} freed, of 2000");
        assert!(
            freed + reused > 1800,
            "{reused} reused, {freed} freed, of 2000"
        );
        assert_eq!(kept.len(), 20_000);
    });
    assert_eq!(r, Ok::<(), RunError>(()));
}
