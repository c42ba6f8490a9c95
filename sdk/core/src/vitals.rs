//! The page load's Core Web Vitals, as the browser measured them, for its
//! page leave's `props` (the keys and limits are the wire crate's:
//! [`waymark_wire::VITALS_MS`], [`waymark_wire::VITAL_CLS`]).

use crate::prelude::*;

use crate::value::Value;

use waymark_wire::{MAX_CLS, MAX_VITAL_MS};

/// What the browser measured so far for this page load; each is absent
/// until measured (no LCP before the first paint, no INP without an
/// interaction).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Vitals {
    /// Largest Contentful Paint, ms after navigation start.
    pub lcp_ms: Option<f64>,
    /// Interaction to Next Paint: the slowest interaction, ms.
    pub inp_ms: Option<f64>,
    /// Cumulative Layout Shift: the largest session window's sum.
    pub cls: Option<f64>,
    /// Time to First Byte, ms after navigation start.
    pub ttfb_ms: Option<f64>,
}

impl Vitals {
    /// Appends the measured ones to a page leave's props: times in whole
    /// milliseconds, the layout shift to four decimals, each held within
    /// the range the collector takes.
    pub fn push_props(&self, props: &mut Vec<(String, Value)>) {
        let round = |x: f64, max: u32, scale: f64| {
            // `x.max(0.0)` also turns NaN into 0; +0.5 then truncation
            // rounds (no float formatting or libm in the wasm).
            let scaled = (x.max(0.0).min(f64::from(max)) * scale + 0.5) as u64;
            Value::Number(scaled as f64 / scale)
        };
        let figures = [
            ("lcp_ms", self.lcp_ms, MAX_VITAL_MS, 1.0),
            ("inp_ms", self.inp_ms, MAX_VITAL_MS, 1.0),
            ("cls", self.cls, MAX_CLS, 10_000.0),
            ("ttfb_ms", self.ttfb_ms, MAX_VITAL_MS, 1.0),
        ];
        for (key, value, max, scale) in figures {
            if let Some(x) = value {
                props.push((key.into(), round(x, max, scale)));
            }
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
