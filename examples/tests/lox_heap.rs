//! The Lox VM's heap through its public API: what a program drops is really collected,
//! strings included (the intern table holds them weakly), and what it keeps survives.

use std::cell::RefCell;
use std::io::{self, Write};
use std::rc::Rc;

use minigo_examples::lox::{InterpretResult, Vm};
use minigo_gc::GcConfig;

/// A writer whose bytes the test can read back after the VM has written them.
#[derive(Clone, Default)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.borrow_mut())).expect("utf-8 output")
    }
}

struct Lox {
    vm: Vm,
    out: Shared,
    err: Shared,
}

impl Lox {
    fn new() -> Lox {
        let (out, err) = (Shared::default(), Shared::default());
        let vm = Vm::new(
            GcConfig::default(),
            Box::new(out.clone()),
            Box::new(err.clone()),
        )
        .expect("a heap");
        Lox { vm, out, err }
    }

    /// Runs `source` (globals persist between calls) and returns what it printed.
    fn run(&mut self, source: &str) -> String {
        let r = self.vm.interpret(source.as_bytes());
        assert!(
            matches!(r, InterpretResult::Ok),
            "{source:?} failed: {}",
            self.err.take()
        );
        self.out.take()
    }
}

#[test]
fn dropped_strings_leave_the_intern_table_and_kept_ones_stay() {
    let mut lox = Lox::new();
    lox.run(
        r#"
        class Cell { init(s, next) { this.s = s; this.next = next; } }
        var kept = "k";
        for (var i = 0; i < 10; i = i + 1) kept = kept + "x";
        var list = nil;
        fun grow(n) {
          var s = "";
          for (var i = 0; i < n; i = i + 1) {
            s = s + "y";
            list = Cell(s, list);
          }
        }
        "#,
    );
    lox.vm.collect();
    let base_interned = lox.vm.strings_interned();

    // 3000 new strings ("yy" up to 3000 y's; "y" is a constant), all held by the list.
    lox.run("grow(3000);");
    lox.vm.collect();
    let dropped_before = lox.vm.strings_dropped();
    let held = lox.vm.strings_interned();
    assert!(
        held >= base_interned + 2999,
        "held {held}, base {base_interned}"
    );

    lox.run("list = nil;");
    lox.vm.collect();
    let dropped = lox.vm.strings_dropped() - dropped_before;
    let after = lox.vm.strings_interned();
    assert!(dropped >= 2999, "only {dropped} strings dropped");
    assert!(
        after <= base_interned + 8,
        "{after} strings interned after dropping, {base_interned} before"
    );

    // The kept global is still the interned copy: an equal string built afresh is it.
    assert_eq!(
        lox.run(r#"print kept; print kept == "k" + "xxxxxxxxxx"; print "a" + "b" == "ab";"#),
        "kxxxxxxxxxx\ntrue\ntrue\n"
    );
    // A dropped string's characters make a new, equal string.
    assert_eq!(
        lox.run(r#"grow(3); print list.s == "yyy"; print list.next.s == "y" + "y";"#),
        "true\ntrue\n"
    );
}

#[test]
fn a_dropped_object_graph_is_collected() {
    let mut lox = Lox::new();
    lox.run(
        r#"
        class Tree { init(l, r) { this.l = l; this.r = r; } }
        fun make(d) { if (d == 0) return Tree(nil, nil); return Tree(make(d - 1), make(d - 1)); }
        fun count(t) { if (t == nil) return 0; return 1 + count(t.l) + count(t.r); }
        var tree = nil;
        "#,
    );
    let base = lox.vm.collect().heap_alloc;

    // 2^17 - 1 instances, each with its field table: several MiB while it is reachable.
    assert_eq!(lox.run("tree = make(16); print count(tree);"), "131071\n");
    let live = lox.vm.collect().heap_alloc;
    assert!(
        live > base + 4 * 1024 * 1024,
        "a live tree of 131071 nodes holds only {} bytes",
        live - base
    );

    lox.run("tree = nil;");
    let after = lox.vm.collect().heap_alloc;
    assert!(
        after < base + 512 * 1024,
        "{after} bytes in use after dropping the tree, {base} before it (and {live} with it)"
    );
    assert!(lox.vm.heap_stats().heap_alloc <= after + 64 * 1024);
}

/// Instances keep their fields inline; one that outgrows them moves its fields to an
/// array of its own and clears the inline copies, so a value it later drops is garbage.
#[test]
fn fields_moved_out_of_line_keep_nothing_alive() {
    let mut lox = Lox::new();
    lox.run(
        r#"
        class Box {}
        fun big(n) { var s = "x"; for (var i = 0; i < n; i = i + 1) s = s + s; return s; }
        // The class gives out two slots, `a` and `s`: later instances have room for two.
        var first = Box(); first.a = 1; first.s = 1;
        var b = Box();
        "#,
    );
    let base = lox.vm.collect().heap_alloc;
    // 4 MiB held by a field stored inline, then six more fields: the first of them
    // moves the values out of line, taking the big string's field with it.
    lox.run("b.s = big(22); b.a = 1; b.c = 1; b.d = 1; b.e = 1; b.f = 1; b.g = 1; b.h = 1;");
    let live = lox.vm.collect().heap_alloc;
    assert!(
        live > base + 4_000_000,
        "{live} bytes with the string, {base} without"
    );
    assert_eq!(lox.run("print b.s == big(22); print b.h;"), "true\n1\n");
    lox.run("b.s = nil;");
    let after = lox.vm.collect().heap_alloc;
    assert!(
        after < base + 1_000_000,
        "{after} bytes after dropping the string, {base} before it: a stale inline copy kept it"
    );
}
