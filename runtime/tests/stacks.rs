//! Goroutine stack memory as MemStats reports it. A test binary of its own: stack arenas
//! are shared by every runtime in a process, so other tests' goroutines would count too.

use std::sync::Mutex;

use minigo_runtime::{gc, go, read_mem_stats, Chan, Runtime, WaitGroup};

/// One test at a time: each measures every goroutine stack in the process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn stack_inuse_counts_resident_stack_pages() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1000;
    let rt = Runtime::builder().procs(2).build().unwrap();
    rt.run(|_| {
        let base = read_mem_stats().stack_inuse;
        let release: Chan<()> = Chan::new(0);
        let (parked, done) = (WaitGroup::new(), WaitGroup::new());
        for _ in 0..N {
            let (release, parked, done) = (release.clone(), parked.clone(), done.clone());
            parked.add(1);
            done.add(1);
            go(move || {
                // 1 KiB frames: about 190 KiB deep at the bottom.
                let r = deep_then_park_signal(190, &release, &parked);
                std::hint::black_box(r);
                done.done();
            });
        }
        parked.wait();
        let deep = read_mem_stats();
        let grew = deep.stack_inuse.saturating_sub(base);
        assert!(
            grew >= ((N * 180) << 10) as u64,
            "1,000 stacks 190 KiB deep: StackInuse grew {grew} bytes"
        );
        assert!(deep.stack_sys >= deep.stack_inuse);
        release.close();
        done.wait();
        // Dead goroutines' stacks beyond the Ps' small caches are given back at the end of
        // a collection.
        gc();
        gc();
        let after = read_mem_stats().stack_inuse;
        assert!(
            after < base + (grew / 2),
            "after: {after}, deep: {}",
            deep.stack_inuse
        );
        eprintln!(
            "StackInuse: {base} before, {} with 1,000 deep stacks, {after} after",
            deep.stack_inuse
        );
    })
    .unwrap();
}

/// `deep_then_park`, saying it is parked (from the bottom, just before parking).
#[inline(never)]
fn deep_then_park_signal(depth: usize, ch: &Chan<()>, parked: &WaitGroup) -> u64 {
    let frame = std::hint::black_box([depth as u64; 128]);
    if depth == 0 {
        parked.done();
        assert_eq!(ch.recv(), None);
        return frame[1];
    }
    frame[5] + deep_then_park_signal(depth - 1, ch, parked)
}

#[test]
fn parked_stacks_shrink_at_a_collection() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const N: usize = 1000;
    // Verify mode (GODEBUG=gccheckmark=1) gives a parking goroutine's dead stack back at
    // once (`stack::clear_dead`): the stacks would never be seen grown.
    let rt = Runtime::builder().procs(2).verify(false).build().unwrap();
    rt.run(|_| {
        let base = read_mem_stats().stack_inuse;
        let release: Chan<()> = Chan::new(0);
        let (parked, done) = (WaitGroup::new(), WaitGroup::new());
        for _ in 0..N {
            let (release, parked, done) = (release.clone(), parked.clone(), done.clone());
            parked.add(1);
            done.add(1);
            go(move || {
                // 190 KiB deep once, then back up, and park near the top.
                std::hint::black_box(deep(190));
                parked.done();
                assert_eq!(release.recv(), None);
                done.done();
            });
        }
        parked.wait();
        let deep_stats = read_mem_stats();
        let grew = deep_stats.stack_inuse.saturating_sub(base);
        assert!(
            grew >= ((N * 180) << 10) as u64,
            "1,000 stacks that went 190 KiB deep: StackInuse grew {grew} bytes"
        );
        gc();
        let after = read_mem_stats().stack_inuse.saturating_sub(base);
        eprintln!(
            "StackInuse above the start: {grew} bytes with 1,000 stacks once 190 KiB deep, \
             {after} after one collection"
        );
        assert!(
            after < 10 << 20,
            "the parked goroutines' stacks still hold {after} bytes"
        );
        release.close();
        done.wait();
    })
    .unwrap();
}

/// Recurses `depth` 1 KiB frames deep.
#[inline(never)]
fn deep(depth: usize) -> u64 {
    let frame = std::hint::black_box([depth as u64; 128]);
    if depth == 0 {
        return frame[1];
    }
    frame[5] + deep(depth - 1)
}
