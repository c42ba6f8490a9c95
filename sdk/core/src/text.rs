//! Small string helpers for code that ships to the browser.
//!
//! std's `format!`, `to_string`, `parse`, `join` and substring search are
//! each a few hundred bytes to a few kilobytes of wasm (the formatting
//! machinery, a two-way string searcher, the panic messages of string
//! slicing). The SDK needs only these few operations, so it writes them
//! out: none of them can panic. The searching, splitting and joining live in
//! [`waymark_wire::text`], which the URL hygiene there shares with the
//! collector; the numbers are here.

use crate::prelude::*;

pub use waymark_wire::text::{concat, join, parts, split_at};

/// Lowercase hexadecimal digits by value.
pub const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `n` in decimal.
pub fn push_u64(out: &mut String, n: u64) {
    if n >= 10 {
        push_u64(out, n / 10);
    }
    // `n % 10` is a single digit.
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// Appends `n` in decimal, with a `-` when negative.
pub fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// A decimal number as `str::parse::<u64>` reads it: an optional `+`, then
/// only ASCII digits.
pub fn parse_u64(text: &str) -> Option<u64> {
    digits(text.strip_prefix('+').unwrap_or(text))
}

/// A decimal number as `str::parse::<u32>` reads it.
pub fn parse_u32(text: &str) -> Option<u32> {
    u32::try_from(parse_u64(text)?).ok()
}

/// A decimal number as `str::parse::<i64>` reads it: an optional `+` or
/// `-`, then only ASCII digits.
pub fn parse_i64(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(magnitude) => 0_i64.checked_sub_unsigned(digits(magnitude)?),
        None => i64::try_from(parse_u64(text)?).ok(),
    }
}

/// One or more ASCII digits, without overflow.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.bytes().try_fold(0_u64, |n, byte| {
        let digit = char::from(byte).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Removes the items at positions `from..to` (clamped to the vector), like
/// `Vec::drain(from..to)`, and returns how many went. `retain` cannot
/// panic, so no index-checking code and messages ship with it.
pub fn remove_range<T>(items: &mut Vec<T>, from: usize, to: usize) -> usize {
    let before = items.len();
    let mut index = 0;
    items.retain(|_| {
        index += 1;
        !(from < index && index <= to)
    });
    before - items.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decimal(n: i64) -> String {
        let mut out = String::new();
        push_i64(&mut out, n);
        out
    }

    #[test]
    fn writes_decimals() {
        for n in [0, 7, 10, 1_700_000_000_000, -1, -20_000, i64::MIN, i64::MAX] {
            assert_eq!(decimal(n), n.to_string());
        }
        let mut out = "x".to_owned();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, format!("x{}", u64::MAX));
    }

    #[test]
    fn parses_decimals_as_std_does() {
        for text in [
            "",
            "+",
            "-",
            "0",
            "+0",
            "-0",
            "007",
            "1x",
            " 1",
            "+-1",
            "-+1",
            "٣",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "4294967296",
        ] {
            assert_eq!(parse_u64(text), text.parse().ok(), "u64 {text:?}");
            assert_eq!(parse_u32(text), text.parse().ok(), "u32 {text:?}");
            assert_eq!(parse_i64(text), text.parse().ok(), "i64 {text:?}");
        }
    }

    #[test]
    fn removes_ranges_like_drain() {
        for (from, to) in [(0, 0), (0, 1), (1, 3), (2, 9), (5, 9), (3, 2)] {
            let mut items = vec![0, 1, 2, 3];
            let removed = remove_range(&mut items, from, to);
            let mut expected = vec![0, 1, 2, 3];
            let (a, b) = (from.min(4), to.min(4).max(from.min(4)));
            expected.drain(a..b);
            assert_eq!((items, removed), (expected, b - a), "{from}..{to}");
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn integers_round_trip_like_std(n in any::<i64>(), u in any::<u64>()) {
                let mut out = String::new();
                push_i64(&mut out, n);
                prop_assert_eq!(&out, &n.to_string());
                prop_assert_eq!(parse_i64(&out), Some(n));
                out.clear();
                push_u64(&mut out, u);
                prop_assert_eq!(&out, &u.to_string());
                prop_assert_eq!(parse_u64(&out), Some(u));
            }

            #[test]
            fn parsing_agrees_with_std(text in "[-+0-9a ]{0,22}") {
                prop_assert_eq!(parse_u64(&text), text.parse::<u64>().ok());
                prop_assert_eq!(parse_u32(&text), text.parse::<u32>().ok());
                prop_assert_eq!(parse_i64(&text), text.parse::<i64>().ok());
            }
        }
    }
}
