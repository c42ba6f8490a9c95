//! URL hygiene: query parameters that look like secrets or personal data
//! never leave the page.
//!
//! A parameter is removed when its name contains one of the configured words
//! (case-insensitive), or when its value looks like an e-mail address. The
//! rest of the URL is kept byte for byte.

use crate::prelude::*;

use crate::text;

/// Words that mark a query parameter as sensitive, by default.
pub const DEFAULT_SENSITIVE_PARAMS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "api_key",
    "access_key",
    "auth",
    "session",
    "sid",
    "email",
    "e-mail",
    "mail",
    "phone",
    "tel",
    "ssn",
    "credit",
    "card",
    "iban",
    "otp",
    "code",
];

/// `url` without its sensitive query parameters, in the query and in a
/// hash router's fragment (`#/reset?token=…`) alike.
pub fn redact_url(url: &str, sensitive: &[String]) -> String {
    match text::split_at(url, b'#') {
        Some((page, fragment)) => {
            let mut out = redact_query(page, sensitive);
            out.push('#');
            out.push_str(&redact_query(fragment, sensitive));
            out
        }
        None => redact_query(url, sensitive),
    }
}

/// `head?query` without the query's sensitive pairs.
fn redact_query(part: &str, sensitive: &[String]) -> String {
    let Some((head, query)) = text::split_at(part, b'?') else {
        return part.to_owned();
    };
    let pairs = text::parts(query, b'&');
    if !pairs.clone().any(|pair| is_sensitive(pair, sensitive)) {
        return part.to_owned();
    }
    let kept = text::join(
        pairs.filter(|p| !p.is_empty() && !is_sensitive(p, sensitive)),
        "&",
    );
    if kept.is_empty() {
        head.to_owned()
    } else {
        text::concat(&[head, "?", &kept])
    }
}

fn is_sensitive(pair: &str, sensitive: &[String]) -> bool {
    let (name, value) = text::split_at(pair, b'=').unwrap_or((pair, ""));
    let name = name.to_ascii_lowercase();
    sensitive.iter().any(|word| text::contains(&name, word)) || looks_like_email(value)
}

/// `local@domain.tld`, also percent-encoded (`%40`).
fn looks_like_email(value: &str) -> bool {
    // Split at the first `@`, whichever way it is written.
    let split = match (text::split_at(value, b'@'), text::split_once(value, "%40")) {
        (Some(plain), Some(encoded)) if encoded.0.len() < plain.0.len() => Some(encoded),
        (plain, encoded) => plain.or(encoded),
    };
    split.is_some_and(|(local, domain)| {
        !local.is_empty() && domain.bytes().any(|b| b == b'.') && !domain.starts_with('.')
    })
}

/// The default list as owned strings (for [`crate::Config`]).
pub fn default_sensitive_params() -> Vec<String> {
    DEFAULT_SENSITIVE_PARAMS
        .iter()
        .map(|w| (*w).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(url: &str) -> String {
        redact_url(url, &default_sensitive_params())
    }

    #[test]
    fn removes_secret_and_personal_parameters_only() {
        assert_eq!(
            redact("https://x.test/reset?token=abc&step=2&Password=hunter2#top"),
            "https://x.test/reset?step=2#top"
        );
        assert_eq!(
            redact("https://x.test/?access_token=a&id_token=b"),
            "https://x.test/"
        );
        assert_eq!(
            redact("https://x.test/p?utm_source=news&q=shoes&user_email=a%40b.co"),
            "https://x.test/p?utm_source=news&q=shoes"
        );
    }

    #[test]
    fn removes_values_that_are_email_addresses_whatever_the_name() {
        assert_eq!(
            redact("https://x.test/s?q=jane@example.com&page=2"),
            "https://x.test/s?page=2"
        );
        assert_eq!(
            redact("https://x.test/s?q=jane%40example.com"),
            "https://x.test/s"
        );
        assert_eq!(
            redact("https://x.test/s?q=@handle"),
            "https://x.test/s?q=@handle"
        );
    }

    #[test]
    fn cleans_hash_router_queries_too() {
        assert_eq!(
            redact("https://x.test/?a=1#/reset?token=t&next=%2F"),
            "https://x.test/?a=1#/reset?next=%2F"
        );
        assert_eq!(
            redact("https://x.test/#/login?password=p"),
            "https://x.test/#/login"
        );
    }

    #[test]
    fn leaves_clean_urls_untouched() {
        for url in [
            "https://x.test/",
            "https://x.test/a?b=1&c",
            "https://x.test/#/route?x=1",
            "not a url",
        ] {
            assert_eq!(redact(url), url);
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        #[test]
        fn email_detection_agrees_with_decoding_first(value in "[%40@.a]{0,10}") {
            let decoded = value.replace("%40", "@");
            let expected = decoded.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            });
            proptest::prop_assert_eq!(looks_like_email(&value), expected);
        }
    }

    #[test]
    fn the_list_is_configurable() {
        let only_plan = vec!["plan".to_owned()];
        assert_eq!(
            redact_url("https://x.test/?plan=pro&token=t", &only_plan),
            "https://x.test/?token=t"
        );
        assert_eq!(
            redact_url("https://x.test/?token=t", &[]),
            "https://x.test/?token=t"
        );
    }
}
