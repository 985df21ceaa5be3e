//! Building and checking the schema (QEMU's `schema.py`), then resolving it into
//! [`crate::model::Schema`].
//!
//! Entities are created in QEMU's order (builtins, `q_empty`, `QType`, then each
//! definition preceded by the implicit types it needs), checked in that order with
//! QEMU's recursive object checks, connected to their doc comments, and assigned to
//! modules. Every error is the one QEMU would report first.

use std::collections::HashMap;
use std::rc::Rc;

use super::doc::QapiDoc;
use super::error::SchemaError;
use super::expr::{BranchDef, Data, Def, DefKind, Expr, FeatDef, MemberDef, TypeRef};
use super::fxhash::{FxHashMap, FxHashSet};
use super::names::{c_name, c_name_is_identity};
use super::paths;
use super::source::{Info, Sources};
use crate::model::{self, Builtin, EntityId, IfCond, ModuleId, Pragma};

type R<T> = Result<T, SchemaError>;

/// How deeply object checks may recurse (base chains, nested branches).
const MAX_CHECK_DEPTH: usize = 100;

const BUILTIN_MODULE: &str = "./builtin";

/// The role of a member in messages (QEMU's `QAPISchemaMember.role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Member,
    Value,
    Feature,
    Branch,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Value => "value",
            Role::Feature => "feature",
            Role::Branch => "branch",
        }
    }
}

#[derive(Clone, Debug)]
struct SFeature {
    name: String,
    info: Option<Info>,
    ifcond: Option<IfCond>,
    defined_in: String,
}

#[derive(Clone, Debug)]
struct SMember {
    name: Rc<str>,
    info: Option<Info>,
    ifcond: Option<IfCond>,
    defined_in: Rc<str>,
    role: Role,
    ty_name: String,
    ty: Option<u32>,
    optional: bool,
    features: Vec<SFeature>,
}

#[derive(Clone, Debug)]
struct SEnumValue {
    name: Rc<str>,
    info: Option<Info>,
    ifcond: Option<IfCond>,
    defined_in: Rc<str>,
    features: Vec<SFeature>,
}

#[derive(Clone, Debug)]
struct SBranches {
    info: Info,
    tag_name: String,
    variants: Vec<SMember>,
}

#[derive(Clone, Debug)]
struct SObject {
    base_name: Option<String>,
    base: Option<u32>,
    local: Vec<SMember>,
    members: Vec<SMember>,
    branches: Option<SBranches>,
    complete: bool,
}

#[derive(Clone, Debug)]
struct SAlternate {
    tag: SMember,
    variants: Vec<SMember>,
}

#[derive(Clone, Debug)]
struct SCommand {
    arg_name: Option<String>,
    arg: Option<u32>,
    ret_name: Option<String>,
    ret: Option<u32>,
    gen: bool,
    success_response: bool,
    boxed: bool,
    allow_oob: bool,
    allow_preconfig: bool,
    coroutine: bool,
}

#[derive(Clone, Debug)]
struct SEvent {
    arg_name: Option<String>,
    arg: Option<u32>,
    boxed: bool,
}

#[derive(Clone, Debug)]
enum SKind {
    Builtin(Builtin, &'static str),
    Enum {
        values: Vec<SEnumValue>,
        prefix: Option<String>,
    },
    Array {
        elem_name: String,
        elem: Option<u32>,
    },
    Object(SObject),
    Alternate(SAlternate),
    Command(SCommand),
    Event(SEvent),
    Include {
        module: usize,
    },
}

#[derive(Clone, Debug)]
struct SEnt {
    name: String,
    info: Option<Info>,
    doc: Option<usize>,
    ifcond: Option<IfCond>,
    features: Vec<SFeature>,
    kind: SKind,
    checked: bool,
    /// The module a marker puts it in (otherwise its file's).
    module: Option<usize>,
    /// `Since:` and manual module from markers (otherwise from its doc comment).
    since: Option<String>,
    manual: Option<String>,
}

/// What a clash check remembers of a member: enough to describe it and, for a union's
/// discriminator, to check it.
#[derive(Clone, Debug)]
struct Seen {
    role: Role,
    name: Rc<str>,
    defined_in: Rc<str>,
    ty: Option<u32>,
    optional: bool,
    conditional: bool,
}

impl Seen {
    fn of(m: &SMember) -> Self {
        Seen {
            role: m.role,
            name: m.name.clone(),
            defined_in: m.defined_in.clone(),
            ty: m.ty,
            optional: m.optional,
            conditional: m.ifcond.is_some(),
        }
    }
}

type SeenMap = FxHashMap<Rc<str>, Seen>;

struct Builder<'a> {
    sources: &'a Sources,
    pragma: &'a Pragma,
    docs: Vec<QapiDoc>,
    ents: Vec<SEnt>,
    by_name: FxHashMap<String, u32>,
    modules: Vec<String>,
    module_index: FxHashMap<String, usize>,
    /// The module a marker puts the definition being built in (and the implicit types
    /// it brings).
    cur_module: Option<usize>,
    features: Vec<Option<Info>>,
    feature_names: FxHashSet<String>,
    schema_dir: String,
    cwd: String,
    /// With tolerant docs: where doc comments that do not fit are reported (and
    /// dropped) instead of failing.
    warnings: Option<&'a mut Vec<SchemaError>>,
}

/// Build, check and resolve the schema from checked expressions.
pub(crate) fn build(
    fname: &str,
    cwd: String,
    exprs: Vec<Expr>,
    docs: Vec<QapiDoc>,
    sources: &Sources,
    pragma: &Pragma,
    warnings: Option<&mut Vec<SchemaError>>,
) -> R<model::Schema> {
    let mut b = Builder {
        warnings,
        sources,
        pragma,
        docs,
        ents: Vec::with_capacity(exprs.len() * 2 + 64),
        by_name: FxHashMap::default(),
        modules: Vec::new(),
        module_index: FxHashMap::default(),
        cur_module: None,
        features: vec![None, None],
        feature_names: ["deprecated", "unstable"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        schema_dir: paths::dirname(fname).to_owned(),
        cwd,
    };
    b.make_module(BUILTIN_MODULE);
    b.make_module(fname);
    b.def_predefineds()?;
    for e in exprs {
        match e {
            Expr::Include { fname, info } => {
                let module = b.make_module(&fname);
                b.ents.push(SEnt {
                    checked: true,
                    ..Builder::simple_ent(String::new(), Some(info), SKind::Include { module })
                });
            }
            Expr::Def(d) => {
                let marked = d.marks.as_ref().and_then(|m| m.module.as_ref());
                b.cur_module = marked.map(|m| b.named_module(&m.name));
                b.def_expr(d)?;
                b.cur_module = None;
            }
        }
    }
    b.check()?;
    Ok(b.into_model())
}

fn is_type(k: &SKind) -> bool {
    !matches!(
        k,
        SKind::Command(_) | SKind::Event(_) | SKind::Include { .. }
    )
}

impl Builder<'_> {
    fn err(&self, info: Option<Info>, msg: impl Into<String>) -> SchemaError {
        match info {
            Some(i) => self.sources.error(i, msg),
            None => SchemaError::plain(msg),
        }
    }

    // ---- modules -------------------------------------------------------------------

    fn module_name(&self, fname: &str) -> String {
        if fname.starts_with("./") {
            fname.to_owned()
        } else {
            paths::relpath(fname, &self.schema_dir, &self.cwd)
        }
    }

    fn make_module(&mut self, fname: &str) -> usize {
        let name = self.module_name(fname);
        self.named_module(&name)
    }

    /// The module named `name` (a marker's), made if new.
    fn named_module(&mut self, name: &str) -> usize {
        if let Some(&i) = self.module_index.get(name) {
            return i;
        }
        self.modules.push(name.to_owned());
        self.module_index
            .insert(name.to_owned(), self.modules.len() - 1);
        self.modules.len() - 1
    }

    // ---- definitions ---------------------------------------------------------------

    fn describe_ent(&self, idx: u32) -> String {
        let e = &self.ents[idx as usize];
        match &e.kind {
            SKind::Builtin(..) => format!("built-in type '{}'", e.name),
            SKind::Enum { .. } => format!("enum type '{}'", e.name),
            SKind::Array { elem_name, .. } => format!("array type ['{elem_name}']"),
            SKind::Object(o) => {
                let meta = if o.branches.is_some() {
                    "union"
                } else {
                    "struct"
                };
                format!("{meta} type '{}'", e.name)
            }
            SKind::Alternate(_) => format!("alternate type '{}'", e.name),
            SKind::Command(_) => format!("command '{}'", e.name),
            SKind::Event(_) => format!("event '{}'", e.name),
            SKind::Include { .. } => String::new(),
        }
    }

    fn def_definition(&mut self, mut ent: SEnt) -> R<u32> {
        ent.module = ent.module.or(self.cur_module);
        if let Some(&other) = self.by_name.get(&ent.name) {
            let o = &self.ents[other as usize];
            let msg = match o.info {
                Some(oi) => format!(
                    "'{}' is already defined\n{}: previous definition",
                    ent.name,
                    self.sources.describe(oi)
                ),
                None => format!("{} is already defined", self.describe_ent(other)),
            };
            return Err(self.err(ent.info, msg));
        }
        let idx = self.ents.len() as u32;
        self.by_name.insert(ent.name.clone(), idx);
        self.ents.push(ent);
        Ok(idx)
    }

    fn lookup_type(&self, name: &str) -> Option<u32> {
        self.by_name
            .get(name)
            .copied()
            .filter(|&i| is_type(&self.ents[i as usize].kind))
    }

    fn simple_ent(name: String, info: Option<Info>, kind: SKind) -> SEnt {
        SEnt {
            name,
            info,
            doc: None,
            ifcond: None,
            features: Vec::new(),
            kind,
            checked: false,
            module: None,
            since: None,
            manual: None,
        }
    }

    fn make_array_type(&mut self, elem: &str, info: Option<Info>) -> R<String> {
        let name = format!("{elem}List");
        if self.lookup_type(&name).is_none() {
            let kind = SKind::Array {
                elem_name: elem.to_owned(),
                elem: None,
            };
            self.def_definition(Self::simple_ent(name.clone(), info, kind))?;
        }
        Ok(name)
    }

    fn def_predefineds(&mut self) -> R<()> {
        for (b, name, json) in Builtin::ALL {
            self.def_definition(Self::simple_ent(
                name.to_owned(),
                None,
                SKind::Builtin(b, json),
            ))?;
            self.make_array_type(name, None)?;
        }
        let empty = SObject {
            base_name: None,
            base: None,
            local: Vec::new(),
            members: Vec::new(),
            branches: None,
            complete: false,
        };
        self.def_definition(Self::simple_ent(
            "q_empty".into(),
            None,
            SKind::Object(empty),
        ))?;
        let values = [
            "none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool",
        ]
        .iter()
        .map(|n| SEnumValue {
            name: Rc::from(*n),
            info: None,
            ifcond: None,
            defined_in: Rc::from("QType"),
            features: Vec::new(),
        })
        .collect();
        let kind = SKind::Enum {
            values,
            prefix: None,
        };
        self.def_definition(Self::simple_ent("QType".into(), None, kind))?;
        Ok(())
    }

    fn make_features(
        &mut self,
        features: Vec<FeatDef>,
        info: Info,
        defined_in: &str,
    ) -> Vec<SFeature> {
        features
            .into_iter()
            .map(|f| {
                if !self.feature_names.contains(&f.name) {
                    self.feature_names.insert(f.name.clone());
                    self.features.push(Some(info));
                }
                SFeature {
                    name: f.name,
                    info: Some(info),
                    ifcond: f.ifcond,
                    defined_in: defined_in.to_owned(),
                }
            })
            .collect()
    }

    fn type_ref(&mut self, ty: TypeRef, info: Info) -> R<String> {
        match ty {
            TypeRef::Name(n) => Ok(n),
            TypeRef::Array(e) => self.make_array_type(&e, Some(info)),
        }
    }

    fn make_members(
        &mut self,
        data: Vec<MemberDef>,
        info: Info,
        defined_in: &str,
    ) -> R<Vec<SMember>> {
        let defined_in: Rc<str> = Rc::from(defined_in);
        let mut out = Vec::with_capacity(data.len());
        for m in data {
            let (name, optional) = match m.name.strip_prefix('*') {
                Some(n) => (n.to_owned(), true),
                None => (m.name, false),
            };
            let ty_name = self.type_ref(m.ty, info)?;
            let features = self.make_features(m.features, info, &name);
            out.push(SMember {
                name: Rc::from(name),
                info: Some(info),
                ifcond: m.ifcond,
                defined_in: Rc::clone(&defined_in),
                role: Role::Member,
                ty_name,
                ty: None,
                optional,
                features,
            });
        }
        Ok(out)
    }

    fn make_variants(
        &mut self,
        data: Vec<BranchDef>,
        info: Info,
        defined_in: &str,
    ) -> R<Vec<SMember>> {
        let defined_in: Rc<str> = Rc::from(defined_in);
        let mut out = Vec::with_capacity(data.len());
        for v in data {
            let ty_name = self.type_ref(v.ty, info)?;
            out.push(SMember {
                name: Rc::from(v.name),
                info: Some(info),
                ifcond: v.ifcond,
                defined_in: Rc::clone(&defined_in),
                role: Role::Branch,
                ty_name,
                ty: None,
                optional: false,
                features: Vec::new(),
            });
        }
        Ok(out)
    }

    /// `_make_implicit_object_type`: `q_obj_NAME-ROLE`, or `None` without members.
    fn make_implicit_object(
        &mut self,
        name: &str,
        info: Info,
        ifcond: &Option<IfCond>,
        role: &str,
        data: Vec<MemberDef>,
    ) -> R<Option<String>> {
        let oname = format!("q_obj_{name}-{role}");
        let members = self.make_members(data, info, &oname)?;
        if members.is_empty() {
            return Ok(None);
        }
        if !self.by_name.contains_key(&oname) {
            let obj = SObject {
                base_name: None,
                base: None,
                local: members,
                members: Vec::new(),
                branches: None,
                complete: false,
            };
            let mut ent = Self::simple_ent(oname.clone(), Some(info), SKind::Object(obj));
            ent.ifcond = ifcond.clone();
            self.def_definition(ent)?;
        }
        Ok(Some(oname))
    }

    fn data(
        &mut self,
        name: &str,
        info: Info,
        ifcond: &Option<IfCond>,
        data: Option<Data>,
    ) -> R<Option<String>> {
        match data {
            None => Ok(None),
            Some(Data::Name(n)) => Ok(Some(n)),
            Some(Data::Members(m)) => self.make_implicit_object(name, info, ifcond, "arg", m),
        }
    }

    fn def_expr(&mut self, d: Def) -> R<()> {
        let Def {
            name,
            info,
            doc,
            marks,
            ifcond,
            features,
            kind,
        } = d;
        let features = self.make_features(features, info, &name);
        let kind = match kind {
            DefKind::Enum { values, prefix } => {
                let values = values
                    .into_iter()
                    .map(|v| {
                        let features = self.make_features(v.features, info, &v.name);
                        SEnumValue {
                            name: Rc::from(v.name),
                            info: Some(info),
                            ifcond: v.ifcond,
                            defined_in: Rc::from(name.as_str()),
                            features,
                        }
                    })
                    .collect();
                SKind::Enum { values, prefix }
            }
            DefKind::Struct { base, members } => {
                let local = self.make_members(members, info, &name)?;
                SKind::Object(SObject {
                    base_name: base,
                    base: None,
                    local,
                    members: Vec::new(),
                    branches: None,
                    complete: false,
                })
            }
            DefKind::Union {
                base,
                discriminator,
                branches,
            } => {
                let base = match base {
                    Data::Name(n) => Some(n),
                    Data::Members(m) => {
                        self.make_implicit_object(&name, info, &ifcond, "base", m)?
                    }
                };
                let variants = self.make_variants(branches, info, &name)?;
                SKind::Object(SObject {
                    base_name: base,
                    base: None,
                    local: Vec::new(),
                    members: Vec::new(),
                    branches: Some(SBranches {
                        info,
                        tag_name: discriminator,
                        variants,
                    }),
                    complete: false,
                })
            }
            DefKind::Alternate { alternatives } => {
                let variants = self.make_variants(alternatives, info, &name)?;
                let tag = SMember {
                    name: "type".into(),
                    info: Some(info),
                    ifcond: None,
                    defined_in: Rc::from(name.as_str()),
                    role: Role::Member,
                    ty_name: "QType".into(),
                    ty: None,
                    optional: false,
                    features: Vec::new(),
                };
                SKind::Alternate(SAlternate { tag, variants })
            }
            DefKind::Command {
                data,
                returns,
                gen,
                success_response,
                boxed,
                allow_oob,
                allow_preconfig,
                coroutine,
            } => {
                let arg_name = self.data(&name, info, &ifcond, data)?;
                let ret_name = match returns {
                    None => None,
                    Some(r) => Some(self.type_ref(r, info)?),
                };
                SKind::Command(SCommand {
                    arg_name,
                    arg: None,
                    ret_name,
                    ret: None,
                    gen,
                    success_response,
                    boxed,
                    allow_oob,
                    allow_preconfig,
                    coroutine,
                })
            }
            DefKind::Event { data, boxed } => {
                let arg_name = self.data(&name, info, &ifcond, data)?;
                SKind::Event(SEvent {
                    arg_name,
                    arg: None,
                    boxed,
                })
            }
        };
        self.def_definition(SEnt {
            doc,
            ifcond,
            features,
            since: marks.as_ref().and_then(|m| m.since.clone()),
            manual: marks.and_then(|m| m.module).and_then(|m| m.manual),
            ..Self::simple_ent(name, Some(info), kind)
        })?;
        Ok(())
    }

    // ---- checks --------------------------------------------------------------------

    /// `QAPISchemaMember.describe(info)`.
    fn describe_member(
        &self,
        role: Role,
        name: &str,
        defined_in: &str,
        info: Option<Info>,
    ) -> String {
        let mut role = role.as_str().to_owned();
        let mut meta = "type";
        let mut defined_in = defined_in;
        if let Some(rest) = defined_in.strip_prefix("q_obj_") {
            defined_in = rest;
            if let Some(r) = rest.strip_suffix("-arg") {
                role = "parameter".into();
                meta = "command";
                defined_in = r;
            } else if let Some(r) = rest.strip_suffix("-base") {
                role = format!("base {role}");
                defined_in = r;
            }
        }
        let defn_name = info.and_then(|i| self.sources.defn_name(i));
        if Some(defined_in) != defn_name {
            format!("{role} '{name}' of {meta} '{defined_in}'")
        } else {
            format!("{role} '{name}'")
        }
    }

    fn check_clash(&self, info: Option<Info>, seen: &mut SeenMap, s: Seen) -> R<()> {
        let cname: Rc<str> = if c_name_is_identity(&s.name) {
            Rc::clone(&s.name)
        } else {
            Rc::from(c_name(&s.name, true))
        };
        if let Some(old) = seen.get(&cname) {
            return Err(self.err(
                info,
                format!(
                    "{} collides with {}",
                    self.describe_member(s.role, &s.name, &s.defined_in, info),
                    self.describe_member(old.role, &old.name, &old.defined_in, info)
                ),
            ));
        }
        seen.insert(cname, s);
        Ok(())
    }

    fn check_features_clash(&self, info: Option<Info>, features: &[SFeature]) -> R<()> {
        let mut seen = SeenMap::default();
        for f in features {
            let s = Seen {
                role: Role::Feature,
                name: Rc::from(f.name.as_str()),
                defined_in: Rc::from(f.defined_in.as_str()),
                ty: None,
                optional: false,
                conditional: false,
            };
            self.check_clash(info, &mut seen, s)?;
        }
        Ok(())
    }

    fn resolve_type(&self, name: &str, info: Option<Info>, what: &str) -> R<u32> {
        self.lookup_type(name)
            .ok_or_else(|| self.err(info, format!("{what} uses unknown type '{name}'")))
    }

    /// `QAPISchemaDefinition.check` (+ `QAPISchemaType.check` for types).
    fn check_definition(&mut self, idx: u32) -> R<()> {
        let e = &self.ents[idx as usize];
        self.check_features_clash(e.info, &e.features)?;
        if is_type(&e.kind) {
            if let Some(f) = e
                .features
                .iter()
                .find(|f| f.name == "deprecated" || f.name == "unstable")
            {
                return Err(self.err(
                    e.info,
                    format!("feature '{}' is not supported for types", f.name),
                ));
            }
        }
        self.ents[idx as usize].checked = true;
        Ok(())
    }

    /// `QAPISchemaObjectTypeMember.check`: resolve the type, check feature clashes.
    fn check_member(&self, m: &mut SMember) -> R<()> {
        if m.ty.is_none() {
            match self.lookup_type(&m.ty_name) {
                Some(t) => m.ty = Some(t),
                None => {
                    let what = self.describe_member(m.role, &m.name, &m.defined_in, m.info);
                    return Err(self
                        .resolve_type(&m.ty_name, m.info, &what)
                        .err()
                        .unwrap_or_else(|| {
                            self.err(m.info, format!("{what} uses unknown type '{}'", m.ty_name))
                        }));
                }
            }
        }
        self.check_features_clash(m.info, &m.features)
    }

    fn object(&self, idx: u32) -> Option<&SObject> {
        match &self.ents[idx as usize].kind {
            SKind::Object(o) => Some(o),
            _ => None,
        }
    }

    fn object_mut(&mut self, idx: u32) -> &mut SObject {
        match &mut self.ents[idx as usize].kind {
            SKind::Object(o) => o,
            _ => unreachable!("object_mut on a non-object"),
        }
    }

    /// `QAPISchemaObjectType.check`.
    fn check_object(&mut self, idx: u32, depth: usize) -> R<()> {
        let (complete, checked, info) = {
            let e = &self.ents[idx as usize];
            let Some(o) = self.object(idx) else {
                return Ok(());
            };
            (o.complete, e.checked, e.info)
        };
        if complete {
            return Ok(());
        }
        if checked {
            let name = &self.ents[idx as usize].name;
            return Err(self.err(info, format!("object {name} contains itself")));
        }
        if depth > MAX_CHECK_DEPTH {
            return Err(self.err(info, "types nest too deeply"));
        }
        self.check_definition(idx)?;
        let mut seen = SeenMap::default();
        let base_name = self.object(idx).and_then(|o| o.base_name.clone());
        let mut members = Vec::new();
        if let Some(base_name) = base_name {
            let base = self.resolve_type(&base_name, info, "'base'")?;
            if self.object(base).is_none_or(|b| b.branches.is_some()) {
                return Err(self.err(
                    info,
                    format!(
                        "'base' requires a struct type, {} isn't",
                        self.describe_ent(base)
                    ),
                ));
            }
            self.object_mut(idx).base = Some(base);
            self.check_object(base, depth + 1)?;
            self.object_clash(base, info, &mut seen, depth)?;
            members.extend(
                self.object(base)
                    .map_or(&[][..], |b| &b.members)
                    .iter()
                    .cloned(),
            );
        }
        let nlocal = self.object(idx).map_or(0, |o| o.local.len());
        for j in 0..nlocal {
            let mut m = self.object_mut(idx).local[j].clone();
            self.check_member(&mut m)?;
            self.check_clash(info, &mut seen, Seen::of(&m))?;
            members.push(m.clone());
            self.object_mut(idx).local[j] = m;
        }
        if self.object(idx).is_some_and(|o| o.branches.is_some()) {
            self.check_branches(idx, &seen, depth)?;
            let variants: Vec<Option<u32>> = self
                .object(idx)
                .and_then(|o| o.branches.as_ref())
                .map(|b| b.variants.iter().map(|v| v.ty).collect())
                .unwrap_or_default();
            for ty in variants.into_iter().flatten() {
                let mut s = seen.clone();
                self.object_clash(ty, info, &mut s, depth)?;
            }
        }
        let o = self.object_mut(idx);
        o.members = members;
        o.complete = true;
        Ok(())
    }

    /// `QAPISchemaObjectType.check_clash`.
    fn object_clash(
        &self,
        idx: u32,
        info: Option<Info>,
        seen: &mut SeenMap,
        depth: usize,
    ) -> R<()> {
        if depth > MAX_CHECK_DEPTH {
            return Err(self.err(info, "types nest too deeply"));
        }
        let Some(o) = self.object(idx) else {
            return Ok(());
        };
        for m in &o.members {
            self.check_clash(info, seen, Seen::of(m))?;
        }
        if let Some(b) = &o.branches {
            for v in &b.variants {
                if let Some(ty) = v.ty {
                    let mut s = seen.clone();
                    self.object_clash(ty, info, &mut s, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    /// `QAPISchemaBranches.check`.
    fn check_branches(&mut self, idx: u32, seen: &SeenMap, depth: usize) -> R<()> {
        let Some(br) = self.object(idx).and_then(|o| o.branches.clone()) else {
            return Ok(());
        };
        let binfo = Some(br.info);
        let tag = seen.get(c_name(&br.tag_name, true).as_str());
        let tag = match tag {
            Some(t) if *t.name == *br.tag_name => t.clone(),
            _ => {
                return Err(self.err(
                    binfo,
                    format!("discriminator '{}' is not a member of 'base'", br.tag_name),
                ))
            }
        };
        let base = if tag.defined_in.starts_with("q_") {
            "'base'".to_owned()
        } else {
            format!("base type '{}'", tag.defined_in)
        };
        let tag_ty = tag.ty.unwrap_or(u32::MAX);
        let tag_values: Vec<(Rc<str>, Option<IfCond>)> =
            match self.ents.get(tag_ty as usize).map(|e| &e.kind) {
                Some(SKind::Enum { values, .. }) => values
                    .iter()
                    .map(|v| (v.name.clone(), v.ifcond.clone()))
                    .collect(),
                _ => {
                    return Err(self.err(
                        binfo,
                        format!(
                            "discriminator member '{}' of {base} must be of enum type",
                            br.tag_name
                        ),
                    ))
                }
            };
        if tag.optional {
            return Err(self.err(
                binfo,
                format!(
                    "discriminator member '{}' of {base} must not be optional",
                    br.tag_name
                ),
            ));
        }
        if tag.conditional {
            return Err(self.err(
                binfo,
                format!(
                    "discriminator member '{}' of {base} must not be conditional",
                    br.tag_name
                ),
            ));
        }
        let mut variants = br.variants;
        let cases: FxHashSet<Rc<str>> = variants.iter().map(|v| v.name.clone()).collect();
        for (vname, vif) in &tag_values {
            if !cases.contains(vname) {
                variants.push(SMember {
                    name: vname.clone(),
                    info: binfo,
                    ifcond: vif.clone(),
                    defined_in: tag.defined_in.clone(),
                    role: Role::Branch,
                    ty_name: "q_empty".into(),
                    ty: None,
                    optional: false,
                    features: Vec::new(),
                });
            }
        }
        if variants.is_empty() {
            return Err(self.err(binfo, "union has no branches"));
        }
        for v in &mut variants {
            self.check_member(v)?;
            let v = &*v;
            if !tag_values.iter().any(|(n, _)| *n == v.name) {
                return Err(self.err(
                    binfo,
                    format!(
                        "branch '{}' is not a value of {}",
                        v.name,
                        self.describe_ent(tag_ty)
                    ),
                ));
            }
            let ty = v.ty.unwrap_or(u32::MAX);
            if self.object(ty).is_none() {
                return Err(self.err(
                    binfo,
                    format!(
                        "{} cannot use {}",
                        self.describe_member(v.role, &v.name, &v.defined_in, binfo),
                        self.describe_ent(ty)
                    ),
                ));
            }
            // Nothing reads this union's branches before its check completes (a
            // recursive check of it fails first), so they are stored once, below.
            self.check_object(ty, depth + 1)?;
        }
        if let Some(b) = self.object_mut(idx).branches.as_mut() {
            b.variants = variants;
        }
        Ok(())
    }

    fn check_alternate(&mut self, idx: u32) -> R<()> {
        self.check_definition(idx)?;
        let info = self.ents[idx as usize].info;
        let SKind::Alternate(mut alt) = self.ents[idx as usize].kind.clone() else {
            return Ok(());
        };
        self.check_member(&mut alt.tag)?;
        for v in &mut alt.variants {
            self.check_member(v)?;
        }
        let mut seen = SeenMap::default();
        let mut types_seen: HashMap<&'static str, String> = HashMap::new();
        for v in &alt.variants {
            self.check_clash(info, &mut seen, Seen::of(v))?;
            let ty = v.ty.unwrap_or(u32::MAX);
            let ent = &self.ents[ty as usize];
            let json = match &ent.kind {
                SKind::Builtin(_, j) => *j,
                SKind::Enum { .. } => "string",
                SKind::Array { .. } => "array",
                SKind::Object(_) => "object",
                _ => "value",
            };
            let qtype = match json {
                "null" => "QTYPE_QNULL",
                "string" => "QTYPE_QSTRING",
                "number" | "int" => "QTYPE_QNUM",
                "boolean" => "QTYPE_QBOOL",
                "array" => "QTYPE_QLIST",
                "object" => "QTYPE_QDICT",
                _ => {
                    return Err(self.err(
                        info,
                        format!(
                            "{} cannot use {}",
                            self.describe_member(v.role, &v.name, &v.defined_in, info),
                            self.describe_ent(ty)
                        ),
                    ))
                }
            };
            let mut conflicting = vec![qtype];
            if qtype == "QTYPE_QSTRING" {
                if let SKind::Enum { values, .. } = &ent.kind {
                    for m in values {
                        if &*m.name == "on" || &*m.name == "off" {
                            conflicting.push("QTYPE_QBOOL");
                        }
                        if m.name.starts_with(|c: char| "-+0123456789.".contains(c)) {
                            conflicting.push("QTYPE_QNUM");
                        }
                    }
                } else {
                    conflicting.push("QTYPE_QNUM");
                    conflicting.push("QTYPE_QBOOL");
                }
            }
            // Python iterates a set; which conflict is reported first only matters
            // when two apply at once, and then both name the same earlier branch
            // only if they were added by it: report in a fixed order.
            conflicting.sort_unstable();
            conflicting.dedup();
            for qt in conflicting {
                if let Some(other) = types_seen.get(qt) {
                    return Err(self.err(
                        info,
                        format!(
                            "{} can't be distinguished from '{}'",
                            self.describe_member(v.role, &v.name, &v.defined_in, info),
                            other
                        ),
                    ));
                }
                types_seen.insert(qt, v.name.to_string());
            }
        }
        self.ents[idx as usize].kind = SKind::Alternate(alt);
        Ok(())
    }

    fn check_command_or_event(&mut self, idx: u32) -> R<()> {
        self.check_definition(idx)?;
        let e = &self.ents[idx as usize];
        let info = e.info;
        let name = e.name.clone();
        let (what, arg_name, boxed, ret_name) = match &e.kind {
            SKind::Command(c) => ("command", c.arg_name.clone(), c.boxed, c.ret_name.clone()),
            SKind::Event(ev) => ("event", ev.arg_name.clone(), ev.boxed, None),
            _ => return Ok(()),
        };
        let mut arg = None;
        if let Some(an) = arg_name {
            let a = self.resolve_type(&an, info, &format!("{what}'s 'data'"))?;
            let Some(obj) = self.object(a) else {
                return Err(self.err(
                    info,
                    format!("{what}'s 'data' cannot take {}", self.describe_ent(a)),
                ));
            };
            if obj.branches.is_some() && !boxed {
                return Err(self.err(
                    info,
                    format!(
                        "{what}'s 'data' can take {} only with 'boxed': true",
                        self.describe_ent(a)
                    ),
                ));
            }
            arg = Some(a);
            self.check_object(a, 0)?;
            let conditional = self
                .object(a)
                .is_some_and(|o| o.members.iter().any(|m| m.ifcond.is_some()));
            if conditional && !boxed {
                return Err(self.err(
                    info,
                    format!("conditional {what} arguments require 'boxed': true"),
                ));
            }
        }
        let mut ret = None;
        if let Some(rn) = ret_name {
            let r = self.resolve_type(&rn, info, "command's 'returns'")?;
            ret = Some(r);
            if !self.pragma.command_returns_exceptions.contains(&name) {
                let mut t = r;
                if let SKind::Array { elem, .. } = &self.ents[r as usize].kind {
                    t = elem.unwrap_or(u32::MAX);
                }
                if self.object(t).is_none() {
                    return Err(self.err(
                        info,
                        format!("command's 'returns' cannot take {}", self.describe_ent(r)),
                    ));
                }
            }
        }
        match &mut self.ents[idx as usize].kind {
            SKind::Command(c) => {
                c.arg = arg;
                c.ret = ret;
            }
            SKind::Event(ev) => ev.arg = arg,
            _ => {}
        }
        Ok(())
    }

    fn check_ent(&mut self, idx: u32) -> R<()> {
        let e = &self.ents[idx as usize];
        match &e.kind {
            SKind::Include { .. } => Ok(()),
            SKind::Object(_) => self.check_object(idx, 0),
            SKind::Alternate(_) => self.check_alternate(idx),
            SKind::Command(_) | SKind::Event(_) => self.check_command_or_event(idx),
            SKind::Builtin(..) => self.check_definition(idx),
            SKind::Enum { .. } => {
                let info = e.info;
                let mut seen = SeenMap::default();
                self.check_definition(idx)?;
                let SKind::Enum { values, .. } = &self.ents[idx as usize].kind else {
                    return Ok(());
                };
                for v in values {
                    let s = Seen {
                        role: Role::Value,
                        name: v.name.clone(),
                        defined_in: v.defined_in.clone(),
                        ty: None,
                        optional: false,
                        conditional: false,
                    };
                    self.check_clash(info, &mut seen, s)?;
                }
                Ok(())
            }
            SKind::Array { elem_name, .. } => {
                let elem_name = elem_name.clone();
                let info = e.info;
                self.check_definition(idx)?;
                let what = info
                    .and_then(|i| self.sources.defn_meta(i))
                    .unwrap_or("None");
                let elem = self.resolve_type(&elem_name, info, what)?;
                if let SKind::Array { elem: slot, .. } = &mut self.ents[idx as usize].kind {
                    *slot = Some(elem);
                }
                Ok(())
            }
        }
    }

    // ---- docs ----------------------------------------------------------------------

    fn connect_features(&mut self, doc: usize, features: &[SFeature]) -> R<()> {
        for f in features {
            self.docs[doc].connect_feature(self.sources, &f.name, f.info)?;
        }
        Ok(())
    }

    fn connect_object(&mut self, idx: u32, doc: Option<usize>) -> R<()> {
        let e = &self.ents[idx as usize];
        let Some(doc) = doc.or(e.doc) else {
            return Ok(());
        };
        let (sources, pragma) = (self.sources, self.pragma);
        let exceptions = &pragma.documentation_exceptions;
        for f in &e.features {
            self.docs[doc].connect_feature(sources, &f.name, f.info)?;
        }
        let SKind::Object(o) = &e.kind else {
            return Ok(());
        };
        if let Some(base) = o.base {
            if self.ents[base as usize].name.starts_with("q_") {
                self.connect_object(base, Some(doc))?;
            }
        }
        let SKind::Object(o) = &self.ents[idx as usize].kind else {
            return Ok(());
        };
        let d = &mut self.docs[doc];
        for m in &o.local {
            d.connect_member(sources, exceptions, m.role.as_str(), &m.name, m.info)?;
            for f in &m.features {
                d.connect_feature(sources, &f.name, f.info)?;
            }
        }
        Ok(())
    }

    fn connect_doc(&mut self, idx: u32) -> R<()> {
        let e = &self.ents[idx as usize];
        match &e.kind {
            SKind::Include { .. } => Ok(()),
            SKind::Object(_) => self.connect_object(idx, None),
            SKind::Command(SCommand { arg, .. }) | SKind::Event(SEvent { arg, .. }) => {
                let (Some(doc), arg) = (e.doc, *arg) else {
                    return Ok(());
                };
                let features = std::mem::take(&mut self.ents[idx as usize].features);
                let r = self.connect_features(doc, &features);
                self.ents[idx as usize].features = features;
                r?;
                match arg {
                    Some(a) if self.ents[a as usize].name.starts_with("q_") => {
                        self.connect_object(a, Some(doc))
                    }
                    _ => Ok(()),
                }
            }
            _ => {
                let Some(doc) = e.doc else { return Ok(()) };
                let (sources, pragma) = (self.sources, self.pragma);
                let exceptions = &pragma.documentation_exceptions;
                let d = &mut self.docs[doc];
                let e = &self.ents[idx as usize];
                for f in &e.features {
                    d.connect_feature(sources, &f.name, f.info)?;
                }
                match &e.kind {
                    SKind::Enum { values, .. } => {
                        for v in values {
                            d.connect_member(
                                sources,
                                exceptions,
                                Role::Value.as_str(),
                                &v.name,
                                v.info,
                            )?;
                            for f in &v.features {
                                d.connect_feature(sources, &f.name, f.info)?;
                            }
                        }
                    }
                    SKind::Alternate(a) => {
                        for v in &a.variants {
                            d.connect_member(
                                sources,
                                exceptions,
                                v.role.as_str(),
                                &v.name,
                                v.info,
                            )?;
                        }
                    }
                    _ => {}
                }
                Ok(())
            }
        }
    }

    fn check(&mut self) -> R<()> {
        for idx in 0..self.ents.len() as u32 {
            self.check_ent(idx)?;
            if let Err(e) = self.connect_doc(idx) {
                let doc = self.ents[idx as usize].doc;
                self.tolerate(e, doc)?;
            }
        }
        for d in 0..self.docs.len() {
            if self.docs[d].dropped {
                continue;
            }
            if let Err(e) = self.docs[d].check(self.sources) {
                self.tolerate(e, Some(d))?;
            }
        }
        if self.features.len() > 64 {
            return Err(self.err(
                self.features[64],
                "Maximum of 64 schema features is permitted",
            ));
        }
        Ok(())
    }

    /// A doc error: fails the schema, or with tolerant docs drops the doc with a
    /// warning (its connections are forgotten with it).
    fn tolerate(&mut self, e: SchemaError, doc: Option<usize>) -> R<()> {
        let Some(w) = self.warnings.as_deref_mut() else {
            return Err(e);
        };
        w.push(e);
        if let Some(d) = doc.and_then(|d| self.docs.get_mut(d)) {
            d.dropped = true;
        }
        Ok(())
    }

    // ---- the model -----------------------------------------------------------------

    /// For each doc comment, the module whose section of QEMU's reference manual it
    /// lands in (QEMU 10.0's `docs/sphinx/qapidoc.py`, `transmogrify`): the docs are
    /// visited in order, and the first doc of each file not seen yet opens a
    /// `qapi:module` section named after that file (`Path(fname).stem`). A file's
    /// docs after it included a new file therefore stay in the section of the last
    /// file that opened one.
    fn manual_modules(&self) -> Vec<Option<String>> {
        let mut seen = vec![false; self.sources.files.len()];
        let mut current: Option<String> = None;
        self.docs
            .iter()
            .map(|d| {
                if let Some(s) = seen.get_mut(d.info.file as usize) {
                    if !*s {
                        *s = true;
                        current = Some(paths::stem(self.sources.fname(d.info)).to_owned());
                    }
                }
                current.clone()
            })
            .collect()
    }

    fn into_model(mut self) -> model::Schema {
        let sources = self.sources;
        // Model ids skip the include directives.
        let mut ids: Vec<EntityId> = Vec::with_capacity(self.ents.len());
        let mut next = 0u32;
        for e in &self.ents {
            ids.push(EntityId(next));
            if !matches!(e.kind, SKind::Include { .. }) {
                next += 1;
            }
        }
        let id = |i: Option<u32>| -> EntityId {
            i.and_then(|i| ids.get(i as usize).copied())
                .unwrap_or(EntityId(u32::MAX))
        };
        // Module of each entity: its file's (arrays: their element type's); and the
        // condition of arrays (their element type's). Computed before moving out.
        // A marker's module wins over the file's.
        let mut file_module: Vec<Option<usize>> = vec![None; sources.files.len()];
        let mut ent_module = Vec::with_capacity(self.ents.len());
        let mut array_ifcond: HashMap<usize, Option<IfCond>> = HashMap::new();
        for (i, e) in self.ents.iter().enumerate() {
            let (info, marked) = match &e.kind {
                SKind::Array { elem: Some(el), .. } => {
                    let el = &self.ents[*el as usize];
                    array_ifcond.insert(i, el.ifcond.clone());
                    (el.info, el.module)
                }
                _ => (e.info, e.module),
            };
            let m = match (marked, info) {
                (Some(m), _) => m,
                (None, None) => 0,
                (None, Some(info)) => match file_module[info.file as usize] {
                    Some(m) => m,
                    None => {
                        let name = self.module_name(sources.fname(info));
                        let m = self.module_index.get(&name).copied().unwrap_or(1);
                        file_module[info.file as usize] = Some(m);
                        m
                    }
                },
            };
            ent_module.push(m);
        }
        let doc_manual = self.manual_modules();
        // Model doc ids skip the dropped docs.
        let mut next_doc = 0u32;
        let doc_ids: Vec<Option<model::DocId>> = self
            .docs
            .iter()
            .map(|d| {
                (!d.dropped).then(|| {
                    next_doc += 1;
                    model::DocId(next_doc - 1)
                })
            })
            .collect();
        let mut modules: Vec<model::Module> = std::mem::take(&mut self.modules)
            .into_iter()
            .map(|name| model::Module {
                name,
                items: Vec::new(),
            })
            .collect();
        let pos = |i: Option<Info>| i.map(|i| sources.pos(i));
        let feature = |f: SFeature| model::Feature {
            name: f.name,
            ifcond: f.ifcond,
            pos: pos(f.info),
        };
        let member = |m: SMember| model::Member {
            name: m.name.to_string(),
            ty: id(m.ty),
            optional: m.optional,
            ifcond: m.ifcond,
            features: m.features.into_iter().map(feature).collect(),
            pos: pos(m.info),
            defined_in: m.defined_in.to_string(),
            default: None,
        };
        let variant = |m: SMember| model::Variant {
            name: m.name.to_string(),
            ty: id(m.ty),
            ifcond: m.ifcond,
            pos: pos(m.info),
        };
        let mut entities = Vec::with_capacity(next as usize);
        let mut by_name = HashMap::with_capacity(next as usize);
        for (i, e) in std::mem::take(&mut self.ents).into_iter().enumerate() {
            let m = ent_module[i];
            let implicit = match &e.kind {
                SKind::Builtin(..) | SKind::Array { .. } => true,
                SKind::Enum { .. } => e.name == "QType",
                SKind::Object(_) => e.name.starts_with("q_"),
                _ => e.info.is_none(),
            };
            let ifcond = match array_ifcond.remove(&i) {
                Some(c) => c,
                None => e.ifcond,
            };
            let kind = match e.kind {
                SKind::Include { module } => {
                    modules[m]
                        .items
                        .push(model::ModuleItem::Include(ModuleId(module as u32)));
                    continue;
                }
                SKind::Builtin(b, _) => model::EntityKind::Builtin(b),
                SKind::Enum { values, prefix } => model::EntityKind::Enum(model::Enum {
                    members: values
                        .into_iter()
                        .map(|v| model::EnumMember {
                            name: v.name.to_string(),
                            ifcond: v.ifcond,
                            features: v.features.into_iter().map(feature).collect(),
                            pos: pos(v.info),
                        })
                        .collect(),
                    prefix,
                }),
                SKind::Array { elem, .. } => {
                    model::EntityKind::Array(model::Array { element: id(elem) })
                }
                SKind::Object(o) => {
                    let members: Vec<model::Member> = o.members.into_iter().map(member).collect();
                    let branches = o.branches.map(|b| model::Variants {
                        tag_member: members
                            .iter()
                            .find(|m| m.name == b.tag_name)
                            .cloned()
                            .unwrap_or_else(|| model::Member {
                                name: b.tag_name.clone(),
                                ty: EntityId(u32::MAX),
                                optional: false,
                                ifcond: None,
                                features: Vec::new(),
                                pos: None,
                                defined_in: e.name.clone(),
                                default: None,
                            }),
                        variants: b.variants.into_iter().map(variant).collect(),
                    });
                    model::EntityKind::Object(model::Object {
                        base: o.base.map(|b| id(Some(b))),
                        local_members: o.local.into_iter().map(member).collect(),
                        members,
                        branches,
                    })
                }
                SKind::Alternate(a) => model::EntityKind::Alternate(model::Alternate {
                    alternatives: model::Variants {
                        tag_member: member(a.tag),
                        variants: a.variants.into_iter().map(variant).collect(),
                    },
                }),
                SKind::Command(c) => model::EntityKind::Command(model::Command {
                    arg_type: c.arg.map(|a| id(Some(a))),
                    ret_type: c.ret.map(|r| id(Some(r))),
                    gen: c.gen,
                    success_response: c.success_response,
                    boxed: c.boxed,
                    allow_oob: c.allow_oob,
                    allow_preconfig: c.allow_preconfig,
                    coroutine: c.coroutine,
                }),
                SKind::Event(ev) => model::EntityKind::Event(model::Event {
                    arg_type: ev.arg.map(|a| id(Some(a))),
                    boxed: ev.boxed,
                }),
            };
            let eid = ids[i];
            modules[m].items.push(model::ModuleItem::Entity(eid));
            by_name.insert(e.name.clone(), eid);
            let e_doc = e
                .doc
                .and_then(|d| doc_ids.get(d).copied().flatten().map(|id| (d, id)));
            let doc = e_doc.and_then(|(d, _)| self.docs.get(d).map(|doc| (d, doc)));
            let since = e
                .since
                .or_else(|| doc.and_then(|(_, doc)| doc.since().map(str::to_owned)));
            let manual_module = e
                .manual
                .or_else(|| doc.and_then(|(d, _)| doc_manual[d].clone()));
            entities.push(model::Entity {
                name: e.name,
                pos: pos(e.info),
                module: ModuleId(m as u32),
                doc: e_doc.map(|(_, id)| id),
                ifcond,
                features: e.features.into_iter().map(feature).collect(),
                implicit,
                kind,
                since,
                manual_module,
            });
        }
        let docs = std::mem::take(&mut self.docs)
            .into_iter()
            .filter(|d| !d.dropped)
            .map(|d| {
                let mut all: Vec<Option<model::DocSection>> = d
                    .all
                    .into_iter()
                    .map(|s| {
                        Some(model::DocSection {
                            kind: s.kind,
                            text: s.text,
                            pos: Some(sources.pos(s.info)),
                        })
                    })
                    .collect();
                let mut take = |i: usize| all.get_mut(i).and_then(Option::take).unwrap_or_default();
                model::Doc {
                    pos: Some(sources.pos(d.info)),
                    symbol: d.symbol,
                    body: take(0),
                    args: d.args.into_iter().map(|(n, i)| (n, take(i))).collect(),
                    features: d.features.into_iter().map(|(n, i)| (n, take(i))).collect(),
                    sections: d.sections.into_iter().map(&mut take).collect(),
                }
            })
            .collect();
        model::Schema {
            entities,
            modules,
            docs,
            pragma: self.pragma.clone(),
            origin: model::Origin::Source {
                dialect: model::Dialect::Current,
            },
            by_name,
            warnings: Vec::new(),
            availability: None,
        }
    }
}
