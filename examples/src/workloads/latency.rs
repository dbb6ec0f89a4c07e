//! latency: what a big live heap costs in pause time. SIZE bytes of 32-byte nodes are
//! built as linked lists of 64 (their heads in one heap array) and kept alive; then whole
//! lists are replaced at random, one at a time, until four times SIZE has been allocated,
//! so the live heap stays at SIZE while the collector runs again and again over it.
//!
//! It reports, for the churn, the collector's stop-the-world pauses (every stop of every
//! cycle: max, 99th percentile, median), the mutator's stalls — the time between two looks
//! at the clock, 16 list replacements (1,024 allocations) apart, which takes in pauses,
//! assists, waits for the world to stop and the scheduler — (max, p99, median). (The
//! longest assist is in every run's summary.) It checks itself: at the end every list must be whole, in
//! order, and of the generation last given to it, and the generations must add up to the
//! replacements made.

use std::time::Instant;

use minigo_runtime::{gc_cycles, read_mem_stats, Gc, GcSlice, HeapType, Mutation};

use super::{at_most, out_of_memory, parse_size, size_label, Out, Rng, Verdict};

/// Nodes per list.
const LIST: u64 = 64;

/// Lists replaced between two looks at the clock.
const BATCH: u64 = 16;

/// `latency [SIZE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Bytes of live nodes.
    pub size: u64,
}

impl Params {
    /// `[SIZE]`, default 1 GiB; at least one list (2 KiB).
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("latency", args, 1)?;
        let size = match args.first() {
            Some(s) => parse_size("latency SIZE", s)?,
            None => 1 << 30,
        };
        let min = LIST * std::mem::size_of::<Node>() as u64;
        if size < min {
            return Err(format!("latency SIZE: at least {min} bytes (one list)"));
        }
        if size > 1 << 40 {
            return Err("latency SIZE: at most 1TiB".into());
        }
        Ok(Params { size })
    }
}

/// A list node: 32 bytes, one pointer.
#[derive(HeapType)]
struct Node<'gc> {
    next: Option<Gc<'gc, Node<'gc>>>,
    list: u64,
    generation: u64,
    seq: u64,
}

fn build_list(mu: Mutation<'_>, list: u64, generation: u64) -> Gc<'_, Node<'_>> {
    let mut head: Option<Gc<Node>> = None;
    for seq in (0..LIST).rev() {
        head = Some(
            Gc::new(
                mu,
                Node {
                    next: head,
                    list,
                    generation,
                    seq,
                },
            )
            .unwrap_or_else(|e| out_of_memory("latency", e)),
        );
    }
    head.expect("LIST > 0")
}

/// The list's generation if it is whole and consistent.
fn check_list<'gc>(head: Gc<'gc, Node<'gc>>, list: u64) -> Option<u64> {
    let generation = head.generation;
    let mut node = Some(head);
    for seq in 0..LIST {
        let n = node?;
        if n.list != list || n.generation != generation || n.seq != seq {
            return None;
        }
        node = n.next;
    }
    node.is_none().then_some(generation)
}

fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

/// The `q` quantile (0..=1) of sorted values, nearest-rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs latency (from a goroutine), printing its lines to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let node_bytes = std::mem::size_of::<Node>() as u64;
    let lists = (p.size / (LIST * node_bytes)).max(1);
    let heads: GcSlice<Option<Gc<Node>>> =
        GcSlice::new(mu, lists as usize, None).unwrap_or_else(|e| out_of_memory("latency", e));

    let t = Instant::now();
    for i in 0..lists {
        heads.set(i as usize, Some(build_list(mu, i, 0)));
    }
    out.line(format!(
        "latency: built {} live in {} lists of {LIST} nodes of {node_bytes} bytes in {:.3} s",
        size_label(lists * LIST * node_bytes),
        lists,
        t.elapsed().as_secs_f64()
    ));

    // Each list's generation, kept beside the heap (plain numbers) so that choosing a list
    // to replace does not read its old head, a cache miss the workload is not about.
    let mut generations = vec![0u64; lists as usize];
    let before = read_mem_stats().num_gc;
    let replacements = 4 * lists;
    let mut rng = Rng::new(0x006c_6174_656e_6379);
    let t = Instant::now();
    let mut last = Instant::now();
    let mut stalls: Vec<u64> = Vec::with_capacity((replacements / BATCH + 1) as usize);
    let mut made = 0;
    while made < replacements {
        for _ in 0..BATCH.min(replacements - made) {
            let i = rng.below(lists) as usize;
            generations[i] += 1;
            heads.set(i, Some(build_list(mu, i as u64, generations[i])));
            made += 1;
        }
        let now = Instant::now();
        stalls.push((now - last).as_nanos() as u64);
        last = now;
    }
    let churn = t.elapsed();
    let cycles: Vec<_> = gc_cycles()
        .into_iter()
        .filter(|c| c.number > before)
        .collect();
    let mut pauses: Vec<u64> = cycles.iter().flat_map(|c| c.pauses.clone()).collect();
    pauses.sort_unstable();
    stalls.sort_unstable();
    out.line(format!(
        "churn: replaced {made} lists ({} allocated) in {:.3} s, {} collections",
        size_label(made * LIST * node_bytes),
        churn.as_secs_f64(),
        cycles.len()
    ));
    out.line(format!(
        "stop-the-world pauses during churn: max {}, p99 {}, median {}",
        ms(pauses.last().copied().unwrap_or(0)),
        ms(quantile(&pauses, 0.99)),
        ms(quantile(&pauses, 0.5)),
    ));
    out.line(format!(
        "mutator stalls (every {} allocations): max {}, p99 {}, median {}",
        BATCH * LIST,
        ms(stalls.last().copied().unwrap_or(0)),
        ms(quantile(&stalls, 0.99)),
        ms(quantile(&stalls, 0.5)),
    ));

    for (i, &want) in generations.iter().enumerate() {
        match heads.get(i).and_then(|h| check_list(h, i as u64)) {
            Some(g) if g == want => {}
            Some(g) => return Err(format!("list {i} is of generation {g}, not {want}")),
            None => return Err(format!("list {i} is broken")),
        }
    }
    let total: u64 = generations.iter().sum();
    if total != made {
        return Err(format!(
            "the lists' generations add up to {total}, not the {made} replacements made"
        ));
    }
    Ok(())
}
