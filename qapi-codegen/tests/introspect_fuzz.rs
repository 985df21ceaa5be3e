//! The introspection reader never panics: arbitrary JSON, and real output with random
//! damage. Whatever it accepts, the writer handles too.

use proptest::prelude::*;
use qapi_codegen::introspect::read;
use serde_json::Value;

#[path = "support/as_serde.rs"]
mod as_serde;
use as_serde::to_json;

fn arb_json() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("name".to_string()),
        Just("meta-type".to_string()),
        Just("members".to_string()),
        Just("type".to_string()),
        Just("tag".to_string()),
        Just("variants".to_string()),
        Just("case".to_string()),
        Just("element-type".to_string()),
        Just("arg-type".to_string()),
        Just("ret-type".to_string()),
        Just("json-type".to_string()),
        Just("values".to_string()),
        Just("default".to_string()),
        Just("features".to_string()),
        Just("return".to_string()),
        "[a-z0-9\\[\\]-]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("object"),
            Just("enum"),
            Just("array"),
            Just("alternate"),
            Just("command"),
            Just("event"),
            Just("builtin"),
            Just("int"),
            Just("str"),
            Just("string"),
            Just("0"),
            Just("1"),
            Just("[0]"),
            Just("[1]"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
        "[a-z0-9\\[\\]]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((names.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn captured() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/introspect/qemu-storage-daemon-10.0.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Replaces the value at a pseudo-random place of `x` (steered by `picks`) with `new`.
fn damage(x: &mut Value, picks: &[usize], new: Value) {
    let Some((&p, rest)) = picks.split_first() else {
        *x = new;
        return;
    };
    match x {
        Value::Array(a) if !a.is_empty() => {
            let n = p % a.len();
            damage(&mut a[n], rest, new)
        }
        Value::Object(o) if !o.is_empty() => {
            let n = p % o.len();
            if let Some(v) = o.values_mut().nth(n) {
                damage(v, rest, new)
            }
        }
        _ => *x = new,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let text = v.to_string();
        if let Ok(schema) = read(&text, "fuzz.json") {
            let _ = to_json(&schema, true);
            let _ = to_json(&schema, false);
        }
        let reply = serde_json::json!({ "return": v }).to_string();
        let _ = read(&reply, "fuzz.json");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,64}") {
        let _ = read(&text, "fuzz.json");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_real_output_never_panics(
        damages in prop::collection::vec((prop::collection::vec(any::<usize>(), 1..5), arb_json()), 1..4)
    ) {
        let mut x = captured();
        for (picks, new) in damages {
            damage(&mut x, &picks, new);
        }
        if let Ok(schema) = read(&x.to_string(), "fuzz.json") {
            let _ = to_json(&schema, true);
            let _ = to_json(&schema, false);
        }
    }
}

/// Deep nesting is an error, not a stack overflow.
#[test]
fn deep_nesting_is_an_error() {
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(read(&text, "deep.json").is_err());
    let text = format!(
        "{{\"return\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(read(&text, "deep.json").is_err());
}

/// A long chain of arrays (each its own entry) is rejected, not recursed into.
#[test]
fn long_array_chains_are_an_error() {
    let mut entries =
        vec![serde_json::json!({"name": "int", "meta-type": "builtin", "json-type": "int"})];
    let mut element = "int".to_string();
    for _ in 0..1_000 {
        let name = format!("[{element}]");
        entries
            .push(serde_json::json!({"name": name, "meta-type": "array", "element-type": element}));
        element = name;
    }
    let err = read(&Value::Array(entries).to_string(), "chain.json").unwrap_err();
    assert!(
        err.to_string().contains("nested more than 32 deep"),
        "{err}"
    );
}

/// Many types wanting the same name (here the alternatives of one alternate, all
/// `CArgObject`) get `CArgObject2`, `CArgObject3`, … in linear time: a hostile input
/// must not make the reader crawl.
#[test]
fn many_clashing_names() {
    let n = 10_000u64;
    let mut entries = vec![
        serde_json::json!({"name": "c", "meta-type": "command", "arg-type": "0", "ret-type": "0"}),
        serde_json::json!({"name": "0", "meta-type": "object", "members": [{"name": "arg", "type": "1"}]}),
    ];
    let alternatives: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({ "type": (i + 2).to_string() }))
        .collect();
    entries
        .push(serde_json::json!({"name": "1", "meta-type": "alternate", "members": alternatives}));
    for i in 0..n {
        entries.push(
            serde_json::json!({"name": (i + 2).to_string(), "meta-type": "object", "members": []}),
        );
    }
    let schema = read(&Value::Array(entries).to_string(), "clash.json").unwrap();
    assert!(schema.lookup("CArgArgObject").is_some());
    assert!(schema.lookup(&format!("CArgArgObject{n}")).is_some());
}
