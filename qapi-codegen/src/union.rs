//! The union of several schemas: one model that has every command, event, type,
//! member, branch, alternative and enum value any of them has, and records which of
//! them has each ([`crate::model::Availability`]).
//!
//! This is a pass on the model, between the readers and the emitter:
//!
//! ```text
//!   schema of release A --read--> Schema --+
//!   schema of release B --read--> Schema --+--merge--> Schema (+ Availability) --> emitter
//! ```
//!
//! so bindings built from the union decode the replies and events of every listed
//! release and build the arguments any of them takes. The rules:
//!
//! * **Matching.** Entities are matched by name: QAPI sources and snapshots have real
//!   names, and `query-qmp-schema` captures take the sources' names
//!   ([`crate::introspect::recover_names`]) before they come here. Members, enum
//!   values, branches and alternatives are matched by wire name within their entity.
//! * **Order.** The newest release's entities come first, in its definition order;
//!   what only older releases have follows, oldest last. The emitter names Rust items
//!   in that order, so every item of the newest release keeps the Rust name it has in
//!   that release's bindings alone.
//! * **Required members.** A member is required when every listed schema that has its
//!   type (for a command's or event's arguments: that has the command or event)
//!   requires it; otherwise it is optional. So is a union's discriminator: optional
//!   only where the type is a struct in some release (no discriminator there), whose
//!   values then decode into the branch catch-all with every member; the members such
//!   a struct release has that a branch now carries stay the branch's.
//! * **Type changes.** Where a member (branch, alternative, reply) has different types
//!   in different releases, the merged type accepts each shape, and the availability
//!   record keeps each type with its releases (the docs say which release sent which):
//!   integers of different widths take the newest release's type when its range holds
//!   the others', else the smallest one that holds all (a capture's `int`, of unknown
//!   width, defers to any width a source gives); `str` and enums are both JSON strings
//!   and take the newest's type (an enum keeps values it does not know); `int` and
//!   `number` take `number`; `any` takes everything; values of different JSON kinds
//!   get a generated alternate with one alternative per kind. Objects and arrays of
//!   different names take the newest's (a limitation: the older one's members are
//!   not merged into it).
//! * **Arguments and replies renamed.** Where a command's arguments or reply, or an
//!   event's data, is an object type of another name in some releases (an implicit
//!   type there, a named one here), those releases' types are merged into the chosen
//!   one as its versions there, members and all.
//! * **Everything else** of an item (docs, `Since`, features, conditions, position,
//!   command flags) is the newest release's that has it.
//!
//! Releases are ordered oldest first by their labels read as versions (`7.2` before
//! `10.0`); when a label is not a version the order given is kept.

use std::collections::HashMap;

use crate::model::{
    Alternate, Array, Availability, Builtin, Doc, DocId, Entity, EntityId, EntityKind, Member,
    Module, ModuleId, ModuleItem, Object, Origin, Part, Pos, Pragma, Presence, Releases, Schema,
    Variant, Variants, Warning,
};

/// Why schemas could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum UnionError {
    /// No schema was given.
    #[error("no schema to merge")]
    Empty,
    /// More schemas than a release set holds.
    #[error("{0} schemas listed: at most {max} can be merged", max = Releases::MAX)]
    TooMany(usize),
    /// Two schemas have the same label.
    #[error("two listed schemas are both labelled '{0}': label them apart (LABEL=PATH)")]
    DuplicateLabel(String),
    /// One name is a different kind of entity in two schemas (a struct in one, an
    /// enum in another).
    #[error("{at}'{name}' is {what}: the schemas cannot be merged")]
    KindConflict {
        /// The entity's name.
        name: String,
        /// Where the newer release defines it (`file:line: `), if known.
        at: String,
        /// What it is in which release, e.g. `an enum in 10.0 but an object type in
        /// 7.2 (qapi/x.json:12)`.
        what: String,
    },
    /// A schema refers to an entity it does not have (a bug in a reader).
    #[error("schema {release}: inconsistent model: {what}")]
    Model {
        /// The release (label).
        release: String,
        /// What is wrong.
        what: String,
    },
}

/// Merges the listed schemas, each with its label (the release it is of, e.g. `7.2`),
/// into one model whose [`Schema::availability`] says which of them has each item.
/// See the module docs for the rules.
///
/// With one schema, the result is that schema with an availability record listing
/// it alone.
///
/// # Errors
/// No schema, more than [`Releases::MAX`], two with the same label, one name of two
/// different kinds, or an inconsistent input model.
pub fn merge(listed: &[(String, Schema)]) -> Result<Schema, UnionError> {
    if listed.is_empty() {
        return Err(UnionError::Empty);
    }
    if listed.len() > Releases::MAX {
        return Err(UnionError::TooMany(listed.len()));
    }
    for (i, (a, _)) in listed.iter().enumerate() {
        if listed[..i].iter().any(|(b, _)| b == a) {
            return Err(UnionError::DuplicateLabel(a.clone()));
        }
    }
    // Oldest first: bit i of a release set is inputs[i].
    let mut inputs: Vec<(&str, &Schema)> = listed.iter().map(|(l, s)| (l.as_str(), s)).collect();
    let keys: Option<Vec<Vec<u32>>> = inputs.iter().map(|(l, _)| version_key(l)).collect();
    if let Some(keys) = keys {
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        inputs = order.into_iter().map(|i| inputs[i]).collect();
    }
    let mut m = Merger::new(&inputs)?;
    m.run()?;
    Ok(m.finish())
}

/// `"10.0"` → `[10, 0]`; the leading version of a label such as `"7.2.22"` or
/// `"9.1 (Debian)"`; `None` when it does not start with one.
pub fn version_key(label: &str) -> Option<Vec<u32>> {
    let head: String = label
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let head = head.trim_end_matches('.');
    if head.is_empty() {
        return None;
    }
    head.split('.').map(|n| n.parse().ok()).collect()
}

struct Merger<'a> {
    /// The listed schemas, oldest first.
    inputs: Vec<(&'a str, &'a Schema)>,
    /// Input indices, newest first (the order representatives are taken in).
    newest_first: Vec<usize>,
    entities: Vec<Entity>,
    by_name: HashMap<String, EntityId>,
    /// Per merged entity, its entity in each input.
    sources: Vec<Vec<Option<EntityId>>>,
    /// Releases that, for a command's or event's arguments or reply, count as having
    /// the type with no members (their command has none, or another type).
    extra_context: HashMap<EntityId, Releases>,
    /// For a command's or event's arguments or reply whose object type has another
    /// name in some releases (QEMU 7.2's `nbd-server-start` takes an implicit type,
    /// 10.0's `NbdServerOptionsLegacy`): those releases' types, merged into it as its
    /// versions there.
    aliases: HashMap<EntityId, Vec<(usize, EntityId)>>,
    docs: Vec<Doc>,
    doc_offsets: Vec<u32>,
    modules: Vec<Module>,
    module_maps: Vec<Vec<ModuleId>>,
    availability: Availability,
    /// Releases read from `query-qmp-schema` output (integers of unknown width).
    captures: Releases,
}

impl<'a> Merger<'a> {
    fn new(inputs: &[(&'a str, &'a Schema)]) -> Result<Self, UnionError> {
        let n = inputs.len();
        let newest_first: Vec<usize> = (0..n).rev().collect();
        let mut m = Merger {
            inputs: inputs.to_vec(),
            newest_first,
            entities: Vec::new(),
            by_name: HashMap::new(),
            sources: Vec::new(),
            extra_context: HashMap::new(),
            aliases: HashMap::new(),
            docs: Vec::new(),
            doc_offsets: vec![0; n],
            modules: Vec::new(),
            module_maps: vec![Vec::new(); n],
            availability: Availability::new(inputs.iter().map(|(l, _)| l.to_string()).collect()),
            captures: Releases::NONE,
        };
        for i in m.newest_first.clone() {
            let s = m.inputs[i].1;
            if matches!(s.origin, Origin::Introspection { .. }) {
                m.captures |= Releases::one(i);
            }
            m.doc_offsets[i] = m.docs.len() as u32;
            m.docs.extend(s.docs.iter().cloned());
            for module in &s.modules {
                let id = match m.modules.iter().position(|x| x.name == module.name) {
                    Some(p) => ModuleId(p as u32),
                    None => {
                        m.modules.push(Module {
                            name: module.name.clone(),
                            items: Vec::new(),
                        });
                        ModuleId(m.modules.len() as u32 - 1)
                    }
                };
                m.module_maps[i].push(id);
            }
        }
        Ok(m)
    }

    fn release(&self, i: usize) -> String {
        self.inputs[i].0.to_owned()
    }

    fn model_error(&self, i: usize, what: String) -> UnionError {
        UnionError::Model {
            release: self.release(i),
            what,
        }
    }

    /// Entity `id` of input `i`, or an error for a dangling id.
    fn input_entity(&self, i: usize, id: EntityId) -> Result<&'a Entity, UnionError> {
        let s = self.inputs[i].1;
        s.entities
            .get(id.0 as usize)
            .ok_or_else(|| self.model_error(i, format!("dangling entity id {}", id.0)))
    }

    /// The merged entity for entity `id` of input `i`.
    fn map(&self, i: usize, id: EntityId) -> Result<EntityId, UnionError> {
        let e = self.input_entity(i, id)?;
        self.by_name
            .get(&e.name)
            .copied()
            .ok_or_else(|| self.model_error(i, format!("'{}' was not merged", e.name)))
    }

    fn run(&mut self) -> Result<(), UnionError> {
        // Entities by name, newest release's order first.
        for i in self.newest_first.clone() {
            let s = self.inputs[i].1;
            for (k, e) in s.entities.iter().enumerate() {
                let here = EntityId(k as u32);
                match self.by_name.get(&e.name).copied() {
                    Some(id) => {
                        let rep = &self.entities[id.0 as usize];
                        if kind_name(&rep.kind) != kind_name(&e.kind) {
                            let newer = self.sources[id.0 as usize]
                                .iter()
                                .rposition(Option::is_some)
                                .unwrap_or(i);
                            return Err(UnionError::KindConflict {
                                name: e.name.clone(),
                                at: rep
                                    .pos
                                    .as_ref()
                                    .map(|p| format!("{}:{}: ", p.file, p.line))
                                    .unwrap_or_default(),
                                what: format!(
                                    "{} in {} but {} in {}{}",
                                    kind_name(&rep.kind),
                                    self.release(newer),
                                    kind_name(&e.kind),
                                    self.release(i),
                                    e.pos
                                        .as_ref()
                                        .map(|p| format!(" ({}:{})", p.file, p.line))
                                        .unwrap_or_default()
                                ),
                            });
                        }
                        self.sources[id.0 as usize][i] = Some(here);
                    }
                    None => {
                        let id = EntityId(self.entities.len() as u32);
                        let mut copy = e.clone();
                        copy.module = self.module_maps[i]
                            .get(e.module.0 as usize)
                            .copied()
                            .unwrap_or(ModuleId(0));
                        copy.doc = e.doc.map(|d| DocId(d.0 + self.doc_offsets[i]));
                        self.entities.push(copy);
                        self.by_name.insert(e.name.clone(), id);
                        let mut src = vec![None; self.inputs.len()];
                        src[i] = Some(here);
                        self.sources.push(src);
                    }
                }
            }
        }
        // The newest documented one's docs.
        for id in 0..self.entities.len() {
            if self.entities[id].doc.is_none() {
                for i in self.newest_first.clone() {
                    if let Some(k) = self.sources[id][i] {
                        if let Some(d) = self.input_entity(i, k)?.doc {
                            self.entities[id].doc = Some(DocId(d.0 + self.doc_offsets[i]));
                            break;
                        }
                    }
                }
            }
            let whole = self.present(EntityId(id as u32));
            self.availability.set(
                EntityId(id as u32),
                Part::Whole,
                Presence {
                    releases: whole,
                    ..Presence::default()
                },
            );
        }
        // Commands and events first: they decide which releases count as having their
        // argument and reply types.
        let count = self.entities.len();
        for id in 0..count {
            let id = EntityId(id as u32);
            match &self.entities[id.0 as usize].kind {
                EntityKind::Command(_) => self.command(id)?,
                EntityKind::Event(_) => self.event(id)?,
                _ => {}
            }
        }
        for id in 0..count {
            let id = EntityId(id as u32);
            match &self.entities[id.0 as usize].kind {
                EntityKind::Enum(_) => self.enumeration(id)?,
                EntityKind::Array(_) => self.array(id)?,
                EntityKind::Object(_) => self.object(id)?,
                EntityKind::Alternate(_) => self.alternate(id)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// The releases that have merged entity `id`.
    fn present(&self, id: EntityId) -> Releases {
        self.sources[id.0 as usize]
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .fold(Releases::NONE, |a, (i, _)| a | Releases::one(i))
    }

    /// `(input, its entity)` for each release that has merged entity `id` (or an
    /// alias of it, see [`Merger::aliases`]), newest first.
    fn versions(&self, id: EntityId) -> Vec<(usize, &'a Entity)> {
        let aliases = self.aliases.get(&id);
        self.newest_first
            .iter()
            .filter_map(|&i| {
                let k = self.sources[id.0 as usize][i].or_else(|| {
                    aliases.and_then(|a| a.iter().find(|(j, _)| *j == i).map(|(_, t)| *t))
                })?;
                self.input_entity(i, k).ok().map(|e| (i, e))
            })
            .collect()
    }

    fn command(&mut self, id: EntityId) -> Result<(), UnionError> {
        let versions = self.versions(id);
        let mut args = Vec::new();
        let mut rets = Vec::new();
        for &(i, e) in &versions {
            if let EntityKind::Command(c) = &e.kind {
                args.push((i, c.arg_type));
                rets.push((i, c.ret_type));
            }
        }
        let arg = self.slot_type(id, &args, "arguments")?;
        let ret = self.slot_type(id, &rets, "reply")?;
        if let EntityKind::Command(c) = &mut self.entities[id.0 as usize].kind {
            c.arg_type = arg;
            c.ret_type = ret;
        }
        Ok(())
    }

    fn event(&mut self, id: EntityId) -> Result<(), UnionError> {
        let versions = self.versions(id);
        let mut args = Vec::new();
        for &(i, e) in &versions {
            if let EntityKind::Event(ev) = &e.kind {
                args.push((i, ev.arg_type));
            }
        }
        let arg = self.slot_type(id, &args, "data")?;
        if let EntityKind::Event(ev) = &mut self.entities[id.0 as usize].kind {
            ev.arg_type = arg;
        }
        Ok(())
    }

    /// The merged type of a command's arguments or reply or an event's data, given the
    /// type in each release (newest first). Releases whose type is another one (or
    /// none) count as having the chosen type without members, so the members only
    /// some releases have become optional.
    fn slot_type(
        &mut self,
        owner: EntityId,
        per_release: &[(usize, Option<EntityId>)],
        what: &str,
    ) -> Result<Option<EntityId>, UnionError> {
        let mut candidates = Vec::new();
        for &(i, t) in per_release {
            if let Some(t) = t {
                candidates.push((Releases::one(i), self.map(i, t)?, i, t));
            }
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        let chosen = if candidates.iter().all(|c| c.1 == candidates[0].1) {
            candidates[0].1
        } else {
            let part = Part::Member(format!("({what})"));
            self.join(owner, part, &candidates)?
        };
        let mut others = Releases::NONE;
        let chosen_is_object =
            matches!(self.entities[chosen.0 as usize].kind, EntityKind::Object(_));
        for &(i, t) in per_release {
            let same = match t {
                Some(t) => self.map(i, t)? == chosen,
                None => false,
            };
            let alias = match t {
                Some(t) if !same && chosen_is_object => {
                    matches!(self.input_entity(i, t)?.kind, EntityKind::Object(_))
                        && self.sources[chosen.0 as usize][i].is_none()
                }
                _ => false,
            };
            if alias {
                if let Some(t) = t {
                    self.aliases.entry(chosen).or_default().push((i, t));
                }
            } else if !same {
                others |= Releases::one(i);
            }
        }
        if !others.is_empty() {
            *self.extra_context.entry(chosen).or_default() |= others;
        }
        Ok(Some(chosen))
    }

    fn enumeration(&mut self, id: EntityId) -> Result<(), UnionError> {
        let mut values: Vec<(crate::model::EnumMember, Releases)> = Vec::new();
        for (i, e) in self.versions(id) {
            if let EntityKind::Enum(en) = &e.kind {
                for v in &en.members {
                    match values.iter_mut().find(|(x, _)| x.name == v.name) {
                        Some((_, r)) => *r |= Releases::one(i),
                        None => values.push((v.clone(), Releases::one(i))),
                    }
                }
            }
        }
        for (v, r) in &values {
            self.availability.set(
                id,
                Part::Value(v.name.clone()),
                Presence {
                    releases: *r,
                    ..Presence::default()
                },
            );
        }
        if let EntityKind::Enum(en) = &mut self.entities[id.0 as usize].kind {
            en.members = values.into_iter().map(|(v, _)| v).collect();
        }
        Ok(())
    }

    fn array(&mut self, id: EntityId) -> Result<(), UnionError> {
        let Some(&(i, e)) = self.versions(id).first() else {
            return Ok(());
        };
        if let EntityKind::Array(a) = &e.kind {
            let element = self.map(i, a.element)?;
            self.entities[id.0 as usize].kind = EntityKind::Array(Array { element });
        }
        Ok(())
    }

    fn object(&mut self, id: EntityId) -> Result<(), UnionError> {
        let versions = self.versions(id);
        let aliased = self
            .aliases
            .get(&id)
            .into_iter()
            .flatten()
            .fold(Releases::NONE, |a, (i, _)| a | Releases::one(*i));
        let context =
            self.present(id) | aliased | self.extra_context.get(&id).copied().unwrap_or_default();
        let mut all = Vec::new();
        let mut local = Vec::new();
        let mut bases = Vec::new();
        let mut branches: Vec<(usize, &'a Variants)> = Vec::new();
        for &(i, e) in &versions {
            if let EntityKind::Object(o) = &e.kind {
                all.push((i, o.members.as_slice()));
                local.push((i, o.local_members.as_slice()));
                bases.push((i, o.base));
                if let Some(b) = &o.branches {
                    branches.push((i, b));
                }
            }
        }
        let mut members = self.members(id, &all, context, true)?;
        let mut local_members = self.members(id, &local, context, false)?;
        // A type that is a union in some releases and a struct in others (QEMU 10.0's
        // SevInfo, a struct in 7.2): members only the struct releases have that a
        // branch now carries stay the branch's, or the base would take them from the
        // branch when decoding. A struct release's value, which has no discriminator,
        // decodes into the branch catch-all with them (see the tag below).
        let union_releases = branches
            .iter()
            .fold(Releases::NONE, |a, (i, _)| a | Releases::one(*i));
        let mut in_branches = std::collections::HashSet::new();
        for &(i, b) in &branches {
            for v in &b.variants {
                if let Ok(Entity {
                    kind: EntityKind::Object(o),
                    ..
                }) = self.input_entity(i, v.ty)
                {
                    in_branches.extend(o.members.iter().map(|m| m.name.clone()));
                }
            }
        }
        if !in_branches.is_empty() {
            let av = &self.availability;
            let keep = |m: &Member| {
                !in_branches.contains(&m.name)
                    || av
                        .get(id, &Part::Member(m.name.clone()))
                        .map(|p| !(p.releases & union_releases).is_empty())
                        .unwrap_or(true)
            };
            members.retain(keep);
            local_members.retain(keep);
        }
        let base = match bases.first() {
            Some(&(i, Some(b))) => Some(self.map(i, b)?),
            _ => None,
        };
        let branches = match branches.first() {
            Some(&(_, first)) => {
                // Required where every release of the type has it; optional when
                // the type is a struct in some (no discriminator there).
                let tag = members
                    .iter()
                    .find(|m| m.name == first.tag_member.name)
                    .cloned();
                let Some(tag_member) = tag else {
                    return Err(self.model_error(
                        versions[0].0,
                        format!(
                            "the discriminator '{}' of '{}' is not one of its members",
                            first.tag_member.name, self.entities[id.0 as usize].name
                        ),
                    ));
                };
                let variants = self.variants(id, &branches, Part::Branch)?;
                Some(Variants {
                    tag_member,
                    variants,
                })
            }
            None => None,
        };
        self.entities[id.0 as usize].kind = EntityKind::Object(Object {
            base,
            local_members,
            members,
            branches,
        });
        Ok(())
    }

    /// The union of the members of each release (newest first): required only where
    /// every release of `context` requires it. Records availability when `record`.
    fn members(
        &mut self,
        owner: EntityId,
        per_release: &[(usize, &'a [Member])],
        context: Releases,
        record: bool,
    ) -> Result<Vec<Member>, UnionError> {
        // name → (newest version, releases, required in, types)
        let mut merged: Vec<(Member, Releases, Releases, Vec<Candidate>)> = Vec::new();
        for &(i, ms) in per_release {
            for m in ms {
                let t = self.map(i, m.ty)?;
                let bit = Releases::one(i);
                let req = if m.optional { Releases::NONE } else { bit };
                match merged.iter_mut().find(|x| x.0.name == m.name) {
                    Some(x) => {
                        x.1 |= bit;
                        x.2 |= req;
                        x.3.push((bit, t, i, m.ty));
                    }
                    None => merged.push((m.clone(), bit, req, vec![(bit, t, i, m.ty)])),
                }
            }
        }
        let mut out = Vec::with_capacity(merged.len());
        for (mut m, releases, required, candidates) in merged {
            m.ty = self.join(owner, Part::Member(m.name.clone()), &candidates)?;
            m.optional = !required.includes(context);
            if record {
                let types = self.type_labels(&candidates);
                self.availability.set(
                    owner,
                    Part::Member(m.name.clone()),
                    Presence {
                        releases,
                        required,
                        types,
                    },
                );
            }
            out.push(m);
        }
        Ok(out)
    }

    fn variants(
        &mut self,
        owner: EntityId,
        per_release: &[(usize, &'a Variants)],
        part: fn(String) -> Part,
    ) -> Result<Vec<Variant>, UnionError> {
        let mut merged: Vec<(Variant, Releases, Vec<Candidate>)> = Vec::new();
        for &(i, vs) in per_release {
            for v in &vs.variants {
                let t = self.map(i, v.ty)?;
                let bit = Releases::one(i);
                match merged.iter_mut().find(|x| x.0.name == v.name) {
                    Some(x) => {
                        x.1 |= bit;
                        x.2.push((bit, t, i, v.ty));
                    }
                    None => merged.push((v.clone(), bit, vec![(bit, t, i, v.ty)])),
                }
            }
        }
        let mut out = Vec::with_capacity(merged.len());
        for (mut v, releases, candidates) in merged {
            v.ty = self.join(owner, part(v.name.clone()), &candidates)?;
            let types = self.type_labels(&candidates);
            self.availability.set(
                owner,
                part(v.name.clone()),
                Presence {
                    releases,
                    types,
                    ..Presence::default()
                },
            );
            out.push(v);
        }
        Ok(out)
    }

    fn alternate(&mut self, id: EntityId) -> Result<(), UnionError> {
        let versions = self.versions(id);
        let mut alts = Vec::new();
        for &(i, e) in &versions {
            if let EntityKind::Alternate(a) = &e.kind {
                alts.push((i, &a.alternatives));
            }
        }
        let Some(&(i, first)) = alts.first() else {
            return Ok(());
        };
        let variants = self.variants(id, &alts, Part::Alternative)?;
        let mut tag_member = first.tag_member.clone();
        tag_member.ty = self.map(i, tag_member.ty)?;
        self.entities[id.0 as usize].kind = EntityKind::Alternate(Alternate {
            alternatives: Variants {
                tag_member,
                variants,
            },
        });
        Ok(())
    }

    /// Each type of `candidates` as its schema writes it, with its releases, when they
    /// are not all the same.
    fn type_labels(&self, candidates: &[Candidate]) -> Vec<(Releases, String)> {
        let mut out: Vec<(Releases, String)> = Vec::new();
        for &(bit, _, i, t) in candidates {
            let label = type_label(self.inputs[i].1, t, 0);
            match out.iter_mut().find(|(_, l)| *l == label) {
                Some((r, _)) => *r |= bit,
                None => out.push((bit, label)),
            }
        }
        if out.len() > 1 {
            // Oldest release first, as the docs read.
            out.sort_by_key(|(r, _)| r.indices().next());
            out
        } else {
            Vec::new()
        }
    }

    /// One type that accepts every candidate's values (see the module docs).
    fn join(
        &mut self,
        owner: EntityId,
        part: Part,
        candidates: &[Candidate],
    ) -> Result<EntityId, UnionError> {
        // Distinct merged types, newest first.
        let mut distinct: Vec<(Releases, EntityId)> = Vec::new();
        for &(bit, t, _, _) in candidates {
            match distinct.iter_mut().find(|(_, x)| *x == t) {
                Some((r, _)) => *r |= bit,
                None => distinct.push((bit, t)),
            }
        }
        let Some(&(_, newest)) = distinct.first() else {
            return Err(UnionError::Model {
                release: String::new(),
                what: "a member without a type".to_owned(),
            });
        };
        if distinct.len() == 1 {
            return Ok(newest);
        }
        let classes: Vec<Class> = distinct.iter().map(|&(_, t)| self.class(t)).collect();
        if classes.contains(&Class::Any) {
            return Ok(distinct[classes.iter().position(|c| *c == Class::Any).unwrap_or(0)].1);
        }
        if classes.iter().all(|c| matches!(c, Class::Int(_))) {
            let known: Vec<(EntityId, Builtin)> = distinct
                .iter()
                .zip(&classes)
                .filter_map(|(&(r, t), c)| match c {
                    // A capture's `int` says nothing of the width.
                    Class::Int(Builtin::Int) if self.captures.includes(r) => None,
                    Class::Int(b) => Some((t, *b)),
                    _ => None,
                })
                .collect();
            if known.is_empty() {
                return Ok(newest);
            }
            return Ok(self.widest(&known));
        }
        if classes
            .iter()
            .all(|c| matches!(c, Class::Int(_) | Class::Number))
        {
            return Ok(self.builtin(Builtin::Number).unwrap_or(newest));
        }
        let kind = |c: &Class| match c {
            Class::Int(_) | Class::Number => "number",
            Class::String => "string",
            Class::Bool => "boolean",
            Class::Null => "null",
            Class::Object => "object",
            Class::Array => "array",
            Class::Alternate => "alternate",
            Class::Any => "value",
        };
        let first_kind = kind(&classes[0]);
        if classes.iter().all(|c| kind(c) == first_kind) || classes.contains(&Class::Alternate) {
            // Same JSON kind: the newest's type (an enum keeps strings it does not
            // know). An alternate on either side: the newest's too (no nesting).
            return Ok(newest);
        }
        // Different JSON kinds: an alternate with one alternative per kind, the
        // newest type of each.
        let mut alternatives: Vec<Variant> = Vec::new();
        for (&(_, t), c) in distinct.iter().zip(&classes) {
            let name = kind(c);
            if alternatives.iter().any(|v| v.name == name) {
                continue;
            }
            alternatives.push(Variant {
                name: name.to_owned(),
                ty: t,
                ifcond: None,
                pos: None,
            });
        }
        let owner_name = self.entities[owner.0 as usize].name.clone();
        let what = match &part {
            Part::Member(n) | Part::Branch(n) | Part::Alternative(n) | Part::Value(n) => n.clone(),
            Part::Whole => String::new(),
        };
        let mut name = format!("{owner_name}-{what}-any-release");
        while self.by_name.contains_key(&name) {
            name.push('_');
        }
        let tag_ty = self
            .by_name
            .get("QType")
            .copied()
            .or_else(|| self.builtin(Builtin::Str))
            .unwrap_or(newest);
        let alt = Entity {
            name: name.clone(),
            pos: None,
            module: ModuleId(0),
            doc: None,
            ifcond: None,
            features: Vec::new(),
            implicit: true,
            kind: EntityKind::Alternate(Alternate {
                alternatives: Variants {
                    tag_member: Member::alternate_tag(tag_ty, &name),
                    variants: alternatives,
                },
            }),
            since: None,
            manual_module: None,
        };
        let id = EntityId(self.entities.len() as u32);
        self.entities.push(alt);
        self.by_name.insert(name, id);
        self.sources.push(vec![None; self.inputs.len()]);
        Ok(id)
    }

    fn builtin(&self, b: Builtin) -> Option<EntityId> {
        self.by_name.get(b.name()).copied()
    }

    /// The first of `ints` (newest first) whose range holds all the others', else the
    /// smallest builtin that holds them all, else the first.
    fn widest(&self, ints: &[(EntityId, Builtin)]) -> EntityId {
        let lo = ints.iter().map(|(_, b)| range(*b).0).min().unwrap_or(0);
        let hi = ints.iter().map(|(_, b)| range(*b).1).max().unwrap_or(0);
        let holds = |b: Builtin| range(b).0 <= lo && range(b).1 >= hi;
        if let Some(&(t, _)) = ints.iter().find(|(_, b)| holds(*b)) {
            return t;
        }
        const BY_SIZE: [Builtin; 8] = [
            Builtin::Int8,
            Builtin::Uint8,
            Builtin::Int16,
            Builtin::Uint16,
            Builtin::Int32,
            Builtin::Uint32,
            Builtin::Int64,
            Builtin::Uint64,
        ];
        BY_SIZE
            .iter()
            .find(|b| holds(**b))
            .and_then(|b| self.builtin(*b))
            .unwrap_or(ints[0].0)
    }

    fn class(&self, id: EntityId) -> Class {
        match self.entities.get(id.0 as usize).map(|e| &e.kind) {
            Some(EntityKind::Builtin(b)) => match b {
                Builtin::Str => Class::String,
                Builtin::Number => Class::Number,
                Builtin::Bool => Class::Bool,
                Builtin::Null => Class::Null,
                Builtin::Any => Class::Any,
                b => Class::Int(*b),
            },
            Some(EntityKind::Enum(_)) => Class::String,
            Some(EntityKind::Array(_)) => Class::Array,
            Some(EntityKind::Alternate(_)) => Class::Alternate,
            _ => Class::Object,
        }
    }

    fn finish(mut self) -> Schema {
        for (k, e) in self.entities.iter().enumerate() {
            if let Some(m) = self.modules.get_mut(e.module.0 as usize) {
                m.items.push(ModuleItem::Entity(EntityId(k as u32)));
            }
        }
        let newest = self.inputs[self.inputs.len() - 1].1;
        let all_captures = self.captures.includes(Releases::first(self.inputs.len()));
        let origin = if all_captures {
            let mut masked = Vec::new();
            for (_, s) in &self.inputs {
                if let Origin::Introspection { masked_names } = &s.origin {
                    for pair in masked_names {
                        if !masked.contains(pair) {
                            masked.push(pair.clone());
                        }
                    }
                }
            }
            Origin::Introspection {
                masked_names: masked,
            }
        } else {
            // Sources give integer widths; a capture's `int` (unknown width) defers
            // to them.
            self.newest_first
                .iter()
                .map(|&i| &self.inputs[i].1.origin)
                .find(|o| matches!(o, Origin::Source { .. }))
                .cloned()
                .unwrap_or_else(|| newest.origin.clone())
        };
        let mut pragma = Pragma {
            doc_required: newest.pragma.doc_required,
            ..Pragma::default()
        };
        let mut warnings = Vec::new();
        for &i in &self.newest_first {
            let (label, s) = self.inputs[i];
            for (dst, src) in [
                (
                    &mut pragma.command_name_exceptions,
                    &s.pragma.command_name_exceptions,
                ),
                (
                    &mut pragma.command_returns_exceptions,
                    &s.pragma.command_returns_exceptions,
                ),
                (
                    &mut pragma.documentation_exceptions,
                    &s.pragma.documentation_exceptions,
                ),
                (
                    &mut pragma.member_name_exceptions,
                    &s.pragma.member_name_exceptions,
                ),
            ] {
                for x in src {
                    if !dst.contains(x) {
                        dst.push(x.clone());
                    }
                }
            }
            warnings.extend(s.warnings.iter().map(|w| Warning {
                pos: w.pos.clone(),
                message: format!("({label}) {}", w.message),
            }));
        }
        Schema {
            entities: self.entities,
            modules: self.modules,
            docs: self.docs,
            pragma,
            origin,
            by_name: self.by_name,
            warnings,
            availability: Some(self.availability),
        }
    }
}

/// A type in one release: (that release, the merged type, the input, the input's
/// type).
type Candidate = (Releases, EntityId, usize, EntityId);

/// What kind of JSON value a type's values are, for [`Merger::join`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Int(Builtin),
    Number,
    String,
    Bool,
    Null,
    Object,
    Array,
    Alternate,
    Any,
}

/// The range of an integer builtin (`int` is 64-bit signed, as QEMU's sources mean).
fn range(b: Builtin) -> (i128, i128) {
    match b {
        Builtin::Int8 => (i8::MIN.into(), i8::MAX.into()),
        Builtin::Int16 => (i16::MIN.into(), i16::MAX.into()),
        Builtin::Int32 => (i32::MIN.into(), i32::MAX.into()),
        Builtin::Uint8 => (0, u8::MAX.into()),
        Builtin::Uint16 => (0, u16::MAX.into()),
        Builtin::Uint32 => (0, u32::MAX.into()),
        Builtin::Uint64 | Builtin::Size => (0, u64::MAX.into()),
        _ => (i64::MIN.into(), i64::MAX.into()),
    }
}

fn kind_name(k: &EntityKind) -> &'static str {
    match k {
        EntityKind::Builtin(_) => "a builtin type",
        EntityKind::Enum(_) => "an enum",
        EntityKind::Array(_) => "an array type",
        EntityKind::Object(_) => "an object type",
        EntityKind::Alternate(_) => "an alternate",
        EntityKind::Command(_) => "a command",
        EntityKind::Event(_) => "an event",
    }
}

/// A type as a schema writes it: `int`, `[BlockInfo]`, a type's name (`object` for an
/// implicit object type, whose name means nothing to a reader).
fn type_label(s: &Schema, id: EntityId, depth: u32) -> String {
    let Some(e) = s.entities.get(id.0 as usize) else {
        return "?".to_owned();
    };
    match &e.kind {
        EntityKind::Array(a) if depth < 16 => format!("[{}]", type_label(s, a.element, depth + 1)),
        EntityKind::Object(_) if e.implicit => "object".to_owned(),
        _ => e.name.clone(),
    }
}

/// The label of a schema file when none is given: the release a snapshot's title names
/// (`# QEMU 7.2 system emulator schema`), else the version at the end of the file's
/// name (`qemu-system-x86_64-7.2.json`), else the newest `Since:` of the schema's
/// definitions (QAPI sources: the release they are of, unless it added nothing), else
/// the file's name.
pub fn release_label(path: &std::path::Path, schema: &Schema) -> String {
    if let Some(v) = title_release(path) {
        return v;
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(v) = stem
        .rsplit(['-', '_'])
        .next()
        .filter(|v| version_key(v).is_some() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
    {
        return v.to_owned();
    }
    let newest = schema
        .entities
        .iter()
        .filter_map(|e| e.since.as_deref())
        .filter_map(|s| {
            let v: String = s
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let v = v.trim_end_matches('.').to_owned();
            version_key(&v).map(|k| (k, v))
        })
        .max();
    if let Some((_, v)) = newest {
        return v;
    }
    path.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The release in a snapshot's title line (`# QEMU 7.2 …`, among its first lines).
fn title_release(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut head = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_string(&mut head)
        .ok()?;
    if !head.contains("written by `qapi-codegen snapshot`") {
        return None;
    }
    head.lines().take(8).find_map(|l| {
        let rest = l.strip_prefix("# QEMU ")?;
        let v = rest.split_whitespace().next()?;
        version_key(v).map(|_| v.to_owned())
    })
}

/// Where an entity's position is, for messages (`file:line`).
pub fn pos_str(pos: Option<&Pos>) -> String {
    pos.map(|p| format!("{}:{}", p.file, p.line))
        .unwrap_or_default()
}
