//! Escape analysis: which local functions run without a closure object, and which
//! captured variables must move to the heap (Go's `-gcflags -m`, for Lox).
//!
//! clox makes every nested `fun` a heap closure and every captured local a heap upvalue.
//! Most local helpers never outlive the call that declares them: they are only ever
//! called, by name, while that call runs. Such a function needs no closure (its variables
//! can be read in its declarer's frame through a static link), and a local that only such
//! functions capture can stay in its stack slot.
//!
//! 1. **Resolve pass.** The compiler runs once over the source as clox would (every
//!    function allocated, no output), and logs here ([`EscapeLog`]) each function it
//!    compiles and each reference to a *candidate*: a `fun` declared in a block or a
//!    function body (not a method, not a global, nested less than [`MAX_DEPTH`] deep).
//!    A reference is a call by name (`f(...)`) or a value use, and it sits inside the
//!    functions between it and the declaration ("crossed").
//! 2. **Decide** ([`EscapeLog::decide`]). A candidate escapes when a reference uses it as a
//!    value (returned, stored, passed, compared, printed, assigned to...), or when a
//!    reference crosses a function that is itself allocated: it is then captured by a
//!    closure that may outlive the frame. This is a greatest fixpoint, so helpers that call
//!    themselves or each other stay direct. The rest are *direct*.
//! 3. **Emit pass.** The compiler compiles again with the [`Decisions`]. A direct function
//!    gets one closure object at compile time (a constant, with no upvalues), pushed into
//!    its variable's slot; a call of it is `CALL_DIRECT`, which links the callee's frame
//!    to the frame that declared it (`CallFrame::env`), and it reaches that frame's
//!    locals and upvalues through the link (`GET_OUTER`, `GET_OUTER_UPVALUE`). A local
//!    that only direct functions reach is never captured: no upvalue, no close. A local an
//!    allocated closure captures is "moved to heap", and the emit pass logs which closure.
//! 4. **Report** ([`Decisions::report`]): `lox -m` prints a line per decision, sorted by
//!    position, Go's wording; `-m -m` adds the reason chain.
//!
//! What a program prints never changes: a function whose identity could be observed
//! (compared, printed, stored) is a value use, so it escapes and is allocated as before;
//! runtime errors and stack traces name the same functions and lines.

use std::collections::HashMap;
use std::fmt::Write;

/// A byte offset into the source: where a token starts.
pub type Pos = usize;

/// Functions nested deeper than this are always allocated: the static-link hops of an
/// instruction operand (and of an upvalue descriptor, which keeps a bit for `is_local`)
/// must fit in 7 bits.
pub const MAX_DEPTH: usize = 100;

/// How a reference uses a function other than calling it by name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueUse {
    Returned,
    Printed,
    Stored,
    Argument,
    Compared,
    Assigned,
    Other,
}

impl ValueUse {
    fn says(self) -> &'static str {
        match self {
            ValueUse::Returned => "is returned",
            ValueUse::Printed => "is printed",
            ValueUse::Stored => "is stored in a variable or field",
            ValueUse::Argument => "is passed as an argument",
            ValueUse::Compared => "is compared",
            ValueUse::Assigned => "is assigned to",
            ValueUse::Other => "is used as a value",
        }
    }
}

/// What kind of function the compiler is compiling.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FnKind {
    /// A local `fun`: direct unless it escapes.
    Candidate,
    /// A local `fun` nested [`MAX_DEPTH`] deep or more: always allocated.
    TooDeep,
    Method,
    Global,
}

struct FnInfo {
    name: Vec<u8>,
    /// Where the `fun` keyword (for a method: its name) is.
    at: Pos,
    kind: FnKind,
}

/// One reference to a candidate.
struct Ref {
    decl: Pos,
    /// `None`: a call by name.
    value_use: Option<ValueUse>,
    /// The functions (by name position) the reference is inside, up to the declarer's.
    crossed: Vec<Pos>,
}

/// Why a candidate escapes.
#[derive(Clone, Copy)]
enum Why {
    Value(ValueUse),
    /// Referenced inside this allocated function.
    Captured(Pos),
}

/// What the resolve pass saw.
#[derive(Default)]
pub struct EscapeLog {
    fns: HashMap<Pos, FnInfo>,
    refs: Vec<Ref>,
}

impl EscapeLog {
    /// A function the compiler begins, known by its name's position.
    pub fn function(&mut self, name_pos: Pos, name: &[u8], at: Pos, kind: FnKind) {
        self.fns.insert(
            name_pos,
            FnInfo {
                name: name.to_vec(),
                at,
                kind,
            },
        );
    }

    /// A reference to the candidate declared at `decl`, from inside `crossed`.
    pub fn reference(&mut self, decl: Pos, value_use: Option<ValueUse>, crossed: Vec<Pos>) {
        self.refs.push(Ref {
            decl,
            value_use,
            crossed,
        });
    }

    /// Decides which candidates are direct (step 2 of the header).
    pub fn decide(self) -> Decisions {
        let mut why: HashMap<Pos, Why> = HashMap::new();
        for r in &self.refs {
            if let Some(u) = r.value_use {
                why.entry(r.decl).or_insert(Why::Value(u));
            }
        }
        let direct = |why: &HashMap<Pos, Why>, f: Pos| {
            self.fns
                .get(&f)
                .is_some_and(|i| i.kind == FnKind::Candidate)
                && !why.contains_key(&f)
        };
        loop {
            let mut changed = false;
            for r in &self.refs {
                if why.contains_key(&r.decl) {
                    continue;
                }
                if let Some(&c) = r.crossed.iter().find(|&&c| !direct(&why, c)) {
                    why.insert(r.decl, Why::Captured(c));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        Decisions {
            fns: self.fns,
            why,
            moved: Vec::new(),
        }
    }
}

/// The decisions the emit pass compiles with, and what it adds for the report.
#[derive(Default)]
pub struct Decisions {
    fns: HashMap<Pos, FnInfo>,
    why: HashMap<Pos, Why>,
    /// Locals moved to the heap: (position, name, the allocated closure that captured it).
    moved: Vec<(Pos, Vec<u8>, Pos)>,
}

impl Decisions {
    /// Whether the function whose name is at `name_pos` is called without a closure.
    pub fn is_direct(&self, name_pos: Pos) -> bool {
        self.fns
            .get(&name_pos)
            .is_some_and(|i| i.kind == FnKind::Candidate)
            && !self.why.contains_key(&name_pos)
    }

    /// The local `name` at `pos` is captured by the allocated function at `by`.
    pub fn moved_to_heap(&mut self, pos: Pos, name: &[u8], by: Pos) {
        self.moved.push((pos, name.to_vec(), by));
    }

    /// "which is returned", "which is captured by closure g, which is printed", ...
    fn which(&self, f: Pos) -> String {
        let Some(info) = self.fns.get(&f) else {
            return String::from("which escapes");
        };
        match info.kind {
            FnKind::Method => String::from("which is a method"),
            FnKind::TooDeep => String::from("which is nested too deep to analyse"),
            FnKind::Global => String::from("which is global"),
            FnKind::Candidate => match self.why.get(&f) {
                Some(Why::Value(u)) => format!("which {}", u.says()),
                Some(&Why::Captured(c)) => {
                    format!("which is {}", self.captured_by(c))
                }
                None => String::from("which does not escape"),
            },
        }
    }

    /// "captured by closure g, which ..." (or "by method m, ...").
    fn captured_by(&self, f: Pos) -> String {
        let (what, name) = match self.fns.get(&f) {
            Some(i) if i.kind == FnKind::Method => ("method", &i.name[..]),
            Some(i) => ("closure", &i.name[..]),
            None => ("closure", &b"?"[..]),
        };
        let name = String::from_utf8_lossy(name);
        match self.fns.get(&f).map(|i| i.kind) {
            Some(FnKind::Method) => format!("captured by {what} {name}"),
            _ => format!("captured by {what} {name}, {}", self.which(f)),
        }
    }

    /// Go's `-m` report for `source` (named `file`), one decision per line sorted by
    /// position; with `level` 2 or more, each decision's reason on an indented line.
    pub fn report(&self, file: &str, source: &[u8], level: u32) -> String {
        // (position, decision, reason)
        let mut lines: Vec<(Pos, String, String)> = Vec::new();
        for (&name_pos, info) in &self.fns {
            if !matches!(info.kind, FnKind::Candidate | FnKind::TooDeep) {
                continue;
            }
            let name = String::from_utf8_lossy(&info.name);
            if self.is_direct(name_pos) {
                lines.push((
                    info.at,
                    String::from("func literal does not escape"),
                    format!("{name} is only called, by name, while its declarer runs"),
                ));
            } else {
                let reason = match (info.kind, self.why.get(&name_pos)) {
                    (FnKind::TooDeep, _) => format!("{name} is nested too deep to analyse"),
                    (_, Some(Why::Value(u))) => format!("{name} {}", u.says()),
                    (_, Some(&Why::Captured(c))) => format!("{name} is {}", self.captured_by(c)),
                    (_, None) => format!("{name} escapes"),
                };
                lines.push((
                    info.at,
                    String::from("func literal escapes to heap"),
                    reason,
                ));
            }
        }
        for (pos, name, by) in &self.moved {
            let name = String::from_utf8_lossy(name);
            lines.push((
                *pos,
                format!("moved to heap: {name}"),
                format!("{name} {}", self.captured_by(*by)),
            ));
        }
        lines.sort_by_key(|l| l.0);
        let starts = line_starts(source);
        let mut out = String::new();
        for (pos, decision, reason) in lines {
            let line = starts.partition_point(|&s| s <= pos);
            let col = pos - starts[line - 1] + 1;
            let _ = writeln!(out, "{file}:{line}:{col}: {decision}");
            if level >= 2 {
                let _ = writeln!(out, "{file}:{line}:{col}:   {reason}");
            }
        }
        out
    }
}

/// Where each line of `source` starts (the first at 0).
fn line_starts(source: &[u8]) -> Vec<usize> {
    std::iter::once(0)
        .chain(
            source
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_that_call_each_other_stay_direct() {
        let mut log = EscapeLog::default();
        log.function(10, b"even", 6, FnKind::Candidate);
        log.function(30, b"odd", 26, FnKind::Candidate);
        log.reference(30, None, vec![10]);
        log.reference(10, None, vec![30]);
        log.reference(10, None, vec![]);
        let d = log.decide();
        assert!(d.is_direct(10) && d.is_direct(30));
    }

    #[test]
    fn capture_by_an_escaping_closure_propagates() {
        let mut log = EscapeLog::default();
        log.function(10, b"helper", 6, FnKind::Candidate);
        log.function(30, b"inner", 26, FnKind::Candidate);
        log.function(50, b"user", 46, FnKind::Candidate);
        // helper is called inside inner, which is called inside user, which is returned.
        log.reference(10, None, vec![30, 50]);
        log.reference(30, None, vec![50]);
        log.reference(50, Some(ValueUse::Returned), vec![]);
        let d = log.decide();
        assert!(!d.is_direct(50) && !d.is_direct(30) && !d.is_direct(10));
        assert_eq!(
            d.which(10),
            "which is captured by closure user, which is returned"
        );
    }

    #[test]
    fn report_is_sorted_with_columns() {
        let src = b"{\n  fun f() {}\n  f();\n}\n";
        let mut log = EscapeLog::default();
        log.function(8, b"f", 4, FnKind::Candidate);
        log.reference(8, None, vec![]);
        let d = log.decide();
        assert_eq!(
            d.report("t.lox", src, 1),
            "t.lox:2:3: func literal does not escape\n"
        );
    }
}
