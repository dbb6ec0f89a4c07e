//! Stopping the world with goroutines spinning at safepoints and one inside `blocking`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minigo_runtime::{blocking, gc, read_mem_stats, yield_now, Gc, HeapType, Runtime};

#[derive(HeapType)]
struct Box3 {
    a: u64,
    b: u64,
    c: u64,
}

#[test]
fn the_world_stops_for_spinners_and_not_for_blocking() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    rt.run(|mu| {
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicU64::new(0));
        for _ in 0..3 {
            let (stop, spins) = (stop.clone(), spins.clone());
            mu.go(move || {
                while !stop.load(Ordering::Relaxed) {
                    spins.fetch_add(1, Ordering::Relaxed);
                    yield_now();
                }
            });
        }
        let in_blocking = Arc::new(AtomicBool::new(false));
        let released = Arc::new(AtomicBool::new(false));
        {
            let (in_blocking, released) = (in_blocking.clone(), released.clone());
            mu.go(move || {
                let mine = Gc::new(mu, Box3 { a: 1, b: 2, c: 3 }).unwrap();
                blocking(|| {
                    in_blocking.store(true, Ordering::SeqCst);
                    while !released.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                // Its object survived the collections that ran while it was blocked.
                assert_eq!((mine.a, mine.b, mine.c), (1, 2, 3));
            });
        }
        while !in_blocking.load(Ordering::SeqCst) {
            yield_now();
        }
        let t = Instant::now();
        for _ in 0..20 {
            gc();
        }
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "20 collections took {took:?}: blocked by the blocking goroutine?"
        );
        assert!(read_mem_stats().num_gc >= 20);
        released.store(true, Ordering::SeqCst);
        stop.store(true, Ordering::Relaxed);
        assert!(spins.load(Ordering::Relaxed) > 0);
    })
    .unwrap();
}
