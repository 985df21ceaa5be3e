//! `query-qmp-schema` JSON → [`Schema`]: resolves references, picks names, builds the
//! model the way the source reader lays it out.

use std::collections::HashMap;

use crate::json::Value;

use super::names::{derive, is_masked};
use super::parse::{self, Ctx, RawEntry, RawKind};
use super::IntrospectError;
use crate::model::{
    Alternate, Array, Command, Entity, EntityId, EntityKind, Enum, EnumMember, Event, Feature,
    Member, Module, ModuleId, ModuleItem, Object, Origin, Pragma, Schema, Variant, Variants,
};

type Result<T> = std::result::Result<T, IntrospectError>;

/// Longest chain of array types (`[[[T]]]`) accepted; QEMU's schemas use one level.
const MAX_ARRAY_NESTING: usize = 32;

/// Reads `query-qmp-schema` output into a [`Schema`].
///
/// `json` is the schema array itself or the whole QMP reply (`{"return": [...]}`,
/// possibly with an `"id"`); `file_name` is used in error messages and as the name of
/// the module holding the schema's entities (the builtins, `q_empty` and `QType` are in
/// module `./builtin`, as with sources). See the [module docs](super) for what the
/// model knows and how masked type names are replaced.
///
/// # Errors
///
/// An [`IntrospectError`] for text that is not JSON, for a value that is not a
/// `SchemaInfo` array, and for references to types that are not defined (or not of the
/// kind the reference needs), with the JSON path of the bad value.
pub fn read(json: &str, file_name: &str) -> Result<Schema> {
    let ctx = Ctx { file: file_name };
    let value: Value = crate::json::parse(json).map_err(|e| IntrospectError::Json {
        file: file_name.to_string(),
        line: e.line,
        column: e.column,
        message: e.message,
    })?;
    let items = parse::schema_array(&ctx, &value)?;
    let entries = parse::entries(&ctx, items)?;
    let index = index(&ctx, &entries)?;
    check_references(&ctx, &entries, &index)?;
    let q_empty = find_q_empty(&entries, &index);
    let names = derive(&entries, &index, q_empty);
    Ok(build(file_name, &entries, &index, q_empty, names))
}

fn index<'e>(ctx: &Ctx, entries: &'e [RawEntry]) -> Result<HashMap<&'e str, usize>> {
    let mut index = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        if let Some(j) = index.insert(e.name.as_str(), i) {
            return Err(ctx.err(
                &format!("{}.name", e.path),
                format!("'{}' is already defined at {}", e.name, entries[j].path),
            ));
        }
    }
    Ok(index)
}

/// What a reference must point to.
#[derive(Clone, Copy)]
enum Want {
    /// Any type.
    Type,
    /// An object type.
    Object,
}

fn check_references(ctx: &Ctx, entries: &[RawEntry], index: &HashMap<&str, usize>) -> Result<()> {
    let resolve = |path: String, name: &str, want: Want| -> Result<usize> {
        let Some(&i) = index.get(name) else {
            return Err(ctx.err(&path, format!("type '{name}' is not defined")));
        };
        let kind = &entries[i].kind;
        let ok = match want {
            Want::Type => !matches!(kind, RawKind::Command { .. } | RawKind::Event { .. }),
            Want::Object => matches!(kind, RawKind::Object { .. }),
        };
        if ok {
            Ok(i)
        } else {
            let need = match want {
                Want::Type => "a type",
                Want::Object => "an object type",
            };
            Err(ctx.err(
                &path,
                format!(
                    "'{name}' is {} {}, not {need}",
                    article(kind),
                    kind.meta_type()
                ),
            ))
        }
    };
    for (i, e) in entries.iter().enumerate() {
        let p = &e.path;
        match &e.kind {
            RawKind::Builtin(_) | RawKind::Enum(_) => {}
            RawKind::Array { element } => {
                resolve(format!("{p}.element-type"), element, Want::Type)?;
                let mut j = i;
                let mut depth = 0;
                while let RawKind::Array { element } = &entries[j].kind {
                    depth += 1;
                    if depth > MAX_ARRAY_NESTING {
                        return Err(ctx.err(
                            &format!("{p}.element-type"),
                            format!("arrays nested more than {MAX_ARRAY_NESTING} deep (or cyclic)"),
                        ));
                    }
                    match index.get(element.as_str()) {
                        Some(&k) => j = k,
                        None => break,
                    }
                }
            }
            RawKind::Object { members, variants } => {
                for (k, m) in members.iter().enumerate() {
                    resolve(format!("{p}.members[{k}].type"), &m.ty, Want::Type)?;
                }
                if let Some((tag, variants)) = variants {
                    let Some(tag_member) = members.iter().find(|m| &m.name == tag) else {
                        return Err(
                            ctx.err(&format!("{p}.tag"), format!("tag '{tag}' is not a member"))
                        );
                    };
                    let t = resolve(format!("{p}.tag"), &tag_member.ty, Want::Type)?;
                    if !matches!(entries[t].kind, RawKind::Enum(_)) {
                        return Err(ctx.err(
                            &format!("{p}.tag"),
                            format!("tag member '{tag}' is not of an enum type"),
                        ));
                    }
                    for (k, (_, ty)) in variants.iter().enumerate() {
                        resolve(format!("{p}.variants[{k}].type"), ty, Want::Object)?;
                    }
                }
            }
            RawKind::Alternate(members) => {
                for (k, ty) in members.iter().enumerate() {
                    resolve(format!("{p}.members[{k}].type"), ty, Want::Type)?;
                }
            }
            RawKind::Command { arg, ret, .. } => {
                resolve(format!("{p}.arg-type"), arg, Want::Object)?;
                resolve(format!("{p}.ret-type"), ret, Want::Type)?;
            }
            RawKind::Event { arg } => {
                resolve(format!("{p}.arg-type"), arg, Want::Object)?;
            }
        }
    }
    Ok(())
}

fn article(kind: &RawKind) -> &'static str {
    match kind {
        RawKind::Enum(_) | RawKind::Array { .. } | RawKind::Object { .. } => "an",
        RawKind::Alternate(_) => "an",
        _ => "a",
    }
}

fn is_empty_object(e: &RawEntry) -> bool {
    matches!(&e.kind, RawKind::Object { members, variants: None } if members.is_empty())
        && e.features.is_empty()
}

/// The entry standing for QEMU's `q_empty`: the one of that name in an unmasked dump,
/// else the first featureless empty object that a command or event (in QEMU's order)
/// uses for its arguments or reply. Other empty objects stay ordinary types.
fn find_q_empty(entries: &[RawEntry], index: &HashMap<&str, usize>) -> Option<usize> {
    if let Some(&i) = index.get("q_empty") {
        return Some(i);
    }
    let masked_empty = |name: &str| {
        index
            .get(name)
            .copied()
            .filter(|&i| is_masked(name) && is_empty_object(&entries[i]))
    };
    entries.iter().find_map(|e| match &e.kind {
        RawKind::Command { arg, ret, .. } => masked_empty(arg).or_else(|| masked_empty(ret)),
        RawKind::Event { arg } => masked_empty(arg),
        _ => None,
    })
}

/// A place in the model's entity list.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Raw(usize),
    SynthEmpty,
    SynthQType,
}

fn build(
    file_name: &str,
    entries: &[RawEntry],
    index: &HashMap<&str, usize>,
    q_empty: Option<usize>,
    names: Vec<String>,
) -> Schema {
    // Module layout: builtins, their arrays, q_empty and QType in `./builtin` (as the
    // source reader has them), everything else in the file's module, in QEMU's order.
    let builtin_based = |mut i: usize| {
        for _ in 0..=MAX_ARRAY_NESTING {
            match &entries[i].kind {
                RawKind::Builtin(_) => return true,
                RawKind::Array { element } => match index.get(element.as_str()) {
                    Some(&k) => i = k,
                    None => return false,
                },
                _ => return false,
            }
        }
        false
    };
    let qtype = index
        .get("QType")
        .copied()
        .filter(|&i| matches!(entries[i].kind, RawKind::Enum(_)));
    let mut builtin_slots: Vec<Slot> = (0..entries.len())
        .filter(|&i| matches!(entries[i].kind, RawKind::Builtin(_)))
        .map(Slot::Raw)
        .collect();
    builtin_slots.extend(
        (0..entries.len())
            .filter(|&i| matches!(entries[i].kind, RawKind::Array { .. }) && builtin_based(i))
            .map(Slot::Raw),
    );
    builtin_slots.push(q_empty.map_or(Slot::SynthEmpty, Slot::Raw));
    builtin_slots.push(qtype.map_or(Slot::SynthQType, Slot::Raw));
    let mut in_builtin = vec![false; entries.len()];
    for slot in &builtin_slots {
        if let Slot::Raw(i) = *slot {
            in_builtin[i] = true;
        }
    }
    let file_slots: Vec<Slot> = (0..entries.len())
        .filter(|&i| !in_builtin[i])
        .map(Slot::Raw)
        .collect();

    let mut raw_id = vec![EntityId(0); entries.len()];
    let mut empty_id = EntityId(0);
    let mut qtype_id = EntityId(0);
    for (n, slot) in builtin_slots.iter().chain(&file_slots).enumerate() {
        let id = EntityId(n as u32);
        match *slot {
            Slot::Raw(i) => raw_id[i] = id,
            Slot::SynthEmpty => empty_id = id,
            Slot::SynthQType => qtype_id = id,
        }
    }
    if let Some(i) = q_empty {
        empty_id = raw_id[i];
    }
    if let Some(i) = qtype {
        qtype_id = raw_id[i];
    }
    let id_of = |name: &str| index.get(name).map_or(empty_id, |&i| raw_id[i]);
    let is_union = |name: &str| {
        index.get(name).is_some_and(|&i| {
            matches!(
                entries[i].kind,
                RawKind::Object {
                    variants: Some(_),
                    ..
                }
            )
        })
    };
    let no_empty = |name: &str| Some(id_of(name)).filter(|&id| id != empty_id);

    let mut entities = Vec::with_capacity(builtin_slots.len() + file_slots.len());
    let mut masked_names = Vec::new();
    for (m, slots) in [&builtin_slots, &file_slots].into_iter().enumerate() {
        for &slot in slots {
            let (name, features, kind) = match slot {
                Slot::SynthEmpty => (
                    "q_empty".to_string(),
                    Vec::new(),
                    EntityKind::Object(Object {
                        base: None,
                        local_members: Vec::new(),
                        members: Vec::new(),
                        branches: None,
                    }),
                ),
                Slot::SynthQType => (
                    "QType".to_string(),
                    Vec::new(),
                    EntityKind::Enum(Enum {
                        members: [
                            "none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool",
                        ]
                        .iter()
                        .map(|v| EnumMember {
                            name: v.to_string(),
                            ifcond: None,
                            features: Vec::new(),
                            pos: None,
                        })
                        .collect(),
                        prefix: None,
                    }),
                ),
                Slot::Raw(i) => {
                    let e = &entries[i];
                    let name = names[i].clone();
                    if is_masked(&e.name) {
                        masked_names.push((name.clone(), e.name.clone()));
                    }
                    let member = |m: &parse::RawMember| Member {
                        name: m.name.clone(),
                        ty: id_of(&m.ty),
                        optional: m.default.is_some(),
                        ifcond: None,
                        features: features(&m.features),
                        pos: None,
                        defined_in: name.clone(),
                        default: m.default.clone().filter(|v| !v.is_null()),
                    };
                    let kind = match &e.kind {
                        RawKind::Builtin(b) => EntityKind::Builtin(*b),
                        RawKind::Enum(members) => EntityKind::Enum(Enum {
                            members: members
                                .iter()
                                .map(|v| EnumMember {
                                    name: v.name.clone(),
                                    ifcond: None,
                                    features: features(&v.features),
                                    pos: None,
                                })
                                .collect(),
                            prefix: None,
                        }),
                        RawKind::Array { element } => EntityKind::Array(Array {
                            element: id_of(element),
                        }),
                        RawKind::Object { members, variants } => {
                            let members: Vec<Member> = members.iter().map(member).collect();
                            let branches = variants.as_ref().and_then(|(tag, variants)| {
                                let tag_member = members.iter().find(|m| &m.name == tag)?;
                                Some(Variants {
                                    tag_member: tag_member.clone(),
                                    variants: variants
                                        .iter()
                                        .map(|(case, ty)| Variant {
                                            name: case.clone(),
                                            ty: id_of(ty),
                                            ifcond: None,
                                            pos: None,
                                        })
                                        .collect(),
                                })
                            });
                            EntityKind::Object(Object {
                                base: None,
                                local_members: members.clone(),
                                members,
                                branches,
                            })
                        }
                        RawKind::Alternate(members) => EntityKind::Alternate(Alternate {
                            alternatives: Variants {
                                tag_member: Member::alternate_tag(qtype_id, &name),
                                variants: members
                                    .iter()
                                    .map(|ty| Variant {
                                        name: names[index.get(ty.as_str()).copied().unwrap_or(i)]
                                            .clone(),
                                        ty: id_of(ty),
                                        ifcond: None,
                                        pos: None,
                                    })
                                    .collect(),
                            },
                        }),
                        RawKind::Command {
                            arg,
                            ret,
                            allow_oob,
                        } => EntityKind::Command(Command {
                            arg_type: no_empty(arg),
                            ret_type: no_empty(ret),
                            gen: true,
                            success_response: true,
                            boxed: is_union(arg),
                            allow_oob: *allow_oob,
                            allow_preconfig: false,
                            coroutine: false,
                        }),
                        RawKind::Event { arg } => EntityKind::Event(Event {
                            arg_type: no_empty(arg),
                            boxed: is_union(arg),
                        }),
                    };
                    (name, features(&e.features), kind)
                }
            };
            // Like the source reader: builtins, q_empty, QType and arrays are implicit.
            let implicit = m == 0 || matches!(kind, EntityKind::Array(_));
            entities.push(Entity {
                name,
                pos: None,
                module: ModuleId(m as u32),
                doc: None,
                ifcond: None,
                features,
                implicit,
                kind,
                since: None,
                manual_module: None,
            });
        }
    }

    let by_name = entities
        .iter()
        .enumerate()
        .map(|(n, e)| (e.name.clone(), EntityId(n as u32)))
        .collect();
    let items = |range: std::ops::Range<usize>| {
        range
            .map(|n| ModuleItem::Entity(EntityId(n as u32)))
            .collect()
    };
    let modules = vec![
        Module {
            name: "./builtin".to_string(),
            items: items(0..builtin_slots.len()),
        },
        Module {
            name: file_name.to_string(),
            items: items(builtin_slots.len()..entities.len()),
        },
    ];
    Schema {
        entities,
        modules,
        docs: Vec::new(),
        pragma: Pragma::default(),
        origin: Origin::Introspection { masked_names },
        warnings: Vec::new(),
        availability: None,
        by_name,
    }
}

fn features(names: &[String]) -> Vec<Feature> {
    names
        .iter()
        .map(|n| Feature {
            name: n.clone(),
            ifcond: None,
            pos: None,
        })
        .collect()
}
