//! The virtual machine: runs compiled functions over the value stack, clox's design.
//!
//! [`Vm`] owns the heap ([`LoxHeap`]) and the roots ([`State`]). `interpret` compiles a
//! source text to a script function, wraps it in a closure and runs the dispatch loop
//! (`run`), which keeps the running frame's instruction pointer, stack top, slot base and
//! constant array in locals and writes them back (`sync!`) before anything that may
//! allocate, fail or change frames. Allocation may collect, and the collector sees the
//! stack up to `State::sp`: so every object the loop still needs is on the stack whenever
//! it allocates, as in clox.
//!
//! The loop's raw-pointer accesses rest on three invariants, named in its SAFETY comments:
//!
//! - **INV-CODE**: bytecode is made by `compiler.rs` only: every instruction has its
//!   operands, constant, local and upvalue indices are in range, jumps land on
//!   instructions, and every function ends in a return (`RETURN_NIL`, `RETURN_THIS`).
//!   The constant an instruction names has the type the instruction expects (names are
//!   strings, `CLOSURE` takes a function).
//! - **INV-STACK**: the running frame uses at most its function's `max_stack` slots, which
//!   the compiler computed from the stack effect of each instruction; a call checks that
//!   many slots are free before it pushes a frame. So `push`, `pop` and `peek` stay inside
//!   the stack.
//! - **INV-LIVE**: every object value on the stack, in a frame, an upvalue or a constant
//!   is live: it is reachable from `State` and the collector marks it.
//! - **INV-LINK**: a static-link hop count (`GET_OUTER`, `CALL_DIRECT`, a `CLOSURE`
//!   descriptor) leaves only frames of direct functions, whose `env` `CALL_DIRECT` set to
//!   the frame of the call that declared them; the escape analysis lets a direct function
//!   be called only while that call runs, so the frame is below the running one, live.

use std::io::{self, Write};

use minigo_gc::{GcConfig, MemStats};

use super::chunk::op;
use super::compiler::{compile, EscapeOptions};
use super::fields;
use super::heap::{upvalue_slot, LoxHeap};
use super::object::{
    is_kind, kind_of, Kind, ObjBoundMethod, ObjClass, ObjClosure, ObjFunction, ObjInstance,
    ObjNative, ObjString, ObjUpvalue,
};
use super::roots::{CallFrame, State, FRAMES_MAX};
use super::table::Table;
use super::value::{format_number, Value};

/// How an `interpret` call ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InterpretResult {
    Ok,
    CompileError,
    RuntimeError,
}

/// A native function: the arguments in, the result out.
type Native = fn(&[Value]) -> Value;

/// The natives, by `ObjNative::index`, with their global names.
const NATIVES: &[(&str, Native)] = &[("clock", clock_native)];

/// Seconds of CPU time the process has used: what clox's `clock()` returns.
fn clock_native(_: &[Value]) -> Value {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; the clock id is a constant Linux knows.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Value::number(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// A Lox interpreter: a heap, the VM state, and where `print` and errors go.
pub struct Vm {
    heap: LoxHeap,
    st: State,
    out: Box<dyn Write>,
    err: Box<dyn Write>,
    /// Scratch for string concatenation and number formatting.
    scratch: Vec<u8>,
    escape: EscapeOptions,
}

/// A runtime error was reported; the stack is unwound.
struct RuntimeError;

/// `a + b`, and when both are NaN the result is `a`'s, as clox's `a + b` gives on x86-64
/// (SSE returns the first operand's NaN). LLVM treats `+` as commutative and put `b`
/// first, which printed `-nan` where clox prints `nan`; the instruction is spelled out.
#[inline(always)]
fn add(a: f64, b: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = a;
        // SAFETY: one SSE2 addition between registers (x86-64 always has SSE2): it reads
        // and writes no memory and leaves the stack and flags as they were.
        unsafe {
            std::arch::asm!("addsd {r}, {b}", r = inout(xmm_reg) r, b = in(xmm_reg) b,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a + b
    }
}

/// `a * b`, with `a`'s NaN when both are NaN (see [`add`]).
#[inline(always)]
fn mul(a: f64, b: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut r = a;
        // SAFETY: one SSE2 multiplication between registers, as in `add`.
        unsafe {
            std::arch::asm!("mulsd {r}, {b}", r = inout(xmm_reg) r, b = in(xmm_reg) b,
                options(pure, nomem, nostack, preserves_flags));
        }
        r
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a * b
    }
}

/// `a >= b` as clox computes it: `!(a < b)`, true when either is NaN.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
fn not_less(a: f64, b: f64) -> bool {
    !(a < b)
}

/// `a <= b` as clox computes it: `!(a > b)`, true when either is NaN.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline(always)]
fn not_greater(a: f64, b: f64) -> bool {
    !(a > b)
}

/// The string constant at `index` of `consts`.
///
/// # Safety
/// INV-CODE: the constant exists and is a string.
#[inline(always)]
unsafe fn string_constant(consts: *const Value, index: u8) -> *mut ObjString {
    // SAFETY: the caller's contract.
    unsafe { (*consts.add(index as usize)).as_ptr() }
}

/// Appends the printed form of `v` (clox's `printValue`).
pub fn print_value(v: Value, out: &mut Vec<u8>) {
    if v.is_number() {
        let mut s = String::new();
        format_number(v.as_number(), &mut s);
        out.extend_from_slice(s.as_bytes());
    } else if v.is_nil() {
        out.extend_from_slice(b"nil");
    } else if v.is_bool() {
        out.extend_from_slice(if v == Value::TRUE { b"true" } else { b"false" });
    } else {
        // SAFETY: INV-LIVE: a value being printed is on the stack.
        unsafe { print_object(v.as_ptr(), out) }
    }
}

/// # Safety
/// `p` is a live object.
unsafe fn print_object(p: *mut u64, out: &mut Vec<u8>) {
    /// # Safety
    /// `f` is a live function.
    unsafe fn function(f: *mut ObjFunction, out: &mut Vec<u8>) {
        // SAFETY: the caller's contract; a function's name is null or a live string.
        unsafe {
            if (*f).name.is_null() {
                out.extend_from_slice(b"<script>");
            } else {
                out.extend_from_slice(b"<fn ");
                out.extend_from_slice(ObjString::bytes((*f).name));
                out.push(b'>');
            }
        }
    }
    // SAFETY: the caller's contract; each arm reads the object as the kind its header
    // names, and follows only pointers that object keeps live.
    unsafe {
        match kind_of(p) {
            k if k == Kind::String as u8 => {
                out.extend_from_slice(ObjString::bytes(p as *mut ObjString))
            }
            k if k == Kind::Function as u8 => function(p as *mut ObjFunction, out),
            k if k == Kind::Native as u8 => out.extend_from_slice(b"<native fn>"),
            k if k == Kind::Closure as u8 => function((*(p as *mut ObjClosure)).function, out),
            k if k == Kind::Upvalue as u8 => out.extend_from_slice(b"upvalue"),
            k if k == Kind::Class as u8 => {
                out.extend_from_slice(ObjString::bytes((*(p as *mut ObjClass)).name))
            }
            k if k == Kind::Instance as u8 => {
                let class = (*(p as *mut ObjInstance)).class;
                out.extend_from_slice(ObjString::bytes((*class).name));
                out.extend_from_slice(b" instance");
            }
            k if k == Kind::BoundMethod as u8 => {
                function((*(*(p as *mut ObjBoundMethod)).method).function, out)
            }
            k => unreachable!("object kind {k}"),
        }
    }
}

impl Vm {
    /// A VM with a fresh heap configured by `config`, printing to `out` and reporting
    /// errors to `err`.
    pub fn new(config: GcConfig, out: Box<dyn Write>, err: Box<dyn Write>) -> io::Result<Vm> {
        let mut st = State::new();
        let heap = LoxHeap::new(config, &mut st)?;
        let mut vm = Vm {
            heap,
            st,
            out,
            err,
            scratch: Vec::new(),
            escape: EscapeOptions::default(),
        };
        for (index, (name, _)) in NATIVES.iter().enumerate() {
            let name = vm.heap.intern(&mut vm.st, name.as_bytes());
            vm.st.temps.push(Value::object(name));
            let native = vm.heap.new_native(&mut vm.st, index);
            vm.st.temps.push(Value::object(native));
            let globals = vm.st.globals;
            // SAFETY: the globals table is a root; name and native are held in `temps`.
            unsafe {
                vm.heap
                    .table_set(&mut vm.st, globals, name, Value::object(native))
            };
            vm.st.temps.clear();
        }
        Ok(vm)
    }

    /// Compiles and runs `source` (one script, or one REPL line: globals persist).
    pub fn interpret(&mut self, source: &[u8]) -> InterpretResult {
        // clox's scanner ends at the first NUL byte, whatever follows it.
        let source = &source[..source.iter().position(|&b| b == 0).unwrap_or(source.len())];
        let script = self.st.script.clone();
        let Some(function) = compile(
            &mut self.heap,
            &mut self.st,
            source,
            &mut *self.err,
            self.escape,
            &script,
        ) else {
            return InterpretResult::CompileError;
        };
        self.st.temps.push(Value::object(function));
        let closure = self.heap.new_closure(&mut self.st, function);
        self.st.temps.pop();
        // SAFETY: the stack is empty between runs; the closure is rooted once pushed.
        unsafe {
            self.st.sp.write(Value::object(closure));
            self.st.sp = self.st.sp.add(1);
        }
        let result = match self.call_closure(closure, 0) {
            Ok(()) => self.run(),
            Err(e) => Err(e),
        };
        let _ = self.out.flush();
        match result {
            Ok(()) => InterpretResult::Ok,
            Err(RuntimeError) => InterpretResult::RuntimeError,
        }
    }

    /// Writes `bytes` to the output and flushes it (the REPL's prompt).
    pub fn write_output(&mut self, bytes: &[u8]) {
        let _ = self.out.write_all(bytes);
        let _ = self.out.flush();
    }

    /// How later `interpret` calls use escape analysis: on by default; `off` compiles
    /// every function to a closure as clox does; `report` 1 or 2 prints the decisions
    /// (`lox -m`, `-m -m`) to the error stream, naming the script.
    pub fn set_escape(&mut self, escape: EscapeOptions) {
        self.escape = escape;
    }

    /// Names the program's file in the heap profile's frames and escape reports (default
    /// `script`).
    pub fn set_script_name(&mut self, name: &str) {
        self.st.script = name.to_string();
    }

    /// Heap statistics (flushing this VM's allocation counts first).
    pub fn heap_stats(&mut self) -> MemStats {
        self.heap.stats()
    }

    /// Runs a full collection now; returns the statistics after it.
    pub fn collect(&mut self) -> MemStats {
        self.heap.collect(&mut self.st)
    }

    /// How many strings collections have dropped from the intern table so far.
    pub fn strings_dropped(&self) -> u64 {
        self.st.strings_dropped
    }

    /// How many strings are interned now.
    pub fn strings_interned(&self) -> usize {
        // SAFETY: the interner is a root, live for the VM's lifetime.
        unsafe { (*self.st.strings).len() }
    }

    /// The heap underneath (its collector: cycles, settings).
    pub fn heap(&self) -> &minigo_gc::Heap {
        self.heap.heap()
    }

    /// Reports a runtime error: the message, then the stack trace, innermost call first.
    /// The running frame's `ip` must be synced.
    #[cold]
    #[inline(never)]
    fn runtime_error(&mut self, message: &[u8]) -> RuntimeError {
        let _ = self.out.flush();
        let mut text = message.to_vec();
        text.push(b'\n');
        for f in self.st.frames().iter().rev() {
            // SAFETY: INV-LIVE for the frames' closures; `ip` is past at least one byte of
            // the frame's code (the instruction being run, or the call being made).
            let (line, name) = unsafe { f.line_and_name() };
            text.extend_from_slice(format!("[line {line}] in ").as_bytes());
            match name {
                None => text.extend_from_slice(b"script\n"),
                Some(name) => {
                    text.extend_from_slice(name);
                    text.extend_from_slice(b"()\n");
                }
            }
        }
        let _ = self.err.write_all(&text);
        self.st.reset();
        RuntimeError
    }

    fn error_with_name(&mut self, before: &str, name: *mut ObjString, after: &str) -> RuntimeError {
        let mut m = before.as_bytes().to_vec();
        // SAFETY: INV-CODE/INV-LIVE: names are string constants of the running function.
        m.extend_from_slice(unsafe { ObjString::bytes(name) });
        m.extend_from_slice(after.as_bytes());
        self.runtime_error(&m)
    }

    /// Whether a call of `closure` with `argc` arguments whose frame starts at `base` may
    /// go ahead: the arity matches, and there is a frame and `max_stack` slots free.
    ///
    /// # Safety
    /// INV-LIVE: `closure` is live; `base` is a slot of the stack.
    #[inline(always)]
    unsafe fn can_enter(&self, closure: *mut ObjClosure, argc: usize, base: *mut Value) -> bool {
        // SAFETY: the caller's contract.
        let (arity, max_stack) = unsafe { ((*closure).arity, (*closure).max_stack) };
        argc == arity as usize
            && self.st.frame_count < FRAMES_MAX
            && (self.st.stack_end() as usize - base as usize) / 8 >= max_stack as usize
    }

    /// Reports why `can_enter` refused a call (the running frame's `ip` is synced).
    #[cold]
    #[inline(never)]
    fn call_error(&mut self, closure: *mut ObjClosure, argc: usize) -> RuntimeError {
        // SAFETY: INV-LIVE: the callee is on the stack.
        let arity = unsafe { (*closure).arity } as usize;
        if argc != arity {
            return self
                .runtime_error(format!("Expected {arity} arguments but got {argc}.").as_bytes());
        }
        self.runtime_error(b"Stack overflow.")
    }

    /// Pushes the frame of a call of `closure` whose slot 0 is `base`, once `can_enter`
    /// has said yes; returns it.
    ///
    /// # Safety
    /// `can_enter(closure, _, base)` holds; INV-LIVE for the closure.
    #[inline(always)]
    unsafe fn push_frame(&mut self, closure: *mut ObjClosure, base: *mut Value) -> *mut CallFrame {
        // SAFETY: the caller's contract: the closure is live, `frame_count < FRAMES_MAX`.
        unsafe {
            let function = (*closure).function;
            let frame = self.st.frames.add(self.st.frame_count);
            frame.write(CallFrame {
                closure,
                ip: (*closure).code,
                slots: base,
                consts: (*function).constants,
                hints: (*function).hints,
                env: std::ptr::null_mut(),
            });
            self.st.frame_count += 1;
            frame
        }
    }

    /// Pushes a frame calling `closure` with the `argc` arguments on top of the stack.
    #[inline(always)]
    fn call_closure(&mut self, closure: *mut ObjClosure, argc: usize) -> Result<(), RuntimeError> {
        // SAFETY: INV-STACK: the callee and its arguments are the top `argc + 1` values.
        let base = unsafe { self.st.sp.sub(argc + 1) };
        // SAFETY: as above; INV-LIVE: the callee is on the stack (or held by a bound
        // method there).
        if !unsafe { self.can_enter(closure, argc, base) } {
            return Err(self.call_error(closure, argc));
        }
        // SAFETY: checked just above.
        unsafe { self.push_frame(closure, base) };
        Ok(())
    }

    /// The first half of calling `class` with the `argc` arguments on top of the stack: a
    /// new instance replaces the class in the callee slot (which roots the class until
    /// then). Returns `init`, for the caller to call, or null when there is none (then
    /// `argc` must be 0). `st.sp` and the caller's `ip` are synced.
    #[inline(always)]
    fn instantiate(
        &mut self,
        class: *mut ObjClass,
        argc: usize,
    ) -> Result<*mut ObjClosure, RuntimeError> {
        let instance = self.heap.new_instance(&mut self.st, class);
        // SAFETY: INV-STACK: the callee slot is below the arguments; INV-LIVE for the class.
        let init = unsafe {
            *self.st.sp.sub(argc + 1) = Value::object(instance);
            (*class).init
        };
        if init.is_null() && argc != 0 {
            return Err(
                self.runtime_error(format!("Expected 0 arguments but got {argc}.").as_bytes())
            );
        }
        Ok(init)
    }

    /// Calls any callable value (clox's `callValue`); `st.sp` and the caller's `ip` are
    /// synced.
    fn call_value(&mut self, callee: Value, argc: usize) -> Result<(), RuntimeError> {
        if callee.is_object() {
            let p: *mut u64 = callee.as_ptr();
            // SAFETY: INV-LIVE: the callee is on the stack.
            let kind = unsafe { kind_of(p) };
            // SAFETY: INV-STACK: the callee's slot is below the arguments.
            let callee_slot = unsafe { self.st.sp.sub(argc + 1) };
            match kind {
                k if k == Kind::Closure as u8 => {
                    return self.call_closure(p as *mut ObjClosure, argc)
                }
                k if k == Kind::BoundMethod as u8 => {
                    let b = p as *mut ObjBoundMethod;
                    // SAFETY: INV-LIVE; the slot is on the stack (not in the heap), and the
                    // method stays rooted by the frame about to be pushed.
                    unsafe {
                        *callee_slot = (*b).receiver;
                        return self.call_closure((*b).method, argc);
                    }
                }
                k if k == Kind::Class as u8 => {
                    let init = self.instantiate(p as *mut ObjClass, argc)?;
                    if !init.is_null() {
                        return self.call_closure(init, argc);
                    }
                    return Ok(());
                }
                k if k == Kind::Native as u8 => {
                    // SAFETY: INV-LIVE.
                    let index = unsafe { (*(p as *mut ObjNative)).index };
                    // SAFETY: INV-STACK: the arguments are the top `argc` values.
                    let args = unsafe { std::slice::from_raw_parts(callee_slot.add(1), argc) };
                    let result = (NATIVES[index].1)(args);
                    // SAFETY: as above; the result replaces the callee.
                    unsafe {
                        *callee_slot = result;
                        self.st.sp = callee_slot.add(1);
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        Err(self.runtime_error(b"Can only call functions and classes."))
    }

    /// Calls method `name` of `class` on the receiver below the `argc` arguments.
    fn invoke_from_class(
        &mut self,
        class: *mut ObjClass,
        name: *mut ObjString,
        argc: usize,
    ) -> Result<(), RuntimeError> {
        // SAFETY: INV-LIVE: the class is the receiver's, or a `super` variable's.
        match unsafe { (*class).methods.get(name) } {
            Some(method) => self.call_closure(method.as_ptr(), argc),
            None => Err(self.error_with_name("Undefined property '", name, "'.")),
        }
    }

    /// `receiver.name(args)` (clox's `invoke`).
    fn invoke(&mut self, name: *mut ObjString, argc: usize) -> Result<(), RuntimeError> {
        // SAFETY: INV-STACK: the receiver is below the arguments.
        let receiver = unsafe { *self.st.sp.sub(argc + 1) };
        if !is_kind(receiver, Kind::Instance) {
            return Err(self.runtime_error(b"Only instances have methods."));
        }
        let instance: *mut ObjInstance = receiver.as_ptr();
        // SAFETY: INV-LIVE: the receiver is on the stack.
        if let Some(field) = unsafe { fields::get(instance, name) } {
            // SAFETY: a stack slot.
            unsafe { *self.st.sp.sub(argc + 1) = field };
            return self.call_value(field, argc);
        }
        // SAFETY: INV-LIVE.
        let class = unsafe { (*instance).class };
        self.invoke_from_class(class, name, argc)
    }

    /// Replaces the instance on top of the stack by its method `name`, bound to it.
    fn bind_method(
        &mut self,
        class: *mut ObjClass,
        name: *mut ObjString,
    ) -> Result<(), RuntimeError> {
        // SAFETY: INV-LIVE.
        let Some(method) = (unsafe { (*class).methods.get(name) }) else {
            return Err(self.error_with_name("Undefined property '", name, "'."));
        };
        // SAFETY: INV-STACK: the receiver is on top.
        let receiver = unsafe { *self.st.sp.sub(1) };
        let bound = self
            .heap
            .new_bound_method(&mut self.st, receiver, method.as_ptr());
        // SAFETY: as above.
        unsafe { *self.st.sp.sub(1) = Value::object(bound) };
        Ok(())
    }

    /// The upvalue for stack slot `slot`, reusing an open one.
    fn capture_upvalue(&mut self, slot: *mut Value) -> *mut ObjUpvalue {
        let open = &self.st.open_upvalues;
        let mut at = open.len();
        // SAFETY: open upvalues are live (the list is a root) and their locations are
        // stack slots.
        while at > 0 && unsafe { (*open[at - 1]).location } >= slot {
            // SAFETY: as above.
            if unsafe { (*open[at - 1]).location } == slot {
                return open[at - 1];
            }
            at -= 1;
        }
        let u = self.heap.new_upvalue(&mut self.st, slot);
        self.st.open_upvalues.insert(at, u);
        u
    }

    /// Closes every open upvalue at or above `last`: its value moves into the upvalue.
    fn close_upvalues(&mut self, last: *mut Value) {
        while let Some(&u) = self.st.open_upvalues.last() {
            // SAFETY: open upvalues are live and point at stack slots.
            let location = unsafe { (*u).location };
            if location < last {
                break;
            }
            // SAFETY: `closed` is the upvalue's value word; the value is on the stack.
            unsafe {
                self.heap.write_value(&raw mut (*u).closed, *location);
                (*u).location = &raw mut (*u).closed;
            }
            self.st.open_upvalues.pop();
        }
    }

    /// String concatenation of the two strings on top of the stack, which it replaces.
    fn concatenate(&mut self) {
        // SAFETY: INV-STACK, INV-LIVE: two strings on top (checked by the caller).
        let (a, b) = unsafe {
            (
                (*self.st.sp.sub(2)).as_ptr::<ObjString>(),
                (*self.st.sp.sub(1)).as_ptr::<ObjString>(),
            )
        };
        self.scratch.clear();
        // SAFETY: as above; both stay on the stack (rooted) until the result replaces them.
        unsafe {
            self.scratch.extend_from_slice(ObjString::bytes(a));
            self.scratch.extend_from_slice(ObjString::bytes(b));
        }
        let s = self.heap.intern(&mut self.st, &self.scratch);
        // SAFETY: as above.
        unsafe {
            self.st.sp = self.st.sp.sub(1);
            *self.st.sp.sub(1) = Value::object(s);
        }
    }

    /// Stores `v` in the variable upvalue `u` holds.
    ///
    /// # Safety
    /// `u` is a live upvalue.
    #[inline(always)]
    unsafe fn set_upvalue(&mut self, u: *mut ObjUpvalue, v: Value) {
        // SAFETY: the caller's contract. An open upvalue's location is a stack slot (a
        // plain store); a closed one's is its own value word (a heap word: the write API).
        unsafe {
            let location = (*u).location;
            if location == &raw mut (*u).closed {
                self.heap.write_value(location, v);
            } else {
                *location = v;
            }
        }
    }

    /// Stores into a table in a heap object, growing it if the key is new.
    ///
    /// # Safety
    /// `table` is in a live heap object; key and value are rooted.
    unsafe fn set_in_table(
        &mut self,
        table: *mut Table,
        key: *mut ObjString,
        value: Value,
    ) -> bool {
        // SAFETY: the caller's contract.
        if let Some(slot) = unsafe { (*table).value_slot(key) } {
            // SAFETY: `slot` is the value word of a live entry array.
            unsafe { self.heap.write_value(slot, value) };
            return false;
        }
        // SAFETY: the caller's contract.
        unsafe { self.heap.table_set(&mut self.st, table, key, value) }
    }

    /// The dispatch loop: runs until the outermost frame returns or an error.
    #[inline(never)]
    fn run(&mut self) -> Result<(), RuntimeError> {
        let mut frame: *mut CallFrame;
        let mut ip: *const u8;
        let mut sp: *mut Value = self.st.sp;

        macro_rules! load_frame {
            () => {{
                // SAFETY: there is a running frame; INV-LIVE for its closure and function.
                unsafe {
                    frame = self.st.frames.add(self.st.frame_count - 1);
                    ip = (*frame).ip;
                }
            }};
        }
        // Writes the loop's registers back to the state, before anything that allocates,
        // reports an error or changes frames.
        macro_rules! sync {
            () => {{
                // SAFETY: `frame` is the running frame.
                unsafe { (*frame).ip = ip };
                self.st.sp = sp;
            }};
        }
        // After a helper changed the state (frames, stack top).
        macro_rules! reload {
            () => {{
                sp = self.st.sp;
                load_frame!();
            }};
        }
        macro_rules! read_byte {
            () => {{
                // SAFETY: INV-CODE: the operand or next instruction exists.
                let b = unsafe { *ip };
                // SAFETY: as above.
                ip = unsafe { ip.add(1) };
                b
            }};
        }
        macro_rules! read_string {
            () => {{
                let index = read_byte!();
                // SAFETY: INV-CODE: the operand names a string constant.
                unsafe { string_constant((*frame).consts, index) }
            }};
        }
        // A name operand: the string and its probe hint.
        macro_rules! read_name {
            () => {{
                let index = read_byte!();
                // SAFETY: INV-CODE: the operand names a string constant, and the function
                // has a hint per constant; `frame` is the running frame.
                unsafe {
                    (
                        string_constant((*frame).consts, index),
                        &mut *(*frame).hints.add(index as usize),
                    )
                }
            }};
        }
        // The method-call cache entry of a name operand just read (`index`): the class
        // and the method last found there. Valid as long as the class lives, which the
        // cache itself ensures, because a class's methods are all added before anything
        // can call them (METHOD instructions run straight after CLASS and INHERIT).
        macro_rules! call_cache {
            ($index:expr) => {{
                // SAFETY: INV-CODE: two words per constant; `frame` is the running frame.
                unsafe {
                    (*(*(*frame).closure).function)
                        .calls
                        .add(2 * $index as usize) as *mut *mut u8
                }
            }};
        }
        macro_rules! read_u16 {
            () => {{
                let hi = read_byte!() as usize;
                let lo = read_byte!() as usize;
                hi << 8 | lo
            }};
        }
        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                // SAFETY: INV-STACK.
                unsafe {
                    sp.write(v);
                    sp = sp.add(1);
                }
            }};
        }
        macro_rules! pop {
            () => {{
                // SAFETY: INV-STACK.
                unsafe {
                    sp = sp.sub(1);
                    *sp
                }
            }};
        }
        macro_rules! drop_top {
            () => {{
                // SAFETY: INV-STACK.
                sp = unsafe { sp.sub(1) };
            }};
        }
        macro_rules! peek {
            ($n:expr) => {{
                // SAFETY: INV-STACK.
                unsafe { *sp.sub(1 + $n) }
            }};
        }
        macro_rules! set_top {
            ($v:expr) => {{
                let v = $v;
                // SAFETY: INV-STACK.
                unsafe { *sp.sub(1) = v };
            }};
        }
        macro_rules! fail {
            ($msg:expr) => {{
                sync!();
                return Err(self.runtime_error($msg));
            }};
        }
        macro_rules! try_call {
            ($e:expr) => {{
                sync!();
                $e?;
                reload!();
            }};
        }
        // Calls `closure` with the `argc` arguments on top of the stack, keeping the new
        // frame in registers rather than reloading it (the common, error-free case).
        macro_rules! enter {
            ($closure:expr, $argc:expr) => {{
                let closure: *mut ObjClosure = $closure;
                let argc: usize = $argc;
                // SAFETY: INV-STACK: the callee and its arguments are the top values.
                let base = unsafe { sp.sub(argc + 1) };
                // SAFETY: as above; INV-LIVE: the callee is on the stack, or its class or
                // bound method is.
                if !unsafe { self.can_enter(closure, argc, base) } {
                    sync!();
                    return Err(self.call_error(closure, argc));
                }
                // SAFETY: `frame` is the caller's frame; `can_enter` said yes.
                unsafe {
                    (*frame).ip = ip;
                    frame = self.push_frame(closure, base);
                    ip = (*frame).ip;
                }
            }};
        }
        // The frame `hops` static links out from the running one.
        macro_rules! static_link {
            ($hops:expr) => {{
                let mut f = frame;
                for _ in 0..$hops {
                    // SAFETY: INV-LINK.
                    f = unsafe { (*f).env };
                }
                f
            }};
        }
        // Reads a hops operand; the frame it names.
        macro_rules! outer_frame {
            () => {{
                let hops = read_byte!();
                static_link!(hops)
            }};
        }
        macro_rules! binary_number {
            ($a:ident, $b:ident, $result:expr) => {{
                let $b = peek!(0);
                let $a = peek!(1);
                if !Value::both_numbers($a, $b) {
                    fail!(b"Operands must be numbers.");
                }
                let ($a, $b) = ($a.as_number(), $b.as_number());
                drop_top!();
                set_top!($result);
            }};
        }

        macro_rules! get_global {
            () => {{
                let (name, hint) = read_name!();
                // SAFETY: the globals table is a root; a slot it returns is live.
                match unsafe { (*self.st.globals).slot_hinted(name, hint) } {
                    // SAFETY: a value word of the live globals array.
                    Some(slot) => push!(unsafe { *slot }),
                    None => {
                        sync!();
                        return Err(self.error_with_name("Undefined variable '", name, "'."));
                    }
                }
            }};
        }
        // A constant operand (of a `_K` instruction).
        macro_rules! constant_operand {
            () => {{
                let index = read_byte!() as usize;
                // SAFETY: INV-CODE.
                unsafe { *(*frame).consts.add(index) }
            }};
        }
        // `binary_number!` with a constant right operand.
        macro_rules! binary_number_k {
            ($a:ident, $b:ident, $result:expr) => {{
                let $b = constant_operand!();
                let $a = peek!(0);
                if !Value::both_numbers($a, $b) {
                    fail!(b"Operands must be numbers.");
                }
                let ($a, $b) = ($a.as_number(), $b.as_number());
                set_top!($result);
            }};
        }

        // A comparison fused with the conditional jump after it: pops both operands (the
        // left one, for a constant right operand: `_k`), jumps when `$test` is false. The
        // type check comes before the jump's operand is read, so an error reports the
        // comparison's line, as the unfused pair would.
        macro_rules! compare_jump {
            ($a:ident, $b:ident, numbers, $test:expr) => {{
                let $b = peek!(0);
                let $a = peek!(1);
                if !Value::both_numbers($a, $b) {
                    fail!(b"Operands must be numbers.");
                }
                let ($a, $b) = ($a.as_number(), $b.as_number());
                compare_jump!(@jump $test);
            }};
            ($a:ident, $b:ident, values, $test:expr) => {{
                let $b = peek!(0);
                let $a = peek!(1);
                compare_jump!(@jump $test);
            }};
            ($a:ident, $b:ident, numbers_k, $test:expr) => {{
                let $b = constant_operand!();
                let $a = peek!(0);
                if !Value::both_numbers($a, $b) {
                    fail!(b"Operands must be numbers.");
                }
                let ($a, $b) = ($a.as_number(), $b.as_number());
                compare_jump!(@jump_k $test);
            }};
            ($a:ident, $b:ident, values_k, $test:expr) => {{
                let $b = constant_operand!();
                let $a = peek!(0);
                compare_jump!(@jump_k $test);
            }};
            (@jump_k $test:expr) => {{
                drop_top!();
                compare_jump!(@offset $test);
            }};
            (@jump $test:expr) => {{
                // SAFETY: INV-STACK: both operands are on the stack.
                sp = unsafe { sp.sub(2) };
                compare_jump!(@offset $test);
            }};
            (@offset $test:expr) => {{
                let offset = read_u16!();
                let holds: bool = $test;
                if !holds {
                    // SAFETY: INV-CODE: jumps land inside the code.
                    ip = unsafe { ip.add(offset) };
                }
            }};
        }

        // Replaces the instance on top of the stack with its property named by the next
        // operand: a field, or else a method bound to it.
        macro_rules! get_property {
            () => {{
                let (name, hint) = read_name!();
                let receiver = peek!(0);
                if !is_kind(receiver, Kind::Instance) {
                    fail!(b"Only instances have properties.");
                }
                let instance: *mut ObjInstance = receiver.as_ptr();
                // SAFETY: INV-LIVE: the receiver is on the stack, its class and value
                // array reachable from it.
                let class = unsafe { (*instance).class };
                // SAFETY: as above.
                let field = unsafe {
                    fields::slot_hinted(class, name, hint)
                        .and_then(|s| fields::value_slot(instance, s))
                        .map(|v| *v)
                        .filter(|&v| v != Value::EMPTY)
                };
                match field {
                    Some(v) => set_top!(v),
                    None => try_call!(self.bind_method(class, name)),
                }
            }};
        }

        // Ends the running frame with `$result`: closes its upvalues, and returns to the
        // caller's frame (or out of `run`, after the script's).
        macro_rules! return_with {
            ($result:expr) => {{
                let result: Value = $result;
                // SAFETY: `frame` is the running frame.
                let slots = unsafe { (*frame).slots };
                if self
                    .st
                    .open_upvalues
                    .last()
                    // SAFETY: open upvalues are live.
                    .is_some_and(|&u| unsafe { (*u).location } >= slots)
                {
                    self.close_upvalues(slots);
                }
                self.st.frame_count -= 1;
                if self.st.frame_count == 0 {
                    self.st.sp = self.st.stack;
                    return Ok(());
                }
                sp = slots;
                push!(result);
                // SAFETY: the caller's frame is below this one; INV-LIVE.
                unsafe {
                    frame = frame.sub(1);
                    ip = (*frame).ip;
                }
            }};
        }

        load_frame!();
        loop {
            match read_byte!() {
                op::CONSTANT => {
                    let index = read_byte!() as usize;
                    // SAFETY: INV-CODE.
                    push!(unsafe { *(*frame).consts.add(index) });
                }
                op::NIL => push!(Value::NIL),
                op::TRUE => push!(Value::TRUE),
                op::FALSE => push!(Value::FALSE),
                op::POP => {
                    drop_top!();
                }
                op::GET_LOCAL => {
                    let slot = read_byte!() as usize;
                    // SAFETY: INV-CODE: a local of the running frame.
                    push!(unsafe { *(*frame).slots.add(slot) });
                }
                op::SET_LOCAL => {
                    let slot = read_byte!() as usize;
                    let v = peek!(0);
                    // SAFETY: INV-CODE; a stack slot, not a heap word.
                    unsafe { *(*frame).slots.add(slot) = v };
                }
                op::GET_GLOBAL => get_global!(),
                op::POP_CONSTANT => {
                    let v = constant_operand!();
                    set_top!(v);
                }
                op::POP_NIL => set_top!(Value::NIL),
                op::POP_TRUE => set_top!(Value::TRUE),
                op::POP_FALSE => set_top!(Value::FALSE),
                op::POP_GET_LOCAL => {
                    let slot = read_byte!() as usize;
                    // SAFETY: INV-CODE: a local of the running frame.
                    set_top!(unsafe { *(*frame).slots.add(slot) });
                }
                op::POP_GET_GLOBAL => {
                    drop_top!();
                    get_global!();
                }
                op::DEFINE_GLOBAL => {
                    let name = read_string!();
                    sync!();
                    let globals = self.st.globals;
                    let v = peek!(0);
                    // SAFETY: the globals object is a root; the name is a constant, the
                    // value on the stack.
                    unsafe { self.set_in_table(globals, name, v) };
                    drop_top!();
                }
                op::SET_GLOBAL => {
                    let (name, hint) = read_name!();
                    let v = peek!(0);
                    // SAFETY: the globals table is a root.
                    match unsafe { (*self.st.globals).slot_hinted(name, hint) } {
                        // SAFETY: the value word of a live entry array.
                        Some(slot) => unsafe { self.heap.write_value(slot, v) },
                        None => {
                            sync!();
                            return Err(self.error_with_name("Undefined variable '", name, "'."));
                        }
                    }
                }
                op::GET_UPVALUE => {
                    let index = read_byte!() as usize;
                    // SAFETY: INV-CODE: the running closure has this upvalue; INV-LIVE.
                    push!(unsafe { *(**upvalue_slot((*frame).closure, index)).location });
                }
                op::SET_UPVALUE => {
                    let index = read_byte!() as usize;
                    // SAFETY: INV-CODE, INV-LIVE as above.
                    let u = unsafe { *upvalue_slot((*frame).closure, index) };
                    let v = peek!(0);
                    // SAFETY: the upvalue is live (the running closure holds it).
                    unsafe { self.set_upvalue(u, v) };
                }
                op::GET_OUTER => {
                    let outer = outer_frame!();
                    let slot = read_byte!() as usize;
                    // SAFETY: INV-CODE: a local of that frame, which is live (INV-LINK).
                    push!(unsafe { *(*outer).slots.add(slot) });
                }
                op::SET_OUTER => {
                    let outer = outer_frame!();
                    let slot = read_byte!() as usize;
                    let v = peek!(0);
                    // SAFETY: as for GET_OUTER; a stack slot takes a plain store.
                    unsafe { *(*outer).slots.add(slot) = v };
                }
                op::GET_OUTER_UPVALUE => {
                    let outer = outer_frame!();
                    let index = read_byte!() as usize;
                    // SAFETY: INV-CODE: that frame's closure has this upvalue; INV-LINK.
                    push!(unsafe { *(**upvalue_slot((*outer).closure, index)).location });
                }
                op::SET_OUTER_UPVALUE => {
                    let outer = outer_frame!();
                    let index = read_byte!() as usize;
                    // SAFETY: as for GET_OUTER_UPVALUE.
                    let u = unsafe { *upvalue_slot((*outer).closure, index) };
                    let v = peek!(0);
                    // SAFETY: as in SET_UPVALUE.
                    unsafe { self.set_upvalue(u, v) };
                }
                op::GET_PROPERTY => get_property!(),
                op::GET_LOCAL_PROPERTY => {
                    let slot = read_byte!() as usize;
                    // SAFETY: INV-STACK: a local of the running frame.
                    push!(unsafe { *(*frame).slots.add(slot) });
                    get_property!();
                }
                op::SET_PROPERTY => {
                    let (name, hint) = read_name!();
                    let target = peek!(1);
                    if !is_kind(target, Kind::Instance) {
                        fail!(b"Only instances have fields.");
                    }
                    let instance: *mut ObjInstance = target.as_ptr();
                    let value = peek!(0);
                    // A slot the instance has room for is stored in place; a new name or
                    // a slot past its room allocates.
                    // SAFETY: INV-LIVE: the instance is on the stack, its class reachable.
                    let slot = unsafe {
                        fields::slot_hinted((*instance).class, name, hint)
                            .and_then(|s| fields::value_slot(instance, s))
                    };
                    match slot {
                        // SAFETY: a value word of the instance's live value array.
                        Some(slot) => unsafe { self.heap.write_value(slot, value) },
                        None => {
                            sync!();
                            // SAFETY: the instance and the value are on the stack; the name
                            // is a constant.
                            unsafe {
                                self.heap
                                    .instance_set_new(&mut self.st, instance, name, value)
                            };
                        }
                    }
                    drop_top!();
                    set_top!(value);
                }
                op::GET_SUPER => {
                    let name = read_string!();
                    let superclass: *mut ObjClass = pop!().as_ptr();
                    // The superclass stays rooted by the `super` variable it was read from.
                    try_call!(self.bind_method(superclass, name));
                }
                op::EQUAL => {
                    let b = pop!();
                    set_top!(Value::bool(Value::equals(peek!(0), b)));
                }
                op::NOT_EQUAL => {
                    let b = pop!();
                    set_top!(Value::bool(!Value::equals(peek!(0), b)));
                }
                op::GREATER => binary_number!(a, b, Value::bool(a > b)),
                op::GREATER_EQUAL => binary_number!(a, b, Value::bool(not_less(a, b))),
                op::LESS => binary_number!(a, b, Value::bool(a < b)),
                op::LESS_EQUAL => binary_number!(a, b, Value::bool(not_greater(a, b))),
                op::ADD => {
                    let b = peek!(0);
                    let a = peek!(1);
                    if Value::both_numbers(a, b) {
                        drop_top!();
                        set_top!(Value::arith(add(a.as_number(), b.as_number())));
                    } else if is_kind(a, Kind::String) && is_kind(b, Kind::String) {
                        sync!();
                        self.concatenate();
                        sp = self.st.sp;
                    } else {
                        fail!(b"Operands must be two numbers or two strings.");
                    }
                }
                op::EQUAL_K => {
                    let b = constant_operand!();
                    set_top!(Value::bool(Value::equals(peek!(0), b)));
                }
                op::NOT_EQUAL_K => {
                    let b = constant_operand!();
                    set_top!(Value::bool(!Value::equals(peek!(0), b)));
                }
                op::GREATER_K => binary_number_k!(a, b, Value::bool(a > b)),
                op::GREATER_EQUAL_K => binary_number_k!(a, b, Value::bool(not_less(a, b))),
                op::LESS_K => binary_number_k!(a, b, Value::bool(a < b)),
                op::LESS_EQUAL_K => binary_number_k!(a, b, Value::bool(not_greater(a, b))),
                op::ADD_K => {
                    let b = constant_operand!();
                    let a = peek!(0);
                    if Value::both_numbers(a, b) {
                        set_top!(Value::arith(add(a.as_number(), b.as_number())));
                    } else if is_kind(a, Kind::String) && is_kind(b, Kind::String) {
                        // As ADD: both operands on the stack.
                        push!(b);
                        sync!();
                        self.concatenate();
                        sp = self.st.sp;
                    } else {
                        fail!(b"Operands must be two numbers or two strings.");
                    }
                }
                op::SUBTRACT_K => binary_number_k!(a, b, Value::arith(a - b)),
                op::MULTIPLY_K => binary_number_k!(a, b, Value::arith(mul(a, b))),
                op::DIVIDE_K => binary_number_k!(a, b, Value::arith(a / b)),
                op::SUBTRACT => binary_number!(a, b, Value::arith(a - b)),
                op::MULTIPLY => binary_number!(a, b, Value::arith(mul(a, b))),
                op::DIVIDE => binary_number!(a, b, Value::arith(a / b)),
                op::NOT => set_top!(Value::bool(peek!(0).is_falsey())),
                op::NEGATE => {
                    let v = peek!(0);
                    if !v.is_number() {
                        fail!(b"Operand must be a number.");
                    }
                    set_top!(Value::number(-v.as_number()));
                }
                op::PRINT => {
                    let v = pop!();
                    self.scratch.clear();
                    print_value(v, &mut self.scratch);
                    self.scratch.push(b'\n');
                    let _ = self.out.write_all(&self.scratch);
                }
                op::JUMP => {
                    let offset = read_u16!();
                    // SAFETY: INV-CODE: jumps land inside the code.
                    ip = unsafe { ip.add(offset) };
                }
                op::JUMP_IF_FALSE => {
                    let offset = read_u16!();
                    if peek!(0).is_falsey() {
                        // SAFETY: INV-CODE.
                        ip = unsafe { ip.add(offset) };
                    }
                }
                op::POP_JUMP_IF_FALSE => {
                    let offset = read_u16!();
                    if pop!().is_falsey() {
                        // SAFETY: INV-CODE.
                        ip = unsafe { ip.add(offset) };
                    }
                }
                op::EQUAL_JUMP => compare_jump!(a, b, values, Value::equals(a, b)),
                op::NOT_EQUAL_JUMP => compare_jump!(a, b, values, !Value::equals(a, b)),
                op::GREATER_JUMP => compare_jump!(a, b, numbers, a > b),
                op::GREATER_EQUAL_JUMP => compare_jump!(a, b, numbers, not_less(a, b)),
                op::LESS_JUMP => compare_jump!(a, b, numbers, a < b),
                op::LESS_EQUAL_JUMP => compare_jump!(a, b, numbers, not_greater(a, b)),
                op::LOOP => {
                    let offset = read_u16!();
                    // SAFETY: INV-CODE.
                    ip = unsafe { ip.sub(offset) };
                }
                op::POP_LOOP => {
                    drop_top!();
                    let offset = read_u16!();
                    // SAFETY: INV-CODE.
                    ip = unsafe { ip.sub(offset) };
                }
                op::EQUAL_K_JUMP => compare_jump!(a, b, values_k, Value::equals(a, b)),
                op::NOT_EQUAL_K_JUMP => compare_jump!(a, b, values_k, !Value::equals(a, b)),
                op::GREATER_K_JUMP => compare_jump!(a, b, numbers_k, a > b),
                op::GREATER_EQUAL_K_JUMP => compare_jump!(a, b, numbers_k, not_less(a, b)),
                op::LESS_K_JUMP => compare_jump!(a, b, numbers_k, a < b),
                op::LESS_EQUAL_K_JUMP => compare_jump!(a, b, numbers_k, not_greater(a, b)),
                op::CALL => {
                    let argc = read_byte!() as usize;
                    let callee = peek!(argc);
                    if is_kind(callee, Kind::Closure) {
                        enter!(callee.as_ptr(), argc);
                    } else if is_kind(callee, Kind::Class) {
                        // As `call_value` would, but `init` runs in registers.
                        sync!();
                        let init = self.instantiate(callee.as_ptr(), argc)?;
                        if !init.is_null() {
                            enter!(init, argc);
                        }
                    } else {
                        try_call!(self.call_value(callee, argc));
                    }
                }
                op::INVOKE => {
                    let index = read_byte!();
                    let argc = read_byte!() as usize;
                    let receiver = peek!(argc);
                    // The common case inline: an instance without a field of that name,
                    // calling a method of the class the cache names, or found and cached.
                    let mut method = std::ptr::null_mut::<ObjClosure>();
                    if is_kind(receiver, Kind::Instance) {
                        let instance: *mut ObjInstance = receiver.as_ptr();
                        let cache = call_cache!(index);
                        // SAFETY: INV-CODE: a string constant; INV-LIVE: the receiver is
                        // on the stack, its class live, the cache's words live (traced).
                        unsafe {
                            let name = string_constant((*frame).consts, index);
                            let class = (*instance).class;
                            // A field can shadow the method only in a class where a field
                            // took a method's name (`ObjClass::shadowing`).
                            if (*class).shadowing == 0 || fields::get(instance, name).is_none() {
                                if *cache == class as *mut u8 {
                                    method = *cache.add(1) as *mut ObjClosure;
                                } else if let Some(slot) = (*class)
                                    .methods
                                    .slot_hinted(name, &mut *(*frame).hints.add(index as usize))
                                {
                                    method = (*slot).as_ptr();
                                    self.heap.write_ptr(cache, class as *mut u8);
                                    self.heap.write_ptr(cache.add(1), method as *mut u8);
                                }
                            }
                        }
                    }
                    if method.is_null() {
                        // SAFETY: INV-CODE: a string constant.
                        let name = unsafe { string_constant((*frame).consts, index) };
                        try_call!(self.invoke(name, argc));
                    } else {
                        enter!(method, argc);
                    }
                }
                op::SUPER_INVOKE => {
                    let (name, hint) = read_name!();
                    let argc = read_byte!() as usize;
                    let superclass: *mut ObjClass = pop!().as_ptr();
                    // SAFETY: INV-LIVE: the superclass is a `super` variable's value.
                    match unsafe { (*superclass).methods.slot_hinted(name, hint).map(|s| *s) } {
                        Some(m) => enter!(m.as_ptr(), argc),
                        None => try_call!(self.invoke_from_class(superclass, name, argc)),
                    }
                }
                op::CALL_DIRECT => {
                    let argc = read_byte!() as usize;
                    let env = outer_frame!();
                    // INV-CODE: the callee is the direct function's compile-time closure.
                    enter!(peek!(argc).as_ptr(), argc);
                    // SAFETY: `frame` is the frame just pushed.
                    unsafe { (*frame).env = env };
                }
                op::CLOSURE => {
                    let index = read_byte!() as usize;
                    // SAFETY: INV-CODE: a function constant.
                    let function: *mut ObjFunction =
                        unsafe { (*(*frame).consts.add(index)).as_ptr() };
                    sync!();
                    let closure = self.heap.new_closure(&mut self.st, function);
                    push!(Value::object(closure));
                    // SAFETY: INV-LIVE.
                    let n = unsafe { (*function).upvalue_count };
                    for i in 0..n {
                        let descriptor = read_byte!();
                        let is_local = descriptor & 1 != 0;
                        let from = static_link!(descriptor >> 1);
                        let index = read_byte!() as usize;
                        let upvalue = if is_local {
                            self.st.sp = sp;
                            // SAFETY: INV-CODE: a local of that frame; INV-LINK.
                            self.capture_upvalue(unsafe { (*from).slots.add(index) })
                        } else {
                            // SAFETY: INV-CODE: an upvalue of that frame's closure.
                            unsafe { *upvalue_slot((*from).closure, index) }
                        };
                        // SAFETY: slot `i` of the new closure (pushed, so live); the
                        // upvalue is live (open list or enclosing closure).
                        unsafe { self.heap.write_ptr(upvalue_slot(closure, i), upvalue) };
                    }
                }
                op::CLOSE_UPVALUE => {
                    // SAFETY: INV-STACK.
                    self.close_upvalues(unsafe { sp.sub(1) });
                    drop_top!();
                }
                op::RETURN => {
                    let result = pop!();
                    return_with!(result);
                }
                op::RETURN_NIL => return_with!(Value::NIL),
                // SAFETY: `frame` is the running frame; slot 0 is its `this`.
                op::RETURN_THIS => return_with!(unsafe { *(*frame).slots }),
                op::CLASS => {
                    let name = read_string!();
                    sync!();
                    let class = self.heap.new_class(&mut self.st, name);
                    push!(Value::object(class));
                }
                op::INHERIT => {
                    let superclass = peek!(1);
                    if !is_kind(superclass, Kind::Class) {
                        fail!(b"Superclass must be a class.");
                    }
                    let superclass: *mut ObjClass = superclass.as_ptr();
                    let subclass: *mut ObjClass = peek!(0).as_ptr();
                    sync!();
                    // SAFETY: both classes are on the stack.
                    unsafe {
                        self.heap.table_add_all(
                            &mut self.st,
                            &raw mut (*superclass).methods,
                            &raw mut (*subclass).methods,
                        );
                        self.heap
                            .write_ptr(&raw mut (*subclass).init, (*superclass).init);
                    }
                    drop_top!();
                }
                op::METHOD => {
                    let name = read_string!();
                    let method = peek!(0);
                    let class: *mut ObjClass = peek!(1).as_ptr();
                    sync!();
                    // SAFETY: class and method are on the stack; the name is a constant.
                    unsafe {
                        self.set_in_table(&raw mut (*class).methods, name, method);
                        if name == self.st.init_string {
                            self.heap.write_ptr(&raw mut (*class).init, method.as_ptr());
                        }
                    }
                    drop_top!();
                }
                // SAFETY: INV-CODE: the compiler emits only the opcodes above. (Saying so
                // spares the dispatch a range check.)
                _ => unsafe { std::hint::unreachable_unchecked() },
            }
        }
    }
}
