//! The proxy's side of QEMU's monitor: greeting, negotiation, and the reader that
//! routes each reply to the client that asked and each event to every client.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use super::{BoxRead, BoxWrite, ClientHandle, Clients, Out, ProxyConfig, Shared};
use crate::codec::{CodecError, LineReader};
use crate::server::protocol;

/// The capabilities the proxy knows how to honour for its clients.
const KNOWN_CAPABILITIES: [&str; 1] = ["oob"];

/// Reads QEMU's greeting, negotiates, and starts the reader task.
pub(super) async fn start(
    config: &ProxyConfig,
    reader: BoxRead,
    mut writer: BoxWrite,
    peer: String,
) -> io::Result<Arc<Shared>> {
    let mut reader = LineReader::with_max_line(reader, config.max_message_size);
    let handshake = async {
        let greeting = match crate::connect::greeting_line(&mut reader, |_| {}).await {
            Ok(Some(line)) => line,
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{peer}: closed before greeting"),
                ))
            }
            Err(e) => {
                return Err(io::Error::other(format!(
                    "{peer}: reading the greeting: {e}"
                )))
            }
        };
        let (client_greeting, offered) = client_greeting(&greeting, config.oob)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{peer}: {e}")))?;
        let caps: Vec<Value> = offered.iter().map(|c| Value::from(c.as_str())).collect();
        let request = serde_json::json!({
            "execute": protocol::QMP_CAPABILITIES,
            "arguments": {"enable": caps},
            "id": 0,
        });
        let mut line = request.to_string().into_bytes();
        line.push(b'\n');
        writer
            .write_all(&line)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("{peer}: negotiating: {e}")))?;
        loop {
            let line = match reader.next_line().await {
                Ok(Some(line)) => line,
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{peer}: closed during capability negotiation"),
                    ))
                }
                Err(e) => return Err(io::Error::other(format!("{peer}: negotiating: {e}"))),
            };
            let reply: Value = serde_json::from_str(line).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{peer}: not JSON during negotiation ({e}): {line}"),
                )
            })?;
            if reply.get("return").is_some() {
                break;
            }
            if let Some(err) = reply.get("error") {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{peer}: refused the proxy's qmp_capabilities: {err}"),
                ));
            }
        }
        Ok((client_greeting, offered))
    };
    let (greeting, offered) = match config.connect_timeout {
        None => handshake.await?,
        Some(t) => tokio::time::timeout(t, handshake).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{peer}: no greeting and negotiation within {}; QEMU serves one client \
                     per monitor socket: is another client connected to it?",
                    crate::Limit(t)
                ),
            )
        })??,
    };
    let shared = Arc::new(Shared {
        greeting,
        offered,
        caps_schema: protocol::capabilities_schema(),
        max_line: config.max_message_size,
        client_queue: config.client_queue,
        peer,
        writer: tokio::sync::Mutex::new(writer),
        pending: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        clients: Mutex::new(Clients::default()),
        closed: watch::channel(None).0,
        reader_task: Mutex::new(None),
    });
    let task = tokio::spawn(read(shared.clone(), reader));
    *shared.reader_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    Ok(shared)
}

/// The greeting clients get and the capabilities they may enable: QEMU's greeting
/// verbatim, unless it offers a capability the proxy cannot honour (any but `oob`,
/// and `oob` when `oob` is off), which is then taken out.
fn client_greeting(greeting: &str, oob: bool) -> Result<(String, Vec<String>), String> {
    let mut v: Value = serde_json::from_str(greeting).map_err(|e| {
        format!("the greeting is not JSON ({e}): {greeting}; is this a QMP monitor socket?")
    })?;
    let Some(caps) = v.pointer("/QMP/capabilities").and_then(Value::as_array) else {
        return Err(format!(
            "not a QMP greeting (no QMP.capabilities): {greeting}; is this a QMP monitor socket \
             (-qmp, or -mon mode=control)?"
        ));
    };
    let caps: Vec<String> = caps
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    let (kept, dropped): (Vec<String>, Vec<String>) = caps
        .into_iter()
        .partition(|c| KNOWN_CAPABILITIES.contains(&c.as_str()) && (oob || c != "oob"));
    if dropped.is_empty() {
        return Ok((greeting.to_string(), kept));
    }
    tracing::debug!(target: "qmp::proxy", "not offered to clients: {dropped:?}");
    if let Some(qmp) = v.get_mut("QMP").and_then(Value::as_object_mut) {
        qmp.insert(
            "capabilities".into(),
            Value::Array(kept.iter().map(|c| Value::from(c.as_str())).collect()),
        );
    }
    Ok((v.to_string(), kept))
}

/// Routes everything QEMU sends until it goes away, then closes the proxy.
async fn read(shared: Arc<Shared>, mut reader: LineReader<BoxRead>) {
    let reason = loop {
        match reader.next_line().await {
            Ok(Some(line)) => route(&shared, line),
            Ok(None) => break "closed the connection".to_string(),
            Err(CodecError::InvalidUtf8(e)) => {
                tracing::warn!(target: "qmp::proxy", "QEMU sent a line that is not UTF-8 ({e}): dropped");
            }
            Err(CodecError::LineTooLong { limit }) => {
                break format!(
                    "sent a message longer than {limit} bytes, which cannot be routed \
                     (raise the proxy's maximum message size)"
                )
            }
            Err(e) => break format!("was lost ({e})"),
        }
    };
    shared.close(format!("{} {reason}", shared.peer));
}

/// Hands one message from QEMU on: an event to every negotiated client, a reply to the
/// client whose request it answers, with that client's id.
fn route(shared: &Shared, line: &str) {
    // Borrowed: keys as they are (QEMU's never need escapes), values unparsed.
    let members: BTreeMap<&str, &RawValue> = match serde_json::from_str(line) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(target: "qmp::proxy", "QEMU sent something that is not a JSON object ({e}): {line}");
            return;
        }
    };
    if members.contains_key("event") {
        let event: Arc<[u8]> = Arc::from(line.as_bytes());
        let clients: Vec<Arc<ClientHandle>> = shared
            .lock_clients()
            .map
            .values()
            .filter(|c| c.negotiated.load(Ordering::Acquire))
            .cloned()
            .collect();
        for c in clients {
            c.deliver(Out::Shared(event.clone()), "an event");
        }
        return;
    }
    let Some(id) = members.get("id") else {
        tracing::warn!(target: "qmp::proxy", "QEMU sent a reply without id, which no request of the proxy's can cause: {line}");
        return;
    };
    let Ok(key) = id.get().parse::<u64>() else {
        tracing::warn!(target: "qmp::proxy", "QEMU sent a reply with an id the proxy never used: {line}");
        return;
    };
    let Some(pending) = shared.lock_pending().remove(&key) else {
        tracing::warn!(target: "qmp::proxy", "QEMU sent a reply to no pending request: {line}");
        return;
    };
    let reply = with_id(line, &members, id, pending.id.as_deref());
    pending.client.deliver(Out::Owned(reply), "a reply");
    // The permit goes with `pending`, after the reply is queued.
}

/// `line` (a reply whose parsed members are `members`, `ours` its id) with the
/// client's id `theirs` in place of ours, or without an id when the client sent none.
/// Everything else stays as QEMU wrote it.
fn with_id(
    line: &str,
    members: &BTreeMap<&str, &RawValue>,
    ours: &RawValue,
    theirs: Option<&RawValue>,
) -> Vec<u8> {
    match theirs {
        Some(theirs) => {
            // `ours` borrows from `line`: splice at its place.
            let start = ours.get().as_ptr() as usize - line.as_ptr() as usize;
            let end = start + ours.get().len();
            let mut out = Vec::with_capacity(line.len() + theirs.get().len());
            out.extend_from_slice(&line.as_bytes()[..start]);
            out.extend_from_slice(theirs.get().as_bytes());
            out.extend_from_slice(&line.as_bytes()[end..]);
            out
        }
        None => {
            let mut out = Vec::with_capacity(line.len());
            out.push(b'{');
            let mut first = true;
            for (k, v) in members.iter().filter(|(k, _)| **k != "id") {
                if !first {
                    out.extend_from_slice(b", ");
                }
                first = false;
                // A str always serializes.
                let _ = serde_json::to_writer(&mut out, k);
                out.extend_from_slice(b": ");
                out.extend_from_slice(v.get().as_bytes());
            }
            out.push(b'}');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(line: &str, theirs: Option<&str>) -> String {
        let members: BTreeMap<&str, &RawValue> = serde_json::from_str(line).unwrap();
        let theirs = theirs.map(|t| RawValue::from_string(t.to_string()).unwrap());
        let out = with_id(line, &members, members["id"], theirs.as_deref());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_are_put_back_verbatim() {
        let line = r#"{"return": {"a": [1, {"id": 9}]}, "id": 17}"#;
        assert_eq!(
            rewrite(line, Some(r#"{"x": [null, "y"]}"#)),
            r#"{"return": {"a": [1, {"id": 9}]}, "id": {"x": [null, "y"]}}"#
        );
        assert_eq!(
            rewrite(line, Some("\"s\"")),
            r#"{"return": {"a": [1, {"id": 9}]}, "id": "s"}"#
        );
        assert_eq!(rewrite(line, None), r#"{"return": {"a": [1, {"id": 9}]}}"#);
        let first = r#"{"id": 3, "error": {"class": "GenericError", "desc": "x"}}"#;
        assert_eq!(
            rewrite(first, Some("-1.5e3")),
            r#"{"id": -1.5e3, "error": {"class": "GenericError", "desc": "x"}}"#
        );
        assert_eq!(
            rewrite(first, None),
            r#"{"error": {"class": "GenericError", "desc": "x"}}"#
        );
    }

    #[test]
    fn greeting_keeps_or_drops_capabilities() {
        let g = r#"{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": ""}, "capabilities": ["oob"]}}"#;
        let (line, caps) = client_greeting(g, true).unwrap();
        assert_eq!(line, g);
        assert_eq!(caps, ["oob"]);
        let (line, caps) = client_greeting(g, false).unwrap();
        assert!(caps.is_empty());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["QMP"]["capabilities"], serde_json::json!([]));
        assert_eq!(v["QMP"]["version"]["qemu"]["major"], 10);
        let (_, caps) = client_greeting(
            r#"{"QMP": {"version": {}, "capabilities": ["oob", "x-new"]}}"#,
            true,
        )
        .unwrap();
        assert_eq!(caps, ["oob"]);
        assert!(client_greeting("{\"return\": {}}", true)
            .unwrap_err()
            .contains("not a QMP greeting"));
        assert!(client_greeting("nope", true)
            .unwrap_err()
            .contains("not JSON"));
    }
}
