//! Bytecode: the instruction set, and the chunk a function is compiled into before it is
//! copied into the heap.
//!
//! The compiler appends to a [`ChunkBuilder`] (kept on `State::compiling`, so that the
//! collector sees the constants of every function still being compiled), tracking the
//! stack depth each instruction leaves so the finished function knows the most stack it
//! can use. `heap::LoxHeap::new_function` then copies code, line table and constants into
//! heap arrays owned by an `ObjFunction`, which is what the VM runs.
//!
//! The instructions are clox's, plus three groups. Three fused comparisons (`!=`, `>=`,
//! `<=`) do in one dispatch what clox does in two (`==` then `!`, and so on) with the same
//! results, NaN included (`a >= b` is `!(a < b)`, as clox computes it). The escape
//! analysis's direct calls and static-link accesses (`CALL_DIRECT`, `GET_OUTER`...; see
//! `escape.rs`) run local functions that need no closure. And superinstructions, which
//! the compiler's peephole makes from a pair (or three) of clox's instructions when no
//! jump lands between them, cut dispatches where programs spend them: a constant right
//! operand (`_K`), a comparison with the jump after it (`_JUMP`), a `POP` with the push,
//! loop or return after it, `this.x`. Each keeps the line its error would report.

use super::object::ObjString;
use super::value::Value;

/// Opcodes. Operands follow the opcode byte: `u8` unless noted.
pub mod op {
    /// `[constant]`: push a constant.
    pub const CONSTANT: u8 = 0;
    pub const NIL: u8 = 1;
    pub const TRUE: u8 = 2;
    pub const FALSE: u8 = 3;
    pub const POP: u8 = 4;
    /// `[slot]`
    pub const GET_LOCAL: u8 = 5;
    /// `[slot]`
    pub const SET_LOCAL: u8 = 6;
    /// `[name constant]`
    pub const GET_GLOBAL: u8 = 7;
    /// `[name constant]`
    pub const DEFINE_GLOBAL: u8 = 8;
    /// `[name constant]`
    pub const SET_GLOBAL: u8 = 9;
    /// `[upvalue index]`
    pub const GET_UPVALUE: u8 = 10;
    /// `[upvalue index]`
    pub const SET_UPVALUE: u8 = 11;
    /// `[name constant]`
    pub const GET_PROPERTY: u8 = 12;
    /// `[name constant]`
    pub const SET_PROPERTY: u8 = 13;
    /// `[name constant]`: pops the superclass, binds its method to `this`.
    pub const GET_SUPER: u8 = 14;
    pub const EQUAL: u8 = 15;
    pub const NOT_EQUAL: u8 = 16;
    pub const GREATER: u8 = 17;
    /// `!(a < b)`
    pub const GREATER_EQUAL: u8 = 18;
    pub const LESS: u8 = 19;
    /// `!(a > b)`
    pub const LESS_EQUAL: u8 = 20;
    pub const ADD: u8 = 21;
    pub const SUBTRACT: u8 = 22;
    pub const MULTIPLY: u8 = 23;
    pub const DIVIDE: u8 = 24;
    pub const NOT: u8 = 25;
    pub const NEGATE: u8 = 26;
    pub const PRINT: u8 = 27;
    /// `[u16 offset]` forward.
    pub const JUMP: u8 = 28;
    /// `[u16 offset]` forward when the top of stack is falsey (which stays pushed).
    pub const JUMP_IF_FALSE: u8 = 29;
    /// `[u16 offset]` backward.
    pub const LOOP: u8 = 30;
    /// `[argument count]`
    pub const CALL: u8 = 31;
    /// `[name constant][argument count]`
    pub const INVOKE: u8 = 32;
    /// `[name constant][argument count]`: pops the superclass first.
    pub const SUPER_INVOKE: u8 = 33;
    /// `[function constant]` then `[hops << 1 | is local][index]` per upvalue: a local or
    /// an upvalue of the running frame (`hops` 0) or of the frame `hops` static links out.
    pub const CLOSURE: u8 = 34;
    pub const CLOSE_UPVALUE: u8 = 35;
    pub const RETURN: u8 = 36;
    /// `[name constant]`
    pub const CLASS: u8 = 37;
    pub const INHERIT: u8 = 38;
    /// `[name constant]`
    pub const METHOD: u8 = 39;
    /// `[u16 offset]` forward when the top of stack is falsey, which it pops either way:
    /// the condition of `if`, `while` and `for`, where clox has `JUMP_IF_FALSE` and a
    /// `POP` on each path (one dispatch fewer per branch taken).
    pub const POP_JUMP_IF_FALSE: u8 = 40;
    /// `[u16 offset]`: a comparison fused with the `POP_JUMP_IF_FALSE` after it (pops
    /// both operands, jumps forward when the comparison is false); the compiler makes one
    /// from `EQUAL` .. `LESS_EQUAL` with [`fused_compare`].
    pub const EQUAL_JUMP: u8 = 41;
    pub const NOT_EQUAL_JUMP: u8 = 42;
    pub const GREATER_JUMP: u8 = 43;
    pub const GREATER_EQUAL_JUMP: u8 = 44;
    pub const LESS_JUMP: u8 = 45;
    pub const LESS_EQUAL_JUMP: u8 = 46;
    /// `[hops][slot]`: a local of the frame `hops` static links out (see `CALL_DIRECT`).
    pub const GET_OUTER: u8 = 47;
    /// `[hops][slot]`
    pub const SET_OUTER: u8 = 48;
    /// `[hops][upvalue index]`: an upvalue of that frame's closure.
    pub const GET_OUTER_UPVALUE: u8 = 49;
    /// `[hops][upvalue index]`
    pub const SET_OUTER_UPVALUE: u8 = 50;
    /// `[argument count][hops]`: calls a function the escape analysis found direct (its
    /// compile-time closure is the callee), linking the new frame to the frame that
    /// declared it: the running frame, or the one `hops` static links out.
    pub const CALL_DIRECT: u8 = 51;
    /// `NIL` then `RETURN`, in one dispatch: the end of every function but an initializer.
    pub const RETURN_NIL: u8 = 52;
    /// `GET_LOCAL 0` then `RETURN`: the end of an initializer, and its bare `return;`.
    pub const RETURN_THIS: u8 = 53;
    /// `[constant]`: a binary operator whose right operand is a constant, in one dispatch
    /// instead of `CONSTANT` and the operator (Lua's `EQK`, `ADDK`...); the compiler makes
    /// one from the pair with [`super::with_constant`].
    pub const EQUAL_K: u8 = 54;
    pub const NOT_EQUAL_K: u8 = 55;
    pub const GREATER_K: u8 = 56;
    pub const GREATER_EQUAL_K: u8 = 57;
    pub const LESS_K: u8 = 58;
    pub const LESS_EQUAL_K: u8 = 59;
    pub const ADD_K: u8 = 60;
    pub const SUBTRACT_K: u8 = 61;
    pub const MULTIPLY_K: u8 = 62;
    pub const DIVIDE_K: u8 = 63;
    /// `POP` then a push, in one dispatch (the top is replaced): a statement that begins
    /// with a push after one that ended in `POP`. The compiler makes one with
    /// [`super::after_pop`]. Operands as the push's.
    pub const POP_CONSTANT: u8 = 64;
    pub const POP_NIL: u8 = 65;
    pub const POP_TRUE: u8 = 66;
    pub const POP_FALSE: u8 = 67;
    pub const POP_GET_LOCAL: u8 = 68;
    pub const POP_GET_GLOBAL: u8 = 69;
    /// `[u16 offset]`: `POP` then `LOOP`, the end of a `for` loop's increment and of a
    /// loop body that ends in an expression statement.
    pub const POP_LOOP: u8 = 70;
    /// `[slot][name constant]`: `GET_LOCAL` then `GET_PROPERTY`, a method's `this.x`.
    pub const GET_LOCAL_PROPERTY: u8 = 71;
    /// `[constant][u16 offset]`: a comparison with a constant right operand fused with the
    /// conditional jump after it (`if (n < 2)`): pops the left operand, jumps forward when
    /// the comparison is false. Made from a `_K` comparison by [`fused_compare`].
    pub const EQUAL_K_JUMP: u8 = 72;
    pub const NOT_EQUAL_K_JUMP: u8 = 73;
    pub const GREATER_K_JUMP: u8 = 74;
    pub const GREATER_EQUAL_K_JUMP: u8 = 75;
    pub const LESS_K_JUMP: u8 = 76;
    pub const LESS_EQUAL_K_JUMP: u8 = 77;
}

/// The `POP`-then-push form of push instruction `opcode`, if it has one.
pub fn after_pop(opcode: u8) -> Option<u8> {
    use op::*;
    match opcode {
        CONSTANT => Some(POP_CONSTANT),
        NIL => Some(POP_NIL),
        TRUE => Some(POP_TRUE),
        FALSE => Some(POP_FALSE),
        GET_LOCAL => Some(POP_GET_LOCAL),
        GET_GLOBAL => Some(POP_GET_GLOBAL),
        _ => None,
    }
}

/// The constant-operand form of binary operator `opcode`, if it has one.
pub fn with_constant(opcode: u8) -> Option<u8> {
    use op::*;
    match opcode {
        EQUAL..=LESS_EQUAL => Some(opcode - EQUAL + EQUAL_K),
        ADD..=DIVIDE => Some(opcode - ADD + ADD_K),
        _ => None,
    }
}

/// The compare-and-jump instruction for comparison `opcode`, if it is one.
pub fn fused_compare(opcode: u8) -> Option<u8> {
    use op::*;
    match opcode {
        EQUAL => Some(EQUAL_JUMP),
        NOT_EQUAL => Some(NOT_EQUAL_JUMP),
        GREATER => Some(GREATER_JUMP),
        GREATER_EQUAL => Some(GREATER_EQUAL_JUMP),
        LESS => Some(LESS_JUMP),
        LESS_EQUAL => Some(LESS_EQUAL_JUMP),
        EQUAL_K..=LESS_EQUAL_K => Some(opcode - EQUAL_K + EQUAL_K_JUMP),
        _ => None,
    }
}

/// How an instruction changes the stack depth (`argc`: the argument count of a call).
pub fn stack_effect(opcode: u8, argc: u8) -> isize {
    use op::*;
    match opcode {
        CONSTANT | NIL | TRUE | FALSE | GET_LOCAL | GET_GLOBAL | GET_UPVALUE | CLOSURE | CLASS
        | GET_OUTER | GET_OUTER_UPVALUE | GET_LOCAL_PROPERTY => 1,
        SET_LOCAL
        | SET_GLOBAL
        | SET_UPVALUE
        | GET_PROPERTY
        | NOT
        | NEGATE
        | JUMP
        | JUMP_IF_FALSE
        | LOOP
        | SET_OUTER
        | SET_OUTER_UPVALUE
        | RETURN_NIL
        | RETURN_THIS
        | EQUAL_K..=DIVIDE_K
        | POP_CONSTANT..=POP_GET_GLOBAL => 0,
        POP
        | DEFINE_GLOBAL
        | SET_PROPERTY
        | GET_SUPER
        | EQUAL
        | NOT_EQUAL
        | GREATER
        | GREATER_EQUAL
        | LESS
        | LESS_EQUAL
        | ADD
        | SUBTRACT
        | MULTIPLY
        | DIVIDE
        | PRINT
        | CLOSE_UPVALUE
        | RETURN
        | INHERIT
        | METHOD
        | POP_JUMP_IF_FALSE
        | POP_LOOP
        | EQUAL_K_JUMP..=LESS_EQUAL_K_JUMP => -1,
        EQUAL_JUMP | NOT_EQUAL_JUMP | GREATER_JUMP | GREATER_EQUAL_JUMP | LESS_JUMP
        | LESS_EQUAL_JUMP => -2,
        CALL | INVOKE | CALL_DIRECT => -(argc as isize),
        SUPER_INVOKE => -(argc as isize) - 1,
        _ => unreachable!("opcode {opcode}"),
    }
}

/// A function's bytecode while it is being compiled.
pub struct ChunkBuilder {
    /// The function's name (null for the script).
    pub name: *mut ObjString,
    pub code: Vec<u8>,
    /// Source line of each byte of `code`.
    pub lines: Vec<u32>,
    pub constants: Vec<Value>,
    pub arity: usize,
    pub upvalue_count: usize,
    /// Stack depth after the last instruction, counted from the frame's slot 0.
    pub depth: isize,
    /// The deepest the stack gets.
    pub max_depth: isize,
    /// Where the last instruction starts, and the latest jump target (forward, or a loop
    /// start): the compiler's peephole fusions rewrite the last instruction only when no
    /// jump lands after it (see [`ChunkBuilder::last_op`]).
    pub last_start: usize,
    pub last_target: usize,
}

impl ChunkBuilder {
    pub fn new(name: *mut ObjString) -> ChunkBuilder {
        ChunkBuilder {
            name,
            code: Vec::new(),
            lines: Vec::new(),
            constants: Vec::new(),
            arity: 0,
            upvalue_count: 0,
            // Slot 0 holds the callee (or `this`).
            depth: 1,
            max_depth: 1,
            last_start: usize::MAX,
            last_target: usize::MAX,
        }
    }

    /// The opcode of the last instruction, if it is `len` bytes long and no jump lands
    /// after it: one that a fusion with what comes next may rewrite.
    pub fn last_op(&self, len: usize) -> Option<u8> {
        let at = self.code.len();
        (at >= len && self.last_start == at - len && self.last_target != at)
            .then(|| self.code[at - len])
    }

    pub fn write(&mut self, byte: u8, line: u32) {
        self.code.push(byte);
        self.lines.push(line);
    }

    /// Accounts for `delta` more values on the stack.
    pub fn grow_stack(&mut self, delta: isize) {
        self.depth += delta;
        self.max_depth = self.max_depth.max(self.depth);
    }

    /// Adds a constant; returns its index (which may be past what an operand can name:
    /// the compiler reports that).
    pub fn add_constant(&mut self, v: Value) -> usize {
        self.constants.push(v);
        self.constants.len() - 1
    }
}
