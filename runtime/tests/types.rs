//! The typed API: layouts from `#[derive(HeapType)]`, slices, strings, cells, globals.

use std::collections::HashSet;

use minigo_runtime::{
    gc, layout_of, Allocator, Chan, Gc, GcCell, GcField, GcSlice, GcStr, Global, HeapType, Runtime,
};

#[derive(HeapType)]
struct Leaf<'gc> {
    a: u64,
    b: Option<Gc<'gc, Leaf<'gc>>>,
}

#[derive(HeapType)]
struct Mixed<'gc> {
    x: u32,
    y: u32,
    first: Gc<'gc, Leaf<'gc>>,
    inner: Leaf<'gc>,
    cells: [GcCell<Option<Gc<'gc, Leaf<'gc>>>>; 2],
    name: GcStr<'gc>,
    items: GcSlice<'gc, u64>,
    z: f64,
}

#[test]
fn derived_layouts_name_exactly_the_pointer_words() {
    let pointers = |l: &minigo_runtime::Layout| {
        (0..l.size() / 8)
            .filter(|&w| l.is_pointer(w))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pointers(Leaf::layout()),
        vec![std::mem::offset_of!(Leaf, b) / 8]
    );
    let l = Mixed::layout();
    assert_eq!(l.size(), std::mem::size_of::<Mixed>());
    let mut want = vec![
        std::mem::offset_of!(Mixed, first) / 8,
        (std::mem::offset_of!(Mixed, inner) + std::mem::offset_of!(Leaf, b)) / 8,
        std::mem::offset_of!(Mixed, cells) / 8,
        std::mem::offset_of!(Mixed, cells) / 8 + 1,
        std::mem::offset_of!(Mixed, name) / 8,
        std::mem::offset_of!(Mixed, items) / 8,
    ];
    want.sort();
    assert_eq!(pointers(l), want);
    let mut mask = 0u64;
    for w in &want {
        mask |= 1 << w;
    }
    assert_eq!(
        <Mixed as GcField>::MASK,
        mask,
        "the compile-time mask agrees"
    );
    assert_eq!(pointers(&layout_of::<[Gc<Leaf>; 3]>()), vec![0, 1, 2]);
}

/// A pointer-free object, 32 bytes.
#[derive(HeapType)]
struct Blob {
    words: [u64; 4],
}

/// Pointer-free spans are not cleared when their objects die (`needzero`): `Gc::new`
/// writes over the old bytes, and an allocation that promises zeroed memory clears them.
/// Both must be seen on slots that held a dead object's bytes.
#[test]
fn slots_of_dead_pointer_free_objects_come_back_as_written_or_zeroed() {
    let rt = Runtime::builder().procs(1).build().unwrap();
    rt.run(|mu| {
        let dead: HashSet<usize> = (0..20_000u64)
            .map(|i| Gc::new(mu, Blob { words: [!i; 4] }).unwrap().as_ptr() as usize)
            .collect();
        // Checked builds hold dead slots back for 4 cycles (the quarantine).
        for _ in 0..6 {
            gc();
        }
        let layout = layout_of::<Blob>();
        let mut reused = 0;
        for round in 0..20_000u64 {
            let p = if round % 2 == 0 {
                let b = Gc::new(mu, Blob { words: [round; 4] }).unwrap();
                assert_eq!(b.words, [round; 4]);
                b.as_ptr() as usize
            } else {
                let p = mu.alloc(&layout, 1).unwrap().as_ptr() as usize;
                // SAFETY: a fresh object of `layout`'s 32 bytes.
                let words = unsafe { std::ptr::read(p as *const [u64; 4]) };
                assert_eq!(words, [0; 4], "a zeroed allocation held old bytes");
                p
            };
            reused += usize::from(dead.contains(&p));
        }
        assert!(
            reused > 1000,
            "only {reused} allocations reused a dead slot"
        );
    })
    .unwrap();
}

#[test]
fn objects_slices_strings_cells_and_globals_survive_collections() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    rt.run(|mu| {
        let leaf = Gc::new(mu, Leaf { a: 1, b: None }).unwrap();
        let m = Gc::new(
            mu,
            Mixed {
                x: 1,
                y: 2,
                first: leaf,
                inner: Leaf {
                    a: 3,
                    b: Some(Gc::new(mu, Leaf { a: 4, b: None }).unwrap()),
                },
                cells: [GcCell::new(None), GcCell::new(Some(leaf))],
                name: GcStr::new(mu, "minigo heap string").unwrap(),
                items: GcSlice::new(mu, 1000, 7u64).unwrap(),
                z: 2.5,
            },
        )
        .unwrap();
        m.cells[0].set(Some(Gc::new(mu, Leaf { a: 5, b: None }).unwrap()));
        m.items.set(999, 42);
        let pointers: GcSlice<Option<Gc<Leaf>>> = GcSlice::new(mu, 100, None).unwrap();
        for i in 0..100 {
            pointers.set(
                i,
                Some(
                    Gc::new(
                        mu,
                        Leaf {
                            a: i as u64,
                            b: None,
                        },
                    )
                    .unwrap(),
                ),
            );
        }
        let global = Global::new(Gc::new(mu, Leaf { a: 77, b: None }).unwrap());
        for _ in 0..5 {
            gc();
            for _ in 0..10_000 {
                Gc::new(mu, Leaf { a: 0, b: None }).unwrap();
            }
        }
        assert_eq!(
            (m.x, m.y, m.first.a, m.inner.a, m.inner.b.unwrap().a, m.z),
            (1, 2, 1, 3, 4, 2.5)
        );
        assert_eq!(m.cells[0].get().unwrap().a, 5);
        assert!(Gc::ptr_eq(m.cells[1].get().unwrap(), leaf));
        assert_eq!(m.name.as_str(), "minigo heap string");
        assert_eq!(
            (m.items.len(), m.items.get(0), m.items.get(999)),
            (1000, 7, 42)
        );
        assert!((0..100).all(|i| pointers.get(i).unwrap().a == i as u64));
        assert_eq!(global.get().a, 77);
        // A global handle keeps its object alive from a plain Rust container too.
        let held: Vec<Global<Leaf>> = (0..10)
            .map(|i| {
                Global::new(
                    Gc::new(
                        mu,
                        Leaf {
                            a: 100 + i,
                            b: None,
                        },
                    )
                    .unwrap(),
                )
            })
            .collect();
        gc();
        assert!(held
            .iter()
            .enumerate()
            .all(|(i, g)| g.get().a == 100 + i as u64));
        // A goroutine's closure keeps what it captured until it runs.
        let out: Chan<u64> = Chan::new(1);
        let captured = Gc::new(mu, Leaf { a: 31337, b: None }).unwrap();
        let o = out.clone();
        mu.go(move || o.send(captured.a));
        gc();
        assert_eq!(out.recv(), Some(31337));
        assert!(GcStr::new(mu, "").unwrap().as_str().is_empty());
    })
    .unwrap();
}

/// An element whose validity spans words: the tag, then 23 `bool`s across three words
/// for `A`; any bytes for `B`.
#[derive(HeapType, Clone, Copy)]
enum Torn {
    A([bool; 23]),
    B([u8; 23]),
}

#[derive(HeapType, Clone, Copy)]
struct Point {
    x: f64,
    y: f64,
    tag: [bool; 8],
}

#[derive(HeapType, Clone, Copy)]
enum Small {
    A(u32),
    B(f32),
}

#[derive(HeapType, Clone, Copy)]
struct WithSmall {
    n: u64,
    s: Small,
}

#[derive(HeapType, Clone, Copy)]
#[repr(align(16))]
struct Wide16 {
    b: bool,
    n: u64,
}

/// Sixteen bytes aligned to sixteen: `size <= align`, yet two words.
#[derive(HeapType, Clone, Copy)]
enum Aligned {
    A(Wide16),
    B(u64),
}

fn tear_safe<T: GcField>() -> bool {
    std::hint::black_box(T::TEAR_SAFE)
}

/// Which elements need the seqlock: those wider than a word that words of two valid
/// values could make invalid (`GcField::TEAR_SAFE` false).
#[test]
fn elements_that_tear_into_invalid_values_are_the_ones_locked() {
    assert!(tear_safe::<Point>(), "scalars: any mix is a Point");
    assert!(!tear_safe::<Small>(), "at offset 4, it straddles two words");
    assert!(
        tear_safe::<WithSmall>(),
        "word-aligned: the enum is in one word"
    );
    assert!(!tear_safe::<[Small; 3]>());
    assert!(
        !tear_safe::<Torn>(),
        "a tag from one write, a payload from another"
    );
    assert!(!tear_safe::<GcStr>(), "a pointer with another's length");
    assert!(!tear_safe::<Mixed>(), "a GcStr field");
    assert!(
        !tear_safe::<Aligned>(),
        "two words, though aligned to its size"
    );
    assert!(tear_safe::<Leaf>());
}

/// A `GcSlice` is `Sync`: goroutines on two threads may `set` one element while a third
/// `get`s it. Word by word, the read could pair `A`'s tag with `B`'s bytes: `bool`s of
/// 0xff, undefined behaviour from safe code. Elements of more than one word are read and
/// written under a seqlock (`typed_heap.rs`), so every read is one whole write.
#[test]
fn a_multiword_element_is_never_read_torn() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static STOP: AtomicBool = AtomicBool::new(false);
    let rt = Runtime::builder().procs(3).build().unwrap();
    let r = rt.run(|mu| {
        let slice = GcSlice::new(mu, 1, Torn::A([true; 23])).unwrap();
        let done = Chan::new(2);
        for w in 0..2u8 {
            let done = done.clone();
            mu.go(move || {
                let mut n = 0u64;
                while !STOP.load(Ordering::Relaxed) {
                    let v = match w {
                        0 => Torn::A([n.is_multiple_of(2); 23]),
                        _ => Torn::B([0xff; 23]),
                    };
                    slice.set(0, v);
                    n += 1;
                }
                done.send(());
            });
        }
        let mut seen = [0u64; 2];
        for _ in 0..2_000_000 {
            match slice.get(0) {
                Torn::A(bools) => {
                    // SAFETY: the test's probe: a `bool` read torn would hold 0xff.
                    let bytes: [u8; 23] = unsafe { std::mem::transmute(bools) };
                    assert!(
                        bytes.iter().all(|&b| b == bytes[0] && b <= 1),
                        "torn read: {bytes:?}"
                    );
                    seen[0] += 1;
                }
                Torn::B(bytes) => {
                    assert_eq!(bytes, [0xff; 23], "torn read");
                    seen[1] += 1;
                }
            }
        }
        STOP.store(true, Ordering::Relaxed);
        done.recv();
        done.recv();
        assert!(
            seen[0] > 0 && seen[1] > 0,
            "both writers were seen: {seen:?}"
        );
    });
    assert_eq!(r, Ok(()));
}
