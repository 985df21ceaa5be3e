//! [`Schema`] → `query-qmp-schema` JSON, as QEMU's `scripts/qapi/introspect.py`
//! produces it.
//!
//! The bindings embed this so that a test server can check incoming commands the way
//! QEMU does, and tools can compare a schema read from sources with what a running
//! QEMU reports.

use std::collections::{HashMap, HashSet};

use crate::json::{Map, Value};

use crate::model::{Builtin, EntityId, EntityKind, Feature, ModuleItem, Origin, Schema};

/// The `query-qmp-schema` reply QEMU would give for `schema` (the bare array).
///
/// Follows QEMU's generator step by step: commands and events first, in module order
/// (a command without arguments or reply uses `q_empty`), then every type they use,
/// transitively, in order of first use; objects list all their members (base members
/// first) and, for unions, `tag` and one variant per tag value; every integer type is
/// reported as `int`; arrays are named `[T]`; optional members have `"default": null`
/// (or the default a model read by introspection recorded).
///
/// With `mask`, type names other than builtins and arrays are replaced by numbers in
/// order of first use, as a normal QEMU build does; without it, names are kept (QEMU's
/// generator option `--unmask-non-abi-names`).
///
/// Conditions are not evaluated: items under an `if` are all included, as in a QEMU
/// build where every condition holds. QEMU reports only what its build compiled in.
///
/// For a model read by introspection, types that no command or event reaches (QEMU
/// lists those that are used only under conditions its build left out) are written
/// too, after the others, so that `to_json(read(x))` has the same entries as `x`.
pub fn to_json(schema: &Schema, mask: bool) -> Value {
    let mut w = Writer {
        schema,
        mask,
        q_empty: schema
            .lookup_id("q_empty")
            .filter(|&id| matches!(schema.entity(id).kind, EntityKind::Object(_))),
        used: Vec::new(),
        used_set: HashSet::new(),
        masks: HashMap::new(),
        trees: Vec::new(),
    };
    for id in commands_and_events(schema) {
        w.visit_command_or_event(id);
    }
    let mut n = 0;
    w.drain(&mut n);
    if matches!(schema.origin, Origin::Introspection { .. }) {
        // QEMU lists types used only under conditions that its build did not compile in
        // (it collects used types before evaluating conditions); a model read by
        // introspection keeps them, so they are written back, after the rest.
        for id in types_in_module_order(schema) {
            let e = schema.entity(id);
            if e.implicit && (e.name == "q_empty" || e.name == "QType") {
                continue;
            }
            let key = w.key(id, 0);
            if w.used_set.insert(key.clone()) {
                w.used.push(key);
                w.drain(&mut n);
            }
        }
    }
    Value::Array(w.trees)
}

/// Every type entity, module by module.
fn types_in_module_order(schema: &Schema) -> Vec<EntityId> {
    let mut seen = HashSet::new();
    schema
        .modules
        .iter()
        .flat_map(|m| &m.items)
        .filter_map(|i| match i {
            ModuleItem::Entity(id) => Some(*id),
            ModuleItem::Include(_) => None,
        })
        .chain((0..schema.entities.len()).map(|n| EntityId(n as u32)))
        .filter(|&id| {
            schema
                .entities
                .get(id.0 as usize)
                .is_some_and(|e| !matches!(e.kind, EntityKind::Command(_) | EntityKind::Event(_)))
                && seen.insert(id)
        })
        .collect()
}

/// Commands and events in QEMU's visiting order: module by module; any not listed in
/// a module (a model built without modules) follow in definition order.
fn commands_and_events(schema: &Schema) -> Vec<EntityId> {
    let is_ce = |id: EntityId| {
        schema
            .entities
            .get(id.0 as usize)
            .is_some_and(|e| matches!(e.kind, EntityKind::Command(_) | EntityKind::Event(_)))
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let in_modules = schema
        .modules
        .iter()
        .flat_map(|m| &m.items)
        .filter_map(|i| match i {
            ModuleItem::Entity(id) => Some(*id),
            ModuleItem::Include(_) => None,
        });
    let all = (0..schema.entities.len()).map(|n| EntityId(n as u32));
    for id in in_modules.chain(all) {
        if is_ce(id) && seen.insert(id) {
            out.push(id);
        }
    }
    out
}

/// A type as introspection sees it: all integer types are one, arrays are structural.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    /// `int` (any integer builtin).
    Int,
    /// `q_empty`, when the model has no entity of that name.
    Empty,
    Named(EntityId),
    Array(Box<Key>),
}

struct Writer<'s> {
    schema: &'s Schema,
    mask: bool,
    q_empty: Option<EntityId>,
    used: Vec<Key>,
    used_set: HashSet<Key>,
    masks: HashMap<String, String>,
    trees: Vec<Value>,
}

/// The JSON type a builtin is written as in introspection (`int` for every integer).
pub(super) fn json_type(b: Builtin) -> &'static str {
    Builtin::ALL
        .iter()
        .find(|(x, _, _)| *x == b)
        .map_or("value", |(_, _, t)| t)
}

impl Writer<'_> {
    /// Visits the queued types from `n` on, including those queued meanwhile.
    fn drain(&mut self, n: &mut usize) {
        while *n < self.used.len() {
            let key = self.used[*n].clone();
            self.visit_type(&key);
            *n += 1;
        }
    }

    fn key(&self, id: EntityId, depth: usize) -> Key {
        match self.schema.entities.get(id.0 as usize).map(|e| &e.kind) {
            Some(EntityKind::Builtin(b)) if json_type(*b) == "int" => Key::Int,
            Some(EntityKind::Array(a)) if depth < 64 => {
                Key::Array(Box::new(self.key(a.element, depth + 1)))
            }
            _ => Key::Named(id),
        }
    }

    fn empty_key(&self) -> Key {
        self.q_empty.map_or(Key::Empty, Key::Named)
    }

    fn masked(&mut self, name: &str) -> String {
        if !self.mask {
            return name.to_string();
        }
        let next = self.masks.len().to_string();
        self.masks.entry(name.to_string()).or_insert(next).clone()
    }

    fn entity_name(&self, id: EntityId) -> &str {
        self.schema
            .entities
            .get(id.0 as usize)
            .map_or("", |e| e.name.as_str())
    }

    /// QEMU's `_use_type`: queue the type and return the name to refer to it by.
    fn use_key(&mut self, key: Key) -> String {
        if self.used_set.insert(key.clone()) {
            self.used.push(key.clone());
        }
        match key {
            Key::Int => "int".to_string(),
            Key::Empty => self.masked("q_empty"),
            Key::Array(element) => format!("[{}]", self.use_key(*element)),
            Key::Named(id) => {
                let name = self.entity_name(id).to_string();
                match self.schema.entities.get(id.0 as usize).map(|e| &e.kind) {
                    Some(EntityKind::Builtin(_)) => name,
                    _ => self.masked(&name),
                }
            }
        }
    }

    fn use_type(&mut self, id: EntityId) -> String {
        let key = self.key(id, 0);
        self.use_key(key)
    }

    fn use_opt(&mut self, id: Option<EntityId>) -> String {
        let key = id.map_or_else(|| self.empty_key(), |id| self.key(id, 0));
        self.use_key(key)
    }

    /// QEMU's `_gen_tree`.
    fn tree(&mut self, name: &str, meta: &str, mut obj: Map, features: &[Feature]) {
        let name = match meta {
            "command" | "event" | "builtin" | "array" => name.to_string(),
            _ => self.masked(name),
        };
        obj.insert("name".into(), Value::String(name));
        obj.insert("meta-type".into(), Value::String(meta.into()));
        if !features.is_empty() {
            obj.insert("features".into(), feature_list(features));
        }
        self.trees.push(Value::Object(obj));
    }

    fn visit_command_or_event(&mut self, id: EntityId) {
        let schema = self.schema;
        let Some(e) = schema.entities.get(id.0 as usize) else {
            return;
        };
        let mut obj = Map::new();
        match &e.kind {
            EntityKind::Command(c) => {
                obj.insert("arg-type".into(), self.use_opt(c.arg_type).into());
                obj.insert("ret-type".into(), self.use_opt(c.ret_type).into());
                if c.allow_oob {
                    obj.insert("allow-oob".into(), true.into());
                }
                self.tree(&e.name, "command", obj, &e.features);
            }
            EntityKind::Event(ev) => {
                obj.insert("arg-type".into(), self.use_opt(ev.arg_type).into());
                self.tree(&e.name, "event", obj, &e.features);
            }
            _ => {}
        }
    }

    fn visit_type(&mut self, key: &Key) {
        let schema = self.schema;
        let id = match key {
            Key::Int => {
                let obj = object([("json-type", "int".into())]);
                return self.tree("int", "builtin", obj, &[]);
            }
            Key::Empty => {
                let obj = object([("members", Value::Array(Vec::new()))]);
                return self.tree("q_empty", "object", obj, &[]);
            }
            Key::Array(element) => {
                let element = self.use_key((**element).clone());
                let name = format!("[{element}]");
                let obj = object([("element-type", element.into())]);
                return self.tree(&name, "array", obj, &[]);
            }
            Key::Named(id) => *id,
        };
        let Some(e) = schema.entities.get(id.0 as usize) else {
            return;
        };
        let mut obj = Map::new();
        let meta = match &e.kind {
            EntityKind::Builtin(b) => {
                obj.insert("json-type".into(), json_type(*b).into());
                "builtin"
            }
            EntityKind::Enum(en) => {
                let members = en
                    .members
                    .iter()
                    .map(|m| {
                        let mut o = Map::new();
                        o.insert("name".into(), m.name.clone().into());
                        if !m.features.is_empty() {
                            o.insert("features".into(), feature_list(&m.features));
                        }
                        Value::Object(o)
                    })
                    .collect();
                let values = en.members.iter().map(|m| m.name.clone().into()).collect();
                obj.insert("members".into(), Value::Array(members));
                obj.insert("values".into(), Value::Array(values));
                "enum"
            }
            EntityKind::Object(o) => {
                let mut members = Vec::with_capacity(o.members.len());
                for m in &o.members {
                    let mut mo = Map::new();
                    mo.insert("name".into(), m.name.clone().into());
                    mo.insert("type".into(), self.use_type(m.ty).into());
                    if m.optional || m.default.is_some() {
                        mo.insert("default".into(), m.default.clone().unwrap_or(Value::Null));
                    }
                    if !m.features.is_empty() {
                        mo.insert("features".into(), feature_list(&m.features));
                    }
                    members.push(Value::Object(mo));
                }
                obj.insert("members".into(), Value::Array(members));
                if let Some(b) = &o.branches {
                    obj.insert("tag".into(), b.tag_member.name.clone().into());
                    let mut variants = Vec::with_capacity(b.variants.len());
                    for v in &b.variants {
                        let ty = self.use_type(v.ty);
                        variants.push(
                            object([("case", v.name.clone().into()), ("type", ty.into())]).into(),
                        );
                    }
                    obj.insert("variants".into(), Value::Array(variants));
                }
                "object"
            }
            EntityKind::Alternate(a) => {
                let mut members = Vec::with_capacity(a.alternatives.variants.len());
                for v in &a.alternatives.variants {
                    let ty = self.use_type(v.ty);
                    members.push(object([("type", ty.into())]).into());
                }
                obj.insert("members".into(), Value::Array(members));
                "alternate"
            }
            // Only reached for arrays nested deeper than `key` follows, and for
            // malformed models that use a command or event as a type.
            EntityKind::Array(a) => {
                let element = self.use_type(a.element);
                obj.insert("element-type".into(), element.clone().into());
                let name = format!("[{element}]");
                return self.tree(&name, "array", obj, &[]);
            }
            EntityKind::Command(_) | EntityKind::Event(_) => return,
        };
        let name = e.name.clone();
        self.tree(&name, meta, obj, &e.features);
    }
}

fn feature_list(features: &[Feature]) -> Value {
    Value::Array(features.iter().map(|f| f.name.clone().into()).collect())
}

fn object<const N: usize>(members: [(&str, Value); N]) -> Map {
    members
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}
