//! The text dump of a schema model that QEMU's `tests/qapi-schema/test-qapi.py` prints:
//! the visitor dump (modules, includes and entities) followed by the doc dump.
//!
//! It reads only the [`Schema`] model, so it works for any reader's model. Values are
//! printed as Python prints them (`True`/`False`, `None`, a condition's raw form such
//! as `{'all': ['A', 'B']}`).

use std::fmt::Write;

use crate::model::{EntityKind, Feature, IfCond, ModuleItem, Schema, Variants};

/// The dump of `schema`, byte for byte what `test-qapi.py` prints for it.
pub fn dump(schema: &Schema) -> String {
    let mut out = String::with_capacity(1 << 20);
    dump_entities(schema, &mut out);
    dump_docs(schema, &mut out);
    out
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Python's `repr` of a string.
fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// A condition as Python prints it inside a dict (strings quoted).
fn py_repr_cond(c: &IfCond, out: &mut String) {
    let list = |op: &str, v: &[IfCond], out: &mut String| {
        let _ = write!(out, "{{'{op}': [");
        for (i, c) in v.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            py_repr_cond(c, out);
        }
        out.push_str("]}");
    };
    match c {
        IfCond::Name(n) => py_repr_str(n, out),
        IfCond::All(v) => list("all", v, out),
        IfCond::Any(v) => list("any", v, out),
        IfCond::Not(c) => {
            out.push_str("{'not': ");
            py_repr_cond(c, out);
            out.push('}');
        }
    }
}

fn print_if(ifcond: &Option<IfCond>, indent: usize, out: &mut String) {
    let Some(c) = ifcond else { return };
    let _ = write!(out, "{:indent$}if ", "");
    match c {
        IfCond::Name(n) => out.push_str(n),
        c => py_repr_cond(c, out),
    }
    out.push('\n');
}

fn print_features(features: &[Feature], indent: usize, out: &mut String) {
    for f in features {
        let _ = writeln!(out, "{:indent$}feature {}", "", f.name);
        print_if(&f.ifcond, indent + 4, out);
    }
}

fn print_variants(schema: &Schema, v: &Variants, out: &mut String) {
    let _ = writeln!(out, "    tag {}", v.tag_member.name);
    for case in &v.variants {
        let _ = writeln!(
            out,
            "    case {}: {}",
            case.name,
            type_name(schema, case.ty)
        );
        print_if(&case.ifcond, 8, out);
    }
}

fn type_name(schema: &Schema, id: crate::model::EntityId) -> &str {
    schema
        .entities
        .get(id.0 as usize)
        .map_or("<unresolved>", |e| e.name.as_str())
}

fn dump_entities(schema: &Schema, out: &mut String) {
    for module in &schema.modules {
        let _ = writeln!(out, "module {}", module.name);
        for item in &module.items {
            let id = match item {
                ModuleItem::Include(m) => {
                    let name = schema
                        .modules
                        .get(m.0 as usize)
                        .map_or("", |m| m.name.as_str());
                    let _ = writeln!(out, "include {name}");
                    continue;
                }
                ModuleItem::Entity(id) => *id,
            };
            let Some(e) = schema.entities.get(id.0 as usize) else {
                continue;
            };
            match &e.kind {
                EntityKind::Builtin(_) => {}
                EntityKind::Enum(en) => {
                    let _ = writeln!(out, "enum {}", e.name);
                    if let Some(p) = &en.prefix {
                        let _ = writeln!(out, "    prefix {p}");
                    }
                    for m in &en.members {
                        let _ = writeln!(out, "    member {}", m.name);
                        print_if(&m.ifcond, 8, out);
                        print_features(&m.features, 8, out);
                    }
                    print_if(&e.ifcond, 4, out);
                    print_features(&e.features, 4, out);
                }
                EntityKind::Array(a) => {
                    // QEMU's dump leaves out the arrays of builtins (which have no
                    // source position); a model read by introspection has no
                    // positions at all, and its other arrays are shown.
                    let module = schema.modules.get(e.module.0 as usize);
                    let in_builtin = module.map_or("./builtin", |m| m.name.as_str()) == "./builtin";
                    if e.pos.is_none() && in_builtin {
                        continue;
                    }
                    let _ = writeln!(out, "array {} {}", e.name, type_name(schema, a.element));
                    print_if(&e.ifcond, 4, out);
                }
                EntityKind::Object(o) => {
                    let _ = writeln!(out, "object {}", e.name);
                    if let Some(b) = o.base {
                        let _ = writeln!(out, "    base {}", type_name(schema, b));
                    }
                    for m in &o.local_members {
                        let _ = writeln!(
                            out,
                            "    member {}: {} optional={}",
                            m.name,
                            type_name(schema, m.ty),
                            py_bool(m.optional)
                        );
                        print_if(&m.ifcond, 8, out);
                        print_features(&m.features, 8, out);
                    }
                    if let Some(v) = &o.branches {
                        print_variants(schema, v, out);
                    }
                    print_if(&e.ifcond, 4, out);
                    print_features(&e.features, 4, out);
                }
                EntityKind::Alternate(a) => {
                    let _ = writeln!(out, "alternate {}", e.name);
                    print_variants(schema, &a.alternatives, out);
                    print_if(&e.ifcond, 4, out);
                    print_features(&e.features, 4, out);
                }
                EntityKind::Command(c) => {
                    let arg = c.arg_type.map_or("None", |t| type_name(schema, t));
                    let ret = c.ret_type.map_or("None", |t| type_name(schema, t));
                    let _ = writeln!(out, "command {} {} -> {}", e.name, arg, ret);
                    let _ = writeln!(
                        out,
                        "    gen={} success_response={} boxed={} oob={} preconfig={}{}",
                        py_bool(c.gen),
                        py_bool(c.success_response),
                        py_bool(c.boxed),
                        py_bool(c.allow_oob),
                        py_bool(c.allow_preconfig),
                        if c.coroutine { " coroutine=True" } else { "" }
                    );
                    print_if(&e.ifcond, 4, out);
                    print_features(&e.features, 4, out);
                }
                EntityKind::Event(ev) => {
                    let arg = ev.arg_type.map_or("None", |t| type_name(schema, t));
                    let _ = writeln!(out, "event {} {}", e.name, arg);
                    let _ = writeln!(out, "    boxed={}", py_bool(ev.boxed));
                    print_if(&e.ifcond, 4, out);
                    print_features(&e.features, 4, out);
                }
            }
        }
    }
}

fn dump_docs(schema: &Schema, out: &mut String) {
    for doc in &schema.docs {
        match &doc.symbol {
            Some(s) => {
                let _ = writeln!(out, "doc symbol={s}");
            }
            None => out.push_str("doc freeform\n"),
        }
        let _ = writeln!(out, "    body=\n{}", doc.body.text);
        for (name, s) in &doc.args {
            let _ = writeln!(out, "    arg={name}\n{}", s.text);
        }
        for (name, s) in &doc.features {
            let _ = writeln!(out, "    feature={name}\n{}", s.text);
        }
        for s in &doc.sections {
            let _ = writeln!(out, "    section={}\n{}", s.kind.title(), s.text);
        }
    }
}
