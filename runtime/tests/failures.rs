//! Failures reach the user as errors or clear messages: a panicking goroutine, running out
//! of memory under `max_heap`, a goroutine stack overflow (a subprocess: it ends the
//! process, as in Go), and Go's environment variables.

use std::process::Command;

use minigo_runtime::{
    blocking, gc, go, num_goroutine, procs, read_mem_stats, sleep, stack_guards_are_markers,
    AllocError, Chan, Gc, GcCell, GcSlice, Global, HeapType, RunError, Runtime,
};

#[derive(HeapType)]
struct Big {
    words: [u64; 64],
}

#[test]
fn a_panicking_goroutine_is_reported_with_its_id_and_message() {
    let r = Runtime::builder().procs(2).build().unwrap().run(|_| {
        let id = go(|| panic!("the answer is {}", 42));
        assert!(id > 1);
        // Main waits forever; the panic ends the run.
        let never: Chan<()> = Chan::new(0);
        never.recv();
    });
    match r {
        Err(RunError::Panic { goroutine, message }) => {
            assert!(goroutine > 1, "not main: {goroutine}");
            assert_eq!(message, "the answer is 42");
        }
        r => panic!("{r:?}"),
    }
    let r = Runtime::builder()
        .procs(1)
        .build()
        .unwrap()
        .run(|_| panic!("main gives up"));
    assert_eq!(
        r,
        Err(RunError::Panic {
            goroutine: 1,
            message: "main gives up".into()
        })
    );
}

#[test]
fn out_of_memory_under_max_heap_reaches_the_goroutine_as_an_error() {
    let r = Runtime::builder()
        .procs(2)
        .max_heap(Some(16 << 20))
        .build()
        .unwrap()
        .run(|mu| {
            let keep: Chan<Gc<Big>> = Chan::new(1 << 20);
            let err = loop {
                match Gc::new(mu, Big { words: [1; 64] }) {
                    Ok(b) => keep.send(b),
                    Err(e) => break e,
                }
            };
            assert!(matches!(err, AllocError::OutOfMemory { .. }), "{err:?}");
            assert!(
                keep.len() > 20_000,
                "filled the limit first: {}",
                keep.len()
            );
            let err = GcSlice::new(mu, 10 << 20, 0u64).unwrap_err();
            assert!(matches!(err, AllocError::OutOfMemory { .. }));
            // Letting go makes room again.
            while keep.try_recv().is_ok() {}
            for _ in 0..100_000 {
                Gc::new(mu, Big { words: [2; 64] }).unwrap();
            }
            assert!(read_mem_stats().num_gc > 0);
        });
    r.unwrap();
}

/// Runs this test binary again with `MINIGO_CHILD=scenario`, selecting `test`; returns its
/// exit status and stderr.
fn child(test: &str, scenario: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("MINIGO_CHILD", scenario);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scenario() -> Option<String> {
    std::env::var("MINIGO_CHILD").ok()
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let pad = std::hint::black_box([n; 32]);
    if n == 0 {
        0
    } else {
        pad[3] + recurse(n - 1)
    }
}

#[test]
fn a_goroutine_stack_overflow_is_reported_not_a_bare_segfault() {
    if scenario().as_deref() == Some("overflow") {
        let _ = Runtime::builder()
            .procs(1)
            .stack_size(64 << 10)
            .build()
            .unwrap()
            .run(|_| {
                eprintln!("guard markers: {:?}", stack_guards_are_markers());
                go(|| {
                    std::hint::black_box(recurse(u64::MAX));
                });
                sleep(std::time::Duration::from_secs(10));
            });
        unreachable!("the overflow ends the process");
    }
    // Both kinds of guard page: markers in a shared mapping (Linux 6.13+), and mprotect
    // pages (older kernels; forced here).
    for (env, kind) in [
        (&[][..], None),
        (
            &[("GODEBUG", "stackguard=mprotect")][..],
            Some("Some(false)"),
        ),
    ] {
        let (code, stderr) = child(
            "a_goroutine_stack_overflow_is_reported_not_a_bare_segfault",
            "overflow",
            env,
        );
        assert_eq!(code, Some(2), "exit status 2, as Go; stderr: {stderr}");
        assert!(
            stderr.contains("fatal error: goroutine 2: stack overflow"),
            "{stderr}"
        );
        if let Some(kind) = kind {
            assert!(
                stderr.contains(&format!("guard markers: {kind}")),
                "{stderr}"
            );
        }
    }
}

#[test]
fn abort_on_panic_exits_like_go() {
    if scenario().as_deref() == Some("abort") {
        let _ = Runtime::builder()
            .procs(1)
            .abort_on_panic(true)
            .build()
            .unwrap()
            .run(|_| {
                go(|| panic!("boom"));
                sleep(std::time::Duration::from_secs(10));
            });
        unreachable!("the panic aborts");
    }
    let (code, stderr) = child("abort_on_panic_exits_like_go", "abort", &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("panic: boom") && stderr.contains("goroutine 2"),
        "{stderr}"
    );
}

#[test]
fn go_environment_variables_configure_the_runtime() {
    if scenario().as_deref() == Some("env") {
        let rt = Runtime::new().unwrap();
        assert_eq!(rt.collector().config().gogc, None, "GOGC=off");
        assert_eq!(rt.collector().config().memory_limit, Some(64 << 20));
        assert!(rt.collector().config().trace);
        rt.run(|_| {
            assert_eq!(procs(), 3);
            assert_eq!(num_goroutine(), 1);
            minigo_runtime::gc();
        })
        .unwrap();
        return;
    }
    let env = [
        ("GOMAXPROCS", "3"),
        ("GOGC", "off"),
        ("GOMEMLIMIT", "64MiB"),
        ("GODEBUG", "gctrace=1"),
    ];
    let (code, stderr) = child(
        "go_environment_variables_configure_the_runtime",
        "env",
        &env,
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("gc 1 @") && stderr.contains(" 3 P (forced)"),
        "a gctrace line: {stderr}"
    );
    let (code, stderr) = child(
        "go_environment_variables_configure_the_runtime",
        "env",
        &[("GOGC", "lots")],
    );
    assert_ne!(code, Some(0));
    assert!(stderr.contains("GOGC"), "{stderr}");
}

#[test]
fn a_panic_caught_around_blocking_leaves_the_goroutine_its_p() {
    Runtime::builder()
        .procs(2)
        .build()
        .unwrap()
        .run(|mu| {
            for i in 0..100 {
                let caught = std::panic::catch_unwind(|| blocking(|| panic!("in blocking {i}")));
                let message = *caught.unwrap_err().downcast::<String>().unwrap();
                assert_eq!(message, format!("in blocking {i}"));
                // Allocating, collecting and parking need the P back.
                let b = Gc::new(mu, Big { words: [i; 64] }).unwrap();
                gc();
                let ch: Chan<u64> = Chan::new(0);
                let tx = ch.clone();
                mu.go(move || tx.send(b.words[7]));
                assert_eq!(ch.recv(), Some(i));
            }
        })
        .unwrap();
}

/// Allocation needs a P: on a thread that is not one of the runtime's (a scoped thread,
/// the only kind the brand lets a `Mutation` reach) it is an error, not a panic. Without
/// a runtime there is no `Mutation` to allocate with at all.
#[test]
fn allocating_outside_a_goroutine_is_an_error() {
    let r = Runtime::builder().procs(1).build().unwrap().run(|mu| {
        let beside = std::thread::scope(|s| {
            s.spawn(|| {
                (
                    Gc::new(mu, Big { words: [2; 64] }).err(),
                    GcSlice::new(mu, 4, 0u64).err(),
                )
            })
            .join()
            .unwrap()
        });
        assert_eq!(
            beside,
            (
                Some(AllocError::NotInGoroutine),
                Some(AllocError::NotInGoroutine)
            )
        );
        assert_eq!(Gc::new(mu, Big { words: [3; 64] }).unwrap().words[63], 3);
    });
    assert_eq!(r, Ok(()));
    assert!(AllocError::NotInGoroutine
        .to_string()
        .contains("outside a goroutine"));
}

/// A `Gc` kept where the collector does not look (a `Vec`) across collections names a
/// freed slot: `Global` refuses it with a message, instead of making the collector mark
/// through it. (A `Gc` of another runtime, the other way to get here, is a compile error:
/// the brand, `Mutation`'s doc.)
#[test]
fn a_global_refuses_a_gc_the_collector_freed() {
    std::panic::set_hook(Box::new(|_| {}));
    let r = Runtime::builder().procs(1).build().unwrap().run(|mu| {
        let hidden: Vec<Gc<Big>> = (0..1000)
            .map(|i| Gc::new(mu, Big { words: [i; 64] }).unwrap())
            .collect();
        gc();
        gc();
        let refused: Vec<String> = hidden
            .iter()
            .filter_map(|&g| {
                std::panic::catch_unwind(|| drop(Global::new(g)))
                    .err()
                    .map(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())
            })
            .collect();
        // A few may be kept by stale copies on the stack (scanned conservatively).
        assert!(refused.len() > 900, "{} of 1000 refused", refused.len());
        // Checked builds hold a freed slot back from reuse for a few cycles, and know
        // which cycle freed it.
        let says = match cfg!(any(debug_assertions, feature = "checked")) {
            true => "names an object freed by cycle",
            false => "is not an object of this runtime's heap",
        };
        assert!(refused[0].contains(says), "{}", refused[0]);
    });
    assert_eq!(r, Ok(()));
}

#[derive(HeapType)]
struct Link<'gc> {
    next: GcCell<Option<Gc<'gc, Link<'gc>>>>,
}

/// What refuses a store from a thread of no goroutine: checked builds refuse the
/// handle's read before the barrier sees the store.
const REFUSAL: &str = if cfg!(any(debug_assertions, feature = "checked")) {
    "read outside a goroutine"
} else {
    "would skip the write"
};

/// Runs `store` on a scoped thread, which runs no goroutine, and returns its panic's
/// message.
fn refused_off_goroutine(store: impl FnOnce() + Send) -> String {
    std::thread::scope(|s| s.spawn(store).join())
        .map_err(|e| e.downcast_ref::<String>().cloned().unwrap_or_default())
        .expect_err("refused")
}

/// A store into a run's object from a thread that runs none of its goroutines (a scoped
/// thread, which the brand lets a handle reach) would skip the write barrier: refused with
/// a message while the barrier is on (in generational mode, from the first cycle that
/// keeps its marks on: stores into old objects must dirty cards), instead of a reachable
/// object freed later.
#[test]
fn a_store_from_a_thread_of_no_goroutine_is_refused() {
    let rt = Runtime::builder()
        .procs(1)
        .generational(true)
        .build()
        .unwrap();
    let r = rt.run(|mu| {
        let link = || Link {
            next: GcCell::new(None),
        };
        let (a, b) = (Gc::new(mu, link()).unwrap(), Gc::new(mu, link()).unwrap());
        gc(); // `a` and `b` are old now, and the barrier stays on
        let message = refused_off_goroutine(|| a.next.set(Some(b)));
        assert!(message.contains(REFUSAL), "{message}");
        a.next.set(Some(b)); // from the goroutine itself
        assert!(a.next.get().is_some());
    });
    assert_eq!(r, Ok(()));
}

#[derive(HeapType, Clone, Copy)]
enum Held<'gc> {
    Link(Gc<'gc, Link<'gc>>),
    Pair(u64, u64),
}

/// A `GcSlice` element of several words with a pointer is written under a seqlock, whole:
/// a store from a thread that runs no goroutine is refused before any word is stored,
/// barrier on or not (the barrier coming on between two words would leave half an
/// element, which the lock would publish as whole).
#[test]
fn a_multiword_store_from_a_thread_of_no_goroutine_is_refused_whole() {
    std::panic::set_hook(Box::new(|_| {}));
    let rt = Runtime::builder().procs(1).build().unwrap();
    let r = rt.run(|mu| {
        let s = GcSlice::new(mu, 1, Held::Pair(1, 2)).unwrap();
        let message = refused_off_goroutine(|| s.set(0, Held::Pair(3, 4)));
        assert!(message.contains(REFUSAL), "{message}");
        assert!(matches!(s.get(0), Held::Pair(1, 2)), "nothing was stored");
    });
    assert_eq!(r, Ok(()));
}
