//! The background half of a connection: the reader task, the writer task, the table
//! of pending calls, and the disconnect path.
//!
//! After the handshake, [`spawn`] starts three tasks:
//!
//! * the **writer** takes requests from an unbounded channel, drains everything that
//!   is queued into one buffer and writes it with one `write_all` (requests carrying
//!   file descriptors go out alone with `sendmsg`);
//! * the **reader** reads lines, routes replies to the waiting caller by `id` (a
//!   `HashMap<u64, oneshot::Sender>`, id-less replies to a FIFO of id-less callers)
//!   and fans events out, in batches, to a bounded queue per subscriber (`fanout.rs`);
//! * the **supervisor** waits for either to stop, stops the other, then fails every
//!   pending caller with the first error (each caller's copy names its command) and
//!   sets the connection state to `Idle`. Neither task can block it: both watch the
//!   shutdown token in every wait, so the disconnect completes even when the peer is
//!   dead or stops reading.
//!
//! With [`crate::Config::keepalive`], a fourth task sends `query-version` after
//! every stretch of silence and declares the peer dead (failing the connection)
//! when it is not answered in time.
//!
//! # Deadlines and how QEMU's end is noticed
//!
//! * **QEMU exits or is killed**: the kernel closes its socket; the reader sees the
//!   end of the stream (or `ECONNRESET`) at once and fails the connection with
//!   "QEMU closed the connection (…)"; every pending caller gets it with its
//!   command named and whether it was sent ("`query-status` was sent, but QEMU
//!   closed the connection before answering (it may have run): end of stream";
//!   `Error::may_have_run`, `Error::is_not_sent`).
//!   A write that meets `EPIPE` does the same.
//! * **QEMU stops reading** (stopped with `SIGSTOP`, hung, or its monitor
//!   saturated) while a write is under way: a write (one batch, at most 256 KiB)
//!   that does not complete within [`crate::Config::write_timeout`] fails the
//!   connection, since a half-written request leaves the stream unusable: there is
//!   no way to finish a request QEMU will not take, nor to send another after it.
//!   Small requests fit in the socket's buffer, so a stopped QEMU is usually noticed
//!   by call timeouts or the keepalive rather than by this.
//! * **QEMU stops answering** (stopped, or its main loop blocked) while reading
//!   still works: only the calls' own timeouts and the keepalive notice it.
//!
//! # User code
//!
//! No lock of the connection is held while user code runs: traffic hooks
//! ([`crate::traffic`]) are called by the caller that sends a request (before the
//! request is written or queued) and by the reader task for every line read (before
//! the line is acted on), with nothing locked, so a hook may call back into the
//! client.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, warn, Instrument};

use crate::codec::{CodecError, LineReader, LineWriter};
use crate::error::{Error, Limit, Phase, Progress, TimeoutStage};
use crate::events::RawEvent;
use crate::fanout::{Fanout, Overflow, ReaderView, Subscriber, Wakes};
use crate::latch::Latch;
use crate::message::{parse_client_id, write_request, ExecKind, Greeting, Incoming};
use crate::race::{race, First};
use crate::state::{ConnectionState, StateCell};
use crate::traffic::HookSlot;
use crate::unix;

/// How many recently abandoned (timed-out or cancelled) ids are remembered, so that
/// their late replies are logged as such rather than as unknown.
const ABANDONED_MEMORY: usize = 1024;
/// Most bytes the writer gathers into one write.
const MAX_BATCH: usize = 256 * 1024;

/// A reply line handed to the caller, who decodes it in its own task.
#[derive(Debug)]
pub(crate) struct ReplyLine {
    pub(crate) line: String,
    pub(crate) is_error: bool,
    /// Where the `return` value or the `error` member is in `line`.
    pub(crate) value: Range<usize>,
}

impl ReplyLine {
    pub(crate) fn value(&self) -> &str {
        &self.line[self.value.clone()]
    }
}

pub(crate) type ReplyResult = Result<ReplyLine, Error>;

/// How far a request has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Queued,
    Writing,
    Sent,
}

struct PendingCall {
    tx: oneshot::Sender<ReplyResult>,
    stage: Stage,
    command: Cow<'static, str>,
}

/// What [`Shared::abandon`] returns for a call that was still waiting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abandoned {
    /// How far its request had got.
    pub(crate) stage: Stage,
}

#[derive(Default)]
struct Pending {
    calls: HashMap<u64, PendingCall>,
    /// Callers of id-less requests, in the order their requests were written.
    idless: VecDeque<oneshot::Sender<ReplyResult>>,
    /// Ids of calls that timed out or were dropped, with their command.
    abandoned: VecDeque<(u64, Cow<'static, str>)>,
    /// Set once the connection is gone: new calls fail with it.
    closed: Option<Error>,
}

/// A request on its way to the writer.
pub(crate) struct Outgoing {
    /// The encoded line, terminator included.
    pub(crate) bytes: Vec<u8>,
    /// The id the caller registered, if any.
    pub(crate) id: Option<u64>,
    /// For id-less requests: where the reply goes.
    pub(crate) idless_reply: Option<oneshot::Sender<ReplyResult>>,
    /// File descriptors to pass with the request (Unix sockets only).
    pub(crate) fds: Vec<OwnedFd>,
    /// The rest of a request a caller started writing itself: it must be written even
    /// if the caller gave up, or the stream would be corrupt.
    pub(crate) must_send: bool,
    /// Already reported to the traffic hook (by a caller that tried writing it itself).
    pub(crate) reported: bool,
}

/// State shared by the client handles and the background tasks.
pub(crate) struct Shared {
    pending: Mutex<Pending>,
    gate: Mutex<WriteGate>,
    next_id: AtomicU64,
    events: Fanout,
    first_error: OnceLock<Error>,
    shutdown: Latch,
    pub(crate) state: StateCell,
    pub(crate) greeting: Greeting,
    pub(crate) oob: bool,
    pub(crate) fd_passing: bool,
    pub(crate) max_message: usize,
    /// Told about every line read and every request written.
    hook: HookSlot,
    /// The peer as error texts name it (a socket path, `tcp`, …).
    peer_name: String,
    /// When a line was last read, for the keepalive (`None` without one: the reader
    /// then takes no time stamps).
    activity: Option<Activity>,
    /// The peer's schema once fetched (`crate::peer`; empty and allocation-free
    /// until asked for).
    pub(crate) peer: crate::peer::PeerSlot,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock cannot leave the table inconsistent in a way
        // that matters more than losing the connection; keep going.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the error that ends the connection. Only the first one counts; later
    /// ones are logged.
    pub(crate) fn fail(&self, e: Error) {
        match self.first_error.set(e) {
            Ok(()) => {
                let e = self.first_error.get().expect("just set");
                debug!(target: "qmp::connection", error = %e, "connection failing");
                self.state.set(ConnectionState::Disconnecting);
            }
            Err(later) => {
                debug!(target: "qmp::connection", error = %later, "further error while disconnecting");
            }
        }
        self.shutdown.set();
    }

    /// Starts a disconnect initiated by the client.
    pub(crate) fn close(&self) {
        self.fail(Error::closed("closed by the client"));
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shutdown.is_set()
    }

    pub(crate) fn error_if_closed(&self) -> Option<Error> {
        self.lock().closed.clone()
    }

    /// The peer as error texts name it.
    #[allow(dead_code)] // for client.rs's errors
    pub(crate) fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// Allocates an id for a request nobody waits for (its reply, if any, is logged
    /// and dropped as unknown, never handed to another caller).
    pub(crate) fn unregistered_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Allocates a fresh id and registers the caller waiting for its reply.
    pub(crate) fn register(
        &self,
        command: Cow<'static, str>,
    ) -> Result<(u64, oneshot::Receiver<ReplyResult>), Error> {
        let (tx, rx) = oneshot::channel();
        let mut p = self.lock();
        if let Some(e) = &p.closed {
            return Err(e.for_call(&command, Progress::NotSent));
        }
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Never reuse an id that is still waiting (only conceivable after 2^64 calls).
        while p.calls.contains_key(&id) {
            id = self.next_id.fetch_add(1, Ordering::Relaxed);
        }
        p.calls.insert(
            id,
            PendingCall {
                tx,
                stage: Stage::Queued,
                command,
            },
        );
        Ok((id, rx))
    }

    /// Removes a call that gave up (timeout or drop). Returns its stage if it was
    /// still waiting, or `None` if the reply (or the
    /// connection's error) was already handed over.
    pub(crate) fn abandon(&self, id: u64) -> Option<Abandoned> {
        let mut p = self.lock();
        let call = p.calls.remove(&id)?;
        if p.abandoned.len() == ABANDONED_MEMORY {
            p.abandoned.pop_front();
        }
        p.abandoned.push_back((id, call.command));
        Some(Abandoned { stage: call.stage })
    }

    fn gate(&self) -> MutexGuard<'_, WriteGate> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a request: written directly when possible, else queued for the writer
    /// task. Returns `Err(())` when the writer task is gone.
    pub(crate) fn send(
        &self,
        tx: &mpsc::UnboundedSender<Box<Outgoing>>,
        mut m: Outgoing,
    ) -> Result<(), ()> {
        // From the first request on, new subscriptions no longer get the events that
        // arrived since negotiation.
        self.events.close_backlog();
        // The hook hears of the request here, in the caller's task, before the bytes
        // can go out (so before its reply can be read) and with no lock held: a hook
        // may call back into the client, even wait for another call (that call is
        // written and read by other tasks). The cost: two callers racing may be
        // reported in the other order than they are written, and a request whose
        // call is cancelled while still queued is reported but not written.
        if !m.reported {
            self.hook.sent(&m.bytes);
            m.reported = true;
        }
        let mut gate = self.gate();
        // Only a lone call writes itself: when others are in flight, their callers
        // are about to send more, and going through the writer task lets it coalesce
        // them into one write (pipelining wins more than the saved hand-off).
        if gate.queued == 0
            && m.fds.is_empty()
            && m.idless_reply.is_none()
            && self.lock().calls.len() <= 1
        {
            if let Some(direct) = &gate.direct {
                // One non-blocking syscall: nothing can interrupt it half-way.
                match direct.socket().try_write(&m.bytes) {
                    Ok(n) if n == m.bytes.len() => {
                        trace_sent(&m.bytes);
                        if let Some(id) = m.id {
                            self.set_stage(id, Stage::Sent);
                        }
                        return Ok(());
                    }
                    Ok(n) => {
                        // Partly written: the writer task must finish it, and QEMU
                        // may run it even if the call gives up (its timeout says so).
                        m.bytes.drain(..n);
                        m.must_send = true;
                        if let Some(id) = m.id {
                            self.set_stage(id, Stage::Writing);
                        }
                    }
                    // Nothing written (socket full, or an error the writer task will
                    // meet and report): queue the whole request.
                    Err(_) => {}
                }
            }
        }
        gate.queued += 1;
        // Boxed: the channel allocates its first block of slots up front, per
        // connection; slots of one pointer keep an idle connection small.
        tx.send(Box::new(m)).map_err(|_| ())
    }

    fn set_stage(&self, id: u64, stage: Stage) {
        if let Some(call) = self.lock().calls.get_mut(&id) {
            call.stage = stage;
        }
    }

    pub(crate) fn subscribe(
        &self,
        filter: Option<&'static str>,
        overflow: Option<Overflow>,
    ) -> Arc<Subscriber> {
        self.events.subscribe(filter, overflow)
    }

    /// Ends waits of a client that wants to know when the connection is down.
    pub(crate) async fn closed(&self) {
        self.shutdown.wait().await;
    }
}

/// The two halves of a transport.
pub(crate) enum WriteHalf {
    /// A Unix socket: file descriptors can be passed, and callers may write directly
    /// (see [`Shared::send`]), so the half is shared; with what a write that would
    /// block waits on.
    Unix(Arc<unix::Writer>, unix::WriteWait),
    Other(Box<dyn AsyncWrite + Send + Unpin>),
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Unix(w, wait) => unix::poll_write(w, wait, cx, buf),
            WriteHalf::Other(w) => std::pin::Pin::new(w).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            // Unix sockets have no user-space buffer to flush.
            WriteHalf::Unix(..) => std::task::Poll::Ready(Ok(())),
            WriteHalf::Other(w) => std::pin::Pin::new(w).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            // Dropping the last `Arc` shuts the write side down.
            WriteHalf::Unix(..) => std::task::Poll::Ready(Ok(())),
            WriteHalf::Other(w) => std::pin::Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Orders direct writes by callers against the writer task's queue.
///
/// A caller may write its request itself (one non-blocking `try_write`, which cannot
/// be interrupted by cancellation) only while nothing is queued for the writer task;
/// otherwise, or if the socket would block, the (rest of the) request is queued.
/// Both happen under this lock, so the bytes on the wire follow the order in which
/// callers took it. This saves the hand-off to the writer task on the common path
/// (one caller at a time, socket writable).
#[derive(Default)]
pub(crate) struct WriteGate {
    /// Requests handed to the writer task and not yet completely written.
    queued: usize,
    /// The socket, for direct writes (`None` for non-Unix streams, and after the
    /// connection closed, so the socket is not kept open by client handles).
    direct: Option<Arc<unix::Writer>>,
}

pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;

/// Options the background tasks need.
pub(crate) struct TaskOptions {
    pub(crate) event_capacity: usize,
    pub(crate) event_overflow: Overflow,
    pub(crate) greeting: Greeting,
    pub(crate) oob: bool,
    pub(crate) state: StateCell,
    pub(crate) peer: String,
    pub(crate) hook: HookSlot,
    /// The deadline of each write (`None`: none).
    pub(crate) write_timeout: Option<Duration>,
    /// `(interval, deadline)` of the keepalive, if any.
    pub(crate) keepalive: Option<(Duration, Duration)>,
}

/// Starts the reader, writer and supervisor tasks; returns the shared state and the
/// request channel.
pub(crate) fn spawn(
    reader: LineReader<ReadHalf>,
    writer: LineWriter<WriteHalf>,
    opts: TaskOptions,
) -> (Arc<Shared>, mpsc::UnboundedSender<Box<Outgoing>>) {
    let fd_passing = matches!(writer.get_ref(), WriteHalf::Unix(..));
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        gate: Mutex::new(WriteGate {
            queued: 0,
            direct: match writer.get_ref() {
                WriteHalf::Unix(w, _) => Some(w.clone()),
                WriteHalf::Other(_) => None,
            },
        }),
        next_id: AtomicU64::new(1),
        events: Fanout::new(opts.event_capacity, opts.event_overflow),
        first_error: OnceLock::new(),
        shutdown: Latch::new(),
        state: opts.state,
        greeting: opts.greeting,
        oob: opts.oob,
        fd_passing,
        max_message: reader.max_line(),
        hook: opts.hook,
        peer: crate::peer::PeerSlot::default(),
        peer_name: opts.peer.clone(),
        activity: opts.keepalive.map(|_| Activity::new()),
    });
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::debug_span!("qmp", peer = %opts.peer);
    let reader_task = tokio::spawn(read_loop(reader, shared.clone()).instrument(span.clone()));
    let writer_task = tokio::spawn(
        write_loop(writer, rx, shared.clone(), opts.write_timeout).instrument(span.clone()),
    );
    if let Some((interval, deadline)) = opts.keepalive {
        // A weak sender: the keepalive must not keep the connection open once every
        // client handle is gone.
        tokio::spawn(
            keepalive(shared.clone(), tx.downgrade(), interval, deadline).instrument(span.clone()),
        );
    }
    tokio::spawn(supervise(reader_task, writer_task, shared.clone()).instrument(span));
    (shared, tx)
}

async fn supervise(
    mut reader: tokio::task::JoinHandle<()>,
    mut writer: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
) {
    let first_reader = match race(&mut reader, &mut writer).await {
        First::A(r) => {
            note_join("reader", r, &shared);
            true
        }
        First::B(w) => {
            note_join("writer", w, &shared);
            false
        }
    };
    // Whatever stopped first, stop the other. Both watch the token in every wait;
    // the timeout and abort are a last resort so this path always completes.
    shared.shutdown.set();
    let other = if first_reader {
        &mut writer
    } else {
        &mut reader
    };
    if tokio::time::timeout(Duration::from_secs(5), &mut *other)
        .await
        .is_err()
    {
        warn!(target: "qmp::connection", "background task did not stop; aborting it");
        other.abort();
    }
    if shared.first_error.get().is_none() {
        shared.fail(Error::closed("all client handles were dropped"));
    }
    let error = shared
        .first_error
        .get()
        .cloned()
        .unwrap_or_else(|| Error::closed("connection closed"));
    shared.state.set(ConnectionState::Disconnecting);
    // Client handles must not keep the socket open.
    shared.gate().direct = None;
    // Event streams end once they have yielded what they hold.
    shared.events.close();
    let (calls, idless) = {
        let mut p = shared.lock();
        p.closed = Some(error.clone());
        (std::mem::take(&mut p.calls), std::mem::take(&mut p.idless))
    };
    let n = calls.len() + idless.len();
    for (_, call) in calls {
        // Each caller learns which of its commands the connection's end cut off, and
        // whether QEMU may have run it. The stages are final: the writer has stopped,
        // and a caller writing directly sets its stage under the gate lock taken above.
        let progress = match call.stage {
            Stage::Queued => Progress::NotSent,
            Stage::Writing => Progress::Writing,
            Stage::Sent => Progress::Sent,
        };
        let _ = call.tx.send(Err(error.for_call(&call.command, progress)));
    }
    // Id-less callers were queued here just before their request was written; they
    // name their command themselves (`Client::wait`).
    for tx in idless {
        let _ = tx.send(Err(error.clone()));
    }
    debug!(target: "qmp::connection", failed_calls = n, error = %error, "disconnected");
    shared.state.set(ConnectionState::Idle);
}

fn note_join(task: &str, r: Result<(), tokio::task::JoinError>, shared: &Shared) {
    if let Err(e) = r {
        shared.fail(Error::protocol(format!("the {task} task failed: {e}")));
    }
}

/// Most events the reader gathers before handing them to subscribers.
const MAX_EVENT_BATCH: usize = 256;

/// How long the peer must stay quiet before the reader lets go of the event batches
/// it keeps to free itself (fanout.rs, `RETIRED`).
const RELEASE_RETIRED_AFTER: Duration = Duration::from_millis(100);

async fn read_loop(mut reader: LineReader<ReadHalf>, shared: Arc<Shared>) {
    let mut batch: Vec<RawEvent> = Vec::new();
    let mut view = ReaderView::default();
    // Subscribers given events but not woken yet (see `Wakes`); woken at the latest
    // before this task waits, and when it ends (on drop).
    let mut wakes = Wakes::default();
    loop {
        // Events go out in batches: whenever the next line is not already buffered
        // (so never held while waiting for the peer), when the batch is full, and
        // before any reply (below). One lock per subscriber per batch.
        if !batch.is_empty() && (batch.len() >= MAX_EVENT_BATCH || !reader.line_ready()) {
            let delivered = batch.len();
            if shared
                .events
                .deliver(&mut view, &mut batch, &shared.shutdown, &mut wakes)
                .await
                .is_err()
            {
                return;
            }
            // Each event counts against the task's cooperative budget, so during a
            // flood the reader yields every so often: on a current-thread runtime,
            // subscribers get to run before their buffers fill up.
            for _ in 0..delivered {
                tokio::task::consume_budget().await;
            }
        }
        let line = if reader.line_ready() {
            // Buffered: `next_line` returns at once, so there is nothing to race the
            // shutdown against (a wait future per line cost ~6 % of a flood).
            if shared.shutdown.is_set() {
                return;
            }
            reader.next_line().await
        } else {
            // About to wait for the peer: every subscriber with news must run.
            wakes.wake_all();
            if view.holds_retired() {
                // Batches kept to be freed here (fanout.rs, `RETIRED`): if the peer
                // stays quiet, let go of them, so an idle connection holds none.
                let quiet = tokio::time::sleep(RELEASE_RETIRED_AFTER);
                match race(shared.shutdown.wait(), race(reader.wait_line(), quiet)).await {
                    First::A(()) => return,
                    First::B(First::A(Ok(()))) => {}
                    First::B(First::A(Err(e))) => {
                        shared.fail(io_failure("reading", e));
                        return;
                    }
                    First::B(First::B(())) => view.release_retired(),
                }
            }
            match race(shared.shutdown.wait(), reader.next_line()).await {
                First::A(()) => return,
                First::B(line) => line,
            }
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) => {
                shared.fail(Error::peer_gone("end of stream", None));
                return;
            }
            Err(CodecError::Io(e)) => {
                shared.fail(io_failure("reading", e));
                return;
            }
            Err(e) => {
                shared.fail(Error::protocol_with("bad input from the peer".into(), e));
                return;
            }
        };
        if let Some(a) = &shared.activity {
            a.touch();
        }
        // No lock is held here: the hook may call back into the client (though not
        // wait for a reply, which this task would have to read).
        shared.hook.received(line);
        let incoming = match Incoming::parse(line) {
            Ok(i) => i,
            Err(e) => {
                let shown: String = line.chars().take(200).collect();
                shared.fail(Error::protocol_with(
                    format!("peer sent a line that is not a QMP message: {shown}"),
                    e,
                ));
                return;
            }
        };
        let reply = match incoming {
            Incoming::Event {
                name,
                data,
                timestamp,
            } => {
                debug!(target: "qmp::wire", event = %name, "event");
                trace!(target: "qmp::wire", json = line, "recv");
                // Nobody subscribed (and too late for the backlog): nothing to allocate.
                if shared.events.wanted() {
                    batch.push(RawEvent::new(line, &name, data, timestamp));
                }
                continue;
            }
            Incoming::Return { id, value } => (id, false, value.get()),
            Incoming::Error { id, error } => (id, true, error.get()),
            Incoming::Greeting(_) => {
                warn!(target: "qmp::wire", "ignoring a second greeting");
                continue;
            }
            Incoming::Request { .. } | Incoming::Unknown => {
                let shown: String = line.chars().take(200).collect();
                warn!(target: "qmp::wire", line = %shown, "ignoring a message that is neither a reply nor an event");
                continue;
            }
        };
        // Events received before a reply reach the subscribers (and wake them)
        // before the caller gets the reply.
        if !batch.is_empty()
            && shared
                .events
                .deliver(&mut view, &mut batch, &shared.shutdown, &mut wakes)
                .await
                .is_err()
        {
            return;
        }
        wakes.wake_all();
        let (id, is_error, value) = reply;
        deliver(&shared, line, id, is_error, value);
    }
}

fn deliver(
    shared: &Shared,
    line: &str,
    id: Option<&serde_json::value::RawValue>,
    is_error: bool,
    value: &str,
) {
    let start = value.as_ptr() as usize - line.as_ptr() as usize;
    let make = || ReplyLine {
        line: line.to_owned(),
        is_error,
        value: start..start + value.len(),
    };
    let Some(id) = id else {
        let waiter = shared.lock().idless.pop_front();
        match waiter {
            Some(tx) => {
                debug!(target: "qmp::wire", is_error, "reply without id");
                trace!(target: "qmp::wire", json = line, "recv");
                let _ = tx.send(Ok(make()));
            }
            None => {
                warn!(target: "qmp::wire", reply = line, "dropping a reply without id that nobody waits for")
            }
        }
        return;
    };
    let Some(n) = parse_client_id(id) else {
        warn!(target: "qmp::wire", id = id.get(), "dropping a reply with an id this client never used");
        return;
    };
    let mut p = shared.lock();
    if let Some(call) = p.calls.remove(&n) {
        drop(p);
        debug!(target: "qmp::wire", id = n, command = %call.command, is_error, "reply");
        trace!(target: "qmp::wire", json = line, "recv");
        let _ = call.tx.send(Ok(make()));
    } else if let Some((_, command)) = p.abandoned.iter().find(|(i, _)| *i == n) {
        warn!(target: "qmp::wire", id = n, command = %command, "dropping a late reply: its caller timed out or gave up");
    } else {
        warn!(target: "qmp::wire", id = n, "dropping a reply with an unknown id");
    }
}

async fn write_loop(
    mut writer: LineWriter<WriteHalf>,
    mut rx: mpsc::UnboundedReceiver<Box<Outgoing>>,
    shared: Arc<Shared>,
    write_timeout: Option<Duration>,
) {
    let mut batch: Vec<Outgoing> = Vec::new();
    let mut written_ids: Vec<u64> = Vec::new();
    loop {
        let first = match race(shared.shutdown.wait(), rx.recv()).await {
            First::A(()) => return,
            First::B(m) => m,
        };
        let Some(first) = first else {
            // Every client handle is gone: close the connection.
            debug!(target: "qmp::connection", "all client handles dropped");
            return;
        };
        batch.push(*first);
        let mut size = batch[0].bytes.len();
        while size < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    size += m.bytes.len();
                    batch.push(*m);
                }
                Err(_) => break,
            }
        }
        let count = batch.len();
        let writing = write_batch(&mut writer, &mut batch, &mut written_ids, &shared);
        let bounded = async {
            match write_timeout {
                Some(t) => tokio::time::timeout(t, writing).await.map_err(|_| t),
                None => Ok(writing.await),
            }
        };
        let result = match race(shared.shutdown.wait(), bounded).await {
            First::A(()) => return,
            First::B(r) => r,
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shared.fail(io_failure("writing", e));
                return;
            }
            Err(limit) => {
                shared.fail(write_deadline_error(&shared.peer_name, limit));
                return;
            }
        }
        shared.gate().queued -= count;
    }
}

/// Writes a batch: everything up to a request with fds goes out in one write, a
/// request with fds goes alone.
async fn write_batch(
    writer: &mut LineWriter<WriteHalf>,
    batch: &mut Vec<Outgoing>,
    written_ids: &mut Vec<u64>,
    shared: &Shared,
) -> std::io::Result<()> {
    let mut items = std::mem::take(batch).into_iter().peekable();
    while items.peek().is_some() {
        let mut with_fds = None;
        {
            let mut p = shared.lock();
            for mut m in items.by_ref() {
                if let Some(id) = m.id {
                    match p.calls.get_mut(&id) {
                        Some(call) => call.stage = Stage::Writing,
                        None if m.must_send => {}
                        None => {
                            // The caller gave up before the request went out: don't send it.
                            debug!(target: "qmp::wire", id, "not sending an abandoned request");
                            continue;
                        }
                    }
                    written_ids.push(id);
                }
                if let Some(tx) = m.idless_reply.take() {
                    if tx.is_closed() {
                        continue;
                    }
                    // Queued before writing, so the reply cannot come first.
                    p.idless.push_back(tx);
                }
                trace_sent(&m.bytes);
                // Every request was reported by `Shared::send`, in its caller's task:
                // never here, under the lock.
                debug_assert!(m.reported);
                if m.fds.is_empty() {
                    writer.push_bytes(strip_newline(&m.bytes));
                } else {
                    with_fds = Some(m);
                    break;
                }
            }
        }
        writer.flush().await?;
        if let Some(m) = with_fds {
            send_with_fds(writer.get_mut(), &m.bytes, &m.fds).await?;
        }
        if !written_ids.is_empty() {
            let mut p = shared.lock();
            for id in written_ids.drain(..) {
                if let Some(call) = p.calls.get_mut(&id) {
                    call.stage = Stage::Sent;
                }
            }
        }
    }
    Ok(())
}

fn trace_sent(bytes: &[u8]) {
    if tracing::enabled!(target: "qmp::wire", tracing::Level::TRACE) {
        // A log is read by more people than the session's peer: secret members go
        // out redacted (crate::secrets), whatever the subscriber does with them.
        let text = String::from_utf8_lossy(bytes);
        let text = crate::secrets::redact_line(text.trim_end());
        trace!(target: "qmp::wire", json = %text, "send");
    }
}

fn strip_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// Sends `bytes` with `fds` attached to the first byte(s) (`SCM_RIGHTS`), then the rest.
async fn send_with_fds(w: &mut WriteHalf, bytes: &[u8], fds: &[OwnedFd]) -> std::io::Result<()> {
    let WriteHalf::Unix(half, _) = w else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "file descriptors can only be passed over Unix sockets",
        ));
    };
    let socket = half.socket();
    let sent = loop {
        match socket.try_send_with_fds(bytes, fds) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => return Err(e),
        }
    };
    debug!(target: "qmp::wire", fds = fds.len(), "sent file descriptors");
    if sent < bytes.len() {
        crate::io::write_all(w, &bytes[sent..]).await?;
    }
    Ok(())
}

/// Turns the outcome of a timed-out call into an error stating the caller's limit;
/// the caller has already removed its entry (`a` is what [`Shared::abandon`] returned).
pub(crate) fn timeout_error_within(command: &str, a: Abandoned, limit: Duration) -> Error {
    match a.stage {
        Stage::Queued => Error::call_timeout(command, TimeoutStage::NotSent, limit),
        Stage::Writing => Error::call_timeout_writing(command, limit),
        Stage::Sent => Error::call_timeout(command, TimeoutStage::Unanswered, limit),
    }
}

/// The error for an I/O error met while `doing` ("reading", "writing"): the peer
/// going away (reset, broken pipe) reads as such; anything else stays an I/O error.
fn io_failure(doing: &str, e: std::io::Error) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            let how = match e.kind() {
                K::BrokenPipe => format!("broken pipe while {doing}"),
                K::UnexpectedEof => format!("end of stream while {doing}"),
                _ => format!("connection reset while {doing}"),
            };
            Error::peer_gone(&how, Some(e))
        }
        _ => Error::io(&format!("{doing} the connection to QEMU"), e),
    }
}

/// The error that ends a connection whose write QEMU did not take within `limit`.
fn write_deadline_error(peer: &str, limit: Duration) -> Error {
    Error::deadline(
        Phase::Write,
        limit,
        None,
        format!(
            "could not write to {peer} within {}: QEMU stopped reading (stopped, hung, or \
             its monitor saturated); the connection is closed, since a half-written \
             request leaves the stream unusable",
            Limit(limit)
        ),
        true,
    )
}

/// When the reader last read a line, for the keepalive: milliseconds since `base`
/// (a time stamp per line only when a keepalive is configured).
pub(crate) struct Activity {
    base: tokio::time::Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            base: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> tokio::time::Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The keepalive's command. `query-version` because it has no effect at all (it
/// reads constants), takes no arguments, exists in every QEMU and
/// `qemu-storage-daemon` since QMP itself, is allowed in every run state, and its
/// reply is tiny. It runs in-band on QEMU's main loop, like the calls it guards: an
/// answer means QEMU can still run commands, not merely that its socket is open.
pub(crate) const KEEPALIVE_COMMAND: &str = "query-version";

/// Sends [`KEEPALIVE_COMMAND`] after every `interval` without a line from the peer,
/// and fails the connection when one is not answered within `deadline`. One ping at
/// a time; any answer (even an error reply) counts.
async fn keepalive(
    shared: Arc<Shared>,
    tx: mpsc::WeakUnboundedSender<Box<Outgoing>>,
    interval: Duration,
    deadline: Duration,
) {
    let Some(activity) = &shared.activity else {
        return;
    };
    loop {
        // Sleep until `interval` has passed since the last line read, re-checking
        // when lines keep coming.
        loop {
            let wake = activity.last() + interval;
            if tokio::time::Instant::now() >= wake {
                break;
            }
            if let First::A(()) = race(shared.shutdown.wait(), tokio::time::sleep_until(wake)).await
            {
                return;
            }
        }
        let Some(sender) = tx.upgrade() else {
            return;
        };
        let Ok((id, rx)) = shared.register(Cow::Borrowed(KEEPALIVE_COMMAND)) else {
            return;
        };
        let mut bytes = Vec::with_capacity(48);
        if write_request(
            &mut bytes,
            ExecKind::Execute,
            KEEPALIVE_COMMAND,
            None::<&()>,
            Some(id),
        )
        .is_err()
        {
            return;
        }
        bytes.push(b'\n');
        debug!(target: "qmp::connection", id, "keepalive");
        let sent = shared.send(
            &sender,
            Outgoing {
                bytes,
                id: Some(id),
                idless_reply: None,
                fds: Vec::new(),
                must_send: false,
                reported: false,
            },
        );
        drop(sender);
        if sent.is_err() {
            return;
        }
        match race(shared.shutdown.wait(), tokio::time::timeout(deadline, rx)).await {
            First::A(()) => return,
            // Answered (or the connection ended: the loop then stops at `register`).
            First::B(Ok(_)) => {
                // Silence is counted from the answer.
                activity.touch();
            }
            First::B(Err(_)) => {
                shared.abandon(id);
                shared.fail(Error::deadline(
                    Phase::Keepalive,
                    deadline,
                    None,
                    format!(
                        "QEMU did not answer the keepalive (`{KEEPALIVE_COMMAND}`, sent after \
                         {} of silence) within {} on {}: declared dead; the connection is \
                         closed",
                        Limit(interval),
                        Limit(deadline),
                        shared.peer_name
                    ),
                    true,
                ));
                return;
            }
        }
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use std::time::Duration;

    use crate::server::Server;

    /// The reader keeps the batches it shared among several subscribers to free them
    /// itself (fanout.rs, `RETIRED`), but lets go of them once the peer is quiet for
    /// `RELEASE_RETIRED_AFTER`: an idle connection holds no batch, so the last handle
    /// to an event is the program's own.
    #[tokio::test]
    async fn an_idle_reader_lets_go_of_the_batches_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peer.sock");
        let server = Server::builder()
            .handle_raw("query-status", false, |ctx, _| async move {
                for n in 0..3 {
                    ctx.server
                        .emit_raw("E", Some(serde_json::json!({ "n": n })))
                        .await;
                }
                Ok(serde_json::json!({}))
            })
            .build();
        let _listening = server.listen_unix(&path).await.unwrap();
        let client = crate::Config::new().connect_unix(&path).await.unwrap();
        let mut a = client.subscribe_raw();
        let mut b = client.subscribe_raw();
        client
            .execute_raw("query-status", None::<&serde_json::Value>)
            .await
            .unwrap();
        let mut kept = None;
        for _ in 0..3 {
            let ev = a.next().await.unwrap().unwrap();
            kept.get_or_insert(ev);
            b.next().await.unwrap().unwrap();
        }
        // The streams let go of their batches; the reader's copies are all that is
        // left besides ours, until the peer has been quiet for a while.
        drop((a, b));
        let kept = kept.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !kept.is_sole() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the reader still holds the batch after 10 s of quiet"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(super::RELEASE_RETIRED_AFTER < Duration::from_secs(10));
    }
}
