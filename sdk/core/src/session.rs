//! The visit: its ids, its clock, and when it must end.
//!
//! A session is persisted as one record so that every tab reads and writes
//! it whole. All rules here are pure functions of the record, the time passed
//! in and the configuration: nothing in this module reads a clock.

use crate::prelude::*;

use crate::ids::{self, Entropy};
use crate::text;

/// Why a session was closed; sent as `reason` of its `visit_ended` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// No activity for longer than the idle timeout.
    Idle,
    /// The session reached its maximum length.
    MaxLength,
    /// The local day changed since the last activity (opt-in).
    Midnight,
    /// A page view arrived with another campaign than the session's (opt-in).
    Campaign,
    /// The page called `reset()` (logout).
    Reset,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::MaxLength => "max_length",
            EndReason::Midnight => "midnight",
            EndReason::Campaign => "campaign",
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
    /// End sessions at local midnight.
    pub split_at_midnight: bool,
    /// End the session when a page view carries another campaign.
    pub split_on_campaign: bool,
}

impl Default for SessionRules {
    fn default() -> Self {
        SessionRules {
            idle_timeout_ms: 30 * 60_000,
            max_length_ms: Some(24 * 3_600_000),
            split_at_midnight: false,
            split_on_campaign: false,
        }
    }
}

/// A reading of the device clock: epoch milliseconds and the local zone's
/// offset from UTC at that instant (the negated `Date.getTimezoneOffset()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub ms: u64,
    pub utc_offset_min: i32,
}

impl Now {
    /// The local calendar day, counted from 1970-01-01.
    pub fn local_day(self) -> i64 {
        (self.ms as i64 + i64::from(self.utc_offset_min) * 60_000).div_euclid(86_400_000)
    }
}

impl From<u64> for Now {
    /// A reading in UTC.
    fn from(ms: u64) -> Now {
        Now {
            ms,
            utc_offset_min: 0,
        }
    }
}

/// Query parameters that name a campaign or an ad click.
const CAMPAIGN_PARAMS: [&str; 8] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "fbclid",
    "msclkid",
];

/// The campaign parameters a URL's query carries, in a fixed order; empty
/// values are ignored.
pub fn campaign_params(url: &str) -> Vec<(&'static str, &str)> {
    let without_fragment = text::split_at(url, b'#').map_or(url, |(page, _)| page);
    let query = text::split_at(without_fragment, b'?').map_or("", |(_, q)| q);
    CAMPAIGN_PARAMS
        .into_iter()
        .filter_map(|key| {
            let value = text::parts(query, b'&').find_map(|pair| {
                let (k, v) = text::split_at(pair, b'=').unwrap_or((pair, ""));
                (k == key && !v.is_empty()).then_some(v)
            })?;
            Some((key, value))
        })
        .collect()
}

/// The campaign a URL carries as one comparable string (`utm_source=a&gclid=b`);
/// empty when it carries none.
pub fn campaign_of(url: &str) -> String {
    let mut out = String::new();
    for (key, value) in campaign_params(url) {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
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
    /// Local day of the latest event (see [`Now::local_day`]).
    pub last_day: i64,
    /// The visitor's session before this one.
    pub previous_session_id: Option<String>,
    /// The session's first event.
    pub first_event_id: Option<String>,
    /// Campaign of the landing page (see [`campaign_of`]); empty for none.
    pub campaign: String,
    /// URL of the latest event: the exit page once the session ends.
    pub last_url: String,
    /// Set by `identify`, cleared by `reset`.
    pub user_id: Option<String>,
}

const RECORD_VERSION: &str = "1";

impl Session {
    /// The first session of a new visitor.
    pub fn first(now: Now, entropy: &mut dyn Entropy) -> Session {
        Session {
            visitor_id: ids::random_id(entropy),
            session_id: ids::time_ordered_id(now.ms, entropy),
            started_at: now.ms,
            last_seen_at: now.ms,
            index: 1,
            seq: 0,
            last_day: now.local_day(),
            previous_session_id: None,
            first_event_id: None,
            campaign: String::new(),
            last_url: String::new(),
            user_id: None,
        }
    }

    /// The session that follows this one for the same visitor and user. It
    /// starts no earlier than this one's last activity, even if the clock
    /// went backwards: a visitor's sessions never overlap.
    pub fn next(&self, now: Now, entropy: &mut dyn Entropy) -> Session {
        let now = Now {
            ms: now.ms.max(self.last_seen_at),
            ..now
        };
        Session {
            visitor_id: self.visitor_id.clone(),
            index: self.index.saturating_add(1),
            previous_session_id: Some(self.session_id.clone()),
            user_id: self.user_id.clone(),
            ..Session::first(now, entropy)
        }
    }

    /// Why this session must end before an event at `now` is recorded, if it
    /// must. `campaign` is that of a page view's URL (empty for other
    /// events): only a different, non-empty campaign can end a session.
    ///
    /// A clock that went backwards never ends a session; a clock that jumped
    /// forwards past the idle timeout does, like any long gap.
    pub fn rotation_due(
        &self,
        now: Now,
        campaign: &str,
        rules: &SessionRules,
    ) -> Option<EndReason> {
        if now.ms.saturating_sub(self.last_seen_at) > rules.idle_timeout_ms {
            return Some(EndReason::Idle);
        }
        if rules
            .max_length_ms
            .is_some_and(|max| now.ms.saturating_sub(self.started_at) >= max)
        {
            return Some(EndReason::MaxLength);
        }
        if rules.split_at_midnight && now.ms >= self.last_seen_at && now.local_day() > self.last_day
        {
            return Some(EndReason::Midnight);
        }
        if rules.split_on_campaign && !campaign.is_empty() && campaign != self.campaign {
            return Some(EndReason::Campaign);
        }
        None
    }

    /// Counts one more event, `event_id`, at `now` on `url`.
    pub fn touch(&mut self, now: Now, url: &str, event_id: &str) {
        self.seq = self.seq.saturating_add(1);
        if self.seq == 1 {
            self.first_event_id = Some(event_id.to_owned());
            self.campaign = campaign_of(url);
        }
        if now.ms >= self.last_seen_at {
            self.last_seen_at = now.ms;
            self.last_day = now.local_day();
        }
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
        let mut out = String::from(RECORD_VERSION);
        for id in [&self.visitor_id, &self.session_id] {
            out.push('|');
            out.push_str(id);
        }
        for n in [
            self.started_at,
            self.last_seen_at,
            self.index.into(),
            self.seq.into(),
        ] {
            out.push('|');
            text::push_u64(&mut out, n);
        }
        out.push('|');
        text::push_i64(&mut out, self.last_day);
        for field in [
            self.previous_session_id.as_deref().unwrap_or_default(),
            self.first_event_id.as_deref().unwrap_or_default(),
            &escape(&self.campaign),
            &escape(&self.last_url),
            &self.user_id.as_deref().map(escape).unwrap_or_default(),
        ] {
            out.push('|');
            out.push_str(field);
        }
        out
    }

    /// Reads a stored record; anything malformed or foreign reads as `None`.
    pub fn decode(record: &str) -> Option<Session> {
        let mut f = text::parts(record, b'|');
        if f.next()? != RECORD_VERSION {
            return None;
        }
        let session = Session {
            visitor_id: non_empty(f.next()?)?,
            session_id: non_empty(f.next()?)?,
            started_at: text::parse_u64(f.next()?)?,
            last_seen_at: text::parse_u64(f.next()?)?,
            index: text::parse_u32(f.next()?)?,
            seq: text::parse_u32(f.next()?)?,
            last_day: text::parse_i64(f.next()?)?,
            previous_session_id: non_empty(f.next()?),
            first_event_id: non_empty(f.next()?),
            campaign: unescape(f.next()?),
            last_url: unescape(f.next()?),
            user_id: non_empty(f.next()?).map(|u| unescape(&u)),
        };
        f.next().is_none().then_some(session)
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// `%` as `%25` and `|` as `%7C`, so free text cannot split the record.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '|' => out.push_str("%7C"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]; any other `%` is kept as it is.
fn unescape(s: &str) -> String {
    let mut parts = text::parts(s, b'%');
    let mut out = parts.next().unwrap_or_default().to_owned();
    for part in parts {
        if let Some(rest) = part.strip_prefix("7C") {
            out.push('|');
            out.push_str(rest);
        } else if let Some(rest) = part.strip_prefix("25") {
            out.push('%');
            out.push_str(rest);
        } else {
            out.push('%');
            out.push_str(part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SeededEntropy;

    const MIN: u64 = 60_000;
    /// 2023-11-14T22:13:20Z, which is 23:13:20 in Berlin (UTC+1).
    const T0: u64 = 1_700_000_000_000;
    const BERLIN: i32 = 60;

    fn at(ms: u64) -> Now {
        ms.into()
    }

    fn berlin(ms: u64) -> Now {
        Now {
            ms,
            utc_offset_min: BERLIN,
        }
    }

    fn session() -> Session {
        Session::first(at(T0), &mut SeededEntropy(3))
    }

    fn due(s: &Session, ms: u64, rules: &SessionRules) -> Option<EndReason> {
        s.rotation_due(at(ms), "", rules)
    }

    #[test]
    fn idle_gap_rotates_only_past_the_timeout() {
        let rules = SessionRules::default();
        let s = session();
        assert_eq!(due(&s, T0 + 29 * MIN + 59_000, &rules), None);
        assert_eq!(due(&s, T0 + 30 * MIN, &rules), None);
        assert_eq!(due(&s, T0 + 30 * MIN + 1, &rules), Some(EndReason::Idle));
        assert_eq!(
            due(&s, T0 + 30 * MIN + 60_000, &rules),
            Some(EndReason::Idle)
        );
    }

    #[test]
    fn clock_going_backwards_neither_rotates_nor_rewinds() {
        let rules = SessionRules {
            split_at_midnight: true,
            ..SessionRules::default()
        };
        let mut s = session();
        assert_eq!(due(&s, T0 - 5 * 3_600_000, &rules), None);
        assert_eq!(due(&s, T0 - 3 * 24 * 3_600_000, &rules), None);
        s.touch(at(T0 - 5 * 3_600_000), "/a", "e");
        assert_eq!(s.last_seen_at, T0);
    }

    #[test]
    fn clock_jumping_forwards_rotates_like_a_long_gap() {
        let s = session();
        assert_eq!(
            due(&s, T0 + 70 * 3_600_000, &SessionRules::default()),
            Some(EndReason::Idle)
        );
    }

    #[test]
    fn max_length_ends_an_active_session() {
        let rules = SessionRules {
            max_length_ms: Some(60 * MIN),
            ..SessionRules::default()
        };
        let mut s = session();
        for minute in (10..60).step_by(10) {
            s.touch(at(T0 + minute * MIN), "/", "e");
            assert_eq!(due(&s, T0 + minute * MIN, &rules), None);
        }
        assert_eq!(due(&s, T0 + 60 * MIN - 1, &rules), None);
        assert_eq!(due(&s, T0 + 60 * MIN, &rules), Some(EndReason::MaxLength));
        let unlimited = SessionRules {
            max_length_ms: None,
            ..rules
        };
        assert_eq!(due(&s, T0 + 60 * MIN, &unlimited), None);
    }

    #[test]
    fn midnight_is_local_and_opt_in() {
        let rules = SessionRules {
            split_at_midnight: true,
            ..SessionRules::default()
        };
        let mut s = Session::first(berlin(T0), &mut SeededEntropy(1));
        s.touch(berlin(T0 + 46 * MIN), "/", "e1"); // 23:59:20 in Berlin
        let before = berlin(T0 + 46 * MIN + 39_999); // 23:59:59.999
        let after = berlin(T0 + 46 * MIN + 40_000); // 00:00:00.000
        assert_eq!(s.rotation_due(before, "", &rules), None);
        assert_eq!(s.rotation_due(after, "", &rules), Some(EndReason::Midnight));
        assert_eq!(
            s.rotation_due(after, "", &SessionRules::default()),
            None,
            "off by default"
        );
        // The same instants are 22:59 and 23:00 in UTC: no midnight there.
        let mut utc = Session::first(at(T0), &mut SeededEntropy(1));
        utc.touch(at(T0 + 46 * MIN), "/", "e1");
        assert_eq!(
            utc.rotation_due(at(T0 + 46 * MIN + 40_000), "", &rules),
            None
        );
    }

    #[test]
    fn a_different_campaign_splits_only_when_asked_and_only_if_present() {
        let rules = SessionRules {
            split_on_campaign: true,
            ..SessionRules::default()
        };
        let mut s = session();
        s.touch(
            at(T0),
            "https://x.test/?utm_source=news&utm_campaign=spring&id=4",
            "e1",
        );
        assert_eq!(s.campaign, "utm_source=news&utm_campaign=spring");
        let now = at(T0 + MIN);
        let same = campaign_of("https://x.test/a?utm_campaign=spring&utm_source=news");
        assert_eq!(s.rotation_due(now, &same, &rules), None);
        assert_eq!(
            s.rotation_due(now, "", &rules),
            None,
            "internal navigation keeps the session"
        );
        let ad = campaign_of("https://x.test/?gclid=abc");
        assert_eq!(s.rotation_due(now, &ad, &rules), Some(EndReason::Campaign));
        assert_eq!(
            s.rotation_due(now, &ad, &SessionRules::default()),
            None,
            "off by default"
        );
    }

    #[test]
    fn campaign_parsing_ignores_fragments_and_empty_values() {
        assert_eq!(campaign_of("https://x.test/#?utm_source=a"), "");
        assert_eq!(
            campaign_of("https://x.test/?utm_source=&fbclid=z#top"),
            "fbclid=z"
        );
        assert_eq!(campaign_of("https://x.test/"), "");
    }

    #[test]
    fn next_session_keeps_visitor_and_user_and_counts_up() {
        let mut s = session();
        s.user_id = Some("u-1".into());
        let n = s.next(at(T0 + 40 * MIN), &mut SeededEntropy(9));
        assert_eq!(
            (n.visitor_id.as_str(), n.index, n.seq),
            (s.visitor_id.as_str(), 2, 0)
        );
        assert_eq!(n.user_id.as_deref(), Some("u-1"));
        assert_eq!(
            n.previous_session_id.as_deref(),
            Some(s.session_id.as_str())
        );
        assert_ne!(n.session_id, s.session_id);
        assert_eq!(n.started_at, T0 + 40 * MIN);
    }

    #[test]
    fn first_event_and_campaign_are_those_of_the_landing_event() {
        let mut s = session();
        s.touch(at(T0), "https://x.test/?msclkid=m", "first");
        s.touch(at(T0 + 1), "https://x.test/b?utm_source=later", "second");
        assert_eq!(s.first_event_id.as_deref(), Some("first"));
        assert_eq!(s.campaign, "msclkid=m");
    }

    #[test]
    fn record_round_trips_including_separators_in_free_text() {
        let mut s = session();
        s.touch(
            at(T0 + 5),
            "https://x.test/a?b=1|2&c=%7C&utm_source=a|b",
            "e1",
        );
        s.previous_session_id = Some("p".into());
        s.user_id = Some("weird|user%".into());
        assert_eq!(Session::decode(&s.encode()), Some(s.clone()));
        s.user_id = None;
        assert_eq!(Session::decode(&s.encode()), Some(s));
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn escaping_agrees_with_str_replace(text in "[%|27C5a]{0,16}") {
            proptest::prop_assert_eq!(escape(&text), text.replace('%', "%25").replace('|', "%7C"));
            proptest::prop_assert_eq!(unescape(&text), text.replace("%7C", "|").replace("%25", "%"));
            proptest::prop_assert_eq!(unescape(&escape(&text)), text);
        }
    }

    #[test]
    fn malformed_records_are_ignored() {
        let good = session().encode();
        assert!(Session::decode(&good).is_some());
        for bad in [
            String::new(),
            "garbage".into(),
            good.replacen('1', "2", 1),
            good.replace("|1|0|", "|x|0|"),
            format!("{good}|extra"),
            good.rsplit_once('|')
                .map(|(head, _)| head.to_owned())
                .unwrap_or_default(),
        ] {
            assert_eq!(Session::decode(&bad), None, "{bad:?}");
        }
    }
}
