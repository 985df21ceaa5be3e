//! QMP wire messages: the greeting, requests, replies and events, and a cheap
//! classifier for incoming lines.
//!
//! Two kinds of types live here:
//!
//! * Owned, `Serialize + Deserialize` structs ([`Greeting`], [`Request`],
//!   [`ErrorBody`], [`Timestamp`]) for code that builds or inspects whole messages
//!   (the test server, tools).
//! * [`Incoming`], a zero-copy view of one received line, produced by
//!   [`Incoming::parse`]. It finds the members that decide where a message goes
//!   (`id`, `return`, `error`, `event`, …) without building a `serde_json::Value`
//!   tree: nested values stay as borrowed [`RawValue`]s, decoded later (and only) by
//!   whoever wants them.
//!
//! Ids are arbitrary JSON values on the wire (QEMU echoes them verbatim), so they are
//! kept as raw JSON text here. The client only ever sends non-negative integer ids it
//! allocated itself ([`parse_client_id`] reads them back).
//!
//! The `write_*` functions serialize a message straight into a byte buffer (no
//! intermediate `Value`) without the line terminator; [`crate::codec::LineWriter`]
//! adds it.

use std::borrow::Cow;
use std::io::Write as _;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::runtime::{plain_record, slot_opt, Key};

/// The greeting a QMP server sends when a client connects:
/// `{"QMP": {"version": {...}, "capabilities": [...]}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The `QMP` member.
    pub qmp: GreetingBody,
}

/// The body of the [`Greeting`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GreetingBody {
    /// The server's version.
    pub version: VersionInfo,
    /// The capabilities the server offers (e.g. `"oob"`); unknown names are kept.
    pub capabilities: Vec<String>,
}

/// QEMU's version, as in the greeting and in `query-version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The numeric version.
    pub qemu: VersionTriple,
    /// Distribution package string (often empty).
    pub package: String,
}

/// `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionTriple {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub micro: u32,
}

plain_record!(Greeting, "greeting" { qmp: GreetingBody = "QMP" });
plain_record!(GreetingBody, "greeting body" {
    version: VersionInfo = "version",
    capabilities: Vec<String> = "capabilities",
});
plain_record!(VersionInfo, "version" { qemu: VersionTriple = "qemu", package: String = "package" });
plain_record!(VersionTriple, "version triple" {
    major: u32 = "major",
    minor: u32 = "minor",
    micro: u32 = "micro",
});
plain_record!(ErrorBody, "error" { class: String = "class", desc: String = "desc" });
plain_record!(Timestamp, "timestamp" { seconds: i64 = "seconds", microseconds: i64 = "microseconds" });

impl Greeting {
    /// Whether the server offers the named capability (e.g. `"oob"`).
    pub fn offers(&self, capability: &str) -> bool {
        self.qmp.capabilities.iter().any(|c| c == capability)
    }
}

/// How a request asks for execution: in band (`execute`) or out of band (`exec-oob`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecKind {
    /// `"execute"`: queued and run in order with other in-band commands.
    Execute,
    /// `"exec-oob"`: run immediately by the monitor's I/O thread (needs the `oob`
    /// capability and a command that allows it).
    ExecOob,
}

impl ExecKind {
    /// The member name on the wire.
    pub fn key(self) -> &'static str {
        match self {
            ExecKind::Execute => "execute",
            ExecKind::ExecOob => "exec-oob",
        }
    }
}

/// An owned request, `{"execute"|"exec-oob": name, "arguments"?: {...}, "id"?: any}`.
///
/// Servers and tools use this; the client writes requests with [`write_request`]
/// instead, straight into its output buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `execute` or `exec-oob`.
    pub kind: ExecKind,
    /// The command name.
    pub name: String,
    /// The `arguments` member, if present.
    pub arguments: Option<serde_json::Value>,
    /// The `id` member, if present (any JSON value).
    pub id: Option<serde_json::Value>,
}

impl Serialize for Request {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let len = 1 + usize::from(self.arguments.is_some()) + usize::from(self.id.is_some());
        let mut map = s.serialize_map(Some(len))?;
        map.serialize_entry(self.kind.key(), &self.name)?;
        if let Some(arguments) = &self.arguments {
            map.serialize_entry("arguments", arguments)?;
        }
        if let Some(id) = &self.id {
            map.serialize_entry("id", id)?;
        }
        map.end()
    }
}

/// The `error` member of an error reply: `{"class": ..., "desc": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error class, e.g. `"GenericError"`, `"CommandNotFound"`.
    pub class: String,
    /// The human-readable description.
    pub desc: String,
}

/// An event's `timestamp` member (time since the Unix epoch, as QEMU's host clock saw it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// Whole seconds.
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// What an incoming line is, decided from its top-level members only.
///
/// Borrowed from the line; nested values are [`RawValue`]s that have been validated as
/// JSON but not decoded.
#[derive(Debug, Clone)]
pub enum Incoming<'a> {
    /// `{"QMP": ...}`: the server greeting (decode the whole line as a [`Greeting`]).
    Greeting(&'a RawValue),
    /// `{"return": value, "id"?: ...}`.
    Return {
        /// The echoed id, if any.
        id: Option<&'a RawValue>,
        /// The `return` value.
        value: &'a RawValue,
    },
    /// `{"error": {"class", "desc"}, "id"?: ...}`.
    Error {
        /// The echoed id, if any.
        id: Option<&'a RawValue>,
        /// The `error` member (decode it with [`parse_error_body`]).
        error: &'a RawValue,
    },
    /// `{"event": name, "data"?: ..., "timestamp": ...}`.
    Event {
        /// The event name.
        name: Cow<'a, str>,
        /// The `data` member, if present.
        data: Option<&'a RawValue>,
        /// The timestamp (zero when the peer omitted it).
        timestamp: Timestamp,
    },
    /// `{"execute"|"exec-oob": name, "arguments"?, "id"?}`: a request (server side).
    Request {
        /// `execute` or `exec-oob`.
        kind: ExecKind,
        /// The command name.
        name: Cow<'a, str>,
        /// The `arguments` member, if present.
        arguments: Option<&'a RawValue>,
        /// The `id` member, if present.
        id: Option<&'a RawValue>,
    },
    /// A JSON object with none of the members above.
    Unknown,
}

/// The members [`Incoming::parse`] looks at; everything else is skipped.
#[derive(Default)]
struct Peek<'a> {
    qmp: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    ret: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    event: Option<Key<'a>>,
    data: Option<&'a RawValue>,
    timestamp: Option<Timestamp>,
    execute: Option<Key<'a>>,
    exec_oob: Option<Key<'a>>,
    arguments: Option<&'a RawValue>,
}

impl<'a> Deserialize<'a> for Peek<'a> {
    fn deserialize<D: Deserializer<'a>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PeekVisitor(std::marker::PhantomData))
    }
}

struct PeekVisitor<'a>(std::marker::PhantomData<&'a ()>);

/// Every routing member: `null` counts as absent, a second occurrence is an error.
impl<'a> Visitor<'a> for PeekVisitor<'a> {
    type Value = Peek<'a>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a QMP message (a JSON object)")
    }
    fn visit_map<A: MapAccess<'a>>(self, mut map: A) -> Result<Peek<'a>, A::Error> {
        let mut p = Peek::default();
        while let Some(Key(key)) = map.next_key::<Key<'a>>()? {
            let taken = match &*key {
                "QMP" => slot_opt(&mut p.qmp, &key, &mut map)?,
                "id" => slot_opt(&mut p.id, &key, &mut map)?,
                "return" => slot_opt(&mut p.ret, &key, &mut map)?,
                "error" => slot_opt(&mut p.error, &key, &mut map)?,
                "event" => slot_opt(&mut p.event, &key, &mut map)?,
                "data" => slot_opt(&mut p.data, &key, &mut map)?,
                "timestamp" => slot_opt(&mut p.timestamp, &key, &mut map)?,
                "execute" => slot_opt(&mut p.execute, &key, &mut map)?,
                "exec-oob" => slot_opt(&mut p.exec_oob, &key, &mut map)?,
                "arguments" => slot_opt(&mut p.arguments, &key, &mut map)?,
                _ => false,
            };
            if !taken {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(p)
    }
}

impl<'a> Incoming<'a> {
    /// Classifies one line (without its terminator).
    ///
    /// # Errors
    /// When the line is not a JSON object, or a routing member has the wrong type
    /// (e.g. `"event": 3`).
    pub fn parse(line: &'a str) -> Result<Incoming<'a>, serde_json::Error> {
        if !line.trim_start().starts_with('{') {
            // Serde would accept a JSON array for a struct; QMP messages are objects.
            return Err(serde::de::Error::custom(
                "a QMP message must be a JSON object",
            ));
        }
        let p: Peek<'a> = serde_json::from_str(line)?;
        Ok(if let Some(g) = p.qmp {
            Incoming::Greeting(g)
        } else if let Some(value) = p.ret {
            Incoming::Return { id: p.id, value }
        } else if let Some(error) = p.error {
            Incoming::Error { id: p.id, error }
        } else if let Some(Key(name)) = p.event {
            Incoming::Event {
                name,
                data: p.data,
                timestamp: p.timestamp.unwrap_or_default(),
            }
        } else if let Some(Key(name)) = p.execute {
            Incoming::Request {
                kind: ExecKind::Execute,
                name,
                arguments: p.arguments,
                id: p.id,
            }
        } else if let Some(Key(name)) = p.exec_oob {
            Incoming::Request {
                kind: ExecKind::ExecOob,
                name,
                arguments: p.arguments,
                id: p.id,
            }
        } else {
            Incoming::Unknown
        })
    }
}

/// Decodes the `error` member of an error reply.
///
/// # Errors
/// When it is not `{"class": string, "desc": string}`.
pub fn parse_error_body(error: &RawValue) -> Result<ErrorBody, serde_json::Error> {
    serde_json::from_str(error.get())
}

/// Reads back an id the client allocated (a non-negative integer); `None` for any
/// other JSON value (not ours).
pub fn parse_client_id(id: &RawValue) -> Option<u64> {
    let text = id.get().as_bytes();
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &b in text {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Serializes a request into `out` (no terminator).
///
/// `arguments` is omitted when it is `None` or serializes to `{}` or `null` (QEMU
/// accepts both forms; omitting keeps argument-less commands short). `id` is written
/// as a JSON integer.
///
/// # Errors
/// When the arguments fail to serialize; `out` is then left as it was.
pub fn write_request<A: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    kind: ExecKind,
    name: &str,
    arguments: Option<&A>,
    id: Option<u64>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(kind.key().as_bytes());
    out.extend_from_slice(b"\":");
    write_json(out, name, start)?;
    if let Some(arguments) = arguments {
        let before = out.len();
        out.extend_from_slice(b",\"arguments\":");
        let value_start = out.len();
        write_json(out, arguments, start)?;
        let written = &out[value_start..];
        if written == b"{}" || written == b"null" {
            out.truncate(before);
        }
    }
    if let Some(id) = id {
        // Writing to a Vec cannot fail.
        let _ = write!(out, ",\"id\":{id}");
    }
    out.push(b'}');
    Ok(())
}

/// Serializes a success reply `{"return": value, "id"?: id}` into `out` (no
/// terminator). `id` is the raw JSON the request carried, echoed verbatim.
///
/// # Errors
/// When `value` fails to serialize; `out` is then left as it was.
pub fn write_return<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    id: Option<&RawValue>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(b"{\"return\":");
    write_json(out, value, start)?;
    write_id(out, id);
    out.push(b'}');
    Ok(())
}

/// Serializes an error reply `{"error": {"class", "desc"}, "id"?: id}` into `out` (no
/// terminator).
pub fn write_error(out: &mut Vec<u8>, class: &str, desc: &str, id: Option<&RawValue>) {
    let body = ErrorBody {
        class: class.to_owned(),
        desc: desc.to_owned(),
    };
    out.extend_from_slice(b"{\"error\":");
    // Strings always serialize.
    let _ = serde_json::to_writer(&mut *out, &body);
    write_id(out, id);
    out.push(b'}');
}

/// Serializes an event `{"event": name, "data"?: data, "timestamp": ...}` into `out`
/// (no terminator). `data` is omitted when `None`.
///
/// # Errors
/// When `data` fails to serialize; `out` is then left as it was.
pub fn write_event<D: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    name: &str,
    data: Option<&D>,
    timestamp: Timestamp,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.extend_from_slice(b"{\"event\":");
    write_json(out, name, start)?;
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        write_json(out, data, start)?;
    }
    let _ = write!(
        out,
        ",\"timestamp\":{{\"seconds\":{},\"microseconds\":{}}}}}",
        timestamp.seconds, timestamp.microseconds
    );
    Ok(())
}

fn write_id(out: &mut Vec<u8>, id: Option<&RawValue>) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(id.get().as_bytes());
    }
}

/// Appends `value` as JSON; on failure truncates `out` back to `rollback`.
fn write_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    rollback: usize,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, value).inspect_err(|_| out.truncate(rollback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn greeting_round_trip_and_offers() {
        let line = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2"}, "capabilities": ["oob"]}}"#;
        assert!(matches!(
            Incoming::parse(line).unwrap(),
            Incoming::Greeting(_)
        ));
        let g: Greeting = serde_json::from_str(line).unwrap();
        assert_eq!(
            g.qmp.version.qemu,
            VersionTriple {
                major: 10,
                minor: 0,
                micro: 2
            }
        );
        assert!(g.offers("oob"));
        assert!(!g.offers("nope"));
        let back: Greeting = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn classifies_replies_events_requests() {
        match Incoming::parse(r#"{"return": {"a": [1, 2]}, "id": 17}"#).unwrap() {
            Incoming::Return { id, value } => {
                assert_eq!(parse_client_id(id.unwrap()), Some(17));
                assert_eq!(value.get(), r#"{"a": [1, 2]}"#);
            }
            other => panic!("{other:?}"),
        }
        match Incoming::parse(r#"{"id": "x", "error": {"class": "GenericError", "desc": "no"}}"#)
            .unwrap()
        {
            Incoming::Error { id, error } => {
                assert_eq!(id.unwrap().get(), r#""x""#);
                assert_eq!(parse_client_id(id.unwrap()), None);
                let body = parse_error_body(error).unwrap();
                assert_eq!(body.class, "GenericError");
                assert_eq!(body.desc, "no");
            }
            other => panic!("{other:?}"),
        }
        match Incoming::parse(
            r#"{"timestamp": {"seconds": 5, "microseconds": 6}, "event": "STOP", "extra": [1]}"#,
        )
        .unwrap()
        {
            Incoming::Event {
                name,
                data,
                timestamp,
            } => {
                assert_eq!(name, "STOP");
                assert!(matches!(name, Cow::Borrowed(_)));
                assert!(data.is_none());
                assert_eq!(timestamp.seconds, 5);
                assert_eq!(timestamp.microseconds, 6);
            }
            other => panic!("{other:?}"),
        }
        match Incoming::parse(r#"{"exec-oob": "migrate-pause", "id": {"k": 1}}"#).unwrap() {
            Incoming::Request { kind, name, id, .. } => {
                assert_eq!(kind, ExecKind::ExecOob);
                assert_eq!(name, "migrate-pause");
                assert_eq!(id.unwrap().get(), r#"{"k": 1}"#);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Incoming::parse(r#"{"what": 1}"#).unwrap(),
            Incoming::Unknown
        ));
    }

    #[test]
    fn rejects_non_objects_and_bad_members() {
        assert!(Incoming::parse("[1]").is_err());
        assert!(Incoming::parse("{").is_err());
        assert!(Incoming::parse(r#"{"event": 3}"#).is_err());
        assert!(Incoming::parse("garbage").is_err());
    }

    #[test]
    fn client_ids() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        assert_eq!(parse_client_id(&raw("0")), Some(0));
        assert_eq!(
            parse_client_id(&raw("18446744073709551615")),
            Some(u64::MAX)
        );
        assert_eq!(parse_client_id(&raw("18446744073709551616")), None);
        assert_eq!(parse_client_id(&raw("-1")), None);
        assert_eq!(parse_client_id(&raw("1.0")), None);
        assert_eq!(parse_client_id(&raw("\"1\"")), None);
    }

    #[test]
    fn writes_requests() {
        let mut out = Vec::new();
        write_request::<()>(&mut out, ExecKind::Execute, "query-version", None, Some(3)).unwrap();
        assert_eq!(out, br#"{"execute":"query-version","id":3}"#);
        out.clear();
        write_request(
            &mut out,
            ExecKind::ExecOob,
            "x",
            Some(&json!({"a": 1})),
            None,
        )
        .unwrap();
        assert_eq!(out, br#"{"exec-oob":"x","arguments":{"a":1}}"#);
        out.clear();
        write_request(&mut out, ExecKind::Execute, "x", Some(&json!({})), None).unwrap();
        assert_eq!(out, br#"{"execute":"x"}"#);
        let v: Request = {
            let line = std::str::from_utf8(&out).unwrap();
            match Incoming::parse(line).unwrap() {
                Incoming::Request {
                    kind,
                    name,
                    arguments,
                    id,
                } => Request {
                    kind,
                    name: name.into_owned(),
                    arguments: arguments.map(|a| serde_json::from_str(a.get()).unwrap()),
                    id: id.map(|i| serde_json::from_str(i.get()).unwrap()),
                },
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"execute":"x"}"#);
    }

    #[test]
    fn failed_serialization_leaves_buffer_unchanged() {
        struct Bad;
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("nope"))
            }
        }
        let mut out = b"keep".to_vec();
        assert!(write_request(&mut out, ExecKind::Execute, "x", Some(&Bad), Some(1)).is_err());
        assert_eq!(out, b"keep");
        assert!(write_return(&mut out, &Bad, None).is_err());
        assert_eq!(out, b"keep");
    }

    #[test]
    fn writes_replies_and_events() {
        let id = RawValue::from_string(r#"{"x": [1]}"#.to_owned()).unwrap();
        let mut out = Vec::new();
        write_return(&mut out, &json!({}), Some(&id)).unwrap();
        assert_eq!(out, br#"{"return":{},"id":{"x": [1]}}"#);
        out.clear();
        write_error(&mut out, "GenericError", "bad \"thing\"", None);
        let body: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(body["error"]["desc"], "bad \"thing\"");
        out.clear();
        let ts = Timestamp {
            seconds: 1,
            microseconds: 2,
        };
        write_event(&mut out, "RESUME", None::<&()>, ts).unwrap();
        assert_eq!(
            out,
            br#"{"event":"RESUME","timestamp":{"seconds":1,"microseconds":2}}"#
        );
        out.clear();
        write_event(&mut out, "E", Some(&json!({"a": true})), ts).unwrap();
        match Incoming::parse(std::str::from_utf8(&out).unwrap()).unwrap() {
            Incoming::Event { data, .. } => assert_eq!(data.unwrap().get(), r#"{"a":true}"#),
            other => panic!("{other:?}"),
        }
    }
}
