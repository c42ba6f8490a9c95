//! Enrichment: what the collector adds to events from the request that
//! carried them — geo from the client IP, device and browser from the user
//! agent, a bot flag. The IP is used for the lookup and then dropped: it is
//! never stored, logged or put in an event.

use std::net::IpAddr;

use serde_json::Value;

use crate::event::{Enrichment, StoredEvent};

pub use self::agent::{parse as parse_user_agent, Agent};
pub use self::geo::{GeoIp, Place};

mod agent;
mod geo;

/// The request facts enrichment uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// The client's address (after `--trust-proxy`), if known.
    pub ip: Option<IpAddr>,
    /// The request's `User-Agent` header.
    pub user_agent: Option<&'a str>,
}

/// Fills in every event's [`Enrichment`]. Geo is looked up once per batch;
/// the user agent is the event's `context.user_agent` when it has one (what
/// the page's browser reported), else the request's.
pub fn enrich(geo: &GeoIp, request: RequestFacts<'_>, events: &mut [StoredEvent]) {
    let place = request.ip.map(|ip| geo.lookup(ip)).unwrap_or_default();
    let header_agent = request.user_agent.map(parse_user_agent);
    for event in events {
        let context: Option<Value> = event
            .context
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok());
        let context_ua = context
            .as_ref()
            .and_then(|c| c.get("user_agent"))
            .and_then(Value::as_str);
        let agent = match context_ua {
            Some(ua) => parse_user_agent(ua),
            None => header_agent.clone().unwrap_or_default(),
        };
        let webdriver = context
            .as_ref()
            .and_then(|c| c.get("webdriver"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let is_bot = agent.is_bot || webdriver;
        // The SDK sees touch and screen size; it knows tablets better than
        // a user agent (iPadOS claims to be a Mac).
        let sdk_device = context
            .as_ref()
            .and_then(|c| c.get("device_type"))
            .and_then(Value::as_str)
            .filter(|d| matches!(*d, "desktop" | "mobile" | "tablet"));
        let device_type = if is_bot {
            Some("bot".to_owned())
        } else {
            sdk_device.map(str::to_owned).or(agent.device_type)
        };
        event.enrichment = Enrichment {
            country: place.country.clone(),
            region: place.region.clone(),
            city: place.city.clone(),
            browser: agent.browser,
            os: agent.os,
            device_type,
            is_bot,
        };
    }
}
