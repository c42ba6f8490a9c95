use super::*;
use alloc::format;
use alloc::vec::Vec;

fn redact(url: &str) -> String {
    redact_url(url, DEFAULT_SENSITIVE_PARAMS)
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

#[test]
fn the_list_is_configurable() {
    assert_eq!(
        redact_url("https://x.test/?plan=pro&token=t", &["plan"]),
        "https://x.test/?token=t"
    );
    let none: &[&str] = &[];
    assert_eq!(
        redact_url("https://x.test/?token=t", none),
        "https://x.test/?token=t"
    );
    // The SDK's configured words are owned strings: the same function.
    let owned: Vec<String> = DEFAULT_SENSITIVE_PARAMS
        .iter()
        .map(|w| (*w).to_owned())
        .collect();
    assert_eq!(
        redact_url("https://x.test/?tel=1&a=b", &owned),
        redact("https://x.test/?tel=1&a=b")
    );
}

#[test]
fn a_parameter_on_its_own_is_judged_as_in_a_url() {
    assert!(is_sensitive_pair("Session_ID=x", DEFAULT_SENSITIVE_PARAMS));
    assert!(is_sensitive_pair(
        "utm_content=bob@mail.example",
        DEFAULT_SENSITIVE_PARAMS
    ));
    assert!(!is_sensitive_pair(
        "utm_source=news",
        DEFAULT_SENSITIVE_PARAMS
    ));
}

#[cfg(not(target_arch = "wasm32"))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The rule written with std's searching and splitting, for comparison.
    fn with_std(url: &str, words: &[&str]) -> String {
        let sensitive = |pair: &str| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = name.to_ascii_lowercase();
            let decoded = value.replace("%40", "@");
            let email = decoded.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            });
            words.iter().any(|w| name.contains(w)) || email
        };
        let clean = |part: &str| -> String {
            let Some((head, query)) = part.split_once('?') else {
                return part.to_owned();
            };
            if !query.split('&').any(sensitive) {
                return part.to_owned();
            }
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| !p.is_empty() && !sensitive(p))
                .collect();
            if kept.is_empty() {
                head.to_owned()
            } else {
                format!("{head}?{}", kept.join("&"))
            }
        };
        match url.split_once('#') {
            Some((page, fragment)) => format!("{}#{}", clean(page), clean(fragment)),
            None => clean(url),
        }
    }

    /// URLs made of the pieces the rule looks at: sensitive words in any
    /// case, `@` and `%40`, dots, `=`, `&`, `?` and `#`, and other text.
    fn url() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "token",
            "Email",
            "SID",
            "code",
            "utm_source",
            "q",
            "x",
            "é",
            "@",
            "%40",
            ".",
            "=",
            "&",
            "?",
            "#",
            "/",
            "a.b",
            "jane",
            "example.com",
        ]);
        prop::collection::vec(piece, 0..16).prop_map(|p| format!("https://x.test/{}", p.concat()))
    }

    proptest! {
        #[test]
        fn email_detection_agrees_with_decoding_first(value in "[%40@.a]{0,10}") {
            let decoded = value.replace("%40", "@");
            let expected = decoded.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            });
            prop_assert_eq!(looks_like_email(&value), expected);
        }

        #[test]
        fn redaction_agrees_with_the_rule_written_with_std(url in url()) {
            prop_assert_eq!(redact(&url), with_std(&url, DEFAULT_SENSITIVE_PARAMS));
        }

        /// The SDK redacts with the built-in words, the collector redacts
        /// what it receives with them again: that second pass changes
        /// nothing, so the store keeps what the SDK sent.
        #[test]
        fn redacting_what_the_sdk_sent_changes_nothing(url in url()) {
            let sent = redact(&url);
            prop_assert_eq!(redact(&sent), sent.clone());
            prop_assert!(!is_sensitive_pair_left(&sent));
        }
    }

    /// Whether any pair of `url`'s query, or of its fragment's query, is
    /// still sensitive.
    fn is_sensitive_pair_left(url: &str) -> bool {
        let (page, fragment) = url.split_once('#').unwrap_or((url, ""));
        [page, fragment].into_iter().any(|part| {
            part.split_once('?').is_some_and(|(_, query)| {
                query
                    .split('&')
                    .any(|pair| is_sensitive_pair(pair, DEFAULT_SENSITIVE_PARAMS))
            })
        })
    }
}
