//! The compiler: clox's single-pass Pratt parser, from source to an `ObjFunction` in the
//! heap, with clox's error messages, limits and recovery.
//!
//! Tokens come from the [`Scanner`] one at a time; each function being compiled has a
//! [`FnCompiler`] here (locals, upvalues, scope depth) and a `ChunkBuilder` on
//! `State::compiling`, where the collector sees its constants. String constants are
//! interned as they are met (so compiling allocates, and may collect). When a function
//! ends, its chunk is copied into a function object, which becomes a constant of the
//! enclosing function. Errors go to `err` as `[line N] Error at 'x': message`; after one,
//! the parser skips to the next statement, and compilation returns nothing.
//!
//! With escape analysis on (the default), `compile` runs the parser twice: a resolve pass
//! that emits as clox would and logs references to local functions, then the emit pass,
//! which compiles the functions found direct without closures (`escape.rs` tells the
//! story). Names resolve the same way in both; in the emit pass a name may also resolve
//! through static links (`Place::Outer`), out of a direct function into its declarer.

use std::io::Write;

use super::chunk::{after_pop, fused_compare, op, stack_effect, with_constant, ChunkBuilder};
use super::escape::{Decisions, EscapeLog, FnKind, Pos, ValueUse, MAX_DEPTH};
use super::heap::LoxHeap;
use super::object::ObjFunction;
use super::roots::State;
use super::scanner::{Scanner, Token, TokenType};
use super::value::Value;

/// The compiler recurses once per level of nesting (expressions, blocks, functions), as
/// clox does, with no limit but memory: past this much stack left, each recursion point
/// continues on a new segment of `STACK_SEGMENT` bytes (`stacker`), so 100,000 nested
/// parentheses compile where clox's C stack takes them too.
const STACK_RED_ZONE: usize = 128 * 1024;
const STACK_SEGMENT: usize = 4 * 1024 * 1024;

/// Runs `f` with at least `STACK_RED_ZONE` bytes of stack.
fn grow<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_RED_ZONE, STACK_SEGMENT, f)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Prec {
    None,
    Assignment,
    Or,
    And,
    Equality,
    Comparison,
    Term,
    Factor,
    Unary,
    Call,
    Primary,
}

impl Prec {
    fn next(self) -> Prec {
        use Prec::*;
        match self {
            None => Assignment,
            Assignment => Or,
            Or => And,
            And => Equality,
            Equality => Comparison,
            Comparison => Term,
            Term => Factor,
            Factor => Unary,
            Unary => Call,
            Call | Primary => Primary,
        }
    }
}

fn infix_precedence(kind: TokenType) -> Prec {
    use TokenType::*;
    match kind {
        LeftParen | Dot => Prec::Call,
        Minus | Plus => Prec::Term,
        Slash | Star => Prec::Factor,
        BangEqual | EqualEqual => Prec::Equality,
        Greater | GreaterEqual | Less | LessEqual => Prec::Comparison,
        And => Prec::And,
        Or => Prec::Or,
        _ => Prec::None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FunctionType {
    Function,
    Initializer,
    Method,
    Script,
}

struct Local<'s> {
    name: &'s [u8],
    /// Where it is declared (the escape analysis's key for a local function).
    pos: Pos,
    /// Scope depth, or -1 while its initializer is being compiled.
    depth: i32,
    is_captured: bool,
    /// Declared by `fun`.
    is_function: bool,
}

/// An upvalue a closure captures when it is made: a local (`is_local`) or an upvalue of
/// the frame `hops` static links out from the one running `CLOSURE`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct UpvalueRef {
    index: u8,
    is_local: bool,
    hops: u8,
}

/// Per-function compiler state (its chunk is `State::compiling` at the same depth).
struct FnCompiler<'s> {
    kind: FunctionType,
    locals: Vec<Local<'s>>,
    upvalues: Vec<UpvalueRef>,
    scope_depth: i32,
    /// Where its name is (the escape analysis's key).
    name_pos: Pos,
    /// Called without a closure (escape analysis): names it does not declare resolve
    /// through its static link.
    direct: bool,
}

/// Where a name lives, seen from the function being compiled.
#[derive(Clone, Copy)]
enum Place {
    Local(u8),
    /// A local of the function `hops` levels out, reached through static links.
    Outer(u8, u8),
    Upvalue(u8),
    /// An upvalue of the function `hops` levels out.
    OuterUpvalue(u8, u8),
    /// A global: its name constant.
    Global(u8),
}

/// The compiler's part in escape analysis.
enum Escape {
    Off,
    Resolve(EscapeLog),
    Emit(Decisions),
}

/// What `compile` does about escape analysis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EscapeOptions {
    /// Compile as clox: every function a closure, every captured local an upvalue.
    pub off: bool,
    /// `lox -m`: 1 prints the decisions to `err`, 2 with their reasons.
    pub report: u32,
}

struct ClassCompiler {
    has_superclass: bool,
}

/// One compilation.
pub struct Compiler<'a, 's> {
    heap: &'a mut LoxHeap,
    st: &'a mut State,
    err: &'a mut dyn Write,
    scanner: Scanner<'s>,
    source: &'s [u8],
    current: Token<'s>,
    previous: Token<'s>,
    /// The token before `previous`.
    before: Token<'s>,
    had_error: bool,
    panic_mode: bool,
    fns: Vec<FnCompiler<'s>>,
    classes: Vec<ClassCompiler>,
    escape: Escape,
    /// Where the argument being compiled begins (a function named there is passed).
    arg_start: Pos,
    /// The static-link hops of the direct function whose call is about to be compiled.
    pending_direct: Option<u8>,
}

/// Compiles `source` to the script function, or reports errors to `err` and returns None.
/// With escape analysis on, a successful compile reports its decisions to `err` when
/// `escape.report` asks, naming the source `file`.
pub fn compile(
    heap: &mut LoxHeap,
    st: &mut State,
    source: &[u8],
    err: &mut dyn Write,
    escape: EscapeOptions,
    file: &str,
) -> Option<*mut ObjFunction> {
    let mode = if escape.off {
        Escape::Off
    } else {
        // A source with errors gets no decisions: the emit pass reports them as clox would.
        match pass(
            heap,
            st,
            source,
            &mut std::io::sink(),
            Escape::Resolve(EscapeLog::default()),
        ) {
            (Some(_), Escape::Resolve(log)) => Escape::Emit(log.decide()),
            _ => Escape::Off,
        }
    };
    if let Escape::Emit(_) = mode {
        // Direct calls and static-link accesses take a byte more than clox's: a body
        // clox can just jump over may be too long here. Then compile as clox does.
        let mut errors = Vec::new();
        match pass(heap, st, source, &mut errors, mode) {
            (Some(f), Escape::Emit(d)) => {
                if escape.report > 0 {
                    let _ = err.write_all(d.report(file, source, escape.report).as_bytes());
                }
                return Some(f);
            }
            _ => return pass(heap, st, source, err, Escape::Off).0,
        }
    }
    pass(heap, st, source, err, mode).0
}

/// One pass of the parser over `source`.
fn pass(
    heap: &mut LoxHeap,
    st: &mut State,
    source: &[u8],
    err: &mut dyn Write,
    escape: Escape,
) -> (Option<*mut ObjFunction>, Escape) {
    let eof = Token {
        kind: TokenType::Eof,
        lexeme: b"",
        line: 1,
    };
    let mut c = Compiler {
        heap,
        st,
        err,
        scanner: Scanner::new(source),
        source,
        current: eof,
        previous: eof,
        before: eof,
        had_error: false,
        panic_mode: false,
        fns: Vec::new(),
        classes: Vec::new(),
        escape,
        arg_start: Pos::MAX,
        pending_direct: None,
    };
    let base = c.st.compiling.len();
    c.begin_function(FunctionType::Script, std::ptr::null_mut(), Pos::MAX, false);
    c.advance();
    while !c.matches(TokenType::Eof) {
        c.declaration();
    }
    let (f, _) = c.end_function();
    debug_assert_eq!(c.st.compiling.len(), base);
    ((!c.had_error).then_some(f), c.escape)
}

impl<'a, 's> Compiler<'a, 's> {
    // ---- errors ----

    fn error_at(&mut self, token: Token<'s>, message: &str) {
        if self.panic_mode {
            return;
        }
        self.panic_mode = true;
        self.had_error = true;
        let mut line = format!("[line {}] Error", token.line).into_bytes();
        match token.kind {
            TokenType::Eof => line.extend_from_slice(b" at end"),
            TokenType::Error => {}
            _ => {
                line.extend_from_slice(b" at '");
                line.extend_from_slice(token.lexeme);
                line.push(b'\'');
            }
        }
        line.extend_from_slice(b": ");
        line.extend_from_slice(message.as_bytes());
        line.push(b'\n');
        let _ = self.err.write_all(&line);
    }

    fn error(&mut self, message: &str) {
        self.error_at(self.previous, message);
    }

    fn error_at_current(&mut self, message: &str) {
        self.error_at(self.current, message);
    }

    // ---- tokens ----

    fn advance(&mut self) {
        self.before = self.previous;
        self.previous = self.current;
        loop {
            self.current = self.scanner.scan_token();
            if self.current.kind != TokenType::Error {
                break;
            }
            let message = std::str::from_utf8(self.current.lexeme).unwrap_or("?");
            self.error_at_current(message);
        }
    }

    fn consume(&mut self, kind: TokenType, message: &str) {
        if self.current.kind == kind {
            self.advance();
        } else {
            self.error_at_current(message);
        }
    }

    /// Where `token` starts in the source; a synthetic token (`this`, `super`) is placed
    /// at the token just read.
    fn pos(&self, token: Token<'s>) -> Pos {
        let offset = (token.lexeme.as_ptr() as usize).wrapping_sub(self.source.as_ptr() as usize);
        if offset <= self.source.len() {
            offset
        } else if token.lexeme.as_ptr() != self.previous.lexeme.as_ptr() {
            self.pos(self.previous)
        } else {
            Pos::MAX
        }
    }

    fn check(&self, kind: TokenType) -> bool {
        self.current.kind == kind
    }

    fn matches(&mut self, kind: TokenType) -> bool {
        if !self.check(kind) {
            return false;
        }
        self.advance();
        true
    }

    // ---- emitting ----

    fn chunk(&mut self) -> &mut ChunkBuilder {
        self.st
            .compiling
            .last_mut()
            .expect("a function is being compiled")
    }

    fn fun(&mut self) -> &mut FnCompiler<'s> {
        self.fns.last_mut().expect("a function is being compiled")
    }

    fn emit_byte(&mut self, byte: u8) {
        let line = self.previous.line;
        self.chunk().write(byte, line);
    }

    /// Emits an instruction without operands.
    fn emit_op(&mut self, opcode: u8) {
        self.chunk().last_start = self.chunk().code.len();
        self.emit_byte(opcode);
        self.chunk().grow_stack(stack_effect(opcode, 0));
    }

    /// Emits push `opcode` (with its operand, if any) fused with the `POP` just before it,
    /// when there is one and no jump lands between them; false if it did not.
    fn emit_push_after_pop(&mut self, opcode: u8, operand: Option<u8>) -> bool {
        let line = self.previous.line;
        let c = self.chunk();
        let at = c.code.len();
        let Some(fused) = after_pop(opcode) else {
            return false;
        };
        if c.last_op(1) != Some(op::POP) {
            return false;
        }
        // The POP's byte becomes the fused instruction's, on the push's line (where an
        // undefined global reports).
        c.code[at - 1] = fused;
        c.lines[at - 1] = line;
        c.grow_stack(stack_effect(opcode, 0));
        if let Some(b) = operand {
            c.write(b, line);
        }
        true
    }

    /// Emits a push without operands (`NIL`, `TRUE`, `FALSE`).
    fn emit_push(&mut self, opcode: u8) {
        if !self.emit_push_after_pop(opcode, None) {
            self.emit_op(opcode);
        }
    }

    /// Emits an instruction with one operand byte.
    fn emit_op_arg(&mut self, opcode: u8, arg: u8) {
        self.chunk().last_start = self.chunk().code.len();
        self.emit_byte(opcode);
        self.emit_byte(arg);
        self.chunk().grow_stack(stack_effect(opcode, arg));
    }

    /// Emits an instruction with two operand bytes (`argc`: the call's, if it is one).
    fn emit_op_args(&mut self, opcode: u8, a: u8, b: u8, argc: u8) {
        self.chunk().last_start = self.chunk().code.len();
        self.emit_byte(opcode);
        self.emit_byte(a);
        self.emit_byte(b);
        self.chunk().grow_stack(stack_effect(opcode, argc));
    }

    /// Emits an invocation (`INVOKE` or `SUPER_INVOKE`).
    fn emit_invoke(&mut self, opcode: u8, name: u8, argc: u8) {
        self.emit_op_args(opcode, name, argc, argc);
    }

    /// Emits a forward jump with a placeholder offset; returns where to patch it.
    fn emit_jump(&mut self, opcode: u8) -> usize {
        self.emit_op(opcode);
        self.emit_byte(0xff);
        self.emit_byte(0xff);
        self.chunk().code.len() - 2
    }

    /// Emits the conditional jump of `if`, `while` or `for` (`POP_JUMP_IF_FALSE`), fused
    /// with the comparison before it when that is the condition's last instruction and
    /// nothing jumps in between (as `a and b < c` does); returns where to patch it.
    fn emit_condition_jump(&mut self) -> usize {
        let c = self.chunk();
        let at = c.code.len();
        let compare_k = c
            .last_op(2)
            .filter(|k| (op::EQUAL_K..=op::LESS_EQUAL_K).contains(k))
            .and_then(fused_compare);
        if let Some(fused) = compare_k {
            // The `_K` comparison becomes its compare-and-jump form, its constant operand
            // (and the operator's line, where an error reports) kept.
            let line = c.lines[at - 2];
            c.code[at - 2] = fused;
            c.grow_stack(stack_effect(fused, 0));
            c.write(0xff, line);
            c.write(0xff, line);
            return c.code.len() - 2;
        }
        if let Some(fused) = c.last_op(1).and_then(fused_compare) {
            // The comparison's byte (and its line) becomes the fused instruction's.
            c.code[at - 1] = fused;
            c.grow_stack(stack_effect(op::POP_JUMP_IF_FALSE, 0));
            self.emit_byte(0xff);
            self.emit_byte(0xff);
            return self.chunk().code.len() - 2;
        }
        self.emit_jump(op::POP_JUMP_IF_FALSE)
    }

    fn patch_jump(&mut self, at: usize) {
        self.chunk().last_target = self.chunk().code.len();
        let jump = self.chunk().code.len() - at - 2;
        if jump > u16::MAX as usize {
            self.error("Too much code to jump over.");
        }
        let code = &mut self.chunk().code;
        code[at] = (jump >> 8) as u8;
        code[at + 1] = jump as u8;
    }

    /// Where a loop will jump back to (here), recorded as a jump target so that nothing
    /// fuses across it.
    fn loop_target(&mut self) -> usize {
        let c = self.chunk();
        c.last_target = c.code.len();
        c.last_target
    }

    fn emit_loop(&mut self, loop_start: usize) {
        let c = self.chunk();
        if c.last_op(1) == Some(op::POP) {
            // The `POP`'s byte (its effect already counted) becomes `POP_LOOP`'s.
            let at = c.code.len();
            c.code[at - 1] = op::POP_LOOP;
        } else {
            self.emit_op(op::LOOP);
        }
        let offset = self.chunk().code.len() - loop_start + 2;
        if offset > u16::MAX as usize {
            self.error("Loop body too large.");
        }
        self.emit_byte((offset >> 8) as u8);
        self.emit_byte(offset as u8);
    }

    fn emit_return(&mut self) {
        let opcode = if self.fun().kind == FunctionType::Initializer {
            op::RETURN_THIS
        } else {
            op::RETURN_NIL
        };
        let c = self.chunk();
        if c.last_op(1) == Some(op::POP) {
            // A return drops the frame's whole stack: the `POP` before it is moot, and
            // its byte becomes the return's (one dispatch for `f(); }`).
            let at = c.code.len();
            c.code[at - 1] = opcode;
        } else {
            self.emit_op(opcode);
        }
    }

    fn make_constant(&mut self, v: Value) -> u8 {
        let index = self.chunk().add_constant(v);
        if index > u8::MAX as usize {
            self.error("Too many constants in one chunk.");
            return 0;
        }
        index as u8
    }

    fn emit_constant(&mut self, v: Value) {
        let c = self.make_constant(v);
        if !self.emit_push_after_pop(op::CONSTANT, Some(c)) {
            self.emit_op_arg(op::CONSTANT, c);
        }
    }

    // ---- functions and scopes ----

    fn begin_function(
        &mut self,
        kind: FunctionType,
        name: *mut super::object::ObjString,
        name_pos: Pos,
        direct: bool,
    ) {
        self.st.compiling.push(ChunkBuilder::new(name));
        // As clox: every slot 0 but a plain function's is named "this", the script's
        // included. Only the synthetic `this` of a `super` outside a class can see the
        // script's (a real one is an error first), and it resolves there rather than
        // adding a global name constant, so the chunk's constants count as clox's.
        let slot0: &'static [u8] = if kind == FunctionType::Function {
            b""
        } else {
            b"this"
        };
        self.fns.push(FnCompiler {
            kind,
            locals: vec![Local {
                name: slot0,
                pos: name_pos,
                depth: 0,
                is_captured: false,
                is_function: false,
            }],
            upvalues: Vec::new(),
            scope_depth: 0,
            name_pos,
            direct,
        });
    }

    /// Finishes the current function: its object and the upvalues it captures.
    fn end_function(&mut self) -> (*mut ObjFunction, Vec<UpvalueRef>) {
        self.emit_return();
        let f = self.fns.pop().expect("a function is being compiled");
        self.chunk().upvalue_count = f.upvalues.len();
        debug_assert!(
            self.had_error || self.chunk().depth == f.locals.len() as isize,
            "stack accounting drifted"
        );
        let function = self.heap.new_function(self.st);
        self.st.compiling.pop();
        (function, f.upvalues)
    }

    fn begin_scope(&mut self) {
        self.fun().scope_depth += 1;
    }

    fn end_scope(&mut self) {
        self.fun().scope_depth -= 1;
        loop {
            let f = self.fun();
            let Some(last) = f.locals.last() else { break };
            if last.depth <= f.scope_depth {
                break;
            }
            let captured = last.is_captured;
            f.locals.pop();
            self.emit_op(if captured { op::CLOSE_UPVALUE } else { op::POP });
        }
    }

    fn identifier_constant(&mut self, name: &[u8]) -> u8 {
        let s = self.heap.intern(self.st, name);
        self.make_constant(Value::object(s))
    }

    fn add_local(&mut self, name: Token<'s>) {
        if self.fun().locals.len() == 256 {
            self.error("Too many local variables in function.");
            return;
        }
        let pos = self.pos(name);
        self.fun().locals.push(Local {
            name: name.lexeme,
            pos,
            depth: -1,
            is_captured: false,
            is_function: false,
        });
    }

    fn declare_variable(&mut self) {
        if self.fun().scope_depth == 0 {
            return;
        }
        let name = self.previous;
        let f = self.fns.last().expect("a function is being compiled");
        let duplicate = f
            .locals
            .iter()
            .rev()
            .take_while(|l| l.depth == -1 || l.depth >= f.scope_depth)
            .any(|l| l.name == name.lexeme);
        if duplicate {
            self.error("Already a variable with this name in this scope.");
        }
        self.add_local(name);
    }

    fn parse_variable(&mut self, message: &str) -> u8 {
        self.consume(TokenType::Identifier, message);
        self.declare_variable();
        if self.fun().scope_depth > 0 {
            return 0;
        }
        let name = self.previous.lexeme;
        self.identifier_constant(name)
    }

    fn mark_initialized(&mut self) {
        let f = self.fun();
        if f.scope_depth == 0 {
            return;
        }
        let depth = f.scope_depth;
        if let Some(l) = f.locals.last_mut() {
            l.depth = depth;
        }
    }

    fn define_variable(&mut self, global: u8) {
        if self.fun().scope_depth > 0 {
            self.mark_initialized();
            return;
        }
        self.emit_op_arg(op::DEFINE_GLOBAL, global);
    }

    /// The slot of local `name` in function `depth` of the stack of compilers.
    fn resolve_local(&mut self, depth: usize, name: &[u8]) -> Option<u8> {
        let found = self.fns[depth]
            .locals
            .iter()
            .rposition(|l| l.name == name)?;
        if self.fns[depth].locals[found].depth == -1 {
            self.error("Can't read local variable in its own initializer.");
        }
        Some(found as u8)
    }

    /// Where `name` lives, seen from the function being compiled: clox's search, local
    /// then enclosing functions outwards, where leaving a direct function is a static-link
    /// hop instead of a capture.
    fn resolve(&mut self, name: &[u8]) -> Place {
        let top = self.fns.len() - 1;
        if let Some(slot) = self.resolve_local(top, name) {
            return Place::Local(slot);
        }
        // The script is never direct, so this stops at level 0 at the latest.
        let mut level = top;
        while self.fns[level].direct {
            level -= 1;
            if let Some(slot) = self.resolve_local(level, name) {
                return Place::Outer((top - level) as u8, slot);
            }
        }
        let hops = (top - level) as u8;
        match self.resolve_upvalue(level, name) {
            Some(index) if hops == 0 => Place::Upvalue(index),
            Some(index) => Place::OuterUpvalue(hops, index),
            None => Place::Global(self.identifier_constant(name)),
        }
    }

    /// The upvalue of allocated function `depth` that holds `name`, added if new. Its
    /// `CLOSURE` runs in the frame of function `depth - 1`, from which direct functions are
    /// left through static links.
    fn resolve_upvalue(&mut self, depth: usize, name: &[u8]) -> Option<u8> {
        if depth == 0 {
            return None;
        }
        let mut level = depth - 1;
        loop {
            if let Some(local) = self.resolve_local(level, name) {
                self.capture(level, local as usize, depth);
                let hops = (depth - 1 - level) as u8;
                return Some(self.add_upvalue(depth, local, true, hops));
            }
            if !self.fns[level].direct {
                break;
            }
            level -= 1;
        }
        let hops = (depth - 1 - level) as u8;
        let upvalue = grow(|| self.resolve_upvalue(level, name))?;
        Some(self.add_upvalue(depth, upvalue, false, hops))
    }

    /// Local `slot` of function `level` is captured by allocated function `by`: it moves
    /// to the heap when its scope ends.
    fn capture(&mut self, level: usize, slot: usize, by: usize) {
        let by = self.fns[by].name_pos;
        let local = &mut self.fns[level].locals[slot];
        if !local.is_captured {
            local.is_captured = true;
            if let Escape::Emit(d) = &mut self.escape {
                d.moved_to_heap(local.pos, local.name, by);
            }
        }
    }

    /// The function level and slot of the local `name` resolves to, if it is one (no
    /// errors, no captures: the same search as `resolve`).
    fn declaring(&self, name: &[u8]) -> Option<(usize, usize)> {
        self.fns.iter().enumerate().rev().find_map(|(level, f)| {
            let slot = f.locals.iter().rposition(|l| l.name == name)?;
            Some((level, slot))
        })
    }

    fn add_upvalue(&mut self, depth: usize, index: u8, is_local: bool, hops: u8) -> u8 {
        let want = UpvalueRef {
            index,
            is_local,
            hops,
        };
        if let Some(i) = self.fns[depth].upvalues.iter().position(|&u| u == want) {
            return i as u8;
        }
        if self.fns[depth].upvalues.len() == 256 {
            self.error("Too many closure variables in function.");
            return 0;
        }
        self.fns[depth].upvalues.push(want);
        (self.fns[depth].upvalues.len() - 1) as u8
    }

    // ---- declarations and statements ----

    fn declaration(&mut self) {
        grow(|| self.declaration_here());
    }

    fn declaration_here(&mut self) {
        if self.matches(TokenType::Class) {
            self.class_declaration();
        } else if self.matches(TokenType::Fun) {
            self.fun_declaration();
        } else if self.matches(TokenType::Var) {
            self.var_declaration();
        } else {
            self.statement();
        }
        if self.panic_mode {
            self.synchronize();
        }
    }

    fn synchronize(&mut self) {
        self.panic_mode = false;
        while self.current.kind != TokenType::Eof {
            if self.previous.kind == TokenType::Semicolon {
                return;
            }
            use TokenType::*;
            match self.current.kind {
                Class | Fun | Var | For | If | While | Print | Return => return,
                _ => self.advance(),
            }
        }
    }

    fn class_declaration(&mut self) {
        self.consume(TokenType::Identifier, "Expect class name.");
        let class_name = self.previous;
        let name_constant = self.identifier_constant(class_name.lexeme);
        self.declare_variable();
        self.emit_op_arg(op::CLASS, name_constant);
        self.define_variable(name_constant);

        self.classes.push(ClassCompiler {
            has_superclass: false,
        });
        if self.matches(TokenType::Less) {
            self.consume(TokenType::Identifier, "Expect superclass name.");
            self.variable(false);
            if class_name.lexeme == self.previous.lexeme {
                self.error("A class can't inherit from itself.");
            }
            self.begin_scope();
            self.add_local(Token::synthetic("super"));
            self.define_variable(0);
            self.named_variable(class_name, false);
            self.emit_op(op::INHERIT);
            self.classes.last_mut().expect("in a class").has_superclass = true;
        }
        self.named_variable(class_name, false);
        self.consume(TokenType::LeftBrace, "Expect '{' before class body.");
        while !self.check(TokenType::RightBrace) && !self.check(TokenType::Eof) {
            self.method();
        }
        self.consume(TokenType::RightBrace, "Expect '}' after class body.");
        self.emit_op(op::POP);
        if self.classes.pop().expect("in a class").has_superclass {
            self.end_scope();
        }
    }

    fn method(&mut self) {
        self.consume(TokenType::Identifier, "Expect method name.");
        let name = self.previous.lexeme;
        let constant = self.identifier_constant(name);
        let kind = if name == b"init" {
            FunctionType::Initializer
        } else {
            FunctionType::Method
        };
        let at = self.pos(self.previous);
        self.function(kind, at);
        self.emit_op_arg(op::METHOD, constant);
    }

    fn fun_declaration(&mut self) {
        let at = self.pos(self.previous);
        let global = self.parse_variable("Expect function name.");
        if self.fun().scope_depth > 0 {
            if let Some(l) = self.fun().locals.last_mut() {
                l.is_function = true;
            }
        }
        self.mark_initialized();
        self.function(FunctionType::Function, at);
        self.define_variable(global);
    }

    /// Compiles a function whose name was just read (`at`: where the report places it).
    fn function(&mut self, kind: FunctionType, at: Pos) {
        grow(|| self.function_here(kind, at));
    }

    fn function_here(&mut self, kind: FunctionType, at: Pos) {
        let name_pos = self.pos(self.previous);
        let fn_kind = match kind {
            FunctionType::Method | FunctionType::Initializer => FnKind::Method,
            _ if self.fun().scope_depth == 0 => FnKind::Global,
            _ if self.fns.len() >= MAX_DEPTH => FnKind::TooDeep,
            _ => FnKind::Candidate,
        };
        let direct = match &mut self.escape {
            Escape::Off => false,
            Escape::Resolve(log) => {
                log.function(name_pos, self.previous.lexeme, at, fn_kind);
                false
            }
            Escape::Emit(d) => d.is_direct(name_pos),
        };
        let name = self.heap.intern(self.st, self.previous.lexeme);
        self.begin_function(kind, name, name_pos, direct);
        self.begin_scope();
        self.consume(TokenType::LeftParen, "Expect '(' after function name.");
        if !self.check(TokenType::RightParen) {
            loop {
                self.chunk().arity += 1;
                if self.chunk().arity > 255 {
                    self.error_at_current("Can't have more than 255 parameters.");
                }
                let constant = self.parse_variable("Expect parameter name.");
                self.define_variable(constant);
                // A parameter is a local the caller pushed.
                self.chunk().grow_stack(1);
                if !self.matches(TokenType::Comma) {
                    break;
                }
            }
        }
        self.consume(TokenType::RightParen, "Expect ')' after parameters.");
        self.consume(TokenType::LeftBrace, "Expect '{' before function body.");
        self.block();
        let (function, upvalues) = self.end_function();
        if direct {
            // Its one closure, made now: it reaches its declarer's variables through the
            // static link, so it captures nothing.
            debug_assert!(upvalues.is_empty());
            self.st.temps.push(Value::object(function));
            let closure = self.heap.new_closure(self.st, function);
            self.st.temps.pop();
            let constant = self.make_constant(Value::object(closure));
            self.emit_op_arg(op::CONSTANT, constant);
            return;
        }
        let constant = self.make_constant(Value::object(function));
        self.emit_op_arg(op::CLOSURE, constant);
        for u in upvalues {
            self.emit_byte(u.hops << 1 | u.is_local as u8);
            self.emit_byte(u.index);
        }
    }

    fn var_declaration(&mut self) {
        let global = self.parse_variable("Expect variable name.");
        if self.matches(TokenType::Equal) {
            self.expression();
        } else {
            self.emit_push(op::NIL);
        }
        self.consume(
            TokenType::Semicolon,
            "Expect ';' after variable declaration.",
        );
        self.define_variable(global);
    }

    fn statement(&mut self) {
        if self.matches(TokenType::Print) {
            self.expression();
            self.consume(TokenType::Semicolon, "Expect ';' after value.");
            self.emit_op(op::PRINT);
        } else if self.matches(TokenType::For) {
            self.for_statement();
        } else if self.matches(TokenType::If) {
            self.if_statement();
        } else if self.matches(TokenType::Return) {
            self.return_statement();
        } else if self.matches(TokenType::While) {
            self.while_statement();
        } else if self.matches(TokenType::LeftBrace) {
            self.begin_scope();
            self.block();
            self.end_scope();
        } else {
            self.expression_statement();
        }
    }

    fn block(&mut self) {
        while !self.check(TokenType::RightBrace) && !self.check(TokenType::Eof) {
            self.declaration();
        }
        self.consume(TokenType::RightBrace, "Expect '}' after block.");
    }

    fn expression_statement(&mut self) {
        self.expression();
        self.consume(TokenType::Semicolon, "Expect ';' after expression.");
        self.emit_op(op::POP);
    }

    fn if_statement(&mut self) {
        self.consume(TokenType::LeftParen, "Expect '(' after 'if'.");
        self.expression();
        self.consume(TokenType::RightParen, "Expect ')' after condition.");
        let then_jump = self.emit_condition_jump();
        self.statement();
        if self.matches(TokenType::Else) {
            let else_jump = self.emit_jump(op::JUMP);
            self.patch_jump(then_jump);
            self.statement();
            self.patch_jump(else_jump);
        } else {
            self.patch_jump(then_jump);
        }
    }

    fn while_statement(&mut self) {
        let loop_start = self.loop_target();
        self.consume(TokenType::LeftParen, "Expect '(' after 'while'.");
        self.expression();
        self.consume(TokenType::RightParen, "Expect ')' after condition.");
        let exit_jump = self.emit_condition_jump();
        self.statement();
        self.emit_loop(loop_start);
        self.patch_jump(exit_jump);
    }

    fn for_statement(&mut self) {
        self.begin_scope();
        self.consume(TokenType::LeftParen, "Expect '(' after 'for'.");
        if self.matches(TokenType::Semicolon) {
            // No initializer.
        } else if self.matches(TokenType::Var) {
            self.var_declaration();
        } else {
            self.expression_statement();
        }
        let mut loop_start = self.loop_target();
        let mut exit = None;
        if !self.matches(TokenType::Semicolon) {
            self.expression();
            self.consume(TokenType::Semicolon, "Expect ';' after loop condition.");
            exit = Some(self.emit_condition_jump());
        }
        if !self.matches(TokenType::RightParen) {
            let body_jump = self.emit_jump(op::JUMP);
            let increment_start = self.loop_target();
            self.expression();
            self.emit_op(op::POP);
            self.consume(TokenType::RightParen, "Expect ')' after for clauses.");
            self.emit_loop(loop_start);
            loop_start = increment_start;
            self.patch_jump(body_jump);
        }
        self.statement();
        self.emit_loop(loop_start);
        if let Some(exit_jump) = exit {
            self.patch_jump(exit_jump);
        }
        self.end_scope();
    }

    fn return_statement(&mut self) {
        if self.fun().kind == FunctionType::Script {
            self.error("Can't return from top-level code.");
        }
        if self.matches(TokenType::Semicolon) {
            self.emit_return();
        } else {
            if self.fun().kind == FunctionType::Initializer {
                self.error("Can't return a value from an initializer.");
            }
            self.expression();
            self.consume(TokenType::Semicolon, "Expect ';' after return value.");
            self.emit_op(op::RETURN);
        }
    }

    // ---- expressions ----

    fn expression(&mut self) {
        self.parse_precedence(Prec::Assignment);
    }

    fn parse_precedence(&mut self, prec: Prec) {
        grow(|| self.parse_precedence_here(prec));
    }

    fn parse_precedence_here(&mut self, prec: Prec) {
        self.advance();
        let can_assign = prec <= Prec::Assignment;
        if !self.prefix(self.previous.kind, can_assign) {
            self.error("Expect expression.");
            return;
        }
        while prec <= infix_precedence(self.current.kind) {
            self.advance();
            self.infix(self.previous.kind, can_assign);
        }
        if can_assign && self.matches(TokenType::Equal) {
            self.error("Invalid assignment target.");
        }
    }

    /// Runs the prefix rule of `kind`; false if it has none.
    fn prefix(&mut self, kind: TokenType, can_assign: bool) -> bool {
        use TokenType::*;
        match kind {
            LeftParen => {
                self.expression();
                self.consume(RightParen, "Expect ')' after expression.");
            }
            Minus | Bang => {
                self.parse_precedence(Prec::Unary);
                self.emit_op(if kind == Minus { op::NEGATE } else { op::NOT });
            }
            Number => {
                let text = std::str::from_utf8(self.previous.lexeme).unwrap_or("0");
                let n: f64 = text.parse().unwrap_or(0.0);
                self.emit_constant(Value::number(n));
            }
            String => {
                let lexeme = self.previous.lexeme;
                let s = self.heap.intern(self.st, &lexeme[1..lexeme.len() - 1]);
                self.emit_constant(Value::object(s));
            }
            Identifier => self.variable(can_assign),
            False => self.emit_push(op::FALSE),
            True => self.emit_push(op::TRUE),
            Nil => self.emit_push(op::NIL),
            This => self.this(),
            Super => self.super_(),
            _ => return false,
        }
        true
    }

    fn infix(&mut self, kind: TokenType, can_assign: bool) {
        use TokenType::*;
        match kind {
            LeftParen => {
                let direct = self.pending_direct.take();
                let argc = self.argument_list();
                match direct {
                    Some(hops) => self.emit_op_args(op::CALL_DIRECT, argc, hops, argc),
                    None => self.emit_op_arg(op::CALL, argc),
                }
            }
            Dot => self.dot(can_assign),
            And => {
                let end_jump = self.emit_jump(op::JUMP_IF_FALSE);
                self.emit_op(op::POP);
                self.parse_precedence(Prec::And);
                self.patch_jump(end_jump);
            }
            Or => {
                let else_jump = self.emit_jump(op::JUMP_IF_FALSE);
                let end_jump = self.emit_jump(op::JUMP);
                self.patch_jump(else_jump);
                self.emit_op(op::POP);
                self.parse_precedence(Prec::Or);
                self.patch_jump(end_jump);
            }
            _ => self.binary(kind),
        }
    }

    fn binary(&mut self, kind: TokenType) {
        self.parse_precedence(infix_precedence(kind).next());
        use TokenType::*;
        let opcode = match kind {
            BangEqual => op::NOT_EQUAL,
            EqualEqual => op::EQUAL,
            Greater => op::GREATER,
            GreaterEqual => op::GREATER_EQUAL,
            Less => op::LESS,
            LessEqual => op::LESS_EQUAL,
            Plus => op::ADD,
            Minus => op::SUBTRACT,
            Star => op::MULTIPLY,
            Slash => op::DIVIDE,
            _ => unreachable!("not a binary operator: {kind:?}"),
        };
        let line = self.previous.line;
        let c = self.chunk();
        let at = c.code.len();
        // A right operand that is one constant, with no jump landing after it: one
        // instruction, on the operator's line (where an error reports).
        if let (Some(op::CONSTANT), Some(k)) = (c.last_op(2), with_constant(opcode)) {
            // Both bytes: an error is reported after the operand is read.
            c.code[at - 2] = k;
            c.lines[at - 2] = line;
            c.lines[at - 1] = line;
            c.grow_stack(stack_effect(opcode, 0));
            return;
        }
        self.emit_op(opcode);
    }

    fn argument_list(&mut self) -> u8 {
        let mut argc: u8 = 0;
        if !self.check(TokenType::RightParen) {
            loop {
                self.arg_start = self.pos(self.current);
                self.expression();
                if argc == 255 {
                    self.error("Can't have more than 255 arguments.");
                }
                argc = argc.wrapping_add(1);
                if !self.matches(TokenType::Comma) {
                    break;
                }
            }
        }
        self.consume(TokenType::RightParen, "Expect ')' after arguments.");
        argc
    }

    fn dot(&mut self, can_assign: bool) {
        self.consume(TokenType::Identifier, "Expect property name after '.'.");
        let name = self.identifier_constant(self.previous.lexeme);
        if can_assign && self.matches(TokenType::Equal) {
            self.expression();
            self.emit_op_arg(op::SET_PROPERTY, name);
        } else if self.matches(TokenType::LeftParen) {
            let argc = self.argument_list();
            self.emit_invoke(op::INVOKE, name, argc);
        } else {
            let line = self.previous.line;
            let c = self.chunk();
            if c.last_op(2) == Some(op::GET_LOCAL) {
                // `this.x` (or `p.x` on a local) in one dispatch; the name operand goes on
                // the property's line, where an error reports.
                let at = c.code.len();
                c.code[at - 2] = op::GET_LOCAL_PROPERTY;
                c.write(name, line);
            } else {
                self.emit_op_arg(op::GET_PROPERTY, name);
            }
        }
    }

    fn variable(&mut self, can_assign: bool) {
        self.named_variable(self.previous, can_assign);
    }

    fn named_variable(&mut self, name: Token<'s>, can_assign: bool) {
        let place = self.resolve(name.lexeme);
        if !matches!(self.escape, Escape::Off) {
            let value_use = if can_assign && self.check(TokenType::Equal) {
                Some(ValueUse::Assigned)
            } else if self.check(TokenType::LeftParen) {
                None
            } else {
                Some(self.value_use(name))
            };
            self.note_reference(name.lexeme, place, value_use);
        }
        let (get, set, a, b) = match place {
            Place::Local(slot) => (op::GET_LOCAL, op::SET_LOCAL, slot, None),
            Place::Outer(hops, slot) => (op::GET_OUTER, op::SET_OUTER, hops, Some(slot)),
            Place::Upvalue(index) => (op::GET_UPVALUE, op::SET_UPVALUE, index, None),
            Place::OuterUpvalue(hops, index) => (
                op::GET_OUTER_UPVALUE,
                op::SET_OUTER_UPVALUE,
                hops,
                Some(index),
            ),
            Place::Global(c) => (op::GET_GLOBAL, op::SET_GLOBAL, c, None),
        };
        let opcode = if can_assign && self.matches(TokenType::Equal) {
            self.expression();
            set
        } else {
            get
        };
        match b {
            Some(b) => self.emit_op_args(opcode, a, b, 0),
            None if self.emit_push_after_pop(opcode, Some(a)) => {}
            None => self.emit_op_arg(opcode, a),
        }
    }

    /// How the value of the name just read is used, judged by the tokens around it.
    fn value_use(&self, name: Token<'s>) -> ValueUse {
        use TokenType::*;
        if matches!(self.current.kind, EqualEqual | BangEqual)
            || matches!(self.before.kind, EqualEqual | BangEqual)
        {
            return ValueUse::Compared;
        }
        if self.pos(name) == self.arg_start {
            return ValueUse::Argument;
        }
        match self.before.kind {
            Return => ValueUse::Returned,
            Print => ValueUse::Printed,
            Equal => ValueUse::Stored,
            _ => ValueUse::Other,
        }
    }

    /// Escape analysis at a reference to `name`, resolved to `place`: the resolve pass
    /// logs references to local functions; the emit pass turns the call of a direct one
    /// into `CALL_DIRECT`.
    fn note_reference(&mut self, name: &[u8], place: Place, value_use: Option<ValueUse>) {
        let Some((level, slot)) = self.declaring(name) else {
            return;
        };
        let local = &self.fns[level].locals[slot];
        if !local.is_function {
            return;
        }
        let decl = local.pos;
        match &mut self.escape {
            Escape::Off => {}
            Escape::Resolve(log) => {
                let crossed = self.fns[level + 1..].iter().map(|f| f.name_pos).collect();
                log.reference(decl, value_use, crossed);
            }
            Escape::Emit(d) => {
                if !d.is_direct(decl) {
                    return;
                }
                // The analysis saw this very reference: only a call by name, reached
                // through direct functions. Anything else would be a compiler bug that
                // leaves a closure with no static link, so it stops here.
                let hops = match place {
                    Place::Local(_) => 0,
                    Place::Outer(hops, _) => hops,
                    _ => panic!("escape analysis: a direct function reached through a closure"),
                };
                assert!(
                    value_use.is_none(),
                    "escape analysis: a direct function used as a value"
                );
                self.pending_direct = Some(hops);
            }
        }
    }

    fn this(&mut self) {
        if self.classes.is_empty() {
            self.error("Can't use 'this' outside of a class.");
            return;
        }
        self.variable(false);
    }

    fn super_(&mut self) {
        match self.classes.last() {
            None => self.error("Can't use 'super' outside of a class."),
            Some(c) if !c.has_superclass => {
                self.error("Can't use 'super' in a class with no superclass.")
            }
            Some(_) => {}
        }
        self.consume(TokenType::Dot, "Expect '.' after 'super'.");
        self.consume(TokenType::Identifier, "Expect superclass method name.");
        let name = self.identifier_constant(self.previous.lexeme);
        self.named_variable(Token::synthetic("this"), false);
        if self.matches(TokenType::LeftParen) {
            let argc = self.argument_list();
            self.named_variable(Token::synthetic("super"), false);
            self.emit_invoke(op::SUPER_INVOKE, name, argc);
        } else {
            self.named_variable(Token::synthetic("super"), false);
            self.emit_op_arg(op::GET_SUPER, name);
        }
    }
}
