//! One client connection: greeting, the reader loop, the in-band dispatcher, the writer.
//!
//! The structure follows QEMU's monitor (`monitor/qmp.c`): the reader splits the input into JSON
//! values as QEMU's streaming parser does (no newline needed, see `json_stream`);
//! a request that looks out-of-band (`exec-oob` without `execute`) is dispatched at once,
//! everything else (including parse errors, which are answered in order) goes to the
//! in-band queue. Without `oob` negotiated the reader waits for each in-band request to
//! be answered before reading the next (QEMU suspends the monitor); with it, up to 8
//! requests are queued (`QMP_REQ_QUEUE_LEN_MAX`).
//!
//! In guest-agent mode (`ServerBuilder::guest_agent`) it follows `qga/main.c` instead:
//! no greeting, no negotiation, no out-of-band requests, one request read and answered
//! after the other, replies ending in `\n`, and the reply to `guest-sync-delimited`
//! preceded by a 0xFF byte.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::faults::{Faults, GreetingFault};
use super::handler::{Ctx, QmpError};
use super::json_stream::{JsonSplitter, Piece};
use super::protocol::{self, reply_line};
use super::transcript::{Direction, TrafficHook};
use super::{encode_event, ClientId, Out, Server};
use crate::codec::{LineEnding, LineWriter};
use crate::message::write_return;

/// QEMU's `QMP_REQ_QUEUE_LEN_MAX`.
const QUEUE_LEN: usize = 8;
/// How many messages may wait for a client's writer.
const OUT_QUEUE: usize = 1024;
/// How long out-of-order replies are held for more to arrive.
const OUT_OF_ORDER_WAIT: Duration = Duration::from_millis(200);
/// The byte qemu-ga writes before its reply to `guest-sync-delimited`.
const DELIMITER: u8 = 0xFF;

#[derive(Default)]
struct State {
    negotiated: AtomicBool,
    oob: AtomicBool,
}

type Trailing = Arc<Mutex<Vec<Vec<u8>>>>;

struct InBand {
    item: Result<Value, QmpError>,
    done: oneshot::Sender<()>,
}

/// A reply ready to send, with the command it answers (for fault targeting).
struct Reply {
    command: Option<String>,
    line: Option<Vec<u8>>,
    /// Preceded by a 0xFF byte (the guest agent's reply to `guest-sync-delimited`).
    delimited: bool,
    /// Events the handler queued for after the reply.
    trailing: Vec<Vec<u8>>,
}

pub(super) async fn run<S>(server: Server, stream: S) -> ClientId
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Out>(OUT_QUEUE);
    let id = server.register(tx.clone());
    let hook = server.shared().hook.clone();
    let agent = server.shared().agent;
    // QEMU's monitor ends its lines with CRLF, qemu-ga with LF.
    let ending = if agent {
        LineEnding::Lf
    } else {
        LineEnding::CrLf
    };
    let mut writer = tokio::spawn(writer_task(wr, rx, hook.clone(), ending));
    let mut shutdown = server.shared().shutdown.subscribe();
    tracing::debug!(client = id.0, agent, "qmp::server: session start");

    let faults = server.faults();
    if let Some(bytes) = &faults.preamble {
        let _ = tx.send(Out::Raw(bytes.clone())).await;
    }
    // Not reading (nor greeting) yet: what the client writes meanwhile waits in the
    // socket, as it does in a virtio-serial port until the agent opens it.
    let started = match faults.late_start {
        None => true,
        Some(d) => {
            tracing::debug!(client = id.0, "qmp::server: fault: starting after {d:?}");
            tokio::select! {
                _ = tokio::time::sleep(d) => true,
                _ = shutdown.wait_for(|s| *s) => false,
                _ = &mut writer => false,
            }
        }
    };
    let greeting = match &faults.greeting {
        // The guest agent greets nobody.
        _ if agent || !started => None,
        None => Some(Out::Line(server.shared().greeting.clone().into_bytes())),
        Some(GreetingFault::Missing) => None,
        Some(GreetingFault::Close) => Some(Out::Close),
        Some(GreetingFault::Garbage) => Some(Out::Line(b"\x01this is not JSON {".to_vec())),
        Some(GreetingFault::NotAGreeting) => Some(Out::Line(b"{\"return\": {}}".to_vec())),
        Some(GreetingFault::Custom(line)) => Some(Out::Line(line.clone().into_bytes())),
    };
    if let Some(g) = greeting {
        let _ = tx.send(g).await;
    }

    let state = Arc::new(State::default());
    if agent && started {
        // Nothing to negotiate: commands are accepted at once.
        state.negotiated.store(true, Ordering::Release);
        server.set_negotiated(id);
    }
    let (queue_tx, queue_rx) = mpsc::channel::<InBand>(QUEUE_LEN);
    let mut tasks = JoinSet::new();
    tasks.spawn(dispatcher(
        server.clone(),
        id,
        state.clone(),
        queue_rx,
        tx.clone(),
    ));

    let mut rd = rd;
    let mut splitter = JsonSplitter::new(server.shared().max_line);
    let mut pieces: VecDeque<Piece> = VecDeque::new();
    let mut scratch: Vec<Piece> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut read_after_negotiation: u64 = 0;
    'session: loop {
        if !started {
            break;
        }
        let faults = server.faults();
        if let Some(n) = faults.never_read_after {
            if state.negotiated.load(Ordering::Acquire) && read_after_negotiation >= n {
                tracing::debug!(client = id.0, "qmp::server: fault: no longer reading");
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => {}
                    _ = &mut writer => {}
                }
                break 'session;
            }
        }
        // Forget finished out-of-band tasks (a long session must not accumulate them).
        while tasks.try_join_next().is_some() {}
        let piece = match pieces.pop_front() {
            Some(p) => p,
            None => {
                let n = tokio::select! {
                    r = rd.read(&mut chunk) => r,
                    _ = shutdown.wait_for(|s| *s) => break 'session,
                    _ = &mut writer => break 'session,
                };
                match n {
                    Ok(0) => break,
                    Ok(n) => {
                        splitter.push(&chunk[..n], &mut scratch);
                        pieces.extend(scratch.drain(..));
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(client = id.0, "qmp::server: read ends: {e}");
                        break;
                    }
                }
            }
        };
        if let (Piece::Message(bytes), Some(h)) = (&piece, &hook) {
            h.message(Direction::ToServer, &String::from_utf8_lossy(bytes));
        }
        let item = protocol::request_item(&piece);
        if state.negotiated.load(Ordering::Acquire) {
            read_after_negotiation += 1;
        }
        if let (Ok(Value::Object(dict)), false) = (&item, agent) {
            // QEMU's qmp_is_oob(): dispatched at once, whether or not oob is enabled
            // (without it, the dispatcher then refuses 'exec-oob'). qemu-ga has no
            // out-of-band dispatch: there 'exec-oob' is just an unexpected member.
            if protocol::is_oob(dict) {
                let (server, state, tx) = (server.clone(), state.clone(), tx.clone());
                let v = item.unwrap_or_default();
                tasks.spawn(async move {
                    let faults = server.faults();
                    if let Some(reply) = dispatch(&server, id, &state, Ok(v), &tx).await {
                        send_reply(&tx, reply, &faults).await;
                    }
                });
                continue;
            }
        }
        let (done_tx, done_rx) = oneshot::channel();
        let queued = tokio::select! {
            r = queue_tx.send(InBand { item, done: done_tx }) => r.is_ok(),
            _ = shutdown.wait_for(|s| *s) => false,
            _ = &mut writer => false,
        };
        if !queued {
            break;
        }
        let read_ahead = state.oob.load(Ordering::Acquire) || faults.out_of_order.is_some();
        if !read_ahead {
            tokio::select! {
                _ = done_rx => {}
                _ = shutdown.wait_for(|s| *s) => break 'session,
                _ = &mut writer => break 'session,
            }
        }
    }
    tracing::debug!(client = id.0, "qmp::server: session end");
    tasks.abort_all();
    server.unregister(id);
    drop(tx);
    writer.abort();
    id
}

/// Runs in-band requests one after the other, as QEMU's dispatcher coroutine does.
async fn dispatcher(
    server: Server,
    id: ClientId,
    state: Arc<State>,
    mut queue: mpsc::Receiver<InBand>,
    tx: mpsc::Sender<Out>,
) {
    let mut held: Vec<Reply> = Vec::new();
    // Requests counted by `Faults::close_after`.
    let mut accepted: u64 = 0;
    loop {
        let next = if held.is_empty() {
            queue.recv().await
        } else {
            match tokio::time::timeout(OUT_OF_ORDER_WAIT, queue.recv()).await {
                Ok(next) => next,
                Err(_) => {
                    flush_reversed(&tx, &mut held, &server.faults()).await;
                    continue;
                }
            }
        };
        let Some(InBand { item, done }) = next else {
            break;
        };
        let faults = server.faults();
        if let Some(n) = faults.close_after {
            let command = match &item {
                Ok(Value::Object(d)) => d.get("execute").and_then(Value::as_str),
                _ => None,
            };
            if command.is_some_and(|c| faults.applies_to(c)) {
                if accepted >= n {
                    tracing::debug!(
                        client = id.0,
                        "qmp::server: fault: closing with a request unanswered"
                    );
                    let _ = tx.send(Out::Close).await;
                    break;
                }
                accepted += 1;
            }
        }
        if let Some(reply) = dispatch(&server, id, &state, item, &tx).await {
            let reorder = faults.out_of_order.filter(|_| {
                reply
                    .command
                    .as_deref()
                    .is_some_and(|c| faults.applies_to(c))
            });
            match reorder {
                Some(n) => {
                    held.push(reply);
                    if held.len() >= n.max(1) {
                        flush_reversed(&tx, &mut held, &faults).await;
                    }
                }
                None => send_reply(&tx, reply, &faults).await,
            }
        }
        let _ = done.send(());
    }
}

async fn flush_reversed(tx: &mpsc::Sender<Out>, held: &mut Vec<Reply>, faults: &Faults) {
    while let Some(r) = held.pop() {
        send_reply(tx, r, faults).await;
    }
}

/// Sends one reply (and the events queued for after it), injecting the reply faults
/// that apply to its command.
async fn send_reply(tx: &mpsc::Sender<Out>, reply: Reply, faults: &Faults) {
    let affected = reply
        .command
        .as_deref()
        .is_some_and(|c| faults.applies_to(c));
    if let Some(line) = reply.line {
        if affected {
            if !send_faulty(tx, line, reply.delimited, faults).await {
                return;
            }
        } else {
            // An agent that ignores ids ignores them in every reply, the sync's too
            // (a client learns from the sync whether ids are echoed).
            let line = if faults.strip_reply_ids {
                without_id(line)
            } else {
                line
            };
            let _ = tx.send(out_line(line, reply.delimited)).await;
        }
    }
    for ev in reply.trailing {
        let _ = tx.send(Out::Line(ev)).await;
    }
}

/// A reply line, preceded by 0xFF when `delimited`.
fn out_line(line: Vec<u8>, delimited: bool) -> Out {
    if delimited {
        Out::Delimited(line)
    } else {
        Out::Line(line)
    }
}

/// The reply `line` without its `id` member (as an agent that ignores ids sends it).
fn without_id(line: Vec<u8>) -> Vec<u8> {
    let Ok(mut reply) = serde_json::from_slice::<Map<String, Value>>(&line) else {
        return line;
    };
    if reply.remove("id").is_none() {
        return line;
    }
    // A map of Values always serializes.
    serde_json::to_vec(&reply).unwrap_or(line)
}

/// Sends a reply with faults; false when the connection is being closed.
async fn send_faulty(
    tx: &mpsc::Sender<Out>,
    line: Vec<u8>,
    delimited: bool,
    faults: &Faults,
) -> bool {
    if let Some(d) = faults.reply_delay {
        tokio::time::sleep(d).await;
    }
    if let Some(n) = faults.oversized_line {
        // A well-formed event padded to `n` bytes: only its size is wrong.
        let head = br#"{"event": "OVERSIZED", "data": {"pad": ""#;
        let tail = br#""}, "timestamp": {"seconds": 0, "microseconds": 0}}"#;
        let mut big = Vec::with_capacity(n.max(head.len() + tail.len()));
        big.extend_from_slice(head);
        big.resize(n.saturating_sub(tail.len()).max(head.len()), b'x');
        big.extend_from_slice(tail);
        let _ = tx.send(Out::Line(big)).await;
    }
    if faults.unknown_id_reply {
        let line = format!("{{\"return\": {{}}, \"id\": {}}}", u64::MAX);
        let _ = tx.send(Out::Line(line.into_bytes())).await;
    }
    if let Some(garbage) = &faults.garbage_before_reply {
        let _ = tx.send(Out::Line(garbage.clone())).await;
    }
    let line = if faults.strip_reply_ids {
        without_id(line)
    } else {
        line
    };
    if faults.close_mid_reply {
        let mut cut = Vec::with_capacity(line.len() / 2 + 1);
        if delimited {
            cut.push(DELIMITER);
        }
        cut.extend_from_slice(&line[..line.len() / 2]);
        let _ = tx.send(Out::CutAndClose(cut)).await;
        return false;
    }
    if faults.malformed_reply {
        let _ = tx
            .send(Out::Line(b"{\"return\": {\"broken\"".to_vec()))
            .await;
        return true;
    }
    if faults.duplicate_reply {
        let _ = tx.send(out_line(line.clone(), delimited)).await;
    }
    let _ = tx.send(out_line(line, delimited)).await;
    true
}

/// QEMU's qmp_dispatch() (and monitor_qmp_dispatch()'s negotiation-mode rewording).
async fn dispatch(
    server: &Server,
    client: ClientId,
    state: &State,
    item: Result<Value, QmpError>,
    tx: &mpsc::Sender<Out>,
) -> Option<Reply> {
    let negotiated = state.negotiated.load(Ordering::Acquire);
    let error = |e: QmpError| {
        Some(Reply {
            command: None,
            line: Some(reply_line(Err(e), None)),
            delimited: false,
            trailing: Vec::new(),
        })
    };
    let dict = match item {
        Err(e) => return error(e),
        Ok(Value::Object(dict)) => dict,
        Ok(_) => return error(QmpError::generic("QMP input must be a JSON object")),
    };
    let id_raw = protocol::raw_id(&dict);
    let trailing = Arc::new(Mutex::new(Vec::new()));
    let (command, result) = execute(server, client, state, &dict, negotiated, tx, &trailing).await;
    let trailing = std::mem::take(&mut *trailing.lock().unwrap_or_else(|p| p.into_inner()));
    // qemu-ga's guest-sync-delimited sets a flag that makes the next reply (its own)
    // start with 0xFF; when the command fails, nothing sets it.
    let delimited = server.shared().agent
        && command.as_deref() == Some(super::agent::SYNC_DELIMITED)
        && matches!(result, Some(Ok(_)));
    let line = result.map(|result| {
        let result = result.map_err(|e| protocol::in_negotiation_mode(e, negotiated));
        reply_line(result, id_raw.as_deref())
    });
    if line.is_none() && trailing.is_empty() {
        return None;
    }
    Some(Reply {
        command,
        line,
        delimited,
        trailing,
    })
}

/// Checks the request and runs the command. `None` as result: no reply at all.
async fn execute(
    server: &Server,
    client: ClientId,
    state: &State,
    dict: &Map<String, Value>,
    negotiated: bool,
    tx: &mpsc::Sender<Out>,
    trailing: &Trailing,
) -> (Option<String>, Option<Result<Value, QmpError>>) {
    let allow_oob_input = state.oob.load(Ordering::Acquire);
    let (name, oob) = match protocol::check_request(dict, allow_oob_input) {
        Ok((name, oob)) => (name.to_string(), oob),
        Err(e) => return (None, Some(Err(e))),
    };
    let result = run_command(
        server, client, state, dict, &name, oob, negotiated, tx, trailing,
    )
    .await;
    (Some(name), result)
}

#[allow(clippy::too_many_arguments)]
async fn run_command(
    server: &Server,
    client: ClientId,
    state: &State,
    dict: &Map<String, Value>,
    name: &str,
    oob: bool,
    negotiated: bool,
    tx: &mpsc::Sender<Out>,
    trailing: &Trailing,
) -> Option<Result<Value, QmpError>> {
    let shared = server.shared();
    let not_found = || {
        Some(Err(QmpError::command_not_found(format!(
            "The command {name} has not been found"
        ))))
    };
    let empty = Map::new();
    let args = dict
        .get("arguments")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    if name == protocol::QMP_CAPABILITIES && !shared.agent {
        let schema = match &shared.schema {
            Some(s) if s.command(name).is_some() => s,
            _ => &shared.caps_schema,
        };
        let enable_oob = match protocol::negotiate(schema, args, oob, negotiated, &shared.offered) {
            Ok(enable_oob) => enable_oob,
            Err(e) => return Some(Err(e)),
        };
        state.oob.store(enable_oob, Ordering::Release);
        state.negotiated.store(true, Ordering::Release);
        server.set_negotiated(client);
        let faults = server.faults();
        if let Some(n) = faults.event_flood {
            // Queue the reply first, then flood (the flood task starts after it).
            let mut line = Vec::new();
            let id = protocol::raw_id(dict);
            let _ = write_return(&mut line, &serde_json::json!({}), id.as_deref());
            let _ = tx.send(Out::Line(line)).await;
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..n {
                    let ev = encode_event("FLOOD", Some(&serde_json::json!({ "n": i })));
                    if tx.send(Out::Line(ev)).await.is_err() {
                        break;
                    }
                }
            });
            return None;
        }
        return Some(Ok(serde_json::json!({})));
    }
    if !negotiated {
        return not_found();
    }
    let registered = shared.handlers.get(name).or(shared.fallback.as_ref());
    let allow_oob = match &shared.schema {
        Some(schema) => match schema.command(name) {
            Some(info) => info.allow_oob,
            None => return not_found(),
        },
        None => match registered {
            Some(r) => r.allow_oob,
            None => return not_found(),
        },
    };
    if oob && !allow_oob {
        return Some(Err(QmpError::generic(format!(
            "The command {name} does not support OOB"
        ))));
    }
    if let Some(schema) = &shared.schema {
        if let Err(r) = schema.check_command(name, Some(args)) {
            return Some(Err(r.into()));
        }
    }
    let Some(registered) = registered else {
        return Some(Err(QmpError::generic(format!(
            "qmp::server: no handler registered for command {name}"
        ))));
    };
    let ctx = Ctx {
        client,
        command: name.to_string(),
        oob,
        server: server.clone(),
        trailing: trailing.clone(),
    };
    // In a task of its own, so that a panicking handler costs one error reply, not
    // the session.
    match tokio::spawn((registered.handler)(ctx, args.clone())).await {
        Ok(r) => r.transpose(),
        Err(e) => Some(Err(QmpError::generic(format!(
            "qmp::server: the handler of {name} failed: {e}"
        )))),
    }
}

async fn writer_task<W>(
    wr: W,
    mut rx: mpsc::Receiver<Out>,
    hook: Option<Arc<dyn TrafficHook>>,
    ending: LineEnding,
) where
    W: AsyncWrite + Send + Unpin + 'static,
{
    let mut w = LineWriter::with_line_ending(wr, ending);
    while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        while let Some(out) = item.take() {
            match out {
                Out::Line(line) => {
                    if let Some(h) = &hook {
                        h.message(Direction::ToClient, &String::from_utf8_lossy(&line));
                    }
                    w.push_bytes(&line);
                }
                Out::Delimited(line) => {
                    if let Some(h) = &hook {
                        h.message(Direction::ToClient, &String::from_utf8_lossy(&line));
                    }
                    // The line writer only appends whole lines: the 0xFF goes out first.
                    if w.flush().await.is_err()
                        || w.get_mut().write_all(&[DELIMITER]).await.is_err()
                    {
                        return;
                    }
                    w.push_bytes(&line);
                }
                Out::Raw(bytes) => {
                    if w.flush().await.is_err() || w.get_mut().write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Out::CutAndClose(bytes) => {
                    let _ = w.flush().await;
                    let inner = w.get_mut();
                    let _ = inner.write_all(&bytes).await;
                    let _ = inner.flush().await;
                    let _ = inner.shutdown().await;
                    return;
                }
                Out::Close => {
                    let _ = w.flush().await;
                    let _ = w.get_mut().shutdown().await;
                    return;
                }
            }
            // Coalesce what is already queued into one write.
            if w.pending() < 256 * 1024 {
                item = rx.try_recv().ok();
            }
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}
