//! Which failed inserts ClickHouse refused for their content, as opposed to
//! failing because it is down, overloaded or misconfigured.
//!
//! ClickHouse's HTTP interface answers an error with a status and a body
//! that starts `Code: N, e.displayText() = DB::Exception: …` (18.16) or
//! `Code: N. DB::Exception: …` (newer), and newer servers also send the
//! code in an `X-ClickHouse-Exception-Code` header (the `clickhouse` crate
//! makes that `Code: N` when the body is empty). The rule is conservative:
//! only the codes in [`CONTENT_CODES`] — the rows could not be parsed or
//! did not fit their columns, which sending the same rows again cannot
//! change — count as a refusal. Everything else, known or not (no answer, a
//! timeout, a status without a code, `MEMORY_LIMIT_EXCEEDED`,
//! `TOO_MANY_SIMULTANEOUS_QUERIES`, a read-only table, `TOO_MANY_PARTS`,
//! a missing table or column), is retried with backoff as before: a wrong
//! guess there only delays, while a wrong guess the other way would move
//! good events aside.

use std::fmt;

/// The ClickHouse error codes that mean "these rows are wrong", with
/// their names (from ClickHouse's `ErrorCodes.cpp`, the same in 18.16 and
/// current releases).
///
/// Left out on purpose: `CANNOT_READ_ALL_DATA` (33) and
/// `ATTEMPT_TO_READ_AFTER_EOF` (32), which a body cut short in transit
/// also gives; `TOO_MANY_PARTS` (252), which mostly means merges are
/// behind (the collector's time bounds keep a batch within a few monthly
/// partitions); and schema errors (`NO_SUCH_COLUMN_IN_TABLE`, …), which
/// every batch would get until an operator fixes the table.
pub(super) const CONTENT_CODES: &[(u32, &str)] = &[
    (6, "CANNOT_PARSE_TEXT"),
    (25, "CANNOT_PARSE_ESCAPE_SEQUENCE"),
    (26, "CANNOT_PARSE_QUOTED_STRING"),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
    (38, "CANNOT_PARSE_DATE"),
    (41, "CANNOT_PARSE_DATETIME"),
    (53, "TYPE_MISMATCH"),
    (69, "ARGUMENT_OUT_OF_BOUND"),
    (70, "CANNOT_CONVERT_TYPE"),
    (72, "CANNOT_PARSE_NUMBER"),
    (117, "INCORRECT_DATA"),
    (128, "TOO_LARGE_ARRAY_SIZE"),
    (130, "CANNOT_READ_ARRAY_FROM_TEXT"),
    (131, "TOO_LARGE_STRING_SIZE"),
    (248, "INVALID_PARTITION_VALUE"),
    (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
    (349, "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN"),
    (376, "CANNOT_PARSE_UUID"),
    (407, "DECIMAL_OVERFLOW"),
];

/// An insert ClickHouse refused for its content: the code and its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: u32,
    pub error: String,
}

impl Refusal {
    /// The refusal in `err`, when it is one; see the module docs.
    pub fn of(err: &clickhouse::error::Error) -> Option<Refusal> {
        let clickhouse::error::Error::BadResponse(text) = err else {
            return None;
        };
        let code = exception_code(text)?;
        CONTENT_CODES
            .iter()
            .any(|(known, _)| *known == code)
            .then(|| Refusal {
                code,
                error: text.clone(),
            })
    }

    /// The code's name, as ClickHouse calls it.
    pub fn name(&self) -> &'static str {
        CONTENT_CODES
            .iter()
            .find(|(code, _)| *code == self.code)
            .map_or("UNKNOWN", |(_, name)| name)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.name(), self.error)
    }
}

/// The `N` of an answer that starts `Code: N` (`,` or `.` or nothing after).
fn exception_code(text: &str) -> Option<u32> {
    let rest = text.trim_start().strip_prefix("Code: ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    rest[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickhouse::error::Error;

    fn bad(text: &str) -> Error {
        Error::BadResponse(text.to_owned())
    }

    #[test]
    fn content_codes_are_refusals_in_every_format() {
        for text in [
            // 18.16
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\t, e.what() = DB::Exception",
            // current releases
            "Code: 27. DB::Exception: Cannot parse input: expected '\\t'. (CANNOT_PARSE_INPUT_ASSERTION_FAILED) (version 24.3.1.1)",
            // the header alone, as the crate reports it
            "Code: 27",
        ] {
            let refusal = Refusal::of(&bad(text)).unwrap();
            assert_eq!(refusal.code, 27, "{text}");
            assert_eq!(refusal.error, text);
            assert_eq!(refusal.name(), "CANNOT_PARSE_INPUT_ASSERTION_FAILED");
        }
    }

    #[test]
    fn availability_and_unknown_errors_are_not_refusals() {
        for text in [
            "Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded",
            "Code: 202. DB::Exception: Too many simultaneous queries. (TOO_MANY_SIMULTANEOUS_QUERIES)",
            "Code: 242, e.displayText() = DB::Exception: Table is in readonly mode",
            "Code: 252, e.displayText() = DB::Exception: Too many parts (300)",
            "Code: 33, e.displayText() = DB::Exception: Cannot read all data",
            "Code: 16, e.displayText() = DB::Exception: No such column x in table",
            "Code: 99999",
            "Code: ",
            "503 Service Unavailable",
            "Cannot parse input (Code: 27)",
            "",
        ] {
            assert_eq!(Refusal::of(&bad(text)), None, "{text}");
        }
        assert_eq!(Refusal::of(&Error::TimedOut), None);
        assert_eq!(Refusal::of(&Error::Network("reset".into())), None);
    }

    #[test]
    fn the_codes_are_distinct() {
        let mut codes: Vec<u32> = CONTENT_CODES.iter().map(|(code, _)| *code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CONTENT_CODES.len());
    }
}
