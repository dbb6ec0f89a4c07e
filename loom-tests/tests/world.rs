//! Model 6: the stop-the-world handshake (`World`), with one P stopping the world, one P
//! running a goroutine that reaches safepoints, and one goroutine leaving `blocking`.
//!
//! Three Ps, all taken at the start as `wakep` takes them. P0's M stops the world, "collects"
//! (sets `STOPPED` for the duration, with a yield inside), and restarts it. P1's goroutine
//! runs two mutator steps, each after a safepoint check (`stopping` -> `stop_self`), then its
//! M runs dry and releases P1. P2's goroutine enters `blocking` (releases P2), and on
//! leaving it takes a P again (`acquire_p`), runs a mutator step, and releases it.
//!
//! Proves: no mutator step happens while the world is stopped — a running P is counted
//! until it stops itself at a safepoint or lets its P go, and no one takes a P while
//! `gcwaiting` is set; the stopper's wait ends (every P acknowledges: a stop that waited for
//! a P that never answers would deadlock, which loom reports); and the world restarts
//! (every thread finishes).

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::World;

struct Shared {
    world: World,
    /// Set by the stopper between `stop` and `start`: "the collector is running".
    stopped: AtomicBool,
    steps: AtomicUsize,
}

impl Shared {
    fn mutator_step(&self) {
        assert!(
            !self.stopped.load(Ordering::SeqCst),
            "a goroutine ran while the world was stopped"
        );
        self.steps.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn no_goroutine_runs_while_the_world_is_stopped() {
    model(|| {
        let s = Arc::new(Shared {
            world: World::new(3),
            stopped: AtomicBool::new(false),
            steps: AtomicUsize::new(0),
        });
        let ps: Vec<usize> = (0..3).map(|_| s.world.take_idle_p().unwrap()).collect();
        assert_eq!(ps, [0, 1, 2]);

        let s1 = s.clone();
        let running = thread::spawn(move || {
            for _ in 0..2 {
                if s1.world.stopping() {
                    s1.world.stop_self(1);
                }
                s1.mutator_step();
            }
            s1.world.release_p(1);
        });
        let s2 = s.clone();
        let blocking = thread::spawn(move || {
            s2.world.release_p(2);
            let p = s2.world.acquire_p();
            s2.mutator_step();
            s2.world.release_p(p);
        });

        s.world.stop(Some(0));
        s.stopped.store(true, Ordering::SeqCst);
        thread::yield_now();
        s.stopped.store(false, Ordering::SeqCst);
        s.world.start(Some(0));

        running.join().unwrap();
        blocking.join().unwrap();
        assert_eq!(s.steps.load(Ordering::SeqCst), 3);
        assert!(!s.world.stopping());
    });
}
