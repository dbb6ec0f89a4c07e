//! `GcVec`, the growable heap array: what to keep handles in instead of a Rust `Vec`, on a
//! run (through collections, in verify mode) and in an arena (across mutations); growth
//! that fails under `max_heap` changes nothing; `pop`/`truncate` keep nothing alive.

use minigo_runtime::gc_crate::GcConfig;
use minigo_runtime::{
    gc, gc_cycles, read_mem_stats, Arena, Gc, GcSlice, GcVec, HeapType, Rootable, Runtime, Weak,
};

#[derive(HeapType)]
struct Entry {
    key: u64,
    pad: [u64; 3],
}

/// A vector holding the only references to 20,000 entries, grown through collections
/// while garbage is made beside it: every entry survives (verify mode re-marks from the
/// roots after each cycle), and after `truncate` the entries dropped are freed.
#[test]
fn a_vector_on_a_run_keeps_its_elements_through_collections() {
    let rt = Runtime::builder()
        .procs(2)
        .verify(true)
        .gogc(Some(25))
        .build()
        .unwrap();
    rt.run(|mu| {
        let v = GcVec::new(mu).unwrap();
        for key in 0..20_000u64 {
            v.push(mu, Gc::new(mu, Entry { key, pad: [key; 3] }).unwrap())
                .unwrap();
            std::hint::black_box(GcSlice::new(mu, 256, key).unwrap());
        }
        assert!(gc_cycles().len() > 10, "{} cycles", gc_cycles().len());
        gc();
        assert_eq!(v.len(), 20_000);
        assert!(v.capacity() >= 20_000);
        assert!(v
            .iter()
            .enumerate()
            .all(|(i, e)| e.key == i as u64 && e.pad == [e.key; 3]));
        // Weak pointers to the entries about to be given up: the slots `pop` and
        // `truncate` leave must not keep them (a few may be kept by stale words of this
        // goroutine's stack, which is scanned conservatively).
        let given_up: Vec<Weak<Entry>> = (10_000..20_000).map(|i| Weak::new(v.get(i))).collect();
        assert_eq!(v.pop().map(|e| e.key), Some(19_999));
        v.truncate(10_000);
        let before = read_mem_stats().heap_objects;
        gc();
        gc();
        let after = read_mem_stats().heap_objects;
        assert!(before - after >= 9_000, "{before} -> {after}");
        let kept = given_up.iter().filter(|w| w.get().is_some()).count();
        assert!(kept < 100, "{kept} of 10,000 given-up entries kept");
        assert_eq!(v.iter().map(|e| e.key).sum::<u64>(), (0..10_000).sum());
    })
    .unwrap();
}

#[derive(HeapType)]
struct Table<'gc> {
    rows: GcVec<'gc, Gc<'gc, Entry>>,
}

struct TableK;
impl Rootable for TableK {
    type Root<'gc> = Table<'gc>;
}

/// In an arena, a vector in the root object carries handles from one mutation to the
/// next (which a Rust `Vec` of handles cannot: the brand ends with the mutation).
#[test]
fn a_vector_in_an_arenas_root_carries_handles_across_mutations() {
    let config = GcConfig {
        gogc: Some(10),
        verify: true,
        ..GcConfig::default()
    };
    let mut arena = Arena::<TableK>::new(config, |mu| Table {
        rows: GcVec::new(mu).unwrap(),
    })
    .unwrap();
    for key in 0..5_000u64 {
        arena.mutate(|mu, t| {
            t.rows
                .push(mu, Gc::new(mu, Entry { key, pad: [key; 3] }).unwrap())
                .unwrap();
            std::hint::black_box(GcSlice::new(mu, 1024, key).unwrap());
        });
    }
    assert!(arena.collector().cycles_finished() > 5);
    arena.collect();
    // The root, the vector's header and array, and the entries.
    assert_eq!(arena.mem_stats().heap_objects, 1 + 2 + 5_000);
    let sum = arena.mutate(|_, t| t.rows.iter().map(|e| e.key).sum::<u64>());
    assert_eq!(sum, (0..5_000).sum());
}

/// Growth that does not fit under `max_heap` is an error, and the vector is as it was.
#[test]
fn growth_past_max_heap_fails_and_changes_nothing() {
    struct VecK;
    impl Rootable for VecK {
        type Root<'gc> = Table<'gc>;
    }
    let config = GcConfig {
        max_heap: Some(4 << 20),
        ..GcConfig::default()
    };
    let mut arena = Arena::<VecK>::new(config, |mu| Table {
        rows: GcVec::new(mu).unwrap(),
    })
    .unwrap();
    let (err, len, sum) = arena.mutate(|mu, t| {
        let e = Gc::new(
            mu,
            Entry {
                key: 1,
                pad: [1; 3],
            },
        )
        .unwrap();
        let err = loop {
            if let Err(err) = t.rows.push(mu, e) {
                break err;
            }
        };
        (err, t.rows.len(), t.rows.iter().map(|e| e.key).sum::<u64>())
    });
    assert!(
        matches!(err, minigo_runtime::AllocError::OutOfMemory { .. }),
        "{err:?}"
    );
    assert!(len > 100_000, "{len}");
    assert_eq!(sum, len as u64, "every element kept");
}
