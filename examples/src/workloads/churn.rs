//! churn: the allocator's and collector's steady state. COUNT 32-byte objects are
//! allocated one after another; the last WINDOW of them stay alive in a heap array (a
//! ring: allocation i replaces allocation i - WINDOW), so the live heap is small and
//! constant and almost everything allocated is garbage by the next collection.
//!
//! It checks itself as it goes: the object an allocation evicts from the ring must be
//! allocation i - WINDOW with its contents intact (an object freed while still in the ring
//! would have been reused and overwritten by a later allocation).

use std::time::Instant;

use minigo_runtime::{GcSlice, HeapType, Mutation};

use super::{at_most, out_of_memory, parse_count_in, Out, Verdict};
use minigo_runtime::Gc;

/// `churn [COUNT] [WINDOW]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Allocations.
    pub count: u64,
    /// How many of the latest stay alive.
    pub window: u64,
}

impl Params {
    /// `[COUNT] [WINDOW]`, defaults 100,000,000 and 10,000.
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("churn", args, 2)?;
        let count = match args.first() {
            Some(s) => parse_count_in("churn COUNT", s, 1, 1 << 40)?,
            None => 100_000_000,
        };
        let window = match args.get(1) {
            Some(s) => parse_count_in("churn WINDOW", s, 1, 1 << 26)?,
            None => 10_000,
        };
        Ok(Params { count, window })
    }
}

/// A 32-byte object with no pointers: its number and three words derived from it.
#[derive(HeapType)]
struct Obj {
    id: u64,
    a: u64,
    b: u64,
    c: u64,
}

fn words(id: u64) -> (u64, u64, u64) {
    let a = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (a, a.rotate_left(21) ^ id, !id)
}

fn intact(o: &Obj, id: u64) -> bool {
    o.id == id && (o.a, o.b, o.c) == words(id)
}

/// Runs churn (from a goroutine), printing its result line to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let window: GcSlice<Option<Gc<Obj>>> =
        GcSlice::new(mu, p.window as usize, None).unwrap_or_else(|e| out_of_memory("churn", e));
    let w = p.window;
    let mut bad = None;
    let start = Instant::now();
    let (mut slot, mut evicted) = (0usize, 0u64);
    for id in 0..p.count {
        let (a, b, c) = words(id);
        let obj = Gc::new(mu, Obj { id, a, b, c }).unwrap_or_else(|e| out_of_memory("churn", e));
        if id >= w {
            match window.get(slot) {
                Some(old) if intact(&old, evicted) => {}
                _ => {
                    bad.get_or_insert(evicted);
                }
            }
            evicted += 1;
        }
        window.set(slot, Some(obj));
        slot += 1;
        if slot == w as usize {
            slot = 0;
        }
    }
    let elapsed = start.elapsed();
    let mut survivors = 0;
    for i in 0..w.min(p.count) {
        let id = p.count - 1 - i;
        let slot = (id % w) as usize;
        match window.get(slot) {
            Some(o) if intact(&o, id) => survivors += 1,
            _ => {
                bad.get_or_insert(id);
            }
        }
    }
    out.line(format!(
        "churn: {} allocations of {} bytes, the last {} alive: {:.2} ns/allocation ({:.3} s)",
        p.count,
        std::mem::size_of::<Obj>(),
        w,
        elapsed.as_nanos() as f64 / p.count as f64,
        elapsed.as_secs_f64()
    ));
    match bad {
        None if survivors == w.min(p.count) => Ok(()),
        None => Err(format!("only {survivors} of the window's objects survived")),
        Some(id) => Err(format!(
            "allocation {id} was lost or overwritten while alive"
        )),
    }
}
