//! Test access to the worked examples in `../shared/spec/vectors.json`, computed with the
//! upstream Python code (upstream.md §8).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::Contender;

static VECTORS: OnceLock<Value> = OnceLock::new();

pub fn section(name: &str) -> &'static Value {
    let all = VECTORS.get_or_init(|| serde_json::from_str(include_str!("../../../shared/spec/vectors.json")).expect("vectors.json parses"));
    &all[name]
}

/// A number that may be written as the string `"inf"`.
pub fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

/// The IEEE bit patterns of a `{"values", "f32_bits"}` object.
pub fn f32_bits(v: &Value) -> Vec<u32> {
    v["f32_bits"].as_array().unwrap().iter().map(|b| u32::from_str_radix(b.as_str().unwrap(), 16).unwrap()).collect()
}

pub fn uid_map(v: &Value) -> BTreeMap<u16, f64> {
    v.as_object().unwrap().iter().map(|(k, x)| (k.parse().unwrap(), num(x))).collect()
}

/// `uid_to_score` and `uid_to_block` of a case, in ascending uid order.
pub fn contenders(case: &Value) -> Vec<Contender> {
    let blocks = uid_map(&case["uid_to_block"]);
    uid_map(&case["uid_to_score"]).into_iter().map(|(uid, score)| Contender { uid, score, block: blocks[&uid] }).collect()
}
