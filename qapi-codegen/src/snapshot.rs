//! Definitions-only snapshots of a schema: one QAPI source file, no includes, no doc
//! text — only names, types, features, conditions, flags and pragmas. The front end
//! reads it back like any QAPI source, so the bindings built from it are the bindings
//! built from the full sources, minus the prose (which stays QEMU's).
//!
//! `doc-required` is left out of the pragmas (the snapshot has no doc comments); the
//! others are kept because they relax name and return-type checks the definitions need.
//!
//! What the doc comments also tell, and the bindings' docs need, is kept as facts in
//! `# @qapi-codegen` marker comments (see [`crate::front`]'s `marker.rs`), which QEMU's
//! front end skips like any comment: before the first definition of each run of
//! definitions from one module, the module's name and the module QEMU's reference
//! manual files them under; before each definition with a `Since:` section, its
//! version. Read back, a snapshot gives each entity the [`Entity::module`] name,
//! [`Entity::manual_module`] and [`Entity::since`] the sources gave it.

use std::fmt::Write as _;

use crate::front::marker::{self, Marker, ModuleMark};
use crate::model::{
    Entity, EntityId, EntityKind, Feature, IfCond, Member, Object, Origin, Schema, Variants,
};

/// A QAPI source text holding every definition of `schema`. `title` goes into the
/// leading comment (e.g. where the schema came from).
pub fn write(schema: &Schema, title: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# -*- Mode: Python -*-");
    let _ = writeln!(out, "#");
    for l in title.lines() {
        let _ = writeln!(out, "# {l}");
    }
    let _ = writeln!(
        out,
        "# Definitions only (no documentation), written by `qapi-codegen snapshot`.\n\
         # The `# @qapi-codegen` lines give each definition's module, the module QEMU's\n\
         # reference manual files it under, and its Since version.\n"
    );
    let p = &schema.pragma;
    let mut pragma = Vec::new();
    for (k, v) in [
        ("command-name-exceptions", &p.command_name_exceptions),
        ("command-returns-exceptions", &p.command_returns_exceptions),
        ("documentation-exceptions", &p.documentation_exceptions),
        ("member-name-exceptions", &p.member_name_exceptions),
    ] {
        if !v.is_empty() {
            pragma.push((k.to_owned(), V::List(v.iter().map(|s| V::s(s)).collect())));
        }
    }
    if !pragma.is_empty() {
        let _ = writeln!(
            out,
            "{}\n",
            V::Dict(vec![("pragma".into(), V::Dict(pragma))])
        );
    }
    // Modules are source files only in a model read from sources.
    let modules = matches!(schema.origin, Origin::Source { .. });
    let mut module: Option<ModuleMark> = None;
    for e in &schema.entities {
        if e.implicit {
            continue;
        }
        let Some(v) = definition(schema, e) else {
            continue;
        };
        if modules {
            let m = ModuleMark {
                name: schema
                    .modules
                    .get(e.module.0 as usize)
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                manual: e.manual_module.clone(),
            };
            if module.as_ref() != Some(&m) {
                let _ = writeln!(out, "{}", marker::line(&Marker::Module(m.clone())));
                module = Some(m);
            }
        }
        if let Some(s) = &e.since {
            let _ = writeln!(out, "{}", marker::line(&Marker::Since(s.clone())));
        }
        let _ = writeln!(out, "{v}\n");
    }
    out
}

/// A QAPI value, printed in the schema's own dialect (single quotes).
enum V {
    Str(String),
    Bool(bool),
    List(Vec<V>),
    Dict(Vec<(String, V)>),
}

impl V {
    fn s(s: &str) -> V {
        V::Str(s.to_owned())
    }
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V::Str(s) => write!(f, "'{s}'"),
            V::Bool(b) => write!(f, "{b}"),
            V::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            V::Dict(d) => {
                f.write_str("{ ")?;
                for (i, (k, v)) in d.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",\n  ")?;
                    }
                    write!(f, "'{k}': {v}")?;
                }
                f.write_str(" }")
            }
        }
    }
}

fn ifcond(c: &IfCond) -> V {
    match c {
        IfCond::Name(n) => V::s(n),
        IfCond::All(v) => V::Dict(vec![(
            "all".into(),
            V::List(v.iter().map(ifcond).collect()),
        )]),
        IfCond::Any(v) => V::Dict(vec![(
            "any".into(),
            V::List(v.iter().map(ifcond).collect()),
        )]),
        IfCond::Not(v) => V::Dict(vec![("not".into(), ifcond(v))]),
    }
}

fn features(fs: &[Feature]) -> Option<V> {
    if fs.is_empty() {
        return None;
    }
    Some(V::List(
        fs.iter()
            .map(|f| match &f.ifcond {
                None => V::s(&f.name),
                Some(c) => V::Dict(vec![
                    ("name".into(), V::s(&f.name)),
                    ("if".into(), ifcond(c)),
                ]),
            })
            .collect(),
    ))
}

/// `'if'` and `'features'` keys, when present.
fn common(d: &mut Vec<(String, V)>, ifc: Option<&IfCond>, fs: &[Feature]) {
    if let Some(c) = ifc {
        d.push(("if".into(), ifcond(c)));
    }
    if let Some(f) = features(fs) {
        d.push(("features".into(), f));
    }
}

/// A type reference: a name, or `['Elem']` for an array.
fn type_ref(schema: &Schema, id: EntityId) -> V {
    let e = schema.entity(id);
    match &e.kind {
        EntityKind::Array(a) => V::List(vec![type_ref(schema, a.element)]),
        _ => V::s(&e.name),
    }
}

fn members(schema: &Schema, ms: &[Member]) -> V {
    V::Dict(
        ms.iter()
            .map(|m| {
                let key = if m.optional {
                    format!("*{}", m.name)
                } else {
                    m.name.clone()
                };
                let ty = type_ref(schema, m.ty);
                let v = if m.ifcond.is_none() && m.features.is_empty() {
                    ty
                } else {
                    let mut d = vec![("type".into(), ty)];
                    common(&mut d, m.ifcond.as_ref(), &m.features);
                    V::Dict(d)
                };
                (key, v)
            })
            .collect(),
    )
}

fn branches(schema: &Schema, b: &Variants) -> V {
    V::Dict(
        b.variants
            .iter()
            .map(|v| {
                let ty = type_ref(schema, v.ty);
                let val = match &v.ifcond {
                    None => ty,
                    Some(c) => V::Dict(vec![("type".into(), ty), ("if".into(), ifcond(c))]),
                };
                (v.name.clone(), val)
            })
            .collect(),
    )
}

/// The arguments of a command or event: inline members for an implicit type, the
/// type's name otherwise.
fn args(schema: &Schema, id: EntityId) -> V {
    let e = schema.entity(id);
    match &e.kind {
        EntityKind::Object(o) if e.implicit && o.branches.is_none() => members(schema, &o.members),
        _ => type_ref(schema, id),
    }
}

fn definition(schema: &Schema, e: &Entity) -> Option<V> {
    let mut d: Vec<(String, V)> = Vec::new();
    match &e.kind {
        EntityKind::Builtin(_) | EntityKind::Array(_) => return None,
        EntityKind::Enum(en) => {
            d.push(("enum".into(), V::s(&e.name)));
            let vals = en
                .members
                .iter()
                .map(|m| {
                    if m.ifcond.is_none() && m.features.is_empty() {
                        V::s(&m.name)
                    } else {
                        let mut md = vec![("name".into(), V::s(&m.name))];
                        common(&mut md, m.ifcond.as_ref(), &m.features);
                        V::Dict(md)
                    }
                })
                .collect();
            d.push(("data".into(), V::List(vals)));
            if let Some(p) = &en.prefix {
                d.push(("prefix".into(), V::s(p)));
            }
        }
        EntityKind::Object(o) => object(schema, e, o, &mut d),
        EntityKind::Alternate(a) => {
            d.push(("alternate".into(), V::s(&e.name)));
            d.push(("data".into(), branches(schema, &a.alternatives)));
        }
        EntityKind::Command(c) => {
            d.push(("command".into(), V::s(&e.name)));
            if let Some(a) = c.arg_type {
                d.push(("data".into(), args(schema, a)));
            }
            if let Some(r) = c.ret_type {
                d.push(("returns".into(), type_ref(schema, r)));
            }
            for (k, on, default) in [
                ("boxed", c.boxed, false),
                ("gen", c.gen, true),
                ("success-response", c.success_response, true),
                ("allow-oob", c.allow_oob, false),
                ("allow-preconfig", c.allow_preconfig, false),
                ("coroutine", c.coroutine, false),
            ] {
                if on != default {
                    d.push((k.into(), V::Bool(on)));
                }
            }
        }
        EntityKind::Event(ev) => {
            d.push(("event".into(), V::s(&e.name)));
            if let Some(a) = ev.arg_type {
                d.push(("data".into(), args(schema, a)));
            }
            if ev.boxed {
                d.push(("boxed".into(), V::Bool(true)));
            }
        }
    }
    common(&mut d, e.ifcond.as_ref(), &e.features);
    Some(V::Dict(d))
}

fn object(schema: &Schema, e: &Entity, o: &Object, d: &mut Vec<(String, V)>) {
    let kind = if o.branches.is_some() {
        "union"
    } else {
        "struct"
    };
    d.push((kind.into(), V::s(&e.name)));
    if let Some(b) = o.base {
        let be = schema.entity(b);
        let base = match &be.kind {
            EntityKind::Object(bo) if be.implicit => members(schema, &bo.members),
            _ => V::s(&be.name),
        };
        d.push(("base".into(), base));
    }
    if let Some(br) = &o.branches {
        d.push(("discriminator".into(), V::s(&br.tag_member.name)));
        d.push(("data".into(), branches(schema, br)));
    } else {
        d.push(("data".into(), members(schema, &o.local_members)));
    }
}
