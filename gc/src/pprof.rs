//! The heap profile as `go tool pprof` reads it: google/pprof's `profile.proto`,
//! gzip-compressed, shaped as Go's `runtime/pprof` writes a heap profile
//! (`writeHeapProto`).
//!
//! 1. Each published record ([`MemProfileRecord`]) becomes one sample with Go's four
//!    values — `alloc_objects/count`, `alloc_space/bytes`, `inuse_objects/count`,
//!    `inuse_space/bytes` — scaled by Go's unsampling rule (`scaleHeapSample`): an object
//!    of `s` bytes was sampled with probability `1 - exp(-s / rate)`, so each sampled one
//!    stands for `1 / (1 - exp(-s / rate))` objects. The sample carries Go's numeric label
//!    `bytes` (the object size).
//! 2. Its stack becomes locations, leaf first. Return addresses are symbolized here, from
//!    the binary's own debug information (function, file, line; one `Line` per inlined
//!    frame, callee first), and given the executable mapping they fall in, read from
//!    `/proc/self/maps`; the profile needs no binary to be read. Frames the embedder named
//!    become locations of their own with no address.
//! 3. Leading frames inside minigo (the allocator, the collector, the unwinder) are
//!    dropped, as Go drops leading `runtime.*` frames; so is everything below the first
//!    user frame's callers that are the runtime again (a goroutine's start, the process's
//!    entry). A stack that would be left empty is kept whole.
//!
//! The message types are in [`proto`], so that tests and tools decode with the very
//! definitions the writer encodes with.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use crate::mprof::{Frame, MemProfileRecord};

/// google/pprof's `proto/profile.proto` (package `perftools.profiles`), the fields a heap
/// profile uses, with their field numbers.
pub mod proto {
    /// A whole profile.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        /// What each sample value measures, in order.
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        /// The samples.
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        /// The executable mappings the locations' addresses fall in.
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        /// The locations the samples name.
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        /// The functions the locations' lines name.
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        /// Every string; entry 0 is "".
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        /// When the profile was taken, in nanoseconds since the Unix epoch.
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        /// What `period` measures.
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        /// The sampling period (the heap profile: the rate in bytes).
        #[prost(int64, tag = "12")]
        pub period: i64,
        /// The sample type pprof shows unless told otherwise (a string index).
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    /// A type and unit, both string indices.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        /// The type's name (`inuse_space`).
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        /// Its unit (`bytes`).
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    /// One stack's values.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        /// Location ids, leaf first.
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        /// One value per sample type.
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        /// Labels.
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    /// A sample's label: a string or a number.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        /// The key (string index).
        #[prost(int64, tag = "1")]
        pub key: i64,
        /// A string value (string index), or 0.
        #[prost(int64, tag = "2")]
        pub str: i64,
        /// A numeric value.
        #[prost(int64, tag = "3")]
        pub num: i64,
        /// The numeric value's unit (string index).
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    /// A mapped file of code.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        /// Nonzero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// First address mapped.
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        /// One past the last.
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        /// The file offset mapped at `memory_start`.
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        /// The file (string index).
        #[prost(int64, tag = "5")]
        pub filename: i64,
        /// Its build id (string index).
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        /// The locations in it are symbolized: functions, ...
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        /// ... file names, ...
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        /// ... line numbers ...
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        /// ... and inlined frames.
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    /// A code address, and the source lines it is in.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        /// Nonzero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// Its mapping, or 0.
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        /// The address, or 0 for a frame that has none.
        #[prost(uint64, tag = "3")]
        pub address: u64,
        /// Inlined callee first, caller last.
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        /// Whether several functions were folded into it.
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    /// A function and line.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        /// The function's id.
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        /// The line number.
        #[prost(int64, tag = "2")]
        pub line: i64,
        /// The column, if known.
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    /// A function.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        /// Nonzero id.
        #[prost(uint64, tag = "1")]
        pub id: u64,
        /// Its name (string index).
        #[prost(int64, tag = "2")]
        pub name: i64,
        /// Its name as the system knows it (string index).
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        /// Its source file (string index).
        #[prost(int64, tag = "4")]
        pub filename: i64,
        /// Its first line.
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// Go's `scaleHeapSample`: the estimated objects and bytes that `count` samples of objects
/// of `size` bytes stand for at sampling rate `rate`.
pub fn scale_heap_sample(count: u64, size: u64, rate: usize) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count as i64, (count * size) as i64);
    }
    let scale = 1.0 / (1.0 - (-(size as f64) / rate as f64).exp());
    (
        (count as f64 * scale) as i64,
        ((count * size) as f64 * scale) as i64,
    )
}

/// Writes `records`, sampled at `rate`, as a gzip-compressed heap profile.
pub fn write_heap_profile(
    records: &[MemProfileRecord],
    rate: usize,
    w: impl Write,
) -> io::Result<()> {
    let profile = build_heap_profile(records, rate);
    let mut gz = GzEncoder::new(w, Compression::default());
    gz.write_all(&profile.encode_to_vec())?;
    gz.finish()?.flush()
}

/// One source line of a frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SourceLine {
    function: String,
    file: String,
    line: u32,
}

/// The source directories of minigo's own crates, as their debug information names them.
fn minigo_dirs() -> [String; 3] {
    let gc = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = gc.parent().unwrap_or(gc);
    ["gc", "alloc-core", "runtime"].map(|c| format!("{}/{c}/src/", root.display()))
}

/// Whether a line is in the source of minigo itself or of the unwinder. Told by file, not
/// by function name: with line-table-only debug information a name has no module path.
fn is_internal(l: &SourceLine, dirs: &[String; 3]) -> bool {
    let f = &l.file;
    dirs.iter().any(|d| f.starts_with(d.as_str()))
        || [
            "/minigo-gc-",
            "/minigo-alloc-core-",
            "/minigo-runtime-",
            "/backtrace-",
        ]
        .iter()
        .any(|c| f.contains(c))
}

/// Where the user's frames end: what runs a goroutine, a thread or the process.
fn is_boundary(l: &SourceLine, dirs: &[String; 3]) -> bool {
    const ENTRY: &[&str] = &[
        "main",
        "_start",
        "__libc_start_main",
        "__libc_start_call_main",
        "start_thread",
        "clone",
        "clone3",
    ];
    let f = &l.file;
    is_internal(l, dirs)
        || f.contains("/corosensei-")
        || [
            "library/std/src/rt.rs",
            "library/std/src/sys/",
            "library/std/src/thread/",
        ]
        .iter()
        .any(|c| f.contains(c))
        || ENTRY.contains(&l.function.as_str())
}

/// Closure-calling glue between the user's outermost frame and its boundary.
fn is_glue(l: &SourceLine) -> bool {
    [
        "library/core/src/ops/function.rs",
        "library/alloc/src/boxed.rs",
        "library/core/src/panic/unwind_safe.rs",
        "library/std/src/panicking.rs",
        "library/std/src/panic.rs",
    ]
    .iter()
    .any(|c| l.file.contains(c))
}

/// The source lines of one return address (callee first), or none if it has no symbol.
fn symbolize(pc: usize, leaf: bool) -> Vec<SourceLine> {
    let mut lines = Vec::new();
    // A return address is one past its call; the call is what ran.
    let addr = if leaf { pc } else { pc.saturating_sub(1) };
    backtrace::resolve(addr as *mut std::ffi::c_void, |sym| {
        let function = match sym.name() {
            Some(n) => format!("{n:#}"),
            None => format!("{pc:#x}"),
        };
        let file = sym
            .filename()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        lines.push(SourceLine {
            function,
            file,
            line: sym.lineno().unwrap_or(0),
        });
    });
    lines
}

/// A frame ready for the profile: its address (0 for a named frame) and lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Resolved {
    address: u64,
    lines: Vec<SourceLine>,
}

/// Resolves and trims one stack (see the module comment).
fn resolve_stack(
    stack: &[Frame],
    cache: &mut HashMap<(usize, bool), Vec<SourceLine>>,
    dirs: &[String; 3],
) -> Vec<Resolved> {
    let mut frames: Vec<Resolved> = stack
        .iter()
        .enumerate()
        .map(|(i, f)| match f {
            Frame::Pc(pc) => Resolved {
                address: *pc as u64,
                lines: cache
                    .entry((*pc, i == 0))
                    .or_insert_with(|| symbolize(*pc, i == 0))
                    .clone(),
            },
            Frame::Named {
                function,
                file,
                line,
            } => Resolved {
                address: 0,
                lines: vec![SourceLine {
                    function: function.to_string(),
                    file: file.to_string(),
                    line: *line,
                }],
            },
        })
        .collect();
    if stack.iter().all(|f| matches!(f, Frame::Named { .. })) {
        return frames;
    }
    let whole = frames.clone();
    let is_internal = |l: &SourceLine| is_internal(l, dirs);
    let is_boundary = |l: &SourceLine| is_boundary(l, dirs);
    // Leading frames inside minigo (the unwinder's C frames may come before them), and
    // inlined minigo lines at the top of the first user frame.
    let mut seen = false;
    let Some(first) = frames.iter().position(|f| {
        seen |= f.lines.iter().any(is_internal);
        seen && f.lines.last().is_some_and(|l| !is_internal(l))
    }) else {
        return whole;
    };
    frames.drain(..first);
    let keep_from = frames[0]
        .lines
        .iter()
        .position(|l| !is_internal(l))
        .unwrap_or(0);
    frames[0].lines.drain(..keep_from);
    // Then the user's frames, up to where the runtime (or a thread, or the process)
    // called them, less the glue there: closure-calling frames, and the runtime's own
    // wrapper closures (`run` calls main through one that makes the `Mutation`).
    // A frame whose outermost line is the boundary may hold user lines inlined into it
    // (the user's `main` into `run`'s wrapper): it is kept, less its boundary lines.
    let glue_or_internal = |l: &SourceLine| is_glue(l) || is_internal(l);
    let mut end = frames.len();
    if let Some(i) = frames
        .iter()
        .position(|f| f.lines.last().is_some_and(is_boundary))
    {
        let user = frames[i]
            .lines
            .iter()
            .any(|l| !is_boundary(l) && !is_glue(l));
        end = if user { i + 1 } else { i };
    }
    while end > 1 && frames[end - 1].lines.iter().all(glue_or_internal) {
        end -= 1;
    }
    frames.truncate(end);
    if let Some(last) = frames.last_mut() {
        while last.lines.len() > 1
            && last
                .lines
                .last()
                .is_some_and(|l| glue_or_internal(l) || is_boundary(l))
        {
            last.lines.pop();
        }
    }
    if frames.is_empty() {
        whole
    } else {
        frames
    }
}

/// An executable mapping of this process.
struct ExecMapping {
    start: u64,
    limit: u64,
    offset: u64,
    file: String,
}

/// The executable mappings of this process (`/proc/self/maps`), empty where there is none.
fn exec_mappings() -> Vec<ExecMapping> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let range = it.next()?;
            let perms = it.next()?;
            let offset = u64::from_str_radix(it.next()?, 16).ok()?;
            let _dev = it.next()?;
            let _inode = it.next()?;
            let file = it.collect::<Vec<_>>().join(" ");
            if !perms.contains('x') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(ExecMapping {
                start: u64::from_str_radix(a, 16).ok()?,
                limit: u64::from_str_radix(b, 16).ok()?,
                offset,
                file,
            })
        })
        .collect()
}

/// Interns strings into a profile's string table.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The heap profile of `records` sampled at `rate` (see the module comment).
pub fn build_heap_profile(records: &[MemProfileRecord], rate: usize) -> proto::Profile {
    use proto::*;
    let mut strings = Strings::new();
    let vt = |s: &mut Strings, t: &str, u: &str| ValueType {
        r#type: s.id(t),
        unit: s.id(u),
    };
    let sample_type = vec![
        vt(&mut strings, "alloc_objects", "count"),
        vt(&mut strings, "alloc_space", "bytes"),
        vt(&mut strings, "inuse_objects", "count"),
        vt(&mut strings, "inuse_space", "bytes"),
    ];
    let period_type = Some(vt(&mut strings, "space", "bytes"));
    let default_sample_type = strings.id("inuse_space");

    let maps = exec_mappings();
    let mut used_maps = vec![false; maps.len()];
    let mut symbols = HashMap::new();
    let dirs = minigo_dirs();
    let mut locations: HashMap<Resolved, u64> = HashMap::new();
    let mut location = Vec::new();
    let mut functions: HashMap<(String, String), u64> = HashMap::new();
    let mut function = Vec::new();
    let mut sample = Vec::new();
    let bytes_key = strings.id("bytes");

    for r in records {
        let mut ids = Vec::new();
        for f in resolve_stack(&r.stack, &mut symbols, &dirs) {
            let next = locations.len() as u64 + 1;
            let id = *locations.entry(f.clone()).or_insert(next);
            ids.push(id);
            if id != next {
                continue;
            }
            let mapping_id = match maps
                .iter()
                .position(|m| f.address != 0 && (m.start..m.limit).contains(&f.address))
            {
                Some(i) => {
                    used_maps[i] = true;
                    i as u64 + 1
                }
                None => 0,
            };
            let line = f
                .lines
                .iter()
                .map(|l| {
                    let next = functions.len() as u64 + 1;
                    let fid = *functions
                        .entry((l.function.clone(), l.file.clone()))
                        .or_insert(next);
                    if fid == next {
                        let name = strings.id(&l.function);
                        function.push(Function {
                            id: fid,
                            name,
                            system_name: name,
                            filename: strings.id(&l.file),
                            start_line: 0,
                        });
                    }
                    Line {
                        function_id: fid,
                        line: l.line as i64,
                        column: 0,
                    }
                })
                .collect();
            location.push(Location {
                id,
                mapping_id,
                address: f.address,
                line,
                is_folded: false,
            });
        }
        let (ao, ab) = scale_heap_sample(r.alloc_objects, r.size, rate);
        let (io, ib) = scale_heap_sample(r.inuse_objects(), r.size, rate);
        sample.push(Sample {
            location_id: ids,
            value: vec![ao, ab, io, ib],
            label: vec![Label {
                key: bytes_key,
                str: 0,
                num: r.size as i64,
                num_unit: 0,
            }],
        });
    }

    // pprof takes the first mapping for the main binary: keep the executable's first
    // mapping first even if no location is in it (an interpreter's profile).
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok())
        .map(|p| p.display().to_string());
    if let Some(i) = maps.iter().position(|m| Some(&m.file) == exe.as_ref()) {
        used_maps[i] = true;
    }
    let mut order: Vec<usize> = (0..maps.len()).filter(|&i| used_maps[i]).collect();
    order.sort_by_key(|&i| Some(&maps[i].file) != exe.as_ref());
    let mapping = order
        .into_iter()
        .map(|i| (i, &maps[i]))
        .map(|(i, m)| Mapping {
            id: i as u64 + 1,
            memory_start: m.start,
            memory_limit: m.limit,
            file_offset: m.offset,
            filename: strings.id(&m.file),
            build_id: 0,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        })
        .collect();
    Profile {
        sample_type,
        sample,
        mapping,
        location,
        function,
        string_table: strings.table,
        time_nanos: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64),
        period_type,
        period: rate as i64,
        default_sample_type,
    }
}
