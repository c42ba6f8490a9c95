//! What the page configures.

use crate::session::SessionRules;

/// Tracker configuration, already validated by the shell.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Collector origin, e.g. `https://collect.example.com`; batches go to `{endpoint}/v1/batch`.
    pub endpoint: String,
    /// Site id the events belong to.
    pub site: String,
    pub session: SessionRules,
    /// Send a `page_view` when the tracker starts.
    pub autocapture: bool,
}

impl Config {
    pub fn new(endpoint: &str, site: &str) -> Config {
        Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            site: site.to_owned(),
            session: SessionRules::default(),
            autocapture: true,
        }
    }

    /// The URL batches are posted to.
    pub fn batch_url(&self) -> String {
        format!("{}/v1/batch", self.endpoint)
    }
}
