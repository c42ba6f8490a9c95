//! What the collector's answer to a batch means for the queue.

use crate::queue::Outcome;
use crate::text::parse_u64;

/// The outcome of an HTTP answer: 2xx delivered; a network error (status
/// 0), 408, 429 and 5xx retried, after `Retry-After` when given in seconds
/// (the HTTP-date form is treated as absent); any other status refused for
/// good.
///
/// A 2xx may still carry per-event rejections (`"rejected": [...]`); the
/// shell reports their number to [`crate::SendQueue::on_rejected_events`].
pub fn outcome(status: u16, retry_after: Option<&str>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        0 | 408 | 429 | 500..=599 => Outcome::Retry {
            retry_after_ms: retry_after
                .and_then(|s| parse_u64(s.trim()))
                .map(|s| s.saturating_mul(1_000)),
        },
        _ => Outcome::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        for ok in [200, 202, 204, 299] {
            assert_eq!(outcome(ok, Some("5")), Outcome::Delivered, "{ok}");
        }
        for retry in [0, 408, 429, 500, 502, 503, 599] {
            assert_eq!(
                outcome(retry, None),
                Outcome::Retry {
                    retry_after_ms: None
                },
                "{retry}"
            );
        }
        for refused in [100, 301, 400, 401, 403, 404, 413, 422, 600] {
            assert_eq!(outcome(refused, Some("1")), Outcome::Rejected, "{refused}");
        }
    }

    #[test]
    fn retry_after_counts_in_seconds_and_ignores_dates() {
        let after = |value| match outcome(503, Some(value)) {
            Outcome::Retry { retry_after_ms } => retry_after_ms,
            other => panic!("{other:?}"),
        };
        assert_eq!(after("30"), Some(30_000));
        assert_eq!(after(" 2 "), Some(2_000));
        assert_eq!(after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(after("-1"), None);
        assert_eq!(after("99999999999999999999"), None);
    }
}
