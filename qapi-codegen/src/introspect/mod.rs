//! The introspection reader and writer: `query-qmp-schema` output ⇄ [`Schema`].
//!
//! A running QEMU describes its QMP interface with the command `query-qmp-schema`
//! (QEMU's `qapi/introspect.json`, produced by `scripts/qapi/introspect.py`): a flat
//! JSON array of `SchemaInfo` objects, one per command, event and used type.
//! [`read`] turns that array into the same [`Schema`] model the source reader builds, and
//! [`to_json`] does the inverse, producing what QEMU's generator would produce.
//!
//! # What introspection says, and what it does not
//!
//! QEMU flattens its schema for introspection: object types list all their members
//! (bases are merged in), every integer type becomes `int`, arrays are named `[T]`,
//! optional members carry `"default": null`, and conditions are evaluated at build time
//! (what is listed is compiled in). Docs, conditions, integer widths, bases and the
//! command flags other than `allow-oob` are not in the output. The model read here
//! leaves them unknown rather than guessing: no docs, no conditions, `int` for every
//! integer, `base: None`, and QEMU's defaults for `gen`, `success-response`,
//! `allow-preconfig` and `coroutine`. `boxed` is set for commands and events whose
//! argument type is a union, since QAPI only allows union arguments when boxed.
//!
//! # Names
//!
//! QEMU masks the names of most types as decimal numbers that change from one build
//! to the next. [`read`] derives readable names from where each type is used; see
//! [`names`](self#naming-rules) below. Names that are not masked (commands, events,
//! builtins, and every name of an unmasked dump) are kept as they are, and the mapping
//! from derived to masked names is kept in
//! [`Origin::Introspection`](crate::model::Origin::Introspection). Nothing sends
//! type names to QEMU (they are not on the wire); the mapping is there to relate a
//! model to the output it was read from.
//!
//! Derived names differ from the sources' (`StatusInfo` is `QueryStatusReply`), so
//! bindings built from them do not fit code written against bindings built from the
//! sources. [`recover_names`] gives the types back the names QEMU's sources give them,
//! from named reference schemas; see [below](self#names-from-reference-schemas).
//!
//! ## Naming rules
//!
//! Each masked type is named after its first use in a breadth-first walk that starts
//! from the commands and events in the order QEMU lists them (that order is the
//! schema's definition order, which does not depend on the masked numbers):
//!
//! | use | derived name |
//! |---|---|
//! | arguments of command `query-foo` | `QueryFooArg` |
//! | reply of command `query-foo` | `QueryFooReply` |
//! | data of event `BLOCK_JOB_READY` | `BlockJobReadyEventData` |
//! | member `bar-baz` of type `P` | `PBarBaz` |
//! | branch `qcow2` of union `P` | `PQcow2` |
//! | alternative of alternate `P` that is an object / enum / array | `PObject` / `PEnum` / `PArray` |
//! | element of an array used at a place named `X` | `X` (the array is `XList`) |
//! | a type no command or event reaches | `UnusedType`, `UnusedType2`, … |
//!
//! QEMU lists types that are used only under conditions its build left out (it
//! collects used types before evaluating conditions), so real output has unreached
//! types; they are named after the others, ordered by their content (member names and
//! the names of the types they use), not by their position or number.
//!
//! Alternatives of an alternate are named after their type (the names QEMU's source
//! gave them are not in the output).
//!
//! Words are split at every character that is not an ASCII letter or digit, and each
//! word is capitalised (all-caps words such as event names are lowered first). The
//! empty object QEMU uses for "no arguments" and "empty reply" is named `q_empty`, as
//! in the sources, and commands and events using it have no argument (or reply) type.
//! Arrays are named `ElementList`, as the source reader names them.
//!
//! A derived name never equals another entity's name and never equals another type's
//! name up to case and punctuation (so they stay distinct once converted to Rust
//! case); on a clash the next free `Name2`, `Name3`, … is taken, in walk order.
//!
//! ## Names from reference schemas
//!
//! [`recover_names`] (what `Config::name_references`, the build script's
//! `schema/qemu-system-*.json` / `schema/qemu-ga-*.json` and `qapi-codegen generate
//! --names-from` use) renames a model read here after one or more named schemas, such
//! as the definitions-only snapshots of QEMU releases in `schema/`:
//!
//! 1. The capture and each reference are walked side by side from the commands and
//!    events of the same name: arguments with arguments, replies with replies, event
//!    data with event data, then members by name, union branches by tag value, array
//!    elements, and alternatives of an alternate by the JSON kind that tells them
//!    apart. Each place pairs a capture type with a reference type.
//! 2. A pair counts only if both are the same kind of type (enum, object, alternate)
//!    and at least half of their items agree: enum values, member names, tag and
//!    branch names, alternatives' kinds, counted over both sides, leaving out the
//!    reference's conditional items that the capture lacks (its build may not have
//!    compiled them in). The walk goes on only through pairs that count.
//! 3. Each capture type takes the name of its best pair: best agreement, then the
//!    reference closest to the capture (its own release: fewest of its commands and
//!    events missing), then the earlier reference (pass the newest release first),
//!    then the most places, then walk order; a type renamed between releases so takes
//!    the name its own release's sources give it. A name already given, or one that would collide with another name
//!    up to case and punctuation, is skipped for the type's next pair.
//! 4. Where the reference's type is implicit (`q_obj_query-foo-arg`, an event's
//!    `q_obj_FOO-arg`), the capture's type takes that name and becomes implicit too,
//!    so the emitter treats both alike (command and event structs take their members;
//!    no type of that name is emitted). Arrays are renamed after their elements
//!    (`StatusInfoList`), a recovered alternate's alternatives take the reference's
//!    names, and a command or event whose argument and reply types now have the
//!    reference's names takes the reference's `boxed`, `gen`, `success-response`,
//!    `allow-preconfig` and `coroutine` (which introspection does not say), so that a
//!    command the sources box takes its argument type whole.
//! 5. Types no pair names keep their derived names; one that now collides with a
//!    recovered name takes the next free `Name2`, `Name3`, …. The masked-name mapping
//!    follows the new names.
//!
//! Types no command or event reaches (the `UnusedType`s: QEMU lists types used only
//! under conditions its build left out) have no place to be paired at. Each takes
//! the name of a reference type of exactly its shape (the same items, none missing),
//! not itself found at a place, when the first reference that has such a type has
//! only one; the types it uses are then paired from there. Otherwise it keeps its
//! derived name.
//!
//! # Errors
//!
//! Bad input gives an [`IntrospectError`] naming the file and the JSON path of the bad
//! entry (for example `$[12].members[3].type`); no input panics.

mod names;
mod parse;
mod read;
mod recover;
pub mod write;

pub use read::read;
pub use recover::{recover_names, Missed, Recovery};
pub use write::to_json;

use crate::model::Schema;

/// An error reading `query-qmp-schema` output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntrospectError {
    /// The text is not JSON.
    #[error("{file}:{line}:{column}: invalid JSON: {message}")]
    Json {
        /// The file name as given to [`read`].
        file: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser reported.
        message: String,
    },
    /// The JSON is not a valid `query-qmp-schema` reply.
    #[error("{file}: {path}: {message}")]
    Invalid {
        /// The file name as given to [`read`].
        file: String,
        /// JSON path of the offending value, e.g. `$[12].members[3].type` (`$` is the
        /// schema array, also when the input was a whole `{"return": [...]}` reply).
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl IntrospectError {
    /// The JSON path of the offending value, for [`IntrospectError::Invalid`].
    pub fn path(&self) -> Option<&str> {
        match self {
            IntrospectError::Invalid { path, .. } => Some(path),
            IntrospectError::Json { .. } => None,
        }
    }
}

/// True if `text` looks like `query-qmp-schema` output rather than QAPI source: a JSON
/// array whose first element is an object with a double-quoted key (`[{"name": …`) or
/// that is empty, or a JSON object whose first key is `"return"` (a whole QMP reply).
///
/// QAPI sources are sequences of objects with single-quoted strings, so they never
/// match, even malformed ones that start with `[` (QEMU's test case
/// `missing-array-rsqb.json` starts with `['Daisy,'`).
pub fn looks_like_introspection(text: &[u8]) -> bool {
    let rest = trim_ws(text);
    match rest.first() {
        Some(b'[') => {
            let rest = trim_ws(&rest[1..]);
            match rest.first() {
                Some(b']') => true,
                Some(b'{') => matches!(trim_ws(&rest[1..]).first(), Some(b'"' | b'}')),
                _ => false,
            }
        }
        Some(b'{') => trim_ws(&rest[1..]).starts_with(b"\"return\""),
        _ => false,
    }
}

fn trim_ws(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    &text[start..]
}

/// The largest file [`read_file`] reads (QEMU's own output is well under 1 MiB).
pub const MAX_FILE_SIZE: u64 = 256 << 20;

/// Reads a file of `query-qmp-schema` output; [`read`] with the file's name.
///
/// # Errors
///
/// An [`IntrospectError::Invalid`] with path `$` when the file cannot be read, is larger
/// than [`MAX_FILE_SIZE`] or is not UTF-8, otherwise what [`read`] reports.
pub fn read_file(path: &std::path::Path) -> Result<Schema, IntrospectError> {
    use std::io::Read;
    let file = path.display().to_string();
    let cannot_read = |e: std::io::Error| IntrospectError::Invalid {
        file: file.clone(),
        path: "$".into(),
        message: format!("cannot read: {e}"),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes))
        .map_err(cannot_read)?;
    if bytes.len() as u64 > MAX_FILE_SIZE {
        return Err(IntrospectError::Invalid {
            file,
            path: "$".into(),
            message: format!("file too large (limit {MAX_FILE_SIZE} bytes)"),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| IntrospectError::Invalid {
        file: file.clone(),
        path: "$".into(),
        message: format!("not UTF-8: {e}"),
    })?;
    read(&text, &file)
}
