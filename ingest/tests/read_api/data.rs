//! The read API's hand-made data set: a few sessions whose every answer is
//! worked out by hand in `read_api.rs`. Events go straight into the store
//! (`append`), with their enrichment set, so geo and device are known
//! without a GeoIP database; any store that keeps sessions takes them.
//!
//! Site `shop`, range `[D, D + 2 days)` (humans):
//!
//! | session | visitor | user | start | pages (in order) | custom | geo, agent |
//! | --- | --- | --- | --- | --- | --- | --- |
//! | `s1` | v1 | – | D+1h | `/?utm…` (ref mail.example.com), `/pricing`, `/checkout` | signup ×2, purchase | DE Lower Saxony Hanover, Chrome macOS desktop |
//! | `s2` | v2 | u-1 | D+2h | `/pricing` (ref www.google.com), `/checkout` | – | FR Île-de-France Paris, Firefox Windows desktop |
//! | `s4` | v3 | – | D+3h | `/` (ref its own site) | – | DE Bavaria Munich, Safari iOS mobile |
//! | `cross` | v4 | – | D+1d−5m | `/docs`, `/docs/install` (D+1d+10m) | – | –, Edge Windows desktop |
//! | `s3` | v1 | u-1 | D+1d+2h | `/pricing?utm_source=ads&utm_medium=cpc` after a signup | signup | DE Lower Saxony Hanover, Chrome macOS desktop |
//!
//! plus `bot1` (a crawler, D+4h), the sessions around [`NOW`] for
//! `/v1/realtime`, and site `blog`'s own `s1` (same id, same visitor).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use waymark_ingest::{Enrichment, EventType, StoredEvent};

/// 2023-11-14 00:00 UTC: the start of day one.
pub const D: u64 = 1_699_920_000_000;
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 3_600_000;
pub const DAY: u64 = 86_400_000;
/// The app's clock: an hour after the range, for `/v1/realtime`.
pub const NOW: u64 = D + 2 * DAY + HOUR;

/// Who made an event: its session, visitor, user and enrichment.
#[derive(Clone)]
pub struct Visit {
    pub site: &'static str,
    pub session: &'static str,
    pub visitor: &'static str,
    pub user: Option<&'static str>,
    pub enrichment: Enrichment,
}

fn agent(
    browser: &str,
    os: &str,
    device: &str,
    geo: Option<(&str, &str, &str)>,
    is_bot: bool,
) -> Enrichment {
    Enrichment {
        country: geo.map(|g| g.0.to_owned()),
        region: geo.map(|g| g.1.to_owned()),
        city: geo.map(|g| g.2.to_owned()),
        browser: Some(browser.to_owned()),
        os: Some(os.to_owned()),
        device_type: Some(device.to_owned()),
        is_bot,
    }
}

const HANOVER: Option<(&str, &str, &str)> = Some(("DE", "Lower Saxony", "Hanover"));

impl Visit {
    fn new(
        session: &'static str,
        visitor: &'static str,
        user: Option<&'static str>,
        enrichment: Enrichment,
    ) -> Visit {
        Visit {
            site: "shop",
            session,
            visitor,
            user,
            enrichment,
        }
    }

    fn event(&self, n: &mut u32, kind: EventType, ts: u64, url: &str) -> StoredEvent {
        *n += 1;
        StoredEvent {
            event_id: uuid::Uuid::from_u128(u128::from(*n) << 64 | u128::from(ts))
                .hyphenated()
                .to_string(),
            site: self.site.to_owned(),
            event_type: kind,
            name: None,
            ts,
            client_ts: ts,
            received_at: ts,
            session_id: self.session.to_owned(),
            visitor_id: self.visitor.to_owned(),
            user_id: self.user.map(str::to_owned),
            session_index: Some(1),
            seq: Some(*n),
            previous_session_id: None,
            storage: Some("local".to_owned()),
            url: url.to_owned(),
            title: None,
            referrer: None,
            props: None,
            context: None,
            enrichment: self.enrichment.clone(),
        }
    }

    pub fn page(&self, n: &mut u32, ts: u64, url: &str, referrer: Option<&str>) -> StoredEvent {
        let mut e = self.event(n, EventType::PageView, ts, url);
        e.referrer = referrer.map(str::to_owned);
        e
    }

    pub fn custom(&self, n: &mut u32, ts: u64, name: &str, url: &str) -> StoredEvent {
        let mut e = self.event(n, EventType::Custom, ts, url);
        e.name = Some(name.to_owned());
        e
    }
}

/// Every event of the data set, in no particular order.
pub fn events() -> Vec<StoredEvent> {
    let chrome_mac = agent("Chrome", "macOS", "desktop", HANOVER, false);
    let n = &mut 0;
    let s1 = Visit::new("s1", "v1", None, chrome_mac.clone());
    let s2 = Visit::new(
        "s2",
        "v2",
        Some("u-1"),
        agent(
            "Firefox",
            "Windows",
            "desktop",
            Some(("FR", "Île-de-France", "Paris")),
            false,
        ),
    );
    let s4 = Visit::new(
        "s4",
        "v3",
        None,
        agent(
            "Safari",
            "iOS",
            "mobile",
            Some(("DE", "Bavaria", "Munich")),
            false,
        ),
    );
    let cross = Visit::new(
        "cross",
        "v4",
        None,
        agent("Edge", "Windows", "desktop", None, false),
    );
    let s3 = Visit::new("s3", "v1", Some("u-1"), chrome_mac.clone());
    let googlebot = agent(
        "Googlebot",
        "UNKNOWN",
        "bot",
        Some(("US", "California", "Mountain View")),
        true,
    );
    let bot1 = Visit::new("bot1", "vb", None, googlebot.clone());
    let live1 = Visit::new("live1", "v5", None, chrome_mac.clone());
    let live2 = Visit::new("live2", "v6", None, chrome_mac.clone());
    let gone = Visit::new("gone", "v7", None, chrome_mac.clone());
    let bot_live = Visit::new("botlive", "vb2", None, googlebot);
    let blog = Visit {
        site: "blog",
        ..s1.clone()
    };
    let shop = "https://shop.example";
    vec![
        s1.page(
            n,
            D + HOUR,
            &format!(
                "{shop}/?utm_source=news&utm_medium=email\
                 &utm_campaign=spring%2C%20%22big%22%20sale&utm_term=shoes&utm_content=top"
            ),
            Some("https://mail.example.com/inbox?id=7"),
        ),
        s1.page(
            n,
            D + HOUR + MIN,
            &format!("{shop}/pricing?plan=pro#faq"),
            None,
        ),
        s1.custom(n, D + HOUR + 2 * MIN, "signup", &format!("{shop}/pricing")),
        s1.custom(
            n,
            D + HOUR + 2 * MIN + 30_000,
            "signup",
            &format!("{shop}/pricing"),
        ),
        s1.page(n, D + HOUR + 3 * MIN, &format!("{shop}/checkout"), None),
        s1.custom(
            n,
            D + HOUR + 4 * MIN,
            "purchase",
            &format!("{shop}/checkout"),
        ),
        s2.page(
            n,
            D + 2 * HOUR,
            &format!("{shop}/pricing"),
            Some("https://www.google.com/search?q=shoes"),
        ),
        s2.page(n, D + 2 * HOUR + 2 * MIN, &format!("{shop}/checkout"), None),
        s4.page(
            n,
            D + 3 * HOUR,
            &format!("{shop}/"),
            Some(&format!("{shop}/blog")),
        ),
        cross.page(n, D + DAY - 5 * MIN, &format!("{shop}/docs"), None),
        cross.page(n, D + DAY + 10 * MIN, &format!("{shop}/docs/install"), None),
        s3.custom(n, D + DAY + 2 * HOUR, "signup", &format!("{shop}/pricing")),
        s3.page(
            n,
            D + DAY + 2 * HOUR + MIN,
            &format!("{shop}/pricing?utm_source=ads&utm_medium=cpc"),
            None,
        ),
        bot1.page(n, D + 4 * HOUR, &format!("{shop}/"), None),
        live1.page(n, NOW - 3 * MIN, &format!("{shop}/pricing"), None),
        live1.page(n, NOW - MIN, &format!("{shop}/checkout"), None),
        live2.page(n, NOW - 4 * MIN, &format!("{shop}/"), None),
        gone.page(n, NOW - 10 * MIN, &format!("{shop}/"), None),
        gone.page(n, NOW - 6 * MIN, &format!("{shop}/about"), None),
        bot_live.page(n, NOW - 2 * MIN, &format!("{shop}/"), None),
        blog.page(n, D + HOUR, "https://blog.example/pricing", None),
        blog.custom(n, D + HOUR + MIN, "signup", "https://blog.example/pricing"),
    ]
}
