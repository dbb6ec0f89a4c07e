//! Channels and select: Go's semantics, values kept alive in buffers, fairness.

use minigo_runtime::{
    gc, select, try_select, Chan, Gc, HeapType, Mutation, Runtime, SelectCase, TryRecvError,
    TrySendError,
};

#[derive(HeapType)]
struct Payload {
    n: u64,
    pad: [u64; 5],
}

fn run(f: impl for<'gc> FnOnce(Mutation<'gc>) + Send + 'static) {
    Runtime::builder()
        .procs(2)
        .verify(true)
        .build()
        .unwrap()
        .run(f)
        .unwrap();
}

#[test]
fn buffered_gc_values_survive_collections_in_the_buffer() {
    run(|mu| {
        let ch: Chan<Gc<Payload>> = Chan::new(1000);
        for n in 0..1000 {
            ch.send(Gc::new(mu, Payload { n, pad: [n; 5] }).unwrap());
        }
        // Only the buffer holds them now.
        for _ in 0..3 {
            gc();
            for _ in 0..10_000 {
                Gc::new(mu, Payload { n: 0, pad: [0; 5] }).unwrap();
            }
        }
        for n in 0..1000 {
            let p = ch.recv().unwrap();
            assert_eq!((p.n, p.pad), (n, [n; 5]));
        }
    });
}

#[test]
fn unbuffered_hand_off_and_ping_pong() {
    run(|mu| {
        let (ping, pong): (Chan<u64>, Chan<u64>) = (Chan::new(0), Chan::new(0));
        let (a, b) = (ping.clone(), pong.clone());
        mu.go(move || {
            while let Some(v) = a.recv() {
                b.send(v + 1);
            }
            b.close();
        });
        let mut v = 0;
        for _ in 0..10_000 {
            ping.send(v);
            v = pong.recv().unwrap();
        }
        assert_eq!(v, 10_000);
        ping.close();
        assert_eq!(pong.recv(), None, "closed by the partner");
    });
}

#[test]
fn close_semantics() {
    run(|mu| {
        let ch: Chan<u32> = Chan::new(3);
        ch.send(1);
        ch.send(2);
        ch.close();
        assert_eq!(ch.recv(), Some(1), "a closed channel drains");
        assert_eq!(ch.try_recv(), Ok(2));
        assert_eq!(ch.recv(), None);
        assert_eq!(ch.try_recv(), Err(TryRecvError::Closed));
        assert_eq!(ch.try_send(3), Err(TrySendError::Closed(3)));
        let full: Chan<u32> = Chan::new(1);
        full.send(1);
        assert_eq!(full.try_send(2), Err(TrySendError::Full(2)));
        // Receivers blocked on a channel wake with None when it closes.
        let ch: Chan<u32> = Chan::new(0);
        let done: Chan<bool> = Chan::new(0);
        for _ in 0..3 {
            let (ch, done) = (ch.clone(), done.clone());
            mu.go(move || done.send(ch.recv().is_none()));
        }
        minigo_runtime::sleep(std::time::Duration::from_millis(10));
        ch.close();
        for _ in 0..3 {
            assert!(done.recv().unwrap());
        }
    });
}

#[test]
fn send_on_closed_channel_panics_and_ends_the_run() {
    let r = Runtime::builder().procs(1).build().unwrap().run(|_| {
        let ch: Chan<u32> = Chan::new(1);
        ch.close();
        ch.send(1);
    });
    let e = r.unwrap_err();
    assert!(e.to_string().contains("send on closed channel"), "{e}");
    let r = Runtime::builder().procs(1).build().unwrap().run(|_| {
        let ch: Chan<u32> = Chan::new(1);
        ch.close();
        ch.close();
    });
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("close of closed channel"));
}

#[test]
fn select_is_fair_between_ready_cases() {
    run(|_| {
        let (a, b): (Chan<u8>, Chan<u8>) = (Chan::new(1), Chan::new(1));
        let mut picks = [0u32; 2];
        for _ in 0..10_000 {
            let _ = a.try_send(0);
            let _ = b.try_send(1);
            let mut ra = a.recv_case();
            let mut rb = b.recv_case();
            let i = select(&mut [&mut ra as &mut dyn SelectCase, &mut rb]);
            picks[i] += 1;
        }
        assert!(picks[0] > 4000 && picks[1] > 4000, "unfair: {picks:?}");
    });
}

/// Chi-squared with `k - 1` degrees of freedom of `counts` against a uniform spread.
fn chi_squared(counts: &[u32]) -> f64 {
    let total: u32 = counts.iter().sum();
    let e = total as f64 / counts.len() as f64;
    counts.iter().map(|&c| (c as f64 - e).powi(2) / e).sum()
}

#[test]
fn select_picks_uniformly_among_any_ready_subset() {
    // 100,000 selects of 4 and of 8 receive cases with some of them ready, in shapes a
    // random start would bias (adjacent ready cases: 75/25 with 4 cases, a chi-squared of
    // 25,000). The limits are chi-squared's 99.99th percentiles for 1, 2 and 3 degrees of
    // freedom (ready cases less one).
    for (n, ready, limit) in [
        (4, vec![0, 1], 15.1),
        (4, vec![1, 2, 3], 18.4),
        (8, vec![6, 7], 15.1),
        (8, vec![0, 1, 2, 7], 21.1),
    ] {
        run(move |_| {
            let chans: Vec<Chan<u8>> = (0..n).map(|_| Chan::new(1)).collect();
            let mut picks = vec![0u32; n];
            for _ in 0..100_000 {
                for &r in &ready {
                    let _ = chans[r].try_send(0);
                }
                let mut cases: Vec<_> = chans.iter().map(|c| c.recv_case()).collect();
                let mut dyns: Vec<&mut dyn SelectCase> =
                    cases.iter_mut().map(|c| c as &mut dyn SelectCase).collect();
                picks[select(&mut dyns)] += 1;
                for &r in &ready {
                    let _ = chans[r].try_recv();
                }
            }
            let counts: Vec<u32> = ready.iter().map(|&r| picks[r]).collect();
            assert_eq!(counts.iter().sum::<u32>(), 100_000, "only ready cases fire");
            let x2 = chi_squared(&counts);
            assert!(
                x2 < limit,
                "{n} cases, ready {ready:?}: {counts:?}, chi-squared {x2:.1}"
            );
        });
    }
}

#[test]
fn select_waits_for_any_case_and_sends_too() {
    run(|mu| {
        let (a, b, out): (Chan<u32>, Chan<u32>, Chan<u32>) =
            (Chan::new(0), Chan::new(0), Chan::new(0));
        let b2 = b.clone();
        mu.go(move || {
            minigo_runtime::sleep(std::time::Duration::from_millis(5));
            b2.send(7);
        });
        let mut ra = a.recv_case();
        let mut rb = b.recv_case();
        let i = select(&mut [&mut ra as &mut dyn SelectCase, &mut rb]);
        assert_eq!(i, 1);
        assert_eq!(rb.value, Some(Some(7)));
        // Nothing ready, with a default.
        let mut ra = a.recv_case();
        assert_eq!(try_select(&mut [&mut ra as &mut dyn SelectCase]), None);
        // A send case fires when a receiver comes.
        let o2 = out.clone();
        let got: Chan<u32> = Chan::new(1);
        let g2 = got.clone();
        mu.go(move || g2.send(o2.recv().unwrap()));
        let mut s = out.send_case(42);
        let mut ra = a.recv_case();
        assert_eq!(select(&mut [&mut ra as &mut dyn SelectCase, &mut s]), 1);
        assert_eq!(got.recv(), Some(42));
        // A closed channel is ready: the receive case reports None.
        a.close();
        let mut ra = a.recv_case();
        assert_eq!(select(&mut [&mut ra as &mut dyn SelectCase]), 0);
        assert_eq!(ra.value, Some(None));
    });
}

#[test]
fn many_selects_racing_many_senders_lose_nothing() {
    run(|mu| {
        let (a, b): (Chan<u64>, Chan<u64>) = (Chan::new(0), Chan::new(0));
        let total: Chan<u64> = Chan::new(0);
        for k in 0..4 {
            let (a, b, total) = (a.clone(), b.clone(), total.clone());
            mu.go(move || {
                let mut sum = 0;
                for _ in 0..500 {
                    let mut ra = a.recv_case();
                    let mut rb = b.recv_case();
                    let i = select(&mut [&mut ra as &mut dyn SelectCase, &mut rb]);
                    sum += if i == 0 { ra.value } else { rb.value }.unwrap().unwrap();
                }
                let _ = k;
                total.send(sum);
            });
        }
        for s in 0..2 {
            let (a, b) = (a.clone(), b.clone());
            mu.go(move || {
                for v in 1..=1000u64 {
                    if (v + s) % 2 == 0 {
                        a.send(v)
                    } else {
                        b.send(v)
                    }
                }
            });
        }
        let sum: u64 = (0..4).map(|_| total.recv().unwrap()).sum();
        assert_eq!(
            sum,
            2 * (1..=1000u64).sum::<u64>(),
            "every value received exactly once"
        );
    });
}
