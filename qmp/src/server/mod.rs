//! A scriptable QMP server that speaks the protocol as QEMU's monitor does: for tests
//! (ours and our users'), record/replay and fault injection.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use qmp::server::{QmpError, Server};
//! use serde_json::json;
//!
//! let server = Server::builder()
//!     .version(10, 0, 2)
//!     .capabilities(["oob"])
//!     .handle_raw("query-status", false, |_ctx, _args| async move {
//!         Ok(json!({"status": "running", "running": true}))
//!     })
//!     .build();
//! let listening = server.listen_unix("/tmp/qmp-test.sock").await?;
//! // ... connect a client to /tmp/qmp-test.sock ...
//! server.emit_raw("STOP", None).await;
//! # drop(listening); Ok(()) }
//! ```
//!
//! # What it does like QEMU
//! * The greeting (`{"QMP": {"version", "capabilities"}}`), configurable.
//! * Capability negotiation: before `qmp_capabilities` every other command is refused
//!   with `CommandNotFound` "Expecting capabilities negotiation with 'qmp_capabilities'";
//!   `qmp_capabilities` again is refused with "Capabilities negotiation is already
//!   complete, command ignored"; asking for a capability not offered gives "Capability
//!   X not available". Events are only sent to negotiated clients.
//! * Request checks with QEMU's texts (`QMP input must be a JSON object`, `QMP input
//!   member 'x' is unexpected`, `... must be a string`, `QMP input lacks member
//!   'execute'`, JSON parse errors), ids echoed verbatim whatever their JSON type.
//! * Without `oob` negotiated it reads one request, answers it, then reads the next;
//!   with `oob` it reads ahead (at most 8 queued in-band requests) and runs `exec-oob`
//!   commands at once, so their replies can overtake in-band ones. `exec-oob` of a
//!   command that does not allow it: "The command X does not support OOB".
//! * With a [`Schema`] (in `query-qmp-schema` form, see [`crate::schema_check`]), every
//!   command is checked first: unknown commands get `CommandNotFound`, bad arguments get
//!   QEMU's exact `GenericError` text.
//!
//! # The guest agent
//! [`ServerBuilder::guest_agent`] makes the server speak as `qemu-ga` does, so that
//! code using [`crate::ga::Client`] can be tested without a VM. The agent speaks
//! QMP's JSON but not its protocol: no greeting, no `qmp_capabilities` (commands are
//! accepted at once; `qmp_capabilities` is an unknown command), no events, no
//! out-of-band requests, one request answered after the other in order, lines ending
//! in `\n`. `guest-sync` and `guest-sync-delimited` (whose reply is preceded by a
//! 0xFF byte) and `guest-ping` are built in, with qemu-ga's argument checks; register
//! a handler of the same name to replace one. A 0xFF (or 0xFE) byte in the input
//! drops the request being read and is answered with qemu-ga's parse error
//! (`JSON parse error, stray '…'` naming the partial token, the byte shown as
//! U+FFFD); other bad requests get qemu-ga's texts (`qmp/tests/ga_server_conformance.rs`
//! compares them with a real qemu-ga). [`Faults`] then plays a misbehaving agent: a
//! stale reply and a partial line on connect ([`Faults::preamble`]), replies without
//! ids ([`Faults::strip_reply_ids`]), garbage before replies
//! ([`Faults::garbage_before_reply`]), late replies ([`Faults::reply_delay`]), an agent
//! that is not running yet ([`Faults::late_start`]) or is killed mid-call
//! ([`Faults::close_after`]); `qmp/tests/ga_faults.rs` runs the client through each.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use qmp::server::{Faults, Server};
//! use serde_json::json;
//!
//! let server = Server::builder()
//!     .guest_agent()
//!     .handle_raw("guest-get-host-name", false, |_ctx, _args| async move {
//!         Ok(json!({"host-name": "test-vm"}))
//!     })
//!     .faults(Faults {
//!         // What an earlier client left unread, and an old agent.
//!         preamble: Some(b"{\"return\": {}, \"id\": 7}\n{\"return\": {\"stal".to_vec()),
//!         strip_reply_ids: true,
//!         ..Faults::none()
//!     })
//!     .build();
//! let _listening = server.listen_unix("/tmp/qga-test.sock").await?;
//! let agent = qmp::ga::Config::new()
//!     .call_timeout(Some(Duration::from_secs(5)))
//!     .connect_unix("/tmp/qga-test.sock")
//!     .await?;
//! let name = agent.execute_raw("guest-get-host-name", None::<&()>).await?;
//! assert_eq!(name, json!({"host-name": "test-vm"}));
//! # Ok(()) }
//! ```
//!
//! # Record and replay
//! A transcript ([`transcript`]) is a session's traffic as JSON lines with direction
//! and time. Record one with [`ServerBuilder::traffic_hook`] and a
//! [`transcript::Recorder`] (server side), or put [`transcript::record_stream`] in
//! front of any client's connection (client side, e.g. against real QEMU). Serve it
//! back with [`ServerBuilder::replay`]: requests are matched by command and arguments,
//! ids rewritten, recorded events sent in order (see [`replay`]).
//!
//! # Fault injection
//! [`Faults`] (set at build time or switched with [`Server::set_faults`]) makes the
//! server misbehave on purpose: delayed replies, a reply cut mid-line followed by a
//! close, malformed JSON, an oversized line, replies with unknown ids, duplicated or
//! reordered replies, an event flood, a server that stops reading, a missing or wrong
//! greeting, and the guest agent's faults (above). `qmp/tests/reliability.rs` asserts
//! the client's behaviour under each.
//!
//! # Ordering
//! Replies and events to one client go through one queue, in the order they were
//! produced: an event a handler emits before returning reaches the client before the
//! reply. Emitting waits while a client's queue (1024 messages) is full, which is the
//! back-pressure of a client that does not read.

mod agent;
mod faults;
mod handler;
pub(crate) mod json_stream;
pub(crate) mod protocol;
pub mod replay;
pub mod serve;
mod session;
pub mod transcript;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use faults::{Faults, GreetingFault};
pub use handler::{Ctx, HandlerFuture, QmpError};

use crate::message::Timestamp;
use crate::schema_check::Schema;
use crate::{Command, Event};
use handler::Registered;
use transcript::TrafficHook;

/// Identifies one connection to the server (numbered from 1 in accept order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// What a session's writer task sends.
#[derive(Debug)]
pub(crate) enum Out {
    /// One message (JSON without terminator).
    Line(Vec<u8>),
    /// Bytes written as they are (no terminator), then the connection is closed.
    CutAndClose(Vec<u8>),
    /// One message preceded by a 0xFF byte (the guest agent's `guest-sync-delimited`).
    Delimited(Vec<u8>),
    /// Bytes written as they are (no terminator).
    Raw(Vec<u8>),
    /// Close the connection.
    Close,
}

struct ClientSlot {
    out: mpsc::Sender<Out>,
    negotiated: bool,
}

pub(crate) struct Shared {
    greeting: String,
    offered: Vec<String>,
    schema: Option<Arc<Schema>>,
    handlers: HashMap<String, Registered>,
    fallback: Option<Registered>,
    faults: RwLock<Faults>,
    clients: Mutex<HashMap<ClientId, ClientSlot>>,
    negotiated_count: watch::Sender<usize>,
    next_client: AtomicU64,
    max_line: usize,
    hook: Option<Arc<dyn TrafficHook>>,
    shutdown: watch::Sender<bool>,
    caps_schema: Schema,
    /// Guest-agent mode ([`ServerBuilder::guest_agent`]).
    agent: bool,
}

/// The test server: a cheap, cloneable handle. Build it with [`Server::builder`].
#[derive(Clone)]
pub struct Server {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("greeting", &self.shared.greeting)
            .field("commands", &self.shared.handlers.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Server`].
pub struct ServerBuilder {
    version: (u32, u32, u32),
    package: String,
    capabilities: Vec<String>,
    greeting: Option<String>,
    schema: Option<Arc<Schema>>,
    handlers: HashMap<String, Registered>,
    fallback: Option<Registered>,
    faults: Faults,
    max_line: usize,
    hook: Option<Arc<dyn TrafficHook>>,
    agent: bool,
}

impl Server {
    /// A builder with QEMU 10.0.0's version, no capabilities, no commands.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            version: (10, 0, 0),
            package: String::new(),
            capabilities: Vec::new(),
            greeting: None,
            schema: None,
            handlers: HashMap::new(),
            fallback: None,
            faults: Faults::default(),
            max_line: crate::codec::DEFAULT_MAX_LINE,
            hook: None,
            agent: false,
        }
    }

    /// Serves one connection until the client closes it (or [`Server::shutdown`]).
    /// Returns the client's id once the session is over.
    pub async fn serve_stream<S>(&self, stream: S) -> ClientId
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        session::run(self.clone(), stream).await
    }

    /// Listens on a Unix socket (removing a stale socket file first) and serves every
    /// connection in its own task until the returned [`Listening`] is dropped.
    ///
    /// # Errors
    /// When binding fails.
    pub async fn listen_unix(&self, path: impl AsRef<Path>) -> std::io::Result<Listening> {
        let path = path.as_ref().to_path_buf();
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        let server = self.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let s = server.clone();
                        tokio::spawn(async move { s.serve_stream(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!("qmp::server: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(Listening {
            addr: ListenAddr::Unix(path),
            task,
        })
    }

    /// Listens on a TCP address (port 0 picks a free port; see [`Listening::addr`]).
    ///
    /// # Errors
    /// When binding fails.
    pub async fn listen_tcp(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<Listening> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let server = self.clone();
        let task = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let s = server.clone();
                        tokio::spawn(async move { s.serve_stream(stream).await });
                    }
                    Err(e) => {
                        tracing::warn!("qmp::server: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    }
                }
            }
        });
        Ok(Listening {
            addr: ListenAddr::Tcp(local),
            task,
        })
    }

    /// Replaces the fault set; applies from the next message on, in every session.
    pub fn set_faults(&self, faults: Faults) {
        *self
            .shared
            .faults
            .write()
            .unwrap_or_else(|p| p.into_inner()) = faults;
    }

    pub(crate) fn faults(&self) -> Faults {
        self.shared
            .faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The clients that completed capability negotiation, in id order. In guest-agent
    /// mode: the connected clients (once a [`Faults::late_start`] is over).
    pub fn clients(&self) -> Vec<ClientId> {
        let clients = self.lock_clients();
        let mut ids: Vec<ClientId> = clients
            .iter()
            .filter(|(_, s)| s.negotiated)
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Waits until at least `n` clients have completed negotiation (in guest-agent
    /// mode: are connected, see [`Server::clients`]).
    pub async fn wait_for_clients(&self, n: usize) {
        let mut rx = self.shared.negotiated_count.subscribe();
        let _ = rx.wait_for(|count| *count >= n).await;
    }

    /// Sends an event to every negotiated client. `data` is omitted when `None`.
    /// Returns how many clients it was queued for: none in guest-agent mode (qemu-ga
    /// sends no events).
    pub async fn emit_raw(&self, name: &str, data: Option<Value>) -> usize {
        if self.shared.agent {
            return 0;
        }
        let line = encode_event(name, data.as_ref());
        let targets: Vec<mpsc::Sender<Out>> = {
            let clients = self.lock_clients();
            clients
                .values()
                .filter(|s| s.negotiated)
                .map(|s| s.out.clone())
                .collect()
        };
        let mut sent = 0;
        for out in targets {
            if out.send(Out::Line(line.clone())).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Sends an event to one client (if it is connected and negotiated).
    /// Returns whether it was queued (never in guest-agent mode).
    pub async fn emit_raw_to(&self, client: ClientId, name: &str, data: Option<Value>) -> bool {
        if self.shared.agent {
            return false;
        }
        let out = {
            let clients = self.lock_clients();
            match clients.get(&client) {
                Some(s) if s.negotiated => s.out.clone(),
                _ => return false,
            }
        };
        out.send(Out::Line(encode_event(name, data.as_ref())))
            .await
            .is_ok()
    }

    /// Sends a typed event to every negotiated client; see [`Server::emit_raw`].
    ///
    /// # Errors
    /// When the event fails to serialize.
    pub async fn emit<E: Event + Serialize>(&self, event: &E) -> Result<usize, serde_json::Error> {
        let data = event_data(event)?;
        Ok(self.emit_raw(E::NAME, data).await)
    }

    /// Sends a typed event to one client; see [`Server::emit_raw_to`].
    ///
    /// # Errors
    /// When the event fails to serialize.
    pub async fn emit_to<E: Event + Serialize>(
        &self,
        client: ClientId,
        event: &E,
    ) -> Result<bool, serde_json::Error> {
        let data = event_data(event)?;
        Ok(self.emit_raw_to(client, E::NAME, data).await)
    }

    /// Closes one client's connection (after what is already queued for it).
    pub async fn disconnect(&self, client: ClientId) {
        let out = self.lock_clients().get(&client).map(|s| s.out.clone());
        if let Some(out) = out {
            let _ = out.send(Out::Close).await;
        }
    }

    /// Ends every session (each closes its connection); the server can serve new
    /// connections afterwards only through a fresh [`Server`].
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }

    fn lock_clients(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, ClientSlot>> {
        self.shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn register(&self, out: mpsc::Sender<Out>) -> ClientId {
        let id = ClientId(self.shared.next_client.fetch_add(1, Ordering::Relaxed) + 1);
        self.lock_clients().insert(
            id,
            ClientSlot {
                out,
                negotiated: false,
            },
        );
        id
    }

    pub(crate) fn set_negotiated(&self, id: ClientId) {
        let count = {
            let mut clients = self.lock_clients();
            if let Some(s) = clients.get_mut(&id) {
                s.negotiated = true;
            }
            clients.values().filter(|s| s.negotiated).count()
        };
        self.shared.negotiated_count.send_replace(count);
    }

    pub(crate) fn unregister(&self, id: ClientId) {
        let count = {
            let mut clients = self.lock_clients();
            clients.remove(&id);
            clients.values().filter(|s| s.negotiated).count()
        };
        self.shared.negotiated_count.send_replace(count);
    }
}

fn event_data<E: Serialize>(event: &E) -> Result<Option<Value>, serde_json::Error> {
    Ok(match serde_json::to_value(event)? {
        Value::Null => None,
        Value::Object(m) if m.is_empty() => None,
        v => Some(v),
    })
}

pub(crate) fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        microseconds: i64::from(d.subsec_micros()),
    }
}

pub(crate) fn encode_event(name: &str, data: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    // Values always serialize.
    let _ = crate::message::write_event(&mut out, name, data, now());
    out
}

impl ServerBuilder {
    /// The QEMU version the greeting (and nothing else) announces.
    pub fn version(mut self, major: u32, minor: u32, micro: u32) -> Self {
        self.version = (major, minor, micro);
        self
    }

    /// The greeting's `package` string.
    pub fn package(mut self, package: impl Into<String>) -> Self {
        self.package = package.into();
        self
    }

    /// The capabilities offered (e.g. `["oob"]`); only offered ones can be enabled.
    pub fn capabilities<I, S>(mut self, caps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.capabilities = caps.into_iter().map(Into::into).collect();
        self
    }

    /// Sends this exact greeting line instead of one built from version and
    /// capabilities. The capabilities that can be enabled are read from it.
    pub fn greeting_line(mut self, line: impl Into<String>) -> Self {
        let line = line.into();
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if let Some(caps) = v.pointer("/QMP/capabilities").and_then(Value::as_array) {
                self.capabilities = caps
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect();
            }
        }
        self.greeting = Some(line);
        self
    }

    /// Checks every command against `schema` before running it (unknown commands and
    /// bad arguments are refused as QEMU refuses them). Whether a command allows
    /// `exec-oob` is then taken from the schema too.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(Arc::new(schema));
        self
    }

    /// Registers a typed handler for command `C`: its arguments decoded into `C`, its
    /// reply typed as `C::Reply`.
    pub fn handle<C, F, Fut>(mut self, f: F) -> Self
    where
        C: Command + DeserializeOwned + Send + 'static,
        C::Reply: Serialize,
        F: Fn(C, Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<C::Reply, QmpError>> + Send + 'static,
    {
        self.handlers
            .insert(C::NAME.to_string(), handler::typed::<C, F, Fut>(f));
        self
    }

    /// Registers a raw JSON handler: the `arguments` object in, the `return` value out.
    /// `allow_oob` says whether `exec-oob` may run it (when no schema says otherwise).
    pub fn handle_raw<F, Fut>(mut self, name: &str, allow_oob: bool, f: F) -> Self
    where
        F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, QmpError>> + Send + 'static,
    {
        self.handlers
            .insert(name.to_string(), handler::raw(f, allow_oob));
        self
    }

    /// Runs `f` for every command that has no handler of its own (the command name is in
    /// [`Ctx::command`]). Without a schema, `exec-oob` is then allowed for any command.
    pub fn fallback_raw<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, QmpError>> + Send + 'static,
    {
        self.fallback = Some(handler::raw(f, true));
        self
    }

    /// Faults to inject from the start (see also [`Server::set_faults`]).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// The longest request line accepted (longer ones get QEMU's "JSON token size
    /// limit exceeded").
    pub fn max_line(mut self, max: usize) -> Self {
        self.max_line = max;
        self
    }

    /// Told about every message of every session (e.g. a [`transcript::Recorder`]).
    pub fn traffic_hook(mut self, hook: Arc<dyn TrafficHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Speaks the guest agent's protocol (`qemu-ga`) instead of the monitor's: see
    /// [the module docs](self#the-guest-agent). No greeting, no capability
    /// negotiation (`qmp_capabilities` is an unknown command), no events, no
    /// out-of-band requests; requests are read and answered one at a time, in order;
    /// replies end in `\n`; a 0xFF byte in the input resets the JSON parser with
    /// qemu-ga's error reply. `guest-sync`, `guest-sync-delimited` (its reply preceded
    /// by 0xFF) and `guest-ping` are built in, with qemu-ga's argument checks; a
    /// [`handle`](Self::handle) or [`handle_raw`](Self::handle_raw) of the same name
    /// (before or after this call) replaces them. The version, capabilities and
    /// greeting settings are then unused.
    pub fn guest_agent(mut self) -> Self {
        self.agent = true;
        self
    }

    /// Serves a recorded session: the transcript's greeting, and for each request the
    /// recorded reply (id rewritten) and the events recorded with it. Every connection
    /// is served the transcript from its start unless the replay was made with
    /// [`replay::ReplayMode::Once`]. See [`replay::Replay`].
    pub fn replay(mut self, replay: replay::Replay) -> Self {
        if let Some(g) = replay.greeting_line() {
            self = self.greeting_line(g);
        }
        let replay = Arc::new(replay);
        self.fallback = Some(handler::raw_optional(
            move |ctx, args| {
                let replay = replay.clone();
                async move { replay.answer(ctx, args).await }
            },
            true,
        ));
        self
    }

    /// Builds the server.
    pub fn build(mut self) -> Server {
        if self.agent {
            for (name, handler) in agent::builtins() {
                self.handlers.entry(name.to_string()).or_insert(handler);
            }
        }
        let greeting = self.greeting.unwrap_or_else(|| {
            let (major, minor, micro) = self.version;
            serde_json::json!({"QMP": {
                "version": {"qemu": {"micro": micro, "minor": minor, "major": major}, "package": self.package},
                "capabilities": self.capabilities,
            }})
            .to_string()
        });
        let caps_schema = protocol::capabilities_schema();
        Server {
            shared: Arc::new(Shared {
                greeting,
                offered: self.capabilities,
                schema: self.schema,
                handlers: self.handlers,
                fallback: self.fallback,
                faults: RwLock::new(self.faults),
                clients: Mutex::new(HashMap::new()),
                negotiated_count: watch::channel(0).0,
                next_client: AtomicU64::new(0),
                max_line: self.max_line,
                hook: self.hook,
                shutdown: watch::channel(false).0,
                caps_schema,
                agent: self.agent,
            }),
        }
    }
}

/// Where a [`Listening`] server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

/// A listening socket; stops accepting (existing sessions go on) when dropped.
#[derive(Debug)]
pub struct Listening {
    addr: ListenAddr,
    task: JoinHandle<()>,
}

impl Listening {
    /// The address, with the actual port for TCP.
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
        if let ListenAddr::Unix(path) = &self.addr {
            let _ = std::fs::remove_file(path);
        }
    }
}
