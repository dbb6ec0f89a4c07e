//! Model 11: a goroutine preempted asynchronously while the world stops to start a cycle,
//! and a mark worker that reaches its stack as the world restarts (`preempt.rs`'s stop in
//! place, `scan_claim.rs`).
//!
//! Two Ps. P0's M stops the world (`begin_stop`, then `wait_stopped`, as
//! `Sched::stop_world` does after asking sysmon to hurry), starts a cycle (epoch 1:
//! "marking" is set for the duration of the stop and after it) and restarts the world.
//! P1 runs a goroutine that sysmon's signal stopped away from any safepoint: it stops its
//! P in place (`stop_self`), and when the world runs again makes sure its stack is scanned
//! for the cycle before it runs on (`scan_once`), as `Sched::stop_in_place` does. A mark
//! worker takes the goroutine's root job (`scan_once` on the same claim word) once the
//! cycle has started.
//!
//! Proves: the stack is scanned exactly once for the cycle, never while the goroutine
//! runs (the worker's scan cannot overlap the goroutine's steps after its own
//! `scan_once`), and no goroutine step happens while the world is stopped.

#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::{scan_once, World};

struct Shared {
    world: World,
    /// Between the stopper's `stop` and `start`.
    stopped: AtomicBool,
    /// The cycle has started (set inside the stop, never cleared in this model).
    marking: AtomicBool,
    /// The goroutine is executing its own code (not stopped, not waiting for its scan).
    running: AtomicBool,
    /// The goroutine's claim word.
    scan_gen: AtomicU32,
    scans: AtomicUsize,
}

impl Shared {
    fn scan(&self) {
        assert!(
            !self.running.load(Ordering::SeqCst),
            "a stack was scanned while its goroutine ran"
        );
        self.scans.fetch_add(1, Ordering::SeqCst);
        // The scan takes a while: let the others move meanwhile.
        thread::yield_now();
        assert!(
            !self.running.load(Ordering::SeqCst),
            "the goroutine ran on while its stack was being scanned"
        );
    }

    fn goroutine_step(&self) {
        assert!(
            !self.stopped.load(Ordering::SeqCst),
            "a goroutine ran while the world was stopped"
        );
        self.running.store(true, Ordering::SeqCst);
        self.running.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_preempted_goroutine_runs_on_only_after_its_stack_is_scanned() {
    model(|| {
        let s = Arc::new(Shared {
            world: World::new(2),
            stopped: AtomicBool::new(false),
            marking: AtomicBool::new(false),
            running: AtomicBool::new(false),
            scan_gen: AtomicU32::new(0),
            scans: AtomicUsize::new(0),
        });
        let ps: Vec<usize> = (0..2).map(|_| s.world.take_idle_p().unwrap()).collect();
        assert_eq!(ps, [0, 1]);

        let g = s.clone();
        let preempted = thread::spawn(move || {
            g.goroutine_step();
            // The signal's trampoline: stop in place, then scanned before running on.
            g.world.stop_self(1);
            if g.marking.load(Ordering::SeqCst) {
                scan_once(&g.scan_gen, 1, || g.scan());
            }
            g.goroutine_step();
            g.world.release_p(1);
        });
        let w = s.clone();
        let worker = thread::spawn(move || {
            while !w.marking.load(Ordering::SeqCst) || w.stopped.load(Ordering::SeqCst) {
                thread::yield_now();
            }
            scan_once(&w.scan_gen, 1, || w.scan());
        });

        s.world.begin_stop(Some(0));
        s.world.wait_stopped();
        s.stopped.store(true, Ordering::SeqCst);
        s.marking.store(true, Ordering::SeqCst);
        s.stopped.store(false, Ordering::SeqCst);
        s.world.start(Some(0));

        preempted.join().unwrap();
        worker.join().unwrap();
        // The goroutine may have stopped in place before the stop began only if it saw
        // it: either way, once the cycle marks, its stack is scanned exactly once.
        assert_eq!(
            s.scans.load(Ordering::SeqCst),
            1,
            "scanned once for the cycle"
        );
    });
}
