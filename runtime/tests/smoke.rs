use minigo_runtime::*;

#[derive(HeapType)]
struct Node {
    next: Option<Gc<Node>>,
    value: i64,
}

#[test]
fn smoke() {
    let rt = Runtime::builder().procs(2).verify(true).build().unwrap();
    let r = rt.run(|| {
        let ch: Chan<Gc<Node>> = Chan::new(0);
        let wg = WaitGroup::new();
        for i in 0..10 {
            let ch = ch.clone();
            wg.add(1);
            let wg = wg.clone();
            go(move || {
                let mut head: Option<Gc<Node>> = None;
                for j in 0..10_000 {
                    head = Some(
                        Gc::new(Node {
                            next: head,
                            value: i * 100_000 + j,
                        })
                        .unwrap(),
                    );
                }
                ch.send(head.unwrap());
                wg.done();
            });
        }
        let mut total = 0;
        for _ in 0..10 {
            let mut p = Some(ch.recv().unwrap());
            gc();
            let mut n = 0;
            while let Some(x) = p {
                n += 1;
                p = x.next;
            }
            total += n;
        }
        wg.wait();
        assert_eq!(total, 100_000);
        let s = read_mem_stats();
        eprintln!("num_gc {} heap_objects {}", s.num_gc, s.heap_objects);
    });
    r.unwrap();
}
