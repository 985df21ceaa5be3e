//! Knowing the peer: its `query-qmp-schema`, kept for the connection, probed with
//! libvirt's query strings, and used to refuse, before sending, what it lacks.
//!
//! A program built once runs against many QEMUs. [`PeerSchema`] is the schema the
//! peer itself reports; [`Client::supports`](crate::Client::supports) and its
//! siblings answer from it, and [`Client::execute`](crate::Client::execute) uses it
//! to refuse a command, argument member or enum value the peer lacks with
//! [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) instead of a round trip
//! that ends in `CommandNotFound` or `GenericError`.
//!
//! # When the schema is fetched
//!
//! Never implicitly by a call. It is fetched (one `query-qmp-schema`, ~210 KB from
//! QEMU 10.0) by the first [`Client::peer_schema`](crate::Client::peer_schema),
//! `supports*` call, or at connect with
//! [`Config::fetch_peer_schema`](crate::Config::fetch_peer_schema); from then on it
//! is kept for the connection and every later question is answered from memory.
//! A connection that never asks pays nothing: no request, no allocation, and one
//! atomic load per typed call (to see that the schema is still unknown).
//!
//! **Concurrent first calls share one fetch.** The first caller sends the request;
//! the others wait for its outcome, and every one of them gets it: the schema, or
//! the error that ended the fetch (connection closed, timeout, error reply, a reply
//! that is not a schema). A failed fetch is not remembered: a later call tries again.
//! If the caller that sent the request is cancelled (its future dropped), the
//! request's reply is dropped as for any cancelled call, and one of the waiting
//! callers sends a new request, so nobody waits forever.
//!
//! **Shared between connections.** Connections to QEMUs whose greeting version and
//! `query-qmp-schema` reply are identical share one parsed schema: a process-wide
//! table of weak references keyed by the reply's hash (SipHash-1-3 of the text, and
//! its length) and the greeting's version and package. The reply is still fetched
//! once per connection (the only way to know it is the same); it is parsed only once.
//!
//! # Refusal before sending
//!
//! On by default, whenever the schema is already known: then the check costs no
//! round trip, only a look-up (and, for a command with arguments, encoding them to
//! a `serde_json::Value` once more). It is never the reason for a fetch. Turn it
//! off per connection with [`Config::refuse_unsupported`](crate::Config::refuse_unsupported)
//! or per handle with [`Client::with_refusal`](crate::Client::with_refusal).
//!
//! Only *absence* is refused, and only when QEMU would certainly fail the command
//! for it ([`PeerSchema::lacks`]): a command not in the schema, an argument member no
//! type on its path has (a union's base or the branch its discriminator selects),
//! an enum value (a discriminator's included) not listed. Anything else (wrong JSON
//! types, missing required members, integer ranges a live QEMU's introspection
//! cannot express) is sent, for QEMU to judge. Two exceptions keep refusals
//! exact:
//!
//! * `device_add`, `object-add` and `netdev_add` take more members than their
//!   introspected arguments (`'gen': false` in QEMU's schema for `device_add` up to
//!   10.0, and for the other two in older releases): only the command is checked.
//! * A QEMU run with `-compat deprecated-output=hide` leaves deprecated commands and
//!   members out of its introspection yet accepts them. Such a schema has no
//!   `deprecated` feature at all ([`Schema::shows_deprecated`]), so for it only enum
//!   values (never hidden) are refused.
//!
//! Raw calls ([`Client::execute_raw`](crate::Client::execute_raw) and friends) are
//! the escape hatch and are never refused; [`PeerSchema::lacks`] checks one by hand.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::error::Error;
use crate::message::Greeting;
use crate::probe::{self, ProbeError};
use crate::schema_check::{Absent, Schema, SchemaError};

/// Commands whose QEMU handler takes members beyond the introspected ones (QEMU's
/// `'gen': false` commands with arguments, every release from 3.1 on): only their
/// presence is checked against a peer's schema.
pub const OPEN_ARGUMENTS: &[&str] = &["device_add", "object-add", "netdev_add"];

/// The peer's schema, as its `query-qmp-schema` reported it: cheap to share (the
/// client hands it out in an [`Arc`]), read-only.
///
/// Built on [`schema_check`](crate::schema_check)'s index ([`PeerSchema::index`]),
/// the one introspection reader of this crate.
#[derive(Debug, Clone)]
pub struct PeerSchema {
    index: Schema,
}

impl PeerSchema {
    /// Parses and indexes a `query-qmp-schema` reply: the text of its `return`
    /// array (or the whole `{"return": [...]}` reply).
    ///
    /// # Errors
    /// When the text is not JSON or not a valid introspection schema (an entry
    /// missing a member, a type named but not defined…), saying which entry.
    pub fn from_json_str(text: &str) -> Result<PeerSchema, SchemaError> {
        Ok(PeerSchema {
            index: Schema::from_json_str(text)?,
        })
    }

    /// Wraps an index built otherwise (e.g. [`Schema::from_introspection`]).
    pub fn from_index(index: Schema) -> PeerSchema {
        PeerSchema { index }
    }

    /// The index underneath: command and event entries, argument checks.
    pub fn index(&self) -> &Schema {
        &self.index
    }

    /// Whether the peer has command `name`.
    pub fn has_command(&self, name: &str) -> bool {
        self.index.command(name).is_some()
    }

    /// Whether the peer has event `name`.
    pub fn has_event(&self, name: &str) -> bool {
        self.index.event(name).is_some()
    }

    /// Answers one of libvirt's schema queries, e.g.
    /// `blockdev-add/arg-type/+file/aio/^io_uring`, exactly as libvirt's
    /// `virQEMUQAPISchemaPathExists` would. See [`crate::probe`] for the grammar.
    ///
    /// # Errors
    /// A malformed query ([`ProbeError`] says what and where), whatever the schema.
    pub fn probe(&self, query: &str) -> Result<bool, ProbeError> {
        probe::probe(&self.index, query)
    }

    /// Whether command `command`'s arguments have the member at `path`, a probe path
    /// below `arg-type` (`aio`, `+file/aio`, `backend/+socket/data/reconnect-ms`).
    ///
    /// # Errors
    /// As [`probe`](Self::probe).
    pub fn has_member(&self, command: &str, path: &str) -> Result<bool, ProbeError> {
        self.probe(&format!("{command}/arg-type/{path}"))
    }

    /// Whether the enum at `path` in command `command`'s arguments lists `value`
    /// (`has_value("blockdev-add", "+file/aio", "io_uring")`).
    ///
    /// # Errors
    /// As [`probe`](Self::probe).
    pub fn has_value(&self, command: &str, path: &str, value: &str) -> Result<bool, ProbeError> {
        self.probe(&format!("{command}/arg-type/{path}/^{value}"))
    }

    /// What the peer lacks of a call of `command` with `arguments`, as the client
    /// refuses it (see the [module docs](self)): the command, an argument member, or
    /// an enum value; `None` when QEMU may accept the call.
    pub fn lacks(&self, command: &str, arguments: Option<&Map<String, Value>>) -> Option<Absent> {
        let arguments = if OPEN_ARGUMENTS.contains(&command) {
            None
        } else {
            arguments
        };
        let absent = self.index.find_absent(command, arguments)?;
        match absent {
            // Maybe hidden by `-compat deprecated-output=hide` yet accepted.
            Absent::Command | Absent::Member { .. } if !self.index.shows_deprecated() => None,
            absent => Some(absent),
        }
    }

    /// As [`lacks`](Self::lacks) for a typed command, encoding it first; `None` also
    /// when it does not encode to an object (the call then fails to encode anyway).
    pub(crate) fn lacks_typed<C: crate::Command>(&self, cmd: &C) -> Option<Absent> {
        if !self.has_command(C::NAME) {
            return self.lacks(C::NAME, None);
        }
        if OPEN_ARGUMENTS.contains(&C::NAME) {
            return None;
        }
        match serde_json::to_value(cmd) {
            Ok(Value::Object(args)) => self.lacks(C::NAME, Some(&args)),
            _ => None,
        }
    }
}

/// Its index ([`PeerSchema::index`]).
impl AsRef<Schema> for PeerSchema {
    fn as_ref(&self) -> &Schema {
        &self.index
    }
}

/// What a refusal names: the command, what it lacks, the peer's version.
pub(crate) struct Refusal<'a> {
    pub(crate) command: &'a str,
    pub(crate) absent: Absent,
    pub(crate) greeting: &'a Greeting,
}

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.greeting.qmp.version;
        let peer = format!(
            "QEMU {}.{}.{}{}",
            v.qemu.major,
            v.qemu.minor,
            v.qemu.micro,
            if v.package.trim().is_empty() {
                String::new()
            } else {
                format!(" ({})", v.package.trim())
            }
        );
        match &self.absent {
            Absent::Command => write!(
                f,
                "the peer ({peer}) has no command '{}'; not sent",
                self.command
            ),
            absent => write!(
                f,
                "the peer ({peer}) lacks {}: {absent}; not sent",
                self.command
            ),
        }
    }
}

/// Cache key: the reply's hash and length, and the greeting's version.
#[derive(PartialEq, Eq)]
struct Key {
    hash: u64,
    len: usize,
    version: (u32, u32, u32),
    package: String,
}

/// Parsed schemas of live connections (weak: a schema goes with its last user).
static SHARED: Mutex<Vec<(Key, Weak<PeerSchema>)>> = Mutex::new(Vec::new());

/// The parsed schema for reply text `text` from a peer that greeted with
/// `greeting`: the one another connection already parsed, if it is still alive and
/// its peer greeted and replied identically; otherwise parsed now and registered.
pub(crate) fn shared(text: &str, greeting: &Greeting) -> Result<Arc<PeerSchema>, SchemaError> {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    let v = &greeting.qmp.version;
    let key = Key {
        hash: h.finish(),
        len: text.len(),
        version: (v.qemu.major, v.qemu.minor, v.qemu.micro),
        package: v.package.clone(),
    };
    if let Some(schema) = lock()
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(schema);
    }
    // Parsed outside the lock: two connections racing here parse twice, and the
    // second registration wins; both schemas are equal.
    let schema = Arc::new(PeerSchema::from_json_str(text)?);
    let mut table = lock();
    table.retain(|(k, w)| w.strong_count() > 0 && *k != key);
    table.push((key, Arc::downgrade(&schema)));
    Ok(schema)
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(Key, Weak<PeerSchema>)>> {
    // The table holds no invariant a panic could break.
    SHARED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The result every caller waiting on one fetch receives.
type Outcome = Option<Result<Arc<PeerSchema>, Error>>;

/// One connection's peer schema: unknown until fetched, then kept. Empty (no
/// allocation) until the first question.
#[derive(Default)]
pub(crate) struct PeerSlot {
    known: OnceLock<Arc<PeerSchema>>,
    /// The fetch in flight, if any: its callers wait on this.
    flight: Mutex<Option<watch::Receiver<Outcome>>>,
}

/// What a caller of [`PeerSlot::join`] does.
pub(crate) enum Role<'a> {
    /// Nothing: the schema is known.
    Known(Arc<PeerSchema>),
    /// Waits for the fetch in flight.
    Wait(watch::Receiver<Outcome>),
    /// Fetches, then reports through the [`Leader`].
    Lead(Leader<'a>),
}

impl PeerSlot {
    /// The schema, once known. One atomic load.
    pub(crate) fn get(&self) -> Option<&Arc<PeerSchema>> {
        self.known.get()
    }

    /// Joins the fetch in flight, or starts one.
    pub(crate) fn join(&self) -> Role<'_> {
        let mut flight = self.flight.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: a leader sets `known` before clearing `flight`.
        if let Some(s) = self.known.get() {
            return Role::Known(s.clone());
        }
        if let Some(rx) = &*flight {
            return Role::Wait(rx.clone());
        }
        let (tx, rx) = watch::channel(None);
        *flight = Some(rx);
        Role::Lead(Leader {
            slot: self,
            tx: Some(tx),
        })
    }

    fn clear(&self) {
        *self.flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The caller that fetches. Dropped without [`finish`](Leader::finish) (its call
/// was cancelled), it withdraws, so that a waiting caller takes over.
pub(crate) struct Leader<'a> {
    slot: &'a PeerSlot,
    tx: Option<watch::Sender<Outcome>>,
}

impl Leader<'_> {
    /// Keeps a fetched schema and hands the outcome to every waiting caller.
    pub(crate) fn finish(
        mut self,
        outcome: Result<Arc<PeerSchema>, Error>,
    ) -> Result<Arc<PeerSchema>, Error> {
        if let Ok(s) = &outcome {
            let _ = self.slot.known.set(s.clone());
        }
        // A failure is not kept: the next caller starts a new fetch.
        self.slot.clear();
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(outcome.clone()));
        }
        outcome
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Cleared before the sender goes, so a woken waiter finds no stale
            // flight and leads a new one.
            self.slot.clear();
            self.tx = None;
        }
    }
}

/// Waits for a fetch's outcome; `None` when its leader withdrew (then join again).
pub(crate) async fn wait(
    mut rx: watch::Receiver<Outcome>,
) -> Option<Result<Arc<PeerSchema>, Error>> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(deprecated_member: bool) -> PeerSchema {
        let extra = if deprecated_member {
            json!({"name": "old", "type": "str", "default": null, "features": ["deprecated"]})
        } else {
            json!({"name": "old", "type": "str", "default": null})
        };
        let text = json!([
            {"name": "str", "meta-type": "builtin", "json-type": "string"},
            {"name": "int", "meta-type": "builtin", "json-type": "int"},
            {"name": "0", "meta-type": "object", "members": []},
            {"name": "Driver", "meta-type": "enum", "values": ["file", "null-co", "nbd"]},
            {"name": "Aio", "meta-type": "enum", "values": ["threads", "native"]},
            {"name": "File", "meta-type": "object", "members": [
                {"name": "filename", "type": "str"},
                {"name": "aio", "type": "Aio", "default": null}]},
            {"name": "Nbd", "meta-type": "object", "members": [{"name": "server", "type": "str"}]},
            {"name": "Opts", "meta-type": "object", "tag": "driver", "members": [
                {"name": "driver", "type": "Driver"},
                {"name": "node-name", "type": "str", "default": null},
                {"name": "list", "type": "[Aio]", "default": null},
                {"name": "ref", "type": "Ref", "default": null},
                extra],
             "variants": [{"case": "file", "type": "File"}, {"case": "nbd", "type": "Nbd"}]},
            {"name": "[Aio]", "meta-type": "array", "element-type": "Aio"},
            {"name": "Ref", "meta-type": "alternate", "members": [{"type": "Opts"}, {"type": "str"}]},
            {"name": "DevArgs", "meta-type": "object", "members": [{"name": "driver", "type": "str"}]},
            {"name": "blockdev-add", "meta-type": "command", "arg-type": "Opts", "ret-type": "0"},
            {"name": "device_add", "meta-type": "command", "arg-type": "DevArgs", "ret-type": "0"},
            {"name": "stop", "meta-type": "command", "arg-type": "0", "ret-type": "0"}
        ]);
        PeerSchema::from_json_str(&text.to_string()).unwrap()
    }

    fn lacks(args: Value) -> Option<String> {
        schema(true)
            .lacks("blockdev-add", args.as_object())
            .map(|a| a.to_string())
    }

    #[test]
    fn absence_is_found_with_its_path() {
        assert_eq!(lacks(json!({"driver": "file", "filename": "x"})), None);
        assert_eq!(
            lacks(json!({"driver": "foo"})).as_deref(),
            Some("member 'driver' value 'foo'")
        );
        assert_eq!(
            lacks(json!({"driver": "file", "filename": "x", "aio": "io_uring"})).as_deref(),
            Some("member 'aio' value 'io_uring'")
        );
        assert_eq!(
            lacks(json!({"driver": "file", "filename": "x", "aio-max-batch": 1})).as_deref(),
            Some("member 'aio-max-batch'")
        );
        // A branch's member under another branch.
        assert_eq!(
            lacks(json!({"driver": "nbd", "server": "s", "filename": "x"})).as_deref(),
            Some("member 'filename'")
        );
        // A listed value without a branch takes no members but the base's.
        assert_eq!(
            lacks(json!({"driver": "null-co", "size": 1})).as_deref(),
            Some("member 'size'")
        );
        assert_eq!(
            lacks(json!({"driver": "file", "filename": "x", "list": ["threads", "x"]})).as_deref(),
            Some("member 'list[1]' value 'x'")
        );
        // Inside an alternative picked by JSON type, like QEMU's visitor.
        assert_eq!(
            lacks(json!({"driver": "nbd", "server": "s",
                         "ref": {"driver": "file", "filename": "y", "bogus": 1}}))
            .as_deref(),
            Some("member 'ref.bogus'")
        );
        assert_eq!(
            schema(true)
                .lacks("nope", None)
                .map(|a| a.to_string())
                .as_deref(),
            Some("the command")
        );
    }

    #[test]
    fn what_is_not_absence_is_left_to_qemu() {
        // Wrong types, missing required members: QEMU's to judge.
        assert_eq!(
            lacks(json!({"driver": 5, "bogus": 1})),
            None,
            "undecided branch"
        );
        assert_eq!(lacks(json!({"driver": "file"})), None, "filename missing");
        assert_eq!(lacks(json!({"driver": "file", "filename": 5})), None);
        assert_eq!(
            lacks(json!({"driver": "file", "filename": "x", "aio": 5})),
            None
        );
        assert_eq!(
            lacks(json!({"driver": "file", "filename": "x", "ref": 5})),
            None
        );
        assert_eq!(lacks(json!({"filename": "x"})), None, "no discriminator");
        // device_add takes the device's properties beyond its introspected members.
        let s = schema(true);
        assert_eq!(
            s.lacks(
                "device_add",
                json!({"driver": "e1000", "mac": "x"}).as_object()
            ),
            None
        );
    }

    #[test]
    fn a_schema_without_deprecated_features_may_hide_commands_and_members() {
        // `-compat deprecated-output=hide`: no `deprecated` feature anywhere, so a
        // missing command or member may just be hidden. Enum values never are.
        let s = schema(false);
        assert!(!s.index().shows_deprecated());
        assert_eq!(s.lacks("nope", None), None);
        assert_eq!(
            s.lacks(
                "blockdev-add",
                json!({"driver": "file", "filename": "x", "zz": 1}).as_object()
            ),
            None
        );
        assert_eq!(
            s.lacks("blockdev-add", json!({"driver": "foo"}).as_object())
                .map(|a| a.to_string())
                .as_deref(),
            Some("member 'driver' value 'foo'")
        );
    }

    #[test]
    fn identical_greeting_and_reply_share_one_schema() {
        let text = r#"[{"name": "0", "meta-type": "object", "members": []},
                       {"name": "stop", "meta-type": "command", "arg-type": "0", "ret-type": "0"}]"#;
        let greeting = |micro: u32| -> Greeting {
            serde_json::from_value(json!({"QMP": {"version": {"qemu": {"major": 1, "minor": 2,
                "micro": micro}, "package": "peer-test"}, "capabilities": []}}))
            .unwrap()
        };
        let a = shared(text, &greeting(3)).unwrap();
        let b = shared(text, &greeting(3)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = shared(text, &greeting(4)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "another version");
        let d = shared(&text.replace("stop", "cont"), &greeting(3)).unwrap();
        assert!(!Arc::ptr_eq(&a, &d) && d.has_command("cont"));
        // Weak: once every user is gone, the next connection parses again.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        assert!(shared("[", &greeting(3)).is_err());
    }
}
