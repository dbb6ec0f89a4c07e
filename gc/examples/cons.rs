//! An interpreter on the standalone heap, in miniature: a VM stack of tagged values is the
//! root set, cons cells are allocated by the million, lists are built, summed, kept or
//! dropped, and at the end one collection and the heap's statistics.
//!
//! `cargo run --release -p minigo-gc --example cons -- [LISTS=5000] [LEN=1000]`
//!
//! What an embedder writes, and where the `unsafe` is:
//! 1. A value encoding whose words are safe in pointer slots (`Value`): a word is either a
//!    heap object's address, null, or a word no heap can hold. Here fixnums carry bit 63.
//! 2. The object's layout (`Layout::pointers(2)`: both words of a cons may be pointers).
//! 3. A `Roots` that reports every value the VM holds (`Vm::trace`). Allocation may
//!    collect, so whatever the VM still needs is on its stack when it allocates.
//! 4. Stores into objects through `Mutator::write` (one `unsafe` block in `cons`), and
//!    reads through the raw pointer (one in `car_cdr`): the collector frees only what no
//!    root reaches, so a cell reached from the stack is live while it is read.

use std::time::Instant;

use minigo_gc::{GcConfig, Heap, Layout, Mutator, Roots, Tracer};

/// A tagged value: nil (0), a fixnum (bit 63 set: above every address a heap is mapped
/// at), or the address of a cons cell.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Value(usize);

const FIXNUM: usize = 1 << 63;

impl Value {
    const NIL: Value = Value(0);

    fn int(n: u32) -> Value {
        Value(FIXNUM | n as usize)
    }

    fn as_int(self) -> u32 {
        assert!(self.0 & FIXNUM != 0, "not a fixnum: {self:?}");
        self.0 as u32
    }

    fn as_cons(self) -> Option<*mut Cons> {
        (self.0 != 0 && self.0 & FIXNUM == 0).then_some(self.0 as *mut Cons)
    }
}

/// A cons cell: two value words, both pointer words in its layout.
#[repr(C)]
struct Cons {
    car: Value,
    cdr: Value,
}

/// The interpreter's state: its operand stack (the roots) and its heap's mutator.
struct Vm {
    stack: Vec<Value>,
}

impl Roots for Vm {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for v in &self.stack {
            if let Some(c) = v.as_cons() {
                t.mark_ptr(c);
            }
        }
    }
}

impl Vm {
    /// `(cons a b)` with `a` on top of the stack and `b` below it, replaced by the cell.
    fn cons(&mut self, m: &mut Mutator, layout: &Layout) {
        // Both operands stay on the stack (rooted) until the cell holds them.
        let p = m
            .alloc(layout, self)
            .unwrap_or_else(|e| panic!("cons: {e}"))
            .as_ptr() as *mut Cons;
        let car = self.stack.pop().expect("an operand");
        let cdr = self.stack.pop().expect("an operand");
        // SAFETY: `p` is a fresh cell of this layout; both words are pointer words, and each
        // value is nil, a fixnum (no heap holds its address) or a live cell (it was on the
        // stack, a root, when the allocation collected).
        unsafe {
            m.write(&raw mut (*p).car as *mut usize, car.0);
            m.write(&raw mut (*p).cdr as *mut usize, cdr.0);
        }
        self.stack.push(Value(p as usize));
    }
}

/// The car and cdr of a live cell.
fn car_cdr(c: *mut Cons) -> (Value, Value) {
    // SAFETY: callers pass cells reachable from the VM stack, which the collector keeps.
    unsafe { ((*c).car, (*c).cdr) }
}

/// The sum of a list of fixnums.
fn sum(mut list: Value) -> u64 {
    let mut s = 0;
    while let Some(c) = list.as_cons() {
        let (car, cdr) = car_cdr(c);
        s += car.as_int() as u64;
        list = cdr;
    }
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let lists: u32 = args.next().map_or(5000, |s| s.parse().expect("LISTS"));
    let len: u32 = args.next().map_or(1000, |s| s.parse().expect("LEN"));

    let heap = Heap::new(GcConfig::from_env().expect("GOGC/GOMEMLIMIT/GODEBUG")).unwrap();
    let mut m = heap.mutator().expect("the heap's mutator");
    let layout = Layout::pointers(2);
    let mut vm = Vm {
        stack: vec![Value::NIL],
    }; // stack[0]: the lists kept
    let start = Instant::now();

    for l in 0..lists {
        // Build (len-1 ... 1 0): push nil, then for each element push it and cons.
        vm.stack.push(Value::NIL);
        for i in 0..len {
            vm.stack.push(Value::int(i));
            vm.cons(&mut m, &layout);
        }
        let list = *vm.stack.last().unwrap();
        assert_eq!(sum(list), len as u64 * (len as u64 - 1) / 2);
        let list = vm.stack.pop().unwrap();
        if l % 100 == 0 {
            // Keep one list in a hundred: kept = (list . kept). Nothing allocates between
            // the pop above and these pushes, so `list` needs no root meanwhile.
            vm.stack.push(vm.stack[0]);
            vm.stack.push(list);
            vm.cons(&mut m, &layout);
            vm.stack[0] = vm.stack.pop().unwrap();
        }
    }
    let elapsed = start.elapsed();
    let record = m.collect(&mut vm);

    let mut kept = 0;
    let mut total = 0;
    let mut cursor = vm.stack[0];
    while let Some(c) = cursor.as_cons() {
        let (list, next) = car_cdr(c);
        total += sum(list);
        kept += 1;
        cursor = next;
    }
    let expect_kept = lists.div_ceil(100);
    assert_eq!(kept, expect_kept);
    assert_eq!(total, kept as u64 * (len as u64 * (len as u64 - 1) / 2));

    let s = m.mem_stats();
    println!(
        "{} cons cells in {:.3} s ({:.1} ns each); {kept} lists of {len} kept",
        s.mallocs,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / s.mallocs.max(1) as f64
    );
    println!(
        "collections {} (pauses {:.3} ms in all); after the last: {} KiB in {} objects, \
         the last one's pause {:.3} ms",
        s.num_gc,
        s.pause_total_ns as f64 / 1e6,
        s.heap_alloc / 1024,
        s.heap_objects,
        record.pause_ns as f64 / 1e6
    );
    println!(
        "allocated {} MiB in all; heap from the OS {} MiB",
        s.total_alloc >> 20,
        s.heap_sys >> 20
    );
}
