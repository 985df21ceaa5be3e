//! Checks a command's arguments against a QAPI schema the way QEMU's monitor does.
//!
//! The schema comes in `query-qmp-schema` form: the JSON array of `SchemaInfo` entries a
//! live QEMU returns from introspection (and that the bindings crate embeds). [`Schema`]
//! indexes it once (names resolved to indices, so a check does no string look-ups of
//! type names) and [`Schema::check_command`] then walks the arguments in the same order
//! as QEMU's generated visitors and `qobject-input-visitor.c`, reporting the *first*
//! problem with QEMU's exact wording:
//!
//! | problem | class | text |
//! |---|---|---|
//! | unknown command | `CommandNotFound` | `The command X has not been found` |
//! | required member absent | `GenericError` | `Parameter 'a.b' is missing` |
//! | member not in the schema | `GenericError` | `Parameter 'a.b' is unexpected` |
//! | wrong JSON type | `GenericError` | `Invalid parameter type for 'a[0].b', expected: string` |
//! | enum value not listed | `GenericError` | `Parameter 'b' does not accept value 'v'` |
//! | no alternative matches | `GenericError` | `Invalid parameter type for 'b', expected: NAME` |
//! | out of range for a sized int | `GenericError` | `Parameter 'b' expects uint8_t` |
//!
//! QEMU's quirks are kept on purpose, since the point is to refuse exactly what QEMU
//! refuses with the text it sends: enum, alternate and range errors name the member
//! only (not its path), and a list element is then called `'null'`.
//!
//! Fidelity limits: a live QEMU's introspection masks type names (alternates show up
//! as `"109"`, so the alternate error names the masked type) and collapses every
//! integer type into `int` (so range checks happen only when the schema keeps the
//! precise builtin names, e.g. `uint8`, `size`). When several members are unexpected,
//! QEMU names whichever its hash table yields first; we name the first in input order.
//!
//! The same index serves the client: it is what [`crate::PeerSchema`] holds for a
//! connection's peer, what libvirt-style probes walk ([`crate::probe`]), and
//! [`Schema::find_absent`] is the absence-only walk behind the client's refusal
//! before sending (what the arguments use that the schema lacks, nothing else), and
//! both sides of the `drift` feature's comparison (the bindings' `SCHEMA_JSON` and the
//! peer's schema). It is the crate's one reader of introspection, built whatever the
//! features.
//!
//! # Build conditions
//!
//! A bindings' `SCHEMA_JSON` carries an `"if"` member (`CONFIG_BLKIO`, `TARGET_S390X
//! and CONFIG_KVM`) on the items that exist only under a build condition; QEMU's own
//! output never has one (a build lists only what it compiled in). The index keeps
//! them ([`CommandInfo::condition`], [`EventInfo::condition`], and those of members,
//! branches, alternatives and enum values, which the drift reads), so that the drift
//! can tell "this build left it out" from "this release lacks it". They do not change
//! any check: a schema is checked as the build it describes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Error class QEMU uses for argument and request-shape problems.
pub const GENERIC_ERROR: &str = "GenericError";
/// Error class QEMU uses for unknown (or not yet allowed) commands.
pub const COMMAND_NOT_FOUND: &str = "CommandNotFound";

/// Why a schema (the `query-qmp-schema` JSON) could not be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid introspection schema: entry {index} ({name}): {reason}")]
pub struct SchemaError {
    /// Position of the offending entry in the array (0-based).
    pub index: usize,
    /// Its `name`, or `?` when it has none.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Something a command's arguments use that a schema lacks ([`Schema::find_absent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absent {
    /// The command itself.
    Command,
    /// A member, by its path as QEMU prints paths (`file.aio`, `a[0].b`).
    Member {
        /// Where the member is.
        path: String,
    },
    /// An enum value that is not listed (a union's discriminator included).
    Value {
        /// The member holding the value.
        path: String,
        /// The value.
        value: String,
    },
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absent::Command => f.write_str("the command"),
            Absent::Member { path } => write!(f, "member '{path}'"),
            Absent::Value { path, value } => write!(f, "member '{path}' value '{value}'"),
        }
    }
}

/// Where [`Schema::member_of`] found a member.
enum Lookup {
    Found(TypeId),
    Missing,
    /// Which branch applies is not certain: judge nothing.
    Undecided,
}

/// Appends `.name` (or `name` at the start) to a QEMU-style path; returns the length
/// to truncate back to.
fn push_name(path: &mut String, name: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(name);
    len
}

/// A refusal as QEMU would send it: the error `class` and its `desc` text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `GenericError` or `CommandNotFound`.
    pub class: &'static str,
    /// The human-readable text, worded exactly as QEMU words it.
    pub desc: String,
}

impl Rejection {
    fn generic(desc: String) -> Self {
        Rejection {
            class: GENERIC_ERROR,
            desc,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

impl std::error::Error for Rejection {}

/// What the schema says about one command.
#[derive(Debug, Clone)]
pub struct CommandInfo {
    /// The wire name.
    pub name: String,
    /// Whether `exec-oob` is allowed for it (`allow-oob`).
    pub allow_oob: bool,
    /// The schema's `features` of the command (e.g. `deprecated`).
    pub features: Vec<String>,
    /// The command's build condition (`"if"`), which only a bindings' `SCHEMA_JSON`
    /// gives (see [Build conditions](self#build-conditions)).
    pub condition: Option<String>,
    pub(crate) arg_type: TypeId,
    /// `None` when the entry has no `ret-type` (QEMU always sends one).
    pub(crate) ret_type: Option<TypeId>,
}

/// What the schema says about one event.
#[derive(Debug, Clone)]
pub struct EventInfo {
    /// The wire name.
    pub name: String,
    /// The schema's `features` of the event (e.g. `deprecated`).
    pub features: Vec<String>,
    /// The event's build condition (`"if"`), which only a bindings' `SCHEMA_JSON`
    /// gives (see [Build conditions](self#build-conditions)).
    pub condition: Option<String>,
    pub(crate) arg_type: TypeId,
}

pub(crate) type TypeId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntKind {
    /// `int`, `int64` and any collapsed integer: accepts any integer JSON number.
    Any,
    Signed {
        min: i64,
        max: i64,
        name: &'static str,
    },
    Unsigned {
        max: u64,
        name: &'static str,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum Builtin {
    String,
    Int(IntKind),
    Number,
    Boolean,
    Null,
    Object,
    Array,
    Value,
}

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) optional: bool,
    pub(crate) ty: TypeId,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Builtin(Builtin),
    /// The values, and each value's `features` (QEMU 6.2 and later send them in
    /// `members`; empty when the schema has only `values`).
    Enum {
        values: Vec<String>,
        features: Vec<Vec<String>>,
    },
    Array(TypeId),
    Object {
        members: Vec<Member>,
        tag: Option<String>,
        variants: Vec<(String, TypeId)>,
    },
    Alternate(Vec<TypeId>),
}

/// A part of a type that may have a build condition of its own, by position in its
/// list (members, `variants`, alternatives, enum values, as the entry lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Member(usize),
    Variant(usize),
    Alternative(usize),
    Value(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct TypeEntry {
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// The entry's `features` (an object type's, e.g. `dynamic-auto-read-only`).
    pub(crate) features: Vec<String>,
    /// The build conditions of its parts that have one. Kept beside [`Kind`] rather
    /// than in it: a live QEMU's schema has none, so this stays an empty `Vec` (no
    /// allocation), and the checks and probes never read it.
    pub(crate) conditions: Vec<(Slot, Box<str>)>,
}

// Read by the drift only.
#[cfg_attr(not(feature = "drift"), allow(dead_code))]
impl TypeEntry {
    /// The build condition of one of its parts, if it has one.
    pub(crate) fn condition(&self, slot: Slot) -> Option<&str> {
        self.conditions
            .iter()
            .find(|(s, _)| *s == slot)
            .map(|(_, c)| &**c)
    }
}

/// An indexed `query-qmp-schema` schema, ready for fast argument checks.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub(crate) types: Vec<TypeEntry>,
    /// Type names to ids (masked names, `"123"`, for a live QEMU's schema).
    pub(crate) type_ids: HashMap<String, TypeId>,
    commands: HashMap<String, CommandInfo>,
    events: HashMap<String, EventInfo>,
    /// Whether a command, event, type or object member carries the `deprecated`
    /// feature: QEMU run with `-compat deprecated-output=hide` leaves all of them
    /// out of its introspection (see [`Schema::shows_deprecated`]).
    shows_deprecated: bool,
}

/// So that what takes either a [`Schema`] or a [`PeerSchema`](crate::PeerSchema)
/// (`drift::Drift::between`) takes this one.
impl AsRef<Schema> for Schema {
    fn as_ref(&self) -> &Schema {
        self
    }
}

impl Builtin {
    /// The `json-type` this builtin was read from.
    pub(crate) fn json_type(&self) -> &'static str {
        match self {
            Builtin::String => "string",
            Builtin::Int(_) => "int",
            Builtin::Number => "number",
            Builtin::Boolean => "boolean",
            Builtin::Null => "null",
            Builtin::Object => "object",
            Builtin::Array => "array",
            Builtin::Value => "value",
        }
    }
}

/// The JSON type QEMU's input visitor sees, for alternates' dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QType {
    String,
    Num,
    Bool,
    Null,
    Dict,
    List,
}

fn qtype_of(v: &Value) -> QType {
    match v {
        Value::String(_) => QType::String,
        Value::Number(_) => QType::Num,
        Value::Bool(_) => QType::Bool,
        Value::Null => QType::Null,
        Value::Object(_) => QType::Dict,
        Value::Array(_) => QType::List,
    }
}

fn builtin_from(name: &str, json_type: &str) -> Option<Builtin> {
    // Precise names (kept by schemas written by our codegen) give QEMU's range checks;
    // a live QEMU collapses them all into `int`.
    let int = match name {
        "int8" => Some(IntKind::Signed {
            min: i8::MIN.into(),
            max: i8::MAX.into(),
            name: "int8_t",
        }),
        "int16" => Some(IntKind::Signed {
            min: i16::MIN.into(),
            max: i16::MAX.into(),
            name: "int16_t",
        }),
        "int32" => Some(IntKind::Signed {
            min: i32::MIN.into(),
            max: i32::MAX.into(),
            name: "int32_t",
        }),
        "uint8" => Some(IntKind::Unsigned {
            max: u8::MAX.into(),
            name: "uint8_t",
        }),
        "uint16" => Some(IntKind::Unsigned {
            max: u16::MAX.into(),
            name: "uint16_t",
        }),
        "uint32" => Some(IntKind::Unsigned {
            max: u32::MAX.into(),
            name: "uint32_t",
        }),
        "uint64" | "size" => Some(IntKind::Unsigned {
            max: u64::MAX,
            name: "uint64",
        }),
        _ => None,
    };
    Some(match json_type {
        "string" => Builtin::String,
        "int" => Builtin::Int(int.unwrap_or(IntKind::Any)),
        "number" => Builtin::Number,
        "boolean" => Builtin::Boolean,
        "null" => Builtin::Null,
        "object" => Builtin::Object,
        "array" => Builtin::Array,
        "value" => Builtin::Value,
        _ => return None,
    })
}

/// One segment of the path QEMU prints for a member (`a.b[2].c`).
#[derive(Debug, Clone)]
enum Seg<'a> {
    Name(&'a str),
    Index(usize),
}

struct Walk<'s, 'v> {
    schema: &'s Schema,
    path: Vec<Seg<'v>>,
}

impl Schema {
    /// Indexes a `query-qmp-schema` reply (the array itself, or `{"return": [...]}`).
    ///
    /// # Errors
    /// When an entry lacks a required member, has an unknown `meta-type` or
    /// `json-type`, or names a type that is not in the array.
    pub fn from_introspection(json: &Value) -> Result<Schema, SchemaError> {
        let loose = Loose::deserialize(json).map_err(|e| SchemaError {
            index: 0,
            name: "?".into(),
            reason: format!("not JSON: {e}"),
        })?;
        Schema::from_loose(&loose)
    }

    fn from_loose(json: &Loose<'_>) -> Result<Schema, SchemaError> {
        // The array itself, or the `return` of a whole reply (`get` is `None` for
        // anything but an object).
        let entries = match (json, json.get("return")) {
            (Loose::Seq(a), _) | (_, Some(Loose::Seq(a))) => a,
            _ => {
                return Err(SchemaError {
                    index: 0,
                    name: "?".into(),
                    reason: "expected a JSON array of SchemaInfo".into(),
                })
            }
        };
        Indexer::default().run(entries)
    }

    /// Parses and indexes a `query-qmp-schema` JSON text.
    ///
    /// # Errors
    /// When the text is not JSON, or as [`Schema::from_introspection`].
    pub fn from_json_str(text: &str) -> Result<Schema, SchemaError> {
        // Read into `Loose` (strings borrowed from `text`, objects as short lists):
        // a third of the time a `Value` takes, and what the client's first
        // `supports` waits for (bench/README.md).
        let v: Loose<'_> = serde_json::from_str(text).map_err(|e| SchemaError {
            index: 0,
            name: "?".into(),
            reason: format!("not JSON: {e}"),
        })?;
        Schema::from_loose(&v)
    }

    /// The command's entry, if the schema has it.
    pub fn command(&self, name: &str) -> Option<&CommandInfo> {
        self.commands.get(name)
    }

    /// The event's entry, if the schema has it.
    pub fn event(&self, name: &str) -> Option<&EventInfo> {
        self.events.get(name)
    }

    /// Every command name, unordered.
    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }

    /// Every event name, unordered.
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    /// Whether any command, event, type or object member carries the `deprecated`
    /// feature. A QEMU run with `-compat deprecated-output=hide` removes every such
    /// entry and member from its introspection (QEMU's `zap_deprecated()`, 6.0 and
    /// later) while still accepting them as input (`deprecated-input` defaults to
    /// `accept`), so when this is false, a command or member missing from the schema
    /// may still exist. Enum values are not hidden (QEMU's `CompatPolicy` docs).
    pub fn shows_deprecated(&self) -> bool {
        self.shows_deprecated
    }

    /// What in `arguments` of command `name` the schema lacks: the command itself, a
    /// member no type along the way has (unions: the base and the branch the
    /// discriminator's value selects) or an enum value not listed; `None` when
    /// everything the arguments name is in the schema.
    ///
    /// Unlike [`check_command`](Self::check_command) this reports *absence* only:
    /// wrong JSON types, missing required members and out-of-range integers are left
    /// for QEMU to judge (they are not things a schema lacks, and introspection cannot
    /// express every rule, e.g. integer ranges of a collapsed `int`). Where QEMU's
    /// choice is not certain (an alternate with no or several alternatives for the
    /// value's JSON type, a union whose discriminator is absent or not a string),
    /// nothing below it is judged.
    pub fn find_absent(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> Option<Absent> {
        let Some(info) = self.commands.get(name) else {
            return Some(Absent::Command);
        };
        let args = arguments?;
        let mut path = String::new();
        self.absent_in_object(info.arg_type, args, &mut path)
    }

    /// Members of object `ty` (its own, then the branch `map`'s discriminator picks).
    fn absent_in_object(
        &self,
        ty: TypeId,
        map: &Map<String, Value>,
        path: &mut String,
    ) -> Option<Absent> {
        let Kind::Object { members, .. } = &self.types[ty].kind else {
            return None;
        };
        let own = |key: &str| members.iter().find(|m| m.name == key);
        // Own members first (the discriminator among them), so a discriminator value
        // the schema lacks is reported as such, not as the branch's members.
        for (key, v) in map {
            if let Some(m) = own(key) {
                let len = push_name(path, key);
                let found = self.absent_in_value(m.ty, v, path);
                path.truncate(len);
                if found.is_some() {
                    return found;
                }
            }
        }
        for (key, v) in map {
            if own(key).is_some() {
                continue;
            }
            let len = push_name(path, key);
            let found = match self.member_type(ty, map, key) {
                Lookup::Found(mty) => self.absent_in_value(mty, v, path),
                Lookup::Missing => Some(Absent::Member { path: path.clone() }),
                Lookup::Undecided => None,
            };
            path.truncate(len);
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// The type of member `key` of object `ty` whose value is `map`: one of its own
    /// members, or one of the branch its discriminator's value selects (recursively:
    /// a branch may be a union itself).
    fn member_type(&self, ty: TypeId, map: &Map<String, Value>, key: &str) -> Lookup {
        let Kind::Object {
            members,
            tag,
            variants,
        } = &self.types[ty].kind
        else {
            return Lookup::Undecided;
        };
        if let Some(m) = members.iter().find(|m| m.name == key) {
            return Lookup::Found(m.ty);
        }
        let Some(tag) = tag else {
            return Lookup::Missing;
        };
        match map.get(tag.as_str()) {
            Some(Value::String(case)) => match variants.iter().find(|(c, _)| c == case) {
                Some((_, branch)) => self.member_type(*branch, map, key),
                // A listed value without a branch: QEMU takes no members beyond
                // the base. An unlisted one is reported at the discriminator.
                None if self.tag_value_listed(members, tag, case) => Lookup::Missing,
                None => Lookup::Undecided,
            },
            // No discriminator, or not a string: QEMU fails on that first.
            _ => Lookup::Undecided,
        }
    }

    fn tag_value_listed(&self, members: &[Member], tag: &str, case: &str) -> bool {
        members
            .iter()
            .find(|m| m.name == tag)
            .is_some_and(|m| match &self.types[m.ty].kind {
                Kind::Enum { values, .. } => values.iter().any(|v| v == case),
                _ => false,
            })
    }

    fn absent_in_value(&self, ty: TypeId, v: &Value, path: &mut String) -> Option<Absent> {
        match (&self.types[ty].kind, v) {
            (Kind::Enum { values, .. }, Value::String(s)) => {
                if values.iter().any(|x| x == s) {
                    None
                } else {
                    Some(Absent::Value {
                        path: path.clone(),
                        value: s.clone(),
                    })
                }
            }
            (Kind::Array(elem), Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                    let found = self.absent_in_value(*elem, item, path);
                    path.truncate(len);
                    if found.is_some() {
                        return found;
                    }
                }
                None
            }
            (Kind::Object { .. }, Value::Object(map)) => self.absent_in_object(ty, map, path),
            (Kind::Alternate(alts), v) => {
                let q = qtype_of(v);
                let mut fits = alts.iter().filter(|a| self.qtype(**a) == Some(q));
                match (fits.next(), fits.next()) {
                    (Some(a), None) => self.absent_in_value(*a, v, path),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// Checks `arguments` (absent means `{}`) for command `name` as QEMU's dispatcher
    /// would, returning the command's entry when QEMU would run it.
    ///
    /// # Errors
    /// The [`Rejection`] QEMU would reply with: `CommandNotFound` for an unknown
    /// command, `GenericError` with QEMU's text for the first bad argument.
    pub fn check_command(
        &self,
        name: &str,
        arguments: Option<&Map<String, Value>>,
    ) -> Result<&CommandInfo, Rejection> {
        let info = self.commands.get(name).ok_or_else(|| Rejection {
            class: COMMAND_NOT_FOUND,
            desc: format!("The command {name} has not been found"),
        })?;
        self.check_arguments(info.arg_type, arguments)?;
        Ok(info)
    }

    /// Checks an event's `data` against the schema (same rules and texts as
    /// commands), for servers that want to refuse emitting malformed events.
    ///
    /// # Errors
    /// A [`Rejection`] naming the unknown event or the first bad member.
    pub fn check_event(
        &self,
        name: &str,
        data: Option<&Map<String, Value>>,
    ) -> Result<(), Rejection> {
        let info = self
            .events
            .get(name)
            .ok_or_else(|| Rejection::generic(format!("The event {name} has not been found")))?;
        self.check_arguments(info.arg_type, data)
    }

    fn check_arguments(
        &self,
        ty: TypeId,
        args: Option<&Map<String, Value>>,
    ) -> Result<(), Rejection> {
        let empty = Map::new();
        let args = args.unwrap_or(&empty);
        let mut walk = Walk {
            schema: self,
            path: Vec::new(),
        };
        // The marshaller visits the arguments as an anonymous root struct.
        walk.object(ty, args)
    }
}

impl<'s: 'v, 'v> Walk<'s, 'v> {
    /// QEMU's `full_name()`: the dotted path with `[i]` for list elements.
    fn full_name(&self) -> String {
        let mut s = String::new();
        for seg in &self.path {
            match seg {
                Seg::Name(n) => {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(n);
                }
                Seg::Index(i) => {
                    s.push('[');
                    s.push_str(&i.to_string());
                    s.push(']');
                }
            }
        }
        if s.is_empty() {
            "<anonymous>".into()
        } else {
            s
        }
    }

    /// The bare `name` QEMU's visit core prints (`name ? name : "null"`).
    fn plain_name(&self) -> &'v str {
        match self.path.last() {
            Some(Seg::Name(n)) => n,
            _ => "null",
        }
    }

    fn type_error(&self, expected: &str) -> Rejection {
        Rejection::generic(format!(
            "Invalid parameter type for '{}', expected: {expected}",
            self.full_name()
        ))
    }

    /// Visits the members of object type `ty` inside `map`, then rejects leftovers.
    fn object(&mut self, ty: TypeId, map: &'v Map<String, Value>) -> Result<(), Rejection> {
        let mut seen = Vec::with_capacity(map.len());
        self.members(ty, map, &mut seen)?;
        if seen.len() < map.len() {
            if let Some(extra) = map.keys().find(|k| !seen.contains(&k.as_str())) {
                self.path.push(Seg::Name(extra));
                let e =
                    Rejection::generic(format!("Parameter '{}' is unexpected", self.full_name()));
                self.path.pop();
                return Err(e);
            }
        }
        Ok(())
    }

    fn members(
        &mut self,
        ty: TypeId,
        map: &'v Map<String, Value>,
        seen: &mut Vec<&'v str>,
    ) -> Result<(), Rejection> {
        let schema = self.schema;
        let Kind::Object {
            members,
            tag,
            variants,
        } = &schema.types[ty].kind
        else {
            // Not reachable for a checked schema: arg-types and branches are objects.
            return Err(self.type_error("object"));
        };
        for m in members {
            match map.get_key_value(m.name.as_str()) {
                Some((k, v)) => {
                    seen.push(k.as_str());
                    self.path.push(Seg::Name(k.as_str()));
                    let r = self.value(m.ty, v);
                    self.path.pop();
                    r?;
                }
                None if m.optional => {}
                None => {
                    self.path.push(Seg::Name(m.name.as_str()));
                    let e =
                        Rejection::generic(format!("Parameter '{}' is missing", self.full_name()));
                    self.path.pop();
                    return Err(e);
                }
            }
        }
        if let Some(tag) = tag {
            // The tag was visited (and validated as an enum) with the base members.
            if let Some(Value::String(case)) = map.get(tag.as_str()) {
                if let Some((_, branch)) = variants.iter().find(|(c, _)| c == case) {
                    self.members(*branch, map, seen)?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, ty: TypeId, v: &'v Value) -> Result<(), Rejection> {
        let schema = self.schema;
        match &schema.types[ty].kind {
            Kind::Builtin(b) => self.builtin(b, v),
            Kind::Enum { values, .. } => {
                let Value::String(s) = v else {
                    return Err(self.type_error("string"));
                };
                if values.iter().any(|x| x == s) {
                    Ok(())
                } else {
                    Err(Rejection::generic(format!(
                        "Parameter '{}' does not accept value '{s}'",
                        self.plain_name()
                    )))
                }
            }
            Kind::Array(elem) => {
                let Value::Array(items) = v else {
                    return Err(self.type_error("array"));
                };
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Seg::Index(i));
                    let r = self.value(*elem, item);
                    self.path.pop();
                    r?;
                }
                Ok(())
            }
            Kind::Object { .. } => {
                let Value::Object(map) = v else {
                    return Err(self.type_error("object"));
                };
                self.object(ty, map)
            }
            Kind::Alternate(alts) => {
                let q = qtype_of(v);
                match alts.iter().find(|a| schema.qtype(**a) == Some(q)) {
                    Some(a) => self.value(*a, v),
                    None => Err(Rejection::generic(format!(
                        "Invalid parameter type for '{}', expected: {}",
                        self.plain_name(),
                        schema.types[ty].name
                    ))),
                }
            }
        }
    }

    fn builtin(&self, b: &Builtin, v: &Value) -> Result<(), Rejection> {
        let ok = match b {
            Builtin::String => v.is_string(),
            Builtin::Number => v.is_number(),
            Builtin::Boolean => v.is_boolean(),
            Builtin::Null => v.is_null(),
            Builtin::Object => v.is_object(),
            Builtin::Array => v.is_array(),
            Builtin::Value => true,
            Builtin::Int(kind) => return self.int(*kind, v),
        };
        if ok {
            return Ok(());
        }
        Err(self.type_error(match b {
            Builtin::String => "string",
            Builtin::Number => "number",
            Builtin::Boolean => "boolean",
            Builtin::Null => "null",
            Builtin::Object => "object",
            Builtin::Array => "array",
            Builtin::Value | Builtin::Int(_) => "value",
        }))
    }

    fn int(&self, kind: IntKind, v: &Value) -> Result<(), Rejection> {
        let range = |ty: &str| {
            Rejection::generic(format!("Parameter '{}' expects {ty}", self.plain_name()))
        };
        match kind {
            IntKind::Any => match v.as_i64().is_some() || v.as_u64().is_some() {
                true => Ok(()),
                false => Err(self.type_error("integer")),
            },
            IntKind::Signed { min, max, name } => {
                let Some(i) = v.as_i64() else {
                    return Err(self.type_error("integer"));
                };
                if i < min || i > max {
                    return Err(range(name));
                }
                Ok(())
            }
            IntKind::Unsigned { max, name } => {
                // QEMU accepts negative values for unsigned types "for backward
                // compatibility" and reinterprets them; so do we.
                let u = match (v.as_u64(), v.as_i64()) {
                    (Some(u), _) => u,
                    (None, Some(i)) => i as u64,
                    _ => {
                        return Err(Rejection::generic(format!(
                            "Parameter '{}' expects uint64",
                            self.full_name()
                        )))
                    }
                };
                if u > max {
                    return Err(range(name));
                }
                Ok(())
            }
        }
    }
}

impl Schema {
    /// The JSON type an alternative accepts (QAPI's `alternate_qtype()`).
    fn qtype(&self, ty: TypeId) -> Option<QType> {
        Some(match &self.types[ty].kind {
            Kind::Builtin(b) => match b {
                Builtin::String => QType::String,
                Builtin::Int(_) | Builtin::Number => QType::Num,
                Builtin::Boolean => QType::Bool,
                Builtin::Null => QType::Null,
                Builtin::Object => QType::Dict,
                Builtin::Array => QType::List,
                Builtin::Value => return None,
            },
            Kind::Enum { .. } => QType::String,
            Kind::Array(_) => QType::List,
            Kind::Object { .. } => QType::Dict,
            Kind::Alternate(_) => return None,
        })
    }
}

/// A JSON value as the indexer reads it: strings borrowed from the text where they
/// have no escapes, objects as lists of members (introspection objects have a handful
/// of members, so a linear look-up beats a `BTreeMap`), numbers not kept.
#[derive(Debug)]
enum Loose<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Seq(Vec<Loose<'a>>),
    Map(Vec<(Cow<'a, str>, Loose<'a>)>),
    /// Numbers and `null`: the schema has them only where the indexer does not look
    /// (`default`'s value, which is only tested for presence).
    Other,
}

impl<'a> Loose<'a> {
    fn get(&self, key: &str) -> Option<&Loose<'a>> {
        match self {
            Loose::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<&[Loose<'a>]> {
        match self {
            Loose::Seq(a) => Some(a),
            _ => None,
        }
    }

    fn as_bool(&self) -> Option<bool> {
        match self {
            Loose::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Bool(b))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_none<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Other)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Loose<'de>, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(4));
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Loose::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Loose<'de>, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(6));
                while let Some(k) = a.next_key::<Key<'de>>()? {
                    v.push((k.0, a.next_value()?));
                }
                Ok(Loose::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object key, borrowed when it can be.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Builds a [`Schema`] in two passes: assign ids to every type name, then resolve.
#[derive(Default)]
struct Indexer {
    ids: HashMap<String, TypeId>,
}

impl Indexer {
    fn run(mut self, entries: &[Loose<'_>]) -> Result<Schema, SchemaError> {
        let err = |index: usize, e: &Loose<'_>, reason: String| SchemaError {
            index,
            name: e
                .get("name")
                .and_then(Loose::as_str)
                .unwrap_or("?")
                .to_string(),
            reason,
        };
        let str_field = |index: usize, e: &Loose<'_>, key: &str| -> Result<String, SchemaError> {
            e.get(key)
                .and_then(Loose::as_str)
                .map(str::to_string)
                .ok_or_else(|| err(index, e, format!("member '{key}' missing or not a string")))
        };
        // Pass 1: ids for type entries.
        let mut type_entries = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let meta = str_field(i, e, "meta-type")?;
            let name = str_field(i, e, "name")?;
            if !matches!(meta.as_str(), "command" | "event") {
                if self.ids.insert(name.clone(), type_entries.len()).is_some() {
                    return Err(err(i, e, "duplicate type name".into()));
                }
                type_entries.push((i, e));
            }
        }
        let resolve =
            |ids: &HashMap<String, TypeId>, index: usize, e: &Loose<'_>, key: &str, name: &str| {
                ids.get(name)
                    .copied()
                    .ok_or_else(|| err(index, e, format!("{key} '{name}' is not defined")))
            };
        // The `features` of an entry or member: strings (anything else is ignored).
        let features = |e: &Loose<'_>| -> Vec<String> {
            e.get("features")
                .and_then(Loose::as_array)
                .map(|fs| {
                    fs.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        // The build condition (`"if"`) of an entry or one of its parts.
        let condition = |e: &Loose<'_>| e.get("if").and_then(Loose::as_str).map(Box::<str>::from);
        let deprecated = |e: &Loose<'_>| {
            e.get("features")
                .and_then(Loose::as_array)
                .is_some_and(|fs| fs.iter().any(|f| f.as_str() == Some("deprecated")))
        };
        let mut shows_deprecated = false;
        // Pass 2: resolve type entries.
        let mut types = Vec::with_capacity(type_entries.len());
        for (i, e) in type_entries {
            shows_deprecated |= deprecated(e);
            let name = str_field(i, e, "name")?;
            let meta = str_field(i, e, "meta-type")?;
            let mut conditions = Vec::new();
            let array = |key: &str| -> Result<&[Loose<'_>], SchemaError> {
                e.get(key)
                    .and_then(Loose::as_array)
                    .ok_or_else(|| err(i, e, format!("member '{key}' missing or not an array")))
            };
            let kind = match meta.as_str() {
                "builtin" => {
                    let jt = str_field(i, e, "json-type")?;
                    Kind::Builtin(
                        builtin_from(&name, &jt)
                            .ok_or_else(|| err(i, e, format!("unknown json-type '{jt}'")))?,
                    )
                }
                "enum" => {
                    // `values` is deprecated in favour of `members` but still sent; accept either.
                    let mut value_features = Vec::new();
                    let values = match e.get("members").and_then(Loose::as_array) {
                        Some(ms) => {
                            value_features = ms.iter().map(features).collect();
                            for (at, m) in ms.iter().enumerate() {
                                if let Some(c) = condition(m) {
                                    conditions.push((Slot::Value(at), c));
                                }
                            }
                            ms.iter()
                                .map(|m| str_field(i, m, "name"))
                                .collect::<Result<Vec<_>, _>>()?
                        }
                        None => array("values")?
                            .iter()
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .ok_or_else(|| err(i, e, "enum value not a string".into()))
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                    };
                    Kind::Enum {
                        values,
                        features: value_features,
                    }
                }
                "array" => {
                    let elem = str_field(i, e, "element-type")?;
                    Kind::Array(resolve(&self.ids, i, e, "element-type", &elem)?)
                }
                "object" => {
                    let mut members = Vec::new();
                    for (at, m) in array("members")?.iter().enumerate() {
                        let mname = str_field(i, m, "name")?;
                        let mty = str_field(i, m, "type")?;
                        shows_deprecated |= deprecated(m);
                        if let Some(c) = condition(m) {
                            conditions.push((Slot::Member(at), c));
                        }
                        members.push(Member {
                            optional: m.get("default").is_some(),
                            ty: resolve(&self.ids, i, e, "member type", &mty)?,
                            name: mname,
                        });
                    }
                    let tag = e.get("tag").and_then(Loose::as_str).map(str::to_string);
                    let mut variants = Vec::new();
                    if let Some(vs) = e.get("variants").and_then(Loose::as_array) {
                        for (at, v) in vs.iter().enumerate() {
                            let case = str_field(i, v, "case")?;
                            let vty = str_field(i, v, "type")?;
                            if let Some(c) = condition(v) {
                                conditions.push((Slot::Variant(at), c));
                            }
                            variants.push((case, resolve(&self.ids, i, e, "variant type", &vty)?));
                        }
                    }
                    if !variants.is_empty() && tag.is_none() {
                        return Err(err(i, e, "variants without a tag".into()));
                    }
                    Kind::Object {
                        members,
                        tag,
                        variants,
                    }
                }
                "alternate" => {
                    let mut alts = Vec::new();
                    for (at, m) in array("members")?.iter().enumerate() {
                        let mty = str_field(i, m, "type")?;
                        alts.push(resolve(&self.ids, i, e, "alternative", &mty)?);
                        if let Some(c) = condition(m) {
                            conditions.push((Slot::Alternative(at), c));
                        }
                    }
                    Kind::Alternate(alts)
                }
                other => return Err(err(i, e, format!("unknown meta-type '{other}'"))),
            };
            types.push(TypeEntry {
                name,
                kind,
                features: features(e),
                conditions,
            });
        }
        let mut schema = Schema {
            types,
            type_ids: HashMap::new(),
            commands: HashMap::new(),
            events: HashMap::new(),
            shows_deprecated: false,
        };
        // Pass 3: commands and events, whose argument types must be objects.
        for (i, e) in entries.iter().enumerate() {
            let meta = str_field(i, e, "meta-type")?;
            if !matches!(meta.as_str(), "command" | "event") {
                continue;
            }
            let name = str_field(i, e, "name")?;
            let arg = str_field(i, e, "arg-type")?;
            let arg_type = resolve(&self.ids, i, e, "arg-type", &arg)?;
            if !matches!(schema.types[arg_type].kind, Kind::Object { .. }) {
                return Err(err(i, e, format!("arg-type '{arg}' is not an object type")));
            }
            shows_deprecated |= deprecated(e);
            if meta == "command" {
                let ret_type = match e.get("ret-type").and_then(Loose::as_str) {
                    Some(ret) => Some(resolve(&self.ids, i, e, "ret-type", ret)?),
                    None => None,
                };
                let info = CommandInfo {
                    name: name.clone(),
                    allow_oob: e.get("allow-oob").and_then(Loose::as_bool).unwrap_or(false),
                    features: features(e),
                    condition: condition(e).map(String::from),
                    arg_type,
                    ret_type,
                };
                schema.commands.insert(name, info);
            } else {
                let info = EventInfo {
                    name: name.clone(),
                    features: features(e),
                    condition: condition(e).map(String::from),
                    arg_type,
                };
                schema.events.insert(name, info);
            }
        }
        schema.shows_deprecated = shows_deprecated;
        // Branch types must be objects too (checked so the walk never meets anything else).
        for (id, t) in schema.types.iter().enumerate() {
            if let Kind::Object { variants, .. } = &t.kind {
                for (case, b) in variants {
                    if !matches!(schema.types[*b].kind, Kind::Object { .. }) {
                        return Err(SchemaError {
                            index: id,
                            name: t.name.clone(),
                            reason: format!("variant '{case}' is not an object type"),
                        });
                    }
                }
            }
        }
        schema.type_ids = self.ids;
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_introspection(&json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "uint8", "meta-type": "builtin", "json-type": "int"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "null", "meta-type": "builtin", "json-type": "null"},
            {"name": "number", "meta-type": "builtin", "json-type": "number"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "Drv", "meta-type": "enum", "values": ["a", "b"]},
            {"name": "[Drv]", "meta-type": "array", "element-type": "Drv"},
            {"name": "Cache", "meta-type": "object", "members": [
                {"name": "direct", "type": "bool", "default": null}]},
            {"name": "[Cache]", "meta-type": "array", "element-type": "Cache"},
            {"name": "BranchA", "meta-type": "object", "members": [{"name": "size", "type": "int"}]},
            {"name": "Opts", "meta-type": "object", "tag": "driver",
             "members": [
                {"name": "driver", "type": "Drv"},
                {"name": "node-name", "type": "str", "default": null},
                {"name": "cache", "type": "Cache", "default": null},
                {"name": "caches", "type": "[Cache]", "default": null},
                {"name": "drivers", "type": "[Drv]", "default": null},
                {"name": "ref", "type": "Ref", "default": null},
                {"name": "small", "type": "uint8", "default": null},
                {"name": "ratio", "type": "number", "default": null}],
             "variants": [{"case": "a", "type": "BranchA"}]},
            {"name": "Ref", "meta-type": "alternate", "members": [{"type": "Opts"}, {"type": "str"}]},
            {"name": "add", "meta-type": "command", "arg-type": "Opts", "ret-type": "0"},
            {"name": "ping", "meta-type": "command", "arg-type": "0", "ret-type": "0", "allow-oob": true},
            {"name": "EV", "meta-type": "event", "arg-type": "Cache"}
        ]))
        .unwrap()
    }

    fn desc(name: &str, args: Value) -> String {
        let s = schema();
        match s.check_command(name, args.as_object()) {
            Ok(_) => "ok".into(),
            Err(r) => format!("{}: {}", r.class, r.desc),
        }
    }

    #[test]
    fn accepts_valid_arguments() {
        assert_eq!(desc("add", json!({"driver": "b"})), "ok");
        assert_eq!(
            desc(
                "add",
                json!({"driver": "a", "size": 5, "ref": "x", "ratio": 1})
            ),
            "ok"
        );
        assert_eq!(
            desc("add", json!({"driver": "b", "ref": {"driver": "b"}})),
            "ok"
        );
        assert_eq!(desc("ping", json!({})), "ok");
        assert!(schema().check_command("ping", None).unwrap().allow_oob);
    }

    #[test]
    fn unknown_command_is_command_not_found() {
        assert_eq!(
            desc("nope", json!({})),
            "CommandNotFound: The command nope has not been found"
        );
    }

    #[test]
    fn texts_match_qemu() {
        let cases = [
            (json!({}), "Parameter 'driver' is missing"),
            (
                json!({"driver": "b", "bogus": 1}),
                "Parameter 'bogus' is unexpected",
            ),
            (
                json!({"driver": "c"}),
                "Parameter 'driver' does not accept value 'c'",
            ),
            (
                json!({"driver": 1}),
                "Invalid parameter type for 'driver', expected: string",
            ),
            (
                json!({"driver": "b", "node-name": 5}),
                "Invalid parameter type for 'node-name', expected: string",
            ),
            (json!({"driver": "a"}), "Parameter 'size' is missing"),
            (
                json!({"driver": "a", "size": 1.5}),
                "Invalid parameter type for 'size', expected: integer",
            ),
            (
                json!({"driver": "b", "size": 1}),
                "Parameter 'size' is unexpected",
            ),
            (
                json!({"driver": "b", "cache": {"direct": "x"}}),
                "Invalid parameter type for 'cache.direct', expected: boolean",
            ),
            (
                json!({"driver": "b", "cache": {"x": 1}}),
                "Parameter 'cache.x' is unexpected",
            ),
            (
                json!({"driver": "b", "cache": 1}),
                "Invalid parameter type for 'cache', expected: object",
            ),
            (
                json!({"driver": "b", "caches": [{}, {"direct": 1}]}),
                "Invalid parameter type for 'caches[1].direct', expected: boolean",
            ),
            (
                json!({"driver": "b", "drivers": ["a", "z"]}),
                "Parameter 'null' does not accept value 'z'",
            ),
            (
                json!({"driver": "b", "drivers": "a"}),
                "Invalid parameter type for 'drivers', expected: array",
            ),
            (
                json!({"driver": "b", "ref": 5}),
                "Invalid parameter type for 'ref', expected: Ref",
            ),
            (
                json!({"driver": "b", "ref": {"driver": "q"}}),
                "Parameter 'driver' does not accept value 'q'",
            ),
            (
                json!({"driver": "b", "ref": {"driver": "b", "cache": {"direct": 1}}}),
                "Invalid parameter type for 'ref.cache.direct', expected: boolean",
            ),
            (
                json!({"driver": "b", "small": 256}),
                "Parameter 'small' expects uint8_t",
            ),
            (
                json!({"driver": "b", "small": "x"}),
                "Parameter 'small' expects uint64",
            ),
            (
                json!({"driver": "b", "ratio": "x"}),
                "Invalid parameter type for 'ratio', expected: number",
            ),
            (
                json!({"driver": "b", "node-name": null}),
                "Invalid parameter type for 'node-name', expected: string",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(
                desc("add", args.clone()),
                format!("GenericError: {want}"),
                "args {args}"
            );
        }
        assert_eq!(
            desc("ping", json!({"x": 1})),
            "GenericError: Parameter 'x' is unexpected"
        );
    }

    #[test]
    fn events_are_checked() {
        let s = schema();
        assert!(s
            .check_event("EV", json!({"direct": true}).as_object())
            .is_ok());
        assert!(s
            .check_event("EV", json!({"direct": 1}).as_object())
            .is_err());
        assert!(s.check_event("NOPE", None).is_err());
    }

    #[test]
    fn build_conditions_are_kept_and_change_no_check() {
        let s = Schema::from_introspection(&json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "E", "meta-type": "enum",
             "members": [{"name": "a"}, {"name": "b", "if": "CONFIG_B"}]},
            {"name": "B", "meta-type": "object", "members": [], "if": "CONFIG_B"},
            {"name": "O", "meta-type": "object", "tag": "e", "members": [
                {"name": "e", "type": "E"},
                {"name": "x", "type": "str", "default": null, "if": "CONFIG_X"}],
             "variants": [{"case": "b", "type": "B", "if": "CONFIG_B"}]},
            {"name": "Alt", "meta-type": "alternate",
             "members": [{"type": "str"}, {"type": "O", "if": "CONFIG_O"}]},
            {"name": "c", "meta-type": "command", "arg-type": "O", "ret-type": "Alt",
             "if": "TARGET_S390X and CONFIG_KVM"},
            {"name": "EV", "meta-type": "event", "arg-type": "O", "if": "CONFIG_EV"}
        ]))
        .unwrap();
        let c = s.command("c").unwrap();
        assert_eq!(c.condition.as_deref(), Some("TARGET_S390X and CONFIG_KVM"));
        assert_eq!(
            s.event("EV").unwrap().condition.as_deref(),
            Some("CONFIG_EV")
        );
        let t = |name: &str| &s.types[s.type_ids[name]];
        assert_eq!(t("E").condition(Slot::Value(0)), None);
        assert_eq!(t("E").condition(Slot::Value(1)), Some("CONFIG_B"));
        assert_eq!(t("O").condition(Slot::Member(0)), None);
        assert_eq!(t("O").condition(Slot::Member(1)), Some("CONFIG_X"));
        assert_eq!(t("O").condition(Slot::Variant(0)), Some("CONFIG_B"));
        assert_eq!(t("Alt").condition(Slot::Alternative(0)), None);
        assert_eq!(t("Alt").condition(Slot::Alternative(1)), Some("CONFIG_O"));
        // The checks read the schema as the build it describes.
        assert!(s
            .check_command("c", json!({"e": "b", "x": "y"}).as_object())
            .is_ok());
        // A schema without conditions (a live QEMU's) keeps none: nothing allocated.
        assert!(schema().types.iter().all(|t| t.conditions.is_empty()));
        assert!(schema().command("add").unwrap().condition.is_none());
    }

    #[test]
    fn bad_schemas_are_reported_not_panicked() {
        let bad = [
            json!(5),
            json!([{"name": "x"}]),
            json!([{"name": "x", "meta-type": "array", "element-type": "y"}]),
            json!([{"name": "c", "meta-type": "command", "arg-type": "str", "ret-type": "str"},
                   {"name": "str", "meta-type": "builtin", "json-type": "string"}]),
            json!([{"name": "x", "meta-type": "builtin", "json-type": "weird"}]),
        ];
        for b in bad {
            assert!(Schema::from_introspection(&b).is_err(), "{b}");
        }
    }
}
