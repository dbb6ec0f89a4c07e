//! Weak pointers (Go 1.24's `weak.Pointer`): cleared by the collection that finds their
//! object unreachable, never before; and `get` while a cycle marks keeps what it returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use minigo_runtime::gc_crate::GcPhase;
use minigo_runtime::{gc, yield_now, Chan, Gc, GcSlice, Global, HeapType, Mutation, Runtime, Weak};

#[derive(HeapType)]
struct Entry {
    key: u64,
    pad: [u64; 5],
}

fn entry(mu: Mutation<'_>, key: u64) -> Gc<'_, Entry> {
    Gc::new(mu, Entry { key, pad: [key; 5] }).unwrap()
}

/// Objects made by a goroutine that has exited, so that no stack holds their address: the
/// test's own goroutine only ever sees the handles.
fn made_elsewhere(mu: Mutation<'_>, key: u64) -> (Global<'_, Entry>, Weak<'_, Entry>) {
    let ch = Chan::new(1);
    let tx = ch.clone();
    mu.go(move || {
        let e = entry(mu, key);
        tx.send((Global::new(e), Weak::new(e)));
    });
    ch.recv().unwrap()
}

#[test]
fn a_weak_pointer_is_cleared_once_its_object_is_unreachable_and_not_before() {
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(|mu| {
            let (strong, weak) = made_elsewhere(mu, 1);
            let (other_strong, other_weak) = made_elsewhere(mu, 2);
            for _ in 0..3 {
                gc();
                assert_eq!(weak.get().map(|e| e.key), Some(1), "reachable: kept");
            }
            drop(other_strong);
            gc();
            assert!(other_weak.get().is_none(), "unreachable: cleared");
            gc();
            assert!(other_weak.get().is_none(), "and stays cleared");
            assert_eq!(strong.get().pad, [1; 5]);
        })
        .unwrap();
}

/// An object only weak pointers reach, taken out with `get` while a cycle marks, after
/// the taking goroutine's stack was scanned: the read barrier shades it, or the cycle
/// would free it under the goroutine. Verify mode re-marks from the roots at every mark
/// termination and panics on a reachable object left unmarked; a live heap of 10 MiB
/// keeps cycles long enough to mark concurrently (a small heap's cycle ends inside its
/// first stop).
#[test]
fn get_while_a_cycle_marks_keeps_what_it_returns() {
    // Major cycles only: a minor one here marks so little that it ends in its first stop,
    // and the test would never see a cycle marking.
    let rt = Runtime::builder()
        .procs(2)
        .gogc(Some(25))
        .verify(true)
        .generational(false)
        .build()
        .unwrap();
    let c = rt.collector().clone();
    rt.run(move |mu| {
        let live = GcSlice::new(mu, 200_000, None::<Gc<Entry>>).unwrap();
        for i in 0..live.len() {
            live.set(i, Some(entry(mu, i as u64)));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        mu.go(move || {
            while !s.load(Ordering::Relaxed) {
                for k in 0..256 {
                    std::hint::black_box(entry(mu, k));
                }
                yield_now();
            }
        });
        let (mut taken, mut while_marking) = (0, 0);
        for key in 0..60u64 {
            let (strong, weak) = made_elsewhere(mu, key);
            drop(strong);
            // The next cycle, while it marks: the object is white (made before it).
            let n = c.cycles_started();
            let mut spins = 0;
            while !(c.cycles_started() > n && c.phase() == GcPhase::Mark) && spins < 100_000 {
                yield_now();
                spins += 1;
            }
            let marking = c.phase() == GcPhase::Mark;
            let e = weak.get();
            std::hint::black_box(&e);
            if let Some(e) = e {
                taken += 1;
                while_marking += marking as u32;
                // Past the end of this cycle, and the next one's verify.
                let f = c.cycles_finished();
                while c.cycles_finished() < f + 2 {
                    yield_now();
                }
                assert_eq!((e.key, e.pad), (key, [key; 5]));
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert_eq!(std::hint::black_box(&live).len(), 200_000);
        assert!(
            while_marking > 10,
            "{taken} taken, {while_marking} while marking"
        );
    })
    .unwrap();
}
