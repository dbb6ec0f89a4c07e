//! GCBench (John Ellis and Pete Kovac, later Hans Boehm): a long-lived tree and a
//! long-lived array of doubles stay alive while trees of depths 4, 6, .., DEPTH are built
//! top-down (`populate`: a node first, its children stored into it afterwards, through
//! `GcCell`s) and bottom-up (`make_tree`: children first), enough of them at each depth to
//! allocate as much as two stretch trees. Timings of each phase are printed as the C
//! version prints them.
//!
//! Runs on one goroutine, as the original runs on one thread. It checks itself: the
//! long-lived tree and array must be intact at the end, and the first tree built each way
//! at each depth must have the right number of nodes.

use std::time::Instant;

use minigo_runtime::{Gc, GcCell, GcSlice, HeapType, Mutation};

use super::{at_most, out_of_memory, parse_count_in, Out, Verdict};

const MIN_TREE_DEPTH: u32 = 4;
const ARRAY_SIZE: usize = 500_000;

/// `gcbench [DEPTH]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// The long-lived tree's depth and the deepest temporary trees (16 in the original;
    /// the stretch tree is two deeper).
    pub depth: u32,
}

impl Params {
    /// `[DEPTH]`, default 16.
    pub fn parse(args: &[String]) -> Result<Params, String> {
        at_most("gcbench", args, 1)?;
        let depth = match args.first() {
            Some(s) => parse_count_in("gcbench DEPTH", s, MIN_TREE_DEPTH as u64, 24)? as u32,
            None => 16,
        };
        Ok(Params { depth })
    }
}

/// GCBench's node: two children and two ints (24 bytes, as in the C version).
#[derive(HeapType)]
struct Node<'gc> {
    left: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    right: GcCell<Option<Gc<'gc, Node<'gc>>>>,
    i: i32,
    j: i32,
}

fn new_node<'gc>(
    mu: Mutation<'gc>,
    left: Option<Gc<'gc, Node<'gc>>>,
    right: Option<Gc<'gc, Node<'gc>>>,
) -> Gc<'gc, Node<'gc>> {
    Gc::new(
        mu,
        Node {
            left: GcCell::new(left),
            right: GcCell::new(right),
            i: 0,
            j: 0,
        },
    )
    .unwrap_or_else(|e| out_of_memory("gcbench", e))
}

fn tree_size(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

fn num_iters(depth: u32, stretch: u32) -> u64 {
    2 * tree_size(stretch) / tree_size(depth)
}

/// Builds the tree top-down: children are stored into `node` before they are populated.
fn populate<'gc>(mu: Mutation<'gc>, depth: u32, node: Gc<'gc, Node<'gc>>) {
    if depth == 0 {
        return;
    }
    let left = new_node(mu, None, None);
    node.left.set(Some(left));
    let right = new_node(mu, None, None);
    node.right.set(Some(right));
    populate(mu, depth - 1, left);
    populate(mu, depth - 1, right);
}

fn make_tree(mu: Mutation<'_>, depth: u32) -> Gc<'_, Node<'_>> {
    if depth == 0 {
        new_node(mu, None, None)
    } else {
        let left = make_tree(mu, depth - 1);
        let right = make_tree(mu, depth - 1);
        new_node(mu, Some(left), Some(right))
    }
}

fn count(node: Gc<Node>) -> u64 {
    let children = match (node.left.get(), node.right.get()) {
        (Some(l), Some(r)) => count(l) + count(r),
        (None, None) => 0,
        _ => return u64::MAX / 2,
    };
    1 + children
}

fn ms(since: Instant) -> u128 {
    since.elapsed().as_millis()
}

/// Runs GCBench (from a goroutine), printing its lines to `out`.
pub fn run(mu: Mutation<'_>, p: &Params, out: &Out) -> Verdict {
    let long_lived_depth = p.depth;
    let max_depth = p.depth;
    let stretch = p.depth + 2;
    let mut failures = Vec::new();

    out.line("Garbage Collector Test");
    out.line(format!(
        " Live storage will peak at {} bytes.\n",
        2 * std::mem::size_of::<Node>() as u64 * tree_size(long_lived_depth)
            + (std::mem::size_of::<f64>() * ARRAY_SIZE) as u64
    ));
    out.line(format!(
        " Stretching memory with a binary tree of depth {stretch}"
    ));
    let start = Instant::now();
    let n = count(make_tree(mu, stretch));
    if n != tree_size(stretch) {
        failures.push(format!("stretch tree has {n} nodes"));
    }

    out.line(format!(
        " Creating a long-lived binary tree of depth {long_lived_depth}"
    ));
    let long_lived = new_node(mu, None, None);
    populate(mu, long_lived_depth, long_lived);

    out.line(format!(
        " Creating a long-lived array of {ARRAY_SIZE} doubles"
    ));
    let array =
        GcSlice::new(mu, ARRAY_SIZE, 0.0f64).unwrap_or_else(|e| out_of_memory("gcbench", e));
    for i in 0..ARRAY_SIZE / 2 {
        array.set(i, 1.0 / i as f64);
    }

    for depth in (MIN_TREE_DEPTH..=max_depth).step_by(2) {
        let iters = num_iters(depth, stretch);
        out.line(format!("Creating {iters} trees of depth {depth}"));
        let t = Instant::now();
        for i in 0..iters {
            let tree = new_node(mu, None, None);
            populate(mu, depth, tree);
            if i == 0 && count(tree) != tree_size(depth) {
                failures.push(format!("a top-down tree of depth {depth} lost nodes"));
            }
        }
        out.line(format!("\tTop down construction took {} msec", ms(t)));
        let t = Instant::now();
        for i in 0..iters {
            let tree = make_tree(mu, depth);
            if i == 0 && count(tree) != tree_size(depth) {
                failures.push(format!("a bottom-up tree of depth {depth} lost nodes"));
            }
        }
        out.line(format!("\tBottom up construction took {} msec", ms(t)));
    }

    let n = count(long_lived);
    if n != tree_size(long_lived_depth) {
        failures.push(format!(
            "the long-lived tree has {n} nodes, not {}",
            tree_size(long_lived_depth)
        ));
    }
    if array.get(1000) != 1.0 / 1000.0 {
        failures.push("the long-lived array changed".into());
    }
    for i in 1..ARRAY_SIZE {
        let want = if i < ARRAY_SIZE / 2 {
            1.0 / i as f64
        } else {
            0.0
        };
        if array.get(i) != want {
            failures.push(format!("long-lived array[{i}] is {}", array.get(i)));
            break;
        }
    }
    out.line(format!("Completed in {} msec.", ms(start)));
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}
