//! What changed between two schemas, as a QMP client sees it on the wire.
//!
//! [`diff`] compares two checked models (QAPI sources, definitions-only snapshots or
//! `query-qmp-schema` captures, in any combination) and returns a [`Diff`]: a list of
//! [`Change`]s, each at the [`Path`] where it happens (`command query-block reply[]
//! member inserted member active`), in a stable order (commands, then events, then
//! named types, each by name; within one, in definition order).
//!
//! Types are compared by structure, not by name: a capture's type names are derived
//! from where each type is used, so the walk starts at every command (arguments,
//! reply) and event (data) and pairs the types it finds at the same place, through
//! members, union branches, array elements and alternatives. Members are compared as
//! they are on the wire, with the base's members flattened in (as introspection does):
//! moving a member into a base changes nothing. Each pair of types is compared once,
//! at the first path that reaches it.
//!
//! Between two source schemas, types are also compared by name, and a change inside a
//! type both sides name the same is reported once, under that name (`type
//! BlockdevOptions member cache`), rather than at every path that reaches it. A place
//! that now refers to another type both schemas define is a type change (`type
//! CpuInfo -> CpuInfoFast`); one whose type only one schema names (renamed, or a new
//! type in its place) is compared by structure. Implicit types (`q_obj_*` argument
//! types, `FooList` arrays) are never named in a report.
//!
//! What a capture cannot say is not compared when either side is one: conditions
//! (`if`) and integer widths (`uint8` and `int` are both `int` there), and which named
//! types exist.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::json::{Map, Value};
use crate::model::{
    Alternate, Builtin, Entity, EntityId, EntityKind, Enum, Feature, IfCond, Member, Object,
    Origin, Schema, Variant,
};

/// Every change between two schemas, in a stable order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// The changes: commands first, then events, then named types, each group by name.
    pub changes: Vec<Change>,
}

/// One change, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Where it happens.
    pub path: Path,
    /// What happened there.
    pub kind: ChangeKind,
}

/// Where a change happens: a command, event or named type, then the steps from it
/// through members, branches, elements and alternatives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<Segment>);

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A command (its arguments are its members).
    Command(String),
    /// An event (its data members are its members).
    Event(String),
    /// A named struct, union or alternate (compared by name between source schemas).
    Type(String),
    /// A named enumeration (compared by name between source schemas).
    Enum(String),
    /// A member of an object.
    Member(String),
    /// A command's reply.
    Reply,
    /// The elements of an array (printed `[]`).
    Element,
    /// A union branch, by tag value.
    Branch(String),
    /// An alternative of an alternate, by the JSON type that selects it (`string`,
    /// `number`, `boolean`, `null`, `object`, `array`): captures do not keep the
    /// alternatives' names.
    Alternative(String),
    /// An enumeration value.
    Value(String),
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// The item exists in the new schema only.
    Added {
        /// For a member: whether it may be absent (`Some(true)`) or must be given.
        optional: Option<bool>,
        /// The item's condition (`if`), when it has one (often why a capture lacks it).
        condition: Option<String>,
    },
    /// The item exists in the old schema only.
    Removed {
        /// For a member: whether it was optional.
        optional: Option<bool>,
        /// The item's condition (`if`), when it had one.
        condition: Option<String>,
    },
    /// An optional member became required.
    MadeRequired,
    /// A required member became optional.
    MadeOptional,
    /// The item's type is another one (another builtin, another kind of type, or,
    /// between source schemas, another named type that both schemas define).
    TypeChanged {
        /// The old type: a builtin's name, `[T]` for arrays, a named type's name, or
        /// its kind (`object`, `enum`, `alternate`) when the schema does not name it.
        old: String,
        /// The new type, described the same way.
        new: String,
    },
    /// The item gained a feature (`deprecated`, `unstable`, …).
    FeatureAdded {
        /// The feature's name.
        feature: String,
    },
    /// The item lost a feature.
    FeatureRemoved {
        /// The feature's name.
        feature: String,
    },
    /// The item's condition changed (between source schemas only).
    ConditionChanged {
        /// The old condition, if any.
        old: Option<String>,
        /// The new condition, if any.
        new: Option<String>,
    },
}

/// Compares `old` with `new`.
///
/// Never panics, whatever the models hold (a dangling type id reads as an unknown
/// type).
pub fn diff(old: &Schema, new: &Schema) -> Diff {
    let capture = is_capture(old) || is_capture(new);
    let mut d = Differ {
        old,
        new,
        capture,
        named: !capture,
        seen: HashSet::new(),
        changes: Vec::new(),
    };
    d.commands();
    d.events();
    if d.named {
        d.named_types();
    }
    Diff { changes: d.changes }
}

impl Diff {
    /// True when the schemas do not differ.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes as JSON: an array of [`Change::to_json`] objects.
    pub fn to_json(&self) -> Value {
        Value::Array(self.changes.iter().map(Change::to_json).collect())
    }

    /// [`Diff::to_json`] as text, one change per line (compact JSON otherwise), ending
    /// in a newline.
    pub fn to_json_text(&self) -> String {
        if self.changes.is_empty() {
            return "[]\n".to_owned();
        }
        let mut out = String::from("[\n");
        for (i, c) in self.changes.iter().enumerate() {
            out.push_str("  ");
            out.push_str(&c.to_json().to_string());
            out.push_str(if i + 1 < self.changes.len() {
                ",\n"
            } else {
                "\n"
            });
        }
        out.push_str("]\n");
        out
    }
}

/// One line per change (see [`Change`]'s `Display`), each ending in a newline.
impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Change {
    /// `+` for something added, `-` for something removed, `~` for a change in place.
    pub fn sign(&self) -> char {
        match self.kind {
            ChangeKind::Added { .. } | ChangeKind::FeatureAdded { .. } => '+',
            ChangeKind::Removed { .. } | ChangeKind::FeatureRemoved { .. } => '-',
            _ => '~',
        }
    }

    /// The change as a JSON object: `path` (the text of [`Path`]), `segments` (one
    /// string per step, e.g. `["command query-block", "reply", "[]", "member
    /// inserted"]`), `change` (`added`, `removed`, `made-required`, `made-optional`,
    /// `type-changed`, `feature-added`, `feature-removed`, `condition-changed`) and,
    /// where they apply, `optional`, `if`, `old`, `new` and `feature`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("path".into(), self.path.to_string().into());
        m.insert(
            "segments".into(),
            Value::Array(self.path.0.iter().map(|s| s.to_string().into()).collect()),
        );
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let change = match &self.kind {
            ChangeKind::Added {
                optional,
                condition,
            }
            | ChangeKind::Removed {
                optional,
                condition,
            } => {
                if let Some(o) = optional {
                    m.insert("optional".into(), (*o).into());
                }
                if let Some(c) = condition {
                    m.insert("if".into(), c.as_str().into());
                }
                if matches!(self.kind, ChangeKind::Added { .. }) {
                    "added"
                } else {
                    "removed"
                }
            }
            ChangeKind::MadeRequired => "made-required",
            ChangeKind::MadeOptional => "made-optional",
            ChangeKind::TypeChanged { old, new } => {
                m.insert("old".into(), old.as_str().into());
                m.insert("new".into(), new.as_str().into());
                "type-changed"
            }
            ChangeKind::FeatureAdded { feature } | ChangeKind::FeatureRemoved { feature } => {
                m.insert("feature".into(), feature.as_str().into());
                if matches!(self.kind, ChangeKind::FeatureAdded { .. }) {
                    "feature-added"
                } else {
                    "feature-removed"
                }
            }
            ChangeKind::ConditionChanged { old, new } => {
                m.insert("old".into(), opt(old));
                m.insert("new".into(), opt(new));
                "condition-changed"
            }
        };
        m.insert("change".into(), change.into());
        Value::Object(m)
    }
}

/// `+ command x-foo added`, `- type StatusInfo member singlestep removed, was
/// required`, `~ command query-foo reply: type FooInfo -> BarInfo`, `+ enum JobStatus
/// value pending feature unstable added`, `~ type Foo member bar: optional ->
/// required`, `~ command x: if CONFIG_A -> (none)`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.sign(), self.path)?;
        match &self.kind {
            ChangeKind::Added {
                optional,
                condition,
            } => {
                f.write_str(" added")?;
                match optional {
                    Some(true) => f.write_str(", optional")?,
                    Some(false) => f.write_str(", required")?,
                    None => {}
                }
                if let Some(c) = condition {
                    write!(f, " (if {c})")?;
                }
                Ok(())
            }
            ChangeKind::Removed {
                optional,
                condition,
            } => {
                f.write_str(" removed")?;
                match optional {
                    Some(true) => f.write_str(", was optional")?,
                    Some(false) => f.write_str(", was required")?,
                    None => {}
                }
                if let Some(c) = condition {
                    write!(f, " (if {c})")?;
                }
                Ok(())
            }
            ChangeKind::MadeRequired => f.write_str(": optional -> required"),
            ChangeKind::MadeOptional => f.write_str(": required -> optional"),
            ChangeKind::TypeChanged { old, new } => write!(f, ": type {old} -> {new}"),
            ChangeKind::FeatureAdded { feature } => write!(f, " feature {feature} added"),
            ChangeKind::FeatureRemoved { feature } => write!(f, " feature {feature} removed"),
            ChangeKind::ConditionChanged { old, new } => write!(
                f,
                ": if {} -> {}",
                old.as_deref().unwrap_or("(none)"),
                new.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

/// The steps separated by spaces, an array's elements as `[]` right after the array:
/// `command query-block reply[] member inserted`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 && *s != Segment::Element {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Command(n) => write!(f, "command {n}"),
            Segment::Event(n) => write!(f, "event {n}"),
            Segment::Type(n) => write!(f, "type {n}"),
            Segment::Enum(n) => write!(f, "enum {n}"),
            Segment::Member(n) => write!(f, "member {n}"),
            Segment::Reply => f.write_str("reply"),
            Segment::Element => f.write_str("[]"),
            Segment::Branch(n) => write!(f, "branch {n}"),
            Segment::Alternative(n) => write!(f, "alternative {n}"),
            Segment::Value(n) => write!(f, "value {n}"),
        }
    }
}

impl Path {
    fn with(&self, s: Segment) -> Path {
        let mut v = Vec::with_capacity(self.0.len() + 1);
        v.extend(self.0.iter().cloned());
        v.push(s);
        Path(v)
    }
}

/// A condition as one line: `CONFIG_KVM`, `not CONFIG_X`, `(A and B) or C`.
pub fn condition_text(c: &IfCond) -> String {
    fn join(out: &mut String, items: &[IfCond], op: &str) {
        if items.is_empty() {
            out.push_str(if op == " and " { "true" } else { "false" });
        }
        for (i, c) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(op);
            }
            nested(out, c);
        }
    }
    fn nested(out: &mut String, c: &IfCond) {
        match c {
            IfCond::All(v) | IfCond::Any(v) if v.len() > 1 => {
                out.push('(');
                write(out, c);
                out.push(')');
            }
            _ => write(out, c),
        }
    }
    fn write(out: &mut String, c: &IfCond) {
        match c {
            IfCond::Name(n) => out.push_str(n),
            IfCond::All(v) => join(out, v, " and "),
            IfCond::Any(v) => join(out, v, " or "),
            IfCond::Not(x) => {
                out.push_str("not ");
                nested(out, x);
            }
        }
    }
    let mut out = String::new();
    write(&mut out, c);
    out
}

fn is_capture(s: &Schema) -> bool {
    matches!(s.origin, Origin::Introspection { .. })
}

fn entity(s: &Schema, id: EntityId) -> Option<&Entity> {
    s.entities.get(id.0 as usize)
}

/// A type as far as the comparison cares. `None` (no arguments, an empty reply, no
/// event data) is an object without members: that is what is on the wire.
#[derive(Clone, Copy)]
enum Shape<'a> {
    Builtin(Builtin),
    Enum(&'a Enum),
    Array(EntityId),
    Object(Option<&'a Object>),
    Alternate(&'a Alternate),
    Unknown,
}

impl Shape<'_> {
    fn class(&self) -> u8 {
        match self {
            Shape::Builtin(_) => 0,
            Shape::Enum(_) => 1,
            Shape::Array(_) => 2,
            Shape::Object(_) => 3,
            Shape::Alternate(_) => 4,
            Shape::Unknown => 5,
        }
    }
}

fn shape(s: &Schema, id: Option<EntityId>) -> Shape<'_> {
    let Some(id) = id else {
        return Shape::Object(None);
    };
    match entity(s, id).map(|e| &e.kind) {
        Some(EntityKind::Builtin(b)) => Shape::Builtin(*b),
        Some(EntityKind::Enum(e)) => Shape::Enum(e),
        Some(EntityKind::Array(a)) => Shape::Array(a.element),
        Some(EntityKind::Object(o)) => Shape::Object(Some(o)),
        Some(EntityKind::Alternate(a)) => Shape::Alternate(a),
        _ => Shape::Unknown,
    }
}

/// An object type with nothing in it (QEMU's `q_empty`, the type of the branches a
/// union leaves out).
fn is_empty_object(s: &Schema, id: EntityId) -> bool {
    match shape(s, Some(id)) {
        Shape::Object(None) => true,
        Shape::Object(Some(o)) => o.members.is_empty() && o.branches.is_none(),
        _ => false,
    }
}

/// What kind of type this is, for a named type that changed kind.
fn kind_word(s: &Schema, id: Option<EntityId>) -> String {
    match shape(s, id) {
        Shape::Builtin(b) => b.name(),
        Shape::Enum(_) => "enum",
        Shape::Array(_) => "array",
        Shape::Object(None) => "{}",
        Shape::Object(Some(o)) if o.branches.is_some() => "union",
        Shape::Object(Some(_)) => "struct",
        Shape::Alternate(_) => "alternate",
        Shape::Unknown => "?",
    }
    .to_owned()
}

fn is_integer(b: Builtin) -> bool {
    matches!(
        b,
        Builtin::Int
            | Builtin::Int8
            | Builtin::Int16
            | Builtin::Int32
            | Builtin::Int64
            | Builtin::Uint8
            | Builtin::Uint16
            | Builtin::Uint32
            | Builtin::Uint64
            | Builtin::Size
    )
}

/// The JSON type that selects an alternative (QEMU allows one alternative per JSON
/// type, `int` and `number` counting as one, enums counting as strings).
fn alternative_key(s: &Schema, id: EntityId) -> &'static str {
    match shape(s, Some(id)) {
        Shape::Builtin(Builtin::Str) | Shape::Enum(_) => "string",
        Shape::Builtin(Builtin::Bool) => "boolean",
        Shape::Builtin(Builtin::Null) => "null",
        Shape::Builtin(Builtin::Any) => "value",
        Shape::Builtin(_) => "number",
        Shape::Array(_) => "array",
        Shape::Object(_) => "object",
        Shape::Alternate(_) => "alternate",
        Shape::Unknown => "unknown",
    }
}

fn condition(c: &Option<IfCond>) -> Option<String> {
    c.as_ref().map(condition_text)
}

/// A named type both sides may define under the same name: not a builtin, not
/// implicit, and a type.
fn named_type(e: &Entity) -> bool {
    !e.implicit
        && matches!(
            e.kind,
            EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_)
        )
}

/// A command (`reply` set) or an event.
struct Root<'a> {
    entity: &'a Entity,
    /// Arguments or event data.
    data: Option<EntityId>,
    /// The reply type (`None` inside: `{}`), for commands only.
    reply: Option<Option<EntityId>>,
}

/// A unit of work. The walk runs on an explicit stack rather than by recursion, so
/// that a long chain of nested types cannot exhaust the thread's stack; tasks are
/// pushed in reverse so that changes come out in the order recursion would give.
enum Task<'a> {
    Emit(Change),
    Type {
        path: Path,
        old: Option<EntityId>,
        new: Option<EntityId>,
        /// The named-type walk's own comparison of a type with its namesake.
        root: bool,
    },
    Member {
        path: Path,
        old: &'a Member,
        new: &'a Member,
    },
}

struct Differ<'a> {
    old: &'a Schema,
    new: &'a Schema,
    /// Either side is a capture: no conditions, no integer widths, no names.
    capture: bool,
    /// Both sides are sources: named types are compared by name too.
    named: bool,
    /// Pairs of types already compared (each is reported at its first path).
    seen: HashSet<(EntityId, EntityId)>,
    changes: Vec<Change>,
}

/// The items of two lists matched by key: the old ones in order (with their match),
/// then the new ones without a match, in order. Later duplicates of a key are ignored.
fn pair_up<'x, T>(
    old: &'x [T],
    new: &'x [T],
    key: impl Fn(&T) -> String,
) -> (Vec<(&'x T, Option<&'x T>)>, Vec<&'x T>) {
    let mut new_by_key: HashMap<String, &T> = HashMap::new();
    for n in new {
        new_by_key.entry(key(n)).or_insert(n);
    }
    let mut seen_old = HashSet::new();
    let mut both = Vec::new();
    for o in old {
        let k = key(o);
        if seen_old.insert(k.clone()) {
            both.push((o, new_by_key.get(&k).copied()));
        }
    }
    let mut seen_new = HashSet::new();
    let added = new
        .iter()
        .filter(|n| {
            let k = key(n);
            !seen_old.contains(&k) && seen_new.insert(k)
        })
        .collect();
    (both, added)
}

fn sorted_names<'x>(
    a: impl Iterator<Item = &'x str>,
    b: impl Iterator<Item = &'x str>,
) -> Vec<&'x str> {
    let mut v: Vec<&str> = a.chain(b).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl<'a> Differ<'a> {
    fn run(&mut self, tasks: Vec<Task<'a>>) {
        let mut stack: Vec<Task<'a>> = tasks.into_iter().rev().collect();
        while let Some(task) = stack.pop() {
            let next = match task {
                Task::Emit(c) => {
                    self.changes.push(c);
                    continue;
                }
                Task::Type {
                    path,
                    old,
                    new,
                    root,
                } => self.types(path, old, new, root),
                Task::Member { path, old, new } => self.member(path, old, new),
            };
            stack.extend(next.into_iter().rev());
        }
    }

    fn features(&self, path: &Path, old: &[Feature], new: &[Feature], out: &mut Vec<Task<'a>>) {
        let (both, added) = pair_up(old, new, |f| f.name.clone());
        for (o, n) in both {
            if n.is_none() {
                out.push(emit(
                    path.clone(),
                    ChangeKind::FeatureRemoved {
                        feature: o.name.clone(),
                    },
                ));
            }
        }
        for n in added {
            out.push(emit(
                path.clone(),
                ChangeKind::FeatureAdded {
                    feature: n.name.clone(),
                },
            ));
        }
    }

    fn condition(
        &self,
        path: &Path,
        old: &Option<IfCond>,
        new: &Option<IfCond>,
        out: &mut Vec<Task<'a>>,
    ) {
        if !self.capture && old != new {
            out.push(emit(
                path.clone(),
                ChangeKind::ConditionChanged {
                    old: condition(old),
                    new: condition(new),
                },
            ));
        }
    }

    fn commands(&mut self) {
        let roots = |s: &'a Schema| -> Vec<Root<'a>> {
            s.commands()
                .map(|(entity, c)| Root {
                    entity,
                    data: c.arg_type,
                    reply: Some(c.ret_type),
                })
                .collect()
        };
        self.roots(roots(self.old), roots(self.new), Segment::Command);
    }

    fn events(&mut self) {
        let roots = |s: &'a Schema| -> Vec<Root<'a>> {
            s.events()
                .map(|(entity, e)| Root {
                    entity,
                    data: e.arg_type,
                    reply: None,
                })
                .collect()
        };
        self.roots(roots(self.old), roots(self.new), Segment::Event);
    }

    /// Commands or events, by name.
    fn roots(&mut self, old: Vec<Root<'a>>, new: Vec<Root<'a>>, segment: fn(String) -> Segment) {
        let by_name = |v: Vec<Root<'a>>| -> HashMap<&'a str, Root<'a>> {
            v.into_iter().map(|r| (r.entity.name.as_str(), r)).collect()
        };
        let (old, new) = (by_name(old), by_name(new));
        for name in sorted_names(old.keys().copied(), new.keys().copied()) {
            let path = Path(vec![segment(name.to_owned())]);
            let mut tasks = Vec::new();
            match (old.get(name), new.get(name)) {
                (Some(o), Some(n)) => {
                    let (oe, ne) = (o.entity, n.entity);
                    self.condition(&path, &oe.ifcond, &ne.ifcond, &mut tasks);
                    self.features(&path, &oe.features, &ne.features, &mut tasks);
                    tasks.push(Task::Type {
                        path: path.clone(),
                        old: o.data,
                        new: n.data,
                        root: false,
                    });
                    if let (Some(or), Some(nr)) = (o.reply, n.reply) {
                        tasks.push(Task::Type {
                            path: path.with(Segment::Reply),
                            old: or,
                            new: nr,
                            root: false,
                        });
                    }
                }
                (Some(o), None) => tasks.push(emit(path, presence(false, None, &o.entity.ifcond))),
                (None, Some(n)) => tasks.push(emit(path, presence(true, None, &n.entity.ifcond))),
                (None, None) => {}
            }
            self.run(tasks);
        }
    }

    /// Between source schemas: every named type, by name.
    fn named_types(&mut self) {
        let names = |s: &'a Schema| -> HashMap<&'a str, EntityId> {
            s.entities
                .iter()
                .enumerate()
                .filter(|(_, e)| named_type(e))
                .map(|(i, e)| (e.name.as_str(), EntityId(i as u32)))
                .collect()
        };
        let (old, new) = (names(self.old), names(self.new));
        for name in sorted_names(old.keys().copied(), new.keys().copied()) {
            let (o, n) = (old.get(name).copied(), new.get(name).copied());
            let first = o
                .and_then(|id| entity(self.old, id))
                .or_else(|| n.and_then(|id| entity(self.new, id)));
            let root = match first.map(|e| &e.kind) {
                Some(EntityKind::Enum(_)) => Segment::Enum(name.to_owned()),
                _ => Segment::Type(name.to_owned()),
            };
            let path = Path(vec![root]);
            let task = match (o, n) {
                (Some(o), None) => {
                    let cond = entity(self.old, o).and_then(|e| e.ifcond.clone());
                    emit(path, presence(false, None, &cond))
                }
                (None, Some(n)) => {
                    let cond = entity(self.new, n).and_then(|e| e.ifcond.clone());
                    emit(path, presence(true, None, &cond))
                }
                (o, n) => Task::Type {
                    path,
                    old: o,
                    new: n,
                    root: true,
                },
            };
            self.run(vec![task]);
        }
    }

    /// How a type reads in a `TypeChanged`: never by an implicit type's internal
    /// name, nor by a capture's derived one.
    fn describe(&self, s: &Schema, id: Option<EntityId>) -> String {
        let mut id = match id {
            Some(id) => id,
            None => return "{}".to_owned(),
        };
        let mut depth = 0;
        loop {
            let Some(e) = entity(s, id) else {
                return "?".to_owned();
            };
            let named = !e.implicit && !is_capture(s);
            let text = match &e.kind {
                EntityKind::Builtin(b) if self.capture && is_integer(*b) => "int".to_owned(),
                EntityKind::Builtin(b) => b.name().to_owned(),
                EntityKind::Array(a) if depth < 16 => {
                    depth += 1;
                    id = a.element;
                    continue;
                }
                EntityKind::Array(_) => "array".to_owned(),
                _ if named => e.name.clone(),
                EntityKind::Enum(_) => "enum".to_owned(),
                EntityKind::Alternate(_) => "alternate".to_owned(),
                EntityKind::Object(o) if o.branches.is_some() => "union".to_owned(),
                EntityKind::Object(_) => "object".to_owned(),
                EntityKind::Command(_) | EntityKind::Event(_) => e.name.clone(),
            };
            return format!("{}{text}{}", "[".repeat(depth), "]".repeat(depth));
        }
    }

    fn type_changed(&self, path: Path, old: Option<EntityId>, new: Option<EntityId>) -> Task<'a> {
        let (mut o, mut n) = (self.describe(self.old, old), self.describe(self.new, new));
        if o == n {
            // A named type that changed kind (`enum Foo` became a struct).
            (o, n) = (kind_word(self.old, old), kind_word(self.new, new));
        }
        emit(path, ChangeKind::TypeChanged { old: o, new: n })
    }

    fn types(
        &mut self,
        path: Path,
        o: Option<EntityId>,
        n: Option<EntityId>,
        root: bool,
    ) -> Vec<Task<'a>> {
        let (so, sn) = (shape(self.old, o), shape(self.new, n));
        let eo = o.and_then(|id| entity(self.old, id));
        let en = n.and_then(|id| entity(self.new, id));
        let mut out = Vec::new();
        if let (Some(eo), Some(en)) = (eo, en) {
            if self.named && !root && named_type(eo) && named_type(en) {
                if eo.name == en.name {
                    // Reported under the type's own name by the named-type walk.
                    return out;
                }
                if self.new.by_name.contains_key(&eo.name)
                    && self.old.by_name.contains_key(&en.name)
                {
                    // It now refers to another type that both schemas define (each
                    // compared with its namesake). A type only one schema names
                    // (renamed, or new in its place) is compared by structure.
                    out.push(self.type_changed(path, o, n));
                    return out;
                }
            }
        }
        // `{}` against a type the schema names: the type is the news, more than the
        // members it brings (when nothing names it, its members are listed).
        let named_in = |s: &Schema, e: Option<&Entity>| !is_capture(s) && e.is_some_and(named_type);
        let empty_vs_named =
            (o.is_none() && named_in(self.new, en)) || (n.is_none() && named_in(self.old, eo));
        if so.class() != sn.class() || empty_vs_named {
            out.push(self.type_changed(path, o, n));
            return out;
        }
        if let (Some(oi), Some(ni)) = (o, n) {
            // Arrays of arrays too: a malformed model could make an array its own
            // element, and the walk must end.
            let compound = match so {
                Shape::Enum(_) | Shape::Object(_) | Shape::Alternate(_) => true,
                Shape::Array(e) => !matches!(shape(self.old, Some(e)), Shape::Builtin(_)),
                _ => false,
            };
            if compound && !self.seen.insert((oi, ni)) {
                return out;
            }
        }
        if let (Some(eo), Some(en)) = (eo, en) {
            if root {
                self.condition(&path, &eo.ifcond, &en.ifcond, &mut out);
            }
            if !eo.implicit && !en.implicit {
                self.features(&path, &eo.features, &en.features, &mut out);
            }
        }
        match (so, sn) {
            (Shape::Builtin(a), Shape::Builtin(b)) => {
                let same = a == b || (self.capture && is_integer(a) && is_integer(b));
                if !same {
                    out.push(self.type_changed(path, o, n));
                }
            }
            (Shape::Enum(a), Shape::Enum(b)) => {
                let (both, added) = pair_up(&a.members, &b.members, |m| m.name.clone());
                for (om, nm) in both {
                    let p = path.with(Segment::Value(om.name.clone()));
                    match nm {
                        None => out.push(emit(p, presence(false, None, &om.ifcond))),
                        Some(nm) => {
                            self.condition(&p, &om.ifcond, &nm.ifcond, &mut out);
                            self.features(&p, &om.features, &nm.features, &mut out);
                        }
                    }
                }
                for nm in added {
                    let p = path.with(Segment::Value(nm.name.clone()));
                    out.push(emit(p, presence(true, None, &nm.ifcond)));
                }
            }
            (Shape::Array(a), Shape::Array(b)) => out.push(Task::Type {
                path: path.with(Segment::Element),
                old: Some(a),
                new: Some(b),
                root: false,
            }),
            (Shape::Object(a), Shape::Object(b)) => self.objects(&path, a, b, &mut out),
            (Shape::Alternate(a), Shape::Alternate(b)) => {
                let key_old = |v: &Variant| alternative_key(self.old, v.ty).to_owned();
                let key_new = |v: &Variant| alternative_key(self.new, v.ty).to_owned();
                let mut new_by_key: HashMap<String, &Variant> = HashMap::new();
                for v in &b.alternatives.variants {
                    new_by_key.entry(key_new(v)).or_insert(v);
                }
                let mut old_keys = HashSet::new();
                for v in &a.alternatives.variants {
                    let k = key_old(v);
                    if !old_keys.insert(k.clone()) {
                        continue;
                    }
                    let p = path.with(Segment::Alternative(k.clone()));
                    match new_by_key.get(&k) {
                        None => out.push(emit(p, presence(false, None, &v.ifcond))),
                        Some(nv) => {
                            self.condition(&p, &v.ifcond, &nv.ifcond, &mut out);
                            out.push(Task::Type {
                                path: p,
                                old: Some(v.ty),
                                new: Some(nv.ty),
                                root: false,
                            });
                        }
                    }
                }
                let mut new_keys = HashSet::new();
                for v in &b.alternatives.variants {
                    let k = key_new(v);
                    if !old_keys.contains(&k) && new_keys.insert(k.clone()) {
                        let p = path.with(Segment::Alternative(k));
                        out.push(emit(p, presence(true, None, &v.ifcond)));
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn objects(
        &self,
        path: &Path,
        a: Option<&'a Object>,
        b: Option<&'a Object>,
        out: &mut Vec<Task<'a>>,
    ) {
        let members = |o: Option<&'a Object>| o.map_or(&[][..], |o| &o.members[..]);
        let (both, added) = pair_up(members(a), members(b), |m| m.name.clone());
        for (om, nm) in both {
            let p = path.with(Segment::Member(om.name.clone()));
            match nm {
                None => out.push(emit(p, presence(false, Some(om.optional), &om.ifcond))),
                Some(nm) => out.push(Task::Member {
                    path: p,
                    old: om,
                    new: nm,
                }),
            }
        }
        for nm in added {
            let p = path.with(Segment::Member(nm.name.clone()));
            out.push(emit(p, presence(true, Some(nm.optional), &nm.ifcond)));
        }
        let branches = |o: Option<&'a Object>| {
            o.and_then(|o| o.branches.as_ref())
                .map_or(&[][..], |v| &v.variants[..])
        };
        let (both, added) = pair_up(branches(a), branches(b), |v| v.name.clone());
        for (ov, nv) in both {
            let p = path.with(Segment::Branch(ov.name.clone()));
            match nv {
                // A branch without members is only the tag value, reported on the
                // tag's enum.
                None if is_empty_object(self.old, ov.ty) => {}
                None => out.push(emit(p, presence(false, None, &ov.ifcond))),
                Some(nv) => {
                    self.condition(&p, &ov.ifcond, &nv.ifcond, out);
                    out.push(Task::Type {
                        path: p,
                        old: Some(ov.ty),
                        new: Some(nv.ty),
                        root: false,
                    });
                }
            }
        }
        for nv in added {
            if !is_empty_object(self.new, nv.ty) {
                let p = path.with(Segment::Branch(nv.name.clone()));
                out.push(emit(p, presence(true, None, &nv.ifcond)));
            }
        }
    }

    fn member(&mut self, path: Path, o: &'a Member, n: &'a Member) -> Vec<Task<'a>> {
        let mut out = Vec::new();
        match (o.optional, n.optional) {
            (true, false) => out.push(emit(path.clone(), ChangeKind::MadeRequired)),
            (false, true) => out.push(emit(path.clone(), ChangeKind::MadeOptional)),
            _ => {}
        }
        self.condition(&path, &o.ifcond, &n.ifcond, &mut out);
        self.features(&path, &o.features, &n.features, &mut out);
        out.push(Task::Type {
            path,
            old: Some(o.ty),
            new: Some(n.ty),
            root: false,
        });
        out
    }
}

/// Added or removed, with the item's condition (often why a capture lacks it).
fn presence(added: bool, optional: Option<bool>, cond: &Option<IfCond>) -> ChangeKind {
    let condition = condition(cond);
    if added {
        ChangeKind::Added {
            optional,
            condition,
        }
    } else {
        ChangeKind::Removed {
            optional,
            condition,
        }
    }
}

fn emit<'a>(path: Path, kind: ChangeKind) -> Task<'a> {
    Task::Emit(Change { path, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_one_line() {
        let n = |s: &str| IfCond::Name(s.to_owned());
        let c = IfCond::Any(vec![
            IfCond::All(vec![n("A"), n("B")]),
            IfCond::Not(Box::new(n("C"))),
        ]);
        assert_eq!(condition_text(&c), "(A and B) or not C");
        assert_eq!(condition_text(&IfCond::All(vec![n("A")])), "A");
    }

    #[test]
    fn paths_print_elements_after_the_array() {
        let p = Path(vec![
            Segment::Command("query-block".into()),
            Segment::Reply,
            Segment::Element,
            Segment::Member("inserted".into()),
        ]);
        assert_eq!(p.to_string(), "command query-block reply[] member inserted");
    }
}
