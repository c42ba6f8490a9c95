//! Plain data from the page (props, traits, the device context, a click's
//! description) into a [`Value`].
//!
//! The snippet's `__wbs_plain` walks the page's value in JS, under the same
//! limits as [`Value`]'s `Deserialize`, and flattens it into a "tape": a
//! string of one type letter per node, then the nodes' numbers, strings,
//! lengths and keys in order. Reading the tape takes four cheap bindings; a
//! walk from Rust would take a binding per JS operator.

use crate::prelude::*;

use super::dom;
use crate::value::Value;
use js_sys::Array;
use wasm_bindgen::{JsCast, JsValue};

/// Reads plain data handed in by the page. `None` for anything else:
/// functions, symbols, binary data, iterables other than arrays and maps,
/// non-string map keys, BigInts beyond 64 bits, too deep or too many entries
/// (which also stops cycles), or a getter that throws.
pub fn from_js(value: &JsValue) -> Option<Value> {
    let tape = dom::plain_tape(value);
    if !tape.is_object() {
        return None;
    }
    let tape: Array = tape.unchecked_into();
    let types = tape.get(0).as_string()?;
    Tape {
        types: types.bytes(),
        values: &tape,
        next: 1,
    }
    .read()
}

struct Tape<'a> {
    types: core::str::Bytes<'a>,
    values: &'a Array,
    next: u32,
}

impl Tape<'_> {
    fn take(&mut self) -> JsValue {
        self.next += 1;
        self.values.get(self.next - 1)
    }

    /// One node: `n`ull, `t`rue, `f`alse, `d` a number, `s` a string, `a`
    /// an array (its length, then its items), `o` an object (its length,
    /// then key and value of each entry).
    fn read(&mut self) -> Option<Value> {
        Some(match self.types.next()? {
            b'n' => Value::Null,
            b't' => Value::Bool(true),
            b'f' => Value::Bool(false),
            b'd' => Value::Number(self.take().as_f64()?),
            b's' => Value::String(self.take().as_string()?),
            kind => {
                let len = self.take().as_f64()? as usize;
                if kind == b'a' {
                    let mut items = Vec::new();
                    for _ in 0..len {
                        items.push(self.read()?);
                    }
                    Value::Array(items)
                } else {
                    let mut entries = Vec::new();
                    for _ in 0..len {
                        let key = self.take().as_string()?;
                        entries.push((key, self.read()?));
                    }
                    Value::Object(entries)
                }
            }
        })
    }
}
