//! The VM state outside the heap, and how it is reported to the collector.
//!
//! [`State`] is everything the interpreter holds that points into the heap: the value
//! stack, the call frames, the open upvalues, the globals and intern-table objects, the
//! `"init"` string, the chunks the compiler is still building, and `temps` (objects Rust
//! code holds across an allocation). It implements `minigo_gc::Roots`: every allocation
//! passes it to the mutator, so whichever allocation triggers a collection, the collector
//! starts from exactly these words. Values that are not objects are skipped here (the
//! collector would ignore them anyway; skipping saves a call per number).
//!
//! `clear_weak` is where interning becomes weak: strings that only the intern table knew
//! are dropped from it before the sweep frees them.

use minigo_gc::{Liveness, Roots, SampleStack, Tracer};

use super::chunk::ChunkBuilder;
use super::object::{ObjClosure, ObjString, ObjUpvalue};
use super::table::{Interner, Table};
use super::value::Value;

/// Call frames at most (clox's `FRAMES_MAX`): one more call is "Stack overflow.".
pub const FRAMES_MAX: usize = 64;
/// Value stack slots. clox has 64 * 256 and does not check them; a frame here may use up
/// to its function's `max_stack`, checked on every call, so give room for frames that use
/// more than 256 (255 locals and then temporaries).
pub const STACK_SLOTS: usize = FRAMES_MAX * 256 * 2;

/// One active call.
#[derive(Clone, Copy)]
pub struct CallFrame {
    pub closure: *mut ObjClosure,
    /// The next instruction (saved when the frame is not the running one).
    pub ip: *const u8,
    /// The frame's slot 0 on the value stack.
    pub slots: *mut Value,
    /// The function's constants (a copy, so that a return reloads them in one step).
    pub consts: *const Value,
    /// The function's probe hints (see `ObjFunction::hints`).
    pub hints: *mut usize,
    /// The static link of a direct function's frame (see `escape.rs`): the frame of the
    /// call that declared it, which is below this one while it runs. Null otherwise.
    pub env: *mut CallFrame,
}

impl CallFrame {
    /// The line of the instruction the frame is running (or calling from), and its
    /// function's name (`None`: the top-level script).
    ///
    /// # Safety
    /// INV-LIVE for the frame's closure and function, and `ip` lies within the function's
    /// code, whose line table has an entry per byte.
    pub unsafe fn line_and_name(&self) -> (u32, Option<&[u8]>) {
        // SAFETY: the caller's contract. `ip` is past the instruction being run, except in
        // a frame that has run none yet (then the first one's line).
        unsafe {
            let function = (*self.closure).function;
            let offset = (self.ip.offset_from((*function).code).max(1) as usize - 1)
                .min((*function).code_len.saturating_sub(1));
            let line = *(*function).lines.add(offset);
            let name = (!(*function).name.is_null()).then(|| ObjString::bytes((*function).name));
            (line, name)
        }
    }
}

/// The interpreter's roots.
pub struct State {
    /// The value stack: `STACK_SLOTS` values, never reallocated (frames and open upvalues
    /// point into it).
    pub stack: *mut Value,
    /// One past the top value.
    pub sp: *mut Value,
    pub frames: *mut CallFrame,
    pub frame_count: usize,
    /// Open upvalues, ordered by stack slot, lowest first.
    pub open_upvalues: Vec<*mut ObjUpvalue>,
    /// The globals table (a heap object).
    pub globals: *mut Table,
    /// The weak intern table (a heap object).
    pub strings: *mut Interner,
    pub init_string: *mut ObjString,
    /// Functions being compiled, outermost first.
    pub compiling: Vec<ChunkBuilder>,
    /// Objects held by Rust code across allocations.
    pub temps: Vec<Value>,
    /// Strings dropped from the intern table by collections so far.
    pub strings_dropped: u64,
    /// The program's file name, for the heap profile's frames.
    pub script: String,
}

impl State {
    pub fn new() -> State {
        let stack = Box::into_raw(vec![Value::NIL; STACK_SLOTS].into_boxed_slice()) as *mut Value;
        let frames = Box::into_raw(
            vec![
                CallFrame {
                    closure: std::ptr::null_mut(),
                    ip: std::ptr::null(),
                    slots: stack,
                    consts: std::ptr::null(),
                    hints: std::ptr::null_mut(),
                    env: std::ptr::null_mut(),
                };
                FRAMES_MAX
            ]
            .into_boxed_slice(),
        ) as *mut CallFrame;
        State {
            stack,
            sp: stack,
            frames,
            frame_count: 0,
            open_upvalues: Vec::new(),
            globals: std::ptr::null_mut(),
            strings: std::ptr::null_mut(),
            init_string: std::ptr::null_mut(),
            compiling: Vec::new(),
            temps: Vec::new(),
            strings_dropped: 0,
            script: String::from("script"),
        }
    }

    /// The end of the value stack.
    pub fn stack_end(&self) -> *mut Value {
        // SAFETY: one past the end of the stack allocation.
        unsafe { self.stack.add(STACK_SLOTS) }
    }

    /// The values currently on the stack.
    pub fn stack_values(&self) -> &[Value] {
        // SAFETY: `sp` is within the stack allocation, at or above its base, and every
        // slot below it was written.
        unsafe { std::slice::from_raw_parts(self.stack, self.sp.offset_from(self.stack) as usize) }
    }

    /// The active frames, outermost first.
    pub fn frames(&self) -> &[CallFrame] {
        // SAFETY: `frame_count <= FRAMES_MAX` frames are initialised.
        unsafe { std::slice::from_raw_parts(self.frames, self.frame_count) }
    }

    /// Empties the stack and the frames (after a runtime error).
    pub fn reset(&mut self) {
        self.sp = self.stack;
        self.frame_count = 0;
        self.open_upvalues.clear();
    }
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // SAFETY: both were made by `Box::into_raw` of boxed slices of these lengths in
        // `new`, and are freed only here.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.stack,
                STACK_SLOTS,
            )));
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.frames,
                FRAMES_MAX,
            )));
        }
    }
}

#[inline(always)]
fn mark_value(t: &mut Tracer<'_>, v: Value) {
    if v.is_object() {
        t.mark(v.bits() as usize);
    }
}

impl Roots for State {
    fn trace(&mut self, t: &mut Tracer<'_>) {
        for &v in self.stack_values() {
            mark_value(t, v);
        }
        // A bound method's frame has the receiver in slot 0: its closure is held only here.
        for f in self.frames() {
            t.mark_ptr(f.closure);
        }
        for &u in &self.open_upvalues {
            t.mark_ptr(u);
        }
        t.mark_ptr(self.globals);
        t.mark_ptr(self.strings);
        t.mark_ptr(self.init_string);
        for c in &self.compiling {
            t.mark_ptr(c.name);
            for &v in &c.constants {
                mark_value(t, v);
            }
        }
        for &v in &self.temps {
            mark_value(t, v);
        }
    }

    /// The heap profile names Lox functions and lines, innermost call first, not the
    /// interpreter's Rust frames. An allocation outside every Lox frame is the compiler's,
    /// `(compile)`, or the interpreter's own (its natives' names), `(vm)`.
    fn sample_stack(&mut self, stack: &mut SampleStack) {
        for f in self.frames().iter().rev() {
            // SAFETY: INV-LIVE for the frames' closures and their functions; the running
            // frame's `ip` is synced before anything that allocates, and every frame's
            // `ip` lies within its function's code.
            let (line, name) = unsafe { f.line_and_name() };
            let name = name.map_or("script".into(), String::from_utf8_lossy);
            stack.push(&name, &self.script, line);
        }
        if stack.is_empty() {
            let what = if self.compiling.is_empty() {
                "(vm)"
            } else {
                "(compile)"
            };
            stack.push(what, &self.script, 0);
        }
    }

    fn clear_weak(&mut self, live: &Liveness<'_>) {
        if !self.strings.is_null() {
            // SAFETY: called by the collector between mark and sweep; the interner object
            // is a root, so it and its slot array are live.
            self.strings_dropped += unsafe { (*self.strings).clear_dead(live) } as u64;
        }
    }
}
