//! libvirt's schema query strings ("probes"), answered over a [`Schema`] index.
//!
//! Reimplemented from a reading of libvirt's `src/qemu/qemu_qapi.c` (libvirt 11.3:
//! `virQEMUQAPISchemaPathGet`, `virQEMUQAPISchemaPathExists` and the traversal
//! functions `virQEMUQAPISchemaTraverse{,Object,Array,Command,Enum,Builtin,Alternate}`
//! and `virQEMUQAPISchemaTraverseHasObjectFeature`); no code is taken from it. The
//! probes libvirt really sends are the `virQEMUCapsQMPSchemaQueries` table of its
//! `src/qemu/qemu_capabilities.c`.
//!
//! # Grammar
//!
//! A query is components separated by `/`. The first names a command, an event or a
//! type (as the schema spells it: masked numbers for a live QEMU's types) and must
//! exist, or the answer is false. Each further component steps from the entry
//! reached so far, according to what that entry is:
//!
//! | at | component | means |
//! |---|---|---|
//! | command, event | `arg-type`, `ret-type` (any string member of the entry: also `name`, `meta-type`) | the type it names |
//! | command, event | `$feature` | true if the entry has the feature (last component) |
//! | object | `member` | the member's type |
//! | object | `*member` | the same, only if the member is optional (has `default`) |
//! | object | `+case` | the type of the union branch for discriminator value `case` |
//! | object | `$feature` | true if the *type* has the feature (last component) |
//! | array | (none consumed) | the element type: arrays are looked through |
//! | enum | `^value` | true if the value is listed (last, or followed by `$feature`) |
//! | enum | `^value/$feature` | true if the value is listed and has the feature |
//! | builtin | `!json-type` | true if its `json-type` is that (`string`, `int`, `null`…) |
//! | alternate | anything | each alternative in turn, from this component; the first that answers true (or fails) decides |
//!
//! A query that ends on an entry (no boolean component last) is true when the path
//! exists. Anything else is false: a modifier the entry cannot take (`^x` at an
//! object, `+x` at a command, `$x` at an enum…), a member, branch or key that is
//! not there. As in libvirt, a component whose first character is not an ASCII
//! letter loses that character before being matched: the modifiers above, and a
//! space to escape a name that starts with a non-letter (`" 9p"` for member `9p`).
//!
//! # Errors
//!
//! For every well-formed query the answer is libvirt's. Malformed queries are
//! refused up front, whatever the schema ([`ProbeError`] names the component and
//! its byte offset): an empty query or component, and a boolean component (`$`, `!`,
//! `^`) with followers (other than `^value/$feature`). libvirt reports the latter
//! only when its walk reaches that component and answers false otherwise, and reads
//! past the end of an empty component. A walk deeper than libvirt's limit (1000
//! steps, only possible with a self-referencing array type) is an error too.

use std::fmt;

use crate::schema_check::{CommandInfo, EventInfo, Kind, Schema, TypeId};

/// libvirt's limit on traversal steps (`virQEMUQAPISchemaTraverseContextValidateDepth`).
const MAX_DEPTH: usize = 1000;

/// Why a probe query could not be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeError {
    /// The whole query.
    pub query: String,
    /// Which component (0-based) is at fault.
    pub index: usize,
    /// Its byte offset in the query.
    pub offset: usize,
    /// What is wrong.
    pub kind: ProbeErrorKind,
}

/// What is wrong with a probe query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeErrorKind {
    /// The query is the empty string.
    Empty,
    /// A component is empty (`a//b`, a trailing `/`).
    EmptyComponent,
    /// A boolean component (`$feature`, `!type`, `^value`) is followed by more
    /// components (only `^value/$feature` may be).
    NotLast,
    /// The walk went deeper than 1000 steps: the schema refers to itself without
    /// consuming components (libvirt: "possible loop in QMP schema").
    Loop,
    /// A string member of an entry names nothing (e.g. `cmd/meta-type`: there is no
    /// entry named `command`; libvirt: "malformed QAPI schema").
    Dangling,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let component = self
            .query
            .get(self.offset..)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or("");
        let what = match self.kind {
            ProbeErrorKind::Empty => return write!(f, "empty schema probe"),
            ProbeErrorKind::EmptyComponent => "is empty",
            ProbeErrorKind::NotLast => {
                "is a test ($feature, !type, ^value) and must be the last component \
                 (or ^value followed by one $feature)"
            }
            ProbeErrorKind::Loop => "leads into a loop in the schema (over 1000 steps)",
            ProbeErrorKind::Dangling => "names an entry the schema does not have",
        };
        write!(
            f,
            "schema probe '{}': component {} ('{component}', byte {}) {what}",
            self.query, self.index, self.offset
        )
    }
}

impl std::error::Error for ProbeError {}

/// Answers `query` over `schema` as libvirt's `virQEMUQAPISchemaPathExists` would.
pub(crate) fn probe(schema: &Schema, query: &str) -> Result<bool, ProbeError> {
    let comps = parse(query)?;
    let Some(first) = lookup(schema, comps[0].text) else {
        return Ok(false);
    };
    Walk {
        schema,
        query,
        comps: &comps,
        depth: 0,
    }
    .traverse(first, 1)
}

/// One `/`-separated component and where it starts.
struct Comp<'q> {
    text: &'q str,
    offset: usize,
}

fn parse(query: &str) -> Result<Vec<Comp<'_>>, ProbeError> {
    let error = |index, offset, kind| ProbeError {
        query: query.to_owned(),
        index,
        offset,
        kind,
    };
    if query.is_empty() {
        return Err(error(0, 0, ProbeErrorKind::Empty));
    }
    let mut comps = Vec::with_capacity(8);
    let mut offset = 0;
    for (index, text) in query.split('/').enumerate() {
        if text.is_empty() {
            return Err(error(index, offset, ProbeErrorKind::EmptyComponent));
        }
        comps.push(Comp { text, offset });
        offset += text.len() + 1;
    }
    // Boolean components end the query; `^value` may take one `$feature` after it.
    for (i, c) in comps.iter().enumerate().skip(1) {
        let last = i + 1 == comps.len();
        let ok = match c.text.as_bytes()[0] {
            b'$' | b'!' => last,
            b'^' => last || (i + 2 == comps.len() && comps[i + 1].text.starts_with('$')),
            _ => true,
        };
        if !ok {
            return Err(error(i, c.offset, ProbeErrorKind::NotLast));
        }
    }
    Ok(comps)
}

/// An entry of the schema, as libvirt's hash table of entries by name holds them.
#[derive(Clone, Copy)]
enum Node<'s> {
    Command(&'s CommandInfo),
    Event(&'s EventInfo),
    Type(TypeId),
}

/// libvirt looks names up in one table of every entry (QEMU's names are unique
/// across commands, events and types).
fn lookup<'s>(schema: &'s Schema, name: &str) -> Option<Node<'s>> {
    if let Some(c) = schema.command(name) {
        return Some(Node::Command(c));
    }
    if let Some(e) = schema.event(name) {
        return Some(Node::Event(e));
    }
    schema.type_ids.get(name).map(|&t| Node::Type(t))
}

/// Splits libvirt's one-character modifier off a component: any first character
/// that is not an ASCII letter (`virQEMUQAPISchemaTraverseObject`: `g_ascii_isalpha`),
/// compared bytewise as libvirt does.
fn modifier(text: &str) -> (u8, &[u8]) {
    let b = text.as_bytes();
    if b[0].is_ascii_alphabetic() {
        (0, b)
    } else {
        (b[0], &b[1..])
    }
}

fn has_feature(features: &[String], name: &[u8]) -> bool {
    features.iter().any(|f| f.as_bytes() == name)
}

struct Walk<'s, 'q, 'c> {
    schema: &'s Schema,
    query: &'q str,
    comps: &'c [Comp<'q>],
    depth: usize,
}

impl<'s> Walk<'s, '_, '_> {
    fn error(&self, index: usize, kind: ProbeErrorKind) -> ProbeError {
        let index = index.min(self.comps.len() - 1);
        ProbeError {
            query: self.query.to_owned(),
            index,
            offset: self.comps[index].offset,
            kind,
        }
    }

    /// `virQEMUQAPISchemaTraverse`: at `node`, with components from `i` on left.
    fn traverse(&mut self, node: Node<'s>, i: usize) -> Result<bool, ProbeError> {
        if self.depth > MAX_DEPTH {
            return Err(self.error(i, ProbeErrorKind::Loop));
        }
        self.depth += 1;
        let Some(comp) = self.comps.get(i) else {
            return Ok(true);
        };
        match node {
            Node::Command(c) => self.entry(comp.text, i, &c.features, |key| match key {
                b"arg-type" => Some(Some(Node::Type(c.arg_type))),
                b"ret-type" => Some(c.ret_type.map(Node::Type)),
                b"name" => Some(Some(node)),
                b"meta-type" => Some(lookup(self.schema, "command")),
                _ => None,
            }),
            Node::Event(e) => self.entry(comp.text, i, &e.features, |key| match key {
                b"arg-type" => Some(Some(Node::Type(e.arg_type))),
                b"name" => Some(Some(node)),
                b"meta-type" => Some(lookup(self.schema, "event")),
                _ => None,
            }),
            Node::Type(t) => self.type_entry(t, i),
        }
    }

    /// `virQEMUQAPISchemaTraverseCommand` (commands and events). `key` maps a string
    /// member of the entry to what it names: `None` when the entry has no such string
    /// member (false), `Some(None)` when it names nothing (a broken schema).
    fn entry(
        &mut self,
        text: &str,
        i: usize,
        features: &[String],
        key: impl Fn(&[u8]) -> Option<Option<Node<'s>>>,
    ) -> Result<bool, ProbeError> {
        let (m, rest) = modifier(text);
        match m {
            b'^' | b'!' | b'+' | b'*' => Ok(false),
            b'$' => Ok(has_feature(features, rest)),
            _ => match key(rest) {
                None => Ok(false),
                Some(Some(next)) => self.traverse(next, i + 1),
                Some(None) => Err(self.error(i, ProbeErrorKind::Dangling)),
            },
        }
    }

    fn type_entry(&mut self, t: TypeId, i: usize) -> Result<bool, ProbeError> {
        let schema = self.schema;
        let entry = &schema.types[t];
        let text = self.comps[i].text;
        match &entry.kind {
            // virQEMUQAPISchemaTraverseObject
            Kind::Object {
                members, variants, ..
            } => {
                let (m, rest) = modifier(text);
                match m {
                    b'^' | b'!' => Ok(false),
                    b'$' => Ok(has_feature(&entry.features, rest)),
                    b'+' => match variants.iter().find(|(case, _)| case.as_bytes() == rest) {
                        Some((_, ty)) => self.traverse(Node::Type(*ty), i + 1),
                        None => Ok(false),
                    },
                    _ => match members.iter().find(|mb| mb.name.as_bytes() == rest) {
                        Some(mb) if m == b'*' && !mb.optional => Ok(false),
                        Some(mb) => self.traverse(Node::Type(mb.ty), i + 1),
                        None => Ok(false),
                    },
                }
            }
            // virQEMUQAPISchemaTraverseArray: looked through, nothing consumed.
            Kind::Array(elem) => self.traverse(Node::Type(*elem), i),
            // virQEMUQAPISchemaTraverseEnum: the modifier is not stripped here.
            Kind::Enum { values, features } => {
                let Some(value) = text.strip_prefix('^') else {
                    return Ok(false);
                };
                let feature = self.comps.get(i + 1).map(|c| &c.text.as_bytes()[1..]);
                let Some(at) = values.iter().position(|v| v == value) else {
                    return Ok(false);
                };
                Ok(match feature {
                    None => true,
                    // Only QEMU 6.2's `members` form carries value features.
                    Some(f) => features.get(at).is_some_and(|fs| has_feature(fs, f)),
                })
            }
            // virQEMUQAPISchemaTraverseBuiltin
            Kind::Builtin(b) => Ok(text
                .strip_prefix('!')
                .is_some_and(|json| json == b.json_type())),
            // virQEMUQAPISchemaTraverseAlternate: each alternative from the same
            // place (depth included); the first answer that is not false decides.
            Kind::Alternate(alts) => {
                let depth = self.depth;
                for alt in alts {
                    self.depth = depth;
                    match self.traverse(Node::Type(*alt), i) {
                        Ok(false) => {}
                        decided => return decided,
                    }
                }
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small schema in QEMU's introspection form, with one of each construct the
    /// grammar walks (type names unmasked so the tests read well).
    fn schema() -> Schema {
        Schema::from_introspection(&json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "null", "meta-type": "builtin", "json-type": "null"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "Driver", "meta-type": "enum", "values": ["file", "nbd"],
             "members": [{"name": "file"}, {"name": "nbd", "features": ["deprecated"]}]},
            {"name": "Aio", "meta-type": "enum", "values": ["threads", "native"]},
            {"name": "FileOpts", "meta-type": "object", "features": ["dynamic-auto-read-only"],
             "members": [{"name": "filename", "type": "str"},
                         {"name": "aio", "type": "Aio", "default": null}]},
            {"name": "NbdOpts", "meta-type": "object",
             "members": [{"name": "server", "type": "str"}]},
            {"name": "Options", "meta-type": "object", "tag": "driver",
             "members": [{"name": "driver", "type": "Driver"},
                         {"name": "node-name", "type": "str", "default": null},
                         {"name": "9p", "type": "str", "default": null},
                         {"name": "backing", "type": "RefOrNull", "default": null}],
             "variants": [{"case": "file", "type": "FileOpts"},
                          {"case": "nbd", "type": "NbdOpts"}]},
            {"name": "RefOrNull", "meta-type": "alternate",
             "members": [{"type": "Options"}, {"type": "str"}, {"type": "null"}]},
            {"name": "Status", "meta-type": "object",
             "members": [{"name": "status", "type": "Driver"},
                         {"name": "names", "type": "[str]"}]},
            {"name": "[str]", "meta-type": "array", "element-type": "str"},
            {"name": "[Status]", "meta-type": "array", "element-type": "Status"},
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "Options",
             "ret-type": "0", "features": ["json-cli"]},
            {"name": "query-status", "meta-type": "command", "arg-type": "0",
             "ret-type": "[Status]", "allow-oob": true},
            {"name": "RTC_CHANGE", "meta-type": "event", "arg-type": "Status",
             "features": ["unstable"]}
        ]))
        .unwrap()
    }

    fn ask(q: &str) -> Result<bool, ProbeErrorKind> {
        probe(&schema(), q).map_err(|e| e.kind)
    }

    #[test]
    fn names_commands_events_and_types() {
        assert_eq!(ask("blockdev-add"), Ok(true));
        assert_eq!(ask("RTC_CHANGE"), Ok(true));
        assert_eq!(ask("Options"), Ok(true), "libvirt's table holds types too");
        assert_eq!(ask("nonexistent"), Ok(false));
        assert_eq!(ask("nonexistent/$x/y"), Err(ProbeErrorKind::NotLast));
    }

    #[test]
    fn command_and_event_keys() {
        assert_eq!(ask("blockdev-add/arg-type"), Ok(true));
        assert_eq!(ask("blockdev-add/ret-type"), Ok(true));
        assert_eq!(ask("RTC_CHANGE/arg-type/status"), Ok(true));
        assert_eq!(
            ask("RTC_CHANGE/ret-type"),
            Ok(false),
            "events have no ret-type"
        );
        assert_eq!(
            ask("query-status/allow-oob"),
            Ok(false),
            "not a string member"
        );
        assert_eq!(ask("query-status/bogus"), Ok(false));
        // Any string member of the entry: `name` leads back to the entry itself.
        assert_eq!(ask("query-status/name/ret-type"), Ok(true));
        // `meta-type` names `command`, which is no entry: libvirt's "malformed schema".
        assert_eq!(ask("query-status/meta-type"), Err(ProbeErrorKind::Dangling));
        // Modifiers a command cannot take answer false.
        for q in ["^arg-type", "!arg-type", "+arg-type", "*arg-type"] {
            assert_eq!(ask(&format!("blockdev-add/{q}")), Ok(false), "{q}");
        }
        // Any other non-letter is dropped (libvirt's escape), so ` arg-type` works.
        assert_eq!(ask("blockdev-add/ arg-type/driver"), Ok(true));
        assert_eq!(ask("blockdev-add/-arg-type/driver"), Ok(true));
    }

    #[test]
    fn features() {
        assert_eq!(ask("blockdev-add/$json-cli"), Ok(true));
        assert_eq!(ask("blockdev-add/$nope"), Ok(false));
        assert_eq!(ask("RTC_CHANGE/$unstable"), Ok(true));
        assert_eq!(ask("query-status/$json-cli"), Ok(false));
        // At an object: the type's features, not the member's.
        assert_eq!(
            ask("blockdev-add/arg-type/+file/$dynamic-auto-read-only"),
            Ok(true)
        );
        assert_eq!(
            ask("blockdev-add/arg-type/+nbd/$dynamic-auto-read-only"),
            Ok(false)
        );
        assert_eq!(
            ask("blockdev-add/$json-cli/arg-type"),
            Err(ProbeErrorKind::NotLast)
        );
    }

    #[test]
    fn members_optional_members_and_branches() {
        assert_eq!(ask("blockdev-add/arg-type/node-name"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/*node-name"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/*driver"), Ok(false), "required");
        assert_eq!(ask("blockdev-add/arg-type/driver"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/nonexistent"), Ok(false));
        assert_eq!(ask("blockdev-add/arg-type/+file"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/+file/filename"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/+file/*aio"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/+nbd/filename"), Ok(false));
        assert_eq!(ask("blockdev-add/arg-type/+nonexistent"), Ok(false));
        // A branch's member is not a member of the union itself.
        assert_eq!(ask("blockdev-add/arg-type/filename"), Ok(false));
        // Enum and builtin tests answer false at an object.
        assert_eq!(ask("blockdev-add/arg-type/^driver"), Ok(false));
        assert_eq!(ask("blockdev-add/arg-type/!object"), Ok(false));
        // A name starting with a non-letter needs libvirt's space escape.
        assert_eq!(ask("blockdev-add/arg-type/ 9p"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/9p"), Ok(false), "'9' is dropped");
    }

    #[test]
    fn enum_values_and_their_features() {
        assert_eq!(ask("blockdev-add/arg-type/driver/^file"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/driver/^ssh"), Ok(false));
        assert_eq!(ask("blockdev-add/arg-type/+file/aio/^native"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/+file/aio/^io_uring"), Ok(false));
        assert_eq!(
            ask("blockdev-add/arg-type/driver/^nbd/$deprecated"),
            Ok(true)
        );
        assert_eq!(
            ask("blockdev-add/arg-type/driver/^file/$deprecated"),
            Ok(false)
        );
        // The `values`-only form (before QEMU 6.2) has no value features.
        assert_eq!(
            ask("blockdev-add/arg-type/+file/aio/^native/$deprecated"),
            Ok(false)
        );
        // Without `^`, an enum answers false (the modifier is not stripped here).
        assert_eq!(ask("blockdev-add/arg-type/driver/file"), Ok(false));
        assert_eq!(ask("blockdev-add/arg-type/driver/ ^file"), Ok(false));
        assert_eq!(
            ask("blockdev-add/arg-type/driver/^file/x"),
            Err(ProbeErrorKind::NotLast)
        );
        assert_eq!(
            ask("blockdev-add/arg-type/driver/^nbd/$deprecated/x"),
            Err(ProbeErrorKind::NotLast)
        );
        assert_eq!(
            ask("blockdev-add/arg-type/driver/^nbd/$a/$b"),
            Err(ProbeErrorKind::NotLast)
        );
    }

    #[test]
    fn builtins_arrays_and_alternates() {
        // Arrays are looked through: ret-type [Status] reads as Status.
        assert_eq!(ask("query-status/ret-type/status/^nbd"), Ok(true));
        assert_eq!(ask("query-status/ret-type/names/!string"), Ok(true));
        assert_eq!(ask("query-status/ret-type/names/!number"), Ok(false));
        assert_eq!(ask("query-status/ret-type/names/string"), Ok(false));
        assert_eq!(
            ask("query-status/ret-type/names/!string/x"),
            Err(ProbeErrorKind::NotLast)
        );
        // Alternates: each alternative from the same component, first true wins.
        assert_eq!(ask("blockdev-add/arg-type/backing/!null"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/backing/!string"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/backing/!int"), Ok(false));
        assert_eq!(
            ask("blockdev-add/arg-type/backing/+file/filename"),
            Ok(true)
        );
        assert_eq!(ask("blockdev-add/arg-type/backing/driver/^nbd"), Ok(true));
        assert_eq!(ask("blockdev-add/arg-type/backing/+file/nope"), Ok(false));
        // A query ending at an alternate is true (the path exists).
        assert_eq!(ask("blockdev-add/arg-type/backing"), Ok(true));
    }

    /// The cases of libvirt's own test (`tests/qemumonitorjsontest.c`,
    /// `DO_TEST_QAPI_QUERY`), transposed onto the small schema.
    #[test]
    fn libvirts_test_cases() {
        let cases = [
            ("blockdev-add", Ok(true)),
            ("RTC_CHANGE", Ok(true)),
            ("blockdev-add/arg-type/+file", Ok(true)),
            ("blockdev-add/arg-type/+file/filename", Ok(true)),
            ("query-status/ret-type/status/^file", Ok(true)),
            ("query-status/ret-type/names/!string", Ok(true)),
            ("blockdev-add/arg-type/backing/!null", Ok(true)),
            ("blockdev-add/arg-type/backing/+file/filename", Ok(true)),
            ("nonexistent", Ok(false)),
            ("blockdev-add/arg-type/nonexistent", Ok(false)),
            ("blockdev-add/arg-type/+nonexistent", Ok(false)),
            ("query-status/ret-type/status/^nonexistentdebug", Ok(false)),
            (
                "query-status/ret-type/status/^file/test",
                Err(ProbeErrorKind::NotLast),
            ),
            ("query-status/ret-type/names/!number", Ok(false)),
        ];
        for (q, want) in cases {
            assert_eq!(ask(q), want, "{q}");
        }
    }

    #[test]
    fn malformed_queries_say_what_and_where() {
        let e = probe(&schema(), "").unwrap_err();
        assert_eq!(e.kind, ProbeErrorKind::Empty);
        assert_eq!(e.to_string(), "empty schema probe");
        let e = probe(&schema(), "blockdev-add//driver").unwrap_err();
        assert_eq!(
            (e.kind, e.index, e.offset),
            (ProbeErrorKind::EmptyComponent, 1, 13)
        );
        assert_eq!(
            e.to_string(),
            "schema probe 'blockdev-add//driver': component 1 ('', byte 13) is empty"
        );
        let e = probe(&schema(), "blockdev-add/arg-type/").unwrap_err();
        assert_eq!((e.kind, e.index), (ProbeErrorKind::EmptyComponent, 2));
        let e = probe(&schema(), "blockdev-add/$json-cli/x").unwrap_err();
        assert_eq!(
            (e.kind, e.index, e.offset),
            (ProbeErrorKind::NotLast, 1, 13)
        );
        assert!(e.to_string().contains("('$json-cli', byte 13)"), "{e}");
        // Refused whatever the schema: the same on an empty one.
        let empty = Schema::default();
        assert_eq!(
            probe(&empty, "x/!int/y").map_err(|e| e.kind),
            Err(ProbeErrorKind::NotLast)
        );
        assert_eq!(probe(&empty, "x/arg-type"), Ok(false));
        // A bare modifier is well formed: it names the empty member.
        assert_eq!(ask("blockdev-add/arg-type/+"), Ok(false));
    }

    #[test]
    fn self_referencing_arrays_are_a_loop_not_a_hang() {
        let s = Schema::from_introspection(&json!([
            {"name": "[x]", "meta-type": "array", "element-type": "[x]"},
            {"name": "O", "meta-type": "object", "members": [{"name": "a", "type": "[x]"}]},
            {"name": "c", "meta-type": "command", "arg-type": "O", "ret-type": "O"}
        ]))
        .unwrap();
        let e = probe(&s, "c/arg-type/a/b").unwrap_err();
        assert_eq!((e.kind, e.index), (ProbeErrorKind::Loop, 3));
        assert_eq!(probe(&s, "c/arg-type/a"), Ok(true));
    }
}
