//! Tab completion for `qmp shell`: command names, argument names (dotted into
//! nested objects, union branches chosen by the discriminator already typed) and
//! enum values, from the peer's `query-qmp-schema`; HMP command names from the
//! peer's `help` and `info` in `--hmp` mode.
//!
//! The schema is read here from the reply's JSON rather than through
//! `qmp::PeerSchema`: its index has public accessors for command names and for
//! yes/no questions (`has_member`, `has_value`), but none that lists a command's
//! argument members or an enum's values, which completion needs.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::input::{cli_expr, token_spans};

/// One candidate: what the list shows, and what replaces the word being completed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) display: String,
    pub(crate) replacement: String,
}

/// What completes a line.
#[derive(Debug, Default)]
pub(crate) enum Completion {
    /// Nothing is known (the peer's schema could not be had).
    #[default]
    Nothing,
    /// QMP: the peer's schema.
    Qmp(SchemaIndex),
    /// HMP: whole lines (`info status`, `help info`), as qmp-shell completes them.
    Hmp(Vec<String>),
}

impl Completion {
    /// Where the word being completed starts in `line` (up to the cursor), and its
    /// candidates, sorted. `in_transaction`: lines are transaction actions.
    pub(crate) fn complete(&self, line: &str, in_transaction: bool) -> (usize, Vec<Candidate>) {
        match self {
            Completion::Nothing => (line.len(), Vec::new()),
            Completion::Hmp(lines) => {
                let c = lines
                    .iter()
                    .filter(|l| l.starts_with(line))
                    .map(|l| Candidate {
                        display: l.clone(),
                        replacement: l.clone(),
                    })
                    .collect();
                (0, c)
            }
            Completion::Qmp(index) => index.complete(line, in_transaction),
        }
    }
}

/// The HMP lines to complete, from the texts of the peer's `help` and `info`
/// (qmp-shell's `HMPShell._fill_completion`).
pub(crate) fn hmp_lines(help: &str, info: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('[') || line.starts_with('\t') {
            continue;
        }
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name == "info" {
            continue;
        }
        // `c|cont`: the long name.
        let name = match name.split_once('|') {
            Some((a, b)) if a.len() == 1 => b,
            Some((a, _)) => a,
            None => name,
        };
        out.insert(name.to_owned());
        out.insert(format!("help {name}"));
    }
    for line in info.lines() {
        if let Some(sub) = line.split_whitespace().nth(1) {
            out.insert(format!("info {sub}"));
        }
    }
    out.insert("help info".into());
    out.into_iter().collect()
}

/// The parts of a `query-qmp-schema` reply that completion reads.
#[derive(Debug, Default)]
pub(crate) struct SchemaIndex {
    /// Command name to the name of its argument type.
    commands: HashMap<String, Option<String>>,
    /// Every entry by name.
    types: HashMap<String, Value>,
}

impl SchemaIndex {
    /// Indexes a `query-qmp-schema` reply (its `return` array).
    ///
    /// # Errors
    /// When it is not an array of entries with names.
    pub(crate) fn from_introspection(schema: &Value) -> Result<SchemaIndex, String> {
        let entries = schema
            .as_array()
            .ok_or("the reply of query-qmp-schema is not an array")?;
        let mut index = SchemaIndex::default();
        for e in entries {
            let Some(name) = e.get("name").and_then(Value::as_str) else {
                return Err("an entry of query-qmp-schema has no name".into());
            };
            if e.get("meta-type").and_then(Value::as_str) == Some("command") {
                let arg = e.get("arg-type").and_then(Value::as_str).map(str::to_owned);
                index.commands.insert(name.to_owned(), arg);
            } else {
                index.types.insert(name.to_owned(), e.clone());
            }
        }
        Ok(index)
    }

    /// Command names only (from `query-commands`, when the schema cannot be had).
    pub(crate) fn from_command_names(names: impl IntoIterator<Item = String>) -> SchemaIndex {
        SchemaIndex {
            commands: names.into_iter().map(|n| (n, None)).collect(),
            types: HashMap::new(),
        }
    }

    fn meta<'a>(&'a self, ty: &str) -> Option<(&'a str, &'a Value)> {
        let e = self.types.get(ty)?;
        Some((e.get("meta-type")?.as_str()?, e))
    }

    /// The members of type `ty` (name, type) that `given` (the arguments typed so
    /// far at that level) can still take: an object's own, the branch of a union
    /// its discriminator's value selects (every branch while none is typed), an
    /// alternate's object alternatives'.
    fn members(&self, ty: &str, given: &Map<String, Value>, depth: usize) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        if depth > 32 {
            return out;
        }
        let Some((meta, e)) = self.meta(ty) else {
            return out;
        };
        let push_all = |more: Vec<(String, String)>, out: &mut Vec<(String, String)>| {
            for m in more {
                if !out.iter().any(|(n, _)| *n == m.0) {
                    out.push(m);
                }
            }
        };
        match meta {
            "object" => {
                let own = e
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|m| {
                        Some((
                            m.get("name")?.as_str()?.to_owned(),
                            m.get("type")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect();
                push_all(own, &mut out);
                let tag_value = e
                    .get("tag")
                    .and_then(Value::as_str)
                    .and_then(|t| given.get(t))
                    .and_then(Value::as_str);
                for v in e
                    .get("variants")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let (Some(case), Some(vty)) = (
                        v.get("case").and_then(Value::as_str),
                        v.get("type").and_then(Value::as_str),
                    ) else {
                        continue;
                    };
                    if tag_value.is_none_or(|t| t == case) {
                        push_all(self.members(vty, given, depth + 1), &mut out);
                    }
                }
            }
            "alternate" => {
                for m in e
                    .get("members")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = m.get("type").and_then(Value::as_str) {
                        push_all(self.members(t, given, depth + 1), &mut out);
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The values a member of type `ty` takes that can be listed: an enum's, a
    /// boolean's, an alternate's enum and boolean alternatives'.
    fn values(&self, ty: &str, depth: usize) -> Vec<String> {
        let Some((meta, e)) = self.meta(ty) else {
            return Vec::new();
        };
        match meta {
            "enum" => e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            "builtin" if e.get("json-type").and_then(Value::as_str) == Some("boolean") => {
                vec!["true".into(), "false".into()]
            }
            "alternate" if depth < 8 => e
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("type").and_then(Value::as_str))
                .flat_map(|t| self.values(t, depth + 1))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The transaction actions: each `type` value and the type of its `data`.
    fn actions(&self) -> Vec<(String, Option<String>)> {
        let Some(Some(arg)) = self.commands.get("transaction") else {
            return Vec::new();
        };
        let none = Map::new();
        let Some((_, actions)) = self
            .members(arg, &none, 0)
            .into_iter()
            .find(|(n, _)| n == "actions")
        else {
            return Vec::new();
        };
        let Some(elem) = self
            .types
            .get(&actions)
            .and_then(|e| e.get("element-type"))
            .and_then(Value::as_str)
        else {
            return Vec::new();
        };
        let Some((_, e)) = self.meta(elem) else {
            return Vec::new();
        };
        e.get("variants")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let case = v.get("case")?.as_str()?.to_owned();
                let data = v
                    .get("type")
                    .and_then(Value::as_str)
                    .and_then(|t| {
                        self.members(t, &none, 0)
                            .into_iter()
                            .find(|(n, _)| n == "data")
                    })
                    .map(|(_, t)| t);
                Some((case, data))
            })
            .collect()
    }

    fn complete(&self, line: &str, in_transaction: bool) -> (usize, Vec<Candidate>) {
        if line.trim_start().starts_with('{') {
            return (line.len(), Vec::new());
        }
        let mut spans = token_spans(line);
        // The word being typed: the last token if the cursor touches it, else a new
        // (empty) one at the cursor.
        let current = match spans.last() {
            Some(s) if s.end == line.len() => {
                let s = *s;
                spans.pop();
                (s.start, &line[s.start..])
            }
            _ => (line.len(), ""),
        };
        let mut words: Vec<&str> = spans.iter().map(|s| &line[s.start..s.end]).collect();
        let mut actions = in_transaction;
        if words.first() == Some(&"transaction(") {
            words.remove(0);
            actions = true;
        }
        let (start, word) = current;
        if word == "transaction(" {
            return (start, Vec::new());
        }
        let Some((first, rest)) = words.split_first() else {
            // The command (or action) name.
            let names: Vec<String> = if actions {
                let mut a: Vec<String> = self.actions().into_iter().map(|(n, _)| n).collect();
                a.push(")".into());
                a
            } else {
                self.commands.keys().cloned().collect()
            };
            return (start, named(names, word, " "));
        };
        let arg_type = if actions {
            self.actions()
                .into_iter()
                .find(|(n, _)| n == first)
                .and_then(|(_, t)| t)
        } else {
            self.commands.get(*first).cloned().flatten()
        };
        let Some(arg_type) = arg_type else {
            return (start, Vec::new());
        };
        // The arguments typed so far (what does not parse is left out): they pick
        // union branches and drop members already given.
        let mut given = Map::new();
        for w in rest {
            let _ = cli_expr(&[(*w).to_owned()], &mut given);
        }
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let mut path: Vec<&str> = key.split('.').collect();
        let last = path.pop().unwrap_or("");
        // Walk to the object that holds the member being typed.
        let mut ty = arg_type;
        let mut level = &given;
        let empty = Map::new();
        for seg in &path {
            let Some((_, t)) = self
                .members(&ty, level, 0)
                .into_iter()
                .find(|(n, _)| n == seg)
            else {
                return (start, Vec::new());
            };
            ty = t;
            level = match level.get(*seg) {
                Some(Value::Object(o)) => o,
                _ => &empty,
            };
        }
        match value {
            Some(prefix) => {
                let Some((_, t)) = self
                    .members(&ty, level, 0)
                    .into_iter()
                    .find(|(n, _)| n == last)
                else {
                    return (start, Vec::new());
                };
                let at = start + key.len() + 1;
                (at, named(self.values(&t, 0), prefix, " "))
            }
            None => {
                let at = start + key.len() - last.len();
                let mut c: Vec<Candidate> = self
                    .members(&ty, level, 0)
                    .into_iter()
                    .filter(|(n, _)| n.starts_with(last) && !level.contains_key(n))
                    .map(|(n, t)| {
                        // An object member is usually given member by member.
                        let is_object = matches!(self.meta(&t), Some(("object", _)));
                        let suffix = if is_object { "." } else { "=" };
                        Candidate {
                            display: format!("{n}{suffix}"),
                            replacement: format!("{n}{suffix}"),
                        }
                    })
                    .collect();
                c.sort_by(|a, b| a.display.cmp(&b.display));
                (at, c)
            }
        }
    }
}

/// The `names` that start with `prefix`, sorted, each followed by `suffix`.
fn named(names: Vec<String>, prefix: &str, suffix: &str) -> Vec<Candidate> {
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    names.dedup();
    names
        .into_iter()
        .map(|n| Candidate {
            replacement: format!("{n}{suffix}"),
            display: n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A schema shaped like QEMU's (masked type names): `query-status`,
    /// `query-stats`, `set-action` (enum members), `blockdev-add` (a union on
    /// `driver` with a nested object), `transaction`.
    fn index() -> SchemaIndex {
        SchemaIndex::from_introspection(&json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "bool", "meta-type": "builtin", "json-type": "boolean"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "query-status", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
            {"name": "query-stats", "meta-type": "command", "arg-type": "0", "ret-type": "0"},
            {"name": "1", "meta-type": "enum", "values": ["poweroff", "pause"]},
            {"name": "2", "meta-type": "object", "members": [
                {"name": "shutdown", "type": "1", "default": null},
                {"name": "reboot", "type": "str", "default": null}]},
            {"name": "set-action", "meta-type": "command", "arg-type": "2", "ret-type": "0"},
            {"name": "3", "meta-type": "enum", "values": ["file", "null-co"]},
            {"name": "4", "meta-type": "object", "members": [
                {"name": "direct", "type": "bool", "default": null},
                {"name": "no-flush", "type": "bool", "default": null}]},
            {"name": "5", "meta-type": "object", "members": [
                {"name": "driver", "type": "3"}, {"name": "node-name", "type": "str"},
                {"name": "cache", "type": "4", "default": null}],
             "tag": "driver", "variants": [{"case": "file", "type": "6"},
                                           {"case": "null-co", "type": "7"}]},
            {"name": "6", "meta-type": "object", "members": [{"name": "filename", "type": "str"}]},
            {"name": "7", "meta-type": "object", "members": [{"name": "size", "type": "str"}]},
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "5", "ret-type": "0"},
            {"name": "8", "meta-type": "enum", "values": ["abort", "block-dirty-bitmap-add"]},
            {"name": "9", "meta-type": "object", "members": [{"name": "type", "type": "8"}],
             "tag": "type", "variants": [{"case": "abort", "type": "10"},
                                         {"case": "block-dirty-bitmap-add", "type": "11"}]},
            {"name": "10", "meta-type": "object", "members": [{"name": "data", "type": "0"}]},
            {"name": "11", "meta-type": "object", "members": [{"name": "data", "type": "12"}]},
            {"name": "12", "meta-type": "object", "members": [
                {"name": "node", "type": "str"}, {"name": "name", "type": "str"}]},
            {"name": "[9]", "meta-type": "array", "element-type": "9"},
            {"name": "13", "meta-type": "object", "members": [{"name": "actions", "type": "[9]"}]},
            {"name": "transaction", "meta-type": "command", "arg-type": "13", "ret-type": "0"}
        ]))
        .unwrap()
    }

    fn complete(line: &str) -> (usize, Vec<String>) {
        let (at, c) = Completion::Qmp(index()).complete(line, false);
        (at, c.into_iter().map(|c| c.replacement).collect())
    }

    #[test]
    fn command_names() {
        assert_eq!(
            complete("query-sta"),
            (0, vec!["query-stats ".into(), "query-status ".into()])
        );
        assert_eq!(complete("  query-statu"), (2, vec!["query-status ".into()]));
        assert_eq!(complete("nothing-like-it").1, Vec::<String>::new());
    }

    #[test]
    fn argument_names_and_values() {
        assert_eq!(
            complete("set-action "),
            (11, vec!["reboot=".into(), "shutdown=".into()])
        );
        assert_eq!(complete("set-action sh"), (11, vec!["shutdown=".into()]));
        assert_eq!(
            complete("set-action shutdown=p"),
            (20, vec!["pause ".into(), "poweroff ".into()])
        );
        assert_eq!(
            complete("set-action shutdown=pause "),
            (26, vec!["reboot=".into()])
        );
        // Union branches: all while the discriminator is not typed, then its own.
        let (_, all) = complete("blockdev-add ");
        assert!(all.contains(&"filename=".into()) && all.contains(&"size=".into()));
        assert!(all.contains(&"cache.".into()), "{all:?}");
        let (_, file) = complete("blockdev-add driver=file ");
        assert!(file.contains(&"filename=".into()) && !file.contains(&"size=".into()));
        assert_eq!(
            complete("blockdev-add driver=n"),
            (20, vec!["null-co ".into()])
        );
        assert_eq!(
            complete("blockdev-add cache.direct=true cache."),
            (37, vec!["no-flush=".into()])
        );
        assert_eq!(
            complete("blockdev-add cache.direct=t"),
            (26, vec!["true ".into()])
        );
        assert_eq!(complete("no-such-command x").1, Vec::<String>::new());
        assert_eq!(complete("{\"execute\": \"q").1, Vec::<String>::new());
    }

    #[test]
    fn transaction_actions() {
        let (at, c) = Completion::Qmp(index()).complete("block-dirty-bitmap-add n", true);
        let c: Vec<String> = c.into_iter().map(|c| c.replacement).collect();
        assert_eq!((at, c), (23, vec!["name=".into(), "node=".into()]));
        let (_, c) = Completion::Qmp(index()).complete("", true);
        assert_eq!(c.len(), 3);
        assert_eq!(complete("transaction( ab").1, vec!["abort ".to_owned()]);
    }

    #[test]
    fn hmp_lines_from_help() {
        let help = "announce_self [interfaces] [id] -- Trigger GARP/RARP announcements\r\n\
                    c|cont  -- resume emulation\r\n\
                    info [subcommand] -- show various information about the system state\r\n\
                    \tcontinued\r\n";
        let info =
            "info balloon  -- show balloon information\r\ninfo status  -- show the status\r\n";
        let lines = hmp_lines(help, info);
        for l in [
            "announce_self",
            "help cont",
            "cont",
            "info status",
            "help info",
        ] {
            assert!(lines.contains(&l.to_owned()), "{l}: {lines:?}");
        }
        assert!(!lines.contains(&"info".to_owned()));
        let (at, c) = Completion::Hmp(lines).complete("info st", false);
        assert_eq!(at, 0);
        assert_eq!(c[0].replacement, "info status");
    }
}
