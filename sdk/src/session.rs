//! The visit: its ids, its clock, and when it must end.
//!
//! A session is persisted as one record so that every tab reads and writes
//! it whole. All rules here are pure functions of the record, the time passed
//! in and the configuration: nothing in this module reads a clock.

use crate::ids::{self, Entropy};

/// Why a session was closed; sent as `reason` of its `visit_ended` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// No activity for longer than the idle timeout.
    Idle,
    /// The session reached its maximum length.
    MaxLength,
    /// The page called `reset()` (logout).
    Reset,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::MaxLength => "max_length",
            EndReason::Reset => "reset",
        }
    }
}

/// Limits that decide when a session rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRules {
    /// Idle gap after which the next event starts a new session.
    pub idle_timeout_ms: u64,
    /// Longest a session may last, or `None` for no limit.
    pub max_length_ms: Option<u64>,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            idle_timeout_ms: 30 * 60_000,
            max_length_ms: Some(24 * 3_600_000),
        }
    }
}

/// One visit of one visitor, as kept in browser storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The profile: stable across sessions until `reset()`.
    pub visitor_id: String,
    pub session_id: String,
    /// Time of the session's first event (epoch ms).
    pub started_at: u64,
    /// Time of the session's latest event (epoch ms); never moves backwards.
    pub last_seen_at: u64,
    /// 1 for the visitor's first session, then 2, 3, …
    pub index: u32,
    /// Events recorded in this session so far.
    pub seq: u32,
    /// URL of the latest event: the exit page once the session ends.
    pub last_url: String,
    /// Set by `identify`, cleared by `reset`.
    pub user_id: Option<String>,
}

const RECORD_VERSION: &str = "1";

impl Session {
    /// The first session of a new visitor.
    pub fn first(now: u64, entropy: &mut dyn Entropy) -> Session {
        Session {
            visitor_id: ids::random_id(entropy),
            session_id: ids::time_ordered_id(now, entropy),
            started_at: now,
            last_seen_at: now,
            index: 1,
            seq: 0,
            last_url: String::new(),
            user_id: None,
        }
    }

    /// The session that follows this one for the same visitor and user.
    pub fn next(&self, now: u64, entropy: &mut dyn Entropy) -> Session {
        Session {
            visitor_id: self.visitor_id.clone(),
            session_id: ids::time_ordered_id(now, entropy),
            started_at: now,
            last_seen_at: now,
            index: self.index.saturating_add(1),
            seq: 0,
            last_url: String::new(),
            user_id: self.user_id.clone(),
        }
    }

    /// Why this session must end before an event at `now` is recorded, if it must.
    ///
    /// A clock that went backwards never ends a session; a clock that jumped
    /// forwards past the idle timeout does, like any long gap.
    pub fn rotation_due(&self, now: u64, rules: &SessionRules) -> Option<EndReason> {
        if now.saturating_sub(self.last_seen_at) > rules.idle_timeout_ms {
            return Some(EndReason::Idle);
        }
        match rules.max_length_ms {
            Some(max) if now.saturating_sub(self.started_at) >= max => Some(EndReason::MaxLength),
            _ => None,
        }
    }

    /// Counts one more event at `now` on `url`.
    pub fn touch(&mut self, now: u64, url: &str) {
        self.seq = self.seq.saturating_add(1);
        self.last_seen_at = self.last_seen_at.max(now);
        if self.last_url != url {
            url.clone_into(&mut self.last_url);
        }
    }

    /// Milliseconds from the first to the latest event.
    pub fn duration_ms(&self) -> u64 {
        self.last_seen_at.saturating_sub(self.started_at)
    }

    /// The storage form: `|`-separated fields, free text escaped.
    pub fn encode(&self) -> String {
        let fields = [
            RECORD_VERSION,
            &self.visitor_id,
            &self.session_id,
            &self.started_at.to_string(),
            &self.last_seen_at.to_string(),
            &self.index.to_string(),
            &self.seq.to_string(),
            &escape(&self.last_url),
            &self.user_id.as_deref().map(escape).unwrap_or_default(),
        ];
        fields.join("|")
    }

    /// Reads a stored record; anything malformed or foreign reads as `None`.
    pub fn decode(record: &str) -> Option<Session> {
        let mut f = record.split('|');
        if f.next()? != RECORD_VERSION {
            return None;
        }
        let visitor_id = non_empty(f.next()?)?;
        let session_id = non_empty(f.next()?)?;
        let started_at = f.next()?.parse().ok()?;
        let last_seen_at = f.next()?.parse().ok()?;
        let index = f.next()?.parse().ok()?;
        let seq = f.next()?.parse().ok()?;
        let last_url = unescape(f.next()?);
        let user = f.next()?;
        if f.next().is_some() {
            return None;
        }
        Some(Session {
            visitor_id,
            session_id,
            started_at,
            last_seen_at,
            index,
            seq,
            last_url,
            user_id: (!user.is_empty()).then(|| unescape(user)),
        })
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('|', "%7C")
}

fn unescape(s: &str) -> String {
    s.replace("%7C", "|").replace("%25", "%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeededEntropy;

    const MIN: u64 = 60_000;
    const T0: u64 = 1_700_000_000_000;

    fn session() -> Session {
        Session::first(T0, &mut SeededEntropy(3))
    }

    #[test]
    fn idle_gap_rotates_only_past_the_timeout() {
        let rules = SessionRules::default();
        let s = session();
        assert_eq!(s.rotation_due(T0 + 29 * MIN + 59_000, &rules), None);
        assert_eq!(s.rotation_due(T0 + 30 * MIN, &rules), None);
        assert_eq!(
            s.rotation_due(T0 + 30 * MIN + 1, &rules),
            Some(EndReason::Idle)
        );
        assert_eq!(
            s.rotation_due(T0 + 30 * MIN + 60_000, &rules),
            Some(EndReason::Idle)
        );
    }

    #[test]
    fn clock_going_backwards_neither_rotates_nor_rewinds() {
        let rules = SessionRules::default();
        let mut s = session();
        assert_eq!(s.rotation_due(T0 - 5 * 3_600_000, &rules), None);
        s.touch(T0 - 5 * 3_600_000, "/a");
        assert_eq!(s.last_seen_at, T0);
    }

    #[test]
    fn max_length_ends_an_active_session() {
        let rules = SessionRules {
            idle_timeout_ms: 30 * MIN,
            max_length_ms: Some(60 * MIN),
        };
        let mut s = session();
        for minute in (10..60).step_by(10) {
            s.touch(T0 + minute * MIN, "/");
            assert_eq!(s.rotation_due(T0 + minute * MIN, &rules), None);
        }
        assert_eq!(
            s.rotation_due(T0 + 60 * MIN, &rules),
            Some(EndReason::MaxLength)
        );
        let unlimited = SessionRules {
            max_length_ms: None,
            ..rules
        };
        assert_eq!(s.rotation_due(T0 + 60 * MIN, &unlimited), None);
    }

    #[test]
    fn next_session_keeps_visitor_and_user_and_counts_up() {
        let mut s = session();
        s.user_id = Some("u-1".into());
        let n = s.next(T0 + 40 * MIN, &mut SeededEntropy(9));
        assert_eq!(
            (n.visitor_id.as_str(), n.index, n.seq),
            (s.visitor_id.as_str(), 2, 0)
        );
        assert_eq!(n.user_id.as_deref(), Some("u-1"));
        assert_ne!(n.session_id, s.session_id);
        assert_eq!(n.started_at, T0 + 40 * MIN);
    }

    #[test]
    fn record_round_trips_including_separators_in_free_text() {
        let mut s = session();
        s.touch(T0 + 5, "https://x.test/a?b=1|2&c=%7C");
        s.user_id = Some("weird|user%".into());
        assert_eq!(Session::decode(&s.encode()), Some(s.clone()));
        s.user_id = None;
        assert_eq!(Session::decode(&s.encode()), Some(s));
    }

    #[test]
    fn malformed_records_are_ignored() {
        for bad in [
            "",
            "garbage",
            "2|a|b|1|2|1|0||",
            "1||b|1|2|1|0||",
            "1|a|b|x|2|1|0||",
            "1|a|b|1|2|1|0|||extra",
        ] {
            assert_eq!(Session::decode(bad), None, "{bad:?}");
        }
    }
}
