//! Model 16: a P handed to an idle M that is leaving because the run is over (`mslot.rs`),
//! while a mark worker stops the world.
//!
//! One P, idle. A `wakep` takes it (`World::take_idle_p`), takes the idle M off the list
//! and hands it the P. That M, woken by the end of the run, leaves the list
//! (`IdleMs::leave`) and lets go of whatever P was on its way. A mark worker ending its
//! cycle stops the world and starts it again.
//!
//! Proves: the stop ends, whichever comes first — the P is counted running from
//! `take_idle_p` until someone releases it, and exactly one of the giver (the M was not
//! listed) or the leaving M (the M was taken off first) does. With the seeded bug
//! (`m_leave_no_wait`: the M leaves without waiting for a P it was taken off the list for)
//! the P stays running with no one to release it: the stop waits forever, or the P never
//! comes back idle (the model fails on the second). The P ends idle.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::{IdleMs, MSlot, World};

struct Shared {
    world: World,
    idle: IdleMs,
}

#[test]
fn a_p_handed_to_a_leaving_m_is_let_go() {
    model(|| {
        let s = Arc::new(Shared {
            world: World::new(1),
            idle: IdleMs::default(),
        });
        let slot = MSlot::new();
        s.idle.push(slot.clone());

        let s1 = s.clone();
        let wakep = thread::spawn(move || {
            if let Some(p) = s1.world.take_idle_p() {
                match s1.idle.pop() {
                    Some(m) => m.hand(p),
                    None => s1.world.release_p(p),
                }
            }
        });
        let s2 = s.clone();
        let leaving = thread::spawn(move || {
            if let Some(p) = s2.idle.leave(&slot) {
                s2.world.release_p(p);
            }
        });

        s.world.stop(None);
        s.world.start(None);

        wakep.join().unwrap();
        leaving.join().unwrap();
        assert_eq!(s.world.npidle(), 1, "the P was lost");
    });
}
