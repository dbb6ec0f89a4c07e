//! Lox values: one 64-bit word each, encoded so that the collector can treat every value
//! word as a pointer word and still be precise.
//!
//! The encoding is JavaScriptCore's "pointer-first" NaN-boxing rather than clox's
//! "double-first" one:
//!
//! ```text
//! 0x0000_0000_0000_0000          never a Lox value (an empty table slot)
//! 0x0000_0000_0000_0002 / 6 / 7  nil / false / true
//! 0x0000_xxxx_xxxx_xxx0          an object: the heap address itself, untagged
//! 0x0002_0000_0000_0000 and up   a number: its IEEE bits plus 2^49
//! ```
//!
//! An object value *is* the object's address, so a value word in a heap object can carry
//! a pointer bit in its layout and the marker reads it as it reads any pointer. Every
//! other value is a word no heap can hold: immediates are below the first page, numbers
//! are at or above 2^49, and heaps are mapped below 2^47 (checked when a VM starts, see
//! `heap::LoxHeap::new`). The collector ignores such words (`Tracer::mark` and the
//! marker skip addresses outside the heap), which is the precise use of `Mutator::write`:
//! "null, a heap object of this heap, or a word outside every heap", so that verify mode
//! can check every pointer word.
//! clox's encoding puts tag bits on top of object pointers, which the marker could not
//! follow without a decoding hook.
//!
//! The price is one integer add or subtract per arithmetic operand, and NaN
//! canonicalisation: the only doubles whose biased bits would wrap into pointer range are
//! NaNs with the top 15 bits set, and [`Value::number`] replaces those by the standard NaN.

use std::fmt::Write as _;

/// Added to a double's bits so that no number looks like an address (JSC's
/// `DoubleEncodeOffset`).
const DOUBLE_OFFSET: u64 = 1 << 49;
/// Bits that are zero in every object value: everything at or above 2^49, and the low
/// three (objects are 8-aligned; immediates set bit 1).
const NOT_OBJECT: u64 = !(DOUBLE_OFFSET - 1) | 7;
/// Doubles at or above this would wrap around to small words when biased: negative NaNs
/// with payload bits 49..51 all set. Hardware never makes them, but nothing rules them out.
const WRAPPING_NANS: u64 = 0u64.wrapping_sub(DOUBLE_OFFSET);
const CANONICAL_NAN: u64 = 0x7ff8_0000_0000_0000;

const NIL_BITS: u64 = 2;
const FALSE_BITS: u64 = 6;
const TRUE_BITS: u64 = 7;

/// A Lox value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Value(u64);

impl Value {
    pub const NIL: Value = Value(NIL_BITS);
    pub const FALSE: Value = Value(FALSE_BITS);
    pub const TRUE: Value = Value(TRUE_BITS);
    /// The zero word: not a Lox value; marks an empty table slot.
    pub const EMPTY: Value = Value(0);

    /// A number.
    #[inline(always)]
    pub fn number(n: f64) -> Value {
        let bits = n.to_bits();
        let bits = if bits >= WRAPPING_NANS {
            CANONICAL_NAN
        } else {
            bits
        };
        Value(bits.wrapping_add(DOUBLE_OFFSET))
    }

    /// The result of `+`, `-`, `*` or `/` on two Lox numbers, without [`Value::number`]'s
    /// NaN check, which sits on the arithmetic's critical path. It cannot be needed: the
    /// only NaNs Lox values hold are the canonical one and the hardware's default NaN
    /// (`0xfff8...` on x86-64, `0x7ff8...` on AArch64), since literals and `clock()` are
    /// never NaN and arithmetic makes only the default NaN or passes an operand's quiet NaN
    /// through unchanged. None of those has the top 15 bits set.
    #[inline(always)]
    pub fn arith(n: f64) -> Value {
        let bits = n.to_bits();
        debug_assert!(
            bits < WRAPPING_NANS,
            "arithmetic made a wrapping NaN: {bits:#x}"
        );
        Value(bits.wrapping_add(DOUBLE_OFFSET))
    }

    /// A boolean.
    #[inline(always)]
    pub fn bool(b: bool) -> Value {
        Value(FALSE_BITS | b as u64)
    }

    /// An object value: the address of a heap object (8-aligned, non-null, below 2^49).
    #[inline(always)]
    pub fn object<T>(p: *mut T) -> Value {
        debug_assert!(p as u64 & NOT_OBJECT == 0 && !p.is_null());
        Value(p as u64)
    }

    /// The raw word, as it is stored in heap objects and reported to the collector.
    #[inline(always)]
    pub fn bits(self) -> u64 {
        self.0
    }

    #[inline(always)]
    pub fn is_number(self) -> bool {
        self.0 >= DOUBLE_OFFSET
    }

    /// Both are numbers (one comparison: the smaller must be).
    #[inline(always)]
    pub fn both_numbers(a: Value, b: Value) -> bool {
        a.0.min(b.0) >= DOUBLE_OFFSET
    }

    #[inline(always)]
    pub fn as_number(self) -> f64 {
        f64::from_bits(self.0.wrapping_sub(DOUBLE_OFFSET))
    }

    #[inline(always)]
    pub fn is_nil(self) -> bool {
        self.0 == NIL_BITS
    }

    #[inline(always)]
    pub fn is_bool(self) -> bool {
        self.0 | 1 == TRUE_BITS
    }

    /// `nil` and `false` are falsey; everything else is truthy.
    #[inline(always)]
    pub fn is_falsey(self) -> bool {
        self.0 | 4 == FALSE_BITS
    }

    /// One comparison: immediates are below 8 and numbers at or above 2^49, so every
    /// word in between is an object's (8-aligned) address.
    #[inline(always)]
    pub fn is_object(self) -> bool {
        self.0.wrapping_sub(8) < DOUBLE_OFFSET - 8
    }

    /// The object's address (only meaningful when [`Value::is_object`]).
    #[inline(always)]
    pub fn as_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// Lox's `==`: numbers by IEEE equality (NaN is unequal to itself, -0 equals 0),
    /// everything else by identity (strings are interned).
    #[inline(always)]
    pub fn equals(a: Value, b: Value) -> bool {
        if Value::both_numbers(a, b) {
            a.as_number() == b.as_number()
        } else {
            a.0 == b.0
        }
    }
}

/// Appends `n` as C's `printf("%g", n)` prints it (glibc: "-nan" for a negative NaN).
pub fn format_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str(if n.is_sign_negative() { "-nan" } else { "nan" });
        return;
    }
    if n.is_infinite() {
        out.push_str(if n < 0.0 { "-inf" } else { "inf" });
        return;
    }
    if n == n.trunc() && n.abs() < 1e6 {
        if n == 0.0 && n.is_sign_negative() {
            out.push('-');
        }
        let _ = write!(out, "{}", n as i64);
        return;
    }
    // %g: the exponent X that %e with precision P-1 = 5 would print decides the style.
    let sci = format!("{n:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` prints a decimal exponent");
    if !(-4..6).contains(&exp) {
        out.push_str(strip_zeros(mantissa));
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else {
        let fixed = format!("{:.*}", (5 - exp) as usize, n);
        out.push_str(strip_zeros(&fixed));
    }
}

/// Drops trailing zeros after a decimal point, and the point if nothing follows it.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(n: f64) -> String {
        let mut s = String::new();
        format_number(n, &mut s);
        s
    }

    #[test]
    fn prints_like_printf_g() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (-3.0, "-3"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (123456.0, "123456"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1234567.0, "1.23457e+06"),
            (123456.7, "123457"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.0 / 3.0, "0.333333"),
            (2.0 / 3.0, "0.666667"),
            (1e100, "1e+100"),
            (-1.5e-7, "-1.5e-07"),
            (9227465.0, "9.22746e+06"),
            (9227475.0, "9.22748e+06"),
            (999999.5, "1e+06"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(n, want) in cases {
            assert_eq!(g(n), want, "{n:e}");
        }
        assert_eq!(g(f64::from_bits(0x7ff8_0000_0000_0000)), "nan");
        assert_eq!(g(f64::from_bits(0xfff8_0000_0000_0000)), "-nan");
    }

    #[test]
    fn encoding_keeps_kinds_apart() {
        for n in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::INFINITY,
        ] {
            let v = Value::number(n);
            assert!(v.is_number() && !v.is_object() && !v.is_nil() && !v.is_bool());
            assert_eq!(v.as_number().to_bits(), n.to_bits());
        }
        let nasty = f64::from_bits(u64::MAX);
        let v = Value::number(nasty);
        assert!(
            v.is_number() && v.as_number().is_nan(),
            "canonicalised, still a number"
        );
        for v in [Value::NIL, Value::TRUE, Value::FALSE] {
            assert!(!v.is_number() && !v.is_object());
        }
        assert!(Value::NIL.is_falsey() && Value::FALSE.is_falsey());
        assert!(!Value::TRUE.is_falsey() && !Value::number(0.0).is_falsey());
        assert!(Value::TRUE.is_bool() && Value::FALSE.is_bool() && !Value::NIL.is_bool());
        let p = 0x7f12_3456_7890usize as *mut u8;
        let o = Value::object(p);
        assert!(o.is_object() && !o.is_number() && !o.is_falsey());
        assert_eq!(o.bits(), p as u64, "an object value is its address");
        assert!(!Value::EMPTY.is_object());
        assert!(Value::equals(Value::number(0.0), Value::number(-0.0)));
        let nan = Value::number(f64::NAN);
        assert!(!Value::equals(nan, nan));
    }

    /// `Value::arith` skips the NaN check on the grounds that arithmetic on Lox numbers
    /// never makes a wrapping NaN: try every way Lox has to make a NaN, and NaN operands
    /// (black-boxed, so the hardware computes them, not the constant folder).
    #[test]
    fn arithmetic_never_makes_a_wrapping_nan() {
        use std::hint::black_box as b;
        let inf = f64::INFINITY;
        let made = [
            b(0.0) / b(0.0),
            b(inf) - b(inf),
            b(inf) * b(0.0),
            b(-inf) + b(inf),
        ];
        let mut nans = made.to_vec();
        for n in made {
            let v = Value::number(n).as_number();
            let neg = Value::number(-v).as_number();
            nans.extend([
                b(v) + b(1.0),
                b(1.0) - b(v),
                b(neg) * b(2.0),
                b(neg) / b(neg),
            ]);
        }
        for n in nans {
            assert!(n.is_nan());
            assert!(n.to_bits() < WRAPPING_NANS, "{:#x}", n.to_bits());
            assert!(Value::arith(n).is_number());
        }
    }
}
