//! URL hygiene: query parameters that look like secrets or personal data are
//! removed from a URL, by the SDK before an event leaves the page and by the
//! collector again before anything is stored.
//!
//! A parameter is removed when its name contains one of the sensitive words
//! (case-insensitive), or when its value looks like an e-mail address. The
//! rest of the URL is kept byte for byte. Both sides call this same code: the
//! SDK with its configured words ([`DEFAULT_SENSITIVE_PARAMS`] unless the page
//! replaces them), the collector always with [`DEFAULT_SENSITIVE_PARAMS`].
//! Removing is idempotent, so what the SDK sent with the built-in words
//! reaches the store unchanged.

use alloc::borrow::ToOwned;
use alloc::string::String;

use crate::text;

/// Words that mark a query parameter as sensitive, by default (the SDK) and
/// always (the collector).
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
/// hash router's fragment (`#/reset?token=…`) alike. `sensitive` holds
/// lowercase words.
pub fn redact_url<S: AsRef<str>>(url: &str, sensitive: &[S]) -> String {
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
fn redact_query<S: AsRef<str>>(part: &str, sensitive: &[S]) -> String {
    let Some((head, query)) = text::split_at(part, b'?') else {
        return part.to_owned();
    };
    let pairs = text::parts(query, b'&');
    if !pairs.clone().any(|pair| is_sensitive_pair(pair, sensitive)) {
        return part.to_owned();
    }
    let kept = text::join(
        pairs.filter(|p| !p.is_empty() && !is_sensitive_pair(p, sensitive)),
        "&",
    );
    if kept.is_empty() {
        head.to_owned()
    } else {
        text::concat(&[head, "?", &kept])
    }
}

/// Whether a query pair `name=value` is one [`redact_url`] removes: its name
/// contains one of the `sensitive` words (lowercase) whatever its case, or its
/// value looks like an e-mail address. For parameters kept apart from their
/// URL (the SDK's `context.campaign`).
pub fn is_sensitive_pair<S: AsRef<str>>(pair: &str, sensitive: &[S]) -> bool {
    let (name, value) = text::split_at(pair, b'=').unwrap_or((pair, ""));
    let name = name.to_ascii_lowercase();
    sensitive
        .iter()
        .any(|word| text::contains(&name, word.as_ref()))
        || looks_like_email(value)
}

/// `local@domain.tld`, also percent-encoded (`%40`).
pub fn looks_like_email(value: &str) -> bool {
    // Split at the first `@`, whichever way it is written.
    let split = match (text::split_at(value, b'@'), text::split_once(value, "%40")) {
        (Some(plain), Some(encoded)) if encoded.0.len() < plain.0.len() => Some(encoded),
        (plain, encoded) => plain.or(encoded),
    };
    split.is_some_and(|(local, domain)| {
        !local.is_empty() && domain.bytes().any(|b| b == b'.') && !domain.starts_with('.')
    })
}

#[cfg(test)]
mod tests;
