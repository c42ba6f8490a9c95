//! Plain data for event props and traits.
//!
//! A tiny JSON-like value instead of `serde_json::Value`: the SDK ships to
//! every visitor, and this type costs a fraction of serde_json's bytes.
//! Decoding is depth-limited so a cyclic or absurdly nested object handed in
//! by the page is rejected instead of overflowing the stack.

use crate::prelude::*;

use core::fmt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deepest nesting accepted in props and traits.
pub const MAX_DEPTH: usize = 8;
/// Most entries accepted across one value (keys, items and scalars).
pub const MAX_NODES: usize = 512;

/// A JSON value. Objects keep their key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The value under `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// True for an object (the only shape accepted as props or traits).
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            // Whole numbers print as integers (`1`, not `1.0`), as in JavaScript.
            Value::Number(n) if n.abs() < 9_007_199_254_740_992.0 && (*n as i64) as f64 == *n => {
                s.serialize_i64(*n as i64)
            }
            Value::Number(n) => s.serialize_f64(*n),
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut budget = MAX_NODES;
        ValueSeed {
            depth: 0,
            budget: &mut budget,
        }
        .deserialize(d)
    }
}

struct ValueSeed<'a> {
    depth: usize,
    budget: &'a mut usize,
}

impl ValueSeed<'_> {
    fn spend<E: de::Error>(&mut self) -> Result<(), E> {
        if *self.budget == 0 {
            return Err(E::custom("value too large"));
        }
        *self.budget -= 1;
        Ok(())
    }
    fn child(&mut self) -> ValueSeed<'_> {
        ValueSeed {
            depth: self.depth + 1,
            budget: self.budget,
        }
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("plain data (null, boolean, number, string, array or object)")
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }
    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<Value, E> {
        self.spend()?;
        // JSON has no NaN or infinities.
        Ok(if v.is_finite() {
            Value::Number(v)
        } else {
            Value::Null
        })
    }
    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(mut self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("value nested too deeply"));
        }
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("value nested too deeply"));
        }
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.child())?;
            entries.push((key, value));
        }
        Ok(Value::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json_keeping_key_order() {
        let text = r#"{"b":1,"a":[true,null,"x"],"c":{"d":2.5}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        assert!(value.is_object());
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"b":1,"a":[true,null,"x"],"c":{"d":2.5}}"#
        );
    }

    #[test]
    fn rejects_deep_nesting_instead_of_recursing() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(serde_json::from_str::<Value>(&ok).is_ok());
    }

    #[test]
    fn rejects_values_over_the_node_budget() {
        let big = format!("[{}]", vec!["1"; MAX_NODES].join(","));
        assert!(serde_json::from_str::<Value>(&big).is_err());
    }
}
