//! pipeline: heap objects handed between goroutines through channels. A source goroutine
//! makes MESSAGES messages; each of STAGES goroutines in a chain receives a message, makes
//! a new one from it (a new payload array, and a pointer back to the message it came
//! from) and passes it on; WORKERS goroutines share the last channel (fan-out), check the
//! whole chain of each message and send a result object to one channel (fan-in), which
//! the main goroutine drains. Every channel but the results' closes behind its sender.
//!
//! Messages are alive on several goroutines' stacks and in channel buffers at once while
//! collections run, which is what this exercises. It checks itself: every worker verifies
//! each message's chain (ids, stages, payloads) and main verifies the count and checksums
//! of the results against what the source's numbering implies.

use std::time::Instant;

use minigo_runtime::{Chan, Gc, GcSlice, HeapType, Mutation, WaitGroup};

use super::{at_most, out_of_memory, parse_count_in, Out, Verdict};

/// Room in each channel.
const CAP: usize = 64;

/// Words of each message's payload array.
const PAYLOAD: usize = 4;

/// `pipeline [MESSAGES] [STAGES] [WORKERS]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Messages the source makes.
    pub messages: u64,
    /// Goroutines in the chain between the source and the workers.
    pub stages: u64,
    /// Goroutines the chain fans out to.
    pub workers: u64,
}

impl Params {
    /// `[MESSAGES] [STAGES] [WORKERS]`, defaults 1,000,000, 4 and 8.
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("pipeline", args, 3)?;
        let arg = |i: usize, what: &str, default: u64, hi: u64| match args.get(i) {
            Some(s) => parse_count_in(what, s, 1, hi),
            None => Ok(default),
        };
        Ok(Params {
            messages: arg(0, "pipeline MESSAGES", 1_000_000, 1 << 40)?,
            stages: arg(1, "pipeline STAGES", 4, 10_000)?,
            workers: arg(2, "pipeline WORKERS", 8, 10_000)?,
        })
    }
}

/// A message as one stage made it: `prev` is the message it was made from.
#[derive(HeapType)]
struct Msg<'gc> {
    id: u64,
    stage: u64,
    payload: GcSlice<'gc, u64>,
    prev: Option<Gc<'gc, Msg<'gc>>>,
}

/// What a worker hands back: the message and its checksum.
#[derive(HeapType)]
struct Done<'gc> {
    msg: Gc<'gc, Msg<'gc>>,
    sum: u64,
    ok: bool,
}

fn word(id: u64, stage: u64, k: usize) -> u64 {
    (id ^ (stage << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ k as u64
}

fn message<'gc>(
    mu: Mutation<'gc>,
    id: u64,
    stage: u64,
    prev: Option<Gc<'gc, Msg<'gc>>>,
) -> Gc<'gc, Msg<'gc>> {
    let payload = GcSlice::new(mu, PAYLOAD, 0u64).unwrap_or_else(|e| out_of_memory("pipeline", e));
    for k in 0..PAYLOAD {
        payload.set(k, word(id, stage, k));
    }
    Gc::new(
        mu,
        Msg {
            id,
            stage,
            payload,
            prev,
        },
    )
    .unwrap_or_else(|e| out_of_memory("pipeline", e))
}

/// Walks a message's chain back to the source's: `Some(checksum)` if every link is right.
fn check_chain<'gc>(last: Gc<'gc, Msg<'gc>>, stages: u64) -> Option<u64> {
    let id = last.id;
    let mut sum = 0u64;
    let mut msg = Some(last);
    for stage in (0..=stages).rev() {
        let m = msg?;
        if m.id != id || m.stage != stage || m.payload.len() != PAYLOAD {
            return None;
        }
        for k in 0..PAYLOAD {
            let w = m.payload.get(k);
            if w != word(id, stage, k) {
                return None;
            }
            sum = sum.wrapping_add(w);
        }
        msg = m.prev;
    }
    msg.is_none().then_some(sum)
}

/// Runs the pipeline (from a goroutine), printing its result line to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let start = Instant::now();
    let chans: Vec<Chan<Gc<Msg>>> = (0..=p.stages).map(|_| Chan::new(CAP)).collect();
    let results: Chan<Gc<Done>> = Chan::new(CAP);

    let (first, n) = (chans[0].clone(), p.messages);
    mu.go(move || {
        for id in 0..n {
            first.send(message(mu, id, 0, None));
        }
        first.close();
    });
    for stage in 1..=p.stages {
        let input = chans[stage as usize - 1].clone();
        let output = chans[stage as usize].clone();
        mu.go(move || {
            while let Some(m) = input.recv() {
                output.send(message(mu, m.id, stage, Some(m)));
            }
            output.close();
        });
    }
    let wg = WaitGroup::new();
    for _ in 0..p.workers {
        wg.add(1);
        let (input, results, wg, stages) = (
            chans[p.stages as usize].clone(),
            results.clone(),
            wg.clone(),
            p.stages,
        );
        mu.go(move || {
            while let Some(m) = input.recv() {
                let check = check_chain(m, stages);
                let done = Gc::new(
                    mu,
                    Done {
                        msg: m,
                        sum: check.unwrap_or(0),
                        ok: check.is_some(),
                    },
                )
                .unwrap_or_else(|e| out_of_memory("pipeline", e));
                results.send(done);
            }
            wg.done();
        });
    }
    {
        let results = results.clone();
        mu.go(move || {
            wg.wait();
            results.close();
        });
    }
    drop(chans);

    let (mut count, mut ids, mut sum, mut broken) = (0u64, 0u64, 0u64, 0u64);
    while let Some(d) = results.recv() {
        count += 1;
        ids = ids.wrapping_add(d.msg.id);
        sum = sum.wrapping_add(d.sum);
        broken += !d.ok as u64;
    }
    let elapsed = start.elapsed();
    out.line(format!(
        "pipeline: {} messages through {} stages and {} workers in {:.3} s ({:.0} ns/message)",
        p.messages,
        p.stages,
        p.workers,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / p.messages as f64
    ));

    let want_sum = (0..p.messages)
        .flat_map(|id| (0..=p.stages).flat_map(move |s| (0..PAYLOAD).map(move |k| word(id, s, k))))
        .fold(0u64, u64::wrapping_add);
    let want_ids = (0..p.messages).fold(0u64, u64::wrapping_add);
    if broken > 0 {
        Err(format!("{broken} messages arrived with a broken chain"))
    } else if count != p.messages || ids != want_ids {
        Err(format!(
            "{count} messages arrived (id sum {ids}), not {} (id sum {want_ids})",
            p.messages
        ))
    } else if sum != want_sum {
        Err(format!("payload checksum {sum:#x}, expected {want_sum:#x}"))
    } else {
        Ok(())
    }
}
