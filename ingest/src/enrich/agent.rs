//! User agent → browser, OS, device type, and whether it is a bot.

use woothee::parser::Parser;

/// What a user agent says about the device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    pub browser: Option<String>,
    pub os: Option<String>,
    /// `desktop`, `mobile`, `tablet` or `bot`.
    pub device_type: Option<String>,
    pub is_bot: bool,
}

/// Pieces of user agents of crawlers, monitors, HTTP libraries and driven
/// browsers that woothee's crawler list does not name (lowercase; in the
/// spirit of the `isbot` patterns).
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "headlesschrome",
    "phantomjs",
    "lighthouse",
    "pagespeed",
    "chrome-lighthouse",
    "gtmetrix",
    "pingdom",
    "uptime",
    "facebookexternalhit",
    "embedly",
    "mediapartners",
    "feedfetcher",
    "scrapy",
    "puppeteer",
    "playwright",
    "selenium",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "axios/",
    "node-fetch",
    "undici",
    "libwww",
    "httpclient",
    "postman",
    "insomnia",
];

/// Parses a user agent with woothee (its data compiled in, no files), then
/// refines what woothee leaves coarse: tablets, and bots it does not list.
pub fn parse(user_agent: &str) -> Agent {
    let lower = user_agent.to_ascii_lowercase();
    let parsed = Parser::new().parse(user_agent);
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_owned());
    let browser = parsed.as_ref().and_then(|p| known(p.name));
    let os = parsed.as_ref().and_then(|p| known(p.os));
    let category = parsed.as_ref().map(|p| p.category).unwrap_or_default();
    let is_bot = category == "crawler" || BOT_MARKERS.iter().any(|m| lower.contains(m));

    let device_type = if is_bot {
        Some("bot")
    } else if lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"))
    {
        Some("tablet")
    } else {
        match category {
            "smartphone" | "mobilephone" => Some("mobile"),
            "pc" => Some("desktop"),
            _ => None,
        }
    };
    Agent {
        browser,
        os,
        device_type: device_type.map(str::to_owned),
        is_bot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
        (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) \
        AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 \
        (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
    const FIREFOX_ANDROID_TABLET: &str =
        "Mozilla/5.0 (Android 13; Tablet; rv:120.0) Gecko/120.0 Firefox/120.0";
    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const HEADLESS: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
        HeadlessChrome/120.0.0.0 Safari/537.36";

    fn owned(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn browsers_os_and_device_types() {
        assert_eq!(
            parse(CHROME_WINDOWS),
            Agent {
                browser: owned("Chrome"),
                os: owned("Windows 10"),
                device_type: owned("desktop"),
                is_bot: false
            }
        );
        let iphone = parse(SAFARI_IPHONE);
        assert_eq!(
            (
                iphone.browser.as_deref(),
                iphone.os.as_deref(),
                iphone.device_type.as_deref()
            ),
            (Some("Safari"), Some("iPhone"), Some("mobile"))
        );
        assert_eq!(parse(SAFARI_IPAD).device_type.as_deref(), Some("tablet"));
        assert_eq!(
            parse(FIREFOX_ANDROID_TABLET).device_type.as_deref(),
            Some("tablet")
        );
    }

    #[test]
    fn crawlers_http_libraries_and_headless_browsers_are_bots() {
        for ua in [
            GOOGLEBOT,
            HEADLESS,
            "curl/8.4.0",
            "python-requests/2.31",
            "Bingbot",
        ] {
            let agent = parse(ua);
            assert!(agent.is_bot, "{ua}");
            assert_eq!(agent.device_type.as_deref(), Some("bot"), "{ua}");
        }
        assert!(!parse(CHROME_WINDOWS).is_bot);
        assert_eq!(parse(""), Agent::default());
    }
}
