//! The members of QMP requests that carry secrets, and their redaction.
//!
//! Transcripts ([`server::transcript::Recorder`][recorder], feature `server`) and the
//! `qmp::wire` trace log write requests out; a password written there outlives the
//! session and can be read by whoever reads the file or the log. Both replace the
//! members listed in [`SECRET_MEMBERS`] with [`REDACTED`] unless told otherwise
//! ([`Recorder::keep_secrets`][keep_secrets]).
//!
//! Redaction goes by command and member path, never by looking for a value: the value
//! is not known to us, and a secret that also appears somewhere harmless (an `id`)
//! must not make that place unreadable. Only requests (client to server) are
//! redacted: QEMU never sends these members back. Members that hold the *name* of a
//! secret object (`key-secret`, `password-secret`, `cookie-secret`, `passwordid`, a
//! secret's `keyid`) are not secrets and stay readable.
//!
//! The list was drawn up from QEMU 10.0's schemas (`qapi/*.json`, `qga/`): every
//! member named or documented as a password, key, cookie or secret data.
//!
// The links exist only with the `server` feature: without it they point at the crate root.
#![cfg_attr(
    feature = "server",
    doc = "[recorder]: crate::server::transcript::Recorder"
)]
#![cfg_attr(
    feature = "server",
    doc = "[keep_secrets]: crate::server::transcript::Recorder::keep_secrets"
)]
#![cfg_attr(not(feature = "server"), doc = "[recorder]: crate")]
#![cfg_attr(not(feature = "server"), doc = "[keep_secrets]: crate")]

use std::borrow::Cow;

use serde_json::{Map, Value};

/// What a redacted member's value is replaced with.
pub const REDACTED: &str = "<redacted by qmp>";

/// When a [`SecretMember`] applies, beyond the command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always.
    Always,
    /// When the object holding the member has member `.0` equal to one of the strings
    /// `.1` (a union's discriminator: `qom-type`, `driver`).
    Member(&'static str, &'static [&'static str]),
    /// When the member is a string whose first word is one of these (an HMP command
    /// line passed through `human-monitor-command`).
    FirstWord(&'static [&'static str]),
}

/// One secret-bearing member of a command's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretMember {
    /// The command.
    pub command: &'static str,
    /// The path of the member within the arguments (object member names).
    pub path: &'static [&'static str],
    /// Whether the path may also start at any object nested in the arguments (block
    /// node options nest: a qcow2 node's `file` can be an https node).
    pub nested: bool,
    /// When the member is a secret; for [`Condition::Member`], tested on the object
    /// that holds the last path element.
    pub when: Condition,
}

/// Every member QEMU takes a secret in, by command (one entry per place).
pub const SECRET_MEMBERS: &[SecretMember] = &[
    // qom.json ObjectOptions branch `secret` (crypto.json SecretProperties): the
    // secret itself, for LUKS keys, TLS key passwords, iSCSI/RBD/curl passwords.
    SecretMember {
        command: "object-add",
        path: &["data"],
        nested: false,
        when: Condition::Member("qom-type", &["secret"]),
    },
    // The same before QEMU 6.0, whose object-add took the properties in `props`
    // (only for `qom-type: secret`, one level up: see `top_level_guard`).
    SecretMember {
        command: "object-add",
        path: &["props", "data"],
        nested: false,
        when: Condition::Always,
    },
    // ui.json SetPasswordOptions (base member): the VNC or SPICE password.
    SecretMember {
        command: "set_password",
        path: &["password"],
        nested: false,
        when: Condition::Always,
    },
    // ui.json: the new VNC password.
    SecretMember {
        command: "change-vnc-password",
        path: &["password"],
        nested: false,
        when: Condition::Always,
    },
    // misc-target.json (x86 SEV): the launch secret injected into guest memory.
    SecretMember {
        command: "sev-inject-launch-secret",
        path: &["secret"],
        nested: false,
        when: Condition::Always,
    },
    // block-core.json BlockdevOptionsCurlHttp/Https: cookies in clear (session
    // tokens), at any depth of a node's options.
    SecretMember {
        command: "blockdev-add",
        path: &["cookie"],
        nested: true,
        when: Condition::Member("driver", &["http", "https"]),
    },
    // The same options, reopened (`options` is a list of node options).
    SecretMember {
        command: "blockdev-reopen",
        path: &["cookie"],
        nested: true,
        when: Condition::Member("driver", &["http", "https"]),
    },
    // The guest agent's (qga/qapi-schema.json) new password of a guest user,
    // base64 of the clear text or of its crypt() form.
    SecretMember {
        command: "guest-set-user-password",
        path: &["password"],
        nested: false,
        when: Condition::Always,
    },
    // HMP through QMP: `object_add secret,id=s,data=...`, `set_password vnc PW`,
    // `change vnc password PW`. The whole command line goes, since HMP's syntax has
    // no member to single out.
    SecretMember {
        command: "human-monitor-command",
        path: &["command-line"],
        nested: false,
        when: Condition::FirstWord(&["object_add", "set_password", "change"]),
    },
];

/// The object-add `props` form is a secret only for `qom-type: secret`; the
/// condition sits one level up from the member, so it is tested here.
fn top_level_guard(command: &str, args: &Map<String, Value>, entry: &SecretMember) -> bool {
    if command == "object-add" && entry.path.first() == Some(&"props") {
        return args.get("qom-type").and_then(Value::as_str) == Some("secret");
    }
    true
}

/// Replaces the secret members of a request's `arguments` with [`REDACTED`]; returns
/// whether anything was replaced. `msg` is a whole request (`execute` or `exec-oob`);
/// anything else is left alone.
pub fn redact_request(msg: &mut Value) -> bool {
    let Some(obj) = msg.as_object_mut() else {
        return false;
    };
    let command = match obj.get("execute").or_else(|| obj.get("exec-oob")) {
        Some(Value::String(c)) => c.clone(),
        _ => return false,
    };
    match obj.get_mut("arguments") {
        Some(Value::Object(args)) => redact_arguments(&command, args),
        _ => false,
    }
}

/// Replaces the secret members of `command`'s arguments `args` with [`REDACTED`];
/// returns whether anything was replaced.
pub fn redact_arguments(command: &str, args: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for entry in SECRET_MEMBERS.iter().filter(|e| e.command == command) {
        if !top_level_guard(command, args, entry) {
            continue;
        }
        if entry.nested {
            changed |= redact_nested(args, entry);
        } else {
            changed |= redact_at(args, entry.path, entry.when);
        }
    }
    changed
}

fn redact_nested(obj: &mut Map<String, Value>, entry: &SecretMember) -> bool {
    let mut changed = redact_at(obj, entry.path, entry.when);
    for v in obj.values_mut() {
        changed |= redact_nested_value(v, entry);
    }
    changed
}

fn redact_nested_value(v: &mut Value, entry: &SecretMember) -> bool {
    match v {
        Value::Object(o) => redact_nested(o, entry),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |c, item| redact_nested_value(item, entry) | c),
        _ => false,
    }
}

fn redact_at(obj: &mut Map<String, Value>, path: &[&str], when: Condition) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if !rest.is_empty() {
        return match obj.get_mut(*first) {
            Some(Value::Object(inner)) => redact_at(inner, rest, when),
            _ => false,
        };
    }
    let applies = match when {
        Condition::Always => true,
        Condition::Member(name, values) => obj
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|v| values.contains(&v)),
        Condition::FirstWord(words) => obj
            .get(*first)
            .and_then(Value::as_str)
            .and_then(|s| s.split_whitespace().next())
            .is_some_and(|w| words.contains(&w)),
    };
    match obj.get_mut(*first) {
        Some(v) if applies && v.as_str() != Some(REDACTED) => {
            *v = Value::String(REDACTED.to_owned());
            true
        }
        _ => false,
    }
}

/// A request line with its secret members redacted; the line itself (borrowed) when
/// it has none or is not a JSON request. Cheap for lines of commands the list does
/// not name: those are not parsed as a whole.
pub fn redact_line(line: &str) -> Cow<'_, str> {
    // Only a line naming one of the commands can need redaction; a substring test
    // keeps the cost of every other line to a scan.
    if !SECRET_MEMBERS.iter().any(|e| line.contains(e.command)) {
        return Cow::Borrowed(line);
    }
    let Ok(mut msg) = serde_json::from_str::<Value>(line) else {
        return Cow::Borrowed(line);
    };
    if redact_request(&mut msg) {
        Cow::Owned(msg.to_string())
    } else {
        Cow::Borrowed(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redacted(msg: Value) -> Value {
        let mut m = msg;
        redact_request(&mut m);
        m
    }

    #[test]
    fn secret_object_data_is_redacted_and_nothing_else() {
        let m = redacted(json!({"execute": "object-add", "arguments":
            {"qom-type": "secret", "id": "sec0", "data": "hunter2", "format": "raw"}}));
        assert_eq!(m["arguments"]["data"], REDACTED);
        assert_eq!(m["arguments"]["id"], "sec0");
        assert_eq!(m["arguments"]["format"], "raw");
        // Another object type's `data` is not a secret.
        let m = redacted(json!({"execute": "object-add", "arguments":
            {"qom-type": "memory-backend-ram", "id": "m", "data": "x"}}));
        assert_eq!(m["arguments"]["data"], "x");
        // Before QEMU 6.0: props.
        let m = redacted(json!({"exec-oob": "object-add", "arguments":
            {"qom-type": "secret", "id": "s", "props": {"data": "hunter2"}}}));
        assert_eq!(m["arguments"]["props"]["data"], REDACTED);
        let m = redacted(json!({"execute": "object-add", "arguments":
            {"qom-type": "iothread", "id": "s", "props": {"data": "x"}}}));
        assert_eq!(m["arguments"]["props"]["data"], "x");
    }

    #[test]
    fn passwords_cookies_and_hmp_lines_are_redacted() {
        for (cmd, member) in [
            ("set_password", "password"),
            ("change-vnc-password", "password"),
            ("guest-set-user-password", "password"),
            ("sev-inject-launch-secret", "secret"),
        ] {
            let m =
                redacted(json!({"execute": cmd, "arguments": {member: "pw", "protocol": "vnc"}}));
            assert_eq!(m["arguments"][member], REDACTED, "{cmd}");
            assert_eq!(m["arguments"]["protocol"], "vnc");
        }
        let m = redacted(
            json!({"execute": "blockdev-add", "arguments": {"driver": "qcow2",
            "node-name": "n", "cookie": "not curl",
            "file": {"driver": "https", "url": "https://x/", "cookie": "tok=1"}}}),
        );
        assert_eq!(m["arguments"]["file"]["cookie"], REDACTED);
        assert_eq!(m["arguments"]["cookie"], "not curl");
        let m = redacted(
            json!({"execute": "blockdev-reopen", "arguments": {"options": [
            {"driver": "http", "node-name": "n", "cookie": "tok=1"}]}}),
        );
        assert_eq!(m["arguments"]["options"][0]["cookie"], REDACTED);
        let m = redacted(json!({"execute": "human-monitor-command",
            "arguments": {"command-line": "object_add secret,id=s,data=hunter2"}}));
        assert_eq!(m["arguments"]["command-line"], REDACTED);
        let m = redacted(json!({"execute": "human-monitor-command",
            "arguments": {"command-line": "info status"}}));
        assert_eq!(m["arguments"]["command-line"], "info status");
    }

    #[test]
    fn lines_without_secrets_are_borrowed() {
        let line = r#"{"execute": "query-status", "id": 1}"#;
        assert!(matches!(redact_line(line), Cow::Borrowed(_)));
        let line = r#"{"execute": "object-add", "arguments": {"qom-type": "secret", "id": "s", "data": "hunter2"}}"#;
        let out = redact_line(line);
        assert!(!out.contains("hunter2"), "{out}");
        assert!(out.contains(REDACTED), "{out}");
        assert!(matches!(
            redact_line("not json object-add"),
            Cow::Borrowed(_)
        ));
        // Replies are not requests: left alone.
        assert!(!redacted(json!({"return": {}, "data": "x"})).is_null());
    }
}
