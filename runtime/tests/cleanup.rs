//! Cleanups (Go 1.24's `runtime.AddCleanup`): run once, on a goroutine of their own,
//! after their object is unreachable; not while it is reachable, not after `stop`; what
//! they capture lives until they run; one that captures its own object is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use minigo_runtime::{
    add_cleanup, gc, goroutine_id, yield_now, Chan, Cleanup, Gc, Global, HeapType, Mutation,
    Runtime,
};

#[derive(HeapType)]
struct Res {
    id: u64,
    pad: [u64; 3],
}

fn res(mu: Mutation<'_>, id: u64) -> Gc<'_, Res> {
    Gc::new(mu, Res { id, pad: [id; 3] }).unwrap()
}

/// Made, registered and kept only by a `Global`, on a goroutine that has ended: no stack
/// holds the object's address.
fn registered<'gc>(
    mu: Mutation<'gc>,
    id: u64,
    f: impl FnOnce() + Send + 'static,
) -> (Global<'gc, Res>, Cleanup<'gc>) {
    let ch = Chan::new(1);
    let tx = ch.clone();
    mu.go(move || {
        let r = res(mu, id);
        let c = add_cleanup(r, f);
        tx.send((Global::new(r), c));
    });
    ch.recv().unwrap()
}

fn wait_for(counter: &AtomicU64, at_least: u64) {
    for _ in 0..100_000 {
        if counter.load(Ordering::SeqCst) >= at_least {
            return;
        }
        yield_now();
    }
    panic!(
        "waited for {at_least} cleanups, {} ran",
        counter.load(Ordering::SeqCst)
    );
}

#[test]
fn a_cleanup_runs_once_after_its_object_is_unreachable_on_another_goroutine() {
    Runtime::builder()
        .procs(2)
        .verify(true)
        .build()
        .unwrap()
        .run(|mu| {
            let ran = Arc::new(AtomicU64::new(0));
            let on = Arc::new(AtomicU64::new(0));
            let (r, o) = (ran.clone(), on.clone());
            let (kept, _c) = registered(mu, 7, move || {
                on_store(&o);
                r.fetch_add(1, Ordering::SeqCst);
            });
            let (stays, _c2) = registered(mu, 8, || panic!("a reachable object's cleanup ran"));
            for _ in 0..3 {
                gc();
            }
            assert_eq!(ran.load(Ordering::SeqCst), 0, "reachable: not yet");
            drop(kept);
            gc();
            wait_for(&ran, 1);
            for _ in 0..3 {
                gc();
            }
            yield_now();
            assert_eq!(ran.load(Ordering::SeqCst), 1, "once");
            assert_ne!(
                on.load(Ordering::SeqCst),
                goroutine_id(),
                "on its own goroutine"
            );
            assert_eq!(stays.get().id, 8);
        })
        .unwrap();
}

fn on_store(o: &AtomicU64) {
    o.store(goroutine_id(), Ordering::SeqCst);
}

#[test]
fn a_stopped_cleanup_never_runs() {
    Runtime::new()
        .unwrap()
        .run(|mu| {
            let (kept, c) = registered(mu, 1, || panic!("a stopped cleanup ran"));
            c.stop();
            drop(kept);
            for _ in 0..3 {
                gc();
                yield_now();
            }
        })
        .unwrap();
}

/// Many objects, each with a cleanup that reads a `Gc` it captured: the captures are
/// roots until the cleanups run (verify mode checks every cycle), while garbage keeps
/// cycles coming.
#[test]
fn what_a_cleanup_captures_lives_until_it_runs() {
    Runtime::builder()
        .procs(2)
        .gogc(Some(25))
        .verify(true)
        .build()
        .unwrap()
        .run(|mu| {
            let ran = Arc::new(AtomicU64::new(0));
            let mut kept = Vec::new();
            for id in 0..200u64 {
                let r = ran.clone();
                let ch = Chan::new(1);
                let tx = ch.clone();
                mu.go(move || {
                    let captured = res(mu, 1000 + id);
                    let obj = res(mu, id);
                    add_cleanup(obj, move || {
                        assert_eq!(captured.pad, [1000 + id; 3], "a capture was freed");
                        r.fetch_add(1, Ordering::SeqCst);
                    });
                    tx.send(Global::new(obj));
                });
                kept.push(ch.recv().unwrap());
                for _ in 0..200 {
                    std::hint::black_box(res(mu, id));
                }
                if id % 2 == 0 {
                    kept.remove(0);
                }
            }
            drop(kept);
            gc();
            wait_for(&ran, 200);
        })
        .unwrap();
}

#[test]
fn a_cleanup_that_captures_its_object_is_refused() {
    let r = Runtime::new().unwrap().run(|mu| {
        let r = res(mu, 1);
        add_cleanup(r, move || assert_eq!(r.id, 1));
    });
    assert!(
        format!("{r:?}").contains("captures its own object"),
        "{r:?}"
    );
}
