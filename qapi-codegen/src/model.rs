//! The checked, resolved schema model.
//!
//! This is the one data structure between the readers and the emitter:
//!
//! ```text
//!   QAPI sources (qapi-schema.json + includes) --front end--+
//!                                                          +--> Schema --> emitter, dump, tools
//!   query-qmp-schema output ------------introspection-----+
//! ```
//!
//! It mirrors QEMU's own `scripts/qapi/schema.py` (`QAPISchema` and its entity classes)
//! so that the model can be dumped exactly as QEMU's test harness dumps it, and so that
//! QEMU's documentation of those classes applies here too. Every entity lives in one
//! arena (`Schema::entities`) in definition order and is referred to by [`EntityId`];
//! type references are resolved ids, never names.
//!
//! What a source cannot say is not guessed: a model read from `query-qmp-schema` has no
//! docs, no conditions and no integer widths; [`Schema::origin`] says which is which.

use std::collections::HashMap;
use std::sync::Arc;

/// Index of an entity in [`Schema::entities`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId(pub u32);

/// Index of a module in [`Schema::modules`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId(pub u32);

/// Index of a doc block in [`Schema::docs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocId(pub u32);

/// A position in a schema source file: the file name as it was given (the root file as
/// named by the caller, included files joined to their includer's folder, as QEMU does)
/// and a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    /// File name, as QEMU would print it in an error message.
    pub file: Arc<str>,
    /// 1-based line number.
    pub line: u32,
}

/// Where a model came from, and so what it knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Read from QAPI source files.
    Source {
        /// The schema dialect the sources were read as.
        dialect: Dialect,
    },
    /// Read from the output of `query-qmp-schema`. Such a model has no docs, no
    /// conditions (everything present is compiled in), builtin integer types of unknown
    /// width (`int`), and type names derived from where each type is used.
    Introspection {
        /// Derived readable name → the masked name QEMU used (e.g. `"123"`), for every
        /// type whose name was masked.
        masked_names: Vec<(String, String)>,
    },
}

/// The QAPI schema language version the sources were written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dialect {
    /// QEMU 3.1 to 6.1: simple unions, string `if` conditions (a list meaning "all").
    /// Doc comments are read tolerantly (the doc syntax changed many times).
    Legacy,
    /// QEMU 6.2 and later (the default). Doc comments of releases other than 10.0 may
    /// be read tolerantly: see [`crate::front::parse_sources`].
    Current,
}

/// A condition (`if`): the item exists only when the condition holds at QEMU's build.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IfCond {
    /// A configuration symbol, e.g. `CONFIG_VNC`.
    Name(String),
    /// All of these hold.
    All(Vec<IfCond>),
    /// At least one of these holds.
    Any(Vec<IfCond>),
    /// This does not hold.
    Not(Box<IfCond>),
}

/// A feature of an entity or member (`deprecated`, `unstable`, or a schema's own).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Feature name.
    pub name: String,
    /// Condition on the feature itself.
    pub ifcond: Option<IfCond>,
    /// Where it is defined.
    pub pos: Option<Pos>,
}

impl Feature {
    /// `deprecated`: the item will go away; QEMU's `-compat` can reject it.
    pub fn is_deprecated(&self) -> bool {
        self.name == "deprecated"
    }
    /// `unstable`: the item is experimental.
    pub fn is_unstable(&self) -> bool {
        self.name == "unstable"
    }
}

/// The whole checked schema.
#[derive(Clone, Debug)]
pub struct Schema {
    /// Every entity, in QEMU's definition order: builtins first (module `./builtin`),
    /// then the definitions of the sources with the implicit types QEMU creates
    /// (`q_obj_*-arg`, `q_obj_*-base`, `*List` arrays, …) where QEMU creates them.
    pub entities: Vec<Entity>,
    /// Modules in QEMU's order (`./builtin` first, then files as first included).
    pub modules: Vec<Module>,
    /// Every doc comment block, in source order (definition docs and free-form docs).
    pub docs: Vec<Doc>,
    /// Pragmas in force (collected from every `pragma` directive).
    pub pragma: Pragma,
    /// Where the model came from.
    pub origin: Origin,
    /// Entity name → id.
    pub by_name: HashMap<String, EntityId>,
    /// What was passed over while reading: doc comments that could not be understood
    /// and were dropped (only when the sources were read with tolerant docs, see
    /// [`crate::front::parse_sources`]). Empty for a strict read.
    pub warnings: Vec<Warning>,
    /// Which of several listed schemas have each item, when the model is their union
    /// ([`crate::union::merge`]); `None` for a model read from one schema.
    pub availability: Option<Availability>,
}

/// Something passed over while reading a schema, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where, when it refers to a place in a schema file.
    pub pos: Option<Pos>,
    /// What, e.g. `doc comment dropped: '=' heading must come first in a comment block`.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{}:{}: {}", p.file, p.line, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl Schema {
    /// The entity with this id.
    pub fn entity(&self, id: EntityId) -> &Entity {
        &self.entities[id.0 as usize]
    }
    /// The entity with this name.
    pub fn lookup(&self, name: &str) -> Option<&Entity> {
        self.by_name.get(name).map(|&id| self.entity(id))
    }
    /// The id of the entity with this name.
    pub fn lookup_id(&self, name: &str) -> Option<EntityId> {
        self.by_name.get(name).copied()
    }
    /// The doc block with this id.
    pub fn doc(&self, id: DocId) -> &Doc {
        &self.docs[id.0 as usize]
    }
    /// All commands, in definition order.
    pub fn commands(&self) -> impl Iterator<Item = (&Entity, &Command)> {
        self.entities.iter().filter_map(|e| match &e.kind {
            EntityKind::Command(c) => Some((e, c)),
            _ => None,
        })
    }
    /// All events, in definition order.
    pub fn events(&self) -> impl Iterator<Item = (&Entity, &Event)> {
        self.entities.iter().filter_map(|e| match &e.kind {
            EntityKind::Event(ev) => Some((e, ev)),
            _ => None,
        })
    }
}

/// Pragmas (`{ 'pragma': { ... } }`), merged over all files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pragma {
    /// `doc-required`: every definition must have a doc comment.
    pub doc_required: bool,
    /// `command-name-exceptions`: commands allowed to break the naming rules.
    pub command_name_exceptions: Vec<String>,
    /// `command-returns-exceptions`: commands allowed to return non-objects.
    pub command_returns_exceptions: Vec<String>,
    /// `documentation-exceptions`: definitions allowed to have undocumented members.
    pub documentation_exceptions: Vec<String>,
    /// `member-name-exceptions`: types allowed to have members breaking naming rules.
    pub member_name_exceptions: Vec<String>,
}

/// A module: one schema source file (or `./builtin`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Module name as QEMU prints it (`./builtin`, or the file name relative to the
    /// root schema's folder).
    pub name: String,
    /// What the module holds, in order.
    pub items: Vec<ModuleItem>,
}

/// One item of a module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleItem {
    /// An `include` of another module.
    Include(ModuleId),
    /// A definition (explicit or implicit) of this module.
    Entity(EntityId),
}

/// One definition: a type, a command or an event.
#[derive(Clone, Debug)]
pub struct Entity {
    /// The QAPI name (the wire name for commands and events).
    pub name: String,
    /// Where it is defined; `None` for builtins and for models read by introspection.
    pub pos: Option<Pos>,
    /// The module it belongs to.
    pub module: ModuleId,
    /// Its doc comment block, if any.
    pub doc: Option<DocId>,
    /// Condition, if any.
    pub ifcond: Option<IfCond>,
    /// Features, in definition order.
    pub features: Vec<Feature>,
    /// True for the types QEMU defines implicitly (`q_obj_*`, `*List`, `q_empty`,
    /// `QType`) and for builtins.
    pub implicit: bool,
    /// What it is.
    pub kind: EntityKind,
    /// The QEMU version that introduced it, as the `Since:` section of its doc comment
    /// says (`"0.14"`, or text such as `"2.2; 'Unknown' and all entries below since
    /// 2.4"`), or as a snapshot's marker repeats it; `None` when neither says.
    pub since: Option<String>,
    /// The module name QEMU's reference manual files its entry under: the middle part
    /// of the entry's anchor (`block-core` in `command-QMP-block-core.block_resize`).
    /// `None` when it has no entry there (no doc comment, or a model read from
    /// `query-qmp-schema`).
    ///
    /// It is the file name of a module without its extension, but not always that of
    /// the entity's own [`Entity::module`]: QEMU's `qapidoc.py` starts a module's
    /// section of the manual at the first doc comment of each file it has not seen
    /// yet, so the definitions a file makes after it included a new file stay in the
    /// section of the last file that started one (in QEMU 10.0, `BiosAtaTranslation`
    /// of `block.json` is filed under `block-core`). The source reader works this out
    /// from the order of the doc comments; a snapshot carries the result.
    pub manual_module: Option<String>,
}

impl Entity {
    /// True if the entity carries the `deprecated` feature.
    pub fn is_deprecated(&self) -> bool {
        self.features.iter().any(Feature::is_deprecated)
    }
    /// True if the entity carries the `unstable` feature.
    pub fn is_unstable(&self) -> bool {
        self.features.iter().any(Feature::is_unstable)
    }
}

/// The kinds of entity.
#[derive(Clone, Debug)]
pub enum EntityKind {
    /// A builtin type (`str`, `int8`, `any`, …).
    Builtin(Builtin),
    /// An enumeration.
    Enum(Enum),
    /// An array of another type (`FooList`, or `[Foo]` in the source).
    Array(Array),
    /// A struct or (flat) union.
    Object(Object),
    /// An alternate (decided by JSON type).
    Alternate(Alternate),
    /// A command.
    Command(Command),
    /// An event.
    Event(Event),
}

/// The builtin scalar types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `str`: a JSON string.
    Str,
    /// `number`: a JSON number (f64).
    Number,
    /// `int`: a signed 64-bit integer (from sources), or an integer of unknown width
    /// (from introspection).
    Int,
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `uint8`.
    Uint8,
    /// `uint16`.
    Uint16,
    /// `uint32`.
    Uint32,
    /// `uint64`.
    Uint64,
    /// `size`: an unsigned 64-bit byte count.
    Size,
    /// `bool`.
    Bool,
    /// `null`: only the JSON `null`.
    Null,
    /// `any`: any JSON value.
    Any,
}

impl Builtin {
    /// Every builtin QEMU predefines, in QEMU's order, with its QAPI name and JSON type.
    pub const ALL: [(Builtin, &'static str, &'static str); 15] = [
        (Builtin::Str, "str", "string"),
        (Builtin::Number, "number", "number"),
        (Builtin::Int, "int", "int"),
        (Builtin::Int8, "int8", "int"),
        (Builtin::Int16, "int16", "int"),
        (Builtin::Int32, "int32", "int"),
        (Builtin::Int64, "int64", "int"),
        (Builtin::Uint8, "uint8", "int"),
        (Builtin::Uint16, "uint16", "int"),
        (Builtin::Uint32, "uint32", "int"),
        (Builtin::Uint64, "uint64", "int"),
        (Builtin::Size, "size", "int"),
        (Builtin::Bool, "bool", "boolean"),
        (Builtin::Any, "any", "value"),
        (Builtin::Null, "null", "null"),
    ];

    /// The QAPI name (`int8`), from [`Builtin::ALL`].
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(x, _, _)| *x == self)
            .map_or("?", |(_, n, _)| n)
    }
}

/// An enumeration type.
#[derive(Clone, Debug)]
pub struct Enum {
    /// Values, in definition order.
    pub members: Vec<EnumMember>,
    /// `prefix`: overrides the C enum constant prefix (kept for completeness).
    pub prefix: Option<String>,
}

/// One enumeration value.
#[derive(Clone, Debug)]
pub struct EnumMember {
    /// The wire name.
    pub name: String,
    /// Condition, if any.
    pub ifcond: Option<IfCond>,
    /// Features of the value.
    pub features: Vec<Feature>,
    /// Where it is defined.
    pub pos: Option<Pos>,
}

/// An array type.
#[derive(Clone, Debug)]
pub struct Array {
    /// The element type.
    pub element: EntityId,
}

/// A struct, or a (flat) union when `branches` is set.
#[derive(Clone, Debug)]
pub struct Object {
    /// The base type (`base`), if any.
    pub base: Option<EntityId>,
    /// Members defined by this type itself (without the base's).
    pub local_members: Vec<Member>,
    /// All members: the base's first (recursively), then the local ones.
    pub members: Vec<Member>,
    /// For unions: the tag member and one branch per tag value.
    pub branches: Option<Variants>,
}

/// A member of an object type.
#[derive(Clone, Debug)]
pub struct Member {
    /// The wire name.
    pub name: String,
    /// The member's type.
    pub ty: EntityId,
    /// Optional members may be absent on the wire.
    pub optional: bool,
    /// Condition, if any.
    pub ifcond: Option<IfCond>,
    /// Features of the member.
    pub features: Vec<Feature>,
    /// Where it is defined.
    pub pos: Option<Pos>,
    /// The type that defines it (differs from the owner for base members): QEMU's
    /// `defined_in`.
    pub defined_in: String,
    /// Default value, when introspection reports one (never from sources).
    pub default: Option<crate::json::Value>,
}

impl Member {
    /// The implicit `type` member of alternate `alternate`, of type `ty` (`QType`).
    pub(crate) fn alternate_tag(ty: EntityId, alternate: &str) -> Member {
        Member {
            name: "type".to_owned(),
            ty,
            optional: false,
            ifcond: None,
            features: Vec::new(),
            pos: None,
            defined_in: alternate.to_owned(),
            default: None,
        }
    }
}

/// Branches of a union, or alternatives of an alternate.
#[derive(Clone, Debug)]
pub struct Variants {
    /// The tag member: the discriminator of a union (one of its members), or the
    /// implicit `type` member (of type `QType`) of an alternate.
    pub tag_member: Member,
    /// One per tag value (unions) or per alternative (alternates).
    pub variants: Vec<Variant>,
}

/// One branch or alternative.
#[derive(Clone, Debug)]
pub struct Variant {
    /// The tag value (unions) or the alternative's name (alternates).
    pub name: String,
    /// The branch's type.
    pub ty: EntityId,
    /// Condition, if any.
    pub ifcond: Option<IfCond>,
    /// Where it is defined.
    pub pos: Option<Pos>,
}

/// An alternate type: one of several types, decided by the JSON type of the value.
#[derive(Clone, Debug)]
pub struct Alternate {
    /// The alternatives.
    pub alternatives: Variants,
}

/// A command.
#[derive(Clone, Debug)]
pub struct Command {
    /// The arguments type (an object, possibly implicit `q_obj_NAME-arg`; a union when
    /// `boxed`), or `None` when the command takes no arguments.
    pub arg_type: Option<EntityId>,
    /// The reply type, or `None` when the reply is `{}`.
    pub ret_type: Option<EntityId>,
    /// `gen`: false when QEMU hand-writes the marshalling (kept for completeness).
    pub gen: bool,
    /// `success-response`: false when QEMU sends no reply on success.
    pub success_response: bool,
    /// `boxed`: arguments are given as one object type (possibly a union).
    pub boxed: bool,
    /// `allow-oob`: may be sent with `exec-oob`.
    pub allow_oob: bool,
    /// `allow-preconfig`: may be run in the preconfig state.
    pub allow_preconfig: bool,
    /// `coroutine`: runs in a coroutine inside QEMU.
    pub coroutine: bool,
}

/// An event.
#[derive(Clone, Debug)]
pub struct Event {
    /// The data type (an object, possibly implicit), or `None` when it has no data.
    pub arg_type: Option<EntityId>,
    /// `boxed`: the data is one object type.
    pub boxed: bool,
}

/// A doc comment block (`##` … `##`).
#[derive(Clone, Debug, Default)]
pub struct Doc {
    /// Where the block starts.
    pub pos: Option<Pos>,
    /// The documented symbol (`@name:` first line), or `None` for free-form docs.
    pub symbol: Option<String>,
    /// The body text, before any tagged section.
    pub body: DocSection,
    /// Member (argument) sections, in source order: name → text.
    pub args: Vec<(String, DocSection)>,
    /// Feature sections, in source order: name → text.
    pub features: Vec<(String, DocSection)>,
    /// The other sections (plain paragraphs after members, Returns, Errors, Since,
    /// TODO), in source order.
    pub sections: Vec<DocSection>,
}

/// One section of a doc block.
#[derive(Clone, Debug, Default)]
pub struct DocSection {
    /// What kind of section.
    pub kind: DocSectionKind,
    /// Its text, as QEMU keeps it (indentation normalised, no trailing newline).
    pub text: String,
    /// Where it starts.
    pub pos: Option<Pos>,
}

/// The kinds of doc section (QEMU's `QAPIDoc.Kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DocSectionKind {
    /// Untagged text.
    #[default]
    Plain,
    /// `@member:`.
    Member,
    /// A feature's `@name:` under `Features:`.
    Feature,
    /// `Returns:`.
    Returns,
    /// `Errors:`.
    Errors,
    /// `Since:`.
    Since,
    /// `TODO:`.
    Todo,
}

impl DocSectionKind {
    /// The name QEMU's dump prints (`Plain`, `Returns`, …).
    pub fn title(self) -> &'static str {
        match self {
            DocSectionKind::Plain => "Plain",
            DocSectionKind::Member => "Member",
            DocSectionKind::Feature => "Feature",
            DocSectionKind::Returns => "Returns",
            DocSectionKind::Errors => "Errors",
            DocSectionKind::Since => "Since",
            DocSectionKind::Todo => "Todo",
        }
    }
}

/// Which of the schemas a union model was merged from ([`crate::union::merge`]) have
/// each command, event, type, member, branch, alternative and enum value: the one
/// place this is kept (the emitter renders it into the docs and into the generated
/// `availability` table from here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Availability {
    releases: Vec<String>,
    items: std::collections::BTreeMap<(EntityId, Part), Presence>,
}

/// A part of an entity whose availability is recorded: the entity itself, or one of
/// its members, enum values, union branches or alternatives (by wire name).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The command, event or type itself.
    Whole,
    /// A member of an object type (base members included).
    Member(String),
    /// A value of an enumeration.
    Value(String),
    /// A branch of a union, by tag value.
    Branch(String),
    /// An alternative of an alternate, by name.
    Alternative(String),
}

/// A set of the listed releases: bit `i` is [`Availability::releases`]`[i]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Releases(u64);

impl Releases {
    /// The most schemas a union can list.
    pub const MAX: usize = 64;
    /// The empty set.
    pub const NONE: Releases = Releases(0);
    /// The set of release `i` alone (`i` < [`Releases::MAX`]).
    pub fn one(i: usize) -> Releases {
        Releases(1u64.checked_shl(i as u32).unwrap_or(0))
    }
    /// The first `n` releases.
    pub fn first(n: usize) -> Releases {
        (0..n).fold(Releases::NONE, |a, i| a | Releases::one(i))
    }
    /// True when release `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        !(self & Releases::one(i)).is_empty()
    }
    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// True when every release of `other` is in this set.
    pub fn includes(self, other: Releases) -> bool {
        self.0 & other.0 == other.0
    }
    /// The indices in the set, in increasing order.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..Releases::MAX).filter(move |&i| self.contains(i))
    }
}

impl std::ops::BitOr for Releases {
    type Output = Releases;
    fn bitor(self, o: Releases) -> Releases {
        Releases(self.0 | o.0)
    }
}

impl std::ops::BitOrAssign for Releases {
    fn bitor_assign(&mut self, o: Releases) {
        self.0 |= o.0;
    }
}

impl std::ops::Not for Releases {
    type Output = Releases;
    fn not(self) -> Releases {
        Releases(!self.0)
    }
}

impl std::ops::BitAnd for Releases {
    type Output = Releases;
    fn bitand(self, o: Releases) -> Releases {
        Releases(self.0 & o.0)
    }
}

/// Where an item is, as recorded in [`Availability`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presence {
    /// The releases that have the item.
    pub releases: Releases,
    /// For a member: the releases where it is required (a subset of `releases`).
    pub required: Releases,
    /// For a member, branch or alternative whose type is not the same in every release
    /// that has it: each type as the schema writes it (`int`, `[BlockInfo]`), with the
    /// releases that have it, in the order first seen. Empty when it is the same.
    pub types: Vec<(Releases, String)>,
}

impl Availability {
    /// An empty record over `releases` (the labels of the listed schemas, oldest
    /// first: "since" and "until" in the docs read this order).
    pub fn new(releases: Vec<String>) -> Availability {
        Availability {
            releases,
            items: std::collections::BTreeMap::new(),
        }
    }
    /// The labels of the listed schemas, oldest first.
    pub fn releases(&self) -> &[String] {
        &self.releases
    }
    /// Every release.
    pub fn all(&self) -> Releases {
        Releases::first(self.releases.len())
    }
    /// Records where part `part` of entity `id` is.
    pub fn set(&mut self, id: EntityId, part: Part, presence: Presence) {
        self.items.insert((id, part), presence);
    }
    /// Where part `part` of entity `id` is; `None` when not recorded (an item the
    /// merge did not make, such as a builtin or a generated array type).
    pub fn get(&self, id: EntityId, part: &Part) -> Option<&Presence> {
        // A borrowed key: `Part` is cheap to clone and the map is small per lookup.
        self.items.get(&(id, part.clone()))
    }
    /// The labels of the releases in `set`, oldest first.
    pub fn names(&self, set: Releases) -> Vec<&str> {
        set.indices()
            .filter_map(|i| self.releases.get(i).map(String::as_str))
            .collect()
    }
    /// Every recorded item, by entity and part.
    pub fn iter(&self) -> impl Iterator<Item = (&(EntityId, Part), &Presence)> {
        self.items.iter()
    }
    /// The recorded parts of entity `id` (the entity itself first), in order.
    pub fn parts(&self, id: EntityId) -> impl Iterator<Item = (&Part, &Presence)> {
        self.items
            .range((id, Part::Whole)..)
            .take_while(move |((i, _), _)| *i == id)
            .map(|((_, part), p)| (part, p))
    }
}
