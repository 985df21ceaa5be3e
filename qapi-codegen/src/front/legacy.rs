//! Older QAPI dialects ([`Dialect::Legacy`](crate::model::Dialect::Legacy)): the
//! schemas of QEMU 3.1 to 7.x, read by rewriting what changed into the current dialect
//! before the checks run. QEMU 5.2's `scripts/qapi` (Debian's source package) is the
//! reference for the old semantics.
//!
//! What is rewritten:
//!
//! - **Conditions**: `if` was a C preprocessor expression string (`'defined(CONFIG_X)'`,
//!   with `!`, `&&`, `||`, parentheses) or a list of them (all must hold); it becomes
//!   the current `{'all'|'any'|'not': …}` form with plain symbols.
//! - **Simple unions** (a `union` without `discriminator`): QEMU expanded each into an
//!   implicit enum `NAMEKind` of the branch names, one wrapper object
//!   `q_obj_TYPE-wrapper` with the single member `data` per branch type (conditional
//!   like the wrapped type), and a union whose tag member `type` is of that enum. The
//!   union is rewritten to the flat form with base `{'type': 'NAMEKind'}`; the enum and
//!   wrappers are returned as definitions to insert before it, past the name checks
//!   (their names are reserved to QEMU's implicit types). One difference from QEMU
//!   5.2's model remains: the tag member comes from an implicit base
//!   `q_obj_NAME-base` rather than being the union's own local member; the members,
//!   branches and wire format are the same.
//! - **Pragmas**: `returns-whitelist` and `name-case-whitelist` are today's
//!   `command-returns-exceptions` and `member-name-exceptions`.
//! - **Naming rules**: old schemas used `_` in command and member names freely; such
//!   commands and the types with such members are added to the exception pragmas,
//!   which is what QEMU 6.0 did when it introduced the rules.
//! - **Docs**: the doc syntax changed many times (`Note:`, `Example:` sections,
//!   headings, indentation rules), so in this dialect doc comments are read tolerantly:
//!   each block QEMU 10.0's rules reject is dropped with a warning
//!   ([`crate::model::Schema::warnings`]), and `doc-required` is off.
//!
//! The automatic choice ([`super::parse_sources`]) takes this dialect only when the
//! current one fails and the sources use a legacy construct or are a QEMU release's:
//! what the legacy dialect accepts includes what QEMU 10.0 rejects with specific errors
//! (its own test cases check them).

use std::collections::HashMap;

use super::expr::{Def, DefKind, Expr, MemberDef, TypeRef};
use super::parser::{Dict, ParsedExpr, Value};
use crate::model::{IfCond, Pragma};

/// The current name of a pragma of the legacy dialect.
pub(crate) fn pragma_name(name: &str) -> &str {
    match name {
        "returns-whitelist" => "command-returns-exceptions",
        "name-case-whitelist" => "member-name-exceptions",
        other => other,
    }
}

/// True if the expressions use a construct only the legacy dialect has: a simple
/// union, or an `if` that is a C expression (`defined(…)`, operators), alone or in a
/// list. The
/// current dialect rejects each of these, so a schema that fails to read as current
/// and has one is taken to be legacy (see [`super::load_schema`]).
pub(crate) fn uses_legacy_constructs(exprs: &[ParsedExpr]) -> bool {
    fn legacy_if(v: &Value) -> bool {
        match v {
            Value::Str(s) => !s.bytes().all(|b| b == b'_' || b.is_ascii_alphanumeric()),
            // A list of plain names is only an error today (QEMU's test `bad-if`).
            Value::List(l) => l.iter().any(legacy_if),
            _ => false,
        }
    }
    fn dict_has_legacy_if(d: &Dict) -> bool {
        d.0.iter().any(|(k, v)| match (k.as_str(), v) {
            ("if", v) => legacy_if(v),
            ("data" | "base", Value::Dict(m)) => m.0.iter().any(|(_, x)| match x {
                Value::Dict(md) => dict_has_legacy_if(md),
                _ => false,
            }),
            ("data" | "features", Value::List(l)) => l.iter().any(|x| match x {
                Value::Dict(md) => dict_has_legacy_if(md),
                _ => false,
            }),
            _ => false,
        })
    }
    exprs.iter().any(|e| match e {
        ParsedExpr::Def { dict, .. } => {
            let simple_union =
                dict.contains("union") && !dict.contains("discriminator") && !dict.contains("base");
            simple_union || dict_has_legacy_if(dict)
        }
        ParsedExpr::Include { .. } => false,
    })
}

/// Implicit definitions of a simple union, to insert before the union `before`.
pub(crate) struct Implicit {
    before: String,
    defs: Vec<(String, ImplicitKind)>,
}

enum ImplicitKind {
    /// `NAMEKind`: the branch names with their conditions.
    Kind(Vec<(String, Option<Value>)>, Option<Value>),
    /// `q_obj_TYPE-wrapper`: member `data` of the type, conditional like the type.
    Wrapper(Value, Option<Value>),
}

/// Rewrites legacy expressions in place; returns the implicit definitions to insert
/// after the checks (see [`insert_implicit`]).
pub(crate) fn rewrite(exprs: &mut [ParsedExpr], pragma: &mut Pragma) -> Vec<Implicit> {
    for e in exprs.iter_mut() {
        if let ParsedExpr::Def { dict, .. } = e {
            rewrite_ifs(dict);
        }
    }
    // Conditions of every named type, for the wrappers.
    let mut type_ifs: HashMap<String, Option<Value>> = HashMap::new();
    for e in exprs.iter() {
        if let ParsedExpr::Def { dict, .. } = e {
            for meta in ["enum", "struct", "union", "alternate"] {
                if let Some(Value::Str(name)) = dict.get(meta) {
                    type_ifs.insert(name.clone(), dict.get("if").cloned());
                }
            }
        }
    }
    let mut implicit = Vec::new();
    let mut wrappers_seen = std::collections::HashSet::new();
    for e in exprs.iter_mut() {
        let ParsedExpr::Def { dict, .. } = e else {
            continue;
        };
        exceptions(dict, pragma);
        let Some(Value::Str(name)) = dict.get("union").cloned() else {
            continue;
        };
        // A union with a base but no discriminator was an error then too: left for
        // the checks to report.
        if dict.contains("discriminator") || dict.contains("base") {
            continue;
        }
        let Some(Value::Dict(data)) = dict.get("data").cloned() else {
            continue;
        };
        let kind_name = format!("{name}Kind");
        let mut values = Vec::new();
        let mut branches = Vec::new();
        let mut defs = Vec::new();
        for (case, v) in &data.0 {
            let (ty, cond) = match v {
                Value::Dict(d) => (d.get("type").cloned(), d.get("if").cloned()),
                other => (Some(other.clone()), None),
            };
            let Some(ty) = ty else { continue };
            let (wrapped_name, wrapped_if) = match &ty {
                Value::Str(t) => (t.clone(), type_ifs.get(t).cloned().flatten()),
                Value::List(l) => match l.first() {
                    Some(Value::Str(t)) => (format!("{t}List"), type_ifs.get(t).cloned().flatten()),
                    _ => continue,
                },
                _ => continue,
            };
            let wrapper = format!("q_obj_{wrapped_name}-wrapper");
            if wrappers_seen.insert(wrapper.clone()) {
                defs.push((
                    wrapper.clone(),
                    ImplicitKind::Wrapper(ty.clone(), wrapped_if),
                ));
            }
            values.push((case.clone(), cond.clone()));
            let mut branch = vec![("type".to_string(), Value::Str(wrapper))];
            if let Some(c) = cond {
                branch.push(("if".to_string(), c));
            }
            branches.push((case.clone(), Value::Dict(Dict(branch))));
        }
        defs.insert(
            0,
            (
                kind_name.clone(),
                ImplicitKind::Kind(values, dict.get("if").cloned()),
            ),
        );
        set(
            dict,
            "base",
            Value::Dict(Dict(vec![("type".into(), Value::Str(kind_name))])),
        );
        set(dict, "discriminator", Value::Str("type".into()));
        set(dict, "data", Value::Dict(Dict(branches)));
        implicit.push(Implicit { before: name, defs });
    }
    pragma.doc_required = false;
    implicit
}

fn set(dict: &mut Dict, key: &str, value: Value) {
    match dict.0.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => dict.0.push((key.to_string(), value)),
    }
}

/// Adds the definition to the naming-rule exceptions its old names need.
fn exceptions(dict: &Dict, pragma: &mut Pragma) {
    let bad = |n: &str| {
        let n = n.trim_start_matches('*');
        n.contains('_') || n.chars().any(|c| c.is_ascii_uppercase())
    };
    if let Some(Value::Str(name)) = dict.get("command") {
        if name.contains('_') && !pragma.command_name_exceptions.contains(name) {
            pragma.command_name_exceptions.push(name.clone());
        }
    }
    for meta in ["struct", "union", "enum", "command", "event", "alternate"] {
        let Some(Value::Str(name)) = dict.get(meta) else {
            continue;
        };
        let names: Vec<String> = match dict.get("data") {
            Some(Value::Dict(d)) => d.0.iter().map(|(k, _)| k.clone()).collect(),
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    Value::Dict(d) => d.get("name").and_then(Value::as_str).map(String::from),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let base_names: Vec<String> = match dict.get("base") {
            Some(Value::Dict(d)) => d.0.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        };
        if names.iter().chain(&base_names).any(|n| bad(n))
            && !pragma.member_name_exceptions.contains(name)
        {
            pragma.member_name_exceptions.push(name.clone());
        }
    }
}

/// Rewrites every `if` of a definition (its own, its members', values', branches' and
/// features') into the current form.
fn rewrite_ifs(dict: &mut Dict) {
    for (key, value) in dict.0.iter_mut() {
        match (key.as_str(), value) {
            ("if", v) => *v = current_if(v),
            ("data" | "base", Value::Dict(d)) => {
                for (_, m) in d.0.iter_mut() {
                    if let Value::Dict(md) = m {
                        rewrite_ifs(md);
                    }
                }
            }
            ("data" | "features", Value::List(l)) => {
                for m in l.iter_mut() {
                    if let Value::Dict(md) = m {
                        rewrite_ifs(md);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A legacy condition value → the current form (unchanged when not legacy).
fn current_if(v: &Value) -> Value {
    match v {
        Value::Str(s) => match parse_c_condition(s) {
            Some(c) => to_value(&c),
            None => v.clone(),
        },
        Value::List(l) => {
            let all: Vec<Value> = l.iter().map(current_if).collect();
            match all.len() {
                1 => all.into_iter().next().unwrap_or(Value::List(Vec::new())),
                _ => Value::Dict(Dict(vec![("all".into(), Value::List(all))])),
            }
        }
        other => other.clone(),
    }
}

fn to_value(c: &IfCond) -> Value {
    let list = |op: &str, v: &[IfCond]| {
        Value::Dict(Dict(vec![(
            op.into(),
            Value::List(v.iter().map(to_value).collect()),
        )]))
    };
    match c {
        IfCond::Name(n) => Value::Str(n.clone()),
        IfCond::All(v) => list("all", v),
        IfCond::Any(v) => list("any", v),
        IfCond::Not(c) => Value::Dict(Dict(vec![("not".into(), to_value(c))])),
    }
}

/// Parses a C preprocessor condition of the old dialect: `defined(X)`, a bare
/// identifier, `!`, `&&`, `||` and parentheses. `None` if it is not one.
pub(crate) fn parse_c_condition(s: &str) -> Option<IfCond> {
    let toks = tokenize(s)?;
    let mut p = CondParser { toks, at: 0 };
    let c = p.or()?;
    (p.at == p.toks.len()).then_some(c)
}

#[derive(Clone, PartialEq, Debug)]
enum CTok {
    Ident(String),
    Not,
    And,
    Or,
    Open,
    Close,
}

fn tokenize(s: &str) -> Option<Vec<CTok>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' => i += 1,
            b'!' => {
                out.push(CTok::Not);
                i += 1
            }
            b'(' => {
                out.push(CTok::Open);
                i += 1
            }
            b')' => {
                out.push(CTok::Close);
                i += 1
            }
            b'&' if b.get(i + 1) == Some(&b'&') => {
                out.push(CTok::And);
                i += 2
            }
            b'|' if b.get(i + 1) == Some(&b'|') => {
                out.push(CTok::Or);
                i += 2
            }
            c if c == b'_' || c.is_ascii_alphanumeric() => {
                let start = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push(CTok::Ident(s[start..i].to_string()));
            }
            _ => return None,
        }
    }
    Some(out)
}

struct CondParser {
    toks: Vec<CTok>,
    at: usize,
}

impl CondParser {
    fn peek(&self) -> Option<&CTok> {
        self.toks.get(self.at)
    }
    fn or(&mut self) -> Option<IfCond> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&CTok::Or) {
            self.at += 1;
            v.push(self.and()?);
        }
        Some(if v.len() == 1 {
            v.pop()?
        } else {
            IfCond::Any(v)
        })
    }
    fn and(&mut self) -> Option<IfCond> {
        let mut v = vec![self.unary()?];
        while self.peek() == Some(&CTok::And) {
            self.at += 1;
            v.push(self.unary()?);
        }
        Some(if v.len() == 1 {
            v.pop()?
        } else {
            IfCond::All(v)
        })
    }
    fn unary(&mut self) -> Option<IfCond> {
        match self.peek()?.clone() {
            CTok::Not => {
                self.at += 1;
                Some(IfCond::Not(Box::new(self.unary()?)))
            }
            CTok::Open => {
                self.at += 1;
                let c = self.or()?;
                (self.peek() == Some(&CTok::Close)).then(|| self.at += 1)?;
                Some(c)
            }
            CTok::Ident(id) if id == "defined" => {
                self.at += 1;
                let paren = self.peek() == Some(&CTok::Open);
                if paren {
                    self.at += 1;
                }
                let CTok::Ident(name) = self.peek()?.clone() else {
                    return None;
                };
                self.at += 1;
                if paren {
                    (self.peek() == Some(&CTok::Close)).then(|| self.at += 1)?;
                }
                Some(IfCond::Name(name))
            }
            CTok::Ident(id) => {
                self.at += 1;
                Some(IfCond::Name(id))
            }
            _ => None,
        }
    }
}

/// Inserts the implicit definitions of simple unions before each union.
pub(crate) fn insert_implicit(exprs: &mut Vec<Expr>, implicit: Vec<Implicit>) {
    let mut by_union: HashMap<String, Vec<(String, ImplicitKind)>> =
        implicit.into_iter().map(|i| (i.before, i.defs)).collect();
    let old = std::mem::take(exprs);
    for e in old {
        if let Expr::Def(d) = &e {
            if matches!(d.kind, DefKind::Union { .. }) {
                if let Some(defs) = by_union.remove(&d.name) {
                    for (name, kind) in defs {
                        exprs.push(Expr::Def(implicit_def(d, name, kind)));
                    }
                }
            }
        }
        exprs.push(e);
    }
}

fn cond(v: &Option<Value>) -> Option<IfCond> {
    fn go(v: &Value) -> Option<IfCond> {
        match v {
            Value::Str(s) => Some(IfCond::Name(s.clone())),
            Value::Dict(d) => {
                let (k, inner) = d.0.first()?;
                match (k.as_str(), inner) {
                    ("all", Value::List(l)) => Some(IfCond::All(l.iter().filter_map(go).collect())),
                    ("any", Value::List(l)) => Some(IfCond::Any(l.iter().filter_map(go).collect())),
                    ("not", v) => Some(IfCond::Not(Box::new(go(v)?))),
                    _ => None,
                }
            }
            _ => None,
        }
    }
    v.as_ref().and_then(go)
}

fn implicit_def(union: &Def, name: String, kind: ImplicitKind) -> Def {
    let (ifcond, kind) = match kind {
        ImplicitKind::Kind(values, union_if) => (
            cond(&union_if),
            DefKind::Enum {
                values: values
                    .into_iter()
                    .map(|(n, c)| super::expr::EnumValueDef {
                        name: n,
                        ifcond: cond(&c),
                        features: Vec::new(),
                    })
                    .collect(),
                prefix: None,
            },
        ),
        ImplicitKind::Wrapper(ty, wrapped_if) => {
            let ty = match ty {
                Value::List(l) => TypeRef::Array(
                    l.first()
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ),
                other => TypeRef::Name(other.as_str().unwrap_or_default().to_string()),
            };
            (
                cond(&wrapped_if),
                DefKind::Struct {
                    base: None,
                    members: vec![MemberDef {
                        name: "data".into(),
                        ty,
                        ifcond: None,
                        features: Vec::new(),
                    }],
                },
            )
        }
    };
    Def {
        name,
        info: union.info,
        doc: None,
        // The union's module, not its since: QEMU documents no implicit type.
        marks: union.marks.as_ref().map(|m| {
            Box::new(super::marker::Marks {
                module: m.module.clone(),
                since: None,
            })
        }),
        ifcond,
        features: Vec::new(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_conditions() {
        let n = |s: &str| IfCond::Name(s.into());
        assert_eq!(
            parse_c_condition("defined(CONFIG_VNC)"),
            Some(n("CONFIG_VNC"))
        );
        assert_eq!(
            parse_c_condition("defined(A) || defined(B)"),
            Some(IfCond::Any(vec![n("A"), n("B")]))
        );
        assert_eq!(
            parse_c_condition("!defined(A) && (B || defined C)"),
            Some(IfCond::All(vec![
                IfCond::Not(Box::new(n("A"))),
                IfCond::Any(vec![n("B"), n("C")])
            ]))
        );
        assert_eq!(parse_c_condition("defined(A"), None);
        assert_eq!(parse_c_condition("A + B"), None);
        assert_eq!(parse_c_condition(""), None);
    }
}
