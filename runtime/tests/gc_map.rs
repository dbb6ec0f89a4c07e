//! `GcMap`, the heap's hash map: string and identity keys through concurrent collections in
//! verify mode, in an arena across mutations, churn of inserts and removes, and growth that
//! fails under `max_heap` changing nothing.

use minigo_runtime::gc_crate::GcConfig;
use minigo_runtime::{
    gc, gc_cycles, Arena, Gc, GcMap, GcSlice, GcStr, HeapType, Rootable, Runtime, Weak,
};

#[derive(HeapType)]
struct Var {
    value: i64,
    pad: [u64; 3],
}

/// 20,000 string keys to objects held only by the map, through more than 10 cycles with
/// garbage beside them: every lookup finds its value; removed values are freed.
#[test]
fn a_map_on_a_run_keeps_its_entries_through_collections() {
    let rt = Runtime::builder()
        .procs(2)
        .verify(true)
        .gogc(Some(25))
        .build()
        .unwrap();
    rt.run(|mu| {
        let map = GcMap::new(mu).unwrap();
        for i in 0..20_000i64 {
            let key = GcStr::new(mu, &format!("variable number {i}")).unwrap();
            let var = Gc::new(
                mu,
                Var {
                    value: i,
                    pad: [0; 3],
                },
            )
            .unwrap();
            assert_eq!(map.insert(mu, key, var).unwrap(), None);
            std::hint::black_box(GcSlice::new(mu, 256, i).unwrap());
        }
        assert!(gc_cycles().len() > 10, "{} cycles", gc_cycles().len());
        gc();
        assert_eq!(map.len(), 20_000);
        let key = |i: i64| GcStr::new(mu, &format!("variable number {i}")).unwrap();
        assert!((0..20_000).all(|i| map.get(&key(i)).map(|v| v.value) == Some(i)));
        assert!(map.get(&key(20_000)).is_none());
        for i in (0..20_000).step_by(2) {
            assert_eq!(map.remove(&key(i)).map(|v| v.value), Some(i));
        }
        assert_eq!(map.len(), 10_000);
        assert_eq!(
            map.iter().map(|(_, v)| v.value).sum::<i64>(),
            (1..20_000).step_by(2).sum()
        );
        // Replaced values come back, and the map keeps them no longer (a few may be kept
        // by stale words of this goroutine's stack, which is scanned conservatively).
        let replaced: Vec<Weak<Var>> = (1..2_000)
            .step_by(2)
            .map(|i| {
                let new = Gc::new(
                    mu,
                    Var {
                        value: -i,
                        pad: [0; 3],
                    },
                )
                .unwrap();
                let old = map.insert(mu, key(i), new).unwrap().unwrap();
                assert_eq!(old.value, i);
                Weak::new(old)
            })
            .collect();
        gc();
        gc();
        let kept = replaced.iter().filter(|w| w.get().is_some()).count();
        assert!(kept < 100, "{kept} of 1000 replaced values kept");
        assert_eq!(map.get(&key(7)).map(|v| v.value), Some(-7));
    })
    .unwrap();
}

#[derive(HeapType)]
struct Interp<'gc> {
    globals: GcMap<'gc, GcStr<'gc>, Gc<'gc, Var>>,
    seen: GcMap<'gc, Gc<'gc, Var>, u64>,
}

struct InterpK;
impl Rootable for InterpK {
    type Root<'gc> = Interp<'gc>;
}

fn interp(config: GcConfig) -> Arena<InterpK> {
    Arena::new(config, |mu| Interp {
        globals: GcMap::new(mu).unwrap(),
        seen: GcMap::new(mu).unwrap(),
    })
    .unwrap()
}

/// An interpreter's globals (string keys) and an identity map (`Gc` keys) in an arena's
/// root, across mutations and collections; inserts and removes churn through a small map
/// without it growing past what its live entries need.
#[test]
fn maps_in_an_arenas_root_across_mutations() {
    let mut arena = interp(GcConfig {
        gogc: Some(10),
        verify: true,
        ..GcConfig::default()
    });
    for i in 0..2_000i64 {
        arena.mutate(|mu, it| {
            let var = Gc::new(
                mu,
                Var {
                    value: i,
                    pad: [0; 3],
                },
            )
            .unwrap();
            let name = GcStr::new(mu, &format!("g{i}")).unwrap();
            it.globals.insert(mu, name, var).unwrap();
            it.seen.insert(mu, var, i as u64 * 2).unwrap();
            std::hint::black_box(GcSlice::new(mu, 1024, i).unwrap());
        });
    }
    assert!(arena.collector().cycles_finished() > 5);
    let ok = arena.mutate(|mu, it| {
        (0..2_000i64).all(|i| {
            let var = it
                .globals
                .get(&GcStr::new(mu, &format!("g{i}")).unwrap())
                .unwrap();
            var.value == i && it.seen.get(&var) == Some(i as u64 * 2)
        })
    });
    assert!(ok);
    // Churn: 100,000 inserts and removes of 8 live keys reuse deleted slots.
    let slots = arena.mutate(|mu, _| {
        let m = GcMap::new(mu).unwrap();
        for i in 0..100_000u64 {
            m.insert(mu, i, i).unwrap();
            if i >= 8 {
                assert_eq!(m.remove(&(i - 8)), Some(i - 8));
            }
        }
        assert_eq!(m.len(), 8);
        assert_eq!(
            m.iter().map(|(k, _)| k).sum::<u64>(),
            (99_992..100_000).sum()
        );
        m.iter().count()
    });
    assert_eq!(slots, 8);
}

/// An insert whose table cannot grow under `max_heap` is an error, and the map keeps every
/// entry it had.
#[test]
fn growth_past_max_heap_fails_and_changes_nothing() {
    let mut arena = interp(GcConfig {
        max_heap: Some(4 << 20),
        ..GcConfig::default()
    });
    let (err, len, all) = arena.mutate(|mu, _| {
        let m = GcMap::new(mu).unwrap();
        let mut i = 0u64;
        let err = loop {
            match m.insert(mu, i, i) {
                Ok(_) => i += 1,
                Err(e) => break e,
            }
        };
        (err, m.len(), (0..i).all(|k| m.get(&k) == Some(k)))
    });
    assert!(
        matches!(err, minigo_runtime::AllocError::OutOfMemory { .. }),
        "{err:?}"
    );
    assert!(len > 10_000, "{len}");
    assert!(all);
}
