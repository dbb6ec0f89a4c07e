//! Goroutines moving pointers while cycles mark beside them, in verify mode (each cycle's
//! end re-marks from every root with the world stopped and fails on anything reachable
//! left unmarked); `gc()`'s promise; the stop-the-world mode.

use std::sync::Arc;
use std::time::{Duration, Instant};

use minigo_runtime::{
    gc, read_mem_stats, yield_now, Chan, Gc, GcCell, GcSlice, Global, HeapType, Mutation, Runtime,
    WaitGroup,
};

/// A token: its id and a check word derived from it.
#[derive(HeapType)]
struct Token<'gc> {
    id: u64,
    check: u64,
    /// Garbage hangs here now and then, so that cycles have something to free.
    next: GcCell<Option<Gc<'gc, Token<'gc>>>>,
}

fn check_of(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xdead_beef
}

fn token(mu: Mutation<'_>, id: u64) -> Gc<'_, Token<'_>> {
    Gc::new(
        mu,
        Token {
            id,
            check: check_of(id),
            next: GcCell::new(None),
        },
    )
    .unwrap()
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A cell of the board: a node of one long list, so that a cycle's markers take a
/// while to reach the last cells (a list is marked one node after another), and
/// goroutines move tokens out of cells the markers have not reached into cells they have.
#[derive(HeapType)]
struct Cell<'gc> {
    next: Option<Gc<'gc, Cell<'gc>>>,
    slot: GcCell<Option<Gc<'gc, Token<'gc>>>>,
}

/// The board: the list's head in a global handle, and the cells' addresses kept on the
/// side for random access (not roots: the list keeps the cells alive).
struct Board<'gc> {
    _head: Global<'gc, Cell<'gc>>,
    cells: Vec<usize>,
    mu: Mutation<'gc>,
}

impl<'gc> Board<'gc> {
    fn new(mu: Mutation<'gc>, n: usize) -> Board<'gc> {
        let mut head: Option<Gc<Cell>> = None;
        let mut cells = vec![0; n];
        for i in (0..n).rev() {
            let c = Gc::new(
                mu,
                Cell {
                    next: head,
                    slot: GcCell::new(None),
                },
            )
            .unwrap();
            cells[i] = c.as_ptr() as usize;
            head = Some(c);
        }
        Board {
            _head: Global::new(head.expect("n > 0")),
            cells,
            mu,
        }
    }

    fn cell(&self, i: usize) -> Gc<'gc, Cell<'gc>> {
        // SAFETY: every cell is on the list, which the global handle keeps alive.
        unsafe { Gc::from_raw(self.mu, self.cells[i] as *const Cell) }
    }

    fn get(&self, i: usize) -> Option<Gc<'gc, Token<'gc>>> {
        self.cell(i).slot.get()
    }

    fn set(&self, i: usize, t: Option<Gc<'gc, Token<'gc>>>) {
        self.cell(i).slot.set(t)
    }
}

/// TOKENS tokens live on a board of cells. Mover goroutines take the only pointer to a
/// token out of a cell into their stack, park (their stack may be scanned while parked,
/// or not yet), and put it back into another cell, or pass it through a channel — into a
/// buffer, or straight into a relay goroutine parked in `recv` — to be put back by the
/// receiver; allocators make garbage so that cycles start again and again, and one
/// goroutine asks for whole cycles with `gc()`. Each goroutine owns the cells `i` with
/// `i % OWNERS` its number, so no two race on a cell. At the end every token is on the
/// board once, intact. (Without the write barrier's deletion half this fails within a
/// second: a token moved from a cell the markers have not reached into one they have.)
#[test]
fn tokens_moved_between_goroutines_survive_concurrent_cycles() {
    const TOKENS: u64 = 256;
    const MOVERS: usize = 6;
    // The movers and the relay.
    const OWNERS: usize = MOVERS + 1;
    const CELLS: usize = OWNERS * 4000;
    let rt = Runtime::builder()
        .procs(2)
        .verify(true)
        .gogc(Some(25))
        .build()
        .unwrap();
    let collector = rt.collector().clone();
    rt.run(move |mu| {
        let board = std::sync::Arc::new(Board::new(mu, CELLS));
        for id in 0..TOKENS {
            board.set(id as usize * (CELLS / TOKENS as usize), Some(token(mu, id)));
        }
        let handoff: Chan<Gc<Token>> = Chan::new(0);
        let buffered: Chan<Gc<Token>> = Chan::new(4);
        let deadline = Instant::now() + Duration::from_millis(1500);
        let wg = WaitGroup::new();
        for g in 0..MOVERS {
            wg.add(1);
            let (wg, board, handoff, buffered) =
                (wg.clone(), board.clone(), handoff.clone(), buffered.clone());
            mu.go(move || {
                let mut rng = Rng(0x1234_5678 + g as u64);
                while Instant::now() < deadline {
                    if let Ok(t) = buffered.try_recv() {
                        yield_now();
                        put_back(&board, &mut rng, g, OWNERS, t);
                    }
                    // Sweep through this goroutine's cells, so it often finds a token.
                    let mut found = None;
                    for _ in 0..64 {
                        let i = g + OWNERS * rng.below((CELLS / OWNERS) as u64) as usize;
                        if let Some(t) = board.get(i) {
                            found = Some((i, t));
                            break;
                        }
                    }
                    let Some((from, t)) = found else {
                        // A safepoint: a goroutine that never reaches one holds up every
                        // stop of the world (until preemption exists).
                        yield_now();
                        continue;
                    };
                    // The only pointer to `t` is now this goroutine's.
                    board.set(from, None);
                    match rng.below(5) {
                        0 => yield_now(),
                        1 => {
                            // Garbage, hung off the token for a moment, then dropped.
                            t.next.set(Some(token(mu, u64::MAX)));
                            t.next.set(None);
                        }
                        2 => {
                            handoff.send(t);
                            continue;
                        }
                        3 => {
                            if let Err(e) = buffered.try_send(t) {
                                let (minigo_runtime::TrySendError::Full(t)
                                | minigo_runtime::TrySendError::Closed(t)) = e;
                                put_back(&board, &mut rng, g, OWNERS, t);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    put_back(&board, &mut rng, g, OWNERS, t);
                }
                wg.done();
            });
        }
        // The relay: parked in `recv` most of the time, so senders hand tokens straight
        // into its stack.
        let relay_done = WaitGroup::new();
        relay_done.add(1);
        {
            let (done, board, handoff) = (relay_done.clone(), board.clone(), handoff.clone());
            mu.go(move || {
                let mut rng = Rng(77);
                while let Some(t) = handoff.recv() {
                    put_back(&board, &mut rng, MOVERS, OWNERS, t);
                }
                done.done();
            });
        }
        // Garbage makers, so the pacer starts cycles all the time.
        for _ in 0..2 {
            wg.add(1);
            let wg = wg.clone();
            mu.go(move || {
                while Instant::now() < deadline {
                    for i in 0..1000 {
                        let _ = token(mu, u64::MAX - i);
                    }
                    yield_now();
                }
                wg.done();
            });
        }
        wg.add(1);
        let w = wg.clone();
        mu.go(move || {
            while Instant::now() < deadline {
                gc();
                yield_now();
            }
            w.done();
        });
        wg.wait();
        handoff.close();
        relay_done.wait();
        let mut rng = Rng(99);
        while let Ok(t) = buffered.try_recv() {
            put_back(&board, &mut rng, 0, OWNERS, t);
        }
        gc();
        let mut seen = vec![false; TOKENS as usize];
        for i in 0..CELLS {
            if let Some(t) = board.get(i) {
                assert_eq!(t.check, check_of(t.id), "token {} corrupted", t.id);
                assert!(!seen[t.id as usize], "token {} twice", t.id);
                seen[t.id as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "a token was lost");
    })
    .unwrap();
    let cycles = collector.cycles();
    assert!(cycles.len() > 20, "only {} cycles", cycles.len());
    assert!(
        cycles.iter().all(|c| c.concurrent),
        "every cycle marked beside the goroutines"
    );
}

/// Puts `t` into a free cell of owner `g` (cells `i` with `i % owners == g`; each owner
/// has more cells than there are tokens, so one is free).
fn put_back<'gc>(
    board: &Board<'gc>,
    rng: &mut Rng,
    g: usize,
    owners: usize,
    t: Gc<'gc, Token<'gc>>,
) {
    let mine = board.cells.len() / owners;
    loop {
        let to = g + owners * rng.below(mine as u64) as usize;
        if board.get(to).is_none() {
            board.set(to, Some(t));
            return;
        }
    }
}

#[test]
fn gc_returns_after_a_whole_cycle_and_its_sweep() {
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.run(|mu| {
        let keep = GcSlice::new(mu, 1000, None::<Gc<Token>>).unwrap();
        for i in 0..1000 {
            keep.set(i, Some(token(mu, i as u64)));
        }
        // Garbage made on a goroutine that has ended: no stack word of it remains.
        let wg = WaitGroup::new();
        wg.add(1);
        let w = wg.clone();
        mu.go(move || {
            for _ in 0..5000 {
                let _ = token(mu, u64::MAX);
            }
            w.done();
        });
        wg.wait();
        gc();
        let s = read_mem_stats();
        // The slice and its 1,000 tokens: the garbage is swept already.
        assert_eq!(s.heap_objects, 1001);
        let before = s.num_gc;
        gc();
        assert_eq!(
            read_mem_stats().num_gc,
            before + 1,
            "one whole cycle per gc()"
        );
        assert!(keep.get(999).is_some());
    })
    .unwrap();
}

#[test]
fn stop_the_world_mode_marks_in_one_pause() {
    let rt = Runtime::builder()
        .procs(2)
        .stop_the_world(true)
        .verify(true)
        .build()
        .unwrap();
    let collector = rt.collector().clone();
    rt.run(|mu| {
        let mut list: Option<Gc<Token>> = None;
        for i in 0..200_000u64 {
            let t = token(mu, i);
            if i % 10 == 0 {
                t.next.set(list);
                list = Some(t);
            }
        }
        gc();
        let (mut n, mut p) = (0, list);
        while let Some(t) = p {
            assert_eq!(t.check, check_of(t.id));
            n += 1;
            p = t.next.get();
        }
        assert_eq!(n, 20_000);
    })
    .unwrap();
    let cycles = collector.cycles();
    assert!(cycles.len() > 1);
    for c in &cycles {
        assert!(!c.concurrent);
        assert_eq!(
            c.pause_ns,
            c.sweep_term_ns + c.mark_ns + c.mark_term_ns,
            "the whole cycle is the pause"
        );
    }
}

#[test]
fn a_runtime_ended_while_marking_lets_go_of_its_heap() {
    use minigo_runtime::gc_crate::GcPhase;
    // Several tries: main must return while the cycle it started still marks, and the
    // background workers may finish a small heap's marking first.
    for _ in 0..5 {
        let rt = Runtime::builder().procs(2).build().unwrap();
        let collector = rt.collector().clone();
        let c = collector.clone();
        rt.run(move |mu| {
            let board = Board::new(mu, 200_000);
            while c.phase() == GcPhase::Off {
                let _ = token(mu, 1);
            }
            drop(board);
        })
        .unwrap();
        // What the runtime's threads hold, they let go of as they notice it ended. Mutator
        // states still pointing at the abandoned cycle's queue kept the scheduler (their
        // owner) alive through the queue's root jobs, and with it the whole heap.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&collector) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            Arc::strong_count(&collector),
            1,
            "the runtime's scheduler outlived it"
        );
    }
}
