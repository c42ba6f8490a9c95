//! What the stores derive from URLs: a page's key (its path) and the fields
//! of a session's landing page view (its `utm_*` set and the referrer's
//! domain). Pure functions, so every store derives the same keys.

use serde::{Deserialize, Serialize};

/// A page's key: its URL's path, without scheme, host, query or fragment,
/// percent-encoded as the URL standard writes it (`/é` is `/%C3%A9`). A
/// path alone (`/pricing`, as in a filter) gives the same key as a whole URL
/// with that path; text that is no URL is read as a path.
pub fn page_path(url: &str) -> String {
    let parsed = url::Url::parse(url)
        .or_else(|_| url::Url::parse("http://page.invalid/").and_then(|base| base.join(url)));
    match parsed {
        Ok(u) if u.cannot_be_a_base() => "/".to_owned(),
        Ok(u) => u.path().to_owned(),
        Err(_) => "/".to_owned(),
    }
}

/// What a session keeps of its landing page view: the landing URL's
/// campaign and the referrer's domain. Decided by the same event as
/// [`Session::landing_page`](crate::Session::landing_page) and
/// [`Session::source`](crate::Session::source).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landing {
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    /// The referrer's host, lowercase, without `www.`, when it is another
    /// site than the landing page's.
    pub referrer_domain: Option<String>,
}

impl Landing {
    /// The fields of a landing page view at `url` with `referrer`.
    pub fn of(url: &str, referrer: Option<&str>) -> Landing {
        let landing = url::Url::parse(url).ok();
        let utm = |name: &str| landing.as_ref().and_then(|u| utm_param(u, name));
        Landing {
            utm_source: utm("utm_source"),
            utm_medium: utm("utm_medium"),
            utm_campaign: utm("utm_campaign"),
            utm_term: utm("utm_term"),
            utm_content: utm("utm_content"),
            referrer_domain: referrer_domain(landing.as_ref(), referrer),
        }
    }
}

/// The first non-blank value of `name` in the URL's query, trimmed.
pub(crate) fn utm_param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim().to_owned())
}

/// The referrer's bare host when it is another site than `landing`'s.
pub(crate) fn referrer_domain(
    landing: Option<&url::Url>,
    referrer: Option<&str>,
) -> Option<String> {
    let landing_host = landing.and_then(|u| u.host_str().map(bare_host));
    let referrer_host = referrer
        .and_then(|r| url::Url::parse(r).ok())
        .and_then(|u| u.host_str().map(bare_host));
    referrer_host.filter(|host| !host.is_empty() && Some(host) != landing_host.as_ref())
}

fn bare_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    host.strip_prefix("www.").map(str::to_owned).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_keyed_by_its_path() {
        for (url, path) in [
            ("https://shop.example/pricing?plan=pro#faq", "/pricing"),
            ("https://shop.example", "/"),
            ("https://shop.example/", "/"),
            ("http://127.0.0.1:8080/a/b/?x", "/a/b/"),
            ("/pricing", "/pricing"),
            ("pricing", "/pricing"),
            ("/pricing?x=1#y", "/pricing"),
            ("https://shop.example/é", "/%C3%A9"),
            ("/é", "/%C3%A9"),
            ("", "/"),
            ("mailto:someone@example.com", "/"),
        ] {
            assert_eq!(page_path(url), path, "{url:?}");
        }
    }

    #[test]
    fn the_landing_keeps_its_campaign_and_another_sites_referrer() {
        let landing = Landing::of(
            "https://shop.example/?utm_source=news&utm_medium=%20email%20&utm_campaign=a%2Cb\
             &utm_term=&utm_content=top&utm_source=second",
            Some("https://WWW.Mail.example.com/inbox"),
        );
        assert_eq!(
            landing,
            Landing {
                utm_source: Some("news".to_owned()),
                utm_medium: Some("email".to_owned()),
                utm_campaign: Some("a,b".to_owned()),
                utm_term: None,
                utm_content: Some("top".to_owned()),
                referrer_domain: Some("mail.example.com".to_owned()),
            }
        );
        let own = Landing::of("https://www.shop.example/a", Some("https://shop.example/b"));
        assert_eq!(own, Landing::default(), "its own site is no referrer");
        assert_eq!(
            Landing::of("not a url", Some("nor this")),
            Landing::default()
        );
    }
}
