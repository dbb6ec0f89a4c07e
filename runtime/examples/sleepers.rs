//! Timer lateness: N goroutines each sleep a random 0-100 ms, all started at once, and
//! report how late they woke; prints the median, 99th percentile and maximum lateness.
//!
//! `cargo run --release -p minigo-runtime --example sleepers -- [N=100000] [PROCS=2]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minigo_runtime::{go, sleep, Runtime, WaitGroup};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(100_000, |s| s.parse().expect("N: a number"));
    let procs: usize = args
        .next()
        .map_or(2, |s| s.parse().expect("PROCS: a number"));
    let late = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let l = late.clone();
    Runtime::builder()
        .procs(procs)
        .build()
        .expect("a runtime")
        .run(move |_| {
            let wg = WaitGroup::new();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            for _ in 0..n {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let d = Duration::from_micros(seed % 100_000);
                let (wg, l) = (wg.clone(), l.clone());
                wg.add(1);
                go(move || {
                    let t = Instant::now();
                    sleep(d);
                    let late = t.elapsed().saturating_sub(d);
                    l.lock().unwrap().push(late);
                    wg.done();
                });
            }
            wg.wait();
        })
        .expect("the run");
    let mut late = late.lock().unwrap().clone();
    late.sort();
    let q = |f: f64| late[((late.len() as f64 * f) as usize).min(late.len() - 1)];
    println!(
        "{n} sleepers on {procs} Ps: lateness median {:?}, p99 {:?}, max {:?}",
        q(0.5),
        q(0.99),
        late[late.len() - 1]
    );
}
