//! Model 7: a channel's send, receive and close racing, over the production channel code and
//! the production park/wake handshake (`status.rs`), with loom threads as goroutines.
//!
//! For a buffered channel (capacity 1) and an unbuffered one: a sender sends 1 then 2; a
//! receiver receives until the channel is closed and drained; the main goroutine waits for
//! the sender, closes the channel, and then drains it too, racing the receiver. Depending on
//! the interleaving, values go through the buffer or hand to hand, the receiver parks and is
//! woken by a send (before or after it has finished parking: READY_EARLY) or by the close,
//! and a full buffer's waiting sender is unblocked by a receive.
//!
//! Proves: no value is lost or delivered twice (the two receivers together get exactly
//! {1, 2}, each in send order), a closed channel still delivers what it buffered before
//! reporting closed, and nobody is left parked (loom reports a deadlock otherwise).

#![cfg(loom)]

use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::{Chan, LoomSched};

fn drain(ch: &Chan<u32>) -> Vec<u32> {
    let mut got = Vec::new();
    while let Some(v) = ch.recv() {
        got.push(v);
    }
    got
}

fn race(cap: usize) {
    model(move || {
        let sched = LoomSched::new();
        LoomSched::enter(&sched, || {
            let ch = Chan::<u32>::new(cap);
            let (tx, rx) = (ch.clone(), ch.clone());
            let (s1, s2) = (sched.clone(), sched.clone());
            let sender = thread::spawn(move || {
                LoomSched::enter(&s1, || {
                    tx.send(1);
                    tx.send(2);
                })
            });
            let receiver = thread::spawn(move || LoomSched::enter(&s2, || drain(&rx)));
            sender.join().unwrap();
            ch.close();
            let mine = drain(&ch);
            let theirs = receiver.join().unwrap();
            for got in [&mine, &theirs] {
                assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
            }
            let mut all = [mine, theirs].concat();
            all.sort_unstable();
            assert_eq!(all, [1, 2], "each value delivered exactly once");
        })
    });
}

#[test]
fn buffered_send_receive_close() {
    race(1);
}

#[test]
fn unbuffered_send_receive_close() {
    race(0);
}
