//! The generator's JSON ([`qapi_codegen::json::Value`]) as a `serde_json::Value`, so
//! that tests compare it with QEMU's output read by serde_json (and check, on the way,
//! that serde_json reads what the generator writes).

use qapi_codegen::model::Schema;

/// [`qapi_codegen::introspect::to_json`], read back by serde_json.
pub fn to_json(schema: &Schema, mask: bool) -> serde_json::Value {
    let text = qapi_codegen::introspect::to_json(schema, mask).to_string();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("serde_json rejects to_json: {e}"))
}
