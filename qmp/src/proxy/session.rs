//! One client of the proxy: its greeting, negotiation and checks (answered by the
//! proxy with QEMU's texts), its requests forwarded with the proxy's ids, and the
//! writer that sends it replies and events in order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};

use super::{Allow, BoxRead, BoxWrite, ClientHandle, Out, Pending, Shared};
use crate::codec::{LineEnding, LineWriter};
use crate::server::json_stream::{JsonSplitter, Piece};
use crate::server::protocol;
use crate::server::QmpError;

/// QEMU's `QMP_REQ_QUEUE_LEN_MAX`: in-band requests outstanding with `oob` negotiated.
const QUEUE_LEN: u32 = 8;
/// How long a closing client's writer may take to write what is queued for it.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The commands that need a file descriptor passed with SCM_RIGHTS.
const FD_COMMANDS: [&str; 2] = ["getfd", "add-fd"];

struct Session {
    shared: Arc<Shared>,
    handle: Arc<ClientHandle>,
    allow: Arc<Allow>,
    ended: watch::Receiver<bool>,
    /// The in-band window: 1 permit, or [`QUEUE_LEN`] with `oob`.
    window: Arc<Semaphore>,
    capacity: u32,
    negotiated: bool,
    oob: bool,
}

/// Serves one client until it disconnects, is disconnected, or the proxy closes.
/// (Sockets come split into their own halves, which need no lock between reader and
/// writer, unlike `tokio::io::split`'s.)
pub(super) async fn run(shared: Arc<Shared>, mut rd: BoxRead, wr: BoxWrite, allow: Arc<Allow>) {
    let (tx, rx) = mpsc::channel::<Out>(shared.client_queue);
    let (ended_tx, ended) = watch::channel(false);
    let handle = {
        let mut clients = shared.lock_clients();
        if clients.closed {
            // QEMU is gone: dropping the stream closes it.
            return;
        }
        clients.next += 1;
        let handle = Arc::new(ClientHandle {
            key: clients.next,
            out: tx,
            negotiated: AtomicBool::new(false),
            ended: ended_tx,
        });
        clients.map.insert(handle.key, handle.clone());
        handle
    };
    tracing::debug!(target: "qmp::proxy", client = handle.key, allow = %allow, "client connected");
    let mut writer = tokio::spawn(write(wr, rx, handle.clone()));
    handle.deliver(
        Out::Owned(shared.greeting.clone().into_bytes()),
        "the greeting",
    );
    let mut s = Session {
        shared: shared.clone(),
        handle: handle.clone(),
        allow,
        ended,
        window: Arc::new(Semaphore::new(1)),
        capacity: 1,
        negotiated: false,
        oob: false,
    };
    let mut splitter = JsonSplitter::new(shared.max_line);
    let mut pieces: Vec<Piece> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut ended = s.ended.clone();
    'session: loop {
        let n = tokio::select! {
            r = rd.read(&mut chunk) => r,
            _ = ended.wait_for(|e| *e) => break 'session,
        };
        match n {
            Ok(0) => {
                // The client sent all it will: answer what it asked, then close.
                s.wait_window().await;
                break;
            }
            Ok(n) => splitter.push(&chunk[..n], &mut pieces),
            Err(e) => {
                tracing::debug!(target: "qmp::proxy", client = handle.key, "read ends: {e}");
                break;
            }
        }
        for piece in std::mem::take(&mut pieces) {
            if !s.request(piece).await {
                break 'session;
            }
        }
    }
    // Unregistered first: nothing new is queued once `Close` is.
    shared.lock_clients().map.remove(&handle.key);
    let closing = handle.out.try_send(Out::Close).is_ok();
    if !closing
        || tokio::time::timeout(CLOSE_WITHIN, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    tracing::debug!(target: "qmp::proxy", client = handle.key, "client disconnected");
}

impl Session {
    /// Handles one piece of input; false when the session must end.
    async fn request(&mut self, piece: Piece) -> bool {
        let dict = match protocol::request_item(&piece) {
            Ok(Value::Object(dict)) => dict,
            Ok(_) => {
                let e = QmpError::generic("QMP input must be a JSON object");
                return self.answer(false, Err(e), None).await;
            }
            Err(e) => return self.answer(false, Err(e), None).await,
        };
        // QEMU's qmp_is_oob(): answered at once, even when refused.
        let at_once = protocol::is_oob(&dict);
        let id = verbatim_id(&piece).or_else(|| protocol::raw_id(&dict));
        let (name, as_oob) = match protocol::check_request(&dict, self.oob) {
            Ok((name, as_oob)) => (name.to_string(), as_oob),
            Err(e) => return self.answer(at_once, Err(e), id).await,
        };
        if name == protocol::QMP_CAPABILITIES {
            return self.negotiate(&dict, as_oob, id).await;
        }
        if !self.negotiated {
            return self
                .answer(as_oob, Err(protocol::not_negotiated()), id)
                .await;
        }
        if !self.allow.allows(&name) {
            let e = QmpError::generic(format!(
                "The command {name} is not allowed on this proxy socket (it allows {})",
                self.allow
            ));
            return self.answer(as_oob, Err(e), id).await;
        }
        if FD_COMMANDS.contains(&name.as_str()) {
            let e = QmpError::generic(format!(
                "The command {name} needs a file descriptor passed with SCM_RIGHTS, which the \
                 QMP proxy does not forward: connect to QEMU's monitor directly to pass file \
                 descriptors"
            ));
            return self.answer(as_oob, Err(e), id).await;
        }
        self.forward(&name, as_oob, dict.get("arguments"), id).await
    }

    /// `qmp_capabilities`, answered by the proxy.
    async fn negotiate(
        &mut self,
        dict: &Map<String, Value>,
        as_oob: bool,
        id: Option<Box<RawValue>>,
    ) -> bool {
        let empty = Map::new();
        let args = dict
            .get("arguments")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let shared = self.shared.clone();
        match protocol::negotiate(
            &shared.caps_schema,
            args,
            as_oob,
            self.negotiated,
            &shared.offered,
        ) {
            Ok(oob) => {
                // The reply is queued before events are: no event may precede it.
                if !self.answer(false, Ok(serde_json::json!({})), id).await {
                    return false;
                }
                self.negotiated = true;
                self.handle.negotiated.store(true, Ordering::Release);
                if oob {
                    self.oob = true;
                    self.window.add_permits((QUEUE_LEN - 1) as usize);
                    self.capacity = QUEUE_LEN;
                }
                true
            }
            Err(e) => {
                let e = protocol::in_negotiation_mode(e, self.negotiated);
                self.answer(as_oob, Err(e), id).await
            }
        }
    }

    /// Sends the proxy's own answer. An in-band one first waits for the replies to the
    /// client's earlier in-band requests, so that it does not overtake them.
    async fn answer(
        &mut self,
        at_once: bool,
        result: Result<Value, QmpError>,
        id: Option<Box<RawValue>>,
    ) -> bool {
        let _all = if at_once {
            None
        } else {
            let window = self.window.clone();
            let capacity = self.capacity;
            tokio::select! {
                p = window.acquire_many_owned(capacity) => p.ok(),
                _ = self.ended.wait_for(|e| *e) => return false,
            }
        };
        let line = protocol::reply_line(result, id.as_deref());
        tokio::select! {
            r = self.handle.out.send(Out::Owned(line)) => r.is_ok(),
            _ = self.ended.wait_for(|e| *e) => false,
        }
    }

    /// Waits until every in-band request of the client has been answered.
    async fn wait_window(&mut self) {
        let window = self.window.clone();
        let capacity = self.capacity;
        tokio::select! {
            _ = window.acquire_many_owned(capacity) => {}
            _ = self.ended.wait_for(|e| *e) => {}
        }
    }

    /// Sends the request to QEMU with an id of the proxy's.
    async fn forward(
        &mut self,
        name: &str,
        as_oob: bool,
        arguments: Option<&Value>,
        id: Option<Box<RawValue>>,
    ) -> bool {
        let permit = if as_oob {
            None
        } else {
            let window = self.window.clone();
            tokio::select! {
                p = window.acquire_owned() => match p {
                    Ok(p) => Some(p),
                    Err(_) => return false,
                },
                _ = self.ended.wait_for(|e| *e) => return false,
            }
        };
        let key = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut line = Vec::with_capacity(64);
        line.extend_from_slice(if as_oob {
            b"{\"exec-oob\": "
        } else {
            b"{\"execute\": "
        });
        // Strings and Values always serialize.
        let _ = serde_json::to_writer(&mut line, name);
        if let Some(args) = arguments {
            line.extend_from_slice(b", \"arguments\": ");
            let _ = serde_json::to_writer(&mut line, args);
        }
        line.extend_from_slice(format!(", \"id\": {key}}}\n").as_bytes());
        self.shared.lock_pending().insert(
            key,
            Pending {
                client: self.handle.clone(),
                id,
                _permit: permit,
            },
        );
        // Not cancelled midway: sessions run in tasks of their own, never aborted.
        let written = {
            let mut w = self.shared.writer.lock().await;
            match w.write_all(&line).await {
                Ok(()) => w.flush().await,
                Err(e) => Err(e),
            }
        };
        if let Err(e) = written {
            self.shared
                .close(format!("{}: writing failed: {e}", self.shared.peer));
            return false;
        }
        true
    }
}

/// The request's `id` exactly as the client wrote it (`1.0` stays `1.0`, a number
/// beyond 64 bits stays as it is), if it has one; `None` as well when the request's
/// keys need escapes (the caller then takes the parsed id).
fn verbatim_id(piece: &Piece) -> Option<Box<RawValue>> {
    let Piece::Message(bytes) = piece else {
        return None;
    };
    let members: BTreeMap<&str, &RawValue> = serde_json::from_slice(bytes).ok()?;
    members.get("id").map(|id| (*id).to_owned())
}

/// Writes what is queued for the client, coalescing what is already queued into one
/// write; ends the session when it stops.
async fn write<W>(wr: W, mut rx: mpsc::Receiver<Out>, handle: Arc<ClientHandle>)
where
    W: AsyncWrite + Send + Unpin,
{
    // QEMU's monitor ends its lines with CRLF.
    let mut w = LineWriter::with_line_ending(wr, LineEnding::CrLf);
    'writer: while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        while let Some(out) = item.take() {
            match out {
                Out::Owned(line) => w.push_bytes(&line),
                Out::Shared(line) => w.push_bytes(&line),
                Out::Close => {
                    let _ = w.flush().await;
                    let _ = w.get_mut().shutdown().await;
                    break 'writer;
                }
            }
            if w.pending() < 256 * 1024 {
                item = rx.try_recv().ok();
            }
        }
        if w.flush().await.is_err() {
            break;
        }
    }
    handle.ended.send_replace(true);
}
