//! Verify mode (Go's `GODEBUG=gccheckmark=1`): at mark termination, with the mutators
//! stopped, mark again from the roots, single-threaded, into a separate set, and fail
//! loudly if anything reachable was left unmarked (concurrent marking may keep more than
//! is reachable now, never less), naming the object, its span and the path that reaches it. It also catches
//! dangling pointers: a root or pointer word that points into the heap but not at an
//! allocated object (Go's "found bad pointer in Go heap").

use std::collections::HashMap;
use std::fmt::Write;

use minigo_alloc_core::{MHeap, MSpan};

use crate::roots::{RootKind, Roots, Tracer};

#[derive(Clone, Copy)]
enum Parent {
    Root(RootKind, usize),
    Object(usize, usize),
}

struct Checkmarks<'h> {
    heap: &'h MHeap,
    /// Every object reached, with how it was first reached.
    seen: HashMap<usize, Parent>,
    stack: Vec<(usize, &'h MSpan)>,
    problem: Option<String>,
}

impl<'h> Checkmarks<'h> {
    /// Reaches the object holding `addr` from `parent`; notes a dangling pointer if `addr`
    /// is in the heap but no object.
    fn reach(&mut self, addr: usize, parent: Parent, precise: bool) {
        // SAFETY: verification runs at mark termination: mutators stopped, sweeping
        // drained for the cycle (no span freed or swept).
        let Some(o) = (unsafe { self.heap.find_object_unlocked(addr) }) else {
            if precise && self.heap.contains(addr) {
                let what = match parent {
                    Parent::Root(_, n) => format!("precise root #{n}"),
                    Parent::Object(base, off) => {
                        format!(
                            "word +{off} of object {base:#x} (path: {})",
                            path(&self.seen, base)
                        )
                    }
                };
                self.report(format!(
                    "{what} holds {addr:#x}: inside the heap but not an allocated object (a dangling pointer)"
                ));
            }
            return;
        };
        if self.seen.contains_key(&o.base()) {
            return;
        }
        self.seen.insert(o.base(), parent);
        if !o.is_marked() {
            self.report(format!(
                "object {:#x} ({} bytes, span class {:?}, span {:#x}) is reachable but was not marked; path: {}",
                o.base(),
                o.size(),
                o.span().span_class(),
                o.span().base(),
                path(&self.seen, o.base())
            ));
        }
        if !o.noscan() {
            self.stack.push((o.base(), o.span()));
        }
    }

    fn report(&mut self, p: String) {
        self.problem.get_or_insert(p);
    }
}

/// Re-marks from `roots`; `Err` holds the report of the first problem. `Ok` is the number
/// of objects found reachable.
pub fn verify(heap: &MHeap, roots: &mut dyn Roots) -> Result<u64, String> {
    let mut c = Checkmarks {
        heap,
        seen: HashMap::new(),
        stack: Vec::new(),
        problem: None,
    };
    let mut nroots = 0usize;
    roots.trace(&mut Tracer::new(&mut |addr, kind| {
        nroots += 1;
        c.reach(addr, Parent::Root(kind, nroots), kind == RootKind::Precise);
    }));
    while let Some((base, span)) = c.stack.pop() {
        // SAFETY: as above; (span, base) came from an ObjectRef just now.
        for addr in unsafe { heap.pointer_words(span, base) } {
            // SAFETY: a pointer word of a live object, read with the mutators stopped.
            let value = unsafe { minigo_alloc_core::sync::load_word(addr) };
            if value != 0 {
                c.reach(value, Parent::Object(base, addr - base), true);
            }
        }
    }
    match c.problem {
        Some(p) => Err(p),
        None => Ok(c.seen.len() as u64),
    }
}

/// How `base` was reached, root first (at most 16 hops shown).
fn path(seen: &HashMap<usize, Parent>, base: usize) -> String {
    let mut hops = Vec::new();
    let mut at = base;
    let mut root = String::from("?");
    for _ in 0..16 {
        match seen.get(&at) {
            Some(Parent::Root(kind, n)) => {
                root = format!("{kind:?} root #{n}").to_lowercase();
                break;
            }
            Some(Parent::Object(parent, off)) => {
                hops.push(format!("{parent:#x}+{off}"));
                at = *parent;
            }
            None => break,
        }
    }
    let mut s = root;
    for h in hops.iter().rev() {
        let _ = write!(s, " -> {h}");
    }
    let _ = write!(s, " -> {base:#x}");
    s
}
