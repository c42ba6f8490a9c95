//! The page's config (`init(config)`, or the script tag's data attributes as
//! the loader reads them), read with serde-wasm-bindgen into plain data, then
//! read and checked by the core ([`PageConfig::from_value`],
//! [`PageConfig::check`]).

use wasm_bindgen::JsValue;
use waymark_sdk_core::{Config, ConfigProblem, PageConfig, Value};

/// The tracker's config, and what could not be used of the page's (one
/// console warning). A value that is not an object of the documented keys
/// and types, or whose reading throws (a getter), means all defaults.
pub fn read_config(page_config: &JsValue) -> (Config, Option<ConfigProblem>) {
    // Read from a JSON snapshot: serde-wasm-bindgen's property reads are
    // not fallible, so a getter that throws would throw into the page;
    // `JSON.stringify` catches it (and a cycle). Numbers that are not finite
    // become `null`, which is what they mean here: the default.
    let page = js_sys::JSON::stringify(page_config)
        .ok()
        .and_then(|text| js_sys::JSON::parse(&String::from(text)).ok())
        .filter(JsValue::is_object)
        .and_then(|snapshot| serde_wasm_bindgen::from_value::<Value>(snapshot).ok())
        .and_then(|value| PageConfig::from_value(&value));
    let (origin, host) = super::page::origin_and_host();
    let (mut config, problem) = PageConfig::check(page, &origin, &host);
    config.do_not_track = super::page::do_not_track();
    (config, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::*;

    wasm_bindgen_test_configure!(run_in_browser);

    fn js(body: &str) -> JsValue {
        js_sys::Function::new_no_args(body)
            .call0(&JsValue::NULL)
            .unwrap()
    }

    /// What the core checks natively, read here from real JS values: the
    /// shapes serde-wasm-bindgen must accept and refuse.
    #[wasm_bindgen_test]
    fn js_values_are_read_as_the_core_expects() {
        let (c, problem) = read_config(&js(
            "return {endpoint: 'https://c.example/', site: 's', sessionTimeoutMinutes: 1.5,
                     maxSessionHours: 0, captureClicks: false, sensitiveParams: [' Plan ', 'KEY'], wasmUrl: 'x'}",
        ));
        assert_eq!(problem, None);
        assert_eq!(
            (c.endpoint.as_str(), c.site.as_str()),
            ("https://c.example", "s")
        );
        assert_eq!(
            (c.session.idle_timeout_ms, c.session.max_length_ms),
            (90_000, None)
        );
        assert!(c.autocapture && !c.clicks);
        assert_eq!(c.sensitive_params, ["plan", "key"]);
        let (c, _) = read_config(&js(
            "return {endpoint: 'e', sensitiveParams: 'a, B,', maxSessionHours: NaN, site: null}",
        ));
        assert_eq!(c.sensitive_params, ["a", "b"]);
        assert_eq!(
            c.session.max_length_ms,
            waymark_sdk_core::SessionRules::default().max_length_ms
        );
        assert_eq!(c.site, js("return location.hostname").as_string().unwrap());
        let (c, problem) = read_config(&js("return {}"));
        assert_eq!(problem, Some(ConfigProblem::NoEndpoint));
        assert_eq!(
            c.endpoint,
            js("return location.origin").as_string().unwrap()
        );
        for bad in [
            "return 'https://c.example'",
            "return {endpoint: 'https://c.example', site: 5}",
            "return {endpoint: 'https://c.example', sensitiveParams: ['a', 1]}",
            "return {endpoint: 'https://c.example', sensitiveParams: ['a', , 'b']}",
            "return {endpoint: 'https://c.example', get site() { throw new Error('no'); }}",
        ] {
            let (c, problem) = read_config(&js(bad));
            assert_eq!(problem, Some(ConfigProblem::Unusable), "{bad}");
            assert_eq!(
                c.endpoint,
                js("return location.origin").as_string().unwrap(),
                "{bad}"
            );
        }
    }
}
