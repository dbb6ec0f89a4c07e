//! goroutines: many goroutines at once, and one that never reaches a safepoint.
//!
//! 1. A spinner starts: a loop that neither allocates nor touches a channel, until told to
//!    stop. Only asynchronous preemption lets the world stop while it runs.
//! 2. N goroutines are started; each says it is up and parks on one channel. Once all are
//!    parked, resident memory (and the page tables' share of it) is read: that over N is
//!    what a parked goroutine costs, together with its G record.
//! 3. The channel closes; each goroutine wakes, allocates a small tree of its own (the N
//!    together allocate enough to force collections while the spinner spins), checks it and
//!    exits; main joins them with a WaitGroup.
//! 4. A collection, then StackInuse again: the dead goroutines' stacks are given back.
//!
//! It checks itself: every goroutine ran to its end with its tree intact, collections ran
//! while the spinner spun, and the spinner was preempted.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use minigo_runtime::{
    async_preemptions, gc, gc_cycles, go, read_mem_stats, yield_now, Chan, Gc, HeapType, Mutation,
    WaitGroup,
};

use super::{at_most, out_of_memory, parse_count_in, Out, Verdict};

/// `goroutines [N]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Goroutines parked at once.
    pub n: u64,
}

impl Params {
    /// `[N]`, default 100,000.
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("goroutines", args, 1)?;
        let n = match args.first() {
            Some(s) => parse_count_in("goroutines N", s, 1, 1 << 24)?,
            None => 100_000,
        };
        Ok(Params { n })
    }
}

/// Nodes of each goroutine's tree: 2^DEPTH - 1 of 32 bytes, about 8 KiB.
const DEPTH: u32 = 8;

#[derive(HeapType)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
    id: u64,
}

fn tree(mu: Mutation<'_>, depth: u32, id: u64) -> Gc<'_, Node<'_>> {
    let (left, right) = match depth {
        1 => (None, None),
        _ => (
            Some(tree(mu, depth - 1, 2 * id)),
            Some(tree(mu, depth - 1, 2 * id + 1)),
        ),
    };
    Gc::new(mu, Node { left, right, id }).unwrap_or_else(|e| out_of_memory("goroutines", e))
}

fn check(n: &Node, id: u64) -> u64 {
    let kids = match (&n.left, &n.right) {
        (Some(l), Some(r)) => check(l, 2 * id) + check(r, 2 * id + 1),
        _ => 0,
    };
    kids + u64::from(n.id == id)
}

/// Spins without a safepoint until `stop`; `rounds` shows it is spinning.
#[inline(never)]
fn spin(stop: &AtomicBool, rounds: &AtomicU64) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = black_box(n.wrapping_add(1));
        if n.is_multiple_of(65536) {
            rounds.store(n, Ordering::Relaxed);
        }
    }
}

/// Resident bytes and page-table bytes of the process (`/proc/self/status`).
fn resident() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib << 10)
    };
    (field("VmRSS:"), field("VmPTE:"))
}

/// Runs the workload (from a goroutine), printing its lines to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let n = p.n as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let spinner_done: Chan<()> = Chan::new(1);
    {
        let (stop, rounds, done) = (stop.clone(), rounds.clone(), spinner_done.clone());
        go(move || {
            spin(&stop, &rounds);
            done.send(());
        });
    }
    while rounds.load(Ordering::Relaxed) == 0 {
        yield_now();
    }
    let preempted_before = async_preemptions();
    let cycles_before = gc_cycles().len();

    gc();
    let (rss0, pte0) = resident();
    let stack0 = read_mem_stats().stack_inuse;
    let release: Chan<()> = Chan::new(0);
    let (up, done) = (WaitGroup::new(), WaitGroup::new());
    let finished = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    up.add(n as i64);
    done.add(n as i64);
    for i in 0..n as u64 {
        let (release, up, done, finished) =
            (release.clone(), up.clone(), done.clone(), finished.clone());
        mu.go(move || {
            up.done();
            assert_eq!(release.recv(), None);
            let t = tree(mu, DEPTH, 1 + (i << DEPTH));
            if check(&t, 1 + (i << DEPTH)) == (1 << DEPTH) - 1 {
                finished.fetch_add(1, Ordering::Relaxed);
            }
            done.done();
        });
    }
    up.wait();
    let parked_in = t0.elapsed();
    let (rss1, pte1) = resident();
    let peak = read_mem_stats();
    let t1 = Instant::now();
    release.close();
    done.wait();
    let joined_in = t1.elapsed();
    gc();
    let after = read_mem_stats();
    stop.store(true, Ordering::Relaxed);
    spinner_done.recv();
    let cycles = gc_cycles().len() - cycles_before;
    let preemptions = async_preemptions() - preempted_before;

    let per = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    out.line(format!(
        "goroutines: {n} parked at once: {:.0} ns each to start and park, {:.0} ns each to wake, allocate {} KiB and exit",
        per(parked_in),
        per(joined_in),
        (((1u64 << DEPTH) - 1) * 32) >> 10,
    ));
    out.line(format!(
        "goroutines: {} bytes resident and {} bytes of page tables per parked goroutine; StackInuse {} KiB above the start while parked, {} KiB after a collection",
        rss1.saturating_sub(rss0) / p.n,
        pte1.saturating_sub(pte0) / p.n,
        peak.stack_inuse.saturating_sub(stack0) >> 10,
        after.stack_inuse.saturating_sub(stack0) >> 10,
    ));
    out.line(format!(
        "goroutines: a spinner without safepoints ran throughout: {cycles} collections, {preemptions} asynchronous preemptions"
    ));
    let finished = finished.load(Ordering::Relaxed);
    if finished != p.n {
        return Err(format!(
            "only {finished} of {n} goroutines ran to the end with their tree intact"
        ));
    }
    if preemptions == 0 {
        return Err(format!(
            "the spinner should have been preempted for collections: {cycles} collections, {preemptions} preemptions"
        ));
    }
    Ok(())
}
