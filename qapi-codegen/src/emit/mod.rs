//! The Rust emitter: [`Schema`] → formatted Rust source.
//!
//! [`generate`] is pure (no I/O): the CLI, build scripts ([`crate::Config`]) and tests
//! all call it. It works in two steps:
//!
//! 1. `Ctx::new` decides everything that needs the whole schema first: which types
//!    are emitted (every named type, and implicit ones only where something refers to
//!    them), their Rust names (collisions resolved in definition order, so the output
//!    is stable), and which members must be boxed because they close a cycle.
//! 2. `types`, `commands` and `events` turn entities into tokens, in definition
//!    order, and this module assembles them into `pub mod types`, `pub mod commands`
//!    and `pub mod events` (QAPI's single namespace can collide once converted: the
//!    `stop` command and the `STOP` event are both `Stop`), then formats the file with
//!    `prettyplease` under an `@generated` header (feature `format`; without it, a
//!    plain token printer lays it out: see `layout.rs`).
//!
//! The type mapping (each rule has a snapshot test under `tests/emit/`):
//!
//! | QAPI | Rust |
//! |------|------|
//! | `str` | `String` |
//! | `int8`…`int64`, `uint8`…`uint64`, `size` | `i8`…`i64`, `u8`…`u64`, `u64` |
//! | `int` | `i64` from sources; `i128` from `query-qmp-schema`, which does not say the width (so values above `i64::MAX` decode) |
//! | `number`, `bool`, `null`, `any` | `f64`, `bool`, `()`, `serde_json::Value` |
//! | `[T]` | `Vec<T>` |
//! | enum | `enum` with an `Unknown(String)` catch-all that keeps and re-serializes values a newer QEMU sends |
//! | struct | `struct`, optional members `Option` (omitted when `None`), `new(required…)` and a `with_*` setter per member, `#[non_exhaustive]`; serde and `Debug` (the wire JSON) through `qmp::runtime::Record` rather than derives, to keep the bindings quick to compile |
//! | building a value | `new` and the setters take `impl Into<T>` for strings, `any` and named types (and boxed members), so `"x"` passes for a `String` and an unboxed value for a `Box`; numbers, booleans and lists take `T` (an integer literal must keep its type). A type (reply or argument) whose every member can be empty, zero, unset or its enum's first value (as in protobuf) `#[derive(Default)]`s, so `T::default().with_a(..)` builds it without the positional `new`; commands do so only when all their arguments are optional, so a missing required argument stays a compile error |
//! | union | the base members plus a field named after the discriminator holding a `…Branch` enum (one variant per discriminator value, plus a catch-all), so the discriminator cannot disagree with the branch; `From<BranchType>` for the branch enum, and for the union when the discriminator is its only required member (`cycles.rs` says which branches are boxed; `From` boxes them) |
//! | names | an item, member or value whose Rust name differs from its wire name carries `#[doc(alias = "wire-name")]`, so rustdoc's search finds it by either |
//! | a member's docs | its QAPI doc text (from sources), then one line of what the schema says (`` QAPI member `size`: `int`, optional, deprecated (…). ``: type, optional or required, conditional, `deprecated`, `unstable`), then the link to the manual's entry of the type or command that documents it (`Ctx::field_doc_lines`) |
//! | alternate | an untagged `enum`, decided by the JSON kind of the value |
//! | optional member whose type admits `null` | `Option<T>` where `None` is absent and `Some(null)` is kept (three states) |
//! | command | a struct of its arguments implementing `qmp::Command` (unit struct without arguments; a newtype when `boxed`; extra properties kept when `gen: false`) |
//! | event | a struct implementing `qmp::Event`, and a variant of the `Event` enum (which implements `qmp::EventSet` and keeps unknown events in `Event::Unknown`) |
//! | `deprecated` / `unstable` / `if` | `#[deprecated]` / a doc note / a doc note, and the run-time `COMMANDS` and `EVENTS` tables |
//! | a union of several releases ([`crate::union`]) | a doc note on each item's releases (`Ctx::item_notes`), and `pub mod availability` with the run-time table (`availability.rs`) |

mod availability;
mod commands;
mod cycles;
pub mod docs;
mod events;
mod layout;
pub mod manual;
pub mod names;
mod schema_json;
mod types;

use std::collections::{BTreeSet, HashMap, HashSet};

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::model::{
    Builtin, Entity, EntityId, EntityKind, Feature, IfCond, Member, Origin, Schema,
};
pub use manual::Manual;

/// Options of the emitter.
#[derive(Clone, Debug)]
pub struct Options {
    /// Emit `commands::check_command_arguments` (validates a command's JSON arguments
    /// against its typed argument struct; used by test servers and tools). It makes the
    /// bindings crate build a little longer. Default: true.
    pub check_arguments: bool,
    /// The manual every command, event and type links to: to its entry when the model
    /// says where that is ([`Entity::manual_module`]), to the manual's page otherwise.
    /// Default: QEMU's QMP reference manual ([`Manual::qmp`]).
    pub manual: Manual,
    /// Convert the QAPI doc text into the generated docs (otherwise every item gets a
    /// one-line description and a link to the manual). Default: true.
    pub docs: bool,
    /// Emit `SCHEMA_JSON` at the top of the file: the schema itself in
    /// `query-qmp-schema` form with the real type names and each item's condition
    /// (see `emit/schema_json.rs`), for comparing the bindings with a live QEMU at run
    /// time. It adds the schema's text to the bindings (~0.3 MB for QEMU's system
    /// emulator). Default: false.
    pub schema_json: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            check_arguments: true,
            manual: Manual::qmp(),
            docs: true,
            schema_json: false,
        }
    }
}

/// Why the emitter could not produce code.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The generated tokens did not parse as Rust (a bug in the emitter; only seen
    /// when formatting, with the `format` feature).
    #[error("generated code does not parse as Rust (emitter bug): {0}")]
    Syntax(String),
    /// The model is inconsistent (a bug in a reader): an id that names the wrong kind
    /// of entity.
    #[error("inconsistent schema model: {0}")]
    Model(String),
}

/// Generates the bindings for `schema`: one Rust source file starting with an
/// `@generated` header. Same input, same output.
///
/// With the `format` feature (on by default; the command-line tool always has it) the
/// file is formatted with `prettyplease`. Without it, it is laid out by a plain,
/// much faster token printer (one statement, field or attribute per line; see
/// `emit/layout.rs`): the same tokens, other whitespace. Build scripts that only
/// compile the output turn `format` off to build faster.
///
/// # Errors
/// Only on an inconsistent model or an emitter bug ([`EmitError`]).
pub fn generate(schema: &Schema, opts: &Options) -> Result<String, EmitError> {
    #[cfg(feature = "format")]
    {
        let tokens = generate_tokens(schema, opts)?;
        let file: syn::File = syn::parse2(tokens).map_err(|e| EmitError::Syntax(e.to_string()))?;
        Ok(format!("{HEADER}{}", prettyplease::unparse(&file)))
    }
    #[cfg(not(feature = "format"))]
    generate_plain(schema, opts)
}

/// What [`generate`] makes without the `format` feature, whatever the features: the
/// bindings laid out by the plain token printer.
///
/// # Errors
/// As [`generate`].
pub fn generate_plain(schema: &Schema, opts: &Options) -> Result<String, EmitError> {
    let tokens = generate_tokens(schema, opts)?;
    let mut out = String::from(HEADER);
    layout::layout(tokens, &mut out);
    Ok(out)
}

const HEADER: &str =
    "// @generated by qapi-codegen from a QAPI schema. Do not edit: regenerate instead.\n\n";

/// Like [`generate`], but returns the unformatted tokens.
///
/// # Errors
/// As [`generate`].
pub fn generate_tokens(schema: &Schema, opts: &Options) -> Result<TokenStream, EmitError> {
    let ctx = Ctx::new(schema, opts)?;
    let types = types::emit(&ctx)?;
    let commands = commands::emit(&ctx)?;
    let events = events::emit(&ctx)?;
    let availability = availability::emit(&ctx);
    let schema_json = if opts.schema_json {
        schema_json::emit(schema)
    } else {
        TokenStream::new()
    };
    let lints = quote! {
        #![allow(deprecated)]
        #![allow(
            clippy::large_enum_variant,
            clippy::too_many_arguments,
            clippy::new_without_default,
            clippy::should_implement_trait,
            clippy::doc_lazy_continuation,
            clippy::doc_overindented_list_items,
            clippy::empty_docs
        )]
    };
    Ok(quote! {
        #schema_json
        /// The types of the schema: enums, structs, unions and alternates.
        ///
        /// A struct is built with `new` (its required members) and the `with_*`
        /// setters; one whose every member can be empty, zero or unset also
        /// implements `Default`, so `T::default().with_a(..).with_b(..)` builds it
        /// without the positional `new` (an enum's default is its first value, as in
        /// protobuf). A union converts from the value of a branch (`From`).
        pub mod types {
            #lints
            #types
        }
        /// One struct per command: its arguments, implementing `qmp::Command`.
        pub mod commands {
            #lints
            #commands
        }
        /// One struct per event, and the [`Event`](events::Event) enum over all of them.
        pub mod events {
            #lints
            #events
        }
        #availability
    })
}

/// Everything about the schema the item emitters need: names, what is emitted, what is
/// boxed.
pub(crate) struct Ctx<'a> {
    pub schema: &'a Schema,
    pub opts: &'a Options,
    /// Rust names of the types emitted into `types`.
    pub type_names: HashMap<EntityId, String>,
    /// Rust names of the generated branch enums of unions.
    pub branch_names: HashMap<EntityId, String>,
    /// Types emitted into `types`, in definition order.
    pub emitted: Vec<EntityId>,
    /// `(container, contained)` pairs that must be boxed to break a cycle.
    pub boxed: HashSet<(EntityId, EntityId)>,
    /// Struct types whose every member can have a `Default` (optional members are
    /// `None`), so that they derive it.
    pub defaultable: HashSet<EntityId>,
}

impl<'a> Ctx<'a> {
    fn new(schema: &'a Schema, opts: &'a Options) -> Result<Self, EmitError> {
        let reachable = reachable(schema)?;
        let mut namer = names::Namer::default();
        let mut type_names = HashMap::new();
        let mut branch_names = HashMap::new();
        let mut emitted = Vec::new();
        for (i, e) in schema.entities.iter().enumerate() {
            let id = EntityId(i as u32);
            let emit = match &e.kind {
                EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_) => {
                    !e.implicit || reachable.contains(&id)
                }
                _ => false,
            };
            if emit {
                emitted.push(id);
                type_names.insert(id, namer.unique(names::camel_ident(&e.name)));
            }
        }
        // Generated names yield to QAPI's.
        for &id in &emitted {
            let e = schema.entity(id);
            if let EntityKind::Object(o) = &e.kind {
                if o.branches.is_some() {
                    let name = namer.unique(format!("{}Branch", type_names[&id]));
                    branch_names.insert(id, name);
                }
            }
        }
        let boxed = cycles::boxed_edges(schema, &emitted);
        let defaultable = defaultable(schema, &emitted);
        Ok(Ctx {
            schema,
            opts,
            type_names,
            branch_names,
            emitted,
            boxed,
            defaultable,
        })
    }

    /// True if a value of type `id` has a `Default`: builtins and lists (empty, zero,
    /// `null`), enums (their first value, as in protobuf), and structs in
    /// [`Ctx::defaultable`]; unions and alternates have no natural default.
    pub fn has_default(&self, id: EntityId) -> bool {
        type_has_default(self.schema, &self.defaultable, id)
    }

    /// True if `new` and the setters take `impl Into<T>` for a member of type `ty`:
    /// strings, `any` and named types (so `"x"` passes for a `String`, and `From`
    /// conversions apply), but not numbers or booleans (an integer literal given to an
    /// `impl Into<u64>` would fall back to `i32`, which has no such conversion) nor
    /// lists.
    pub fn takes_into(&self, ty: EntityId) -> bool {
        matches!(
            self.schema.entity(ty).kind,
            EntityKind::Builtin(Builtin::Str | Builtin::Any)
                | EntityKind::Enum(_)
                | EntityKind::Object(_)
                | EntityKind::Alternate(_)
        )
    }

    /// The member's QAPI type as the schema writes it: `int`, `BlockdevRef`, `['str']`.
    pub fn qapi_type(&self, ty: EntityId) -> String {
        let e = self.schema.entity(ty);
        match &e.kind {
            EntityKind::Array(a) => format!("['{}']", self.qapi_type(a.element)),
            _ => e.name.clone(),
        }
    }

    /// The Rust type for a reference to entity `id`, written from module `from`
    /// (`types` refers to its siblings directly, the others through `super::types`).
    pub fn rust_type(&self, id: EntityId, from: Module) -> Result<TokenStream, EmitError> {
        let e = self.schema.entity(id);
        Ok(match &e.kind {
            EntityKind::Builtin(b) => match b {
                Builtin::Str => quote!(::std::string::String),
                Builtin::Number => quote!(f64),
                Builtin::Int => match self.schema.origin {
                    Origin::Introspection { .. } => quote!(i128),
                    Origin::Source { .. } => quote!(i64),
                },
                Builtin::Int8 => quote!(i8),
                Builtin::Int16 => quote!(i16),
                Builtin::Int32 => quote!(i32),
                Builtin::Int64 => quote!(i64),
                Builtin::Uint8 => quote!(u8),
                Builtin::Uint16 => quote!(u16),
                Builtin::Uint32 => quote!(u32),
                Builtin::Uint64 | Builtin::Size => quote!(u64),
                Builtin::Bool => quote!(bool),
                Builtin::Null => quote!(()),
                Builtin::Any => quote!(::serde_json::Value),
            },
            EntityKind::Array(a) => {
                let inner = self.rust_type(a.element, from)?;
                quote!(::std::vec::Vec<#inner>)
            }
            EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_) => {
                let name = self.type_names.get(&id).ok_or_else(|| {
                    EmitError::Model(format!("type `{}` is used but not emitted", e.name))
                })?;
                let ident = names::ident(name);
                match from {
                    Module::Types => quote!(#ident),
                    Module::Other => quote!(super::types::#ident),
                }
            }
            EntityKind::Command(_) | EntityKind::Event(_) => {
                return Err(EmitError::Model(format!(
                    "`{}` is used as a type but is a command or event",
                    e.name
                )))
            }
        })
    }

    /// The Rust type of a member of `owner` (boxed if it closes a cycle).
    pub fn member_type(
        &self,
        owner: Option<EntityId>,
        ty: EntityId,
        from: Module,
    ) -> Result<TokenStream, EmitError> {
        let t = self.rust_type(ty, from)?;
        Ok(match owner {
            Some(o) if self.boxed.contains(&(o, ty)) => quote!(::std::boxed::Box<#t>),
            _ => t,
        })
    }

    /// True if a JSON `null` is a value of type `id` (so an optional member of it needs
    /// three states).
    pub fn admits_null(&self, id: EntityId) -> bool {
        match &self.schema.entity(id).kind {
            EntityKind::Builtin(Builtin::Null | Builtin::Any) => true,
            EntityKind::Alternate(a) => a
                .alternatives
                .variants
                .iter()
                .any(|v| self.admits_null(v.ty)),
            _ => false,
        }
    }

    /// The doc text of an entity, as rustdoc attributes.
    pub fn entity_docs(&self, e: &Entity, what: &str) -> TokenStream {
        docs_attrs(&self.entity_doc_lines(e, what))
    }

    /// The doc lines of an entity: what it is; its doc text converted to Markdown (when
    /// the model has it and [`Options::docs`] is on); a link to its entry in the manual
    /// (to the manual's page when the model does not say where the entry is); the QEMU
    /// version that introduced it; notes on `unstable` and `if`.
    pub(crate) fn entity_doc_lines(&self, e: &Entity, what: &str) -> Vec<String> {
        let mut lines = vec![format!("QAPI {what} `{}`.", e.name)];
        let doc = e.doc.filter(|_| self.opts.docs).map(|d| self.schema.doc(d));
        if let Some(doc) = doc {
            let body = docs::to_markdown(&doc.body.text);
            if !body.is_empty() {
                lines.push(String::new());
                lines.extend(body);
            }
            for s in &doc.sections {
                use crate::model::DocSectionKind as K;
                let (title, text) = match s.kind {
                    // `Entity::since` has it, also without docs.
                    K::Since | K::Todo | K::Member | K::Feature => continue,
                    K::Returns => (Some("Returns"), &s.text),
                    K::Errors => (Some("Errors"), &s.text),
                    K::Plain => (None, &s.text),
                };
                let md = docs::to_markdown(text);
                if md.is_empty() {
                    continue;
                }
                lines.push(String::new());
                if let Some(t) = title {
                    lines.push(format!("# {t}"));
                    lines.push(String::new());
                }
                lines.extend(md);
            }
        }
        let has_text = doc.is_some_and(|d| !d.body.text.trim().is_empty());
        if let Some(link) = self.manual_link(e, has_text) {
            lines.push(String::new());
            lines.push(link);
        }
        if let Some(s) = e.since.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            lines.push(String::new());
            lines.push(format!("Since QEMU {}.", docs::inline(s)));
        }
        if e.is_unstable() {
            lines.push(String::new());
            lines.push(format!(
                "**Unstable:** this {what} is experimental (QAPI feature `unstable`)."
            ));
        }
        lines.extend(self.item_notes(
            e.ifcond.as_ref(),
            self.schema.lookup_id(&e.name),
            &crate::model::Part::Whole,
        ));
        lines
    }

    /// The doc lines every item (command, event, type, member, enum value, branch,
    /// alternative) ends with, written here alone: its condition (`if`), then, in
    /// bindings of several releases, which of them have it ([`availability::notes`]).
    /// `part` is [`crate::model::Part::Whole`] for a command, event or type.
    pub fn item_notes(
        &self,
        ifcond: Option<&IfCond>,
        owner: Option<EntityId>,
        part: &crate::model::Part,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(c) = ifcond {
            lines.push(String::new());
            // The whole item's note names QAPI's `if`; a part's (generated before
            // this was one place) does not, and the default bindings keep their text.
            let whole = matches!(part, crate::model::Part::Whole);
            lines.push(format!(
                "Only in QEMU builds where `{}` holds{}.",
                ifcond_str(c),
                if whole { " (QAPI `if`)" } else { "" }
            ));
        }
        lines.extend(availability::notes(self.schema, owner, part));
        lines
    }

    /// The line linking to `e`'s entry in the manual (to the manual's page when the
    /// model does not say where the entry is; nothing then if the item has its own
    /// text), with "for what it does" when the item has no text of its own.
    fn manual_link(&self, e: &Entity, has_text: bool) -> Option<String> {
        let manual = &self.opts.manual;
        let what_it_does = if has_text { "" } else { " for what it does" };
        match manual.entry_url(e) {
            Some(url) => Some(format!(
                "See [`{}` in {}]({url}){what_it_does}.",
                e.name, manual.title
            )),
            None if !has_text => Some(format!(
                "See [{}]({}){what_it_does}.",
                manual.title, manual.url
            )),
            None => None,
        }
    }

    /// The doc text of member `name` of the entity documented by `owner` (empty when
    /// it has none, or docs are off).
    fn member_text(&self, owner: &Entity, name: &str) -> Vec<String> {
        owner
            .doc
            .filter(|_| self.opts.docs)
            .map(|d| self.schema.doc(d))
            .and_then(|d| d.args.iter().find(|(n, _)| n == name))
            .map(|(_, s)| docs::to_markdown(&s.text))
            .unwrap_or_default()
    }

    /// The doc text of enum value or alternative `name` of `owner`, or `{what}
    /// \`name\`.` when it has none.
    pub fn member_doc_lines(&self, owner: &Entity, what: &str, name: &str) -> Vec<String> {
        let text = self.member_text(owner, name);
        if text.is_empty() {
            vec![format!("{what} `{name}`.")]
        } else {
            text
        }
    }

    /// The docs of a struct member (before its `if` and availability notes): its
    /// own text if it has one, then what the schema says of it, whatever the docs,
    /// in one line (`` QAPI member `size`: `int`, optional, deprecated. ``: its QAPI
    /// type, optional or required, conditional, and the features `deprecated` and
    /// `unstable`), then the link to the manual's entry of `link_to` (the type or
    /// command that documents it).
    pub fn field_doc_lines(&self, doc_owner: &Entity, link_to: &Entity, m: &Member) -> Vec<String> {
        let mut lines = self.member_text(doc_owner, &m.name);
        let has_text = !lines.is_empty();
        if has_text {
            lines.push(String::new());
        }
        let mut facts = vec![format!("`{}`", self.qapi_type(m.ty))];
        facts.push(match (m.optional, m.ifcond.is_some()) {
            (true, _) => "optional".to_owned(),
            // See `types::fields` for why.
            (false, true) => {
                "required (an `Option` here: absent where its condition does not hold)".to_owned()
            }
            (false, false) => "required".to_owned(),
        });
        if m.ifcond.is_some() {
            facts.push("conditional (QAPI `if`)".to_owned());
        }
        if m.features.iter().any(Feature::is_deprecated) {
            facts.push("deprecated (QAPI feature `deprecated`)".to_owned());
        }
        if m.features.iter().any(Feature::is_unstable) {
            facts.push("unstable (QAPI feature `unstable`)".to_owned());
        }
        lines.push(format!("QAPI member `{}`: {}.", m.name, facts.join(", ")));
        if let Some(link) = self.manual_link(link_to, has_text) {
            lines.push(String::new());
            lines.push(link);
        }
        lines
    }

    /// `#[deprecated(note = ...)]` if the features say so.
    pub fn deprecated_attr(&self, owner: Option<&Entity>, features: &[Feature]) -> TokenStream {
        if !features.iter().any(Feature::is_deprecated) {
            return TokenStream::new();
        }
        let note = owner
            .and_then(|o| o.doc)
            .filter(|_| self.opts.docs)
            .map(|d| self.schema.doc(d))
            .and_then(|d| d.features.iter().find(|(n, _)| n == "deprecated"))
            .map(|(_, s)| docs::to_markdown(&s.text).join(" "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "deprecated in QEMU (QAPI feature `deprecated`)".to_owned());
        quote!(#[deprecated(note = #note)])
    }
}

/// Which generated module code is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Module {
    Types,
    Other,
}

/// Doc lines → `#[doc = "..."]` attributes (one per line, with the leading space
/// rustdoc expects).
pub(crate) fn docs_attrs(lines: &[String]) -> TokenStream {
    let attrs = lines.iter().map(|l| {
        let l = if l.is_empty() {
            String::new()
        } else {
            format!(" {l}")
        };
        quote!(#[doc = #l])
    });
    quote!(#(#attrs)*)
}

/// A condition written like a Rust `cfg`: `CONFIG_A`, `all(A, B)`, `any(A, B)`, `not(A)`.
pub fn ifcond_str(c: &IfCond) -> String {
    match c {
        IfCond::Name(n) => n.clone(),
        IfCond::All(v) => format!(
            "all({})",
            v.iter().map(ifcond_str).collect::<Vec<_>>().join(", ")
        ),
        IfCond::Any(v) => format!(
            "any({})",
            v.iter().map(ifcond_str).collect::<Vec<_>>().join(", ")
        ),
        IfCond::Not(v) => format!("not({})", ifcond_str(v)),
    }
}

/// `Some("cond")` or `None` as tokens.
pub(crate) fn ifcond_tokens(c: Option<&IfCond>) -> TokenStream {
    match c {
        Some(c) => {
            let s = ifcond_str(c);
            quote!(::std::option::Option::Some(#s))
        }
        None => quote!(::std::option::Option::None),
    }
}

/// Every entity some emitted item refers to, starting from commands, events and named
/// types.
fn reachable(schema: &Schema) -> Result<BTreeSet<EntityId>, EmitError> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<EntityId> = Vec::new();
    for (i, e) in schema.entities.iter().enumerate() {
        let id = EntityId(i as u32);
        match &e.kind {
            EntityKind::Command(c) => {
                stack.extend(c.ret_type);
                if let Some(a) = c.arg_type {
                    push_args(schema, a, c.boxed, &mut stack);
                }
            }
            EntityKind::Event(ev) => {
                if let Some(a) = ev.arg_type {
                    push_args(schema, a, ev.boxed, &mut stack);
                }
            }
            EntityKind::Enum(_) | EntityKind::Object(_) | EntityKind::Alternate(_)
                if !e.implicit =>
            {
                stack.push(id)
            }
            _ => {}
        }
    }
    while let Some(id) = stack.pop() {
        if (id.0 as usize) >= schema.entities.len() {
            return Err(EmitError::Model(format!("dangling entity id {}", id.0)));
        }
        if !seen.insert(id) {
            continue;
        }
        match &schema.entity(id).kind {
            EntityKind::Array(a) => stack.push(a.element),
            EntityKind::Object(o) => {
                stack.extend(o.members.iter().map(|m| m.ty));
                if let Some(b) = &o.branches {
                    stack.push(b.tag_member.ty);
                    stack.extend(
                        b.variants
                            .iter()
                            .map(|v| v.ty)
                            .filter(|&t| !is_empty_branch(schema, t)),
                    );
                }
            }
            EntityKind::Alternate(a) => stack.extend(a.alternatives.variants.iter().map(|v| v.ty)),
            _ => {}
        }
    }
    Ok(seen)
}

/// A command's or event's arguments: the type itself when boxed, otherwise the types of
/// its members (they become fields of the command's own struct).
fn push_args(schema: &Schema, arg: EntityId, boxed: bool, stack: &mut Vec<EntityId>) {
    match &schema.entity(arg).kind {
        EntityKind::Object(o) if !boxed && o.branches.is_none() => {
            stack.extend(o.members.iter().map(|m| m.ty))
        }
        _ => stack.push(arg),
    }
}

/// True for the implicit empty object (`q_empty`) QEMU gives union branches that have
/// no members: such a branch becomes a unit variant.
pub(crate) fn is_empty_branch(schema: &Schema, id: EntityId) -> bool {
    let e = schema.entity(id);
    matches!(&e.kind, EntityKind::Object(o) if e.implicit && o.members.is_empty() && o.branches.is_none())
}

/// `match name { arms… _ => fallback }`, or just `fallback` when there are no arms (a
/// schema without events or commands), which clippy would flag as a needless match.
pub(crate) fn match_name(arms: &[TokenStream], fallback: TokenStream) -> TokenStream {
    if arms.is_empty() {
        quote!({
            let _ = name;
            #fallback
        })
    } else {
        quote! {
            match name {
                #(#arms)*
                _ => #fallback,
            }
        }
    }
}

/// An identifier from a converted name.
pub(crate) fn id(name: &str) -> Ident {
    names::ident(name)
}

/// `#[doc(alias = "wire")]` when the Rust name `rust` (raw or not) differs from the
/// wire name, so rustdoc's search finds the item by the name QEMU's docs use (rustdoc
/// refuses an alias equal to the name).
pub(crate) fn doc_alias(rust: &str, wire: &str) -> TokenStream {
    if rust.trim_start_matches("r#") == wire {
        TokenStream::new()
    } else {
        quote!(#[doc(alias = #wire)])
    }
}

/// The structs among `emitted` that can derive `Default`: every member optional or of
/// a type with a default. Computed as the least fixed point, so a struct that needs
/// itself (through a cycle of required members) gets none.
fn defaultable(schema: &Schema, emitted: &[EntityId]) -> HashSet<EntityId> {
    let mut out = HashSet::new();
    loop {
        let before = out.len();
        for &id in emitted {
            if out.contains(&id) {
                continue;
            }
            if let EntityKind::Object(o) = &schema.entity(id).kind {
                if o.branches.is_none()
                    && o.members.iter().all(|m| {
                        m.optional || m.ifcond.is_some() || type_has_default(schema, &out, m.ty)
                    })
                {
                    out.insert(id);
                }
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// See [`Ctx::has_default`].
fn type_has_default(schema: &Schema, structs: &HashSet<EntityId>, id: EntityId) -> bool {
    match &schema.entity(id).kind {
        EntityKind::Builtin(_) | EntityKind::Array(_) => true,
        EntityKind::Enum(en) => !en.members.is_empty(),
        EntityKind::Object(_) => structs.contains(&id),
        _ => false,
    }
}

/// `with_<field>` for a setter.
pub(crate) fn setter(field: &str) -> Ident {
    format_ident!("with_{}", field.trim_start_matches("r#"))
}
