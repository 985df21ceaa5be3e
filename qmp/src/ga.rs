//! A client for the QEMU guest agent (`qemu-ga`), which speaks QMP's JSON but not its
//! protocol.
//!
//! The agent sends no greeting and negotiates no capabilities; old agents ignore
//! `id`; a reply meant for an earlier client (which gave up, timed out or crashed)
//! can still be in the stream when a new client connects, or half a request may be
//! in the agent's parser; and on a virtio-serial port the socket is up as soon as the
//! VM is, long before the agent runs. So [`Client`] does not trust the stream until
//! it has synchronised it with `guest-sync-delimited`:
//!
//! 1. it writes one 0xFF byte and, in the same write, `guest-sync-delimited` with a
//!    fresh random id. The 0xFF makes the agent's JSON parser drop whatever partial
//!    request it holds (qemu-ga answers it with a parse error, which comes before
//!    the delimiter below and is dropped with everything else);
//! 2. it discards every byte up to the 0xFF the agent sends right before the reply
//!    to `guest-sync-delimited` (0xFF never occurs in UTF-8 JSON, so stale replies
//!    and partial lines are skipped without being parsed), and reads the line after
//!    it: if it is `{"return": <that id>}` the stream is in sync; if it is the reply
//!    to an older sync, it skips to the next 0xFF;
//! 3. only then does it send a command.
//!
//! It synchronises on connect, and again before the next command after anything
//! that leaves the stream's state unknown: a timeout or cancelled call (its reply
//! may come later), a line that is not a reply (garbage), a reply with an id it did
//! not send, and a command that never answers (below). Stale replies and partial
//! lines therefore never reach a caller.
//!
//! # Ordering, and agents that ignore ids
//!
//! Commands are sent one at a time, in the order their calls were first polled: the
//! next request is written only when the previous one is answered (or given up, which
//! forces a resync). qemu-ga runs commands one after another in its main loop anyway,
//! so pipelining would save little, and serving one command at a time is what makes
//! agents that ignore `id` safe: on a synchronised stream with one request
//! outstanding, a reply without `id` can only be that request's. Such a reply to a
//! request that carried an id is how such an agent is detected
//! ([`Client::agent_ignores_ids`]); nothing else changes for it. Whether the agent
//! echoes ids is learnt at every sync (its request carries an id too): from an agent
//! that does, a successful reply without an id answers nothing (noise on a serial
//! line, say) and is dropped like garbage, while an error without one is still the
//! call's (qemu-ga leaves the id out when it could not parse the request).
//!
//! # Commands that never answer
//!
//! A command with `success-response: false` (`guest-shutdown`, `guest-suspend-*`;
//! [`Command::SUCCESS_RESPONSE`]) returns as soon as it is written. The agent may
//! still answer with an error (e.g. no permission); the resync before the next
//! command drops it. If the agent then disappears, calls fail with
//! [`ErrorKind::Closed`](crate::ErrorKind::Closed) saying it closed the connection
//! after that command, logged at `debug` rather than `warn`: it is what the command
//! does.
//!
//! # Timeouts, cancellation, disconnect
//!
//! [`Config::call_timeout`] (or [`Client::with_timeout`]) bounds a whole call,
//! including the time it waits behind other calls and a resync: it fails with
//! [`ErrorKind::Timeout`](crate::ErrorKind::Timeout), stage `NotSent` if the request
//! was not written, `Unanswered` if it was; the connection then resynchronises before
//! the next command. Each synchronisation waits at most [`Config::sync_timeout`]; a
//! call whose sync is not answered fails with a timeout naming the agent and the
//! wait, and the next call tries again (an agent that is not up yet). Dropping a
//! call's future cancels it the same way. When the agent closes the connection or
//! an I/O error occurs, the call in progress, every queued call and every later call
//! fail with that error ([`crate::Error::is_closed`]); [`Client::close`] does the
//! same with a "closed by the client" error. The connection closes when the last
//! handle is dropped.
//!
//! One background task owns the stream. It shares the framing
//! ([`crate::codec::LineReader`], with [`LineReader::skip_through`] for the
//! delimiter, and [`crate::codec::LineWriter`]), the request encoding, the reply
//! decoding and the error type with the QMP [`crate::Client`], but not its id-routing
//! reader and writer tasks, which pipeline requests and so cannot resynchronise.
//!
//! # Reaching the agent
//! [`Config::connect_unix`] (QEMU's chardev socket for the agent's virtio-serial
//! port, or qemu-ga's own), [`Config::connect_path`] (a socket or a character
//! device: the pty QEMU makes with `-chardev pty`, put in raw mode), and
//! [`Config::connect_stream`] (anything else).
//!
//! Logging: target `qmp::ga`, inside a `qmp-ga` span with the peer; the JSON at
//! `trace`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), qmp::Error> {
//! use std::time::Duration;
//! # #[derive(serde::Serialize)] struct GuestPing {}
//! # impl qmp::Command for GuestPing { const NAME: &'static str = "guest-ping"; type Reply = qmp::Empty; }
//! // With the bindings: `use qemu_qapi::ga::commands::GuestPing;`
//! let agent = qmp::ga::Config::new()
//!     .wait_for_agent(Some(Duration::from_secs(30))) // the VM may still be booting
//!     .call_timeout(Some(Duration::from_secs(10)))
//!     .connect_unix("/run/vm/qga.sock")
//!     .await?;
//! agent.execute(&GuestPing {}).await?;
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, trace, warn, Instrument};

use crate::client::{decode_no_reply, decode_reply};
use crate::codec::{CodecError, LineReader, LineWriter, DEFAULT_MAX_LINE};
use crate::connection::{ReadHalf, ReplyLine, WriteHalf};
use crate::error::{Error, Limit, Result, TimeoutStage};
use crate::latch::Latch;
use crate::message::{parse_client_id, write_request, ExecKind, Incoming};
use crate::race::{race, First};
use crate::Command;

/// The byte the agent sends before its `guest-sync-delimited` reply, and the client
/// sends to reset the agent's parser.
const DELIMITER: u8 = 0xFF;
/// The default for [`Config::sync_timeout`].
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(5);
/// Between attempts to reach an agent that is not up yet.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);
const SYNC: &str = "guest-sync-delimited";

/// How to connect to a guest agent; [`Config::new`] for the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    call_timeout: Option<Duration>,
    sync_timeout: Duration,
    wait_for_agent: Option<Duration>,
    max_message: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl Config {
    /// No call timeout, [`DEFAULT_SYNC_TIMEOUT`], no waiting for an agent that is not
    /// up, 16 MiB messages.
    pub fn new() -> Self {
        Config {
            call_timeout: None,
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
            wait_for_agent: None,
            max_message: DEFAULT_MAX_LINE,
        }
    }

    /// The default timeout of every call of the client (see the module docs).
    pub fn call_timeout(&mut self, t: Option<Duration>) -> &mut Self {
        self.call_timeout = t;
        self
    }

    /// How long one synchronisation waits for the agent's reply (at connect, and
    /// before a command after a timeout or garbage).
    pub fn sync_timeout(&mut self, t: Duration) -> &mut Self {
        self.sync_timeout = t;
        self
    }

    /// How long connecting waits for an agent that is not up yet: for
    /// [`connect_unix`](Self::connect_unix), the socket to exist and accept; then,
    /// for every connect function, the agent to answer the first sync (re-sent every
    /// [`sync_timeout`](Self::sync_timeout), each time with a new id). `None` (the
    /// default): one attempt, the sync waiting `sync_timeout`.
    pub fn wait_for_agent(&mut self, t: Option<Duration>) -> &mut Self {
        self.wait_for_agent = t;
        self
    }

    /// The longest line accepted from the agent (a longer one is dropped as garbage).
    pub fn max_message_size(&mut self, bytes: usize) -> &mut Self {
        self.max_message = bytes.max(1);
        self
    }

    /// Connects to the agent's Unix socket: qemu-ga's own (`qemu-ga -m unix-listen
    /// -p PATH`) or the QEMU chardev of its virtio-serial port (`-chardev
    /// socket,path=PATH,server=on,wait=off,id=qga0 -device virtserialport,
    /// chardev=qga0,name=org.qemu.guest_agent.0`), and synchronises.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) naming the socket and the
    /// wait when no agent answered in time (its source is the last error met, e.g.
    /// the socket does not exist); I/O errors without
    /// [`wait_for_agent`](Self::wait_for_agent).
    pub async fn connect_unix(&self, path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let peer = path.display().to_string();
        let started = Instant::now();
        let Some(wait) = self.wait_for_agent else {
            let stream = UnixStream::connect(path)
                .await
                .map_err(|e| Error::io(&format!("connecting to {peer}"), e))?;
            let (r, w) = crate::connect::split_unix(stream)?;
            return self.start(r, w, peer, None).await;
        };
        let deadline = started + wait;
        loop {
            let attempt = async {
                let stream = UnixStream::connect(path)
                    .await
                    .map_err(|e| Error::io(&format!("connecting to {peer}"), e))?;
                let (r, w) = crate::connect::split_unix(stream)?;
                self.start(r, w, peer.clone(), Some(deadline)).await
            };
            let last = match attempt.await {
                Ok(client) => return Ok(client),
                // A timeout already names the agent and the wait.
                Err(e) if e.is_timeout() => return Err(e),
                Err(e) => e,
            };
            if Instant::now() + RETRY_INTERVAL >= deadline {
                return Err(Error::waited(
                    SYNC,
                    format!(
                        "no guest agent answered at {peer} within {} (`wait_for_agent`)",
                        Limit(wait)
                    ),
                    Some(last),
                ));
            }
            debug!(target: "qmp::ga", %peer, error = %last, "guest agent not up yet; retrying");
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    /// Connects to the agent at a path, whichever kind it is: a Unix socket (as
    /// [`connect_unix`](Self::connect_unix)), or a character device, the host end of
    /// the agent's serial port when QEMU exposes it as a pseudo-terminal (`-chardev
    /// pty,id=qga0 -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0`,
    /// or an `isa-serial` port on such a chardev; QEMU prints "char device redirected
    /// to /dev/pts/N"). A terminal is put in raw mode. Then it synchronises, as every
    /// connect does; the stale bytes a serial line holds are dropped by the sync.
    ///
    /// # Errors
    /// As [`connect_unix`](Self::connect_unix); a path that is neither a socket nor a
    /// character device is an I/O error saying what it is. With
    /// [`wait_for_agent`](Self::wait_for_agent), a path that does not exist yet is
    /// waited for.
    pub async fn connect_path(&self, path: impl AsRef<Path>) -> Result<Client> {
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        let peer = path.display().to_string();
        let deadline = self.wait_for_agent.map(|w| Instant::now() + w);
        let kind = loop {
            match std::fs::metadata(path) {
                Ok(m) => break m.file_type(),
                Err(e) => match deadline {
                    Some(d) if e.kind() == std::io::ErrorKind::NotFound && Instant::now() < d => {
                        tokio::time::sleep(RETRY_INTERVAL).await
                    }
                    _ => return Err(Error::io(&format!("connecting to {peer}"), e)),
                },
            }
        };
        if kind.is_socket() {
            return self.connect_unix(path).await;
        }
        if !kind.is_char_device() {
            let what = if kind.is_dir() {
                "a directory"
            } else if kind.is_file() {
                "a regular file"
            } else if kind.is_fifo() {
                "a FIFO"
            } else {
                "neither"
            };
            return Err(Error::io(
                &format!("connecting to {peer}"),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "{peer} is {what}: a guest agent is reached through a Unix socket \
                         or a character device (a pty QEMU created for its serial port)"
                    ),
                ),
            ));
        }
        let (r, w) = crate::chardev::open(path)
            .map_err(|e| Error::io(&format!("opening the character device {peer}"), e))?;
        self.start(Box::new(r), WriteHalf::Other(Box::new(w)), peer, deadline)
            .await
    }

    /// Speaks to the agent over any stream (a connected socket, `tokio::io::duplex`…)
    /// and synchronises.
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) when the agent does not
    /// answer the sync in time; [`crate::Error::is_closed`] errors when the stream
    /// ends or fails.
    pub async fn connect_stream<S>(&self, stream: S) -> Result<Client>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = crate::connect::split_other(stream);
        let deadline = self.wait_for_agent.map(|w| Instant::now() + w);
        self.start(r, w, "stream".into(), deadline).await
    }

    /// Synchronises (re-sending the sync until `deadline`, or once), then starts the
    /// background task.
    async fn start(
        &self,
        r: ReadHalf,
        w: WriteHalf,
        peer: String,
        deadline: Option<Instant>,
    ) -> Result<Client> {
        let span = tracing::debug_span!("qmp-ga", peer = %peer);
        let shared = Arc::new(Shared {
            closed: Mutex::new(None),
            shutdown: Latch::new(),
            ignores_ids: AtomicBool::new(false),
        });
        let mut agent = Agent {
            reader: LineReader::with_max_line(r, self.max_message),
            writer: LineWriter::new(w),
            shared: shared.clone(),
            synced: false,
            // Random, so that ids differ from an earlier client's on the same agent.
            next_id: u64::from(fastrand::u32(..)) + 1,
            sync_timeout: self.sync_timeout,
            after_no_reply: None,
            echoes_ids: false,
            peer: peer.clone(),
        };
        let started = Instant::now();
        loop {
            match agent.sync().instrument(span.clone()).await {
                Ok(()) => break,
                Err(SyncError::Fatal(e)) => return Err(e),
                Err(SyncError::Timeout(e)) => match deadline {
                    Some(d) if Instant::now() < d => {
                        debug!(target: "qmp::ga", %peer, "no answer to the sync yet; sending another");
                    }
                    Some(_) => {
                        return Err(Error::waited(
                            SYNC,
                            format!(
                                "no guest agent answered `{SYNC}` on {peer} within {} \
                                 (`wait_for_agent`)",
                                Limit(self.wait_for_agent.unwrap_or_else(|| started.elapsed()))
                            ),
                            None,
                        ))
                    }
                    None => return Err(e),
                },
            }
        }
        debug!(target: "qmp::ga", %peer, "connected and synchronised");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(agent.run(rx).instrument(span));
        Ok(Client {
            tx,
            shared,
            timeout: self.call_timeout,
        })
    }
}

/// Connects to a guest agent's Unix socket with the default [`Config`].
///
/// # Errors
/// As [`Config::connect_unix`].
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Client> {
    Config::new().connect_unix(path).await
}

/// A handle to one guest-agent connection; cheap to clone, all clones share it.
///
/// Named `qmp::ga::Client` after `qmp::Client` and `qmp::blocking::Client`: the same
/// role (typed `execute`, `close`, timeouts) for another peer, and the module says
/// which; it is a separate type because its protocol differs (no events, no
/// greeting, resynchronisation).
#[derive(Clone)]
pub struct Client {
    tx: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ga::Client")
            .field("closed", &self.is_closed())
            .field("timeout", &self.timeout)
            .finish()
    }
}

struct Shared {
    /// Set once the connection is gone: later calls fail with it.
    closed: Mutex<Option<Error>>,
    /// Set by [`Client::close`].
    shutdown: Latch,
    ignores_ids: AtomicBool,
}

impl Shared {
    fn closed(&self) -> Option<Error> {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A call on its way to the background task.
struct Job {
    name: Cow<'static, str>,
    args: Option<Box<RawValue>>,
    /// False for `success-response: false` commands: done once written.
    wants_reply: bool,
    /// Set once the request is written (for the stage of a timeout).
    sent: Arc<AtomicBool>,
    tx: oneshot::Sender<Result<Option<ReplyLine>>>,
}

impl Client {
    /// Runs a command and decodes its reply. For `success-response: false` commands
    /// it returns once the request is written (see the module docs).
    ///
    /// # Errors
    /// [`ErrorKind::Qmp`](crate::ErrorKind::Qmp) for the agent's error reply,
    /// timeouts, decode errors, and the error that closed the connection.
    pub async fn execute<C: Command>(&self, cmd: &C) -> Result<C::Reply> {
        let args = serde_json::value::to_raw_value(cmd).map_err(|e| Error::encode(C::NAME, e))?;
        let reply = self
            .call(Cow::Borrowed(C::NAME), Some(args), C::SUCCESS_RESPONSE)
            .await?;
        match reply {
            Some(reply) => decode_reply(C::NAME, &reply),
            // Nothing comes back: decoded as in `qmp::Client`.
            None => decode_no_reply::<C::Reply>(C::NAME),
        }
    }

    /// Runs any command by name, JSON in and out (always waits for a reply).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn execute_raw<A: Serialize + ?Sized>(
        &self,
        name: &str,
        args: Option<&A>,
    ) -> Result<serde_json::Value> {
        let args = args
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(|e| Error::encode(name, e))?;
        let reply = self.call(Cow::Owned(name.to_owned()), args, true).await?;
        match reply {
            Some(reply) => decode_reply(name, &reply),
            None => Ok(serde_json::Value::Null),
        }
    }

    /// Synchronises the stream now (it is done automatically when needed).
    ///
    /// # Errors
    /// As [`execute`](Self::execute).
    pub async fn sync(&self) -> Result<()> {
        self.call(Cow::Borrowed(SYNC), None, false).await.map(drop)
    }

    /// This handle's call timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// A handle to the same connection with another call timeout.
    pub fn with_timeout(&self, timeout: Option<Duration>) -> Client {
        Client {
            timeout,
            ..self.clone()
        }
    }

    /// Whether the agent answered a request that carried an `id` without one (an
    /// old agent); see the module docs.
    pub fn agent_ignores_ids(&self) -> bool {
        self.shared.ignores_ids.load(Ordering::Relaxed)
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.closed().is_some() || self.tx.is_closed()
    }

    /// Closes the connection: the call in progress and queued calls fail. Returns
    /// once the background task has stopped.
    pub async fn close(&self) {
        self.shared.shutdown.set();
        self.tx.closed().await;
    }

    /// Waits until the connection is gone and returns the error that ended it.
    pub async fn closed(&self) -> Error {
        self.tx.closed().await;
        self.closed_error()
    }

    fn closed_error(&self) -> Error {
        self.shared
            .closed()
            .unwrap_or_else(|| Error::closed("the guest agent connection is closed"))
    }

    async fn call(
        &self,
        name: Cow<'static, str>,
        args: Option<Box<RawValue>>,
        wants_reply: bool,
    ) -> Result<Option<ReplyLine>> {
        if let Some(e) = self.shared.closed() {
            return Err(e);
        }
        let (tx, mut rx) = oneshot::channel();
        let sent = Arc::new(AtomicBool::new(false));
        let job = Job {
            name: name.clone(),
            args,
            wants_reply,
            sent: sent.clone(),
            tx,
        };
        self.tx.send(job).map_err(|_| self.closed_error())?;
        let outcome = match self.timeout {
            None => Ok((&mut rx).await),
            Some(t) => tokio::time::timeout(t, &mut rx).await,
        };
        match outcome {
            Ok(Ok(reply)) => reply,
            // The task ended without answering (it answers every job it takes, so
            // only if it was aborted): the connection is gone.
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                // Dropping `rx` tells the task to give the call up (and resync).
                drop(rx);
                let stage = if sent.load(Ordering::Acquire) {
                    TimeoutStage::Unanswered
                } else {
                    TimeoutStage::NotSent
                };
                Err(Error::call_timeout(
                    &name,
                    stage,
                    self.timeout.unwrap_or_default(),
                ))
            }
        }
    }
}

enum SyncError {
    /// No answer within the sync timeout: the connection stays, unsynchronised.
    Timeout(Error),
    /// The connection is gone.
    Fatal(Error),
}

/// What the idle task saw first.
enum Idle {
    Job(Job),
    Handles,
    Closed(Error),
    Unsolicited(String),
}

/// The background task's state: it owns the stream.
struct Agent {
    reader: LineReader<ReadHalf>,
    writer: LineWriter<WriteHalf>,
    shared: Arc<Shared>,
    /// The stream is known to hold nothing but replies to our requests.
    synced: bool,
    next_id: u64,
    sync_timeout: Duration,
    /// The last command written that never answers, if the agent may now go away.
    after_no_reply: Option<Cow<'static, str>>,
    /// The agent echoed the id of the last sync: a reply without an id is then not
    /// an answer to a request (see `Reply::OursWithoutId`).
    echoes_ids: bool,
    peer: String,
}

impl Agent {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Job>) {
        let error = loop {
            let idle = {
                let got = race(
                    self.shared.shutdown.wait(),
                    race(rx.recv(), self.reader.next_line()),
                )
                .await;
                match got {
                    First::A(()) => Idle::Closed(Error::closed("closed by the client")),
                    First::B(First::A(Some(job))) => Idle::Job(job),
                    First::B(First::A(None)) => Idle::Handles,
                    First::B(First::B(Ok(Some(line)))) => Idle::Unsolicited(line.to_owned()),
                    First::B(First::B(Err(e @ CodecError::InvalidUtf8(_))))
                    | First::B(First::B(Err(e @ CodecError::LineTooLong { .. }))) => {
                        Idle::Unsolicited(e.to_string())
                    }
                    First::B(First::B(Ok(None))) => Idle::Closed(self.hangup()),
                    First::B(First::B(Err(e))) => Idle::Closed(self.read_error(e)),
                }
            };
            let job = match idle {
                Idle::Job(job) => job,
                Idle::Handles => {
                    debug!(target: "qmp::ga", "all client handles dropped");
                    break Error::closed("all client handles were dropped");
                }
                Idle::Closed(e) => break e,
                Idle::Unsolicited(what) => {
                    let shown: String = what.chars().take(200).collect();
                    warn!(target: "qmp::ga", line = %shown, "dropping a line nobody asked for; will resynchronise");
                    self.synced = false;
                    continue;
                }
            };
            match self.serve(job).await {
                Ok(()) => {}
                Err(e) => break e,
            }
        };
        // Later calls fail with the first error; queued ones now.
        *self.shared.closed.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.clone());
        rx.close();
        let mut failed = 0;
        while let Ok(job) = rx.try_recv() {
            let _ = job.tx.send(Err(error.clone()));
            failed += 1;
        }
        debug!(target: "qmp::ga", failed_calls = failed, error = %error, "disconnected");
    }

    /// Runs one call. `Err` when the connection is gone (the caller has its answer).
    async fn serve(&mut self, mut job: Job) -> Result<(), Error> {
        if job.tx.is_closed() {
            // Timed out or dropped while queued: never sent.
            return Ok(());
        }
        let explicit_sync = job.name == SYNC && job.args.is_none() && !job.wants_reply;
        if !self.synced || explicit_sync {
            let shared = self.shared.clone();
            let syncing = race(shared.shutdown.wait(), self.sync()).await;
            match syncing {
                First::A(()) => {
                    let e = Error::closed("closed by the client");
                    let _ = job.tx.send(Err(e.clone()));
                    return Err(e);
                }
                First::B(Ok(())) => {}
                First::B(Err(SyncError::Timeout(e))) => {
                    let _ = job.tx.send(Err(e));
                    return Ok(());
                }
                First::B(Err(SyncError::Fatal(e))) => {
                    let _ = job.tx.send(Err(e.clone()));
                    return Err(e);
                }
            }
            if explicit_sync {
                let _ = job.tx.send(Ok(None));
                return Ok(());
            }
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let name = job.name.clone();
        let mut bytes = Vec::with_capacity(48 + name.len());
        if let Err(e) = write_request(
            &mut bytes,
            ExecKind::Execute,
            &name,
            job.args.as_deref(),
            Some(id),
        ) {
            let _ = job.tx.send(Err(Error::encode(&name, e)));
            return Ok(());
        }
        debug!(target: "qmp::ga", id, command = %name, "request");
        if tracing::enabled!(target: "qmp::ga", tracing::Level::TRACE) {
            // Redacted like `qmp::wire`: `guest-set-user-password` carries a password.
            let text = String::from_utf8_lossy(&bytes);
            trace!(target: "qmp::ga", json = %crate::secrets::redact_line(&text), "send");
        }
        self.writer.push_bytes(&bytes);
        if let Err(e) = self.write().await {
            let _ = job.tx.send(Err(e.clone()));
            return Err(e);
        }
        job.sent.store(true, Ordering::Release);
        if !job.wants_reply {
            // An error reply may still come: the next command resynchronises first.
            self.synced = false;
            self.after_no_reply = Some(name);
            let _ = job.tx.send(Ok(None));
            return Ok(());
        }
        self.after_no_reply = None;
        if name == SYNC {
            // A caller's own `guest-sync-delimited`: its reply comes after a 0xFF,
            // which would make the line invalid UTF-8. Whatever comes before that
            // 0xFF is not the reply either.
            let skipped = race(
                self.shared.shutdown.wait(),
                race(job.tx.closed(), self.reader.skip_through(DELIMITER)),
            )
            .await;
            let failed = match skipped {
                First::A(()) => Some(Error::closed("closed by the client")),
                First::B(First::A(())) => {
                    self.synced = false;
                    return Ok(());
                }
                First::B(First::B(Ok(true))) => None,
                First::B(First::B(Ok(false))) => Some(self.hangup()),
                First::B(First::B(Err(e))) => Some(self.write_error(e)),
            };
            if let Some(e) = failed {
                let _ = job.tx.send(Err(e.clone()));
                return Err(e);
            }
        }
        loop {
            let got = race(
                self.shared.shutdown.wait(),
                race(job.tx.closed(), self.reader.next_line()),
            )
            .await;
            let line = match got {
                First::A(()) => {
                    let e = Error::closed("closed by the client");
                    let _ = job.tx.send(Err(e.clone()));
                    return Err(e);
                }
                First::B(First::A(())) => {
                    debug!(target: "qmp::ga", id, command = %name, "caller gave up; will resynchronise");
                    self.synced = false;
                    return Ok(());
                }
                First::B(First::B(Ok(Some(line)))) => line,
                First::B(First::B(Err(
                    e @ (CodecError::InvalidUtf8(_) | CodecError::LineTooLong { .. }),
                ))) => {
                    warn!(target: "qmp::ga", error = %e, "dropping garbage from the agent; will resynchronise");
                    self.synced = false;
                    continue;
                }
                First::B(First::B(Ok(None))) => {
                    let e = self.hangup();
                    let _ = job.tx.send(Err(e.clone()));
                    return Err(e);
                }
                First::B(First::B(Err(e))) => {
                    let e = self.read_error(e);
                    let _ = job.tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            match classify(line, id) {
                Reply::Ours(reply) => {
                    trace!(target: "qmp::ga", json = %reply.line, "recv");
                    let _ = job.tx.send(Ok(Some(reply)));
                    return Ok(());
                }
                // An agent that echoes ids leaves out the id only on an error about a
                // request it could not parse (ours, mangled: the answer to this
                // call); a successful reply without one is not this call's.
                Reply::OursWithoutId(reply) if self.echoes_ids && !reply.is_error => {
                    let shown: String = line.chars().take(200).collect();
                    warn!(target: "qmp::ga", id, line = %shown, "dropping a reply without an id from an agent that echoes ids; will resynchronise");
                    self.synced = false;
                }
                Reply::OursWithoutId(reply) => {
                    if !self.shared.ignores_ids.swap(true, Ordering::Relaxed) {
                        debug!(target: "qmp::ga", "the agent answers without the request's id (an old agent)");
                    }
                    trace!(target: "qmp::ga", json = %reply.line, "recv");
                    let _ = job.tx.send(Ok(Some(reply)));
                    return Ok(());
                }
                Reply::Other(why) => {
                    let shown: String = line.chars().take(200).collect();
                    warn!(target: "qmp::ga", id, line = %shown, why, "dropping a line that is not the reply; will resynchronise");
                    self.synced = false;
                }
            }
        }
    }

    /// Writes what is buffered. Not cancellation-safe, so never raced against the
    /// caller; a client-side close stops it.
    async fn write(&mut self) -> Result<(), Error> {
        match race(self.shared.shutdown.wait(), self.writer.flush()).await {
            First::A(()) => Err(Error::closed("closed by the client")),
            First::B(Ok(())) => Ok(()),
            First::B(Err(e)) => Err(self.write_error(e)),
        }
    }

    /// One synchronisation: 0xFF and `guest-sync-delimited` with a fresh id in one
    /// write, then everything up to the agent's 0xFF and the reply with that id is
    /// dropped.
    async fn sync(&mut self) -> Result<(), SyncError> {
        self.synced = false;
        // Positive and below 2^31: `guest-sync-delimited` takes an `int`, and a small
        // value survives any agent's integer parsing.
        let token = fastrand::i64(1..i64::from(i32::MAX));
        let mut bytes = vec![DELIMITER];
        let args = serde_json::json!({ "id": token });
        // Cannot fail: a literal object.
        // With the token as the request's id too: whether the agent echoes it tells
        // an agent that ignores ids (its replies are then matched by order) from one
        // that does not (a reply without an id is then not an answer); learnt again
        // at every sync, in case another agent took over the port.
        let id = token.unsigned_abs();
        let _ = write_request(&mut bytes, ExecKind::Execute, SYNC, Some(&args), Some(id));
        self.writer.push_bytes(&bytes);
        debug!(target: "qmp::ga", token, "synchronising");
        self.write().await.map_err(SyncError::Fatal)?;
        let deadline = Instant::now() + self.sync_timeout;
        let waited = self.sync_timeout;
        let timeout = || {
            SyncError::Timeout(Error::waited(
                SYNC,
                format!(
                    "the guest agent on {} did not answer `{SYNC}` within {} (`sync_timeout`; \
                     is it running?)",
                    self.peer,
                    Limit(waited)
                ),
                None,
            ))
        };
        let mut dropped = 0usize;
        loop {
            let found = match tokio::time::timeout_at(deadline, self.reader.skip_through(DELIMITER))
                .await
            {
                Err(_) => return Err(timeout()),
                Ok(Ok(true)) => true,
                Ok(Ok(false)) => false,
                Ok(Err(e)) => return Err(SyncError::Fatal(self.write_error(e))),
            };
            if !found {
                return Err(SyncError::Fatal(self.hangup()));
            }
            // The reply follows the delimiter at once.
            let line = match tokio::time::timeout_at(deadline, self.reader.next_line()).await {
                Err(_) => return Err(timeout()),
                Ok(Ok(Some(line))) => line,
                Ok(Ok(None)) => return Err(SyncError::Fatal(self.hangup())),
                Ok(Err(e @ (CodecError::Io(_) | CodecError::TruncatedLine { .. }))) => {
                    return Err(SyncError::Fatal(self.read_error(e)))
                }
                Ok(Err(_)) => {
                    dropped += 1;
                    continue;
                }
            };
            let (answered, echoed) = match Incoming::parse(line) {
                Ok(Incoming::Return { value, id }) => (
                    serde_json::from_str::<i64>(value.get()).ok() == Some(token),
                    id.is_some(),
                ),
                _ => (false, false),
            };
            if answered {
                debug!(target: "qmp::ga", token, dropped_delimited = dropped, echoes_ids = echoed, "synchronised");
                self.synced = true;
                self.echoes_ids = echoed;
                return Ok(());
            }
            // An older sync's reply (ours, or an earlier client's): the next 0xFF.
            trace!(target: "qmp::ga", line, "dropping a stale sync reply");
            dropped += 1;
        }
    }

    /// The error for the agent closing the connection.
    fn hangup(&self) -> Error {
        match &self.after_no_reply {
            Some(cmd) => {
                debug!(target: "qmp::ga", command = %cmd, "the agent went away after a command that never answers, as expected");
                Error::closed(&format!(
                    "the guest agent closed the connection after `{cmd}`, as expected"
                ))
            }
            None => Error::closed("the guest agent closed the connection"),
        }
    }

    fn read_error(&self, e: CodecError) -> Error {
        match e {
            CodecError::Io(e) => self.write_error(e),
            CodecError::TruncatedLine { .. } if self.after_no_reply.is_some() => self.hangup(),
            e => Error::protocol_with("bad input from the guest agent".into(), e),
        }
    }

    fn write_error(&self, e: std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        match (e.kind(), &self.after_no_reply) {
            // Gone, after a command that makes it go.
            (K::BrokenPipe | K::ConnectionReset, Some(_)) => self.hangup(),
            _ => Error::io("talking to the guest agent", e),
        }
    }
}

enum Reply {
    Ours(ReplyLine),
    OursWithoutId(ReplyLine),
    Other(&'static str),
}

/// Whether `line` is the reply to request `id`.
fn classify(line: &str, id: u64) -> Reply {
    let Ok(incoming) = Incoming::parse(line) else {
        return Reply::Other("not JSON, or not an object");
    };
    let (reply_id, is_error, value) = match incoming {
        Incoming::Return { id, value } => (id, false, value),
        Incoming::Error { id, error } => (id, true, error),
        _ => return Reply::Other("not a reply"),
    };
    let start = value.get().as_ptr() as usize - line.as_ptr() as usize;
    let reply = ReplyLine {
        line: line.to_owned(),
        is_error,
        value: start..start + value.get().len(),
    };
    match reply_id {
        None => Reply::OursWithoutId(reply),
        Some(r) if parse_client_id(r) == Some(id) => Reply::Ours(reply),
        Some(_) => Reply::Other("a reply to another request"),
    }
}

#[cfg(test)]
mod tests {
    //! A misbehaving agent on the other end of a `tokio::io::duplex`.

    use super::*;
    use serde_json::{json, Value};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

    #[derive(Serialize)]
    struct Echo {
        n: u64,
    }
    impl Command for Echo {
        const NAME: &'static str = "echo";
        type Reply = Value;
    }

    #[derive(Serialize)]
    struct Shutdown {}
    impl Command for Shutdown {
        const NAME: &'static str = "guest-shutdown";
        type Reply = crate::Empty;
        const SUCCESS_RESPONSE: bool = false;
    }

    #[derive(Default, Clone)]
    struct Fake {
        /// Written before the agent reads anything (what an earlier client left).
        preamble: Vec<u8>,
        /// Old agents answer without the request's id.
        ignore_ids: bool,
        /// A line of garbage before every reply to `echo`.
        garbage: bool,
        /// A successful reply without an id before every reply to `echo`.
        stray_reply: bool,
        /// How long the agent takes to answer `echo`.
        delay: Option<Duration>,
        /// The agent starts reading only after this (not up yet).
        start_after: Option<Duration>,
    }

    /// Plays qemu-ga: 0xFF resets its parser (and earns a parse error, as qemu-ga
    /// does), `guest-sync-delimited` is answered after a 0xFF, `echo` returns its
    /// arguments, `guest-shutdown` and `hang` close the stream.
    async fn agent(stream: DuplexStream, fake: Fake) {
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        w.write_all(&fake.preamble).await.unwrap();
        if let Some(d) = fake.start_after {
            tokio::time::sleep(d).await;
        }
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let mut line = &buf[..];
            while let Some(pos) = line.iter().position(|&b| b == 0xFF) {
                let err = b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, invalid literal\"}}\n";
                if w.write_all(err).await.is_err() {
                    return;
                }
                line = &line[pos + 1..];
            }
            let Ok(req) = serde_json::from_slice::<Value>(line) else {
                continue;
            };
            let args = req.get("arguments").cloned().unwrap_or(json!({}));
            let mut out = Vec::new();
            let ret = match req["execute"].as_str().unwrap_or("") {
                "guest-sync-delimited" => {
                    out.push(0xFF);
                    args["id"].clone()
                }
                "echo" => {
                    if let Some(d) = fake.delay {
                        tokio::time::sleep(d).await;
                    }
                    if fake.garbage {
                        out.extend_from_slice(b"%% not json %%\n\xfe\xfe\n{\"half\": \n");
                    }
                    if fake.stray_reply {
                        out.extend_from_slice(b"{\"return\": {\"n\": 424242}}\n");
                    }
                    args
                }
                "guest-shutdown" | "hang" => return,
                _ => json!({}),
            };
            let mut reply = json!({ "return": ret });
            if let (Some(id), false) = (req.get("id"), fake.ignore_ids) {
                reply["id"] = id.clone();
            }
            out.extend_from_slice(reply.to_string().as_bytes());
            out.push(b'\n');
            if w.write_all(&out).await.is_err() {
                return;
            }
        }
    }

    async fn client_for(fake: Fake, config: &Config) -> Client {
        let (ours, theirs) = tokio::io::duplex(4096);
        tokio::spawn(agent(theirs, fake));
        config.connect_stream(ours).await.unwrap()
    }

    /// Many concurrent calls, each of which must get its own value back.
    async fn each_gets_its_own(client: &Client, calls: u64) {
        let tasks: Vec<_> = (0..calls)
            .map(|n| {
                let c = client.clone();
                tokio::spawn(async move { (n, c.execute(&Echo { n }).await) })
            })
            .collect();
        for t in tasks {
            let (n, reply) = t.await.unwrap();
            assert_eq!(reply.unwrap(), json!({ "n": n }));
        }
    }

    #[tokio::test]
    async fn stale_replies_and_a_partial_line_before_the_sync_never_reach_a_caller() {
        let fake = Fake {
            preamble: b"{\"return\": {\"n\": 99}, \"id\": 1}\n{\"return\": {\"n\": 98}}\n\xff{\"return\": 12}\n{\"return\": {\"n\""
                .to_vec(),
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        assert_eq!(
            client.execute(&Echo { n: 1 }).await.unwrap(),
            json!({"n": 1})
        );
        each_gets_its_own(&client, 20).await;
        assert!(!client.agent_ignores_ids());
    }

    #[tokio::test]
    async fn garbage_between_replies_is_dropped_and_the_stream_resynchronised() {
        let fake = Fake {
            garbage: true,
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        for n in 0..5 {
            assert_eq!(
                client.execute(&Echo { n }).await.unwrap(),
                json!({ "n": n })
            );
        }
        each_gets_its_own(&client, 20).await;
    }

    /// Found by the test server's faults: a reply without an id used to be taken as
    /// the current call's even from an agent that echoes ids.
    #[tokio::test]
    async fn a_stray_reply_without_id_from_an_agent_that_echoes_ids_goes_to_nobody() {
        let fake = Fake {
            stray_reply: true,
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        for n in 0..5 {
            assert_eq!(
                client.execute(&Echo { n }).await.unwrap(),
                json!({ "n": n })
            );
        }
        each_gets_its_own(&client, 20).await;
        assert!(!client.agent_ignores_ids());
    }

    #[tokio::test]
    async fn an_agent_that_ignores_ids_is_served_one_call_at_a_time() {
        let fake = Fake {
            ignore_ids: true,
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        each_gets_its_own(&client, 30).await;
        assert!(client.agent_ignores_ids());
    }

    #[tokio::test]
    async fn a_late_reply_after_a_timeout_goes_to_nobody() {
        let fake = Fake {
            delay: Some(Duration::from_millis(300)),
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        let e = client
            .with_timeout(Some(Duration::from_millis(20)))
            .execute(&Echo { n: 1 })
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        // The reply to 1 arrives while 2 waits: 2 gets its own.
        assert_eq!(
            client.execute(&Echo { n: 2 }).await.unwrap(),
            json!({"n": 2})
        );
        each_gets_its_own(&client, 3).await;
    }

    #[tokio::test]
    async fn an_agent_that_is_not_up_yet_is_waited_for() {
        let fake = Fake {
            start_after: Some(Duration::from_millis(300)),
            ..Fake::default()
        };
        let mut config = Config::new();
        config.sync_timeout(Duration::from_millis(50));
        // Without waiting: a timeout that says what it waited for.
        let (ours, theirs) = tokio::io::duplex(4096);
        tokio::spawn(agent(theirs, fake.clone()));
        let e = config.connect_stream(ours).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(e.to_string().contains("guest-sync-delimited"), "{e}");
        // Waiting: the syncs sent meanwhile are answered in turn; only the last counts.
        config.wait_for_agent(Some(Duration::from_secs(30)));
        let client = client_for(fake, &config).await;
        each_gets_its_own(&client, 5).await;
    }

    #[tokio::test]
    async fn a_command_that_never_answers_returns_when_sent_and_the_hangup_is_expected() {
        let client = client_for(Fake::default(), &Config::new()).await;
        client.execute(&Shutdown {}).await.unwrap();
        let e = client.closed().await;
        assert!(e.is_closed(), "{e}");
        assert!(e.to_string().contains("as expected"), "{e}");
        let e = client.execute(&Echo { n: 1 }).await.unwrap_err();
        assert!(
            e.is_closed() && e.to_string().contains("guest-shutdown"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_agent_dying_mid_call_fails_every_caller() {
        let fake = Fake {
            delay: Some(Duration::from_millis(50)),
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        let mut tasks: Vec<_> = (0..5)
            .map(|n| {
                let c = client.clone();
                tokio::spawn(async move { c.execute(&Echo { n }).await.map(drop) })
            })
            .collect();
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.execute_raw("hang", None::<&()>).await.map(drop)
        }));
        let mut failed = 0;
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                assert!(e.is_closed(), "{e}");
                assert!(!e.to_string().contains("as expected"), "{e}");
                failed += 1;
            }
        }
        assert!(failed >= 1);
        assert!(client
            .execute(&Echo { n: 9 })
            .await
            .unwrap_err()
            .is_closed());
    }

    #[tokio::test]
    async fn a_callers_own_guest_sync_delimited_gets_its_reply() {
        let fake = Fake {
            garbage: true,
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        let r = client
            .execute_raw(SYNC, Some(&json!({"id": 4242})))
            .await
            .unwrap();
        assert_eq!(r, json!(4242));
        client.sync().await.unwrap();
        each_gets_its_own(&client, 5).await;
    }

    #[tokio::test]
    async fn close_fails_queued_calls() {
        let fake = Fake {
            delay: Some(Duration::from_secs(3600)),
            ..Fake::default()
        };
        let client = client_for(fake, &Config::new()).await;
        let tasks: Vec<_> = (0..3)
            .map(|n| {
                let c = client.clone();
                tokio::spawn(async move { c.execute(&Echo { n }).await })
            })
            .collect();
        tokio::task::yield_now().await;
        client.close().await;
        for t in tasks {
            assert!(t.await.unwrap().unwrap_err().is_closed());
        }
    }

    #[tokio::test]
    async fn waiting_for_a_socket_that_never_appears_names_it_and_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let e = Config::new()
            .wait_for_agent(Some(Duration::from_millis(200)))
            .connect_unix(&path)
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string())
                && text.contains("within 200 ms (`wait_for_agent`)"),
            "{text}"
        );
        // Without waiting: the I/O error at once.
        let e = connect_unix(&path).await.unwrap_err();
        assert!(e.is_closed() && e.as_io().is_some(), "{e}");
    }
}
