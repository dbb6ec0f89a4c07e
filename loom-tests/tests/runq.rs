//! Model 5: a P's run queue (ring + `runnext`) with its owner pushing and popping, a thief
//! stealing, and overflow to the global queue.
//!
//! The ring has 4 slots under loom (`RUNQ_SIZE`), so a full ring, its overflow of half plus
//! the newcomer to the global queue (`runqputslow`), and wrap-around are all reachable. The
//! owner P queues six goroutines (one through `runnext`, which pushes the previous `runnext`
//! into the ring) and runs two; a thief P steals half the ring in one batch into its own
//! ring and runs what it got; a third thread, an M with an empty P, takes from the global
//! queue. When all are done, whatever is still queued anywhere is drained.
//!
//! Proves: every goroutine is taken exactly once — none lost, none run twice — whichever
//! of owner, thief and global consumer wins each race on the ring's head, the `runnext`
//! slot and the overflow.

#![cfg(loom)]

use std::ptr::NonNull;

use loom::sync::Arc;
use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::{GlobalQueue, LocalQueue};

const N: usize = 6;

/// Goroutine tokens: distinct non-null pointers (never dereferenced).
fn g(i: usize) -> NonNull<u8> {
    NonNull::new((i * 8) as *mut u8).unwrap()
}

fn id(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize / 8
}

#[test]
fn owner_thief_and_global_take_every_goroutine_once() {
    model(|| {
        let owner = Arc::new(LocalQueue::<u8>::default());
        let global = Arc::new(GlobalQueue::<u8>::default());

        let (o, gq) = (owner.clone(), global.clone());
        let thief = thread::spawn(move || {
            let mine = LocalQueue::<u8>::default();
            let mut got = Vec::new();
            got.extend(o.steal_into(&mine, true).map(id));
            while let Some(x) = mine.pop() {
                got.push(id(x));
            }
            got.extend(gq.pop().map(id));
            got
        });
        let gq = global.clone();
        let idle_m = thread::spawn(move || gq.pop().map(id).into_iter().collect::<Vec<_>>());

        let mut ran = Vec::new();
        for i in 1..=N {
            owner.push(g(i), i == 3, &global);
            if i % 3 == 0 {
                ran.extend(owner.pop().map(id));
            }
        }

        let mut all = ran;
        all.extend(thief.join().unwrap());
        all.extend(idle_m.join().unwrap());
        while let Some(x) = owner.pop() {
            all.push(id(x));
        }
        while let Some(x) = global.pop() {
            all.push(id(x));
        }
        all.sort_unstable();
        assert_eq!(
            all,
            (1..=N).collect::<Vec<_>>(),
            "each goroutine exactly once"
        );
    });
}
