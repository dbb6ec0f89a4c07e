//! `#[derive(HeapType)]` beyond plain structs: enums (an interpreter's tagged values),
//! generic structs, and `#[minigo(crate = "...")]` for a renamed runtime crate.

use minigo_runtime::{gc, Gc, GcField, GcStr, Global, HeapType, Layout, Mutation, Runtime};

/// A tagged value, as an interpreter's: numbers inline, objects by pointer.
#[derive(HeapType, Clone, Copy)]
enum Value<'gc> {
    Nil,
    Int(i64),
    Pair(Gc<'gc, Pair<'gc>>),
    Str(GcStr<'gc>),
}

#[derive(HeapType)]
struct Pair<'gc> {
    car: Value<'gc>,
    cdr: Value<'gc>,
}

/// No pointer in any variant: a scalar.
#[derive(HeapType, Clone, Copy, PartialEq, Debug)]
enum Color {
    Red,
    Rgb(u8, u8, u8),
}

#[derive(HeapType)]
struct Node<'gc, T> {
    value: T,
    next: Option<Gc<'gc, Node<'gc, T>>>,
}

mod renamed {
    pub use minigo_runtime as rt;
}

#[derive(HeapType)]
#[minigo(crate = "renamed::rt")]
struct ThroughARename<'gc> {
    pair: renamed::rt::Gc<'gc, Pair<'gc>>,
    n: u64,
}

fn pointers(l: &Layout) -> Vec<usize> {
    (0..l.size() / 8).filter(|&w| l.is_pointer(w)).collect()
}

#[test]
fn layouts_of_enums_generics_and_renamed_crates() {
    // An enum with a pointer anywhere: every word is a pointer word.
    let words = std::mem::size_of::<Value>() / 8;
    assert_eq!(pointers(Value::layout()), (0..words).collect::<Vec<_>>());
    assert_eq!(pointers(Pair::layout()), (0..2 * words).collect::<Vec<_>>());
    assert_eq!(<Color as GcField>::MASK, 0);
    assert!(!Color::layout().has_pointers());
    // Each instantiation its own layout.
    let next = std::mem::offset_of!(Node<u64>, next) / 8;
    assert_eq!(pointers(Node::<u64>::layout()), vec![next]);
    let l = Node::<Gc<Pair>>::layout();
    let mut want = vec![
        std::mem::offset_of!(Node<Gc<Pair>>, value) / 8,
        std::mem::offset_of!(Node<Gc<Pair>>, next) / 8,
    ];
    want.sort();
    assert_eq!(pointers(l), want);
    assert!(std::ptr::eq(Node::<u64>::layout(), Node::<u64>::layout()));
    assert_eq!(
        pointers(ThroughARename::layout()),
        vec![std::mem::offset_of!(ThroughARename, pair) / 8]
    );
}

fn list(mu: Mutation<'_>, n: i64) -> Value<'_> {
    let mut l = Value::Nil;
    for i in 0..n {
        let car = if i % 3 == 0 {
            Value::Str(GcStr::new(mu, &format!("s{i}")).unwrap())
        } else {
            Value::Int(i)
        };
        l = Value::Pair(Gc::new(mu, Pair { car, cdr: l }).unwrap());
    }
    l
}

fn sum(mut l: Value<'_>) -> (i64, usize) {
    let (mut ints, mut strs) = (0, 0);
    while let Value::Pair(p) = l {
        match p.car {
            Value::Int(i) => ints += i,
            Value::Str(s) => {
                assert!(s.as_str().starts_with('s'));
                strs += 1;
            }
            _ => unreachable!(),
        }
        l = p.cdr;
    }
    (ints, strs)
}

/// Values reachable only through enum payloads survive collections (verify mode re-marks
/// from the roots after each), and the generic list keeps its strings.
#[test]
fn enum_and_generic_objects_survive_collections() {
    Runtime::builder()
        .procs(2)
        .verify(true)
        .build()
        .unwrap()
        .run(|mu| {
            let Value::Pair(head) = list(mu, 3000) else {
                unreachable!()
            };
            let kept = Global::new(head);
            let mut strings: Option<Gc<Node<GcStr>>> = None;
            for i in 0..2000 {
                std::hint::black_box(list(mu, 50)); // garbage
                if i % 10 == 0 {
                    let value = GcStr::new(mu, &format!("n{i}")).unwrap();
                    strings = Some(
                        Gc::new(
                            mu,
                            Node {
                                value,
                                next: strings,
                            },
                        )
                        .unwrap(),
                    );
                }
            }
            gc();
            gc();
            let want_ints: i64 = (0..3000).filter(|i| i % 3 != 0).sum();
            assert_eq!(sum(Value::Pair(kept.get())), (want_ints, 1000));
            let mut n = 0;
            while let Some(node) = strings {
                assert!(node.value.as_str().starts_with('n'));
                n += 1;
                strings = node.next;
            }
            assert_eq!(n, 200);
            let c = Gc::new(mu, Color::Rgb(1, 2, 3)).unwrap();
            assert_eq!(*c, Color::Rgb(1, 2, 3));
            assert_ne!(*c, Color::Red);
        })
        .unwrap();
}
