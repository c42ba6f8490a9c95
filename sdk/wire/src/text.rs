//! Small string helpers that ship no searcher and cannot panic.
//!
//! std's `join` and substring search (`split_once`, `contains`, `find` with a
//! string or `char` pattern) are each a few hundred bytes to a few kilobytes
//! of wasm (a two-way string searcher, the panic messages of string slicing).
//! The URL hygiene here and the SDK core need only these few operations, so
//! they are written out once, in the crate both depend on, and each is
//! compared with std in the tests.

use alloc::string::String;

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
    use alloc::vec::Vec;

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
        use alloc::vec::Vec;
        use proptest::prelude::*;

        proptest! {
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
