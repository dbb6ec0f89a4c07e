//! binary-trees, the Benchmarks Game program, as its parallel Go versions write it: the
//! main goroutine builds the stretch tree and the long-lived tree; one goroutine per depth
//! (4, 6, .., N) builds and checks its trees and leaves its line in a shared slot; main
//! waits for all of them and prints the lines in depth order, then the long-lived tree's.
//!
//! Nodes are heap objects with two pointer fields, built bottom-up, so every tree is
//! garbage as soon as it has been checked (except the long-lived one). The run checks
//! itself: every line must equal the one the rules give for N (a tree of depth d has
//! 2^(d+1) - 1 nodes), which catches a collector that freed or reused a live node.

use minigo_runtime::{Chan, Gc, HeapType, Mutation};

use super::{at_most, out_of_memory, parse_count_in, Out, Verdict};

/// The smallest depth the program builds trees of.
const MIN_DEPTH: u32 = 4;

/// `binary-trees N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The maximum depth (the stretch tree is one deeper).
    pub n: u32,
}

impl Params {
    /// `[N]`, default 21 (the Benchmarks Game's size).
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("binary-trees", args, 1)?;
        let n = match args.first() {
            Some(s) => parse_count_in("binary-trees N", s, 0, 28)? as u32,
            None => 21,
        };
        Ok(Params { n })
    }
}

/// A tree node: both children or neither.
#[derive(HeapType)]
struct Node<'gc> {
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
}

fn bottom_up_tree(mu: Mutation<'_>, depth: u32) -> Gc<'_, Node<'_>> {
    let node = if depth == 0 {
        Node {
            left: None,
            right: None,
        }
    } else {
        // Both children are on this goroutine's stack (which the collector scans) while
        // the other is built.
        let left = bottom_up_tree(mu, depth - 1);
        let right = bottom_up_tree(mu, depth - 1);
        Node {
            left: Some(left),
            right: Some(right),
        }
    };
    Gc::new(mu, node).unwrap_or_else(|e| out_of_memory("binary-trees", e))
}

fn item_check(node: &Node) -> u64 {
    match (&node.left, &node.right) {
        (Some(l), Some(r)) => 1 + item_check(l) + item_check(r),
        _ => 1,
    }
}

/// Depths and their iteration counts, as the program prints them.
fn depths(n: u32) -> (u32, impl Iterator<Item = (u32, u64)>) {
    let max_depth = n.max(MIN_DEPTH + 2);
    let per_depth = (MIN_DEPTH..=max_depth)
        .step_by(2)
        .map(move |d| (d, 1u64 << (max_depth - d + MIN_DEPTH)));
    (max_depth, per_depth)
}

/// The program's output for `n`, from the rules alone (no tree is built): what the run
/// must print, byte for byte.
pub fn expected_output(n: u32) -> String {
    let nodes = |d: u32| (1u64 << (d + 1)) - 1;
    let (max_depth, per_depth) = depths(n);
    let stretch = max_depth + 1;
    let mut s = format!(
        "stretch tree of depth {stretch}\t check: {}\n",
        nodes(stretch)
    );
    for (d, iterations) in per_depth {
        s += &format!(
            "{iterations}\t trees of depth {d}\t check: {}\n",
            iterations * nodes(d)
        );
    }
    s += &format!(
        "long lived tree of depth {max_depth}\t check: {}\n",
        nodes(max_depth)
    );
    s
}

/// Runs the program (from a goroutine), printing its lines to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let (max_depth, per_depth) = depths(p.n);
    let stretch = max_depth + 1;
    let mut printed = String::new();
    let mut print = |line: String| {
        out.line(&line);
        printed += &line;
        printed.push('\n');
    };

    let check = item_check(&bottom_up_tree(mu, stretch));
    print(format!("stretch tree of depth {stretch}\t check: {check}"));

    let long_lived = bottom_up_tree(mu, max_depth);

    let per_depth: Vec<(u32, u64)> = per_depth.collect();
    // The lines come back through a channel, not a `std::sync::Mutex`: a goroutine
    // preempted while holding an OS lock can deadlock the P of another one blocked on it
    // (README, "Preemption"), which hung one run of `binary-trees 14 --verify` in about
    // a thousand.
    let results: Chan<(usize, String)> = Chan::new(per_depth.len());
    for (slot, &(depth, iterations)) in per_depth.iter().enumerate() {
        let results = results.clone();
        mu.go(move || {
            let mut check = 0;
            for _ in 0..iterations {
                check += item_check(&bottom_up_tree(mu, depth));
            }
            results.send((
                slot,
                format!("{iterations}\t trees of depth {depth}\t check: {check}"),
            ));
        });
    }
    let mut lines = vec![String::new(); per_depth.len()];
    for _ in 0..per_depth.len() {
        if let Some((slot, line)) = results.recv() {
            lines[slot] = line;
        }
    }
    for line in lines {
        print(line);
    }

    print(format!(
        "long lived tree of depth {max_depth}\t check: {}",
        item_check(&long_lived)
    ));

    let want = expected_output(p.n);
    if printed == want {
        Ok(())
    } else {
        Err(format!(
            "output differs from the reference for N={}:\n--- got\n{printed}--- want\n{want}",
            p.n
        ))
    }
}
