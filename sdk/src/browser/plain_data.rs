//! Plain data across the JS boundary, converted by hand: the page's objects
//! in, JSON-ready objects out. A generic (de)serializer would ship serde's
//! machinery and its float formatting to every visitor.

use crate::prelude::*;

use crate::value::{Value, MAX_DEPTH, MAX_NODES};
use js_sys::{Array, ArrayBuffer, Map, Object, Reflect, Symbol};
use wasm_bindgen::{JsCast, JsValue};

/// Reads plain data handed in by the page, under the same limits as
/// [`Value`]'s `Deserialize`. `None` for anything else: functions, symbols,
/// binary data, iterables other than arrays and maps, non-string map keys,
/// too deep or too many entries (which also stops cycles).
pub fn from_js(value: &JsValue) -> Option<Value> {
    Reader { budget: MAX_NODES }.read(value, 0)
}

struct Reader {
    /// Entries still allowed in the whole value.
    budget: usize,
}

impl Reader {
    fn read(&mut self, value: &JsValue, depth: usize) -> Option<Value> {
        self.budget = self.budget.checked_sub(1)?;
        if value.loose_eq(&JsValue::NULL) {
            return Some(Value::Null);
        }
        if let Some(b) = value.as_bool() {
            return Some(Value::Bool(b));
        }
        if value.is_bigint() {
            return bigint(value).map(Value::Number);
        }
        if let Some(n) = value.as_f64() {
            // JSON has no NaN or infinities.
            return Some(if n.is_finite() {
                Value::Number(n)
            } else {
                Value::Null
            });
        }
        if let Some(s) = value.as_string() {
            return Some(Value::String(s));
        }
        if let Some(items) = value.dyn_ref::<Array>() {
            let depth = nested(depth)?;
            let mut out = Vec::new();
            for item in items.iter() {
                out.push(self.read(&item, depth)?);
            }
            return Some(Value::Array(out));
        }
        let entries = entries(value)?;
        let depth = nested(depth)?;
        let mut out = Vec::new();
        for entry in entries.iter() {
            let entry: Array = entry.unchecked_into();
            let key = entry.get(0).as_string()?;
            out.push((key, self.read(&entry.get(1), depth)?));
        }
        Some(Value::Object(out))
    }
}

/// The depth of a container's children, if the container may nest here.
fn nested(depth: usize) -> Option<usize> {
    (depth < MAX_DEPTH).then_some(depth + 1)
}

/// A BigInt as a number, if it fits in `i64` or `u64`.
fn bigint(value: &JsValue) -> Option<f64> {
    match i64::try_from(value.clone()) {
        Ok(n) => Some(n as f64),
        Err(value) => u64::try_from(value).ok().map(|n| n as f64),
    }
}

/// `[key, value]` pairs of a `Map` or of a plain (non-iterable) object.
fn entries(value: &JsValue) -> Option<Array> {
    if !value.is_object() || value.is_instance_of::<ArrayBuffer>() {
        return None;
    }
    if value.is_instance_of::<Map>() {
        return Some(Array::from(value));
    }
    match Reflect::has(value, &Symbol::iterator()) {
        Ok(false) => Some(Object::entries(value.unchecked_ref())),
        _ => None,
    }
}

/// The value as a JS value that `JSON.stringify` turns into its JSON.
pub fn to_js(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(*n),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(to_js).collect::<Array>().into(),
        Value::Object(entries) => {
            let object = Object::new();
            for (key, value) in entries {
                set(&object, key, &to_js(value));
            }
            object.into()
        }
    }
}

/// Sets a property of an object made here (so it cannot throw).
pub fn set(object: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(object, &JsValue::from_str(key), value);
}
