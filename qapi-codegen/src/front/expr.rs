//! Shape checks of each expression (QEMU's `expr.py`), producing typed definitions.
//!
//! The checks run in QEMU's order so that the first error reported is QEMU's.

use super::doc::QapiDoc;
use std::fmt::{self, Display};

use super::error::SchemaError;
use super::marker::Marks;
use super::names::valid_name_stem;
use super::parser::{Dict, ParsedExpr, Value};
use super::source::{Info, Sources};
use crate::model::{IfCond, Pragma};

/// A type reference: a name, or `[name]` for an array.
#[derive(Clone, Debug)]
pub(crate) enum TypeRef {
    Name(String),
    Array(String),
}

/// A feature as written.
#[derive(Clone, Debug)]
pub(crate) struct FeatDef {
    pub name: String,
    pub ifcond: Option<IfCond>,
}

/// An object member as written (`name` may start with `*`).
#[derive(Clone, Debug)]
pub(crate) struct MemberDef {
    pub name: String,
    pub ty: TypeRef,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatDef>,
}

/// An enum value as written.
#[derive(Clone, Debug)]
pub(crate) struct EnumValueDef {
    pub name: String,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatDef>,
}

/// A union branch or alternative as written.
#[derive(Clone, Debug)]
pub(crate) struct BranchDef {
    pub name: String,
    pub ty: TypeRef,
    pub ifcond: Option<IfCond>,
}

/// `data` of a command or event, or the base of a union: a type name or members.
#[derive(Clone, Debug)]
pub(crate) enum Data {
    Name(String),
    Members(Vec<MemberDef>),
}

/// What a definition defines.
#[derive(Clone, Debug)]
pub(crate) enum DefKind {
    Enum {
        values: Vec<EnumValueDef>,
        prefix: Option<String>,
    },
    Struct {
        base: Option<String>,
        members: Vec<MemberDef>,
    },
    Union {
        base: Data,
        discriminator: String,
        branches: Vec<BranchDef>,
    },
    Alternate {
        alternatives: Vec<BranchDef>,
    },
    Command {
        data: Option<Data>,
        returns: Option<TypeRef>,
        gen: bool,
        success_response: bool,
        boxed: bool,
        allow_oob: bool,
        allow_preconfig: bool,
        coroutine: bool,
    },
    Event {
        data: Option<Data>,
        boxed: bool,
    },
}

/// A checked definition.
#[derive(Clone, Debug)]
pub(crate) struct Def {
    pub name: String,
    pub info: Info,
    pub doc: Option<usize>,
    /// What `qapi-codegen` markers say about it (snapshots only).
    pub marks: Option<Box<Marks>>,
    pub ifcond: Option<IfCond>,
    pub features: Vec<FeatDef>,
    pub kind: DefKind,
}

/// A checked expression.
#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Include { fname: String, info: Info },
    Def(Def),
}

/// A dict, or a non-dict value normalized to `{key: value}` (QEMU's sugar).
#[derive(Clone, Copy)]
enum View<'a> {
    Real(&'a Dict),
    Single(&'static str, &'a Value),
}

impl<'a> View<'a> {
    fn of(v: &'a Value, key: &'static str) -> Self {
        match v {
            Value::Dict(d) => View::Real(d),
            other => View::Single(key, other),
        }
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        match *self {
            View::Real(d) => d.get(key),
            View::Single(k, v) => (k == key).then_some(v),
        }
    }
    fn keys(&self) -> Vec<&'a str> {
        match *self {
            View::Real(d) => d.0.iter().map(|(k, _)| k.as_str()).collect(),
            View::Single(k, _) => vec![k],
        }
    }
}

/// `{0} '{1}'`: a message part, formatted only when an error needs it.
struct Named<'a>(&'a dyn Display, &'a str);

impl Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.0, self.1)
    }
}

/// `{0} member '{1}'`.
struct MemberOf<'a>(&'a dyn Display, &'a str);

impl Display for MemberOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} member '{}'", self.0, self.1)
    }
}

/// `'if' condition of {0}`.
struct IfOf<'a>(&'a dyn Display);

impl Display for IfOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'if' condition of {}", self.0)
    }
}

struct Checker<'a> {
    sources: &'a Sources,
    pragma: &'a Pragma,
    info: Info,
}

type R<T> = Result<T, SchemaError>;

impl Checker<'_> {
    fn err(&self, msg: impl Into<String>) -> SchemaError {
        self.sources.error(self.info, msg)
    }

    fn name_is_str<'v>(&self, name: Option<&'v Value>, source: &dyn Display) -> R<&'v str> {
        match name {
            Some(Value::Str(s)) => Ok(s),
            _ => Err(self.err(format!("{source} requires a string name"))),
        }
    }

    fn name_str<'n>(&self, name: &'n str, source: &dyn Display) -> R<&'n str> {
        // `c_name(name, False).startswith('q_')`, without building the C name.
        let b = name.as_bytes();
        let q_prefixed = b.len() >= 2 && b[0] == b'q' && !b[1].is_ascii_alphanumeric();
        match valid_name_stem(name) {
            Some(stem) if !q_prefixed => Ok(stem),
            _ => Err(self.err(format!("{source} has an invalid name"))),
        }
    }

    fn name_upper(&self, name: &str, source: &dyn Display) -> R<()> {
        let stem = self.name_str(name, source)?;
        if stem.bytes().any(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(self.err(format!("name of {source} must not use lowercase or '-'")));
        }
        Ok(())
    }

    fn name_lower(
        &self,
        name: &str,
        source: &dyn Display,
        permit_upper: bool,
        permit_underscore: bool,
    ) -> R<()> {
        let stem = self.name_str(name, source)?;
        if (!permit_upper && stem.bytes().any(|b| b.is_ascii_uppercase()))
            || (!permit_underscore && stem.contains('_'))
        {
            return Err(self.err(format!("name of {source} must not use uppercase or '_'")));
        }
        Ok(())
    }

    fn name_camel(&self, name: &str, source: &dyn Display) -> R<()> {
        let stem = self.name_str(name, source)?;
        // [A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*$
        let b = stem.as_bytes();
        let ok = b.first().is_some_and(u8::is_ascii_uppercase)
            && b.iter().all(u8::is_ascii_alphanumeric)
            && b[1..].iter().any(u8::is_ascii_lowercase);
        if !ok {
            return Err(self.err(format!("name of {source} must use CamelCase")));
        }
        Ok(())
    }

    fn defn_name(&self, name: &str, meta: &str) -> R<()> {
        match meta {
            "event" => self.name_upper(name, &meta),
            "command" => self.name_lower(
                name,
                &meta,
                false,
                self.pragma
                    .command_name_exceptions
                    .iter()
                    .any(|n| n == name),
            ),
            _ => {
                self.name_camel(name, &meta)?;
                if name.ends_with("List") {
                    return Err(self.err(format!("{meta} name should not end in 'List'")));
                }
                Ok(())
            }
        }
    }

    fn keys(
        &self,
        value: View<'_>,
        source: &dyn Display,
        required: &[&str],
        optional: &[&str],
    ) -> R<()> {
        fn pprint(mut v: Vec<&str>) -> String {
            v.sort_unstable();
            v.dedup();
            v.iter()
                .map(|e| format!("'{e}'"))
                .collect::<Vec<_>>()
                .join(", ")
        }
        let keys = value.keys();
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !keys.contains(r))
            .collect();
        if !missing.is_empty() {
            return Err(self.err(format!(
                "{source} misses key{} {}",
                if missing.len() > 1 { "s" } else { "" },
                pprint(missing)
            )));
        }
        let unknown: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !required.contains(k) && !optional.contains(k))
            .collect();
        if !unknown.is_empty() {
            let allowed: Vec<&str> = required.iter().chain(optional).copied().collect();
            return Err(self.err(format!(
                "{source} has unknown key{} {}\nValid keys are {}.",
                if unknown.len() > 1 { "s" } else { "" },
                pprint(unknown),
                pprint(allowed)
            )));
        }
        Ok(())
    }

    fn ifcond(&self, cond: &Value, source: &dyn Display, depth: usize) -> R<IfCond> {
        if depth > super::parser::MAX_NESTING {
            return Err(self.err(format!("'if' condition of {source} nests too deeply")));
        }
        let d = match cond {
            Value::Str(s) => {
                let b = s.as_bytes();
                let ok = b.first().is_some_and(u8::is_ascii_uppercase)
                    && b.iter()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_');
                if !ok {
                    return Err(self.err(format!(
                        "'if' condition '{s}' of {source} is not a valid identifier"
                    )));
                }
                return Ok(IfCond::Name(s.clone()));
            }
            Value::Dict(d) => d,
            _ => {
                return Err(self.err(format!(
                    "'if' condition of {source} must be a string or an object"
                )))
            }
        };
        self.keys(View::Real(d), &IfOf(source), &[], &["all", "any", "not"])?;
        if d.len() != 1 {
            return Err(self.err(format!("'if' condition of {source} has conflicting keys")));
        }
        if let Some(n) = d.get("not") {
            return Ok(IfCond::Not(Box::new(self.ifcond(n, source, depth + 1)?)));
        }
        let (op, operands) = match d.get("all") {
            Some(v) => ("all", v),
            None => ("any", d.get("any").unwrap_or(&Value::Bool(false))),
        };
        let Value::List(l) = operands else {
            return Err(self.err(format!("'{op}' condition of {source} must be an array")));
        };
        if l.is_empty() {
            return Err(self.err(format!("'if' condition [] of {source} is useless")));
        }
        let conds = l
            .iter()
            .map(|c| self.ifcond(c, source, depth + 1))
            .collect::<R<Vec<_>>>()?;
        Ok(if op == "all" {
            IfCond::All(conds)
        } else {
            IfCond::Any(conds)
        })
    }

    /// `check_if` on the `if` key of `v`.
    fn check_if(&self, v: View<'_>, source: &dyn Display) -> R<Option<IfCond>> {
        match v.get("if") {
            None => Ok(None),
            Some(c) => self.ifcond(c, source, 0).map(Some),
        }
    }

    fn features(&self, features: Option<&Value>) -> R<Vec<FeatDef>> {
        let Some(features) = features else {
            return Ok(Vec::new());
        };
        let Value::List(list) = features else {
            return Err(self.err("'features' must be an array"));
        };
        let mut out = Vec::with_capacity(list.len());
        for f in list {
            let feat = View::of(f, "name");
            let source: &dyn Display = &"'features' member";
            self.keys(feat, source, &["name"], &["if"])?;
            let name = self.name_is_str(feat.get("name"), source)?;
            let source = Named(source, name);
            self.name_lower(name, &source, false, false)?;
            let ifcond = self.check_if(feat, &source)?;
            out.push(FeatDef {
                name: name.to_owned(),
                ifcond,
            });
        }
        Ok(out)
    }

    fn type_name(&self, value: &Value, source: &dyn Display) -> R<String> {
        match value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(self.err(format!("{source} should be a type name"))),
        }
    }

    fn type_name_or_array(&self, value: &Value, source: &dyn Display) -> R<TypeRef> {
        match value {
            Value::Str(s) => Ok(TypeRef::Name(s.clone())),
            Value::List(l) => match l.as_slice() {
                [Value::Str(s)] => Ok(TypeRef::Array(s.clone())),
                _ => Err(self.err(format!(
                    "{source}: array type must contain single type name"
                ))),
            },
            _ => Err(self.err(format!("{source} should be a type name or array"))),
        }
    }

    fn type_implicit(
        &self,
        value: &Value,
        source: &dyn Display,
        parent_name: Option<&str>,
    ) -> R<Vec<MemberDef>> {
        let Value::Dict(d) = value else {
            return Err(self.err(format!("{source} should be an object or type name")));
        };
        let permissive =
            parent_name.is_some_and(|p| self.pragma.member_name_exceptions.iter().any(|e| e == p));
        let mut out = Vec::with_capacity(d.len());
        for (key, arg) in &d.0 {
            let key_source = MemberOf(source, key);
            let bare = key.strip_prefix('*').unwrap_or(key);
            self.name_lower(bare, &key_source, permissive, permissive)?;
            // `c_name(key) == 'u' or c_name(key).startswith('has_')`.
            let b = bare.as_bytes();
            if bare == "u"
                || (b.len() >= 4 && b.starts_with(b"has") && !b[3].is_ascii_alphanumeric())
            {
                return Err(self.err(format!("{key_source} uses reserved name")));
            }
            let arg = View::of(arg, "type");
            self.keys(arg, &key_source, &["type"], &["if", "features"])?;
            let ifcond = self.check_if(arg, &key_source)?;
            let features = self.features(arg.get("features"))?;
            let ty = self
                .type_name_or_array(arg.get("type").unwrap_or(&Value::Bool(false)), &key_source)?;
            out.push(MemberDef {
                name: key.clone(),
                ty,
                ifcond,
                features,
            });
        }
        Ok(out)
    }

    /// `check_type_name_or_implicit`.
    fn name_or_implicit(
        &self,
        value: &Value,
        source: &dyn Display,
        parent_name: Option<&str>,
    ) -> R<Data> {
        match value {
            Value::Str(s) => Ok(Data::Name(s.clone())),
            _ => Ok(Data::Members(self.type_implicit(
                value,
                source,
                parent_name,
            )?)),
        }
    }

    fn enum_(&self, name: &str, expr: &Dict) -> R<DefKind> {
        let members = expr.get("data").unwrap_or(&Value::Bool(false));
        let prefix = expr.get("prefix");
        let Value::List(members) = members else {
            return Err(self.err("'data' must be an array"));
        };
        let prefix = match prefix {
            None => None,
            Some(Value::Str(s)) => Some(s.clone()),
            Some(_) => return Err(self.err("'prefix' must be a string")),
        };
        let permissive = self.pragma.member_name_exceptions.iter().any(|e| e == name);
        let mut values = Vec::with_capacity(members.len());
        for m in members {
            let member = View::of(m, "name");
            let source: &dyn Display = &"'data' member";
            self.keys(member, source, &["name"], &["if", "features"])?;
            let mname = self.name_is_str(member.get("name"), source)?;
            let source = Named(source, mname);
            let hidden;
            let checked = if mname.starts_with(|c: char| c.is_numeric()) {
                hidden = format!("d{mname}");
                hidden.as_str()
            } else {
                mname
            };
            self.name_lower(checked, &source, permissive, permissive)?;
            let ifcond = self.check_if(member, &source)?;
            let features = self.features(member.get("features"))?;
            values.push(EnumValueDef {
                name: mname.to_owned(),
                ifcond,
                features,
            });
        }
        Ok(DefKind::Enum { values, prefix })
    }

    fn branches(&self, data: &Dict, alternate: bool) -> R<Vec<BranchDef>> {
        let mut out = Vec::with_capacity(data.len());
        for (key, value) in &data.0 {
            let source = Named(&"'data' member", key);
            if alternate {
                self.name_lower(key, &source, false, false)?;
            }
            let value = View::of(value, "type");
            self.keys(value, &source, &["type"], &["if"])?;
            let ifcond = self.check_if(value, &source)?;
            let tv = value.get("type").unwrap_or(&Value::Bool(false));
            let ty = if alternate {
                self.type_name_or_array(tv, &source)?
            } else {
                TypeRef::Name(self.type_name(tv, &source)?)
            };
            out.push(BranchDef {
                name: key.clone(),
                ty,
                ifcond,
            });
        }
        Ok(out)
    }

    /// `data` of a command or event.
    fn args(&self, expr: &Dict) -> R<Option<Data>> {
        let args = expr.get("data");
        let boxed = expr.get("boxed").is_some_and(Value::truthy);
        if boxed {
            let Some(args) = args else {
                return Err(self.err("'boxed': true requires 'data'"));
            };
            return Ok(Some(Data::Name(self.type_name(args, &"'data'")?)));
        }
        match args {
            None => Ok(None),
            Some(v) => Ok(Some(self.name_or_implicit(v, &"'data'", None)?)),
        }
    }

    fn flags(&self, expr: &Dict) -> R<()> {
        for key in ["gen", "success-response"] {
            if expr.get(key).is_some_and(|v| *v != Value::Bool(false)) {
                return Err(self.err(format!("flag '{key}' may only use false value")));
            }
        }
        for key in ["boxed", "allow-oob", "allow-preconfig", "coroutine"] {
            if expr.get(key).is_some_and(|v| *v != Value::Bool(true)) {
                return Err(self.err(format!("flag '{key}' may only use true value")));
            }
        }
        if expr.contains("allow-oob") && expr.contains("coroutine") {
            return Err(self.err("flags 'allow-oob' and 'coroutine' are incompatible"));
        }
        Ok(())
    }
}

const METAS: [&str; 6] = ["enum", "struct", "union", "alternate", "command", "event"];

/// `check_exprs`: check every expression and turn it into a typed definition.
///
/// With `warnings` (tolerant docs), a doc comment that does not fit its definition is
/// dropped (marked in `docs`) and its error becomes a warning.
pub(crate) fn check_exprs(
    exprs: Vec<ParsedExpr>,
    docs: &mut [QapiDoc],
    sources: &mut Sources,
    pragma: &Pragma,
    mut warnings: Option<&mut Vec<SchemaError>>,
) -> Result<Vec<Expr>, SchemaError> {
    let mut out = Vec::with_capacity(exprs.len());
    for expr in exprs {
        let (dict, info, doc, marks) = match expr {
            ParsedExpr::Include { fname, info } => {
                out.push(Expr::Include { fname, info });
                continue;
            }
            ParsedExpr::Def {
                dict,
                info,
                doc,
                marks,
            } => (dict, info, doc, marks),
        };
        let metas: Vec<&'static str> = METAS.iter().copied().filter(|m| dict.contains(m)).collect();
        let c = Checker {
            sources: &*sources,
            pragma,
            info,
        };
        if metas.len() != 1 {
            return Err(c.err(
                "expression must have exactly one key 'enum', 'struct', 'union', \
                 'alternate', 'command', 'event'",
            ));
        }
        let meta = metas[0];
        let name = c
            .name_is_str(dict.get(meta), &format!("'{meta}'"))?
            .to_owned();
        sources.set_defn(info, meta, &name);
        let c = Checker {
            sources: &*sources,
            pragma,
            info,
        };
        c.defn_name(&name, meta)?;
        let mut doc = doc;
        if let Some(d) = doc {
            let dd = &docs[d];
            let checked = if dd.symbol.as_deref() != Some(name.as_str()) {
                Err(c.err(format!(
                    "documentation comment is for '{}'",
                    dd.symbol.as_deref().unwrap_or("None")
                )))
            } else {
                dd.check_expr(c.sources, meta == "command", dict.contains("returns"))
            };
            match (checked, warnings.as_deref_mut()) {
                (Ok(()), _) => {}
                (Err(e), None) => return Err(e),
                (Err(e), Some(w)) => {
                    w.push(e);
                    docs[d].dropped = true;
                    doc = None;
                }
            }
        } else if pragma.doc_required && warnings.is_none() {
            return Err(c.err("documentation comment required"));
        }
        let kind = match meta {
            "enum" => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["enum", "data"],
                    &["if", "features", "prefix"],
                )?;
                c.enum_(&name, &dict)?
            }
            "union" => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["union", "base", "discriminator", "data"],
                    &["if", "features"],
                )?;
                let base = dict.get("base").unwrap_or(&Value::Bool(false));
                let data = dict.get("data").unwrap_or(&Value::Bool(false));
                let base = c.name_or_implicit(base, &"'base'", Some(&name))?;
                let discriminator = c
                    .name_is_str(dict.get("discriminator"), &"'discriminator'")?
                    .to_owned();
                let Value::Dict(data) = data else {
                    return Err(c.err("'data' must be an object"));
                };
                DefKind::Union {
                    base,
                    discriminator,
                    branches: c.branches(data, false)?,
                }
            }
            "alternate" => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["alternate", "data"],
                    &["if", "features"],
                )?;
                let data = dict.get("data").unwrap_or(&Value::Bool(false));
                if !data.truthy() {
                    return Err(c.err("'data' must not be empty"));
                }
                let Value::Dict(data) = data else {
                    return Err(c.err("'data' must be an object"));
                };
                DefKind::Alternate {
                    alternatives: c.branches(data, true)?,
                }
            }
            "struct" => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["struct", "data"],
                    &["base", "if", "features"],
                )?;
                let data = dict.get("data").unwrap_or(&Value::Bool(false));
                let members = c.type_implicit(data, &"'data'", Some(&name))?;
                let base = match dict.get("base") {
                    None => None,
                    Some(b) => Some(c.type_name(b, &"'base'")?),
                };
                DefKind::Struct { base, members }
            }
            "command" => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["command"],
                    &[
                        "data",
                        "returns",
                        "boxed",
                        "if",
                        "features",
                        "gen",
                        "success-response",
                        "allow-oob",
                        "allow-preconfig",
                        "coroutine",
                    ],
                )?;
                let data = c.args(&dict)?;
                let returns = match dict.get("returns") {
                    None => None,
                    Some(r) => Some(c.type_name_or_array(r, &"'returns'")?),
                };
                let flag = |k: &str| dict.get(k).map(|v| *v == Value::Bool(true));
                DefKind::Command {
                    data,
                    returns,
                    gen: flag("gen").unwrap_or(true),
                    success_response: flag("success-response").unwrap_or(true),
                    boxed: flag("boxed").unwrap_or(false),
                    allow_oob: flag("allow-oob").unwrap_or(false),
                    allow_preconfig: flag("allow-preconfig").unwrap_or(false),
                    coroutine: flag("coroutine").unwrap_or(false),
                }
            }
            _ => {
                c.keys(
                    View::Real(&dict),
                    &meta,
                    &["event"],
                    &["data", "boxed", "if", "features"],
                )?;
                let data = c.args(&dict)?;
                DefKind::Event {
                    data,
                    boxed: dict.get("boxed") == Some(&Value::Bool(true)),
                }
            }
        };
        let ifcond = c.check_if(View::Real(&dict), &meta)?;
        let features = c.features(dict.get("features"))?;
        c.flags(&dict)?;
        out.push(Expr::Def(Def {
            name,
            info,
            doc,
            marks,
            ifcond,
            features,
            kind,
        }));
    }
    Ok(out)
}
