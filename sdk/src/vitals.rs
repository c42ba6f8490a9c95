//! The page load's Core Web Vitals, measured by the browser's own
//! `PerformanceObserver`s and handed to the core for the page leave
//! ([`Vitals`]): Largest Contentful Paint (the latest candidate), Cumulative
//! Layout Shift (the largest session window: shifts without recent input, at
//! most 1 s apart and 5 s long), Interaction to Next Paint (the slowest
//! interaction, which is INP for pages with fewer than 50) and Time to First
//! Byte (the navigation's `responseStart`). An interaction quicker than the
//! `event` observer's threshold still counts through `first-input`, which
//! the browser reports whatever its duration (as web-vitals does). Entries
//! the browser holds but has not yet handed to a callback are taken when
//! the figures are read, so a visitor who leaves right after a click keeps
//! it. An entry type the browser does not support is not observed (and its
//! figure not sent). The observers belong to the tracker and are
//! disconnected when it is dropped.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use waymark_sdk_core::Vitals;
use web_sys::{PerformanceEntry, PerformanceObserver, PerformanceObserverEntryList};

/// Shortest interaction Chromium reports by default is 104 ms; this asks
/// for every interaction of 40 ms or more (the smallest it allows is 16).
const INTERACTION_THRESHOLD_MS: f64 = 40.0;

type Callback = Closure<dyn FnMut(PerformanceObserverEntryList)>;

/// What an observer does with each of its entries.
type Each = Rc<RefCell<dyn FnMut(&PerformanceEntry)>>;

/// One running observer: its callback (kept alive for the browser) and the
/// handler it shares with [`Meter::vitals`]'s `takeRecords`.
struct Observer {
    observer: PerformanceObserver,
    each: Each,
    _callback: Callback,
}

/// The running observers and what they measured so far.
pub struct Meter {
    vitals: Rc<RefCell<Vitals>>,
    observers: Vec<Observer>,
}

impl Drop for Meter {
    fn drop(&mut self) {
        for observer in &self.observers {
            observer.observer.disconnect();
        }
    }
}

fn each_entry(entries: &Array, each: &Each) {
    for entry in entries.iter() {
        if let Some(entry) = entry.dyn_ref::<PerformanceEntry>() {
            (each.borrow_mut())(entry);
        }
    }
}

/// The largest session window of layout shifts, and the one being summed.
#[derive(Default)]
struct Shifts {
    sum: f64,
    first: f64,
    last: f64,
}

fn number(entry: &JsValue, key: &str) -> f64 {
    Reflect::get(entry, &JsValue::from_str(key))
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

impl Meter {
    /// Reads the time to first byte and starts observing the rest.
    pub fn start() -> Meter {
        let vitals = Rc::new(RefCell::new(Vitals::default()));
        let mut meter = Meter {
            vitals: Rc::clone(&vitals),
            observers: Vec::new(),
        };
        let Some(performance) = web_sys::window().and_then(|w| w.performance()) else {
            return meter;
        };
        if let Some(navigation) = performance
            .get_entries_by_type("navigation")
            .get(0)
            .dyn_ref::<PerformanceEntry>()
        {
            let start = number(navigation, "activationStart");
            let ttfb = number(navigation, "responseStart") - start;
            vitals.borrow_mut().ttfb_ms = (ttfb > 0.0).then_some(ttfb);
        }
        let supported = Reflect::get(&js_sys::global(), &JsValue::from_str("PerformanceObserver"))
            .and_then(|ctor| Reflect::get(&ctor, &JsValue::from_str("supportedEntryTypes")))
            .ok()
            .and_then(|types| types.dyn_into::<Array>().ok())
            .unwrap_or_default();
        let supports = |kind: &str| supported.includes(&JsValue::from_str(kind), 0);

        if supports("largest-contentful-paint") {
            let v = Rc::clone(&vitals);
            meter.observe("largest-contentful-paint", move |entry| {
                v.borrow_mut().lcp_ms = Some(entry.start_time());
            });
        }
        if supports("layout-shift") {
            vitals.borrow_mut().cls = Some(0.0);
            let v = Rc::clone(&vitals);
            let mut window = Shifts::default();
            meter.observe("layout-shift", move |entry| {
                if Reflect::get(entry, &JsValue::from_str("hadRecentInput"))
                    .is_ok_and(|v| v.is_truthy())
                {
                    return;
                }
                let (at, value) = (entry.start_time(), number(entry, "value"));
                if window.sum > 0.0 && at - window.last < 1_000.0 && at - window.first < 5_000.0 {
                    window.sum += value;
                } else {
                    window = Shifts {
                        sum: value,
                        first: at,
                        last: at,
                    };
                }
                window.last = at;
                let mut vitals = v.borrow_mut();
                vitals.cls = Some(vitals.cls.unwrap_or(0.0).max(window.sum));
            });
        }
        // An interaction's slowest event; `first-input` whatever its
        // duration, `event` from the threshold up.
        for kind in ["first-input", "event"] {
            if supports(kind) {
                let v = Rc::clone(&vitals);
                meter.observe(kind, move |entry| {
                    if kind == "first-input" || number(entry, "interactionId") > 0.0 {
                        let mut vitals = v.borrow_mut();
                        vitals.inp_ms = Some(vitals.inp_ms.unwrap_or(0.0).max(entry.duration()));
                    }
                });
            }
        }
        meter
    }

    /// What was measured so far, with the entries the browser holds but
    /// has not yet handed to the observers' callbacks.
    pub fn vitals(&self) -> Vitals {
        for observer in &self.observers {
            each_entry(&observer.observer.take_records(), &observer.each);
        }
        *self.vitals.borrow()
    }

    /// Observes `kind`, buffered (entries from before the SDK started
    /// count), calling `each` for every entry.
    fn observe(&mut self, kind: &str, each: impl FnMut(&PerformanceEntry) + 'static) {
        self.observe_with(kind, Rc::new(RefCell::new(each)));
    }

    /// [`Meter::observe`]'s body, once for every handler's type.
    fn observe_with(&mut self, kind: &str, each: Each) {
        let shared = Rc::clone(&each);
        let callback: Callback = Closure::new(move |list: PerformanceObserverEntryList| {
            each_entry(&list.get_entries(), &shared);
        });
        let Ok(observer) = PerformanceObserver::new(callback.as_ref().unchecked_ref()) else {
            return;
        };
        // `type` with `buffered` (web-sys has only `entryTypes`, with which
        // the browser ignores `buffered`).
        let options = Object::new();
        let set = |key: &str, value: JsValue| {
            let _ = Reflect::set(&options, &JsValue::from_str(key), &value);
        };
        set("type", JsValue::from_str(kind));
        set("buffered", JsValue::TRUE);
        if kind == "event" {
            set(
                "durationThreshold",
                JsValue::from_f64(INTERACTION_THRESHOLD_MS),
            );
        }
        observer.observe(options.unchecked_ref());
        self.observers.push(Observer {
            observer,
            each,
            _callback: callback,
        });
    }
}
