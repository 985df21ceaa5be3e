//! Every `qmp-example` in QEMU 10.0's `qapi/*.json` against the bindings: each `->`
//! request deserializes into its command's typed arguments and serializes back to
//! equal JSON, each `<-` reply decodes as that command's reply type, and each event
//! decodes as its event. Exceptions are listed, each with its reason, in
//! `tests/qmp-examples-exceptions.txt` (`file:line reason`); an exception that no
//! longer fails is an error too, so the list stays true.
//!
//! The guest agent's examples (`$QAPI_CORPUS/qga/qapi-schema.json`) are checked the same
//! way against its bindings (feature `qga`); their exceptions are keyed `qga/FILE:LINE`.
//!
//! Reads the examples from `$QAPI_CORPUS/qapi/*.json`; skips when `QAPI_CORPUS` is unset.

#[path = "support/skip.rs"]
mod skip;

use std::collections::BTreeMap;
use std::path::Path;

use qemu_qapi::qmp::runtime::{CommandVisitor, EventVisitor};
use qemu_qapi::qmp::{Command, Event};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One message of an example: where it starts, its direction and its text.
struct Message {
    line: usize,
    outgoing: bool,
    text: String,
}

/// The messages of every `.. qmp-example::` block of a schema file's doc comments.
fn examples(source: &str) -> Vec<Vec<Message>> {
    let lines: Vec<(usize, &str)> = source
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim_start();
            t.strip_prefix('#')
                .map(|rest| (i + 1, rest.strip_prefix(' ').unwrap_or(rest)))
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].1.trim_start().starts_with(".. qmp-example::") {
            i += 1;
            continue;
        }
        let indent = lines[i].1.len() - lines[i].1.trim_start().len();
        i += 1;
        let mut msgs: Vec<Message> = Vec::new();
        let mut open: Option<Message> = None;
        while i < lines.len() {
            let (n, l) = lines[i];
            let t = l.trim_start();
            if !t.is_empty() && l.len() - t.len() <= indent {
                break;
            }
            if let Some(rest) = t.strip_prefix("->").or_else(|| t.strip_prefix("<-")) {
                if let Some(m) = open.take() {
                    msgs.push(m);
                }
                open = Some(Message {
                    line: n,
                    outgoing: t.starts_with("->"),
                    text: rest.to_owned(),
                });
            } else if let Some(m) = open.as_mut() {
                if t.is_empty() || t.starts_with(':') {
                    msgs.push(open.take().unwrap());
                } else {
                    m.text.push('\n');
                    m.text.push_str(t);
                }
            }
            i += 1;
        }
        msgs.extend(open);
        out.push(msgs);
    }
    out
}

struct RoundTrip<'a>(&'a Value);

fn same<T: Serialize + DeserializeOwned>(v: &Value) -> Result<(), String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| format!("does not decode: {e}"))?;
    let back = serde_json::to_value(&t).map_err(|e| format!("does not encode: {e}"))?;
    let norm = |v: Value| {
        if v == Value::Object(Default::default()) {
            Value::Null
        } else {
            v
        }
    };
    if norm(back.clone()) == norm(v.clone()) {
        Ok(())
    } else {
        Err(format!("re-encodes differently: {back}"))
    }
}

impl CommandVisitor for RoundTrip<'_> {
    type Output = Result<(), String>;
    fn visit<C>(self) -> Result<(), String>
    where
        C: Command + DeserializeOwned,
        C::Reply: Serialize,
    {
        same::<C>(self.0)
    }
}

struct Reply<'a>(&'a Value);

impl CommandVisitor for Reply<'_> {
    type Output = Result<(), String>;
    fn visit<C>(self) -> Result<(), String>
    where
        C: Command + DeserializeOwned,
        C::Reply: Serialize,
    {
        serde_json::from_value::<C::Reply>(self.0.clone())
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "reply does not decode as {}: {e}",
                    std::any::type_name::<C::Reply>()
                )
            })
    }
}

struct EventCheck<'a>(&'a Value);

impl EventVisitor for EventCheck<'_> {
    type Output = Result<(), String>;
    fn visit<E: Event + Serialize>(self) -> Result<(), String> {
        same::<E>(self.0)
    }
}

/// How one set of bindings checks the messages of an example (the QMP bindings, or
/// the guest agent's): each returns `None` for a name the bindings lack.
struct Bindings {
    /// A request's arguments round-trip through the command's typed arguments.
    arguments: fn(&str, &Value) -> Option<Result<(), String>>,
    /// A reply decodes as the command's typed reply.
    reply: fn(&str, &Value) -> Option<Result<(), String>>,
    /// An event's data round-trips through the event's type.
    event: fn(&str, &Value) -> Option<Result<(), String>>,
}

const QMP: Bindings = Bindings {
    arguments: |name, args| qemu_qapi::commands::visit_command(name, RoundTrip(args)),
    reply: |name, ret| qemu_qapi::commands::visit_command(name, Reply(ret)),
    event: |name, data| qemu_qapi::events::visit_event(name, EventCheck(data)),
};

#[cfg(feature = "qga")]
const GA: Bindings = Bindings {
    arguments: |name, args| qemu_qapi::ga::commands::visit_command(name, RoundTrip(args)),
    reply: |name, ret| qemu_qapi::ga::commands::visit_command(name, Reply(ret)),
    event: |name, data| qemu_qapi::ga::events::visit_event(name, EventCheck(data)),
};

/// Checks one example; returns the failures as (line, message).
fn check(msgs: &[Message], bindings: &Bindings) -> Vec<(usize, String)> {
    let mut fails = Vec::new();
    let mut last_cmd: Option<String> = None;
    for m in msgs {
        let v: Value = match serde_json::from_str(&m.text) {
            Ok(v) => v,
            Err(e) => {
                fails.push((m.line, format!("not JSON ({e})")));
                continue;
            }
        };
        let r = if m.outgoing {
            let name = v
                .get("execute")
                .or_else(|| v.get("exec-oob"))
                .and_then(Value::as_str);
            let Some(name) = name else {
                fails.push((m.line, "request without execute".into()));
                continue;
            };
            last_cmd = Some(name.to_owned());
            // No `arguments` means `{}` to QEMU.
            let args = v
                .get("arguments")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default()));
            (bindings.arguments)(name, &args)
                .unwrap_or_else(|| Err(format!("unknown command {name}")))
        } else if let Some(ev) = v.get("event").and_then(Value::as_str) {
            let data = v.get("data").cloned().unwrap_or(Value::Null);
            (bindings.event)(ev, &data).unwrap_or_else(|| Err(format!("unknown event {ev}")))
        } else if let Some(ret) = v.get("return") {
            match &last_cmd {
                Some(c) => {
                    (bindings.reply)(c, ret).unwrap_or_else(|| Err(format!("unknown command {c}")))
                }
                None => Err("reply without a request".into()),
            }
        } else {
            Ok(()) // errors and other messages carry no typed payload
        };
        if let Err(e) = r {
            fails.push((m.line, e));
        }
    }
    fails
}

/// The listed exceptions (`tests/qmp-examples-exceptions.txt`) whose key starts with
/// `prefix` (`qga/` for the guest agent's), without it.
fn exceptions(prefix: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string("tests/qmp-examples-exceptions.txt")
        .expect("exceptions file")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, why) = l.split_once(' ').unwrap_or((l, ""));
            assert!(!why.trim().is_empty(), "exception without a reason: {l}");
            (k.to_owned(), why.trim().to_owned())
        })
        .filter_map(|(k, why)| match prefix {
            "" => (!k.contains('/')).then_some((k, why)),
            p => k.strip_prefix(p).map(|k| (k.to_owned(), why)),
        })
        .collect()
}

/// Fails unless the failures are exactly the listed exceptions.
fn assert_only_exceptions(
    total: usize,
    seen_fail: &BTreeMap<String, String>,
    exceptions: &BTreeMap<String, String>,
) {
    let unexpected: Vec<String> = seen_fail
        .iter()
        .filter(|(k, _)| !exceptions.contains_key(*k))
        .map(|(k, m)| format!("{k} {m}"))
        .collect();
    let stale: Vec<&String> = exceptions
        .keys()
        .filter(|k| !seen_fail.contains_key(*k))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{} messages checked\nunexpected failures:\n{}\nexceptions that no longer fail: {stale:?}",
        total,
        unexpected.join("\n")
    );
}

/// The `qapi/*.json` files of the QEMU source tree at `corpus`, sorted.
fn schema_files(corpus: &Path) -> Vec<std::path::PathBuf> {
    let dir = corpus.join("qapi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() > 30, "{}: QAPI files missing", dir.display());
    files
}

#[test]
fn qmp_examples_round_trip() {
    let Some(corpus) = std::env::var_os("QAPI_CORPUS") else {
        skip::skipping("QAPI_CORPUS is not set: the qmp-example round trip");
        return;
    };
    let files = schema_files(Path::new(&corpus));
    let mut seen_fail = BTreeMap::new();
    let mut total = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let fname = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for ex in examples(&text) {
            total += ex.len();
            for (line, msg) in check(&ex, &QMP) {
                seen_fail.insert(format!("{fname}:{line}"), msg);
            }
        }
    }
    assert!(total > 300, "only {total} example messages found");
    assert_only_exceptions(total, &seen_fail, &exceptions(""));
}

/// The guest agent's `qmp-example`s against its bindings, as the QMP ones. QEMU
/// 10.0's guest agent schema has one block, which shows the notation rather than a
/// message (listed as exceptions); the examples a later release adds are checked
/// as they come. The agent's real replies are round-tripped in `tests/ga_replies.rs`.
#[cfg(feature = "qga")]
#[test]
fn ga_examples_round_trip() {
    let Some(corpus) = std::env::var_os("QAPI_CORPUS") else {
        skip::skipping("QAPI_CORPUS is not set: the guest agent's qmp-example round trip");
        return;
    };
    let path = Path::new(&corpus).join("qga/qapi-schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let blocks = examples(&text);
    // The notation block at least: if none is found, the reader is not reading.
    assert!(
        !blocks.is_empty(),
        "{}: no qmp-example block found",
        path.display()
    );
    let mut seen_fail = BTreeMap::new();
    let mut total = 0;
    for ex in &blocks {
        total += ex.len();
        for (line, msg) in check(ex, &GA) {
            seen_fail.insert(format!("qapi-schema.json:{line}"), msg);
        }
    }
    println!("{} blocks, {total} messages", blocks.len());
    assert_only_exceptions(total, &seen_fail, &exceptions("qga/"));
}

/// Never a false refusal: every example request of QEMU 10.0's docs, checked as the
/// client checks a typed call before sending it (`PeerSchema::lacks`) against what
/// QEMU 10.0 itself reports of its schema (`schema/introspect/`, the installed x86_64
/// system emulator), is refused only for what that build really lacks: a command or
/// member its build leaves out (the other targets' commands, or a configuration
/// Debian's build lacks), which the bindings know under a condition. The refusals are
/// listed, and each must concern a command the bindings mark as conditional or whose
/// refusal names a member the capture's schema has nowhere.
#[test]
fn qmp_examples_are_not_refused_by_qemu_10_0s_schema() {
    let Some(corpus) = std::env::var_os("QAPI_CORPUS") else {
        skip::skipping("QAPI_CORPUS is not set: the refusal check of the qmp-examples");
        return;
    };
    let capture = std::fs::read_to_string("schema/introspect/qemu-system-x86_64-10.0.json")
        .expect("capture of QEMU 10.0");
    let peer = qemu_qapi::qmp::PeerSchema::from_json_str(&capture).expect("capture reads");
    let files = schema_files(Path::new(&corpus));
    let mut requests = 0;
    let mut refused = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let fname = f.file_name().unwrap_or_default().to_string_lossy();
        for m in examples(&text).into_iter().flatten().filter(|m| m.outgoing) {
            let Ok(v) = serde_json::from_str::<Value>(&m.text) else {
                continue; // not JSON: listed in tests/qmp-examples-exceptions.txt
            };
            let Some(name) = v
                .get("execute")
                .or_else(|| v.get("exec-oob"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            requests += 1;
            if let Some(absent) = peer.lacks(name, v.get("arguments").and_then(Value::as_object)) {
                refused.push((format!("{fname}:{}", m.line), name.to_owned(), absent));
            }
        }
    }
    assert!(requests > 150, "only {requests} example requests found");
    let mut wrong = Vec::new();
    for (at, name, absent) in &refused {
        let conditional = qemu_qapi::commands::COMMANDS
            .iter()
            .find(|c| c.name == name)
            .is_some_and(|c| c.ifcond.is_some());
        let really_absent = match absent {
            qemu_qapi::qmp::schema_check::Absent::Command => !peer.has_command(name),
            qemu_qapi::qmp::schema_check::Absent::Member { path } => {
                let last = path.rsplit(['.', ']']).next().unwrap_or(path);
                !capture.contains(&format!("\"name\":\"{last}\""))
                    && !capture.contains(&format!("\"name\": \"{last}\""))
            }
            qemu_qapi::qmp::schema_check::Absent::Value { value, .. } => {
                !capture.contains(&format!("\"{value}\""))
            }
        };
        println!("{at}: {name} refused: {absent:?} (conditional command: {conditional})");
        if !(conditional || really_absent) {
            wrong.push(format!("{at}: {name}: {absent:?}"));
        }
    }
    println!(
        "{requests} example requests, {} refused for what QEMU 10.0 on x86_64 lacks",
        refused.len()
    );
    assert!(wrong.is_empty(), "false refusals:\n{}", wrong.join("\n"));
}
