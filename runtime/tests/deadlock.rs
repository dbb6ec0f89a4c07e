//! Deadlock detection: a run whose goroutines are all asleep on each other ends with
//! Go's "all goroutines are asleep - deadlock!" instead of hanging; a run that only looks
//! idle (sleepers, a `blocking` call, a collection) is left alone.

use std::process::Command;
use std::time::{Duration, Instant};

use minigo_runtime::{
    blocking, gc, go, select, sleep, Chan, RunError, Runtime, SelectCase, WaitGroup,
};

fn run(procs: usize, f: impl FnOnce() + Send + 'static) -> (Result<(), RunError>, Duration) {
    let rt = Runtime::builder().procs(procs).build().unwrap();
    let t0 = Instant::now();
    let r = rt.run(move |_| f());
    (r, t0.elapsed())
}

#[track_caller]
fn deadlocks(procs: usize, goroutines: usize, f: impl FnOnce() + Send + 'static) {
    let (r, took) = run(procs, f);
    assert_eq!(r, Err(RunError::Deadlock { goroutines }));
    assert!(
        r.unwrap_err()
            .to_string()
            .starts_with("all goroutines are asleep - deadlock!"),
        "Go's words"
    );
    // Detection takes two looks 20 ms apart after the last P goes idle; a generous bound
    // for a loaded machine.
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn main_waiting_on_a_channel_nobody_sends_on() {
    for procs in [1, 2] {
        deadlocks(procs, 1, || {
            let never: Chan<u8> = Chan::new(0);
            never.recv();
        });
    }
}

#[test]
fn two_goroutines_waiting_on_each_other_and_main_on_them() {
    deadlocks(2, 3, || {
        let (a, b): (Chan<u8>, Chan<u8>) = (Chan::new(0), Chan::new(0));
        let wg = WaitGroup::new();
        for (recv_from, send_to) in [(a.clone(), b.clone()), (b, a)] {
            wg.add(1);
            let wg = wg.clone();
            go(move || {
                let v = recv_from.recv().unwrap();
                send_to.send(v);
                wg.done();
            });
        }
        wg.wait();
    });
}

#[test]
fn a_select_on_channels_nobody_uses() {
    deadlocks(2, 1, || {
        // Nobody sends on `a`, and `b`'s one slot is full: neither case can proceed.
        let (a, b): (Chan<u8>, Chan<u8>) = (Chan::new(0), Chan::new(1));
        assert!(b.try_send(1).is_ok());
        let (mut ra, mut sb) = (a.recv_case(), b.send_case(2));
        select(&mut [&mut ra as &mut dyn SelectCase, &mut sb]);
    });
}

#[test]
fn sleepers_blocking_calls_and_collections_are_not_deadlocks() {
    let (r, _) = run(2, || {
        let ch: Chan<u8> = Chan::new(0);
        let tx = ch.clone();
        // Main waits on the channel while the only other goroutine sleeps, then spends
        // time in `blocking` (no P held), then collects, then sends.
        go(move || {
            sleep(Duration::from_millis(150));
            blocking(|| std::thread::sleep(Duration::from_millis(150)));
            gc();
            tx.send(7);
        });
        assert_eq!(ch.recv(), Some(7));
    });
    assert_eq!(r, Ok(()));
}

fn scenario() -> Option<String> {
    std::env::var("MINIGO_DEADLOCK_SCENARIO").ok()
}

#[test]
fn under_abort_on_panic_a_deadlock_exits_like_go() {
    if scenario().as_deref() == Some("abort") {
        let _ = Runtime::builder()
            .procs(1)
            .abort_on_panic(true)
            .build()
            .unwrap()
            .run(|_| {
                let never: Chan<u8> = Chan::new(0);
                never.recv();
            });
        unreachable!("the deadlock exits");
    }
    let o = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "under_abort_on_panic_a_deadlock_exits_like_go",
            "--nocapture",
        ])
        .env("MINIGO_DEADLOCK_SCENARIO", "abort")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("fatal error: all goroutines are asleep - deadlock!"),
        "{stderr}"
    );
}
