//! Model 15: the remembered set (card table) of a minor cycle, with a store racing its
//! mark worker.
//!
//! A generational standalone heap: a root R points at old objects O, P and Q (marked by
//! a major cycle whose sweep kept the marks; Q of another size class, so on a card of its
//! own). Between cycles the mutator allocates young Y1 and Y2 and stores them into Q and O
//! (`Q.0 = Y1`, `O.1 = Y2`), dirtying their cards, and keeps neither in its roots. It starts a minor cycle (roots traced: R; the card table becomes
//! the markers' root jobs), and while a loom thread marks as a background worker does, it
//! moves Y2 from O into P (`P.0 = O.1`, then `O.1 = null`): the marker may read O's card
//! and words before or after the move, and P's card before or after it is dirtied.
//!
//! Then the marker finishes, the mutator ends the cycle, and verify mode re-marks from the
//! roots: anything reachable and unmarked fails the model. Y1 and Y2 survived their first
//! cycle, so they are still young (objects age: `KeepMarks::Old`), and a second minor
//! cycle follows, verified as well.
//!
//! Proves: Y1, young and reachable only through an old object, is marked because its
//! store dirtied Q's card and the minor cycle scans the marked objects of dirty cards;
//! Y2 is marked whatever the interleaving (the card scan finds it in O, or the deletion
//! barrier records it when O.1 is cleared); and both are marked again by the second minor
//! cycle, because the first one's marker, finding young objects it does not promote in
//! old Q (and P), left their cards dirty (nothing writes Q during the first cycle, which
//! would dirty its card for the next one anyway). Seeded bugs CI requires to fail: a store
//! that does not dirty its card (`card_not_marked`); a cycle that moves the card table to
//! a new epoch without giving the mutator's barrier the new one (`card_epoch_stale`: its
//! store into Q then dirties a card of an epoch no scan reads); a marker that cleans the
//! card of an old object pointing at a young one that stays young (`card_not_kept`: the
//! second minor cycle then misses Y1).

#![cfg(loom)]

use loom::thread;
use minigo_gc::mark::GcWork;
use minigo_gc::Layout;
use minigo_loom_tests::{model, model_heap_aging, model_heap_with, Held};

#[test]
fn a_young_object_held_by_an_old_one_survives_a_minor_cycle() {
    model(|| {
        let heap = model_heap_with(true, true);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut roots = Held(vec![]);
        // R's 40 words make a major cycle's scan work (which a minor cycle does not
        // repeat: R is old and unwritten) several times a minor one's here, as the policy
        // wants before it runs two minor cycles in a row.
        let r = m.alloc(&Layout::pointers(40), &mut roots).unwrap().as_ptr() as usize;
        let [o, p]: [usize; 2] =
            std::array::from_fn(|_| m.alloc(&node, &mut roots).unwrap().as_ptr() as usize);
        let q = m.alloc(&Layout::pointers(3), &mut roots).unwrap().as_ptr() as usize;
        // SAFETY: pointer words of live objects of this heap.
        unsafe {
            m.write(r as *mut usize, o);
            m.write((r + 8) as *mut usize, q);
            m.write((r + 39 * 8) as *mut usize, p);
        }
        roots.0.push(r);
        // A major cycle: R, O, P and Q are old (marked, and the sweep keeps the marks).
        let major = m.collect(&mut roots);
        assert!(!major.minor);

        let [y1, y2]: [usize; 2] =
            std::array::from_fn(|_| m.alloc(&node, &mut roots).unwrap().as_ptr() as usize);
        // SAFETY: as above; Y1 and Y2 are live (just allocated).
        unsafe {
            m.write(q as *mut usize, y1);
            m.write((o + 8) as *mut usize, y2);
        }

        assert!(m.start_cycle(&mut roots));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let marker = thread::spawn(move || {
            GcWork::new().drain(&q, u64::MAX);
        });

        // SAFETY: pointer words of live objects of this heap; Y2 is live.
        unsafe {
            m.write(p as *mut usize, y2);
            m.write((o + 8) as *mut usize, 0);
        }

        marker.join().unwrap();
        then_a_second_minor_cycle(&mut m, &mut roots);
        assert_eq!(
            m.mem_stats().heap_objects,
            6,
            "R, O, P, Q, Y1 and Y2 all survive"
        );
    });
}

/// Model 15b: what a minor cycle allocates black stays young (`KeepMarks::Traced`, objects
/// not aging), and the cards that hold it are the next minor cycle's.
///
/// An old object O (held by root R) gets young Y1 between cycles (`O.0 = Y1`: O's card is
/// dirty when the minor cycle begins). While a loom thread marks, the mutator allocates Y2
/// (black) and stores it into O (`O.1 = Y2`): the store dirties O's card again, with the
/// next minor cycle's epoch, before or after the marker takes it. Verify re-marks from R
/// at the end of the cycle; Y2 is young after the sweep, reachable only through O, and a
/// second minor cycle must find it on O's card (verified too).
///
/// Proves: the marker scans a card that was dirty when the cycle began even when a store
/// has since dirtied it for the next cycle, and cleans only a card no such store reached.
/// Seeded bugs CI requires to fail: a scan that skips a card holding the next epoch
/// (`card_next_skipped`: the first minor cycle misses Y1) and a scan that cleans it
/// (`card_next_cleaned`: the second misses Y2).
#[test]
fn an_object_allocated_black_by_a_minor_cycle_is_found_by_the_next() {
    model(|| {
        let heap = model_heap_aging(true, true, false);
        let mut m = heap.mutator().unwrap();
        let node = Layout::pointers(2);
        let mut roots = Held(vec![]);
        // R's 40 words: a major cycle's scan work several times a minor one's (model 15).
        let r = m.alloc(&Layout::pointers(40), &mut roots).unwrap().as_ptr() as usize;
        let o = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        // SAFETY: pointer words of live objects of this heap.
        unsafe { m.write(r as *mut usize, o) };
        roots.0.push(r);
        assert!(!m.collect(&mut roots).minor);

        let y1 = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        // SAFETY: as above; Y1 is live (just allocated).
        unsafe { m.write(o as *mut usize, y1) };

        assert!(m.start_cycle(&mut roots));
        let q = m.collector().mark_queue().expect("the cycle marks");
        let marker = thread::spawn(move || {
            GcWork::new().drain(&q, u64::MAX);
        });
        let y2 = m.alloc(&node, &mut roots).unwrap().as_ptr() as usize;
        // SAFETY: as above; Y2 is live (just allocated, black).
        unsafe { m.write((o + 8) as *mut usize, y2) };
        marker.join().unwrap();

        then_a_second_minor_cycle(&mut m, &mut roots);
        assert_eq!(m.mem_stats().heap_objects, 4, "R, O, Y1 and Y2 all survive");
    });
}

/// Ends the minor cycle under way (verify re-marks from the roots), runs a second one
/// (verified too), then a whole major one, and checks that the cycles after the first
/// major one were minor.
fn then_a_second_minor_cycle(m: &mut minigo_gc::Mutator, roots: &mut Held) {
    finish_cycle(m, roots);
    assert!(m.start_cycle(roots));
    finish_cycle(m, roots);
    m.collect(roots);
    let cycles = m.collector().cycles();
    assert!(
        cycles.len() == 4 && cycles[1].minor && cycles[2].minor,
        "the cycles started were minor"
    );
}

/// Marks on this thread until the cycle under way ends (verify mode re-marks from the roots
/// at its end).
fn finish_cycle(m: &mut minigo_gc::Mutator, roots: &mut Held) {
    while m.marking() {
        if let Some(q) = m.collector().mark_queue() {
            GcWork::new().drain(&q, u64::MAX);
        }
        m.poll(roots);
    }
}
