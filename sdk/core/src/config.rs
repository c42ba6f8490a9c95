//! What the page configures.

use crate::prelude::*;

use crate::session::SessionRules;
use crate::text;
use crate::value::Value;

/// Tracker configuration, already validated by the shell.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Collector origin, e.g. `https://collect.example.com`; batches go to `{endpoint}/v1/batch`.
    pub endpoint: String,
    /// Site id the events belong to.
    pub site: String,
    pub session: SessionRules,
    /// Record page views: on load, on in-app navigation, from the back/forward cache.
    pub autocapture: bool,
    /// Record clicks on links, buttons and `data-waymark-event` elements.
    pub clicks: bool,
    /// Words that mark a query parameter as sensitive (see [`crate::redact_url`];
    /// the page's list replaces the built-in one).
    pub sensitive_params: Vec<String>,
    /// Store and send nothing until `consent(true)`.
    pub require_consent: bool,
    /// Honour Do Not Track and Global Privacy Control.
    pub respect_dnt: bool,
    /// The browser sends Do Not Track or Global Privacy Control (read by the shell).
    pub do_not_track: bool,
}

/// The built-in sensitive words ([`waymark_wire::DEFAULT_SENSITIVE_PARAMS`])
/// as owned strings, a page's configured list being owned.
pub fn default_sensitive_params() -> Vec<String> {
    waymark_wire::DEFAULT_SENSITIVE_PARAMS
        .iter()
        .map(|w| (*w).to_owned())
        .collect()
}

impl Config {
    pub fn new(endpoint: &str, site: &str) -> Config {
        Config {
            endpoint: without_trailing_slashes(endpoint).to_owned(),
            site: site.to_owned(),
            session: SessionRules::default(),
            autocapture: true,
            clicks: true,
            sensitive_params: default_sensitive_params(),
            require_consent: false,
            respect_dnt: false,
            do_not_track: false,
        }
    }

    /// The URL batches are posted to.
    pub fn batch_url(&self) -> String {
        text::concat(&[&self.endpoint, "/v1/batch"])
    }
}

/// `endpoint` without the `/`s it ends with (`trim_end_matches` would ship a searcher).
fn without_trailing_slashes(mut endpoint: &str) -> &str {
    while let Some(rest) = endpoint.strip_suffix('/') {
        endpoint = rest;
    }
    endpoint
}

/// The configuration a page passes (`init(config)`, or the script tag's
/// data attributes as the loader reads them), before checking. Every key is
/// optional; unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PageConfig {
    pub endpoint: Option<String>,
    pub site: Option<String>,
    pub session_timeout_minutes: Option<f64>,
    pub max_session_hours: Option<f64>,
    pub split_at_midnight: Option<bool>,
    pub split_on_campaign: Option<bool>,
    pub autocapture: Option<bool>,
    pub capture_page_views: Option<bool>,
    pub capture_clicks: Option<bool>,
    pub respect_dnt: Option<bool>,
    pub require_consent: Option<bool>,
    pub sensitive_params: Option<Words>,
}

/// A list of words: an array of strings, or one comma-separated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Words {
    List(Vec<String>),
    Text(String),
}

impl PageConfig {
    /// Reads the page's config from plain data (the browser shell reads the
    /// page's object into a [`Value`] with serde-wasm-bindgen). `None` when
    /// it is not an object, or a known key has a value of the wrong type:
    /// `endpoint` and `site` strings, the two lengths numbers, the switches
    /// booleans, `sensitiveParams` an array of strings or one string.
    /// `null` stands for a key not given.
    pub fn from_value(value: &Value) -> Option<PageConfig> {
        let Value::Object(entries) = value else {
            return None;
        };
        let mut config = PageConfig::default();
        for (key, value) in entries {
            if *value == Value::Null {
                continue;
            }
            let text = || match value {
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            let number = || match value {
                Value::Number(n) => Some(*n),
                _ => None,
            };
            let switch = || match value {
                Value::Bool(b) => Some(*b),
                _ => None,
            };
            match key.as_str() {
                "endpoint" => config.endpoint = Some(text()?),
                "site" => config.site = Some(text()?),
                "sessionTimeoutMinutes" => config.session_timeout_minutes = Some(number()?),
                "maxSessionHours" => config.max_session_hours = Some(number()?),
                "splitAtMidnight" => config.split_at_midnight = Some(switch()?),
                "splitOnCampaign" => config.split_on_campaign = Some(switch()?),
                "autocapture" => config.autocapture = Some(switch()?),
                "capturePageViews" => config.capture_page_views = Some(switch()?),
                "captureClicks" => config.capture_clicks = Some(switch()?),
                "respectDnt" => config.respect_dnt = Some(switch()?),
                "requireConsent" => config.require_consent = Some(switch()?),
                "sensitiveParams" => {
                    config.sensitive_params = Some(match value {
                        Value::String(s) => Words::Text(s.clone()),
                        Value::Array(items) => Words::List(
                            items
                                .iter()
                                .map(|w| match w {
                                    Value::String(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .collect::<Option<_>>()?,
                        ),
                        _ => return None,
                    })
                }
                _ => {}
            }
        }
        Some(config)
    }
}

/// Something in the page's config that could not be used as given; each is
/// one console warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigProblem {
    /// Not an object of the documented keys and types: all defaults.
    Unusable,
    /// No `endpoint`: batches go to the page's own origin.
    NoEndpoint,
}

impl ConfigProblem {
    pub fn message(self) -> &'static str {
        match self {
            ConfigProblem::Unusable => {
                "config must be an object like {endpoint, site}; using defaults"
            }
            ConfigProblem::NoEndpoint => {
                "config.endpoint is missing; sending to this page's origin"
            }
        }
    }
}

impl PageConfig {
    /// The tracker's config, with defaults filled in: the endpoint defaults
    /// to the page's `origin`, the site to its `hostname`. `None` stands for
    /// a config that could not be read at all ([`ConfigProblem::Unusable`]).
    /// A session timeout that is not a positive number keeps the default; a
    /// maximum session length of zero or less turns the limit off.
    pub fn check(
        page: Option<PageConfig>,
        origin: &str,
        hostname: &str,
    ) -> (Config, Option<ConfigProblem>) {
        let (page, mut problem) = match page {
            Some(page) => (page, None),
            None => (PageConfig::default(), Some(ConfigProblem::Unusable)),
        };
        let endpoint = match page.endpoint.as_deref() {
            Some(e) if !e.is_empty() => e,
            _ => {
                problem = problem.or(Some(ConfigProblem::NoEndpoint));
                origin
            }
        };
        let site = match page.site.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => hostname,
        };
        let mut config = Config::new(endpoint, site);
        let defaults = SessionRules::default();
        let positive_ms = |n: Option<f64>, unit: f64| {
            n.filter(|n| n.is_finite() && *n > 0.0)
                .map(|n| (n * unit) as u64)
        };
        config.session = SessionRules {
            idle_timeout_ms: positive_ms(page.session_timeout_minutes, 60_000.0)
                .unwrap_or(defaults.idle_timeout_ms),
            max_length_ms: match page.max_session_hours {
                Some(h) if h.is_finite() && h <= 0.0 => None,
                hours => positive_ms(hours, 3_600_000.0).or(defaults.max_length_ms),
            },
            split_at_midnight: page.split_at_midnight.unwrap_or(false),
            split_on_campaign: page.split_on_campaign.unwrap_or(false),
        };
        let auto = page.autocapture.unwrap_or(true);
        config.autocapture = auto && page.capture_page_views.unwrap_or(true);
        config.clicks = auto && page.capture_clicks.unwrap_or(true);
        config.respect_dnt = page.respect_dnt.unwrap_or(false);
        config.require_consent = page.require_consent.unwrap_or(false);
        // Given words replace the default list, even with none.
        if let Some(words) = page.sensitive_params {
            let words: Vec<&str> = match &words {
                Words::List(list) => list.iter().map(String::as_str).collect(),
                Words::Text(text) => text::parts(text, b',').collect(),
            };
            config.sensitive_params = words
                .into_iter()
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect();
        }
        (config, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_SENSITIVE_PARAMS;

    fn check(json: &str) -> (Config, Option<ConfigProblem>) {
        let value = serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
        let page = PageConfig::from_value(&value);
        PageConfig::check(page, "https://page.example", "page.example")
    }

    #[test]
    fn the_page_config_is_read_with_its_defaults() {
        let (c, problem) = check(
            r#"{"endpoint": "https://c.example/", "site": "s", "sessionTimeoutMinutes": 1.5,
                "maxSessionHours": 0, "splitAtMidnight": true, "captureClicks": false,
                "respectDnt": true, "requireConsent": true, "sensitiveParams": [" Plan ", "", "KEY"],
                "wasmUrl": "/x.wasm"}"#,
        );
        assert_eq!(problem, None);
        assert_eq!(
            (c.endpoint.as_str(), c.site.as_str()),
            ("https://c.example", "s")
        );
        assert_eq!(
            c.session,
            SessionRules {
                idle_timeout_ms: 90_000,
                max_length_ms: None,
                split_at_midnight: true,
                split_on_campaign: false
            }
        );
        assert!(c.autocapture && !c.clicks && c.respect_dnt && c.require_consent);
        assert_eq!(c.sensitive_params, ["plan", "key"]);
    }

    #[test]
    fn missing_values_take_the_defaults() {
        let (c, problem) =
            check(r#"{"site": null, "maxSessionHours": -0.0, "sessionTimeoutMinutes": -3}"#);
        assert_eq!(problem, Some(ConfigProblem::NoEndpoint));
        assert_eq!(
            (c.endpoint.as_str(), c.site.as_str()),
            ("https://page.example", "page.example")
        );
        assert_eq!(
            c.session.idle_timeout_ms,
            SessionRules::default().idle_timeout_ms
        );
        assert_eq!(
            c.session.max_length_ms, None,
            "zero hours turns the limit off"
        );
        assert!(c.autocapture && c.clicks && !c.respect_dnt && !c.require_consent);
        assert_eq!(c.sensitive_params, DEFAULT_SENSITIVE_PARAMS);

        let (c, _) = check(
            r#"{"endpoint": "e", "autocapture": false, "maxSessionHours": 2, "sensitiveParams": "a, B,"}"#,
        );
        assert!(!c.autocapture && !c.clicks);
        assert_eq!(c.session.max_length_ms, Some(7_200_000));
        assert_eq!(c.sensitive_params, ["a", "b"]);
        let (c, _) = check(r#"{"endpoint": "e", "sensitiveParams": ""}"#);
        assert!(
            c.sensitive_params.is_empty(),
            "an empty list turns redaction off"
        );
        let (c, _) = check(r#"{"endpoint": "e", "capturePageViews": false}"#);
        assert!(!c.autocapture && c.clicks);
    }

    #[test]
    fn an_unusable_config_means_all_defaults_and_one_problem() {
        for bad in [
            r#""https://c.example""#,
            r#"{"endpoint": "https://c.example", "site": 5}"#,
            r#"{"endpoint": "https://c.example", "sensitiveParams": ["a", 1]}"#,
            r#"{"endpoint": "https://c.example", "autocapture": "false"}"#,
            r#"{"endpoint": "https://c.example", "sessionTimeoutMinutes": "30"}"#,
            r#"{"endpoint": "https://c.example", "sensitiveParams": {"a": 1}}"#,
            r#"["https://c.example"]"#,
        ] {
            let (c, problem) = check(bad);
            assert_eq!(problem, Some(ConfigProblem::Unusable), "{bad}");
            assert_eq!(
                c,
                Config::new("https://page.example", "page.example"),
                "{bad}"
            );
        }
    }
}
