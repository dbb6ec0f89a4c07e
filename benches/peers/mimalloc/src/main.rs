//! Three of minigo's workloads (examples/src/workloads/NAME.rs: binary-trees, gcbench and
//! churn) with manual allocation, for the side-by-side comparison (benches/compare.sh
//! builds and runs it): what the same allocation pattern costs when nothing is traced.
//! `workloads WORKLOAD [ARGS]` runs one with minigo's rules and defaults, prints the same
//! lines as `minigo WORKLOAD [ARGS]` and benches/peers/boehm/workloads.c on stdout, and
//! checks its own result as they do. There is no collector, so no `peer-gc:` line on
//! stderr. Exit status: 0 checked out, 1 did not, 2 usage error.
//!
//! Objects are `Box`es on mimalloc (the global allocator), each freed the moment its
//! owner drops it: a tree when the loop iteration that built it ends, a churn object when
//! the window slot holding it is overwritten. Where minigo runs goroutines this runs
//! std threads. latency, pipeline and goroutines are not run here: they measure collector
//! pauses and scheduling rather than allocation throughput. Build:
//! cargo build --release --manifest-path benches/peers/mimalloc/Cargo.toml

use std::fmt;
use std::hint::black_box;
use std::process::{self, ExitCode};
use std::thread;
use std::time::Instant;

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

// ---- arguments, as minigo parses them ---------------------------------------------------

fn usage_error(msg: fmt::Arguments) -> ! {
    eprintln!("workloads: {msg}");
    process::exit(2);
}

fn at_most(workload: &str, args: &[String], max: usize) {
    if let Some(extra) = args.get(max) {
        usage_error(format_args!("{workload}: unexpected argument \"{extra}\""));
    }
}

/// Digits, optionally grouped with `_` or `,`, in lo..=hi.
fn parse_count(what: &str, s: &str, lo: u64, hi: u64) -> u64 {
    let mut n: u64 = 0;
    let mut digits = 0;
    for c in s.bytes() {
        if c == b'_' || c == b',' {
            continue;
        }
        if !c.is_ascii_digit() {
            usage_error(format_args!("{what}: expected a whole number, got \"{s}\""));
        }
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
        {
            Some(n) => n,
            None => usage_error(format_args!("{what}: \"{s}\" is too large")),
        };
        digits += 1;
    }
    if digits == 0 {
        usage_error(format_args!("{what}: expected a whole number, got \"{s}\""));
    }
    if n < lo || n > hi {
        usage_error(format_args!("{what}: {n} is out of range ({lo}..={hi})"));
    }
    n
}

fn count_arg(args: &[String], i: usize, what: &str, default: u64, lo: u64, hi: u64) -> u64 {
    args.get(i)
        .map_or(default, |s| parse_count(what, s, lo, hi))
}

/// C's `%g`, so that the error messages read as the C peer's do.
fn fmt_g(x: f64) -> String {
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // The exponent after rounding to %g's six significant digits decides the style.
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` writes a decimal exponent");
    if (-4..6).contains(&exp) {
        let precision = usize::try_from(5 - exp).expect("exp < 6");
        trim(&format!("{x:.precision$}")).into()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa), exp.unsigned_abs())
    }
}

// ---- binary-trees ----------------------------------------------------------------------

const MIN_DEPTH: u32 = 4;

struct BtNode {
    left: Option<Box<BtNode>>,
    right: Option<Box<BtNode>>,
}

fn bottom_up_tree(depth: u32) -> Box<BtNode> {
    let (left, right) = if depth > 0 {
        let left = bottom_up_tree(depth - 1);
        (Some(left), Some(bottom_up_tree(depth - 1)))
    } else {
        (None, None)
    };
    Box::new(BtNode { left, right })
}

fn item_check(n: &BtNode) -> u64 {
    match (&n.left, &n.right) {
        (Some(l), Some(r)) => 1 + item_check(l) + item_check(r),
        _ => 1,
    }
}

fn nodes(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

fn binary_trees(args: &[String]) -> bool {
    at_most("binary-trees", args, 1);
    let n = count_arg(args, 0, "binary-trees N", 21, 0, 28) as u32;
    let max_depth = n.max(MIN_DEPTH + 2);
    let stretch = max_depth + 1;
    // What was printed, to compare with what the rules say.
    let mut printed = String::new();
    let mut want = String::new();
    let mut emit = |line: String| {
        println!("{line}");
        printed.push_str(&line);
        printed.push('\n');
    };

    let c = item_check(black_box(&bottom_up_tree(stretch)));
    emit(format!("stretch tree of depth {stretch}\t check: {c}"));
    want += &format!(
        "stretch tree of depth {stretch}\t check: {}\n",
        nodes(stretch)
    );
    let long_lived = bottom_up_tree(max_depth);

    // All depths at once, as the C peer's pthreads and minigo's goroutines.
    let mut tasks = Vec::new();
    for depth in (MIN_DEPTH..=max_depth).step_by(2) {
        let iterations: u64 = 1 << (max_depth - depth + MIN_DEPTH);
        want += &format!(
            "{iterations}\t trees of depth {depth}\t check: {}\n",
            iterations * nodes(depth)
        );
        let task = thread::Builder::new().spawn(move || {
            let mut check = 0;
            for _ in 0..iterations {
                check += item_check(black_box(&bottom_up_tree(depth)));
            }
            format!("{iterations}\t trees of depth {depth}\t check: {check}")
        });
        match task {
            Ok(task) => tasks.push(task),
            Err(e) => {
                eprintln!("workloads: cannot start a thread: {e}");
                process::exit(1);
            }
        }
    }
    for task in tasks {
        emit(task.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
    }
    let c = item_check(&long_lived);
    emit(format!("long lived tree of depth {max_depth}\t check: {c}"));
    want += &format!(
        "long lived tree of depth {max_depth}\t check: {}\n",
        nodes(max_depth)
    );

    if printed != want {
        eprint!(
            "workloads: binary-trees: output differs from the reference for N={n}:\n\
             --- got\n{printed}--- want\n{want}"
        );
        return false;
    }
    true
}

// ---- gcbench ---------------------------------------------------------------------------

const MIN_TREE_DEPTH: u32 = 4;
const ARRAY_SIZE: usize = 500_000;

// GCBench's nodes carry two ints that it never reads: they are there for the size.
#[allow(dead_code)]
#[derive(Default)]
struct GcNode {
    left: Option<Box<GcNode>>,
    right: Option<Box<GcNode>>,
    i: i32,
    j: i32,
}

fn tree_size(depth: u32) -> u64 {
    (1 << (depth + 1)) - 1
}

/// Top-down: children are stored into node before they are populated.
fn populate(depth: u32, node: &mut GcNode) {
    if depth == 0 {
        return;
    }
    let left = node.left.insert(Box::default());
    let right = node.right.insert(Box::default());
    populate(depth - 1, left);
    populate(depth - 1, right);
}

fn make_tree(depth: u32) -> Box<GcNode> {
    if depth == 0 {
        return Box::default();
    }
    let left = make_tree(depth - 1);
    let right = make_tree(depth - 1);
    Box::new(GcNode {
        left: Some(left),
        right: Some(right),
        ..GcNode::default()
    })
}

fn count(n: &GcNode) -> u64 {
    match (&n.left, &n.right) {
        (Some(l), Some(r)) => 1 + count(l) + count(r),
        (None, None) => 1,
        _ => u64::MAX / 2,
    }
}

fn msec_since(t: Instant) -> u128 {
    t.elapsed().as_millis()
}

fn gcbench(args: &[String]) -> bool {
    at_most("gcbench", args, 1);
    let d = count_arg(args, 0, "gcbench DEPTH", 16, MIN_TREE_DEPTH.into(), 24) as u32;
    let (long_lived_depth, max_depth, stretch) = (d, d, d + 2);
    let mut failed = false;

    println!("Garbage Collector Test");
    println!(
        " Live storage will peak at {} bytes.\n",
        2 * size_of::<GcNode>() as u64 * tree_size(long_lived_depth)
            + (size_of::<f64>() * ARRAY_SIZE) as u64
    );
    println!(" Stretching memory with a binary tree of depth {stretch}");
    let start = Instant::now();
    let n = count(black_box(&make_tree(stretch)));
    if n != tree_size(stretch) {
        eprintln!("workloads: gcbench: stretch tree has {n} nodes");
        failed = true;
    }

    println!(" Creating a long-lived binary tree of depth {long_lived_depth}");
    let mut long_lived = Box::<GcNode>::default();
    populate(long_lived_depth, &mut long_lived);

    println!(" Creating a long-lived array of {ARRAY_SIZE} doubles");
    let mut array = vec![0.0f64; ARRAY_SIZE];
    // From 0 as GCBench does: array[0] is 1/0, infinity.
    for (i, a) in array.iter_mut().enumerate().take(ARRAY_SIZE / 2) {
        *a = 1.0 / i as f64;
    }

    for depth in (MIN_TREE_DEPTH..=max_depth).step_by(2) {
        let iters = 2 * tree_size(stretch) / tree_size(depth);
        println!("Creating {iters} trees of depth {depth}");
        let t = Instant::now();
        for i in 0..iters {
            let mut tree = Box::<GcNode>::default();
            populate(depth, black_box(&mut tree));
            if i == 0 && count(&tree) != tree_size(depth) {
                eprintln!("workloads: gcbench: a top-down tree of depth {depth} lost nodes");
                failed = true;
            }
        }
        println!("\tTop down construction took {} msec", msec_since(t));
        let t = Instant::now();
        for i in 0..iters {
            let tree = black_box(make_tree(depth));
            if i == 0 && count(&tree) != tree_size(depth) {
                eprintln!("workloads: gcbench: a bottom-up tree of depth {depth} lost nodes");
                failed = true;
            }
        }
        println!("\tBottom up construction took {} msec", msec_since(t));
    }

    let n = count(&long_lived);
    if n != tree_size(long_lived_depth) {
        eprintln!(
            "workloads: gcbench: the long-lived tree has {n} nodes, not {}",
            tree_size(long_lived_depth)
        );
        failed = true;
    }
    for (i, &a) in array.iter().enumerate().skip(1) {
        let want = if i < ARRAY_SIZE / 2 {
            1.0 / i as f64
        } else {
            0.0
        };
        if a != want {
            eprintln!("workloads: gcbench: long-lived array[{i}] is {}", fmt_g(a));
            failed = true;
            break;
        }
    }
    println!("Completed in {} msec.", msec_since(start));
    !failed
}

// ---- churn -----------------------------------------------------------------------------

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

fn intact(o: Option<&Obj>, id: u64) -> bool {
    let (a, b, c) = words(id);
    o.is_some_and(|o| o.id == id && o.a == a && o.b == b && o.c == c)
}

fn churn(args: &[String]) -> bool {
    at_most("churn", args, 2);
    let count = count_arg(args, 0, "churn COUNT", 100_000_000, 1, 1 << 40);
    let w = count_arg(args, 1, "churn WINDOW", 10_000, 1, 1 << 26);
    let len = usize::try_from(w).expect("WINDOW is at most 2^26");
    let mut window: Vec<Option<Box<Obj>>> = Vec::new();
    window.resize_with(len, || None);
    let mut bad = None;
    let (mut slot, mut evicted) = (0, 0);
    let start = Instant::now();
    for id in 0..count {
        let (a, b, c) = words(id);
        let o = Box::new(Obj { id, a, b, c });
        if id >= w {
            if !intact(window[slot].as_deref(), evicted) && bad.is_none() {
                bad = Some(evicted);
            }
            evicted += 1;
        }
        // Frees the object allocated WINDOW allocations ago: the manual allocator's half
        // of what a collector does by tracing.
        window[slot] = Some(o);
        slot += 1;
        if slot == len {
            slot = 0;
        }
    }
    let elapsed = start.elapsed();
    let alive = w.min(count);
    let mut survivors = 0;
    for i in 0..alive {
        let id = count - 1 - i;
        if intact(window[(id % w) as usize].as_deref(), id) {
            survivors += 1;
        } else if bad.is_none() {
            bad = Some(id);
        }
    }
    let ns = elapsed.as_nanos() as f64;
    println!(
        "churn: {count} allocations of {} bytes, the last {w} alive: {:.2} ns/allocation ({:.3} s)",
        size_of::<Obj>(),
        ns / count as f64,
        ns / 1e9
    );
    if let Some(id) = bad {
        eprintln!("workloads: churn: allocation {id} was lost or overwritten while alive");
        return false;
    }
    if survivors != alive {
        eprintln!("workloads: churn: only {survivors} of the window's objects survived");
        return false;
    }
    true
}

// ---- main ------------------------------------------------------------------------------

type Workload = fn(&[String]) -> bool;

const WORKLOADS: [(&str, &str, Workload); 3] = [
    ("binary-trees", "[N=21]", binary_trees),
    ("gcbench", "[DEPTH=16]", gcbench),
    ("churn", "[COUNT=100000000] [WINDOW=10000]", churn),
];

/// The other peers' workloads that this one has no counterpart of.
const NOT_HERE: [&str; 3] = ["latency", "pipeline", "goroutines"];

fn main() -> ExitCode {
    // An argument that is not UTF-8 cannot be a count; lossy text is enough to quote it.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(name) = args.first() else {
        usage();
        return ExitCode::from(2);
    };
    if name == "--help" || name == "help" {
        usage();
        return ExitCode::SUCCESS;
    }
    let Some(&(_, _, run)) = WORKLOADS.iter().find(|(w, _, _)| w == name) else {
        if NOT_HERE.contains(&name.as_str()) {
            usage_error(format_args!(
                "{name}: not run by this peer (Box + mimalloc), which runs only \
                 binary-trees, gcbench and churn"
            ));
        }
        let names = WORKLOADS.map(|(name, _, _)| name).join(", ");
        usage_error(format_args!(
            "unknown workload \"{name}\"; the workloads are {names}"
        ));
    };
    if run(&args[1..]) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn usage() {
    println!("usage: workloads WORKLOAD [ARGS]   (Box + mimalloc, no collector)");
    for (name, usage, _) in WORKLOADS {
        println!("  {name:<13} {usage}");
    }
}
