//! Which sites the collector takes events for, and from which origins
//! (`WAYMARK_SITES`).
//!
//! Syntax: sites separated by `;`, each `site=origins` with origins separated
//! by `,`. An origin is `scheme://host[:port]` as the browser sends it in the
//! `Origin` header; `*` allows any origin; `https://*.example.com` allows the
//! subdomains of `example.com` (not `example.com` itself). Whitespace around
//! the pieces is ignored, and so is a trailing `/` or `;`.
//!
//! ```text
//! WAYMARK_SITES="demo=http://127.0.0.1:8080,https://example.com; shop=*"
//! ```
//!
//! When it is unset the collector runs in demo mode: any site id from any
//! origin.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The allowed sites and their origins; `Sites::any()` is demo mode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sites {
    /// `None`: demo mode, everything accepted.
    allowed: Option<BTreeMap<String, Vec<OriginPattern>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OriginPattern {
    Any,
    Exact(String),
    /// `scheme://*.domain[:port]`: the scheme, the dot-prefixed domain and port suffix.
    Subdomains {
        scheme: String,
        suffix: String,
        port: String,
    },
}

/// Why a batch is refused for its site or origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteRefusal {
    UnknownSite,
    OriginNotAllowed,
}

impl Sites {
    /// Demo mode: any site from any origin.
    pub fn any() -> Sites {
        Sites { allowed: None }
    }

    pub fn is_demo_mode(&self) -> bool {
        self.allowed.is_none()
    }

    /// May `origin` (the request's `Origin` header, if any) send events for
    /// `site`? A request without an `Origin` is not from a browser page (the
    /// browser always sends one with a POST); it is let through, because the
    /// origin check guards against other sites' pages, not against scripts,
    /// which can send any header they like.
    pub fn check(&self, site: &str, origin: Option<&str>) -> Result<(), SiteRefusal> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let patterns = allowed.get(site).ok_or(SiteRefusal::UnknownSite)?;
        let Some(origin) = origin else {
            return Ok(());
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if patterns.iter().any(|p| p.matches(&origin)) {
            Ok(())
        } else {
            Err(SiteRefusal::OriginNotAllowed)
        }
    }

    /// The configured site ids (empty in demo mode).
    pub fn site_ids(&self) -> Vec<&str> {
        self.allowed
            .iter()
            .flat_map(|a| a.keys().map(String::as_str))
            .collect()
    }
}

impl OriginPattern {
    fn parse(text: &str) -> Result<OriginPattern, String> {
        let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
        if text == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("origin {text:?} must look like https://example.com"))?;
        if scheme.is_empty() || rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "origin {text:?} must be scheme://host[:port], without a path"
            ));
        }
        if let Some(domain) = rest.strip_prefix("*.") {
            let (host, port) = match domain.rsplit_once(':') {
                Some((host, port)) => (host, format!(":{port}")),
                None => (domain, String::new()),
            };
            return Ok(OriginPattern::Subdomains {
                scheme: scheme.to_owned(),
                suffix: format!(".{host}"),
                port,
            });
        }
        if rest.contains('*') {
            return Err(format!("origin {text:?}: `*` only as `*.domain`"));
        }
        Ok(OriginPattern::Exact(text))
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(exact) => origin == exact,
            OriginPattern::Subdomains {
                scheme,
                suffix,
                port,
            } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|o| o.strip_prefix("://"))
                .and_then(|o| o.strip_suffix(port.as_str()))
                .is_some_and(|host| {
                    host.len() > suffix.len()
                        && host.ends_with(suffix.as_str())
                        && !host.contains(':')
                }),
        }
    }
}

impl FromStr for Sites {
    type Err = String;

    fn from_str(text: &str) -> Result<Sites, String> {
        let mut allowed = BTreeMap::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (site, origins) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: expected site=origin,origin or site=*"))?;
            let site = site.trim();
            if site.is_empty() {
                return Err(format!("{entry:?}: the site id is empty"));
            }
            let patterns = origins
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(OriginPattern::parse)
                .collect::<Result<Vec<_>, _>>()?;
            if patterns.is_empty() {
                return Err(format!("{site}: no origins; use {site}=* to allow any"));
            }
            if allowed.insert(site.to_owned(), patterns).is_some() {
                return Err(format!("{site}: listed twice"));
            }
        }
        if allowed.is_empty() {
            return Err("no sites listed; leave WAYMARK_SITES unset for demo mode".to_owned());
        }
        Ok(Sites {
            allowed: Some(allowed),
        })
    }
}

impl fmt::Display for Sites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_demo_mode() {
            f.write_str("any site (demo mode)")
        } else {
            f.write_str(&self.site_ids().join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sites_and_origins_are_checked() {
        let sites: Sites = " demo = http://127.0.0.1:8080 , https://Example.com/ ; shop=* ;"
            .parse()
            .unwrap();
        assert!(!sites.is_demo_mode());
        assert_eq!(sites.site_ids(), vec!["demo", "shop"]);
        assert_eq!(sites.check("demo", Some("http://127.0.0.1:8080")), Ok(()));
        assert_eq!(sites.check("demo", Some("https://example.com")), Ok(()));
        assert_eq!(sites.check("demo", None), Ok(()));
        assert_eq!(
            sites.check("demo", Some("http://127.0.0.1:9090")),
            Err(SiteRefusal::OriginNotAllowed)
        );
        assert_eq!(
            sites.check("demo", Some("null")),
            Err(SiteRefusal::OriginNotAllowed)
        );
        assert_eq!(sites.check("shop", Some("null")), Ok(()));
        assert_eq!(
            sites.check("blog", Some("https://example.com")),
            Err(SiteRefusal::UnknownSite)
        );
        assert_eq!(sites.check("blog", None), Err(SiteRefusal::UnknownSite));
    }

    #[test]
    fn subdomain_patterns() {
        let sites: Sites = "s=https://*.example.com,http://*.local.test:8080"
            .parse()
            .unwrap();
        assert_eq!(sites.check("s", Some("https://www.example.com")), Ok(()));
        assert_eq!(sites.check("s", Some("https://a.b.example.com")), Ok(()));
        assert!(sites.check("s", Some("https://example.com")).is_err());
        assert!(sites.check("s", Some("https://evilexample.com")).is_err());
        assert!(sites.check("s", Some("http://www.example.com")).is_err());
        assert!(sites
            .check("s", Some("https://www.example.com:444"))
            .is_err());
        assert_eq!(sites.check("s", Some("http://x.local.test:8080")), Ok(()));
        assert!(sites.check("s", Some("http://x.local.test")).is_err());
    }

    #[test]
    fn demo_mode_accepts_everything() {
        let sites = Sites::any();
        assert!(sites.is_demo_mode());
        assert_eq!(sites.check("anything", Some("https://x.example")), Ok(()));
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        for (text, expected) in [
            ("", "no sites"),
            ("demo", "expected site=origin"),
            ("demo=", "no origins"),
            ("=https://a.example", "site id is empty"),
            ("demo=example.com", "must look like"),
            ("demo=https://a.example/path", "without a path"),
            ("demo=https://a*.example", "only as"),
            ("demo=*;demo=*", "listed twice"),
        ] {
            let err = text.parse::<Sites>().err().unwrap_or_default();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
