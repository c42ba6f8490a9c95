//! Auto-capture: page views of classic and single-page apps, page leaves
//! with engagement and scroll depth, and clicks.
//!
//! Every listener is owned by the tracker and removed when it is dropped;
//! the history API is wrapped (and unwrapped on drop) rather than polled.
//! Work inside a click or a navigation is bounded: a few DOM reads and one
//! event pushed onto the queue.

use super::dom::{self, Listener, Mode};
use super::{plain_data, record, Shell};
use crate::{ClickTarget, Node, Value};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// How long a navigation settles before its page view is taken, so that the
/// title the app sets after rendering is the one recorded.
const SETTLE_MS: i32 = 100;
/// Scroll positions are read at most this often.
const SCROLL_EVERY_MS: u64 = 200;
/// Which kinds of capture to install.
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    pub page_views: bool,
    pub clicks: bool,
}

/// Installs the listeners; the returned guards remove them when dropped.
pub fn install(inner: &Rc<RefCell<Shell>>, capture: Capture) -> Vec<Listener> {
    let weak = Rc::downgrade(inner);
    let mut guards = Vec::new();
    // Leaving and engagement matter for delivery too: always listen.
    guards.push(dom::on_window("pagehide", Mode::Bubble, {
        let weak = weak.clone();
        move |_| {
            record(&weak, |core| core.leave(dom::now_local()));
            super::flush(&weak, super::delivery::Send::Leaving);
        }
    }));
    guards.push(dom::on_document("visibilitychange", Mode::Bubble, {
        let weak = weak.clone();
        move |_| {
            let now = dom::now();
            record(&weak, |core| core.set_active(now, dom::is_active()));
            if dom::is_hidden() {
                record(&weak, |core| core.leave(dom::now_local()));
                super::flush(&weak, super::delivery::Send::Leaving);
            }
        }
    }));
    // Offline pauses delivery; back online it resumes at once.
    for (kind, online) in [("online", true), ("offline", false)] {
        guards.push(dom::on_window(kind, Mode::Bubble, {
            let weak = weak.clone();
            move |_| super::set_online(&weak, online)
        }));
    }
    for kind in ["focus", "blur"] {
        guards.push(dom::on_window(kind, Mode::Bubble, {
            let weak = weak.clone();
            move |_| record(&weak, |core| core.set_active(dom::now(), dom::is_active()))
        }));
    }
    guards.push(dom::on_window("scroll", Mode::Passive, {
        let weak = weak.clone();
        let last = std::cell::Cell::new(0u64);
        move |_| {
            let now = dom::now();
            if now.saturating_sub(last.get()) >= SCROLL_EVERY_MS {
                last.set(now);
                record(&weak, |core| core.scrolled(dom::scroll_pct()));
            }
        }
    }));
    if capture.page_views {
        for kind in ["popstate", "hashchange"] {
            guards.push(dom::on_window(kind, Mode::Bubble, navigation(&weak)));
        }
        guards.push(dom::on_window("pageshow", Mode::Bubble, {
            let weak = weak.clone();
            move |event: web_sys::Event| {
                // Restored from the back/forward cache: a new page view.
                if js_sys::Reflect::get(&event, &"persisted".into()).is_ok_and(|p| p.is_truthy()) {
                    record(&weak, |core| {
                        core.page_view(dom::now_local(), &dom::page(true))
                    });
                }
            }
        }));
        guards.push(HistoryHook::install("pushState", navigation(&weak)));
        guards.push(HistoryHook::install("replaceState", navigation(&weak)));
    }
    if capture.clicks {
        guards.push(dom::on_document("click", Mode::Capture, {
            let weak = weak.clone();
            move |event: web_sys::Event| {
                if let Some(target) = describe_click(&event) {
                    let page = dom::page(false);
                    record(&weak, |core| core.click(dom::now_local(), &page, &target));
                }
            }
        }));
    }
    guards.into_iter().flatten().collect()
}

/// A navigation callback: notes the time and URL now; the page view is
/// taken once the app has rendered (same URL twice is skipped by the core).
fn navigation(weak: &Weak<RefCell<Shell>>) -> impl Fn(web_sys::Event) + 'static {
    let weak = weak.clone();
    move |_| super::navigated(&weak, dom::now_local(), dom::page(false).url, SETTLE_MS)
}

/// `history.pushState` / `replaceState` wrapped so the tracker hears of
/// in-app navigations; the page's own call is made first and its result (or
/// exception) passed through untouched. Dropping the hook restores the original.
struct HistoryHook;

impl HistoryHook {
    fn install(name: &'static str, notify: impl Fn(web_sys::Event) + 'static) -> Option<Listener> {
        let history: JsValue = web_sys::window()?.history().ok()?.into();
        let original: js_sys::Function = js_sys::Reflect::get(&history, &name.into())
            .ok()?
            .dyn_into()
            .ok()?;
        let this = history.clone();
        let wrapper =
            Closure::<dyn FnMut(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
                move |state: JsValue, title: JsValue, url: JsValue| {
                    let result = original.call3(&this, &state, &title, &url)?;
                    if let Ok(event) = web_sys::Event::new(name) {
                        notify(event);
                    }
                    Ok(result)
                },
            );
        js_sys::Reflect::set(&history, &name.into(), wrapper.as_ref()).ok()?;
        Some(Listener::Method {
            target: history,
            name,
            wrapper: wrapper.into_js_value(),
        })
    }
}

/// What a click may record, or `None` when it is not on anything
/// interactive or lands inside `data-waymark-ignore`.
fn describe_click(event: &web_sys::Event) -> Option<ClickTarget> {
    let read = plain_data::from_js(&dom::read_click(event))?;
    let data = match read.get("data") {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|pair| match pair {
                Value::Array(kv) => match &kv[..] {
                    [Value::String(k), Value::String(v)] => Some((k.clone(), v.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let ancestors = match read.get("ancestors") {
        Some(Value::Array(nodes)) => nodes.iter().filter_map(node_of).collect(),
        _ => Vec::new(),
    };
    Some(ClickTarget {
        node: node_of(read.get("node")?)?,
        ancestors,
        text: string(read.get("text")).unwrap_or_default(),
        href: string(read.get("href")),
        input_type: string(read.get("type")),
        data,
    })
}

/// A non-empty string.
fn string(value: Option<&Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// An element's tag, id and classes.
fn node_of(value: &Value) -> Option<Node> {
    let classes = match value.get("classes") {
        Some(Value::Array(list)) => list.iter().filter_map(|c| string(Some(c))).collect(),
        _ => Vec::new(),
    };
    Some(Node {
        tag: string(value.get("tag"))?,
        id: string(value.get("id")),
        classes,
    })
}
