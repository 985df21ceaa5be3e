//! `qapi-codegen` markers: the facts about each definition that QEMU's sources keep in
//! doc comments and a definitions-only snapshot ([`crate::snapshot`]) keeps without
//! them: the module a definition comes from, the module QEMU's reference manual files
//! it under, and its `Since:` version.
//!
//! A marker is a plain comment line that begins with `# @qapi-codegen ` at column 1,
//! followed by a JSON object; QEMU's own front end skips it like any comment. Two kinds:
//!
//! ```text
//! # @qapi-codegen {"module": "block.json", "manual": "block-core"}
//! # @qapi-codegen {"since": "0.14"}
//! ```
//!
//! * A **module marker** says that the definitions after it in the same file, up to
//!   the next module marker, come from module `module` (a [`crate::model::Module`]
//!   name: the QAPI source file relative to the root schema's folder) and are filed
//!   under `manual` in QEMU's reference manual ([`crate::model::Entity::manual_module`];
//!   no `manual` key: they have no entry there).
//! * A **since marker** gives the `Since:` version of the next definition.
//!
//! Markers are read only outside expressions and doc comments; a comment line that
//! does not begin exactly so (indented, after an expression, `# @qapi-codegenX`) is an
//! ordinary comment. A marker that is malformed (not a JSON object of one of these two
//! shapes, with non-empty string values), that sits inside an expression, a since
//! marker not followed by a definition (before an `include`, a `pragma`, another
//! since marker or the end of the file), and markers in a file that also has doc
//! comments are errors at the marker's `file:line`: a snapshot that says something
//! we cannot read is damaged, and silently dropping what it says would make the
//! bindings' docs wrong without anyone noticing.

use crate::json::{self, Value};

/// What a module marker says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModuleMark {
    /// The module name.
    pub name: String,
    /// The module name of the manual's section, if the definitions have entries.
    pub manual: Option<String>,
}

/// One marker line, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Marker {
    /// `{"module": ..., "manual": ...}`.
    Module(ModuleMark),
    /// `{"since": ...}`.
    Since(String),
}

/// What the markers say about one definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// The module marker in force, if any.
    pub module: Option<ModuleMark>,
    /// The since marker right before it, if any.
    pub since: Option<String>,
}

/// Reads the text of a marker line after `# @qapi-codegen`. The error is the message
/// to report at the marker's line.
pub(crate) fn parse(text: &str) -> Result<Marker, String> {
    let bad = |why: &str| format!("malformed qapi-codegen marker: {why}");
    let value = json::parse(text.trim()).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(bad("expected a JSON object"));
    };
    let mut module = None;
    let mut manual = None;
    let mut since = None;
    for (key, value) in &map {
        let slot = match key.as_str() {
            "module" => &mut module,
            "manual" => &mut manual,
            "since" => &mut since,
            _ => return Err(bad(&format!("unknown key '{key}'"))),
        };
        match value {
            Value::String(s) if !s.trim().is_empty() => *slot = Some(s.clone()),
            _ => return Err(bad(&format!("'{key}' must be a non-empty string"))),
        }
    }
    match (module, manual, since) {
        (Some(name), manual, None) => Ok(Marker::Module(ModuleMark { name, manual })),
        (None, None, Some(since)) => Ok(Marker::Since(since)),
        (None, Some(_), _) => Err(bad("'manual' without 'module'")),
        (Some(_), _, Some(_)) => Err(bad("'module' and 'since' go in separate markers")),
        (None, None, None) => Err(bad("expected 'module' or 'since'")),
    }
}

/// The marker line for `marker` (without the newline), as [`parse`] reads it back.
pub(crate) fn line(marker: &Marker) -> String {
    let s = json::quote;
    let body = match marker {
        Marker::Module(ModuleMark { name, manual }) => match manual {
            Some(m) => format!("{{\"module\": {}, \"manual\": {}}}", s(name), s(m)),
            None => format!("{{\"module\": {}}}", s(name)),
        },
        Marker::Since(v) => format!("{{\"since\": {}}}", s(v)),
    };
    format!("{} {body}", super::lexer::MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes() {
        for m in [
            Marker::Module(ModuleMark {
                name: "block.json".into(),
                manual: Some("block-core".into()),
            }),
            Marker::Module(ModuleMark {
                name: "../../qapi/char.json".into(),
                manual: None,
            }),
            Marker::Since("2.2; 'Unknown' and \"all\" entries below since 2.4\nsecond".into()),
        ] {
            let l = line(&m);
            assert!(!l.contains('\n'), "{l}");
            let text = l
                .strip_prefix(super::super::lexer::MARKER)
                .unwrap_or_default();
            assert_eq!(parse(text), Ok(m));
        }
    }

    #[test]
    fn malformed_markers_say_why() {
        for (text, why) in [
            (
                " since 0.14",
                "not JSON (expected value at line 1 column 1)",
            ),
            (" [\"since\"]", "expected a JSON object"),
            (" {\"since\": 0.14}", "'since' must be a non-empty string"),
            (" {\"since\": \" \"}", "'since' must be a non-empty string"),
            (" {\"sinse\": \"0.14\"}", "unknown key 'sinse'"),
            (" {\"manual\": \"x\"}", "'manual' without 'module'"),
            (
                " {\"module\": \"a.json\", \"since\": \"1.0\"}",
                "'module' and 'since' go in separate markers",
            ),
            (" {}", "expected 'module' or 'since'"),
            (
                "",
                "not JSON (EOF while parsing a value at line 1 column 1)",
            ),
        ] {
            assert_eq!(
                parse(text),
                Err(format!("malformed qapi-codegen marker: {why}")),
                "{text}"
            );
        }
    }
}
