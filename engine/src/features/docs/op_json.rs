//! Ops as `serde_json` values, the wire's shape (`{"operation": "insert", "position": N,
//! "content": ".."}`, `{"operation": "delete", "position": N, "length": N}`), for Rust clients
//! of the protocol: loadgen's editors and the tests. The server itself reads ops with
//! simd-json (`messages`) and writes them straight into frames (`events`).
//!
//! Invariant: `from_json(&to_json(ops)) == ops`.

use serde_json::{json, Value};

use super::operation::Op;

pub fn to_json(ops: &[Op]) -> Value {
    Value::Array(
        ops.iter()
            .map(|op| match op {
                Op::Insert { pos, text, .. } => {
                    json!({"operation": "insert", "position": pos, "content": &**text})
                }
                Op::Delete { pos, len } => {
                    json!({"operation": "delete", "position": pos, "length": len})
                }
            })
            .collect(),
    )
}

/// The ops of a JSON array, or what is wrong with it.
pub fn from_json(v: &Value) -> Result<Vec<Op>, String> {
    let list = v.as_array().ok_or("ops: not an array")?;
    list.iter()
        .map(|o| {
            let pos = o["position"].as_u64().ok_or("op without a position")? as usize;
            match o["operation"].as_str() {
                Some("insert") => Ok(Op::insert(pos, o["content"].as_str().unwrap_or(""))),
                Some("delete") => Ok(Op::delete(pos, o["length"].as_u64().unwrap_or(0) as usize)),
                _ => Err(format!("op of unknown kind: {o}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let ops = vec![Op::insert(3, "é😀\n\""), Op::delete(0, 2)];
        assert_eq!(from_json(&to_json(&ops)).unwrap(), ops);
        assert!(from_json(&json!([{"operation": "paint", "position": 0}])).is_err());
    }
}
