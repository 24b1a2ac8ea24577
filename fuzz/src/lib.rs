//! Helpers shared by the fuzz targets in `fuzz_targets/`.

use serde_json::Value;

/// JSON equality that tolerates what a float round trip may change.
///
/// The library's serde_json does not enable `float_roundtrip`, so reading back
/// a float it wrote may land one or two ULPs away. Everything else (strings,
/// integers, structure) must match exactly.
pub fn json_same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || (x.is_f64()
                    && y.is_f64()
                    && floats_close(
                        x.as_f64().unwrap_or(f64::NAN),
                        y.as_f64().unwrap_or(f64::NAN),
                    ))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| json_same(x, y)))
        }
        _ => a == b,
    }
}

fn floats_close(a: f64, b: f64) -> bool {
    if a == b {
        return true;
    }
    if a.is_sign_negative() != b.is_sign_negative() || !a.is_finite() || !b.is_finite() {
        return false;
    }
    a.to_bits().abs_diff(b.to_bits()) <= 2
}

/// Parses text that must be JSON (any depth: this checks syntax only).
pub fn assert_json_text(text: &str, what: &str) {
    if let Err(e) = serde_json::from_str::<Box<serde_json::value::RawValue>>(text) {
        panic!("{what} is not JSON ({e}): {text:?}");
    }
}

/// The JSON value of valid JSON `text`, or `None` where serde_json cannot
/// build a `Value` of it: past its nesting limit (128), or for escapes such as
/// a lone surrogate (`"\ud800"`), which raw values let through unchecked.
pub fn value_of(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text).ok()
}
