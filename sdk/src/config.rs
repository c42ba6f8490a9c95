//! What the page configures.

use crate::prelude::*;

use crate::hygiene::default_sensitive_params;
use crate::session::SessionRules;
use crate::text;

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
    /// Words that mark a query parameter as sensitive (see [`crate::redact_url`]).
    pub sensitive_params: Vec<String>,
    /// Store and send nothing until `consent(true)`.
    pub require_consent: bool,
    /// Honour Do Not Track and Global Privacy Control.
    pub respect_dnt: bool,
    /// The browser sends Do Not Track or Global Privacy Control (read by the shell).
    pub do_not_track: bool,
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
