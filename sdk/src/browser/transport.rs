//! Getting a batch to the collector: `sendBeacon`, else `fetch` with keepalive.

use crate::Batch;
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_sys::RequestInit;

/// Sends one batch as `text/plain` JSON (no CORS preflight). The error is a
/// console-ready explanation.
pub fn send(url: &str, batch: &Batch) -> Result<(), &'static str> {
    let body = encode(batch).ok_or("could not encode a batch")?;
    let window = web_sys::window().ok_or("no window to send from")?;
    if window
        .navigator()
        .send_beacon_with_opt_str(url, Some(&body))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    // `keepalive` lets the request outlive the page; set by name because
    // web-sys marks the setter unstable.
    let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
    let pending = window.fetch_with_str_and_init(url, &init);
    IGNORE.with(|ignore| {
        let _ = pending.catch(ignore);
    });
    Ok(())
}

/// JSON text built by the browser's own `JSON.stringify`: no JSON encoder in the wasm.
fn encode(batch: &Batch) -> Option<String> {
    let value = batch
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .ok()?;
    js_sys::JSON::stringify(&value).ok()?.as_string()
}

thread_local! {
    /// One shared rejection handler, so a failed fetch never shows up as an
    /// unhandled rejection in the host page.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
}
