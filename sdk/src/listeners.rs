//! Auto-capture's listeners: page views of classic and single-page apps,
//! page leaves with engagement and scroll depth, clicks, and the online
//! state. gloo's `EventListener`s and the history API's wrappers belong to
//! the tracker and are removed when it is dropped. Work inside a click or a
//! navigation is bounded: a few DOM reads and one event recorded.

use std::cell::{Cell, RefCell};
use std::rc::Weak;

use gloo_events::{EventListener, EventListenerOptions};
use js_sys::{Function, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use waymark_sdk_core::{ClickTarget, Node, Urgency, CLICKABLE, IGNORE_CLICKS};
use web_sys::{Element, Event, EventTarget, PageTransitionEvent};

use super::page;
use super::tracker::{flush, navigated, record, set_online, Command, Shell};

/// Scrolls are read at most this often.
const SCROLL_EVERY_MS: f64 = 200.0;
/// Elements described for a click: the clicked one and its ancestors.
const CLICK_NODES: usize = 12;

/// The tracker's listeners; dropping them removes them.
pub struct Listeners {
    _events: Vec<EventListener>,
    _history: Vec<HistoryWrapper>,
}

/// Adds the listeners. Page views (`page_views`) add the navigation
/// listeners and wrap `history.pushState` and `replaceState`; `clicks` the
/// click listener.
pub fn install(weak: &Weak<RefCell<Shell>>, page_views: bool, clicks: bool) -> Listeners {
    let mut events = Vec::new();
    let (Some(window), Some(document)) = (
        web_sys::window(),
        web_sys::window().and_then(|w| w.document()),
    ) else {
        return Listeners {
            _events: events,
            _history: Vec::new(),
        };
    };
    let on = |events: &mut Vec<EventListener>,
              target: &EventTarget,
              kind: &'static str,
              f: fn(&Weak<RefCell<Shell>>, &Event)| {
        let weak = weak.clone();
        events.push(EventListener::new(target, kind, move |e| f(&weak, e)));
    };
    on(&mut events, &window, "pagehide", |w, _| leaving(w));
    on(&mut events, &document, "visibilitychange", |w, _| {
        record(w, Command::Active);
        if page::is_hidden() {
            leaving(w);
        }
    });
    on(&mut events, &window, "online", |w, _| set_online(w, true));
    on(&mut events, &window, "offline", |w, _| set_online(w, false));
    on(&mut events, &window, "focus", |w, _| {
        record(w, Command::Active)
    });
    on(&mut events, &window, "blur", |w, _| {
        record(w, Command::Active)
    });
    let last_scroll = Cell::new(f64::NEG_INFINITY);
    let scrolled = weak.clone();
    events.push(EventListener::new_with_options(
        &window,
        "scroll",
        EventListenerOptions::default(), // passive
        move |_| {
            let now = js_sys::Date::now();
            if now - last_scroll.get() < SCROLL_EVERY_MS {
                return;
            }
            last_scroll.set(now);
            record(&scrolled, Command::Scrolled(scroll_pct()));
        },
    ));
    let mut history = Vec::new();
    if page_views {
        on(&mut events, &window, "popstate", |w, _| navigated(w));
        on(&mut events, &window, "hashchange", |w, _| navigated(w));
        on(&mut events, &window, "pageshow", |w, e| {
            if e.dyn_ref::<PageTransitionEvent>()
                .is_some_and(|e| e.persisted())
            {
                record(w, Command::PageView);
            }
        });
        history.extend(HistoryWrapper::wrap("pushState", weak));
        history.extend(HistoryWrapper::wrap("replaceState", weak));
    }
    if clicks {
        let clicked = weak.clone();
        let capture = EventListenerOptions {
            phase: gloo_events::EventListenerPhase::Capture,
            passive: true,
        };
        events.push(EventListener::new_with_options(
            &document,
            "click",
            capture,
            move |e| {
                if let Some(target) = describe_click(e) {
                    record(&clicked, Command::Click(target));
                }
            },
        ));
    }
    Listeners {
        _events: events,
        _history: history,
    }
}

/// The page is hidden or unloaded: its page leave, and everything queued
/// goes at once, by beacon.
fn leaving(weak: &Weak<RefCell<Shell>>) {
    record(weak, Command::Leave);
    flush(weak, Urgency::Leaving);
}

/// How far down the page the viewport reaches, in percent (100 for a page
/// without height).
fn scroll_pct() -> u8 {
    let Some(window) = web_sys::window() else {
        return 0;
    };
    let height = window
        .document()
        .and_then(|d| d.document_element())
        .map_or(0, |r| r.scroll_height());
    if height <= 0 {
        return 100;
    }
    let inner = window
        .inner_height()
        .ok()
        .and_then(|h| h.as_f64())
        .unwrap_or(0.0);
    let y = window.scroll_y().unwrap_or(0.0);
    // `as` saturates, and NaN becomes 0.
    ((y + inner) / f64::from(height) * 100.0) as u8
}

/// What a click may record, read off the DOM: the nearest element matching
/// the core's [`CLICKABLE`] at or above the target, unless it is inside
/// [`IGNORE_CLICKS`]; its text (never an input's: values are not read), link,
/// `type`, `data-waymark-*` attributes, and tag, id and classes of it and its
/// ancestors. The core's `ClickTarget::props` decides what of it is sent.
fn describe_click(event: &Event) -> Option<ClickTarget> {
    let target: Element = event.target()?.dyn_into().ok()?;
    let element = target.closest(CLICKABLE).ok()??;
    if element.closest(IGNORE_CLICKS).ok()?.is_some() {
        return None;
    }
    let node = |e: &Element| {
        Node::new(
            e.local_name(),
            e.id(),
            &e.get_attribute("class").unwrap_or_default(),
        )
    };
    let tag = element.local_name();
    let mut click = ClickTarget {
        node: node(&element),
        text: if tag == "input" {
            String::new()
        } else {
            element.text_content().unwrap_or_default()
        },
        href: page::link_href(&element),
        input_type: element.get_attribute("type"),
        ..ClickTarget::default()
    };
    for name in element
        .get_attribute_names()
        .iter()
        .filter_map(|n| n.as_string())
    {
        if let Some(value) = element.get_attribute(&name) {
            click.attribute(&name, value);
        }
    }
    let mut parent = element.parent_element();
    while let Some(e) = parent.filter(|_| click.ancestors.len() + 1 < CLICK_NODES) {
        click.ancestors.push(node(&e));
        parent = e.parent_element();
    }
    Some(click)
}

/// `history.pushState` or `replaceState` wrapped: the page's own call runs
/// first and its result or exception passes through untouched; then the
/// navigation is noted. Unwrapped on drop, unless wrapped again since.
struct HistoryWrapper {
    name: &'static str,
    wrapper: Closure<dyn Fn(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>,
}

impl HistoryWrapper {
    fn wrap(name: &'static str, weak: &Weak<RefCell<Shell>>) -> Option<HistoryWrapper> {
        let history = web_sys::window()?.history().ok()?;
        let original: Function = Reflect::get(&history, &name.into()).ok()?.dyn_into().ok()?;
        let weak = weak.clone();
        let this = history.clone();
        let wrapper = Closure::<dyn Fn(JsValue, JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
            move |state, unused, url| {
                let result = original.call3(&this, &state, &unused, &url)?;
                navigated(&weak);
                Ok(result)
            },
        );
        Reflect::set(&history, &name.into(), wrapper.as_ref()).ok()?;
        Some(HistoryWrapper { name, wrapper })
    }
}

impl Drop for HistoryWrapper {
    fn drop(&mut self) {
        let Some(history) = web_sys::window().and_then(|w| w.history().ok()) else {
            return;
        };
        let current = Reflect::get(&history, &self.name.into()).unwrap_or_default();
        if current == *self.wrapper.as_ref() {
            let _ = Reflect::delete_property(
                history.unchecked_ref::<js_sys::Object>(),
                &self.name.into(),
            );
        }
    }
}
