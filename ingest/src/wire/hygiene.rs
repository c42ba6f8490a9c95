//! URL hygiene on the collector's side: the SDK's rule
//! ([`waymark_wire::redact_url`], the same code) with the built-in words
//! ([`DEFAULT_SENSITIVE_PARAMS`]), applied to every event whoever sent it (a
//! server, a curl, an old SDK) before it is validated and stored.
//!
//! Cleaned: `url` and `referrer` (and so the session's landing and exit pages
//! and its source, which are read from them), a click's `props.href`, and the
//! landing URL's campaign the SDK copies into `context.campaign`. A custom
//! event's `props` are the page's own data and are stored as given. The event
//! is always kept; what was removed is only counted
//! (`waymark_urls_redacted_total`). A page that gave the SDK its own list of
//! words gets the built-in list applied here too.

use serde_json::{Map, Value};
use waymark_wire::{is_sensitive_pair, redact_url, DEFAULT_SENSITIVE_PARAMS};

/// Removes the sensitive query parameters from the event's URLs, in place:
/// how many of its values lost something (each URL, and the campaign, counts
/// once).
pub(super) fn clean_event(obj: &mut Map<String, Value>) -> u64 {
    let is_click = obj.get("type").and_then(Value::as_str) == Some("click");
    let mut cleaned =
        u64::from(clean_url(obj.get_mut("url"))) + u64::from(clean_url(obj.get_mut("referrer")));
    if is_click {
        let href = obj.get_mut("props").and_then(|p| p.get_mut("href"));
        cleaned += u64::from(clean_url(href));
    }
    let campaign = obj.get_mut("context").and_then(|c| c.get_mut("campaign"));
    if let Some(Value::Object(campaign)) = campaign {
        let before = campaign.len();
        campaign.retain(|name, value| {
            !value.as_str().is_some_and(|v| {
                is_sensitive_pair(&format!("{name}={v}"), DEFAULT_SENSITIVE_PARAMS)
            })
        });
        cleaned += u64::from(campaign.len() != before);
    }
    cleaned
}

/// Redacts `value` when it is a string: whether anything was removed.
fn clean_url(value: Option<&mut Value>) -> bool {
    let Some(Value::String(url)) = value else {
        return false;
    };
    let clean = redact_url(url, DEFAULT_SENSITIVE_PARAMS);
    if clean == *url {
        return false;
    }
    *url = clean;
    true
}
