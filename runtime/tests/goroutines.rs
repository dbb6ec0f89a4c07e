//! Many goroutines allocating on two Ps with collections in verify mode; thread migration.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use minigo_runtime::{
    goroutine_id, num_goroutine, read_mem_stats, yield_now, Chan, Gc, GcCell, HeapType, Runtime,
    WaitGroup,
};

#[derive(HeapType)]
struct Node<'gc> {
    next: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    value: u64,
}

#[test]
fn ten_thousand_goroutines_churn_allocations_in_verify_mode() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    let collector = rt.collector().clone();
    rt.run(|mu| {
        let results: Chan<(u64, u64)> = Chan::new(10_000);
        let wg = WaitGroup::new();
        for g in 0..10_000u64 {
            wg.add(1);
            let (wg, results) = (wg.clone(), results.clone());
            mu.go(move || {
                // A list of 50 nodes, with garbage between them; the list must survive.
                let head = Gc::new(
                    mu,
                    Node {
                        next: GcCell::new(None),
                        value: 0,
                    },
                )
                .unwrap();
                let mut tail = head;
                for i in 1..50 {
                    let _garbage = Gc::new(
                        mu,
                        Node {
                            next: GcCell::new(None),
                            value: u64::MAX,
                        },
                    )
                    .unwrap();
                    let n = Gc::new(
                        mu,
                        Node {
                            next: GcCell::new(None),
                            value: g * 100 + i,
                        },
                    )
                    .unwrap();
                    tail.next.set(Some(n));
                    tail = n;
                    if i % 10 == 0 {
                        yield_now();
                    }
                }
                let (mut sum, mut p) = (0, Some(head));
                while let Some(n) = p {
                    sum += n.value;
                    p = n.next.get();
                }
                results.send((g, sum));
                wg.done();
            });
        }
        wg.wait();
        results.close();
        let mut seen = 0;
        for (g, sum) in results.iter() {
            assert_eq!(
                sum,
                (1..50).map(|i| g * 100 + i).sum::<u64>(),
                "goroutine {g}"
            );
            seen += 1;
        }
        assert_eq!(seen, 10_000);
        // A goroutine may still be returning after its `done`: give the last ones a moment
        // (time, not a count of yields: other tests of this binary may load both cores).
        let t0 = std::time::Instant::now();
        while num_goroutine() != 1 && t0.elapsed() < std::time::Duration::from_secs(10) {
            yield_now();
        }
        assert_eq!(num_goroutine(), 1, "only main is left");
        let s = read_mem_stats();
        assert!(s.num_gc > 0, "collections ran");
    })
    .unwrap();
    assert!(collector.cycles().iter().all(|c| c.workers >= 1));
}

/// Verify mode re-scans every stack at mark termination, from where each goroutine is
/// parked then. A frame pushed after the cycle scanned that stack may hold, in a slot its
/// function never wrote, a pointer to garbage a frame that returned before the scan left
/// there: the cycle never saw it and did not mark that garbage. Verify took it for a lost
/// object (one `.ci/run` in about nine; a quarter of this file's runs at GOGC=1), until
/// the runtime marked what such frames hold before verifying (`Sched::shade_stale_frames`).
#[test]
fn garbage_left_below_a_scanned_frame_is_not_a_lost_object() {
    /// Fills a frame with pointers to garbage, and returns: they stay below the stack
    /// pointer.
    #[inline(never)]
    fn leave_garbage_below(mu: minigo_runtime::Mutation<'_>, value: u64) {
        let mut slots: [Option<Gc<'_, Node<'_>>>; 48] = [None; 48];
        for s in slots.iter_mut() {
            *s = Some(
                Gc::new(
                    mu,
                    Node {
                        next: GcCell::new(None),
                        value,
                    },
                )
                .unwrap(),
            );
        }
        std::hint::black_box(&slots);
    }
    /// Parks in a frame as deep as `leave_garbage_below`'s, whose slots it never writes.
    #[inline(never)]
    fn park_deep() {
        let frame = std::mem::MaybeUninit::<[usize; 64]>::uninit();
        std::hint::black_box(&frame);
        yield_now();
    }
    // Without `shade_stale_frames`, one round failed in 4-6 runs of 10; three, in 9 of 10.
    for _round in 0..3 {
        // Major cycles only, over a live list long enough that they mark concurrently (a
        // cycle that ends in its first stop scans every stack where verify does).
        let rt = Runtime::builder()
            .procs(2)
            .gogc(Some(50))
            .generational(false)
            .verify(true)
            .build()
            .unwrap();
        let collector = rt.collector().clone();
        rt.run(|mu| {
            let mut live = None;
            for value in 0..200_000 {
                let next = GcCell::new(live);
                live = Some(Gc::new(mu, Node { next, value }).unwrap());
            }
            let wg = WaitGroup::new();
            for g in 0..64u64 {
                wg.add(1);
                let wg = wg.clone();
                mu.go(move || {
                    for i in 0..1000 {
                        leave_garbage_below(mu, g * 1000 + i);
                        yield_now();
                        park_deep();
                    }
                    wg.done();
                });
            }
            wg.wait();
            assert_eq!(live.map(|n| n.value), Some(199_999));
        })
        .unwrap();
        let concurrent = collector
            .cycles()
            .iter()
            .filter(|c| c.pauses.len() > 1)
            .count();
        assert!(concurrent > 10, "{concurrent} cycles marked concurrently");
    }
}

/// Thread-locals must be read through a function that is not inlined into code that parks:
/// LLVM computes a thread-local's address once per function, and a goroutine may resume on
/// another thread (the documented rule for users).
#[inline(never)]
fn thread_now() -> std::thread::ThreadId {
    std::thread::current().id()
}

#[test]
fn goroutines_migrate_between_threads_and_keep_their_identity() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let t = threads.clone();
    rt.run(move |mu| {
        let wg = WaitGroup::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for _ in 0..8 {
            wg.add(1);
            let (wg, t) = (wg.clone(), t.clone());
            mu.go(move || {
                let me = goroutine_id();
                let first = thread_now();
                let mut i = 0u64;
                // Park until this goroutine has resumed on another thread (or time is up:
                // the second M's thread may take a while to get a CPU on a busy machine).
                while thread_now() == first && std::time::Instant::now() < deadline {
                    yield_now();
                    assert_eq!(goroutine_id(), me, "the runtime lost track after park {i}");
                    if i.is_multiple_of(100) {
                        let n = Gc::new(
                            mu,
                            Node {
                                next: GcCell::new(None),
                                value: i,
                            },
                        )
                        .unwrap();
                        yield_now();
                        assert_eq!(n.value, i, "an object held across a migration");
                    }
                    i += 1;
                }
                t.lock().unwrap().insert((me, first != thread_now()));
                wg.done();
            });
        }
        wg.wait();
    })
    .unwrap();
    let results = threads.lock().unwrap();
    assert_eq!(results.len(), 8);
    assert!(
        results.iter().any(|r| r.1),
        "no goroutine ever resumed on a second thread in 5 s"
    );
}

/// Dead goroutines are recycled (Go's `gFree`): waves of short goroutines reuse Gs and their
/// stacks, so each must start with a fresh id and nothing of its predecessor's roots.
#[test]
fn recycled_goroutines_get_fresh_ids_and_their_own_roots() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    rt.run(|mu| {
        let ids: Chan<u64> = Chan::new(64);
        let mut seen = HashSet::new();
        for wave in 0..40u64 {
            let wg = WaitGroup::new();
            for k in 0..500u64 {
                wg.add(1);
                let (wg, ids) = (wg.clone(), ids.clone());
                mu.go(move || {
                    let n = Gc::new(
                        mu,
                        Node {
                            next: GcCell::new(None),
                            value: wave * 1000 + k,
                        },
                    )
                    .unwrap();
                    // Garbage enough to trigger collections while `n` lives only on this
                    // (possibly recycled) stack.
                    for _ in 0..20 {
                        Gc::new(
                            mu,
                            Node {
                                next: GcCell::new(None),
                                value: 0,
                            },
                        )
                        .unwrap();
                    }
                    yield_now();
                    assert_eq!(n.value, wave * 1000 + k);
                    ids.send(goroutine_id());
                    wg.done();
                });
            }
            for _ in 0..500 {
                assert!(
                    seen.insert(ids.recv().unwrap()),
                    "a goroutine id was reused"
                );
            }
            wg.wait();
        }
        assert_eq!(seen.len(), 20_000);
        // A goroutine may still be returning after its `done`: give the last ones a moment
        // (time, not a count of yields: other tests of this binary may load both cores).
        let t0 = std::time::Instant::now();
        while num_goroutine() != 1 && t0.elapsed() < std::time::Duration::from_secs(10) {
            yield_now();
        }
        assert_eq!(num_goroutine(), 1);
        assert!(read_mem_stats().num_gc > 0, "collections ran");
    })
    .unwrap();
}

/// Goroutines readied from outside any P (the timer thread wakes sleepers) while every M is
/// going idle must still run: an M re-checks the queues after giving its P up. A lost
/// wake-up here hangs the run, so a watchdog turns a hang into a failure.
#[test]
fn sleepers_woken_while_every_p_goes_idle_are_never_stranded() {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        if !d.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("sleepers still asleep after 60 s: a wake-up was lost");
            std::process::exit(1);
        }
    });
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.run(|mu| {
        let wg = WaitGroup::new();
        for _ in 0..4 {
            wg.add(1);
            let wg = wg.clone();
            mu.go(move || {
                for _ in 0..300 {
                    minigo_runtime::sleep(std::time::Duration::from_micros(20));
                }
                wg.done();
            });
        }
        wg.wait();
    })
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Lines of `/proc/self/maps`: the process's mappings.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count())
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn a_hundred_thousand_goroutines_park_at_once() {
    // Beyond what one mapping (and one guard mapping) per stack allowed: about 32,500
    // under the default vm.max_map_count of 65,530.
    const N: usize = 100_000;
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.run(|mu| {
        let before = (mappings(), rss_bytes());
        let release: Chan<()> = Chan::new(0);
        let parked = WaitGroup::new();
        let done = WaitGroup::new();
        for _ in 0..N {
            let (release, parked, done) = (release.clone(), parked.clone(), done.clone());
            parked.add(1);
            done.add(1);
            mu.go(move || {
                parked.done();
                assert_eq!(release.recv(), None, "released by close");
                done.done();
            });
        }
        parked.wait();
        assert_eq!(num_goroutine(), N + 1, "all parked at once");
        let peak = (mappings(), rss_bytes());
        release.close();
        done.wait();
        let maps = peak.0.saturating_sub(before.0);
        let rss = peak.1.saturating_sub(before.1);
        eprintln!(
            "{N} parked goroutines: {maps} more mappings, {} bytes of RSS each",
            rss / N as u64
        );
        if minigo_runtime::stack_guards_are_markers() == Some(true) {
            // A 64 MiB arena per 256 stacks, not two mappings per stack.
            assert!(maps < N / 100, "{maps} new mappings");
        }
    })
    .unwrap();
}

#[test]
fn no_goroutine_runs_after_run_returns() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let spins = Arc::new(AtomicU64::new(0));
    let allocs = Arc::new(AtomicU64::new(0));
    let (s, a) = (spins.clone(), allocs.clone());
    let (seen_s, seen_a) = (spins.clone(), allocs.clone());
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(move |mu| {
            // One goroutine yields in a loop, one allocates in a loop; main leaves.
            mu.go(move || loop {
                s.fetch_add(1, Ordering::Relaxed);
                yield_now();
            });
            mu.go(move || loop {
                let n = Gc::new(
                    mu,
                    Node {
                        next: GcCell::new(None),
                        value: 1,
                    },
                )
                .unwrap();
                a.fetch_add(n.value, Ordering::Relaxed);
            });
            while seen_s.load(Ordering::Relaxed) < 1000 || seen_a.load(Ordering::Relaxed) < 1000 {
                yield_now();
            }
        })
        .unwrap();
    let (s0, a0) = (
        spins.load(Ordering::Relaxed),
        allocs.load(Ordering::Relaxed),
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        (
            spins.load(Ordering::Relaxed),
            allocs.load(Ordering::Relaxed)
        ),
        (s0, a0),
        "both stopped for good when run returned"
    );
}
