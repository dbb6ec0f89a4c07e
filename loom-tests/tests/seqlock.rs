//! Model 17: an array element of two words, written by two goroutines on their own
//! threads while a third reads it (`seqlock.rs`, as `GcSlice::set` and `GcSlice::get` use
//! it for elements wider than a word).
//!
//! Two writers store (1, 1) and (2, 2) under the element's `SeqLock` while a reader reads
//! both words under it. Proves: the read gets one write's words, (0, 0), (1, 1) or
//! (2, 2), never a word of each; the writes do not interleave, and the stripe ends
//! unlocked with the last write's words. Seeded bugs, each failing it:
//! `seqlock_no_validate` (a read keeps its words without checking the stamp again) and
//! `seqlock_write_unlocked` (a writer goes ahead without waiting for the lock).

#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use minigo_loom_tests::model;
use minigo_runtime::SeqLock;

#[derive(Default)]
struct Element {
    lock: SeqLock,
    words: [AtomicUsize; 2],
}

impl Element {
    fn set(&self, v: usize) {
        self.lock.write(|| {
            for w in &self.words {
                w.store(v, Ordering::Relaxed);
            }
        })
    }

    fn get(&self) -> (usize, usize) {
        self.lock.read(|| {
            (
                self.words[0].load(Ordering::Relaxed),
                self.words[1].load(Ordering::Relaxed),
            )
        })
    }
}

#[test]
fn a_two_word_element_is_read_and_written_whole() {
    model(|| {
        let e = Arc::new(Element::default());
        let writers: Vec<_> = [1, 2]
            .into_iter()
            .map(|v| {
                let e = e.clone();
                thread::spawn(move || e.set(v))
            })
            .collect();
        let (a, b) = e.get();
        assert_eq!(a, b, "a read paired two writes' words");
        for w in writers {
            w.join().unwrap();
        }
        let (a, b) = e.get();
        assert!(a == b && a != 0, "two writes interleaved: ({a}, {b})");
    });
}
