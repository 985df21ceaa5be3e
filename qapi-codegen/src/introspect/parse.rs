//! Shape checks: the `SchemaInfo` JSON array → [`RawEntry`]s, with the JSON path of
//! every value kept for error messages. Names are not resolved here.

use crate::json::{Map, Value};

use crate::model::Builtin;

/// Where a value sits, and the file it came from: builds errors.
#[derive(Clone)]
pub(super) struct Ctx<'a> {
    pub file: &'a str,
}

impl Ctx<'_> {
    pub fn err(&self, path: &str, message: impl Into<String>) -> super::IntrospectError {
        super::IntrospectError::Invalid {
            file: self.file.to_string(),
            path: path.to_string(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, super::IntrospectError>;

/// One `SchemaInfo`, shape-checked.
pub(super) struct RawEntry {
    pub name: String,
    /// `$[i]`.
    pub path: String,
    pub features: Vec<String>,
    pub kind: RawKind,
}

/// The meta-type specific part of a `SchemaInfo`.
pub(super) enum RawKind {
    Builtin(Builtin),
    Enum(Vec<RawEnumMember>),
    Array {
        element: String,
    },
    Object {
        members: Vec<RawMember>,
        /// The `tag` and the `variants` (`case`, `type`), for unions.
        variants: Option<(String, Vec<(String, String)>)>,
    },
    Alternate(Vec<String>),
    Command {
        arg: String,
        ret: String,
        allow_oob: bool,
    },
    Event {
        arg: String,
    },
}

impl RawKind {
    pub fn meta_type(&self) -> &'static str {
        match self {
            RawKind::Builtin(_) => "builtin",
            RawKind::Enum(_) => "enum",
            RawKind::Array { .. } => "array",
            RawKind::Object { .. } => "object",
            RawKind::Alternate(_) => "alternate",
            RawKind::Command { .. } => "command",
            RawKind::Event { .. } => "event",
        }
    }
}

pub(super) struct RawEnumMember {
    pub name: String,
    pub features: Vec<String>,
}

pub(super) struct RawMember {
    pub name: String,
    pub ty: String,
    /// `None` for a mandatory member; `Some(default)` for an optional one (QEMU always
    /// says `null`, meaning "not specified").
    pub default: Option<Value>,
    pub features: Vec<String>,
}

/// Finds the schema array: the value itself, or the `return` of a QMP reply.
pub(super) fn schema_array<'v>(ctx: &Ctx, value: &'v Value) -> Result<&'v [Value]> {
    match value {
        Value::Array(items) => Ok(items),
        Value::Object(map) => match map.get("return") {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(ctx.err("$", "\"return\" of the reply is not an array")),
            None => match map.get("error") {
                Some(e) => Err(ctx.err(
                    "$",
                    format!("QMP error reply, not a schema: {}", compact(e)),
                )),
                None => Err(ctx.err(
                    "$",
                    "expected the schema array or a QMP reply {\"return\": [...]}",
                )),
            },
        },
        other => Err(ctx.err(
            "$",
            format!(
                "expected the schema array or a QMP reply, found {}",
                json_kind(other)
            ),
        )),
    }
}

/// Shape-checks every entry.
pub(super) fn entries(ctx: &Ctx, items: &[Value]) -> Result<Vec<RawEntry>> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| entry(ctx, &format!("$[{i}]"), v))
        .collect()
}

fn entry(ctx: &Ctx, path: &str, value: &Value) -> Result<RawEntry> {
    let obj = object(ctx, path, value)?;
    let name = string(ctx, path, obj, "name")?;
    if name.is_empty() {
        return Err(ctx.err(&format!("{path}.name"), "empty name"));
    }
    let meta = string(ctx, path, obj, "meta-type")?;
    let features = features(ctx, path, obj)?;
    let kind = match meta.as_str() {
        "builtin" => {
            let json_type = string(ctx, path, obj, "json-type")?;
            let builtin = match json_type.as_str() {
                "string" => Builtin::Str,
                "number" => Builtin::Number,
                "int" => Builtin::Int,
                "boolean" => Builtin::Bool,
                "null" => Builtin::Null,
                "value" => Builtin::Any,
                other => {
                    return Err(ctx.err(
                        &format!("{path}.json-type"),
                        format!("unknown JSON type '{other}'"),
                    ))
                }
            };
            RawKind::Builtin(builtin)
        }
        "enum" => RawKind::Enum(enum_members(ctx, path, obj)?),
        "array" => RawKind::Array {
            element: string(ctx, path, obj, "element-type")?,
        },
        "object" => {
            let mpath = format!("{path}.members");
            let members = array(ctx, path, obj, "members")?
                .iter()
                .enumerate()
                .map(|(i, m)| member(ctx, &format!("{mpath}[{i}]"), m))
                .collect::<Result<Vec<_>>>()?;
            let variants = match (obj.get("tag"), obj.get("variants")) {
                (None, None) => None,
                (Some(_), None) => {
                    return Err(ctx.err(path, "has \"tag\" but no \"variants\""));
                }
                (None, Some(_)) => {
                    return Err(ctx.err(path, "has \"variants\" but no \"tag\""));
                }
                (Some(_), Some(_)) => {
                    let tag = string(ctx, path, obj, "tag")?;
                    let vpath = format!("{path}.variants");
                    let variants = array(ctx, path, obj, "variants")?
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            let p = format!("{vpath}[{i}]");
                            let v = object(ctx, &p, v)?;
                            Ok((string(ctx, &p, v, "case")?, string(ctx, &p, v, "type")?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Some((tag, variants))
                }
            };
            RawKind::Object { members, variants }
        }
        "alternate" => {
            let mpath = format!("{path}.members");
            let members = array(ctx, path, obj, "members")?
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let p = format!("{mpath}[{i}]");
                    string(ctx, &p, object(ctx, &p, m)?, "type")
                })
                .collect::<Result<Vec<_>>>()?;
            RawKind::Alternate(members)
        }
        "command" => RawKind::Command {
            arg: string(ctx, path, obj, "arg-type")?,
            ret: string(ctx, path, obj, "ret-type")?,
            allow_oob: match obj.get("allow-oob") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ctx.err(
                        &format!("{path}.allow-oob"),
                        format!("expected a boolean, found {}", json_kind(other)),
                    ))
                }
            },
        },
        "event" => RawKind::Event {
            arg: string(ctx, path, obj, "arg-type")?,
        },
        other => {
            return Err(ctx.err(
                &format!("{path}.meta-type"),
                format!("unknown meta-type '{other}'"),
            ))
        }
    };
    Ok(RawEntry {
        name,
        path: path.to_string(),
        features,
        kind,
    })
}

/// Enum values: `members` (QEMU 6.2 and later, with features), else `values`.
fn enum_members(ctx: &Ctx, path: &str, obj: &Map) -> Result<Vec<RawEnumMember>> {
    if obj.contains_key("members") {
        let mpath = format!("{path}.members");
        array(ctx, path, obj, "members")?
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let p = format!("{mpath}[{i}]");
                let m = object(ctx, &p, m)?;
                Ok(RawEnumMember {
                    name: string(ctx, &p, m, "name")?,
                    features: features(ctx, &p, m)?,
                })
            })
            .collect()
    } else {
        let vpath = format!("{path}.values");
        array(ctx, path, obj, "values")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(RawEnumMember {
                    name: s.clone(),
                    features: Vec::new(),
                }),
                other => Err(ctx.err(
                    &format!("{vpath}[{i}]"),
                    format!("expected a string, found {}", json_kind(other)),
                )),
            })
            .collect()
    }
}

fn member(ctx: &Ctx, path: &str, value: &Value) -> Result<RawMember> {
    let m = object(ctx, path, value)?;
    Ok(RawMember {
        name: string(ctx, path, m, "name")?,
        ty: string(ctx, path, m, "type")?,
        default: m.get("default").cloned(),
        features: features(ctx, path, m)?,
    })
}

fn features(ctx: &Ctx, path: &str, obj: &Map) -> Result<Vec<String>> {
    if !obj.contains_key("features") {
        return Ok(Vec::new());
    }
    let fpath = format!("{path}.features");
    array(ctx, path, obj, "features")?
        .iter()
        .enumerate()
        .map(|(i, f)| match f {
            Value::String(s) => Ok(s.clone()),
            other => Err(ctx.err(
                &format!("{fpath}[{i}]"),
                format!("expected a feature name, found {}", json_kind(other)),
            )),
        })
        .collect()
}

fn object<'v>(ctx: &Ctx, path: &str, value: &'v Value) -> Result<&'v Map> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ctx.err(
            path,
            format!("expected an object, found {}", json_kind(other)),
        )),
    }
}

fn string(ctx: &Ctx, path: &str, obj: &Map, key: &str) -> Result<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(ctx.err(
            &format!("{path}.{key}"),
            format!("expected a string, found {}", json_kind(other)),
        )),
        None => Err(ctx.err(path, format!("missing \"{key}\""))),
    }
}

fn array<'v>(ctx: &Ctx, path: &str, obj: &'v Map, key: &str) -> Result<&'v [Value]> {
    match obj.get(key) {
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(ctx.err(
            &format!("{path}.{key}"),
            format!("expected an array, found {}", json_kind(other)),
        )),
        None => Err(ctx.err(path, format!("missing \"{key}\""))),
    }
}

pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a value for messages.
fn compact(value: &Value) -> String {
    let mut s = value.to_string();
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}
