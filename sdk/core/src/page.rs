//! The page being looked at: engaged time and scroll depth between its page
//! view and its page leave.
//!
//! Engaged time counts only while the page is visible and focused; the
//! shell reports each change with [`PageVisit::set_active`].

use crate::prelude::*;

/// One page view's lifetime on screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageVisit {
    /// The (redacted) URL of the page view.
    pub url: String,
    /// `event_id` of the page view, repeated on its page leaves.
    pub view_id: String,
    /// The page view of a page load (or a return from the back/forward
    /// cache), not of an in-app navigation: its leaves carry the load's
    /// Core Web Vitals.
    pub load: bool,
    started_at: u64,
    engaged_ms: u64,
    active_since: Option<u64>,
    max_scroll_pct: u8,
    /// Nothing happened since the last page leave was recorded.
    settled: bool,
}

/// What a page leave reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leave {
    pub engaged_ms: u64,
    pub scroll_pct: u8,
    pub duration_ms: u64,
}

impl PageVisit {
    pub fn new(now: u64, url: String, view_id: String, active: bool) -> PageVisit {
        PageVisit {
            url,
            view_id,
            load: false,
            started_at: now,
            engaged_ms: 0,
            active_since: active.then_some(now),
            max_scroll_pct: 0,
            settled: false,
        }
    }

    /// The page became visible and focused (`true`) or stopped being so.
    pub fn set_active(&mut self, now: u64, active: bool) {
        match (self.active_since, active) {
            (None, true) => {
                self.active_since = Some(now);
                self.settled = false;
            }
            (Some(since), false) => {
                self.engaged_ms += now.saturating_sub(since);
                self.active_since = None;
            }
            _ => {}
        }
    }

    /// The deepest point scrolled to so far, in percent of the page.
    pub fn scrolled(&mut self, pct: u8) {
        if pct.min(100) > self.max_scroll_pct {
            self.max_scroll_pct = pct.min(100);
            self.settled = false;
        }
    }

    pub fn engaged_ms(&self, now: u64) -> u64 {
        self.engaged_ms
            + self
                .active_since
                .map_or(0, |since| now.saturating_sub(since))
    }

    /// The page leave to record now, unless one was recorded and nothing
    /// happened since (a tab hidden, then closed, leaves once).
    pub fn leave(&mut self, now: u64) -> Option<Leave> {
        self.set_active(now, false);
        if self.settled {
            return None;
        }
        self.settled = true;
        Some(Leave {
            engaged_ms: self.engaged_ms,
            scroll_pct: self.max_scroll_pct,
            duration_ms: now.saturating_sub(self.started_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engaged_time_counts_only_active_periods() {
        let mut p = PageVisit::new(1_000, "/".into(), "v".into(), true);
        p.set_active(4_000, false); // 3 s
        p.set_active(10_000, true);
        p.set_active(10_000, true);
        assert_eq!(p.engaged_ms(12_000), 5_000);
        let leave = p.leave(12_000).unwrap();
        assert_eq!((leave.engaged_ms, leave.duration_ms), (5_000, 11_000));
    }

    #[test]
    fn leaves_once_until_something_happens_again() {
        let mut p = PageVisit::new(0, "/".into(), "v".into(), true);
        p.scrolled(40);
        p.scrolled(20);
        assert_eq!(p.leave(1_000).map(|l| l.scroll_pct), Some(40));
        assert_eq!(p.leave(2_000), None, "hidden, then closed: one leave");
        p.set_active(3_000, true);
        let again = p.leave(4_000).unwrap();
        assert_eq!(again.engaged_ms, 2_000, "cumulative over the page view");
        p.scrolled(150);
        assert_eq!(p.leave(5_000).map(|l| l.scroll_pct), Some(100));
    }

    #[test]
    fn a_page_opened_in_the_background_is_not_engaged() {
        let mut p = PageVisit::new(0, "/".into(), "v".into(), false);
        assert_eq!(p.leave(60_000).map(|l| l.engaged_ms), Some(0));
    }
}
