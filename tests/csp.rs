//! The script tag as the README prints it for strict sites: with an SRI
//! `integrity` hash and `crossorigin="anonymous"`, on a page of another origin
//! whose Content-Security-Policy allows the snippet's inline script by its
//! hash, `'wasm-unsafe-eval'` and the collector's origin, and nothing else;
//! and the same page without `'wasm-unsafe-eval'`, where the SDK must fail
//! to start for exactly that reason (the test's own inline probe records the
//! page's CSP violations and warnings).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};
use waymark_e2e::{root, serve_page_with_headers, Browser, Collector};

/// The README's first snippet line: the inline stub the policy must allow.
const STUB: &str = "window.waymark=window.waymark||function(){(window.waymark.q=window.waymark.q||[]).push(arguments)};";

/// The test's own inline script, run before `sdk.js` (and allowed by its hash
/// on both pages): it records every CSP violation the page reports and every
/// `console.warn`, so the test can tell why the SDK did not start.
const PROBE: &str = "(function(){var p=window.__probe={violations:[],warnings:[]};\
document.addEventListener('securitypolicyviolation',function(e){p.violations.push({\
blockedURI:e.blockedURI,effectiveDirective:e.effectiveDirective,sourceFile:e.sourceFile,\
disposition:e.disposition})});\
var warn=console.warn;console.warn=function(){\
p.warnings.push([].map.call(arguments,String).join(' '));return warn.apply(console,arguments)}})();";

/// `openssl dgst -<alg> -binary | base64` of `input`.
fn digest(alg: &str, input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl dgst -{alg} -binary | openssl base64 -A"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A page on its own origin with the snippet (SRI included) under `policy`.
async fn page_under(collector: &str, site: &str, policy: String) -> String {
    let sdk = std::fs::read(root().join("www/pkg/sdk.js"))
        .expect("the SDK is not built: run `cargo xtask build-sdk` (or `cargo xtask test`)");
    let integrity = format!("sha384-{}", digest("sha384", &sdk));
    let html = format!(
        "<!doctype html><html><head><title>Strict</title>\n\
         <script>{PROBE}</script>\n\
         <script>{STUB}</script>\n\
         <script async src=\"{collector}/sdk.js\" integrity=\"{integrity}\" crossorigin=\"anonymous\" \
         data-endpoint=\"{collector}\" data-site=\"{site}\"></script>\n\
         </head><body><p>A page with a strict policy.</p></body></html>"
    );
    let addr = serve_page_with_headers(html, vec![("content-security-policy", policy)]).await;
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_script_tag_works_under_a_strict_csp_with_sri() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let collector = Collector::start().await;
    let origin = collector.url("");
    let inline_hashes = format!(
        "'sha256-{}' 'sha256-{}'",
        digest("sha256", STUB.as_bytes()),
        digest("sha256", PROBE.as_bytes())
    );
    let browser = Browser::start().await;

    let allowed = page_under(
        &origin,
        "strict",
        format!(
            "default-src 'none'; script-src 'self' {inline_hashes} 'wasm-unsafe-eval' {origin}; connect-src {origin}"
        ),
    )
    .await;
    browser
        .client
        .goto(&allowed)
        .await
        .expect("open the strict page");
    browser
        .wait_until("return window.waymark && window.waymark.tracker && window.waymark.sessionId()")
        .await;
    let session_id = browser.eval("return window.waymark.sessionId()").await;
    // The wasm came by its content-hashed, immutable URL.
    let wasm_urls = browser
        .eval("return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('.wasm'))")
        .await;
    let wasm_urls: Vec<String> = serde_json::from_value(wasm_urls).unwrap();
    assert!(
        wasm_urls.len() == 1 && wasm_urls[0].starts_with(&format!("{origin}/sdk.wasm?v=")),
        "{wasm_urls:?}"
    );
    browser
        .eval("waymark('track', 'strict_ok'); waymark('flush'); return null")
        .await;
    let rows = collector
        .wait_for("the strict page's events", |rows| {
            rows.iter().any(|r| r.name.as_deref() == Some("strict_ok"))
        })
        .await;
    assert!(
        rows.iter().all(|r| r.site == "strict"
            && r.url == allowed
            && Some(r.session_id.as_str()) == session_id.as_str()),
        "{rows:#?}"
    );
    assert_eq!(rows[0].kind, "page_view");
    // The policy let through everything the SDK does.
    let probe = browser.eval("return window.__probe").await;
    assert_eq!(probe["violations"], serde_json::json!([]), "{probe}");
    assert_eq!(probe["warnings"], serde_json::json!([]), "{probe}");

    // The same page without 'wasm-unsafe-eval': the policy is really
    // enforced, the SDK cannot start, and nothing is sent. It must fail for
    // that reason and no other: sdk.js loads (its integrity checked) and
    // runs, and the browser refuses to compile its wasm. (Without these
    // checks a broken sdk.js would pass here.)
    let refused = page_under(
        &origin,
        "refused",
        format!(
            "default-src 'none'; script-src 'self' {inline_hashes} {origin}; connect-src {origin}"
        ),
    )
    .await;
    browser
        .client
        .goto(&refused)
        .await
        .expect("open the refusing page");
    // sdk.js's own word that it could not start (its loader's only failure
    // path, after its code ran)…
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = loop {
        let probe = browser.eval("return window.__probe").await;
        let said = probe["warnings"].as_array().is_some_and(|w| {
            w.iter().any(|w| {
                w.as_str()
                    .is_some_and(|w| w.starts_with("waymark: could not load the SDK"))
            })
        });
        if said {
            break probe;
        }
        assert!(
            Instant::now() < deadline,
            "sdk.js never said it could not start: {probe}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let warnings: Vec<String> = serde_json::from_value(probe["warnings"].clone()).unwrap();
    assert_eq!(warnings.len(), 1, "{probe}");
    // …because compiling WebAssembly is refused by the policy…
    assert!(
        warnings[0].contains("CompileError")
            && warnings[0].contains("WebAssembly")
            && warnings[0].contains("Content Security Policy"),
        "{probe}"
    );
    // …which the page reports as the one violation: WebAssembly compilation
    // ('wasm-eval') against script-src, by sdk.js. No other: neither sdk.js
    // nor the fetch of its wasm was blocked.
    let violations = probe["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{probe}");
    let violation = &violations[0];
    assert_eq!(violation["blockedURI"], "wasm-eval", "{probe}");
    assert_eq!(violation["effectiveDirective"], "script-src", "{probe}");
    assert_eq!(violation["disposition"], "enforce", "{probe}");
    assert!(
        violation["sourceFile"]
            .as_str()
            .is_some_and(|f| f.starts_with(&format!("{origin}/sdk.js"))),
        "{probe}"
    );
    // (The wasm's own fetch may not show in Resource Timing: its body is
    // never read once compiling it is refused.)
    let fetched = browser
        .eval("return performance.getEntriesByType('resource').map(e => e.name)")
        .await;
    let fetched: Vec<String> = serde_json::from_value(fetched).unwrap();
    assert!(
        fetched.contains(&format!("{origin}/sdk.js")),
        "sdk.js was loaded: {fetched:?}"
    );
    let started = browser
        .eval("return !!(window.waymark && window.waymark.tracker)")
        .await;
    assert_eq!(started, false, "the SDK ran without 'wasm-unsafe-eval'");
    assert!(collector.events().iter().all(|r| r.site != "refused"));

    browser.close().await;
    collector.stop().await;
}
