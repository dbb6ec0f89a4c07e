//! Asynchronous preemption: goroutines in loops without a single safepoint no longer hold
//! up collections or starve other goroutines, and a pointer held only in a register
//! survives a preemption and the collections that happen meanwhile.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use minigo_runtime::{
    async_preemption_enabled, gc, gc_cycles, read_mem_stats, yield_now, Chan, Gc, HeapType,
    Mutation, Runtime, WaitGroup,
};

/// Runs `main` on a runtime of `procs` Ps on another thread; fails the test if the run
/// has not ended within `limit` (without preemption these runs never end).
fn run_within(
    procs: usize,
    limit: Duration,
    main: impl for<'gc> FnOnce(Mutation<'gc>) + Send + 'static,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = Runtime::builder().procs(procs).build().unwrap();
        let _ = tx.send(rt.run(main));
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("the run did not end within {limit:?}: a spinner was not preempted"),
    }
}

/// Spins without a safepoint until `stop`, counting rounds.
#[inline(never)]
fn spin(stop: &AtomicBool, rounds: &AtomicU64) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = black_box(n.wrapping_add(1));
        if n.is_multiple_of(4096) {
            rounds.store(n, Ordering::Relaxed);
        }
    }
}

#[derive(HeapType)]
struct Block {
    words: [u64; 16],
}

#[test]
fn a_spinner_does_not_hold_up_collections() {
    run_within(2, Duration::from_secs(120), |mu| {
        assert!(async_preemption_enabled(), "x86-64 Linux preempts");
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let done: Chan<()> = Chan::new(1);
        {
            let (stop, rounds, done) = (stop.clone(), rounds.clone(), done.clone());
            mu.go(move || {
                spin(&stop, &rounds);
                done.send(());
            });
        }
        // Let it start spinning, then allocate 1 GiB: every cycle stops the world.
        while rounds.load(Ordering::Relaxed) == 0 {
            yield_now();
        }
        let before = gc_cycles().len();
        let mut keep = Vec::new();
        for i in 0..(1usize << 30) / 128 {
            let b = Gc::new(
                mu,
                Block {
                    words: [i as u64; 16],
                },
            )
            .unwrap();
            if i % 100_000 == 0 {
                keep.push(b.words[0]);
            }
        }
        let cycles = gc_cycles().len() - before;
        stop.store(true, Ordering::Relaxed);
        done.recv();
        assert!(cycles >= 5, "1 GiB allocated with only {cycles} cycles");
        assert!(rounds.load(Ordering::Relaxed) > 0);
        black_box(keep);
    });
}

#[test]
fn on_one_p_a_spinner_and_a_ping_pong_pair_all_make_progress() {
    run_within(1, Duration::from_secs(60), |mu| {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let spinner_done: Chan<()> = Chan::new(1);
        {
            let (stop, rounds, d) = (stop.clone(), rounds.clone(), spinner_done.clone());
            mu.go(move || {
                spin(&stop, &rounds);
                d.send(());
            });
        }
        // Main gives its P away; with one P only preemption brings it back.
        yield_now();
        let (ping, pong): (Chan<u32>, Chan<u32>) = (Chan::new(0), Chan::new(0));
        let wg = WaitGroup::new();
        wg.add(1);
        {
            let (ping, pong, wg) = (ping.clone(), pong.clone(), wg.clone());
            mu.go(move || {
                while let Some(v) = ping.recv() {
                    pong.send(v + 1);
                }
                wg.done();
            });
        }
        for i in 0..50 {
            ping.send(i);
            assert_eq!(pong.recv(), Some(i + 1));
        }
        ping.close();
        wg.wait();
        assert!(rounds.load(Ordering::Relaxed) > 0, "the spinner ran too");
        stop.store(true, Ordering::Relaxed);
        spinner_done.recv();
    });
}

#[test]
fn a_spinner_does_not_keep_run_from_returning() {
    run_within(2, Duration::from_secs(30), |mu| {
        let rounds = Arc::new(AtomicU64::new(0));
        {
            let rounds = rounds.clone();
            mu.go(move || spin(&AtomicBool::new(false), &rounds));
        }
        while rounds.load(Ordering::Relaxed) == 0 {
            yield_now();
        }
        // Main returns with the spinner still spinning: the run ends anyway.
    });
}

const MASK: usize = 0x5a5a_5a5a_5a5a_5a5a;
const PATTERN: u64 = 0x0123_4567_89ab_cdef;

/// A new block's address, disguised so that no word anywhere holds the pointer.
#[inline(never)]
fn new_block_masked(mu: Mutation<'_>) -> usize {
    let b = Gc::new(
        mu,
        Block {
            words: [PATTERN; 16],
        },
    )
    .unwrap();
    (Gc::as_ptr(b) as usize) ^ MASK
}

/// Zeroes the stack below the caller's frame, where the frames of `new_block_masked` left
/// copies of the pointer that a conservative scan of what lies there later would find.
#[inline(never)]
fn scrub_stack() {
    let mut area = [0usize; 8192];
    for w in area.iter_mut() {
        // SAFETY: a word of this frame's own array.
        unsafe { std::ptr::write_volatile(w, 0) };
    }
    black_box(&mut area);
}

/// Unmasks `masked` into r11 (a caller-saved register, which no park spills) and spins
/// until `stop`, the pointer living only in r11; returns it masked again.
#[inline(never)]
fn hold_in_register(masked: usize, stop: &AtomicBool, spinning: &AtomicBool) -> usize {
    let mut v = masked;
    // SAFETY: the assembly only reads the two flags and changes r11.
    unsafe {
        std::arch::asm!(
            "xor r11, {mask}",
            "mov byte ptr [{spinning}], 1",
            "2:",
            "pause",
            "cmp byte ptr [{stop}], 0",
            "je 2b",
            "xor r11, {mask}",
            mask = in(reg) MASK,
            stop = in(reg) stop as *const AtomicBool,
            spinning = in(reg) spinning as *const AtomicBool,
            inout("r11") v,
            options(nostack),
        )
    };
    v
}

#[test]
fn a_pointer_only_in_a_register_survives_preemption_and_collections() {
    run_within(2, Duration::from_secs(120), |mu| {
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = Arc::new(AtomicBool::new(false));
        let result: Chan<bool> = Chan::new(1);
        {
            let (stop, spinning, result) = (stop.clone(), spinning.clone(), result.clone());
            mu.go(move || {
                let masked = new_block_masked(mu);
                scrub_stack();
                let masked = hold_in_register(masked, &stop, &spinning);
                let b = (masked ^ MASK) as *const Block;
                // SAFETY: the block is alive if the collector saw r11 while the goroutine
                // was preempted; the test is whether it did.
                let intact = unsafe { (*b).words.iter().all(|&w| w == PATTERN) };
                result.send(intact);
            });
        }
        while !spinning.load(Ordering::Relaxed) {
            yield_now();
        }
        let cycles = read_mem_stats().num_gc;
        // Collections with the spinner preempted, and fresh blocks to reuse any block they
        // freed.
        for _ in 0..4 {
            gc();
            for i in 0..200_000u64 {
                black_box(Gc::new(mu, Block { words: [i; 16] }).unwrap());
            }
        }
        assert!(read_mem_stats().num_gc >= cycles + 4);
        stop.store(true, Ordering::Relaxed);
        assert!(
            result.recv().unwrap(),
            "the block held only in r11 was freed"
        );
    });
}

#[test]
fn godebug_asyncpreemptoff_turns_it_off() {
    if std::env::var("MINIGO_PREEMPT_CHILD").is_ok() {
        Runtime::builder()
            .procs(1)
            .build()
            .unwrap()
            .run(|mu| {
                assert!(!async_preemption_enabled());
                // Cooperative safepoints still work: this loop yields.
                let done: Chan<()> = Chan::new(1);
                let d = done.clone();
                mu.go(move || d.send(()));
                for _ in 0..3 {
                    yield_now();
                }
                done.recv();
            })
            .unwrap();
        return;
    }
    let o = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "godebug_asyncpreemptoff_turns_it_off",
            "--nocapture",
        ])
        .env("MINIGO_PREEMPT_CHILD", "1")
        .env("GODEBUG", "asyncpreemptoff=1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 passed"),
        "the child ran the test"
    );
}

#[test]
fn on_one_p_two_spinners_waiting_on_each_other_take_turns() {
    // Each spins, without a safepoint, until it is its turn; only a preemption that gives
    // the P to the other lets either go on.
    run_within(1, Duration::from_secs(60), |mu| {
        const ROUNDS: u64 = 10;
        let turn = Arc::new(AtomicU64::new(0));
        let done: Chan<()> = Chan::new(2);
        for me in 0..2u64 {
            let (turn, done) = (turn.clone(), done.clone());
            mu.go(move || {
                for round in 0..ROUNDS {
                    while turn.load(Ordering::Acquire) != 2 * round + me {
                        std::hint::spin_loop();
                    }
                    turn.fetch_add(1, Ordering::AcqRel);
                }
                done.send(());
            });
        }
        done.recv();
        done.recv();
        assert_eq!(turn.load(Ordering::Relaxed), 2 * ROUNDS);
    });
}

#[derive(HeapType)]
struct Link<'gc> {
    tag: u64,
    i: u64,
    next: Option<Gc<'gc, Link<'gc>>>,
}

/// Allocation's fast path is inlined into goroutine code (`tls.rs`), where the handler
/// may stop a goroutine at any instruction and give its P, and so its P's mcache, to
/// another M for a time slice. Three allocating goroutines on one P are preempted there
/// again and again: a goroutine stopped holding the mcache's state in its registers would
/// write it back stale when it resumes, handing out a slot another goroutine's list
/// holds, and that list would read another goroutine's tag. (With the busy word's store
/// taken out of `tls::enter`, this fails within half a second.)
///
/// Each goroutine is also stopped at a safepoint for every cycle's stop of the world,
/// every few milliseconds here: it must run on in its time slice then, not begin a new
/// one, or the first would run to its end before the others start.
#[test]
fn goroutines_preempted_while_allocating_never_share_a_slot() {
    run_within(1, Duration::from_secs(120), |mu| {
        assert!(async_preemption_enabled(), "x86-64 Linux preempts");
        let before = minigo_runtime::async_preemptions();
        let wg = WaitGroup::new();
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        for tag in 1..=3u64 {
            wg.add(1);
            let (wg, starts) = (wg.clone(), starts.clone());
            mu.go(move || {
                let start = Instant::now();
                starts.lock().unwrap().push(start);
                while start.elapsed() < Duration::from_millis(1500) {
                    let mut head: Option<Gc<Link>> = None;
                    for i in 0..5_000 {
                        head = Some(Gc::new(mu, Link { tag, i, next: head }).unwrap());
                    }
                    let mut expect = 5_000;
                    while let Some(l) = head {
                        expect -= 1;
                        assert_eq!((l.tag, l.i), (tag, expect), "a slot was handed out twice");
                        head = l.next;
                    }
                    assert_eq!(expect, 0);
                }
                wg.done();
            });
        }
        wg.wait();
        let starts = starts.lock().unwrap();
        let spread = *starts.iter().max().unwrap() - *starts.iter().min().unwrap();
        assert!(
            spread < Duration::from_millis(750),
            "the goroutines started {spread:?} apart: the first kept the P"
        );
        let preempted = minigo_runtime::async_preemptions() - before;
        assert!(
            preempted >= 20,
            "only {preempted} preemptions: the test tested little"
        );
    });
}
