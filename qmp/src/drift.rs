//! How far a QEMU (the *peer*) is from the schema some bindings were built for: what
//! each side has that the other lacks, as a value a program can log or test at start-up.
//!
//! Both sides are `query-qmp-schema` schemas, indexed by [`schema_check`](crate::schema_check)'s reader
//! (the crate's one reader of introspection): the peer's as the client keeps it
//! ([`PeerSchema`], [`Client::peer_schema`](crate::Client::peer_schema)), the
//! bindings' as they embed it (`qemu_qapi::SCHEMA_JSON`, feature `schema`, indexed once
//! by `qemu_qapi::bindings_schema`). [`Drift::between`] compares the two indexes
//! ([`Drift::between_json`] and [`Drift::between_str`] index JSON first) by
//! structure, because a live QEMU masks type
//! names (`"type": "235"`): the walk starts at every command (arguments, reply) and
//! event (data) and pairs the types it finds at the same place, through members,
//! union branches, array elements and alternatives (an alternative is known by the
//! JSON type that selects it). Each pair of types is compared once per command or
//! event.
//!
//! It reports, as [`Change`]s at a [`Path`] (`command query-block reply[] member
//! inserted member active`):
//!
//! * commands and events only one side has;
//! * members (of arguments, replies, event data and the types inside them), union
//!   branches, alternatives and enumeration values only one side has;
//! * members required on one side and optional on the other;
//! * a place whose type is of another kind (`str` against `int`, an object against an
//!   array).
//!
//! The change kinds have the names `qapi-codegen diff` gives them, reading the bindings
//! as the old schema and the peer as the new one ([`ChangeKind::Added`]: only the peer
//! has it; [`ChangeKind::Removed`]: only the bindings have it); the text says
//! "only in the bindings" / "only in the peer" rather than added or removed. Not
//! compared: features (`deprecated`), integer widths (introspection says `int` for
//! all), type names.
//!
//! # Conditions
//!
//! A QEMU build reports only what it compiled in; the bindings' schema has everything,
//! with an `"if"` member on items that exist only under a build condition
//! (`CONFIG_BLKIO`, `TARGET_S390X`). A change keeps that condition
//! ([`ChangeKind::Removed`]'s `condition`): "the peer's build left it out", not "the
//! peer's release lacks it". The index keeps them as it reads the schema
//! ([`schema_check`](crate::schema_check#build-conditions)).
//!
//! # Fully supported
//!
//! A command is *fully supported* by the peer ([`Drift::is_fully_supported`]) when the
//! peer has it and no difference in its arguments or its reply would make a call
//! through the bindings fail ([`Change::breaks`]):
//!
//! * in the arguments: every member, branch, alternative and enumeration value the
//!   bindings have, the peer has too, except those the bindings have only under a
//!   condition (members, branches and values the peer's build left out: the bindings
//!   never send them unless asked, and a member under a condition is optional in the
//!   Rust bindings even where the schema requires it); no member the bindings make
//!   optional or lack is required by the peer; no type differs;
//! * in the reply: every member the bindings require without a condition, the peer
//!   always sends (it has it, and not as optional); no alternative the bindings lack
//!   and no type differs. The
//!   peer may send more (members are ignored, enumeration values and branches kept as
//!   unknown ones).
//!
//! A command the bindings do not have is never fully supported
//! ([`Support::NotInBindings`]): they cannot call it.
//!
//! Event data follow the reply's rules. An enumeration on one side against `str` on
//! the other is listed but breaks nothing: both are JSON strings, and the bindings'
//! enumerations keep values they do not know.
//!
//! This is stricter than "the bindings' arguments fit the peer" in one way: a member
//! the bindings have is counted even when a program never sets it (an optional one),
//! because a program written against the bindings may. Call
//! [`Drift::command_changes`] to judge by the members a program uses.
//!
//! # Example
//!
//! ```
//! let bindings = serde_json::json!([
//!     {"name": "str", "meta-type": "builtin", "json-type": "string"},
//!     {"name": "q_empty", "meta-type": "object", "members": []},
//!     {"name": "Args", "meta-type": "object",
//!      "members": [{"name": "node-name", "type": "str"}]},
//!     {"name": "blockdev-del", "meta-type": "command", "arg-type": "Args",
//!      "ret-type": "q_empty"},
//!     {"name": "query-jobs", "meta-type": "command", "arg-type": "q_empty",
//!      "ret-type": "q_empty"}
//! ]);
//! // The peer masks type names and lacks query-jobs.
//! let peer = serde_json::json!([
//!     {"name": "str", "meta-type": "builtin", "json-type": "string"},
//!     {"name": "0", "meta-type": "object", "members": []},
//!     {"name": "1", "meta-type": "object",
//!      "members": [{"name": "node-name", "type": "str"}]},
//!     {"name": "blockdev-del", "meta-type": "command", "arg-type": "1", "ret-type": "0"}
//! ]);
//! let drift = qmp::drift::Drift::between_json(&bindings, &peer)?;
//! assert!(drift.is_fully_supported("blockdev-del"));
//! assert!(!drift.is_fully_supported("query-jobs"));
//! assert_eq!(drift.to_string(), "- command query-jobs: only in the bindings\n");
//!
//! // The same from indexes a program already has: the peer's as the client keeps it
//! // (`client.peer_schema().await?`), the bindings' indexed once.
//! let bindings = qmp::schema_check::Schema::from_introspection(&bindings)?;
//! let peer = qmp::PeerSchema::from_index(qmp::schema_check::Schema::from_introspection(&peer)?);
//! assert_eq!(qmp::drift::Drift::between(&bindings, &peer).to_string(), drift.to_string());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde_json::Value;

use crate::peer::PeerSchema;
use crate::schema_check::{Builtin, Kind, Schema, SchemaError, Slot, TypeEntry, TypeId};

/// One of the two schemas compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The schema the bindings were built from.
    Bindings,
    /// The schema the QEMU at the other end reports.
    Peer,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Bindings => "bindings",
            Side::Peer => "peer",
        })
    }
}

impl Side {
    /// `bindings'`, `peer's`.
    fn possessive(self) -> &'static str {
        match self {
            Side::Bindings => "bindings'",
            Side::Peer => "peer's",
        }
    }
}

/// Why a schema could not be compared: it is not `query-qmp-schema` output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {} schema is not query-qmp-schema output: entry {index} ({name}): {reason}",
    side.possessive()
)]
pub struct ReadError {
    /// Which schema.
    pub side: Side,
    /// Position of the offending entry in the array (0-based).
    pub index: usize,
    /// Its `name`, or `?` when it has none.
    pub name: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ReadError {
    /// The error indexing `side`'s schema gave ([`Schema`]'s reader), said of that side.
    pub fn new(side: Side, error: SchemaError) -> ReadError {
        ReadError {
            side,
            index: error.index,
            name: error.name,
            reason: error.reason,
        }
    }
}

/// Every difference between the bindings' schema and the peer's.
#[derive(Clone, Debug, Default)]
pub struct Drift {
    /// Every change at every path (a type several paths of one command reach is
    /// compared once, at the first; a type several commands reach, under each).
    all: Vec<Change>,
    bindings_commands: HashSet<String>,
    peer_commands: HashSet<String>,
}

/// One difference, at one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Where it is.
    pub path: Path,
    /// What differs there.
    pub kind: ChangeKind,
    part: Part,
    /// The pair of types whose comparison found it, and the length of the path at
    /// that pair: the same change seen under another command has the same key.
    key: Option<(usize, usize, usize)>,
    /// Not found before at another path.
    first: bool,
    /// A type change between an enumeration and `str`: both are JSON strings, and
    /// the bindings' enumerations keep values they do not know, so nothing breaks.
    strings: bool,
}

/// Where a change is on the wire: a command, an event, then the steps from it through
/// members, branches, elements and alternatives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Path(pub Vec<Segment>);

/// One step of a [`Path`] (as `qapi-codegen diff` names them).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A command (its arguments are its members).
    Command(String),
    /// An event (its data members are its members).
    Event(String),
    /// A member of an object.
    Member(String),
    /// A command's reply.
    Reply,
    /// The elements of an array (printed `[]`).
    Element,
    /// A union branch, by tag value.
    Branch(String),
    /// An alternative of an alternate, by the JSON type that selects it (`string`,
    /// `number`, `boolean`, `null`, `object`, `array`, `value`).
    Alternative(String),
    /// An enumeration value.
    Value(String),
}

/// What differs, going from the bindings to the peer (the names `qapi-codegen diff`
/// gives the same changes going from an old schema to a new one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Only the peer has it.
    Added {
        /// For a member: whether it is optional.
        optional: Option<bool>,
        /// The item's condition in the peer's schema (a live QEMU never says one).
        condition: Option<String>,
    },
    /// Only the bindings have it.
    Removed {
        /// For a member: whether it is optional in the bindings.
        optional: Option<bool>,
        /// The item's condition in the bindings' schema, when it has one (then the
        /// peer's build most likely left it out).
        condition: Option<String>,
    },
    /// The member is optional in the bindings and required by the peer.
    MadeRequired,
    /// The member is required in the bindings and optional in the peer.
    MadeOptional,
    /// The type at this place is of another kind.
    TypeChanged {
        /// The bindings' type: a builtin's name, `[T]` for arrays, the type's name, or
        /// its kind (`object`, `union`, `enum`, `alternate`).
        old: String,
        /// The peer's, described the same way (its kind: the peer masks names).
        new: String,
    },
}

/// Which part of a command or event a change is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The command or event itself (one side lacks it).
    Whole,
    /// A command's arguments.
    Arguments,
    /// A command's reply.
    Reply,
    /// An event's data.
    EventData,
}

/// How well the peer supports one command (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support<'a> {
    /// The peer has it, and nothing in its arguments or reply breaks.
    Full,
    /// The peer has it, but these differences break calls through the bindings.
    Partial(Vec<&'a Change>),
    /// The peer does not have it; the condition is the bindings' (`if`) when the
    /// command has one.
    Missing {
        /// The command's condition in the bindings.
        condition: Option<String>,
    },
    /// The bindings do not have it (whether the peer has it is in `in_peer`).
    NotInBindings {
        /// The peer has it.
        in_peer: bool,
    },
}

impl Support<'_> {
    /// True for [`Support::Full`].
    pub fn is_full(&self) -> bool {
        matches!(self, Support::Full)
    }
}

impl fmt::Display for Support<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Full => f.write_str("fully supported"),
            Support::Partial(v) => {
                write!(f, "not fully supported: {} difference", v.len())?;
                if v.len() != 1 {
                    f.write_str("s")?;
                }
                f.write_str(" break calls")?;
                if let Some(c) = v.first() {
                    write!(f, " (first: {c})")?;
                }
                Ok(())
            }
            Support::Missing { condition: None } => f.write_str("the peer does not have it"),
            Support::Missing { condition: Some(c) } => write!(
                f,
                "the peer does not have it (the bindings have it only if {c})"
            ),
            Support::NotInBindings { in_peer: true } => {
                f.write_str("the bindings do not have it (the peer does)")
            }
            Support::NotInBindings { in_peer: false } => {
                f.write_str("neither the bindings nor the peer have it")
            }
        }
    }
}

impl Drift {
    /// Compares the bindings' schema with the peer's, both already indexed: the
    /// bindings' as a [`Schema`] (e.g. `qemu_qapi::bindings_schema()`, their
    /// `SCHEMA_JSON` indexed once) or a [`PeerSchema`], the peer's as the client
    /// keeps it ([`Client::peer_schema`](crate::Client::peer_schema)), so a program
    /// that already asked the peer pays no second `query-qmp-schema`.
    pub fn between(bindings: &impl AsRef<Schema>, peer: &PeerSchema) -> Drift {
        compare(bindings.as_ref(), peer.index())
    }

    /// Compares the bindings' schema with the peer's; each is a `query-qmp-schema`
    /// reply (the array, or the whole `{"return": [...]}`), indexed here
    /// ([`Schema::from_introspection`]).
    ///
    /// # Errors
    /// When either is not `query-qmp-schema` output: not an array, an entry without a
    /// name or `meta-type`, a reference to a type the array does not define. The
    /// error says which side and which entry.
    pub fn between_json(bindings: &Value, peer: &Value) -> Result<Drift, ReadError> {
        let b =
            Schema::from_introspection(bindings).map_err(|e| ReadError::new(Side::Bindings, e))?;
        let p = Schema::from_introspection(peer).map_err(|e| ReadError::new(Side::Peer, e))?;
        Ok(compare(&b, &p))
    }

    /// [`Drift::between_json`] from JSON texts ([`Schema::from_json_str`]).
    ///
    /// # Errors
    /// As [`Drift::between_json`], and when a text is not JSON.
    pub fn between_str(bindings: &str, peer: &str) -> Result<Drift, ReadError> {
        let b = Schema::from_json_str(bindings).map_err(|e| ReadError::new(Side::Bindings, e))?;
        let p = Schema::from_json_str(peer).map_err(|e| ReadError::new(Side::Peer, e))?;
        Ok(compare(&b, &p))
    }

    /// True when the schemas do not differ (as far as this comparison looks).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Each difference once, in a stable order (commands, then events, each by name;
    /// within one, in the order of the walk): a difference inside a type that several
    /// commands or events reach is given at the first path only (once in arguments,
    /// once in replies and once in event data: whether it breaks differs). What
    /// `Display` prints, one line each.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.all.iter().filter(|c| c.first)
    }

    /// Every difference at every path that reaches it, also those [`Drift::changes`]
    /// gives once.
    pub fn all_changes(&self) -> impl Iterator<Item = &Change> {
        self.all.iter()
    }

    /// The differences under command `name` (its presence, its arguments and reply).
    pub fn command_changes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Change> {
        self.all.iter().filter(move |c| c.command() == Some(name))
    }

    /// The differences under event `name`.
    pub fn event_changes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Change> {
        self.all.iter().filter(move |c| c.event() == Some(name))
    }

    /// How well the peer supports command `name` (see the [module docs](self)).
    pub fn support(&self, name: &str) -> Support<'_> {
        if !self.bindings_commands.contains(name) {
            return Support::NotInBindings {
                in_peer: self.peer_commands.contains(name),
            };
        }
        if !self.peer_commands.contains(name) {
            let condition = self
                .all
                .iter()
                .filter(|c| c.command() == Some(name))
                .find_map(|c| match (&c.part, &c.kind) {
                    (Part::Whole, ChangeKind::Removed { condition, .. }) => Some(condition),
                    _ => None,
                })
                .cloned()
                .flatten();
            return Support::Missing { condition };
        }
        let breaking: Vec<&Change> = self
            .all
            .iter()
            .filter(|c| c.command() == Some(name) && c.breaks())
            .collect();
        if breaking.is_empty() {
            Support::Full
        } else {
            Support::Partial(breaking)
        }
    }

    /// True when the peer has command `name` and nothing in its arguments or reply
    /// breaks calls through the bindings (see the [module docs](self)).
    pub fn is_fully_supported(&self, name: &str) -> bool {
        self.support(name).is_full()
    }

    /// The commands the bindings have and the peer lacks, by name.
    pub fn commands_only_in_bindings(&self) -> Vec<&str> {
        only_in(&self.bindings_commands, &self.peer_commands)
    }

    /// The commands the peer has and the bindings lack, by name.
    pub fn commands_only_in_peer(&self) -> Vec<&str> {
        only_in(&self.peer_commands, &self.bindings_commands)
    }

    /// The commands both sides have whose arguments or reply differ in a way that
    /// breaks calls through the bindings, by name.
    pub fn commands_not_fully_supported(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .all
            .iter()
            .filter(|c| c.part != Part::Whole && c.breaks())
            .filter_map(Change::command)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// One line of counts: `212 differences: 20 commands only in the bindings (3 under
    /// a condition), 2 only in the peer, 6 with arguments or replies that break; 5
    /// events only in the bindings, 2 only in the peer`.
    pub fn summary(&self) -> String {
        let distinct = self.changes().count();
        let whole = |part_event: bool, removed: bool| {
            self.all.iter().filter(move |c| {
                c.part == Part::Whole
                    && c.event().is_some() == part_event
                    && matches!(c.kind, ChangeKind::Removed { .. }) == removed
            })
        };
        let conditional = whole(false, true)
            .filter(|c| {
                matches!(
                    &c.kind,
                    ChangeKind::Removed {
                        condition: Some(_),
                        ..
                    }
                )
            })
            .count();
        let mut s = format!(
            "{distinct} difference{}: {} command{} only in the bindings",
            plural(distinct),
            whole(false, true).count(),
            plural(whole(false, true).count()),
        );
        if conditional > 0 {
            s.push_str(&format!(" ({conditional} under a condition)"));
        }
        s.push_str(&format!(
            ", {} only in the peer, {} with arguments or replies that break; {} event{} only \
             in the bindings, {} only in the peer",
            whole(false, false).count(),
            self.commands_not_fully_supported().len(),
            whole(true, true).count(),
            plural(whole(true, true).count()),
            whole(true, false).count(),
        ));
        s
    }
}

/// The names in `a` and not in `b`, sorted.
fn only_in<'a>(a: &'a HashSet<String>, b: &HashSet<String>) -> Vec<&'a str> {
    let mut v: Vec<&str> = a
        .iter()
        .filter(|c| !b.contains(*c))
        .map(String::as_str)
        .collect();
    v.sort_unstable();
    v
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One line per difference ([`Drift::changes`]), each ending in a newline.
impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.changes() {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

impl Change {
    /// The command the change is under, if any.
    pub fn command(&self) -> Option<&str> {
        match self.path.0.first() {
            Some(Segment::Command(n)) => Some(n),
            _ => None,
        }
    }

    /// The event the change is under, if any.
    pub fn event(&self) -> Option<&str> {
        match self.path.0.first() {
            Some(Segment::Event(n)) => Some(n),
            _ => None,
        }
    }

    /// Which part of its command or event the change is in.
    pub fn part(&self) -> Part {
        self.part
    }

    /// `+` only in the peer, `-` only in the bindings, `~` different on both.
    pub fn sign(&self) -> char {
        match self.kind {
            ChangeKind::Added { .. } => '+',
            ChangeKind::Removed { .. } => '-',
            _ => '~',
        }
    }

    /// True when the change makes calls through the bindings fail: the command or
    /// event is missing from the peer, or a difference in its arguments, reply or
    /// data breaks them (the rules are in the [module docs](self)).
    pub fn breaks(&self) -> bool {
        let member = self
            .path
            .0
            .last()
            .is_some_and(|s| matches!(s, Segment::Member(_)));
        let alternative = self
            .path
            .0
            .last()
            .is_some_and(|s| matches!(s, Segment::Alternative(_)));
        match (self.part, &self.kind) {
            _ if self.strings => false,
            (Part::Whole, ChangeKind::Removed { .. }) => true,
            (Part::Whole, _) => false,
            (_, ChangeKind::TypeChanged { .. }) => true,
            // The bindings send what the peer does not know when asked, unless its
            // condition says the peer's build left it out (a required member under a
            // condition is optional in the Rust bindings too).
            (Part::Arguments, ChangeKind::Removed { condition, .. }) => condition.is_none(),
            (Part::Arguments, ChangeKind::Added { optional, .. }) => {
                member && *optional == Some(false)
            }
            (Part::Arguments, ChangeKind::MadeRequired) => true,
            (Part::Arguments, ChangeKind::MadeOptional) => false,
            // The bindings decode what the peer sends: a member they require must
            // come, unless it has a condition (the Rust field is then an `Option`:
            // builds that leave it out do not send it); what they do not know is
            // ignored or kept, but for an alternative.
            (
                _,
                ChangeKind::Removed {
                    optional,
                    condition,
                },
            ) => member && *optional == Some(false) && condition.is_none(),
            (_, ChangeKind::Added { .. }) => alternative,
            (_, ChangeKind::MadeOptional) => true,
            (_, ChangeKind::MadeRequired) => false,
        }
    }

    /// The condition of the item (the bindings' `if`), when it has one.
    pub fn condition(&self) -> Option<&str> {
        match &self.kind {
            ChangeKind::Added { condition, .. } | ChangeKind::Removed { condition, .. } => {
                condition.as_deref()
            }
            _ => None,
        }
    }
}

/// `- command blockdev-set-active: only in the bindings`, `+ command x-query-rdma: only
/// in the peer`, `- command query-block reply[] member inserted member active: only in
/// the bindings, required (breaks the reply)`, `~ command x member y: optional in the
/// bindings, required in the peer (breaks calls)`, `~ command x member y: type str in
/// the bindings, int in the peer (breaks calls)`, `- command blockdev-add member
/// driver value io_uring: only in the bindings (if CONFIG_BLKIO)`.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.sign(), self.path)?;
        let optional = |f: &mut fmt::Formatter<'_>, o: &Option<bool>| match o {
            Some(true) => f.write_str(", optional"),
            Some(false) => f.write_str(", required"),
            None => Ok(()),
        };
        match &self.kind {
            ChangeKind::Added {
                optional: o,
                condition,
            }
            | ChangeKind::Removed {
                optional: o,
                condition,
            } => {
                f.write_str(if matches!(self.kind, ChangeKind::Added { .. }) {
                    "only in the peer"
                } else {
                    "only in the bindings"
                })?;
                optional(f, o)?;
                if let Some(c) = condition {
                    write!(f, " (if {c})")?;
                }
            }
            ChangeKind::MadeRequired => {
                f.write_str("optional in the bindings, required in the peer")?
            }
            ChangeKind::MadeOptional => {
                f.write_str("required in the bindings, optional in the peer")?
            }
            ChangeKind::TypeChanged { old, new } => {
                write!(f, "type {old} in the bindings, {new} in the peer")?
            }
        }
        if self.part != Part::Whole && self.breaks() {
            f.write_str(match self.part {
                Part::Arguments => " (breaks calls)",
                Part::Reply => " (breaks the reply)",
                _ => " (breaks the event)",
            })?;
        }
        Ok(())
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

// ---- Reading the two indexes ----------------------------------------------------------

/// What the walk asks of a side's index ([`Schema`], the crate's one reader of
/// introspection): kinds, names and the keys that pair parts up.
#[derive(Clone, Copy)]
struct View<'a>(&'a Schema);

impl<'a> View<'a> {
    fn entry(self, id: TypeId) -> &'a TypeEntry {
        // Ids come from the index's own resolution: always in range.
        &self.0.types[id]
    }

    fn kind(self, id: TypeId) -> &'a Kind {
        &self.entry(id).kind
    }

    fn class(self, id: TypeId) -> u8 {
        match self.kind(id) {
            Kind::Builtin(_) => 0,
            Kind::Enum { .. } => 1,
            Kind::Array(_) => 2,
            Kind::Object { .. } => 3,
            Kind::Alternate(_) => 4,
        }
    }

    /// The JSON type that selects an alternative (enums are strings, `int` and
    /// `number` are numbers).
    fn alternative_key(self, id: TypeId) -> &'static str {
        match self.kind(id) {
            Kind::Builtin(Builtin::Int(_)) => "number",
            Kind::Builtin(b) => b.json_type(),
            Kind::Enum { .. } => "string",
            Kind::Array(_) => "array",
            Kind::Object { .. } => "object",
            Kind::Alternate(_) => "alternate",
        }
    }

    /// How a type reads in a `TypeChanged`: a builtin's name, `[T]`, the type's own
    /// name when the schema has names (not QEMU's masked numbers nor the generator's
    /// implicit `q_obj_…`), else its kind.
    fn describe(self, mut id: TypeId) -> String {
        let mut depth = 0;
        loop {
            let name = &self.entry(id).name;
            let named = !name.starts_with("q_")
                && !name.starts_with('[')
                && !name.bytes().all(|b| b.is_ascii_digit());
            let text = match self.kind(id) {
                Kind::Builtin(_) => name.clone(),
                Kind::Array(e) if depth < 16 => {
                    depth += 1;
                    id = *e;
                    continue;
                }
                Kind::Array(_) => "array".to_owned(),
                _ if named => name.clone(),
                Kind::Enum { .. } => "enum".to_owned(),
                Kind::Object { variants, .. } if !variants.is_empty() => "union".to_owned(),
                Kind::Object { .. } => "object".to_owned(),
                Kind::Alternate(_) => "alternate".to_owned(),
            };
            return format!("{}{text}{}", "[".repeat(depth), "]".repeat(depth));
        }
    }

    /// A string on the wire: `str` or an enumeration.
    fn is_string(self, id: TypeId) -> bool {
        matches!(
            self.kind(id),
            Kind::Builtin(Builtin::String) | Kind::Enum { .. }
        )
    }

    /// An object with no members and no branches (`q_empty`, the type of the
    /// branches a union leaves without members).
    fn is_empty_object(self, id: TypeId) -> bool {
        matches!(self.kind(id), Kind::Object { members, variants, .. } if members.is_empty() && variants.is_empty())
    }

    /// The condition of a part of type `id`, owned for a [`ChangeKind`].
    fn condition(self, id: TypeId, slot: Slot) -> Option<String> {
        self.entry(id).condition(slot).map(str::to_owned)
    }
}

/// A command's or event's types and condition, on one side.
struct Root<'a> {
    arg: TypeId,
    ret: Option<TypeId>,
    condition: &'a Option<String>,
}

impl<'a> Root<'a> {
    fn command(schema: &'a Schema, name: &str) -> Option<Root<'a>> {
        schema.command(name).map(|c| Root {
            arg: c.arg_type,
            ret: c.ret_type,
            condition: &c.condition,
        })
    }

    fn event(schema: &'a Schema, name: &str) -> Option<Root<'a>> {
        schema.event(name).map(|e| Root {
            arg: e.arg_type,
            ret: None,
            condition: &e.condition,
        })
    }
}

// ---- The walk -----------------------------------------------------------------------

/// A unit of work: the walk runs on an explicit stack rather than by recursion, so
/// that a long chain of nested types (a hostile peer's) cannot exhaust the thread's
/// stack; tasks are pushed in reverse so that changes come out in recursion's order.
enum Task {
    Emit(Change),
    Type {
        path: Path,
        part: Part,
        b: TypeId,
        p: TypeId,
        owner: Option<(TypeId, TypeId, usize)>,
    },
}

struct Walker<'a> {
    b: View<'a>,
    p: View<'a>,
    /// Pairs compared under the current command or event, by part (a type in both
    /// the arguments and the reply is compared under each: the rules differ).
    seen: HashSet<(Part, TypeId, TypeId)>,
    out: Vec<Change>,
}

fn compare(b: &Schema, p: &Schema) -> Drift {
    let mut w = Walker {
        b: View(b),
        p: View(p),
        seen: HashSet::new(),
        out: Vec::new(),
    };
    w.roots(b.command_names(), p.command_names(), true);
    w.roots(b.event_names(), p.event_names(), false);
    // A change inside a type several commands reach is shown once, at the first (per
    // part: whether it breaks depends on it).
    let mut shown = HashSet::new();
    for c in &mut w.out {
        c.first = match c.key {
            Some((bt, pt, at)) => {
                let rel = c.path.0[at.min(c.path.0.len())..].to_vec();
                shown.insert((c.part, bt, pt, rel, c.kind.clone()))
            }
            None => true,
        };
    }
    Drift {
        all: w.out,
        bindings_commands: b.command_names().map(str::to_owned).collect(),
        peer_commands: p.command_names().map(str::to_owned).collect(),
    }
}

fn change(
    path: Path,
    part: Part,
    kind: ChangeKind,
    owner: Option<(TypeId, TypeId, usize)>,
) -> Task {
    Task::Emit(Change {
        path,
        kind,
        part,
        key: owner,
        first: true,
        strings: false,
    })
}

fn presence(peer_only: bool, optional: Option<bool>, condition: Option<String>) -> ChangeKind {
    if peer_only {
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

/// Items of two lists matched by key, by position: the bindings' in order with
/// their match, then the peer's without one. Later duplicates of a key are ignored.
fn pair_up<'x, T>(
    b: &'x [T],
    p: &'x [T],
    key: impl Fn(&'x T) -> &'x str,
) -> (Vec<(usize, Option<usize>)>, Vec<usize>) {
    let mut by_key: HashMap<&str, usize> = HashMap::with_capacity(p.len());
    for (at, x) in p.iter().enumerate() {
        by_key.entry(key(x)).or_insert(at);
    }
    let mut seen_b = HashSet::with_capacity(b.len());
    let mut both = Vec::with_capacity(b.len());
    for (at, x) in b.iter().enumerate() {
        let k = key(x);
        if seen_b.insert(k) {
            both.push((at, by_key.get(k).copied()));
        }
    }
    let mut seen_p = HashSet::new();
    let only_p = p
        .iter()
        .enumerate()
        .filter(|(_, x)| {
            let k = key(x);
            !seen_b.contains(k) && seen_p.insert(k)
        })
        .map(|(at, _)| at)
        .collect();
    (both, only_p)
}

impl Walker<'_> {
    fn roots<'n>(
        &mut self,
        b: impl Iterator<Item = &'n str>,
        p: impl Iterator<Item = &'n str>,
        commands: bool,
    ) {
        let mut names: Vec<&str> = b.chain(p).collect();
        names.sort_unstable();
        names.dedup();
        let (bs, ps) = (self.b.0, self.p.0);
        let root = |s, n| {
            if commands {
                Root::command(s, n)
            } else {
                Root::event(s, n)
            }
        };
        for name in names {
            let path = Path(vec![if commands {
                Segment::Command(name.to_owned())
            } else {
                Segment::Event(name.to_owned())
            }]);
            self.seen.clear();
            let tasks = match (root(bs, name), root(ps, name)) {
                (Some(rb), Some(rp)) => {
                    let data = if commands {
                        Part::Arguments
                    } else {
                        Part::EventData
                    };
                    let mut t = vec![Task::Type {
                        path: path.clone(),
                        part: data,
                        b: rb.arg,
                        p: rp.arg,
                        owner: None,
                    }];
                    if let (Some(xb), Some(xp)) = (rb.ret, rp.ret) {
                        t.push(Task::Type {
                            path: path.with(Segment::Reply),
                            part: Part::Reply,
                            b: xb,
                            p: xp,
                            owner: None,
                        });
                    }
                    t
                }
                (Some(rb), None) => vec![change(
                    path,
                    Part::Whole,
                    presence(false, None, rb.condition.clone()),
                    None,
                )],
                (None, Some(rp)) => vec![change(
                    path,
                    Part::Whole,
                    presence(true, None, rp.condition.clone()),
                    None,
                )],
                (None, None) => Vec::new(),
            };
            self.run(tasks);
        }
    }

    fn run(&mut self, tasks: Vec<Task>) {
        let mut stack: Vec<Task> = tasks.into_iter().rev().collect();
        while let Some(task) = stack.pop() {
            match task {
                Task::Emit(c) => self.out.push(c),
                Task::Type {
                    path,
                    part,
                    b,
                    p,
                    owner,
                } => {
                    let next = self.types(path, part, b, p, owner);
                    stack.extend(next.into_iter().rev());
                }
            }
        }
    }

    fn types(
        &mut self,
        path: Path,
        part: Part,
        b: TypeId,
        p: TypeId,
        owner: Option<(TypeId, TypeId, usize)>,
    ) -> Vec<Task> {
        let (bi, pi) = (self.b, self.p);
        let mut out = Vec::new();
        if bi.class(b) != pi.class(p) {
            let kind = ChangeKind::TypeChanged {
                old: bi.describe(b),
                new: pi.describe(p),
            };
            let mut task = change(path, part, kind, owner);
            if let Task::Emit(c) = &mut task {
                c.strings = bi.is_string(b) && pi.is_string(p);
            }
            out.push(task);
            return out;
        }
        if let (Kind::Builtin(bb), Kind::Builtin(pb)) = (bi.kind(b), pi.kind(p)) {
            let (bj, pj) = (bb.json_type(), pb.json_type());
            // Every integer is `int` in introspection; names of other builtins say
            // more than their JSON type (`str` and an enum are both strings).
            if bj != pj || (bj != "int" && bi.entry(b).name != pi.entry(p).name) {
                let kind = ChangeKind::TypeChanged {
                    old: bi.describe(b),
                    new: pi.describe(p),
                };
                out.push(change(path, part, kind, owner));
            }
            return out;
        }
        // Each pair once per command or event and part: this also ends the walk on
        // recursive types.
        if !self.seen.insert((part, b, p)) {
            return out;
        }
        let owner = Some((b, p, path.0.len()));
        match (bi.kind(b), pi.kind(p)) {
            (Kind::Enum { values: bv, .. }, Kind::Enum { values: pv, .. }) => {
                let (both, only_p) = pair_up(bv, pv, String::as_str);
                for (x, y) in both {
                    if y.is_none() {
                        let at = path.with(Segment::Value(bv[x].clone()));
                        let kind = presence(false, None, bi.condition(b, Slot::Value(x)));
                        out.push(change(at, part, kind, owner));
                    }
                }
                for y in only_p {
                    let at = path.with(Segment::Value(pv[y].clone()));
                    let kind = presence(true, None, pi.condition(p, Slot::Value(y)));
                    out.push(change(at, part, kind, owner));
                }
            }
            (Kind::Array(eb), Kind::Array(ep)) => out.push(Task::Type {
                path: path.with(Segment::Element),
                part,
                b: *eb,
                p: *ep,
                owner,
            }),
            (
                Kind::Object {
                    members: bm,
                    variants: bv,
                    ..
                },
                Kind::Object {
                    members: pm,
                    variants: pv,
                    ..
                },
            ) => {
                let (both, only_p) = pair_up(bm, pm, |m| m.name.as_str());
                for (xi, yi) in both {
                    let x = &bm[xi];
                    let at = path.with(Segment::Member(x.name.clone()));
                    let Some(y) = yi.map(|yi| &pm[yi]) else {
                        let cond = bi.condition(b, Slot::Member(xi));
                        let kind = presence(false, Some(x.optional), cond);
                        out.push(change(at, part, kind, owner));
                        continue;
                    };
                    match (x.optional, y.optional) {
                        (true, false) => {
                            out.push(change(at.clone(), part, ChangeKind::MadeRequired, owner))
                        }
                        (false, true) => {
                            out.push(change(at.clone(), part, ChangeKind::MadeOptional, owner))
                        }
                        _ => {}
                    }
                    out.push(Task::Type {
                        path: at,
                        part,
                        b: x.ty,
                        p: y.ty,
                        owner,
                    });
                }
                for yi in only_p {
                    let y = &pm[yi];
                    let at = path.with(Segment::Member(y.name.clone()));
                    let cond = pi.condition(p, Slot::Member(yi));
                    out.push(change(
                        at,
                        part,
                        presence(true, Some(y.optional), cond),
                        owner,
                    ));
                }
                let (both, only_p) = pair_up(bv, pv, |(case, _)| case.as_str());
                for (xi, yi) in both {
                    let (case, xt) = &bv[xi];
                    let at = path.with(Segment::Branch(case.clone()));
                    match yi {
                        // A branch without members is only the tag value, reported
                        // on the tag's enumeration.
                        None if bi.is_empty_object(*xt) => {}
                        None => {
                            let cond = bi.condition(b, Slot::Variant(xi));
                            out.push(change(at, part, presence(false, None, cond), owner))
                        }
                        Some(yi) => out.push(Task::Type {
                            path: at,
                            part,
                            b: *xt,
                            p: pv[yi].1,
                            owner,
                        }),
                    }
                }
                for yi in only_p {
                    let (case, yt) = &pv[yi];
                    if !pi.is_empty_object(*yt) {
                        let at = path.with(Segment::Branch(case.clone()));
                        let cond = pi.condition(p, Slot::Variant(yi));
                        out.push(change(at, part, presence(true, None, cond), owner));
                    }
                }
            }
            (Kind::Alternate(ba), Kind::Alternate(pa)) => {
                // Keyed by the JSON type that selects them, which each side's own
                // schema says (so not with `pair_up`, which keys both lists alike).
                let mut by_key: HashMap<&str, TypeId> = HashMap::new();
                for a in pa {
                    by_key.entry(pi.alternative_key(*a)).or_insert(*a);
                }
                let mut keys_b = HashSet::new();
                for (xi, a) in ba.iter().enumerate() {
                    let k = bi.alternative_key(*a);
                    if !keys_b.insert(k) {
                        continue;
                    }
                    let at = path.with(Segment::Alternative(k.to_owned()));
                    match by_key.get(k) {
                        None => {
                            let cond = bi.condition(b, Slot::Alternative(xi));
                            out.push(change(at, part, presence(false, None, cond), owner))
                        }
                        Some(y) => out.push(Task::Type {
                            path: at,
                            part,
                            b: *a,
                            p: *y,
                            owner,
                        }),
                    }
                }
                let mut keys_p = HashSet::new();
                for (yi, a) in pa.iter().enumerate() {
                    let k = pi.alternative_key(*a);
                    if !keys_b.contains(k) && keys_p.insert(k) {
                        let at = path.with(Segment::Alternative(k.to_owned()));
                        let cond = pi.condition(p, Slot::Alternative(yi));
                        out.push(change(at, part, presence(true, None, cond), owner));
                    }
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Builtins and `q_empty`, then `extra`.
    fn schema(extra: Value) -> Value {
        let mut v = vec![
            json!({"name": "str", "meta-type": "builtin", "json-type": "string"}),
            json!({"name": "int", "meta-type": "builtin", "json-type": "int"}),
            json!({"name": "bool", "meta-type": "builtin", "json-type": "boolean"}),
            json!({"name": "q_empty", "meta-type": "object", "members": []}),
        ];
        v.extend(extra.as_array().cloned().unwrap_or_default());
        Value::Array(v)
    }

    fn cmd(name: &str, arg: &str, ret: &str) -> Value {
        json!({"name": name, "meta-type": "command", "arg-type": arg, "ret-type": ret})
    }

    fn lines(d: &Drift) -> Vec<String> {
        d.changes().map(|c| c.to_string()).collect()
    }

    fn drift(b: Value, p: Value) -> Drift {
        Drift::between_json(&schema(b), &schema(p)).expect("valid schemas")
    }

    #[test]
    fn equal_schemas_do_not_differ_whatever_the_type_names() {
        let b = json!([
            {"name": "Args", "meta-type": "object",
             "members": [{"name": "a", "type": "str"}, {"name": "b", "type": "int", "default": null}]},
            cmd("c", "Args", "q_empty"),
            {"name": "EV", "meta-type": "event", "arg-type": "Args"}
        ]);
        let p = json!([
            {"name": "7", "meta-type": "object",
             "members": [{"name": "a", "type": "str"}, {"name": "b", "type": "int", "default": null}]},
            cmd("c", "7", "q_empty"),
            {"name": "EV", "meta-type": "event", "arg-type": "7"}
        ]);
        let d = drift(b, p);
        assert!(d.is_empty(), "{d}");
        assert!(d.is_fully_supported("c"));
        assert_eq!(d.support("c"), Support::Full);
    }

    #[test]
    fn commands_and_events_only_one_side_has() {
        let b = json!([
            cmd("both", "q_empty", "q_empty"),
            cmd("old", "q_empty", "q_empty"),
            {"name": "dump-skeys", "meta-type": "command", "arg-type": "q_empty",
             "ret-type": "q_empty", "if": "TARGET_S390X"},
            {"name": "GONE", "meta-type": "event", "arg-type": "q_empty"}
        ]);
        let p = json!([
            cmd("both", "q_empty", "q_empty"),
            cmd("new", "q_empty", "q_empty"),
            {"name": "NEW", "meta-type": "event", "arg-type": "q_empty"}
        ]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "- command dump-skeys: only in the bindings (if TARGET_S390X)",
                "+ command new: only in the peer",
                "- command old: only in the bindings",
                "- event GONE: only in the bindings",
                "+ event NEW: only in the peer",
            ]
        );
        assert_eq!(d.commands_only_in_bindings(), ["dump-skeys", "old"]);
        assert_eq!(d.commands_only_in_peer(), ["new"]);
        assert_eq!(d.support("both"), Support::Full);
        assert_eq!(d.support("old"), Support::Missing { condition: None });
        assert_eq!(
            d.support("dump-skeys"),
            Support::Missing {
                condition: Some("TARGET_S390X".into())
            }
        );
        assert_eq!(d.support("new"), Support::NotInBindings { in_peer: true });
        assert_eq!(d.support("nope"), Support::NotInBindings { in_peer: false });
        assert!(!d.is_fully_supported("old"));
        assert_eq!(d.event_changes("GONE").count(), 1);
        assert!(d.summary().starts_with(
            "5 differences: 2 commands only in the bindings (1 under a condition), 1 only in the peer"
        ));
    }

    #[test]
    fn argument_members() {
        let b = json!([
            {"name": "A", "meta-type": "object", "members": [
                {"name": "gone-opt", "type": "str", "default": null},
                {"name": "gone-cond", "type": "str", "default": null, "if": "CONFIG_X"},
                {"name": "now-required", "type": "str", "default": null},
                {"name": "now-optional", "type": "str"},
                {"name": "retyped", "type": "str"}
            ]},
            cmd("c", "A", "q_empty")
        ]);
        let p = json!([
            {"name": "1", "meta-type": "object", "members": [
                {"name": "now-required", "type": "str"},
                {"name": "now-optional", "type": "str", "default": null},
                {"name": "retyped", "type": "int"},
                {"name": "new-opt", "type": "str", "default": null},
                {"name": "new-req", "type": "bool"}
            ]},
            cmd("c", "1", "q_empty")
        ]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "- command c member gone-opt: only in the bindings, optional (breaks calls)",
                "- command c member gone-cond: only in the bindings, optional (if CONFIG_X)",
                "~ command c member now-required: optional in the bindings, required in the peer (breaks calls)",
                "~ command c member now-optional: required in the bindings, optional in the peer",
                "~ command c member retyped: type str in the bindings, int in the peer (breaks calls)",
                "+ command c member new-opt: only in the peer, optional",
                "+ command c member new-req: only in the peer, required (breaks calls)",
            ]
        );
        let Support::Partial(breaking) = d.support("c") else {
            panic!("{:?}", d.support("c"));
        };
        assert_eq!(breaking.len(), 4);
        assert!(breaking.iter().all(|c| c.part() == Part::Arguments));
        assert_eq!(d.commands_not_fully_supported(), ["c"]);
        let kinds: Vec<&ChangeKind> = d.changes().map(|c| &c.kind).collect();
        assert_eq!(
            kinds[0],
            &ChangeKind::Removed {
                optional: Some(true),
                condition: None
            }
        );
        assert_eq!(kinds[2], &ChangeKind::MadeRequired);
        assert_eq!(kinds[3], &ChangeKind::MadeOptional);
        assert_eq!(
            kinds[4],
            &ChangeKind::TypeChanged {
                old: "str".into(),
                new: "int".into()
            }
        );
    }

    #[test]
    fn reply_members_break_only_what_decoding_needs() {
        let b = json!([
            {"name": "Info", "meta-type": "object", "members": [
                {"name": "req", "type": "str"},
                {"name": "opt", "type": "str", "default": null},
                {"name": "was-required", "type": "str"}
            ]},
            {"name": "[Info]", "meta-type": "array", "element-type": "Info"},
            cmd("q", "q_empty", "[Info]")
        ]);
        let p = json!([
            {"name": "3", "meta-type": "object", "members": [
                {"name": "was-required", "type": "str", "default": null},
                {"name": "more", "type": "str"}
            ]},
            {"name": "[3]", "meta-type": "array", "element-type": "3"},
            cmd("q", "q_empty", "[3]")
        ]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "- command q reply[] member req: only in the bindings, required (breaks the reply)",
                "- command q reply[] member opt: only in the bindings, optional",
                "~ command q reply[] member was-required: required in the bindings, optional in the peer (breaks the reply)",
                "+ command q reply[] member more: only in the peer, required",
            ]
        );
        assert!(!d.is_fully_supported("q"));
        assert!(d.changes().all(|c| c.part() == Part::Reply));
    }

    #[test]
    fn enumeration_values_branches_and_alternatives() {
        let b = json!([
            {"name": "Drv", "meta-type": "enum", "members": [
                {"name": "file"}, {"name": "rbd", "if": "CONFIG_RBD"}, {"name": "old"}, {"name": "bare"}]},
            {"name": "File", "meta-type": "object", "members": [{"name": "filename", "type": "str"}]},
            {"name": "Old", "meta-type": "object", "members": [{"name": "x", "type": "str"}]},
            {"name": "Rbd", "meta-type": "object", "members": [{"name": "pool", "type": "str"}]},
            {"name": "Opts", "meta-type": "object", "tag": "driver",
             "members": [{"name": "driver", "type": "Drv"}, {"name": "ref", "type": "Ref", "default": null}],
             "variants": [{"case": "file", "type": "File"}, {"case": "rbd", "type": "Rbd", "if": "CONFIG_RBD"},
                          {"case": "old", "type": "Old"}, {"case": "bare", "type": "q_empty"}]},
            {"name": "Ref", "meta-type": "alternate", "members": [{"type": "Opts"}, {"type": "str"}]},
            cmd("add", "Opts", "q_empty")
        ]);
        let p = json!([
            {"name": "10", "meta-type": "enum", "values": ["file", "new", "bare"]},
            {"name": "11", "meta-type": "object", "members": [{"name": "filename", "type": "str"}]},
            {"name": "12", "meta-type": "object", "members": [{"name": "y", "type": "str", "default": null}]},
            {"name": "13", "meta-type": "object", "tag": "driver",
             "members": [{"name": "driver", "type": "10"}, {"name": "ref", "type": "14", "default": null}],
             "variants": [{"case": "file", "type": "11"}, {"case": "new", "type": "12"},
                          {"case": "bare", "type": "q_empty"}]},
            {"name": "14", "meta-type": "alternate", "members": [{"type": "13"}, {"type": "bool"}]},
            cmd("add", "13", "q_empty")
        ]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "- command add member driver value rbd: only in the bindings (if CONFIG_RBD)",
                "- command add member driver value old: only in the bindings (breaks calls)",
                "+ command add member driver value new: only in the peer",
                // The alternative `object` is Opts itself: compared once already.
                "- command add member ref alternative string: only in the bindings (breaks calls)",
                "+ command add member ref alternative boolean: only in the peer",
                "- command add branch rbd: only in the bindings (if CONFIG_RBD)",
                "- command add branch old: only in the bindings (breaks calls)",
                "+ command add branch new: only in the peer",
            ]
        );
        let Support::Partial(breaking) = d.support("add") else {
            panic!("{:?}", d.support("add"));
        };
        // The value and branch `old` and the alternative `string`; not what the
        // peer's build left out (rbd).
        assert_eq!(breaking.len(), 3);
        assert!(breaking.iter().all(|c| c.condition().is_none()));
    }

    #[test]
    fn kinds_of_type_and_reply_alternatives() {
        let b = json!([
            {"name": "[str]", "meta-type": "array", "element-type": "str"},
            {"name": "Alt", "meta-type": "alternate", "members": [{"type": "str"}]},
            {"name": "R", "meta-type": "object", "members": [
                {"name": "list", "type": "[str]"}, {"name": "alt", "type": "Alt"}]},
            cmd("q", "q_empty", "R")
        ]);
        let p = json!([
            {"name": "[int]", "meta-type": "array", "element-type": "int"},
            {"name": "5", "meta-type": "alternate", "members": [{"type": "str"}, {"type": "int"}]},
            {"name": "6", "meta-type": "object", "members": [
                {"name": "list", "type": "str"}, {"name": "alt", "type": "5"}]},
            cmd("q", "q_empty", "6")
        ]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "~ command q reply member list: type [str] in the bindings, str in the peer (breaks the reply)",
                "+ command q reply member alt alternative number: only in the peer (breaks the reply)",
            ]
        );
        // An enumeration against `str`: both strings, and enumerations keep unknown
        // values; reported, not breaking.
        let b = json!([{"name": "JobType", "meta-type": "enum", "values": ["mirror"]},
                       {"name": "J", "meta-type": "object", "members": [{"name": "type", "type": "JobType"}]},
                       cmd("q", "J", "J")]);
        let p = json!([{"name": "4", "meta-type": "object", "members": [{"name": "type", "type": "str"}]},
                       cmd("q", "4", "4")]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            [
                "~ command q member type: type JobType in the bindings, str in the peer",
                "~ command q reply member type: type JobType in the bindings, str in the peer",
            ]
        );
        assert!(d.is_fully_supported("q"));
        // An array's elements.
        let b = json!([{"name": "[str]", "meta-type": "array", "element-type": "str"},
                       cmd("q", "q_empty", "[str]")]);
        let p = json!([{"name": "[int]", "meta-type": "array", "element-type": "int"},
                       cmd("q", "q_empty", "[int]")]);
        assert_eq!(
            lines(&drift(b, p)),
            ["~ command q reply[]: type str in the bindings, int in the peer (breaks the reply)"]
        );
    }

    #[test]
    fn a_type_several_commands_reach_is_shown_once_and_counted_for_each() {
        let shared_b = json!({"name": "Info", "meta-type": "object",
                              "members": [{"name": "active", "type": "bool"}]});
        let shared_p = json!({"name": "9", "meta-type": "object", "members": []});
        let b = json!([
            shared_b,
            cmd("a", "q_empty", "Info"),
            cmd("b", "q_empty", "Info")
        ]);
        let p = json!([shared_p, cmd("a", "q_empty", "9"), cmd("b", "q_empty", "9")]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            ["- command a reply member active: only in the bindings, required (breaks the reply)"]
        );
        assert_eq!(d.all_changes().count(), 2);
        assert!(!d.is_fully_supported("a"));
        assert!(!d.is_fully_supported("b"));
        assert_eq!(d.command_changes("b").count(), 1);
    }

    #[test]
    fn recursive_types_end() {
        let b = json!([
            {"name": "Node", "meta-type": "object", "members": [
                {"name": "children", "type": "[Node]"}, {"name": "x", "type": "str"}]},
            {"name": "[Node]", "meta-type": "array", "element-type": "Node"},
            cmd("tree", "q_empty", "Node")
        ]);
        let p = json!([
            {"name": "1", "meta-type": "object", "members": [
                {"name": "children", "type": "[1]"}]},
            {"name": "[1]", "meta-type": "array", "element-type": "1"},
            cmd("tree", "q_empty", "1")
        ]);
        assert_eq!(
            lines(&drift(b, p)),
            ["- command tree reply member x: only in the bindings, required (breaks the reply)"]
        );
    }

    #[test]
    fn event_data_follow_the_reply_rules() {
        let b = json!([
            {"name": "D", "meta-type": "object", "members": [{"name": "qom-path", "type": "str"}]},
            {"name": "BLOCK_IO_ERROR", "meta-type": "event", "arg-type": "D"}
        ]);
        let p = json!([{"name": "BLOCK_IO_ERROR", "meta-type": "event", "arg-type": "q_empty"}]);
        let d = drift(b, p);
        assert_eq!(
            lines(&d),
            ["- event BLOCK_IO_ERROR member qom-path: only in the bindings, required (breaks the event)"]
        );
        assert_eq!(d.changes().next().map(Change::part), Some(Part::EventData));
    }

    #[test]
    fn indexes_already_built_give_the_same_drift() {
        let b = schema(json!([
            {"name": "A", "meta-type": "object", "members": [
                {"name": "x", "type": "str", "default": null, "if": "CONFIG_X"},
                {"name": "y", "type": "str"}]},
            cmd("c", "A", "q_empty"),
            {"name": "s390", "meta-type": "command", "arg-type": "q_empty",
             "ret-type": "q_empty", "if": "TARGET_S390X"}
        ]));
        let p = schema(json!([
            {"name": "1", "meta-type": "object", "members": [{"name": "z", "type": "int"}]},
            cmd("c", "1", "q_empty")
        ]));
        let from_json = Drift::between_json(&b, &p).unwrap();
        let bindings = Schema::from_introspection(&b).unwrap();
        let peer = PeerSchema::from_json_str(&p.to_string()).unwrap();
        // The bindings as a `Schema` or as a `PeerSchema`, the peer as the client keeps it.
        for d in [
            Drift::between(&bindings, &peer),
            Drift::between(&PeerSchema::from_index(bindings.clone()), &peer),
        ] {
            assert_eq!(lines(&d), lines(&from_json));
            assert_eq!(d.all_changes().count(), from_json.all_changes().count());
            assert_eq!(d.summary(), from_json.summary());
        }
        assert_eq!(
            lines(&from_json),
            [
                "- command c member x: only in the bindings, optional (if CONFIG_X)",
                "- command c member y: only in the bindings, required (breaks calls)",
                "+ command c member z: only in the peer, required (breaks calls)",
                "- command s390: only in the bindings (if TARGET_S390X)",
            ]
        );
        let between_str = Drift::between_str(&b.to_string(), &p.to_string()).unwrap();
        assert_eq!(lines(&between_str), lines(&from_json));
    }

    #[test]
    fn bad_schemas_are_errors_naming_the_side_and_entry() {
        let good = schema(json!([]));
        let e = Drift::between_json(&good, &json!(5)).unwrap_err();
        assert_eq!(e.side, Side::Peer);
        let dangling = schema(json!([cmd("c", "Nope", "q_empty")]));
        let e = Drift::between_json(&dangling, &good).unwrap_err();
        assert_eq!(e.side, Side::Bindings);
        assert_eq!(e.name, "c");
        assert!(
            e.to_string().contains("arg-type 'Nope' is not defined"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("the bindings' schema is not query-qmp-schema output"),
            "{e}"
        );
        let e = Drift::between_str("[]", "{oops").unwrap_err();
        assert!(
            e.to_string().contains("peer") && e.reason.contains("not JSON"),
            "{e}"
        );
        assert!(e.to_string().starts_with("the peer's schema"), "{e}");
        // The whole reply is accepted too.
        let reply = json!({"return": good.clone()});
        assert!(Drift::between_json(&good, &reply).unwrap().is_empty());
    }
}
