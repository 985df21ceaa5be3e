//! `SCHEMA_JSON`: the schema the bindings were generated from, in `query-qmp-schema`
//! form, as a string constant ([`Options::schema_json`](super::Options::schema_json)).
//!
//! A program compares it at run time with what the QEMU it talks to reports (the
//! `qmp` crate's `drift` module, `qmp compat`): both sides then have the same shape,
//! and no generator is needed at run time. It is
//! [`to_json`](crate::introspect::to_json) of the model with the real type names
//! (unmasked), written compactly, with one addition QEMU's own output never has: an
//! `"if"` member (the condition as [`crate::diff::condition_text`] writes it,
//! `CONFIG_BLKIO`, `TARGET_S390X and CONFIG_KVM`) on every command, event, type,
//! member, branch, alternative and enumeration value that has a condition. A QEMU
//! build evaluated its conditions and lists only what it compiled in, so the drift
//! report needs them to tell "this build left it out" from "this release lacks it".

use proc_macro2::TokenStream;
use quote::quote;

use crate::diff::condition_text;
use crate::json::{Map, Value};
use crate::model::{EntityKind, IfCond, Schema};

/// The `SCHEMA_JSON` constant, at the top of the generated file.
pub(crate) fn emit(schema: &Schema) -> TokenStream {
    let text = text(schema);
    quote! {
        /// The schema these bindings were generated from, as QEMU's `query-qmp-schema`
        /// would return it (a compact JSON array of `SchemaInfo`), with the type names
        /// of the schema instead of QEMU's masked numbers, and an `"if"` member on
        /// every item that exists only under a build condition (QEMU's own output
        /// lists only what its build compiled in). Compare it with a live QEMU's
        /// schema with `qmp::drift`.
        pub const SCHEMA_JSON: &str = #text;
    }
}

/// The JSON text of `SCHEMA_JSON`.
pub(crate) fn text(schema: &Schema) -> String {
    let mut json = crate::introspect::to_json(schema, false);
    if let Value::Array(entries) = &mut json {
        for entry in entries {
            annotate(schema, entry);
        }
    }
    json.to_string()
}

/// The name (empty for an alternative) and condition of each member, branch,
/// alternative or enumeration value of one list of an entry, in order.
type Conditions<'a> = Vec<(&'a str, &'a Option<IfCond>)>;

fn put_if(obj: &mut Map, cond: &Option<IfCond>) {
    if let Some(c) = cond {
        obj.insert("if".to_owned(), Value::String(condition_text(c)));
    }
}

/// Adds the conditions of the entity `entry` describes (found by its unmasked name)
/// and of its parts. `to_json` writes members, branches, alternatives and enumeration
/// values in the model's order, so they are matched by position (and checked by name
/// where the entry has one).
fn annotate(schema: &Schema, entry: &mut Value) {
    let Value::Object(obj) = entry else {
        return;
    };
    let Some(e) = obj
        .get("name")
        .and_then(Value::as_str)
        .and_then(|n| schema.lookup(n))
    else {
        // Arrays (`[T]`), `int` and a `q_empty` the model lacks: no conditions.
        return;
    };
    put_if(obj, &e.ifcond);
    let items = |obj: &mut Map, key: &str| -> Vec<Map> {
        match obj.remove(key) {
            Some(Value::Array(v)) => v
                .into_iter()
                .map(|x| match x {
                    Value::Object(m) => m,
                    _ => Map::new(),
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let conds: Vec<(&str, Conditions)> = match &e.kind {
        EntityKind::Enum(en) => vec![(
            "members",
            en.members
                .iter()
                .map(|m| (m.name.as_str(), &m.ifcond))
                .collect(),
        )],
        EntityKind::Object(o) => {
            let mut v = vec![(
                "members",
                o.members
                    .iter()
                    .map(|m| (m.name.as_str(), &m.ifcond))
                    .collect(),
            )];
            if let Some(b) = &o.branches {
                v.push((
                    "variants",
                    b.variants
                        .iter()
                        .map(|x| (x.name.as_str(), &x.ifcond))
                        .collect(),
                ));
            }
            v
        }
        // Alternatives have no name in introspection: by position only.
        EntityKind::Alternate(a) => vec![(
            "members",
            a.alternatives
                .variants
                .iter()
                .map(|x| ("", &x.ifcond))
                .collect(),
        )],
        _ => Vec::new(),
    };
    for (key, model) in conds {
        if !obj.contains_key(key) {
            continue;
        }
        let mut list = items(obj, key);
        for (item, (name, cond)) in list.iter_mut().zip(model) {
            let written = item
                .get("name")
                .or_else(|| item.get("case"))
                .and_then(Value::as_str);
            // A name that differs would mean the orders differ: no condition then.
            match written {
                Some(w) if w != name => {}
                _ => put_if(item, cond),
            }
        }
        obj.insert(
            key.to_owned(),
            Value::Array(list.into_iter().map(Value::Object).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_kept_and_names_are_unmasked() {
        let text_of = |_: &str| {
            Ok(br#"
            { 'enum': 'Drv', 'data': [ 'a', { 'name': 'b', 'if': 'CONFIG_B' } ] }
            { 'struct': 'Opts', 'data': { 'driver': 'Drv',
                                          '*x': { 'type': 'int', 'if': 'CONFIG_X' } } }
            { 'command': 'add', 'data': 'Opts', 'boxed': true }
            { 'command': 'ping', 'if': 'CONFIG_PING' }
            "#
            .to_vec())
        };
        let schema = crate::front::parse_with_loader("t.json", "/", text_of).expect("schema");
        let json = crate::json::parse(&text(&schema)).expect("JSON");
        let entries = json.as_array().expect("array");
        let by_name = |n: &str| {
            entries
                .iter()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(n))
                .unwrap_or_else(|| panic!("no entry {n}"))
        };
        assert_eq!(
            by_name("ping").get("if").and_then(Value::as_str),
            Some("CONFIG_PING")
        );
        assert!(by_name("add").get("if").is_none());
        let members = by_name("Opts").get("members").and_then(Value::as_array);
        let members = members.expect("members");
        assert!(members[0].get("if").is_none());
        assert_eq!(
            members[1].get("if").and_then(Value::as_str),
            Some("CONFIG_X")
        );
        let values = by_name("Drv").get("members").and_then(Value::as_array);
        let values = values.expect("values");
        assert_eq!(
            values[1].get("if").and_then(Value::as_str),
            Some("CONFIG_B")
        );
        // Everything else is to_json's, unmasked and compact.
        assert!(!text(&schema).contains(": "));
    }
}
