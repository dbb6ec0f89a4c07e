//! The runtime's benchmarks, each measured inside a running runtime (criterion's thread
//! asks a goroutine to run `iters` iterations and report the time).
//!
//! - `scheduler/spawn_exit/{1,2}`: start a goroutine that exits (and wait for it), per
//!   goroutine, with 1 and 2 Ps.
//! - `scheduler/context_switch`: `yield_now` between two goroutines on one P, per switch.
//! - `scheduler/stop_the_world_10k`: stop and restart the world (`read_mem_stats`) with
//!   10,000 goroutines parked on a channel.
//! - `channels/ping_pong/{1,2}`: a round trip between two goroutines over two unbuffered
//!   channels, with 1 P (same P) and 2 Ps (across Ps).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use minigo_runtime::{blocking, go, read_mem_stats, yield_now, Chan, Runtime, WaitGroup};

/// Runs `f(iters) -> time` in a goroutine of a runtime with `procs` Ps, for criterion.
fn in_runtime(
    c: &mut Criterion,
    group: &str,
    id: BenchmarkId,
    procs: usize,
    setup: fn(),
    f: fn(u64) -> Duration,
) {
    let (req_tx, req_rx) = mpsc::channel::<u64>();
    let (resp_tx, resp_rx) = mpsc::channel::<Duration>();
    let runner = std::thread::spawn(move || {
        Runtime::builder()
            .procs(procs)
            .build()
            .unwrap()
            .run(move |_| {
                setup();
                while let Ok(n) = blocking(|| req_rx.recv()) {
                    resp_tx.send(f(n)).unwrap();
                }
            })
            .unwrap()
    });
    let mut g = c.benchmark_group(group);
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            req_tx.send(iters).unwrap();
            resp_rx.recv().unwrap()
        })
    });
    g.finish();
    drop(req_tx);
    runner.join().unwrap();
}

fn no_setup() {}

fn spawn_exit(n: u64) -> Duration {
    let wg = WaitGroup::new();
    let t = Instant::now();
    for _ in 0..n {
        wg.add(1);
        let wg = wg.clone();
        go(move || wg.done());
    }
    wg.wait();
    t.elapsed()
}

fn context_switch(n: u64) -> Duration {
    let done = WaitGroup::new();
    done.add(1);
    let d = done.clone();
    go(move || {
        for _ in 0..n {
            yield_now();
        }
        d.done();
    });
    let t = Instant::now();
    for _ in 0..n {
        yield_now();
    }
    done.wait();
    // Two goroutines yielded n times each: 2n switches.
    t.elapsed() / 2
}

fn ping_pong(n: u64) -> Duration {
    let (ping, pong): (Chan<u64>, Chan<u64>) = (Chan::new(0), Chan::new(0));
    let (a, b) = (ping.clone(), pong.clone());
    go(move || {
        for _ in 0..n {
            let v = a.recv().unwrap();
            b.send(v + 1);
        }
    });
    let t = Instant::now();
    for i in 0..n {
        ping.send(i);
        pong.recv();
    }
    t.elapsed()
}

fn park_ten_thousand() {
    let never: Chan<()> = Chan::new(0);
    for _ in 0..10_000 {
        let never = never.clone();
        go(move || {
            never.recv();
        });
    }
    // Let every one of them start and park.
    for _ in 0..100 {
        yield_now();
    }
}

fn stop_the_world(n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(read_mem_stats());
    }
    t.elapsed()
}

fn benches(c: &mut Criterion) {
    for procs in [1, 2] {
        in_runtime(
            c,
            "scheduler",
            BenchmarkId::new("spawn_exit", procs),
            procs,
            no_setup,
            spawn_exit,
        );
    }
    in_runtime(
        c,
        "scheduler",
        BenchmarkId::new("context_switch", 1),
        1,
        no_setup,
        context_switch,
    );
    in_runtime(
        c,
        "scheduler",
        BenchmarkId::new("stop_the_world_10k", 2),
        2,
        park_ten_thousand,
        stop_the_world,
    );
    for procs in [1, 2] {
        in_runtime(
            c,
            "channels",
            BenchmarkId::new("ping_pong", procs),
            procs,
            no_setup,
            ping_pong,
        );
    }
}

criterion_group! {
    name = runtime;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(runtime);
