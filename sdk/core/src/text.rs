//! Small string helpers for code that ships to the browser.
//!
//! std's `format!`, `to_string`, `parse`, `join` and substring search are
//! each a few hundred bytes to a few kilobytes of wasm (the formatting
//! machinery, a two-way string searcher, the panic messages of string
//! slicing). The SDK needs only these few operations, so it writes them
//! out: none of them can panic.

use crate::prelude::*;

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

/// The parts with `separator` between them, like `[&str]::join`.
pub fn join<'a>(parts: impl IntoIterator<Item = &'a str>, separator: &str) -> String {
    let mut out = String::new();
    for (i, part) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        out.push_str(part);
    }
    out
}

/// The parts one after another, like `[&str]::concat`.
pub fn concat(parts: &[&str]) -> String {
    join(parts.iter().copied(), "")
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

/// `s` around its first `separator`, an ASCII character, like
/// `str::split_once` with a `char` pattern (which ships a searcher).
pub fn split_at(s: &str, separator: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == separator)?;
    // An ASCII byte is a character of its own, so these are boundaries.
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// The parts of `s` between `separator`s, an ASCII character, like
/// `str::split` with a `char` pattern.
pub fn parts(s: &str, separator: u8) -> Parts<'_> {
    Parts {
        rest: Some(s),
        separator,
    }
}

/// The iterator of [`parts`].
#[derive(Debug, Clone)]
pub struct Parts<'a> {
    rest: Option<&'a str>,
    separator: u8,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        match split_at(rest, self.separator) {
            Some((part, after)) => {
                self.rest = Some(after);
                Some(part)
            }
            None => self.rest.take(),
        }
    }
}

/// Byte offset of the first `needle` in `haystack`, like `str::find` with a
/// string pattern.
pub fn find(haystack: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
}

/// Whether `needle` occurs in `haystack`, like `str::contains` with a string pattern.
pub fn contains(haystack: &str, needle: &str) -> bool {
    find(haystack, needle).is_some()
}

/// `haystack` around the first `needle`, like `str::split_once` with a
/// string pattern.
pub fn split_once<'a>(haystack: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let at = find(haystack, needle)?;
    // A match of whole UTF-8 text starts and ends on character boundaries.
    Some((haystack.get(..at)?, haystack.get(at + needle.len()..)?))
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
    fn joins_finds_and_splits_like_std() {
        assert_eq!(join(["a", "b", "c"], " > "), "a > b > c");
        assert_eq!(join(Vec::new(), "&"), "");
        assert_eq!(
            concat(&["waymark.", "demo", ".session"]),
            "waymark.demo.session"
        );
        assert_eq!(find("a%40b%40", "%40"), Some(1));
        assert_eq!(find("é%40", "%40"), Some(2));
        assert_eq!(find("ab", ""), Some(0));
        assert_eq!(find("a", "ab"), None);
        assert!(contains("user_email", "mail"));
        assert!(!contains("page", "mail"));
        assert_eq!(split_once("a%40b%40c", "%40"), Some(("a", "b%40c")));
        assert_eq!(split_once("abc", "%40"), None);
        for (from, to) in [(0, 0), (0, 1), (1, 3), (2, 9), (5, 9), (3, 2)] {
            let mut items = vec![0, 1, 2, 3];
            let removed = remove_range(&mut items, from, to);
            let mut expected = vec![0, 1, 2, 3];
            let (a, b) = (from.min(4), to.min(4).max(from.min(4)));
            expected.drain(a..b);
            assert_eq!((items, removed), (expected, b - a), "{from}..{to}");
        }
        for (s, sep) in [
            ("a|b||c|", '|'),
            ("", '|'),
            ("abc", '|'),
            ("é|ü", '|'),
            ("k=v=w", '='),
        ] {
            assert_eq!(
                parts(s, sep as u8).collect::<Vec<_>>(),
                s.split(sep).collect::<Vec<_>>()
            );
            assert_eq!(split_at(s, sep as u8), s.split_once(sep));
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

            #[test]
            fn searching_agrees_with_std(haystack in "[%40aé]{0,12}", needle in "[%40aé]{0,3}") {
                prop_assert_eq!(find(&haystack, &needle), haystack.find(needle.as_str()));
                prop_assert_eq!(split_once(&haystack, &needle), haystack.split_once(needle.as_str()));
            }

            #[test]
            fn splitting_agrees_with_std(s in "[|a&é]{0,12}") {
                prop_assert_eq!(parts(&s, b'|').collect::<Vec<_>>(), s.split('|').collect::<Vec<_>>());
                prop_assert_eq!(split_at(&s, b'&'), s.split_once('&'));
            }
        }
    }
}
